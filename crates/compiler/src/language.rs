//! Source languages, as gcc and clang name them for `-x` (and Rust): stable names used as
//! stats keys and in keys.

/// The language a compile's single source is compiled as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Language {
    /// `c`
    C,
    /// `c++`
    Cxx,
    /// `objective-c`
    ObjC,
    /// `objective-c++`
    ObjCxx,
    /// `assembler-with-cpp` (`.S`, `.sx`): assembly that goes through the preprocessor.
    Assembler,
    /// `assembler` (`.s`): assembly the preprocessor never sees.
    RawAssembler,
    /// `cpp-output` (`.i`): C that is already preprocessed.
    PreprocessedC,
    /// `c++-cpp-output` (`.ii`)
    PreprocessedCxx,
    /// `objective-c-cpp-output` (`.mi`)
    PreprocessedObjC,
    /// `objective-c++-cpp-output` (`.mii`)
    PreprocessedObjCxx,
    /// Rust, compiled by rustc (never selected by `-x`).
    Rust,
}

impl Language {
    /// The name gcc and clang give the language with `-x`; stable, used as a stats key.
    pub fn name(self) -> &'static str {
        match self {
            Self::C => "c",
            Self::Cxx => "c++",
            Self::ObjC => "objective-c",
            Self::ObjCxx => "objective-c++",
            Self::Assembler => "assembler-with-cpp",
            Self::RawAssembler => "assembler",
            Self::PreprocessedC => "cpp-output",
            Self::PreprocessedCxx => "c++-cpp-output",
            Self::PreprocessedObjC => "objective-c-cpp-output",
            Self::PreprocessedObjCxx => "objective-c++-cpp-output",
            Self::Rust => "rust",
        }
    }

    /// Whether the compiler runs the preprocessor on this language. When it does not, the
    /// source text alone is the input, and there are no includes for direct mode to track.
    pub fn is_preprocessed(self) -> bool {
        !matches!(
            self,
            Self::RawAssembler
                | Self::PreprocessedC
                | Self::PreprocessedCxx
                | Self::PreprocessedObjC
                | Self::PreprocessedObjCxx
                | Self::Rust
        )
    }

    /// Every language gcc and clang select with `-x`.
    pub(crate) const ALL: [Self; 10] = [
        Self::C,
        Self::Cxx,
        Self::ObjC,
        Self::ObjCxx,
        Self::Assembler,
        Self::RawAssembler,
        Self::PreprocessedC,
        Self::PreprocessedCxx,
        Self::PreprocessedObjC,
        Self::PreprocessedObjCxx,
    ];
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
