//! The path policy both compiler families follow: `HOARD_PATHS` and `HOARD_BASEDIRS`, read
//! from the compile's own environment (as ccache reads `CCACHE_BASEDIR`), so the client and a
//! v1 server running the same command decide alike without any configuration passing between
//! them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::command::env_value;

/// The variable that chooses the [`PathMode`].
pub const PATHS_VAR: &str = "HOARD_PATHS";
/// The variable that lists base directories explicitly (`:`-separated, as `PATH`).
pub const BASEDIRS_VAR: &str = "HOARD_BASEDIRS";

/// How paths under the base directories are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathMode {
    /// Paths under a base directory are made relative in keys, so another checkout or build
    /// directory finds the entry; outputs are still exactly what the compiler writes at this
    /// path (where they would embed a path, the key keeps it).
    #[default]
    Shared,
    /// Every output byte-identical to a plain compile, paths kept in keys, nothing remapped:
    /// hits only at the same paths.
    Exact,
}

/// A `HOARD_PATHS` value that is neither `shared` nor `exact`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HOARD_PATHS={value:?} is neither `shared` nor `exact`")]
pub struct PathModeError {
    /// The value as given.
    pub value: String,
}

impl PathMode {
    /// Parses a `HOARD_PATHS` value; unset or empty is the default, [`PathMode::Shared`].
    pub fn parse(value: Option<&OsStr>) -> Result<Self, PathModeError> {
        match value.map(OsStr::as_bytes) {
            None | Some(b"" | b"shared") => Ok(PathMode::Shared),
            Some(b"exact") => Ok(PathMode::Exact),
            Some(other) => Err(PathModeError {
                value: String::from_utf8_lossy(other).into_owned(),
            }),
        }
    }

    /// The mode the environment `env` asks for. A value hoard does not know gives
    /// [`PathMode::Exact`], the choice that can cost a hit but never an output byte; the
    /// wrapper never fails a build over it (`hoard --show-config` names the bad value).
    pub fn from_env(env: &[(std::ffi::OsString, std::ffi::OsString)]) -> Self {
        Self::parse(env_value(env, PATHS_VAR)).unwrap_or(PathMode::Exact)
    }
}

/// The explicit base directories `HOARD_BASEDIRS` lists in `env`, absolute ones only (a
/// relative entry has no meaning across working directories and is ignored); `None` when the
/// variable is unset, so the caller picks its default.
pub fn explicit_basedirs(env: &[(std::ffi::OsString, std::ffi::OsString)]) -> Option<Vec<PathBuf>> {
    let value = env_value(env, BASEDIRS_VAR)?;
    Some(
        value
            .as_bytes()
            .split(|&b| b == b':')
            .map(|part| Path::new(OsStr::from_bytes(part)))
            .filter(|path| path.is_absolute())
            .map(Path::to_path_buf)
            .collect(),
    )
}

/// The markers of a version-control checkout's root: a directory holding one of these is a
/// source root (`.git` is a file in a second worktree or a submodule).
const VCS_MARKERS: &[&str] = &[".git", ".hg", ".svn"];

/// The nearest ancestor of `dir` (itself included) that is a checkout's root, if any; never
/// `/` or `home` itself, which would make every path on the machine "the project".
/// Memoised per process: a wrapper asks once or twice, a v1 server many times.
pub fn source_root(dir: &Path, home: Option<&Path>) -> Option<PathBuf> {
    static MEMO: std::sync::Mutex<Vec<(PathBuf, Option<PathBuf>)>> =
        std::sync::Mutex::new(Vec::new());
    if let Ok(memo) = MEMO.lock()
        && let Some((_, root)) = memo.iter().find(|(d, _)| d == dir)
    {
        return root.clone();
    }
    let root = dir
        .ancestors()
        .take_while(|a| a.parent().is_some() && Some(*a) != home)
        .find(|a| VCS_MARKERS.iter().any(|m| a.join(m).exists()))
        .map(Path::to_path_buf);
    if let Ok(mut memo) = MEMO.lock() {
        if memo.len() > 256 {
            memo.clear();
        }
        memo.push((dir.to_path_buf(), root.clone()));
    }
    root
}

/// The base directories of a compile run in `cwd` with `env` that reads `source` (absolute):
/// `HOARD_BASEDIRS` when set; otherwise the working directory, its checkout's root and the
/// source's checkout's root (an out-of-tree build directory and a second worktree both
/// work). Empty in [`PathMode::Exact`].
pub fn basedirs(
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    cwd: &Path,
    source: &Path,
) -> Vec<PathBuf> {
    if PathMode::from_env(env) == PathMode::Exact {
        return Vec::new();
    }
    if let Some(explicit) = explicit_basedirs(env) {
        return explicit;
    }
    let home = env_value(env, "HOME").map(Path::new);
    let mut bases = vec![cwd.to_path_buf()];
    let source_dir = source.parent().unwrap_or(cwd);
    for dir in [cwd, source_dir] {
        if let Some(root) = source_root(dir, home)
            && !bases.contains(&root)
        {
            bases.push(root);
        }
    }
    bases.retain(|b| b.parent().is_some() && Some(b.as_path()) != home);
    bases
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn mode_defaults_to_shared_and_an_unknown_value_is_exact() {
        assert_eq!(PathMode::from_env(&env(&[])), PathMode::Shared);
        assert_eq!(
            PathMode::from_env(&env(&[("HOARD_PATHS", "exact")])),
            PathMode::Exact
        );
        assert_eq!(
            PathMode::from_env(&env(&[("HOARD_PATHS", "shared")])),
            PathMode::Shared
        );
        assert_eq!(
            PathMode::from_env(&env(&[("HOARD_PATHS", "Exact!")])),
            PathMode::Exact
        );
        assert!(PathMode::parse(Some(OsStr::new("sometimes"))).is_err());
    }

    #[test]
    fn default_bases_are_the_cwd_and_checkout_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("build")).unwrap();
        std::fs::write(root.join(".git"), "gitdir: elsewhere\n").unwrap();
        let cwd = dir.path().join("build");
        assert_eq!(
            basedirs(&env(&[]), &cwd, &root.join("src/a.c")),
            vec![cwd.clone(), root.clone()]
        );
        assert_eq!(
            basedirs(
                &env(&[("HOARD_PATHS", "exact")]),
                &cwd,
                &root.join("src/a.c")
            ),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            basedirs(
                &env(&[("HOARD_BASEDIRS", "/x")]),
                &cwd,
                &root.join("src/a.c")
            ),
            vec![PathBuf::from("/x")]
        );
    }

    #[test]
    fn basedirs_keep_absolute_entries_only() {
        assert_eq!(explicit_basedirs(&env(&[])), None);
        assert_eq!(
            explicit_basedirs(&env(&[("HOARD_BASEDIRS", "/a/b::rel:/c")])),
            Some(vec![PathBuf::from("/a/b"), PathBuf::from("/c")])
        );
    }
}
