//! The argument parser. Every flag hoard has to understand is one row of [`FLAGS`]: its
//! spelling, how it takes a value, and what it means for caching. A flag not in the table is
//! kept and hashed, so an unknown flag can cost a hit but never give a wrong one.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::language::{InputKind, Selection, kind_from_extension, selection_from_x};
use crate::language::Language;
use crate::reason::NonCacheable;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    /// No value; the argument is exactly the name.
    Flag,
    /// The value is the next argument.
    Separate,
    /// The value is the rest of the argument (possibly empty); matched as a prefix.
    Joined,
    /// `-Ifoo` or `-I foo`.
    JoinedOrSeparate,
    /// `--opt=value` or `--opt value`.
    EqualsOrSeparate,
}

/// What a flag means for caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Affects the output: hashed into every key and passed to the preprocessor run.
    Hashed,
    /// Only changes what the preprocessor reads or defines, which the `-E` output shows; hashed
    /// into the direct-mode key only.
    Preprocessor,
    /// Options handed to the preprocessor unseen (`-Wp,`, `-Xpreprocessor`): hashed, and direct
    /// mode is off because hoard cannot know which files they make it read.
    OpaquePreprocessor,
    /// `-g*`: debug information embeds the working directory.
    Debug,
    /// `-c`
    CompileOnly,
    /// `-o`
    Output,
    /// `-x`
    Language,
    /// `-E`, `-M`, `-MM`
    PreprocessOnly,
    /// `-S`
    AssemblyOnly,
    /// `-MD`, `-MMD`: a dependency file is written as a side effect.
    DependencyGenerate,
    /// `-MF`: where the dependency file goes (a path, so not hashed).
    DependencyFile,
    /// `-MT`, `-MQ`: the dependency file's target (hashed: it is written into the file).
    DependencyTarget,
    /// `-MP`, `-MG`: shape the dependency file; hashed, and not for the `-E` run.
    DependencyShape,
    /// `-arch` (Apple): more than one means more than one object.
    Arch,
    /// Never cached.
    Refuse(Refusal),
}

/// The reasons a single flag makes a compile non-cacheable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    SaveTemps,
    Coverage,
    Profile,
    SplitDwarf,
    NoObject,
    Modules,
    ExtraOutputs,
}

impl Refusal {
    fn reason(self, flag: &str) -> NonCacheable {
        let flag = flag.to_owned();
        match self {
            Self::SaveTemps => NonCacheable::SaveTemps,
            Self::Coverage => NonCacheable::Coverage { flag },
            Self::Profile => NonCacheable::Profile { flag },
            Self::SplitDwarf => NonCacheable::SplitDwarf,
            Self::NoObject => NonCacheable::NoObject { flag },
            Self::Modules => NonCacheable::Modules { flag },
            Self::ExtraOutputs => NonCacheable::ExtraOutputs { flag },
        }
    }
}

/// One row of the flag table.
type Spec = crate::flags::Spec<Arity, Class>;
use crate::flags::flag_table;

use Arity::{EqualsOrSeparate, Flag, Joined, JoinedOrSeparate, Separate};
use Class::{Hashed, Preprocessor, Refuse};

