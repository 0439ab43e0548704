//! Why a command is not cached. Each reason is its own variant so stats can count them apart
//! and a user can be told exactly why a compile always runs.

use std::path::PathBuf;

/// A command hoard runs without the cache, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonCacheable {
    /// No `-c`: the command links (or does nothing cacheable).
    #[error("the command links (no -c)")]
    Linking,
    /// `-E`, `-M` or `-MM`: the output is preprocessed text or a dependency list.
    #[error("the command only preprocesses (-E, -M or -MM)")]
    PreprocessOnly,
    /// `-S`: the output is assembly.
    #[error("the command writes assembly (-S)")]
    AssemblyOutput,
    /// More than one source file.
    #[error("the command compiles more than one source file")]
    MultipleSources,
    /// `-c` but no source file.
    #[error("the command names no source file")]
    NoSource,
    /// `-o -`.
    #[error("the object is written to standard output (-o -)")]
    OutputToStdout,
    /// `-MF -`.
    #[error("the dependency file is written to standard output (-MF -)")]
    DependencyToStdout,
    /// An input whose language hoard cannot tell or does not cache.
    #[error("unknown or unsupported language for {input:?}")]
    UnknownLanguage {
        /// The input, or the `-x` value.
        input: String,
    },
    /// A header is compiled: the output is a precompiled header.
    #[error("the command makes a precompiled header")]
    PrecompiledHeader,
    /// `-save-temps`: intermediate files would be missing on a hit.
    #[error("-save-temps writes intermediate files")]
    SaveTemps,
    /// The source is standard input (`-`).
    #[error("the source is standard input")]
    StdinSource,
    /// `--coverage`, `-ftest-coverage` or `-fprofile-arcs`: `.gcno` files are written beside
    /// the object.
    #[error("coverage instrumentation writes extra files ({flag})")]
    Coverage {
        /// The flag.
        flag: String,
    },
    /// `-gsplit-dwarf`: a `.dwo` file is written beside the object.
    #[error("-gsplit-dwarf writes a .dwo file")]
    SplitDwarf,
    /// `-fprofile-*` and friends read or write profile data hoard does not track.
    #[error("profile-guided options read or write profile data ({flag})")]
    Profile {
        /// The flag.
        flag: String,
    },
    /// `-fsyntax-only`, `-###`, `--version`, `-print-*` and the like: no object is written.
    #[error("{flag} writes no object")]
    NoObject {
        /// The flag.
        flag: String,
    },
    /// C++ or clang modules: inputs and outputs live in a module cache hoard does not track.
    #[error("modules are not supported ({flag})")]
    Modules {
        /// The flag.
        flag: String,
    },
    /// A flag that writes extra files beside the object (`-fstack-usage`, `-fdump-*`, ...).
    #[error("{flag} writes extra output files")]
    ExtraOutputs {
        /// The flag.
        flag: String,
    },
    /// Dependency options passed straight to the preprocessor (`-Wp,-MD,...`): their output
    /// path and target follow rules of their own.
    #[error("dependency options passed to the preprocessor ({flag})")]
    PreprocessorDependencyOption {
        /// The flag.
        flag: String,
    },
    /// More than one `-arch`: one object per architecture.
    #[error("more than one -arch")]
    MultipleArch,
    /// A flag that needs a value came last.
    #[error("{flag} is missing its argument")]
    MissingArgument {
        /// The flag.
        flag: String,
    },
    /// An output path exists and is not a regular file (`-o /dev/null`): a hit must never
    /// replace it.
    #[error("output {path} exists and is not a regular file")]
    OutputNotRegularFile {
        /// The output path.
        path: PathBuf,
    },
    /// The program is not gcc or clang.
    #[error("{program} is not a supported compiler: {detail}")]
    UnsupportedCompiler {
        /// The program as given.
        program: String,
        /// What gave it away.
        detail: String,
    },
    /// The program was not found (not on `PATH`, or not executable).
    #[error("compiler {program} not found")]
    CompilerNotFound {
        /// The program as given.
        program: String,
    },
    /// A rustc invocation that asks about the compiler instead of compiling (`-vV`, `--print`,
    /// `--explain`, `--help`): cargo's probes.
    #[error("rustc probe ({flag}) writes no crate")]
    RustcProbe {
        /// The flag.
        flag: String,
    },
    /// `-C incremental`: rustc keeps its own incremental state, which a cached result would
    /// bypass and leave stale.
    #[error("incremental compilation (-C incremental) keeps state hoard does not track")]
    Incremental,
    /// A crate type hoard does not know how to name the outputs of.
    #[error("crate type {crate_type} is not cached")]
    UnsupportedCrateType {
        /// The crate type as given.
        crate_type: String,
    },
    /// The rustc outputs cannot be told from the arguments (no `--crate-type` or
    /// `--crate-name`, `-o` with several outputs, an output to standard output, ...).
    #[error("rustc outputs cannot be determined: {detail}")]
    RustOutputsUnknown {
        /// What is missing or ambiguous.
        detail: String,
    },
    /// An `@file` could not be read (or nested too deeply).
    #[error("response file {path}: {detail}")]
    UnreadableResponseFile {
        /// The response file as named.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

impl NonCacheable {
    /// A stable snake_case name, used as a key in stats.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Linking => "linking",
            Self::PreprocessOnly => "preprocess_only",
            Self::AssemblyOutput => "assembly_output",
            Self::MultipleSources => "multiple_sources",
            Self::NoSource => "no_source",
            Self::OutputToStdout => "output_to_stdout",
            Self::DependencyToStdout => "dependency_to_stdout",
            Self::UnknownLanguage { .. } => "unknown_language",
            Self::PrecompiledHeader => "precompiled_header",
            Self::SaveTemps => "save_temps",
            Self::StdinSource => "stdin_source",
            Self::Coverage { .. } => "coverage",
            Self::SplitDwarf => "split_dwarf",
            Self::Profile { .. } => "profile",
            Self::NoObject { .. } => "no_object",
            Self::Modules { .. } => "modules",
            Self::ExtraOutputs { .. } => "extra_outputs",
            Self::PreprocessorDependencyOption { .. } => "preprocessor_dependency_option",
            Self::MultipleArch => "multiple_arch",
            Self::MissingArgument { .. } => "missing_argument",
            Self::OutputNotRegularFile { .. } => "output_not_regular_file",
            Self::UnsupportedCompiler { .. } => "unsupported_compiler",
            Self::CompilerNotFound { .. } => "compiler_not_found",
            Self::UnreadableResponseFile { .. } => "unreadable_response_file",
            Self::RustcProbe { .. } => "rustc_probe",
            Self::Incremental => "incremental",
            Self::UnsupportedCrateType { .. } => "unsupported_crate_type",
            Self::RustOutputsUnknown { .. } => "rust_outputs_unknown",
        }
    }
}
