//! Deciding whether a gcc or clang command is a cacheable compile, and if so, everything
//! about it the C family needs: the identified compiler, the parsed arguments and the
//! absolute output paths.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use hoard_storage::OutputPath;

use super::args::{self, ParsedArgs};
use super::detect::{self, Compiler};
use super::paths::{PathsKept, Rebase};
use super::response_file;
use super::search::SearchPath;
use crate::command::{CommandLine, PipelineConfig};
use crate::compile::{Compile, absolute_output};
use crate::reason::NonCacheable;

/// Role of the object file among a compile's outputs.
pub(crate) const OBJECT_ROLE: &str = "object";
/// Role of the dependency file (`-MD`/`-MMD`).
pub(crate) const DEPENDENCY_ROLE: &str = "dep";

/// A gcc or clang compile of one source to one object (and perhaps a dependency file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CCompile {
    pub(crate) compiler: Compiler,
    pub(crate) args: ParsedArgs,
    /// The source, absolute, for reading.
    pub(crate) source_path: PathBuf,
    /// What the compiler writes as the dependency file's target when no `-MT`/`-MQ` says.
    pub(crate) dependency_target: Option<OsString>,
    pub(crate) direct_mode: bool,
    /// How paths under the base directories go into keys and stored outputs.
    pub(crate) rebase: Rebase,
    /// Where the preprocessor looks for headers, for the shadowing rule.
    pub(crate) search: SearchPath,
}

/// Decides whether `cmd` is a cacheable gcc or clang compile. Costs a few `stat`s, reading
/// any response files and, once per compiler binary, identifying the compiler.
pub(crate) fn classify(
    cmd: &CommandLine,
    config: &PipelineConfig,
) -> Result<(Compile, CCompile), NonCacheable> {
    let program = detect::find(&cmd.program, &cmd.cwd, &cmd.env)?;
    let expanded = response_file::expand(&cmd.args, &cmd.cwd)?;
    let parsed = args::parse(&expanded, program.cxx_driver)?;
    let compiler = program.identify(&config.state_dir)?;

    let object_given = parsed
        .object
        .clone()
        .unwrap_or_else(|| default_object_name(&parsed.source));
    let object = absolute_output(&cmd.cwd, Path::new(&object_given));
    let mut outputs = vec![OutputPath::new(OBJECT_ROLE, object.clone())];
    let mut dependency_target = None;
    if let Some(dependency) = &parsed.dependency {
        let path = match &dependency.path {
            Some(given) => absolute_output(&cmd.cwd, Path::new(given)),
            None => with_dependency_suffix(&object),
        };
        outputs.push(OutputPath::new(DEPENDENCY_ROLE, path));
        if !dependency.explicit_target {
            dependency_target = Some(object_given);
        }
    }
    let compile = Compile::new(
        cmd.clone(),
        outputs,
        parsed.language,
        config.state_dir.clone(),
    )?;
    let source_path = cmd.cwd.join(&parsed.source);
    let bases = crate::path_policy::basedirs(&cmd.env, &cmd.cwd, &source_path);
    let c = CCompile {
        rebase: rebase(&cmd.cwd, &cmd.env, &bases, &parsed),
        search: SearchPath::new(
            &source_path,
            &cmd.cwd,
            &cmd.env,
            parsed.language,
            &parsed.preprocessor,
        ),
        source_path,
        direct_mode: config.direct_mode && parsed.direct_mode_possible,
        compiler,
        args: parsed,
        dependency_target,
    };
    Ok((compile, c))
}

