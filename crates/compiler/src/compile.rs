//! What every cacheable compile has, whatever its compiler family: the command, its outputs
//! with absolute paths, its language, where hoard keeps state, and whether to stream the
//! compiler's standard error. Also how output paths are made absolute and checked.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use hoard_storage::OutputPath;

use crate::command::CommandLine;
use crate::language::Language;
use crate::reason::NonCacheable;

/// The family-independent part of a cacheable compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compile {
    /// The command as the wrapper was asked to run it.
    pub command: CommandLine,
    /// The files the compile writes, with absolute paths and unique roles.
    pub outputs: Vec<OutputPath>,
    /// The language the source is compiled as.
    pub language: Language,
    /// The state directory (`HOARD_DIR`): digest memo, identities, explain records.
    pub state_dir: PathBuf,
    /// Whether to copy the compiler's stderr through while it runs (families that stream).
    pub stream_stderr: bool,
}

impl Compile {
    /// A compile of `command` writing `outputs`, each checked to be a regular file or absent
    /// (the cache writes through a rename, which must not replace anything else).
    pub(crate) fn new(
        command: CommandLine,
        outputs: Vec<OutputPath>,
        language: Language,
        state_dir: PathBuf,
    ) -> Result<Self, NonCacheable> {
        for output in &outputs {
            if std::fs::symlink_metadata(&output.path).is_ok_and(|m| !m.is_file()) {
                return Err(NonCacheable::OutputNotRegularFile {
                    path: output.path.clone(),
                });
            }
        }
        Ok(Self {
            command,
            outputs,
            language,
            state_dir,
            stream_stderr: false,
        })
    }

    /// The path of the output with `role`, if the compile writes one.
    pub(crate) fn output(&self, role: &str) -> Option<&Path> {
        self.outputs
            .iter()
            .find(|o| o.role == role)
            .map(|o| o.path.as_path())
    }
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

/// Replaces `path` with `data` through a temporary file and a rename, as the compiler
/// would have created it under the usual umask (a dependency file rewritten for this build).
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut temp = tempfile::Builder::new()
        .prefix(".hoard-")
        .tempfile_in(dir)?;
    temp.write_all(data)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
