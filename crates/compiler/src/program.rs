//! Finding the program a command names, the way the shell would, and naming compiler
//! families: shared by every family's detection.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::command::env_value;

/// Which compiler family a binary belongs to, told by its `-v` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompilerKind {
    /// GNU gcc / g++.
    Gcc,
    /// LLVM clang / clang++.
    Clang,
    /// rustc (a toolchain's, or the rustup proxy).
    Rustc,
}

impl CompilerKind {
    /// The name identity records keep.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Gcc => "gcc",
            Self::Clang => "clang",
            Self::Rustc => "rustc",
        }
    }

    /// The family a record names (gcc and clang only: rustc keeps its own records).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "gcc" => Some(Self::Gcc),
            "clang" => Some(Self::Clang),
            _ => None,
        }
    }
}

/// The PATH execvp uses when none is set.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Finds the program the way the shell would from `cwd` with the command's `PATH`, skipping
/// hoard itself so a masquerading `gcc -> hoard` link cannot make the wrapper call itself.
pub(crate) fn resolve_program(
    program: &OsStr,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        let path = cwd.join(program);
        return is_executable(&path).then_some(path);
    }
    if program.is_empty() {
        return None;
    }
    let search = env_value(env, "PATH").unwrap_or(OsStr::new(DEFAULT_PATH));
    std::env::split_paths(search)
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| is_executable_file(&m) && !is_hoard_itself(&m))
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| is_executable_file(&m))
}

fn is_executable_file(meta: &std::fs::Metadata) -> bool {
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

/// Whether `candidate` (followed through its symlinks, as `metadata` does) is this very
/// binary: the same device and inode, which costs no path canonicalisation per candidate.
fn is_hoard_itself(candidate: &std::fs::Metadata) -> bool {
    static CURRENT: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    let current = CURRENT.get_or_init(|| {
        let me = std::fs::metadata("/proc/self/exe")
            .or_else(|_| std::fs::metadata(std::env::current_exe()?))
            .ok()?;
        Some((me.dev(), me.ino()))
    });
    *current == Some((candidate.dev(), candidate.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_through_the_commands_path_and_cwd() {
        let env = vec![("PATH".into(), "/nonexistent:/usr/bin".into())];
        assert_eq!(
            resolve_program(OsStr::new("gcc"), Path::new("/"), &env),
            Some(PathBuf::from("/usr/bin/gcc"))
        );
        assert_eq!(
            resolve_program(OsStr::new("bin/sh"), Path::new("/usr"), &env),
            Some(PathBuf::from("/usr/bin/sh"))
        );
        assert_eq!(
            resolve_program(OsStr::new("no-such-cc"), Path::new("/"), &env),
            None
        );
    }

    #[test]
    fn a_gcc_on_path_that_is_this_binary_is_skipped() {
        // A `gcc -> hoard` link early on PATH (masquerade installs) must not make the
        // wrapper run itself; this test binary stands in for hoard.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(std::env::current_exe().unwrap(), dir.path().join("gcc"))
            .unwrap();
        let path = format!("{}:/usr/bin", dir.path().display());
        let env = vec![("PATH".into(), path.into())];
        assert_eq!(
            resolve_program(OsStr::new("gcc"), Path::new("/"), &env),
            Some(PathBuf::from("/usr/bin/gcc"))
        );
    }
}