/// How the compile's paths are rebased: not at all when an output embeds them whatever the
/// key says (debug information whose paths no prefix map covers, LTO objects whose code is
/// compressed so no check can find a path in them), so the key keeps them.
fn rebase(
    cwd: &Path,
    env: &[(OsString, OsString)],
    bases: &[PathBuf],
    parsed: &ParsedArgs,
) -> Rebase {
    if bases.is_empty() {
        return match crate::path_policy::PathMode::from_env(env) {
            crate::path_policy::PathMode::Exact => Rebase::keep(PathsKept::Exact),
            crate::path_policy::PathMode::Shared => Rebase::default(),
        };
    }
    let hashed = || parsed.hashed.iter().map(|a| a.as_bytes());
    if hashed().any(|a| a.starts_with(b"-flto")) {
        return Rebase::keep(PathsKept::Lto);
    }
    if parsed.debug_info {
        let maps: Vec<&[u8]> = hashed()
            .filter_map(|a| {
                a.strip_prefix(b"-ffile-prefix-map=")
                    .or_else(|| a.strip_prefix(b"-fdebug-prefix-map="))
            })
            .filter_map(|map| map.iter().position(|&b| b == b'=').map(|at| &map[..at]))
            .collect();
        if !debug_paths_mapped(cwd, bases, &maps) {
            return Rebase::keep(PathsKept::DebugInfo);
        }
    }
    Rebase::new(bases)
}

/// Whether prefix maps whose old paths lie under a base rewrite the working directory and
/// every base, so debug information names no path that differs between checkouts.
fn debug_paths_mapped(cwd: &Path, bases: &[PathBuf], maps: &[&[u8]]) -> bool {
    let maps: Vec<&Path> = maps
        .iter()
        .map(|m| Path::new(OsStr::from_bytes(m)))
        .filter(|m| m.is_absolute() && bases.iter().any(|b| m.starts_with(b)))
        .collect();
    std::iter::once(cwd)
        .chain(bases.iter().map(PathBuf::as_path))
        .all(|dir| maps.iter().any(|m| dir.starts_with(m)))
}

/// The object name the driver picks without `-o`: the source's file name with its suffix
/// replaced by `.o`, in the working directory.
fn default_object_name(source: &OsStr) -> OsString {
    let mut name = Path::new(source)
        .file_stem()
        .unwrap_or(source)
        .to_os_string();
    name.push(".o");
    name
}

/// `-MD` without `-MF` writes beside the object: gcc and clang both replace everything from
/// the last `.` of the file name (even a leading one) by `.d`.
fn with_dependency_suffix(object: &Path) -> PathBuf {
    let Some(name) = object.file_name() else {
        return object.with_extension("d");
    };
    let bytes = name.as_bytes();
    let stem = bytes
        .iter()
        .rposition(|&b| b == b'.')
        .map_or(bytes, |dot| &bytes[..dot]);
    let mut name = stem.to_vec();
    name.extend_from_slice(b".d");
    object.with_file_name(OsString::from_vec(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_suffix_replaces_the_last_extension_like_gcc() {
        for (object, dep) in [
            ("/b/x.o", "/b/x.d"),
            ("/b/y", "/b/y.d"),
            ("/b/z.q.o", "/b/z.q.d"),
            ("/b.d/w", "/b.d/w.d"),
            ("/b/.hidden", "/b/.d"),
        ] {
            assert_eq!(with_dependency_suffix(Path::new(object)), Path::new(dep));
        }
    }

    #[test]
    fn debug_info_shares_only_when_prefix_maps_cover_every_base() {
        let bases = [PathBuf::from("/p/build"), PathBuf::from("/p")];
        let cwd = Path::new("/p/build");
        assert!(!debug_paths_mapped(cwd, &bases, &[]));
        assert!(debug_paths_mapped(cwd, &bases, &[b"/p"]));
        assert!(!debug_paths_mapped(cwd, &bases, &[b"/p/build"]));
        // An old path above every base differs between checkouts: it does not count.
        assert!(!debug_paths_mapped(cwd, &bases, &[b"/"]));
    }

    #[test]
    fn default_object_is_the_stem_in_cwd() {
        assert_eq!(default_object_name(OsStr::new("src/a.tar.c")), "a.tar.o");
        assert_eq!(default_object_name(OsStr::new("b.cpp")), "b.o");
    }
}
