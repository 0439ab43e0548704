//! Deciding whether a command is a cacheable compile, and if so, everything about it the
//! pipeline needs: the identified compiler, the parsed arguments and the absolute output paths.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use hoard_storage::OutputPath;

use crate::args::{self, ParsedArgs};
use crate::detect::{self, Compiler};
use crate::rust::RustCompile;
use crate::{CommandLine, CompilerKind, Language, NonCacheable, PipelineConfig, response_file};

/// Role of the object file among a compile's outputs.
pub(crate) const OBJECT_ROLE: &str = "object";
/// Role of the dependency file (`-MD`/`-MMD`).
pub(crate) const DEPENDENCY_ROLE: &str = "dep";

/// A command that compiles one source (a C-family file, or a Rust crate root) and that the
/// pipeline can serve from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheableCompile {
    command: CommandLine,
    outputs: Vec<OutputPath>,
    pub(crate) kind: Kind,
    pub(crate) stream_stderr: bool,
}

/// What the pipeline needs to know per compiler family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// gcc or clang.
    C(Box<CCompile>),
    /// rustc.
    Rust(Box<RustCompile>),
}

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
    /// The state directory (`HOARD_DIR`): the digest memo lives there.
    pub(crate) state_dir: PathBuf,
}

impl CacheableCompile {
    pub(crate) fn new(command: CommandLine, outputs: Vec<OutputPath>, kind: Kind) -> Self {
        Self {
            command,
            outputs,
            kind,
            stream_stderr: false,
        }
    }

    /// The language the source is compiled as.
    pub fn language(&self) -> Language {
        match &self.kind {
            Kind::C(c) => c.args.language,
            Kind::Rust(_) => Language::Rust,
        }
    }

    /// The files the compile writes, with absolute paths: for C `object`, and `dep` with
    /// `-MD`; for rustc one per `--emit` kind and crate type.
    pub fn outputs(&self) -> &[OutputPath] {
        &self.outputs
    }

    /// The command as the wrapper was asked to run it.
    pub fn command(&self) -> &CommandLine {
        &self.command
    }

    /// Which compiler family runs the compile.
    pub fn compiler_kind(&self) -> CompilerKind {
        match &self.kind {
            Kind::C(c) => c.compiler.kind,
            Kind::Rust(_) => CompilerKind::Rustc,
        }
    }

    /// The compiler binary that will be run, absolute.
    pub fn compiler_path(&self) -> &Path {
        match &self.kind {
            Kind::C(c) => &c.compiler.path,
            Kind::Rust(rust) => &rust.rustc_path,
        }
    }

    /// Asks the pipeline to copy the compiler's standard error to this process's standard
    /// error while a compile runs (rustc only), instead of leaving all of it to the caller.
    /// cargo starts dependent crates when rustc reports on standard error that the metadata
    /// is written, so a wrapper that printed only at the end would lose cargo's pipelining.
    /// The outcome's `stderr_streamed` says when this happened.
    pub fn stream_stderr(&mut self, on: bool) {
        self.stream_stderr = on;
    }
}

/// Decides whether `cmd` is a cacheable compile. Costs a few `stat`s, reading any response
/// files and, once per compiler binary, identifying the compiler.
pub fn classify(
    cmd: &CommandLine,
    config: &PipelineConfig,
) -> Result<CacheableCompile, NonCacheable> {
    if let Some(rustc) = crate::rust::rustc_program(&cmd.program, &cmd.cwd, &cmd.env) {
        return crate::rust::classify(cmd, config, rustc);
    }
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
    for output in &outputs {
        if std::fs::symlink_metadata(&output.path).is_ok_and(|m| !m.is_file()) {
            return Err(NonCacheable::OutputNotRegularFile {
                path: output.path.clone(),
            });
        }
    }
    let c = CCompile {
        source_path: cmd.cwd.join(&parsed.source),
        direct_mode: config.direct_mode && parsed.direct_mode_possible,
        state_dir: config.state_dir.clone(),
        compiler,
        args: parsed,
        dependency_target,
    };
    Ok(CacheableCompile::new(
        cmd.clone(),
        outputs,
        Kind::C(Box::new(c)),
    ))
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

/// Makes an output path absolute with its directory canonicalised, so a symlink in the
/// user's path is resolved here (the server never follows one). When the directory does not
/// exist the compile will fail anyway; the path is then only normalised.
pub(crate) fn absolute_output(cwd: &Path, given: &Path) -> PathBuf {
    let joined = cwd.join(given);
    if let (Some(parent), Some(name)) = (joined.parent(), joined.file_name())
        && let Ok(dir) = parent.canonicalize()
    {
        return dir.join(name);
    }
    normalise(&joined)
}

/// Removes `.` and resolves `..` lexically.
fn normalise(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
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

    #[test]
    fn outputs_resolve_symlinked_directories_and_dots() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("real")).unwrap();
        std::os::unix::fs::symlink(real.join("real"), real.join("link")).unwrap();
        assert_eq!(
            absolute_output(&real, Path::new("link/./x.o")),
            real.join("real/x.o")
        );
        assert_eq!(
            absolute_output(&real.join("link"), Path::new("../real/y.o")),
            real.join("real/y.o")
        );
        assert_eq!(
            absolute_output(&real, Path::new("missing/../z/./w.o")),
            real.join("z/w.o")
        );
    }
}