/// Every flag hoard interprets. When several rows match an argument the longest name wins,
/// so `-fprofile-arcs` beats `-fprofile-` and `-gsplit-dwarf` beats `-g`.
const FLAGS: &[Spec] = flag_table![
    // What is produced.
    Flag, Class::CompileOnly => "-c", "--compile";
    JoinedOrSeparate, Class::Output => "-o";
    EqualsOrSeparate, Class::Output => "--output";
    JoinedOrSeparate, Class::Language => "-x";
    EqualsOrSeparate, Class::Language => "--language";
    Flag, Class::PreprocessOnly =>
        "-E", "--preprocess", "-M", "--dependencies", "-MM", "--user-dependencies";
    Flag, Class::AssemblyOnly => "-S", "--assemble";
    Separate, Class::Arch => "-arch";
    // Dependency files.
    Flag, Class::DependencyGenerate =>
        "-MD", "--write-dependencies", "-MMD", "--write-user-dependencies";
    JoinedOrSeparate, Class::DependencyFile => "-MF";
    JoinedOrSeparate, Class::DependencyTarget => "-MT", "-MQ";
    Flag, Class::DependencyShape => "-MP", "-MG";
    // What the preprocessor reads and defines.
    JoinedOrSeparate, Preprocessor => "-I";
    EqualsOrSeparate, Preprocessor => "--include-directory";
    JoinedOrSeparate, Preprocessor =>
        "-isystem", "-iquote", "-idirafter", "-iprefix", "-iwithprefix", "-iwithprefixbefore",
        "-iframework", "-cxx-isystem", "-isystem-after", "-F", "-D";
    EqualsOrSeparate, Preprocessor => "--define-macro";
    JoinedOrSeparate, Preprocessor => "-U";
    EqualsOrSeparate, Preprocessor => "--undefine-macro";
    JoinedOrSeparate, Preprocessor => "-A", "-include";
    EqualsOrSeparate, Preprocessor => "--include";
    JoinedOrSeparate, Preprocessor => "-imacros";
    EqualsOrSeparate, Preprocessor => "--imacros";
    Flag, Preprocessor => "-nostdinc", "-nostdinc++";
    Joined, Class::OpaquePreprocessor => "-Wp,";
    Separate, Class::OpaquePreprocessor => "-Xpreprocessor";
    // Hashed flags whose value is a separate argument: listed so the value is not taken for
    // an input file.
    EqualsOrSeparate, Hashed => "--sysroot";
    JoinedOrSeparate, Hashed => "-isysroot", "-imultilib";
    EqualsOrSeparate, Hashed => "--param";
    Separate, Hashed => "-target";
    EqualsOrSeparate, Hashed => "--target";
    Separate, Hashed => "-gcc-toolchain";
    EqualsOrSeparate, Hashed => "--gcc-toolchain";
    JoinedOrSeparate, Hashed => "-B";
    Separate, Hashed =>
        "-Xclang", "-Xassembler", "-Xlinker", "-mllvm", "-aux-info", "-dumpbase", "-dumpbase-ext",
        "-dumpdir", "-include-pch";
    JoinedOrSeparate, Hashed => "-ivfsoverlay";
    EqualsOrSeparate, Hashed => "-resource-dir";
    JoinedOrSeparate, Hashed => "-L", "-l", "-T", "-u", "-z", "-e";
    Separate, Hashed => "-framework";
    // Debug information.
    Joined, Class::Debug => "-g";
    Flag, Hashed => "-g0", "-ggdb0";
    Flag, Refuse(Refusal::SplitDwarf) => "-gsplit-dwarf";
    // Never cached.
    Joined, Refuse(Refusal::SaveTemps) => "-save-temps";
    Flag, Refuse(Refusal::SaveTemps) => "--save-temps";
    Flag, Refuse(Refusal::Coverage) => "--coverage", "-ftest-coverage", "-fprofile-arcs";
    Joined, Refuse(Refusal::Profile) => "-fprofile-", "-fauto-profile";
    Flag, Refuse(Refusal::Profile) => "-fbranch-probabilities";
    Joined, Refuse(Refusal::Profile) => "-fcs-profile-generate";
    Flag, Refuse(Refusal::NoObject) => "-fsyntax-only", "-###";
    Joined, Refuse(Refusal::NoObject) => "--help";
    Flag, Refuse(Refusal::NoObject) =>
        "--version", "-dumpversion", "-dumpfullversion", "-dumpmachine", "-dumpspecs";
    Joined, Refuse(Refusal::NoObject) => "-print-";
    Joined, Refuse(Refusal::Modules) => "-fmodules";
    Flag, Refuse(Refusal::Modules) => "-fcxx-modules";
    Joined, Refuse(Refusal::Modules) => "-fmodule-file";
    Flag, Refuse(Refusal::ExtraOutputs) => "-fstack-usage";
    Joined, Refuse(Refusal::ExtraOutputs) => "-fcallgraph-info", "-fdump-", "-ftime-trace";
    JoinedOrSeparate, Refuse(Refusal::ExtraOutputs) => "-MJ";
];

/// The table row for `arg`, if any: the longest name that matches.
fn lookup(arg: &str) -> Option<&'static Spec> {
    FLAGS
        .iter()
        .filter(|s| match s.arity {
            Flag | Separate => arg == s.name,
            Joined | JoinedOrSeparate => arg.starts_with(s.name),
            EqualsOrSeparate => arg
                .strip_prefix(s.name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('=')),
        })
        .max_by_key(|s| s.name.len())
}

