//! Deciding whether a gcc or clang command is a cacheable compile, and if so, everything
//! about it the C family needs: the identified compiler, the parsed arguments and the
//! absolute output paths.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use hoard_storage::OutputPath;

use super::args::{self, ParsedArgs};
use super::detect::{self, Compiler};
use super::response_file;
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
    let c = CCompile {
        source_path: cmd.cwd.join(&parsed.source),
        direct_mode: config.direct_mode && parsed.direct_mode_possible,
        compiler,
        args: parsed,
        dependency_target,
    };
    Ok((compile, c))
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
    fn default_object_is_the_stem_in_cwd() {
        assert_eq!(default_object_name(OsStr::new("src/a.tar.c")), "a.tar.o");
        assert_eq!(default_object_name(OsStr::new("b.cpp")), "b.o");
    }
}
