//! How a C-family input file's language is decided: from `-x`, or from its extension as
//! the driver does.

use std::path::Path;

use crate::language::Language;

/// What an input file on the command line is, given the `-x` in force before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// A source compiled in this language.
    Source(Language),
    /// A header: compiling it makes a precompiled header.
    Header,
    /// Neither: an object, a library, or a name the driver would pass to the linker.
    Other,
}

/// The meaning of a `-x` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Later inputs are in this language regardless of their extension.
    Forced(InputKind),
    /// `-x none`: back to deciding by extension.
    ByExtension,
}

/// Reads a `-x` value; `None` for a language hoard does not cache.
pub(crate) fn selection_from_x(value: &str) -> Option<Selection> {
    if value == "none" {
        return Some(Selection::ByExtension);
    }
    if let Some(language) = Language::ALL.iter().find(|l| l.name() == value) {
        return Some(Selection::Forced(InputKind::Source(*language)));
    }
    match value {
        "c-header"
        | "c++-header"
        | "objective-c-header"
        | "objective-c++-header"
        | "c-header-unit"
        | "c++-header-unit"
        | "c++-system-header"
        | "c++-user-header" => Some(Selection::Forced(InputKind::Header)),
        _ => None,
    }
}

/// Decides an input's kind by its extension, as the driver does. `cxx_driver` is true for
/// `g++`, `c++` and `clang++`, which compile `.c` and `.i` files as C++.
pub(crate) fn kind_from_extension(path: &Path, cxx_driver: bool) -> InputKind {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return InputKind::Other;
    };
    let language = match extension {
        "c" if cxx_driver => Language::Cxx,
        "c" => Language::C,
        "i" if cxx_driver => Language::PreprocessedCxx,
        "i" => Language::PreprocessedC,
        "ii" => Language::PreprocessedCxx,
        "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => Language::Cxx,
        "m" => Language::ObjC,
        "mi" => Language::PreprocessedObjC,
        "mm" | "M" => Language::ObjCxx,
        "mii" => Language::PreprocessedObjCxx,
        "S" | "sx" => Language::Assembler,
        "s" => Language::RawAssembler,
        "h" | "hh" | "H" | "hp" | "hxx" | "hpp" | "HPP" | "h++" | "tcc" => {
            return InputKind::Header;
        }
        _ => return InputKind::Other,
    };
    InputKind::Source(language)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_through_x() {
        for language in Language::ALL {
            assert_eq!(
                selection_from_x(language.name()),
                Some(Selection::Forced(InputKind::Source(language)))
            );
        }
    }

    #[test]
    fn cxx_drivers_compile_dot_c_as_cxx() {
        let c = Path::new("a.c");
        assert_eq!(
            kind_from_extension(c, false),
            InputKind::Source(Language::C)
        );
        assert_eq!(
            kind_from_extension(c, true),
            InputKind::Source(Language::Cxx)
        );
    }

    #[test]
    fn headers_objects_and_unknown_extensions() {
        assert_eq!(
            kind_from_extension(Path::new("a.h"), false),
            InputKind::Header
        );
        assert_eq!(
            kind_from_extension(Path::new("a.o"), false),
            InputKind::Other
        );
        assert_eq!(
            kind_from_extension(Path::new("Makefile"), false),
            InputKind::Other
        );
        assert_eq!(selection_from_x("cuda"), None);
        assert_eq!(selection_from_x("none"), Some(Selection::ByExtension));
    }
}