/// A compile command's arguments, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedArgs {
    /// The source file as written on the command line.
    pub source: OsString,
    pub language: Language,
    /// The `-o` value as written, if any.
    pub object: Option<OsString>,
    /// Set when the compile writes a dependency file.
    pub dependency: Option<DependencyFile>,
    /// Arguments that affect the output, in order, without paths of outputs.
    pub hashed: Vec<OsString>,
    /// Arguments that only affect preprocessing, in order.
    pub preprocessor: Vec<OsString>,
    /// The argument list for the `-E` run, without `-E` itself: everything but `-c`, `-o` and
    /// the dependency-file options.
    pub preprocess: Vec<OsString>,
    /// Whether debug information is requested (it embeds the working directory).
    pub debug_info: bool,
    /// False when options reach the preprocessor unseen (`-Wp,`, `-Xpreprocessor`).
    pub direct_mode_possible: bool,
}

/// `-MD`/`-MMD` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DependencyFile {
    /// The `-MF` value as written, if any.
    pub path: Option<OsString>,
    /// Whether `-MT` or `-MQ` names the target; otherwise the compiler writes the object path.
    pub explicit_target: bool,
    /// `-MMD`: system headers are left out of the file, so it cannot stand in for the
    /// preprocessor in depend mode.
    pub user_headers_only: bool,
}

/// Everything seen while walking the arguments, before deciding.
#[derive(Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "a record of independent flags seen, decided on together in `finish`"
)]
struct Walk {
    compile_only: bool,
    preprocess_only: bool,
    assembly_only: bool,
    arch_count: usize,
    selection: Option<InputKind>,
    sources: Vec<(OsString, Language)>,
    headers: usize,
    stdin: bool,
    unknown_input: Option<OsString>,
    object: Option<OsString>,
    dependency_generate: bool,
    user_headers_only: bool,
    dependency_path: Option<OsString>,
    explicit_target: bool,
    hashed: Vec<OsString>,
    preprocessor: Vec<OsString>,
    preprocess: Vec<OsString>,
    debug_info: bool,
    direct_mode_possible: bool,
}

/// Parses an already `@file`-expanded argument list. `cxx_driver` is true for `g++`,
/// `c++` and `clang++`.
pub(crate) fn parse(args: &[OsString], cxx_driver: bool) -> Result<ParsedArgs, NonCacheable> {
    let mut walk = Walk {
        direct_mode_possible: true,
        ..Walk::default()
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_bytes() {
            b"-" => {
                walk.stdin = true;
                continue;
            }
            [b'-', ..] => {}
            _ => {
                walk.input(arg, cxx_driver);
                continue;
            }
        }
        let Some((flag, spec)) = arg.to_str().and_then(|f| Some((f, lookup(f)?))) else {
            // Unknown, or not UTF-8: kept and hashed.
            walk.keep(std::slice::from_ref(arg));
            continue;
        };
        let separate = match spec.arity {
            Separate => true,
            JoinedOrSeparate | EqualsOrSeparate => flag.len() == spec.name.len(),
            Flag | Joined => false,
        };
        let (raw, value): (&[OsString], &OsStr) = if separate {
            let value = args.get(i).ok_or_else(|| NonCacheable::MissingArgument {
                flag: flag.to_owned(),
            })?;
            i += 1;
            (&args[i - 2..i], value)
        } else {
            let rest = &flag[spec.name.len()..];
            let rest = match spec.arity {
                EqualsOrSeparate => rest.strip_prefix('=').unwrap_or(rest),
                _ => rest,
            };
            (&args[i - 1..i], OsStr::new(rest))
        };
        walk.flag(spec, flag, raw, value)?;
    }
    walk.finish()
}

impl Walk {
    fn input(&mut self, arg: &OsString, cxx_driver: bool) {
        let kind = self
            .selection
            .unwrap_or_else(|| kind_from_extension(Path::new(arg), cxx_driver));
        match kind {
            InputKind::Source(language) => {
                self.sources.push((arg.clone(), language));
                self.preprocess.push(arg.clone());
            }
            InputKind::Header => self.headers += 1,
            InputKind::Other => {
                self.unknown_input.get_or_insert_with(|| arg.clone());
            }
        }
    }

    /// Keeps a flag that affects the output: hashed, and passed to the `-E` run.
    fn keep(&mut self, raw: &[OsString]) {
        self.hashed.extend_from_slice(raw);
        self.preprocess.extend_from_slice(raw);
    }

    fn flag(
        &mut self,
        spec: &Spec,
        flag: &str,
        raw: &[OsString],
        value: &OsStr,
    ) -> Result<(), NonCacheable> {
        match spec.class {
            Class::Hashed => self.keep(raw),
            Class::Arch => {
                self.arch_count += 1;
                self.keep(raw);
            }
            Class::Debug => {
                self.debug_info = true;
                self.keep(raw);
            }
            Class::Language => {
                let value = value.to_string_lossy();
                self.selection = match selection_from_x(&value) {
                    Some(Selection::Forced(kind)) => Some(kind),
                    Some(Selection::ByExtension) => None,
                    None => {
                        return Err(NonCacheable::UnknownLanguage {
                            input: format!("-x {value}"),
                        });
                    }
                };
                self.keep(raw);
            }
            Class::Preprocessor => {
                self.preprocessor.extend_from_slice(raw);
                self.preprocess.extend_from_slice(raw);
            }
            Class::OpaquePreprocessor => {
                let value = value.to_string_lossy();
                // `-Wp,` carries a comma-separated list; `-Xpreprocessor` one option.
                let dependency_option = if spec.arity == Joined {
                    value.split(',').any(|o| o.starts_with("-M"))
                } else {
                    value.starts_with("-M")
                };
                if dependency_option {
                    return Err(NonCacheable::PreprocessorDependencyOption {
                        flag: flag.to_owned(),
                    });
                }
                self.direct_mode_possible = false;
                self.keep(raw);
            }
            Class::CompileOnly => self.compile_only = true,
            Class::Output => self.object = Some(value.to_owned()),
            Class::PreprocessOnly => self.preprocess_only = true,
            Class::AssemblyOnly => self.assembly_only = true,
            Class::DependencyGenerate => {
                self.dependency_generate = true;
                self.user_headers_only |= matches!(spec.name, "-MMD" | "--write-user-dependencies");
                self.hashed.extend_from_slice(raw);
            }
            Class::DependencyShape => self.hashed.extend_from_slice(raw),
            Class::DependencyFile => self.dependency_path = Some(value.to_owned()),
            Class::DependencyTarget => {
                self.explicit_target = true;
                self.hashed.extend_from_slice(raw);
            }
            Class::Refuse(refusal) => return Err(refusal.reason(flag)),
        }
        Ok(())
    }

    /// Decides, in a fixed order so each command is counted under one stable reason.
    fn finish(mut self) -> Result<ParsedArgs, NonCacheable> {
        if self.preprocess_only {
            return Err(NonCacheable::PreprocessOnly);
        }
        if self.assembly_only {
            return Err(NonCacheable::AssemblyOutput);
        }
        if !self.compile_only {
            return Err(NonCacheable::Linking);
        }
        if self.arch_count > 1 {
            return Err(NonCacheable::MultipleArch);
        }
        if self.stdin {
            return Err(NonCacheable::StdinSource);
        }
        if self.headers > 0 {
            return Err(NonCacheable::PrecompiledHeader);
        }
        if let Some(input) = self.unknown_input {
            return Err(NonCacheable::UnknownLanguage {
                input: input.to_string_lossy().into_owned(),
            });
        }
        if self.sources.len() > 1 {
            return Err(NonCacheable::MultipleSources);
        }
        let Some((source, language)) = self.sources.pop() else {
            return Err(NonCacheable::NoSource);
        };
        if self.object.as_deref() == Some(OsStr::new("-")) {
            return Err(NonCacheable::OutputToStdout);
        }
        let dependency = if self.dependency_generate {
            if self.dependency_path.as_deref() == Some(OsStr::new("-")) {
                return Err(NonCacheable::DependencyToStdout);
            }
            Some(DependencyFile {
                path: self.dependency_path,
                explicit_target: self.explicit_target,
                user_headers_only: self.user_headers_only,
            })
        } else {
            None
        };
        Ok(ParsedArgs {
            source,
            language,
            object: self.object,
            dependency,
            hashed: self.hashed,
            preprocessor: self.preprocessor,
            preprocess: self.preprocess,
            debug_info: self.debug_info,
            direct_mode_possible: self.direct_mode_possible,
        })
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
