//! The symlink install ccache users know: `ln -s $(which hoard) ~/bin/gcc` first on `PATH`
//! makes every `gcc` a cached one. Called through such a link, hoard wraps the next
//! compiler of that name on `PATH` that is not hoard itself; and `hoard gcc` with such a link
//! on `PATH` skips the link the same way rather than calling itself until the process table
//! fills.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// No compiler to hand a masqueraded call to.
#[derive(Debug, thiserror::Error)]
pub enum MasqueradeError {
    /// Every file of that name on `PATH` is hoard: the links would call each other forever.
    #[error(
        "every {name} on PATH is hoard itself ({}): put the directory of the real {name} on \
         PATH after the links' directory, or remove a link",
        display_list(links)
    )]
    Loop {
        /// The compiler's name.
        name: String,
        /// The links found, in `PATH` order.
        links: Vec<PathBuf>,
    },
    /// Called as a compiler that is nowhere on `PATH`.
    #[error(
        "called as {name}, but no {name} is on PATH to wrap: hoard was linked as {name} and \
         the real {name} is not installed, or PATH does not reach it"
    )]
    NotFound {
        /// The compiler's name.
        name: String,
    },
}

fn display_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The compiler name hoard was called by, when `argv0` is a link named like one (`gcc`,
/// `/home/u/bin/clang++`, `x86_64-linux-gnu-gcc-12`): any name but hoard's own (`hoard`,
/// `hoard-server`, `hoard.exe`-like variants), as ccache decides.
pub fn masqueraded_name(argv0: &OsStr) -> Option<&OsStr> {
    let name = Path::new(argv0).file_name()?;
    if name.as_bytes().starts_with(b"hoard") {
        None
    } else {
        Some(name)
    }
}

/// The compiler a call through a link named `name` wraps: the first executable `name` on
/// `search_path` (a `PATH` value) that is not `myself` (hoard's own executable).
pub fn next_compiler(
    name: &OsStr,
    search_path: Option<&OsStr>,
    myself: &Path,
) -> Result<PathBuf, MasqueradeError> {
    let me = FileId::of(myself);
    let mut links = Vec::new();
    for candidate in candidates(name, search_path) {
        if me.is_some() && FileId::of(&candidate) == me {
            links.push(candidate);
        } else {
            return Ok(candidate);
        }
    }
    let name = name.to_string_lossy().into_owned();
    if links.is_empty() {
        Err(MasqueradeError::NotFound { name })
    } else {
        Err(MasqueradeError::Loop { name, links })
    }
}

/// For `hoard NAME args`: `Some` when the first `NAME` on `search_path` is hoard itself (a
/// masquerade link is on `PATH` too), holding the compiler past the links to run instead;
/// `None` when `NAME` is a path or the first match is a real compiler, which then runs as
/// named.
pub fn past_links(
    name: &OsStr,
    search_path: Option<&OsStr>,
    myself: &Path,
) -> Option<Result<PathBuf, MasqueradeError>> {
    if name.as_bytes().contains(&b'/') {
        return None;
    }
    let me = FileId::of(myself)?;
    let first = candidates(name, search_path).next()?;
    (FileId::of(&first) == Some(me)).then(|| next_compiler(name, search_path, myself))
}

/// Every executable regular file named `name` in the directories of `search_path`, in order
/// (an empty entry is the current directory, as the shell takes it).
fn candidates<'a>(
    name: &'a OsStr,
    search_path: Option<&'a OsStr>,
) -> impl Iterator<Item = PathBuf> + 'a {
    search_path
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(move |dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(name)
            } else {
                dir.join(name)
            }
        })
        .filter(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A file as the kernel names it, so a symlink, a hard link and the file itself compare
/// equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// A `PATH` value of `dirs`, for tests and callers building one.
pub fn search_path(dirs: &[&Path]) -> OsString {
    std::env::join_paths(dirs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn executable(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_link_named_like_a_compiler_is_a_masquerade_and_hoard_itself_is_not() {
        for name in [
            "gcc",
            "/home/u/bin/g++",
            "clang++",
            "cc",
            "x86_64-linux-gnu-gcc-12",
        ] {
            assert!(masqueraded_name(OsStr::new(name)).is_some(), "{name}");
        }
        for name in ["hoard", "/usr/local/bin/hoard", "hoard-server"] {
            assert!(masqueraded_name(OsStr::new(name)).is_none(), "{name}");
        }
    }

    #[test]
    fn the_next_compiler_skips_every_link_to_hoard() {
        let dir = tempfile::tempdir().unwrap();
        let (links, more_links, real) = (
            dir.path().join("links"),
            dir.path().join("more"),
            dir.path().join("real"),
        );
        for d in [&links, &more_links, &real] {
            std::fs::create_dir(d).unwrap();
        }
        let hoard = dir.path().join("hoard");
        executable(&hoard);
        symlink(&hoard, links.join("gcc")).unwrap();
        std::fs::hard_link(&hoard, more_links.join("gcc")).unwrap();
        executable(&real.join("gcc"));
        // Not executable: skipped as the shell would.
        std::fs::write(links.join("cc"), "").unwrap();
        let path = search_path(&[&links, &more_links, &real]);
        assert_eq!(
            next_compiler(OsStr::new("gcc"), Some(&path), &hoard).unwrap(),
            real.join("gcc")
        );
        assert_eq!(
            past_links(OsStr::new("gcc"), Some(&path), &hoard)
                .unwrap()
                .unwrap(),
            real.join("gcc")
        );
        let only_links = search_path(&[&links, &more_links]);
        let err = next_compiler(OsStr::new("gcc"), Some(&only_links), &hoard).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&links.join("gcc").display().to_string()),
            "{text}"
        );
        assert!(
            text.contains(&more_links.join("gcc").display().to_string()),
            "{text}"
        );
        assert!(matches!(
            next_compiler(OsStr::new("cc"), Some(&path), &hoard),
            Err(MasqueradeError::NotFound { .. })
        ));
    }

    #[test]
    fn a_real_compiler_first_on_path_is_left_as_named() {
        let dir = tempfile::tempdir().unwrap();
        let hoard = dir.path().join("hoard");
        executable(&hoard);
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        executable(&real.join("gcc"));
        let path = search_path(&[&real]);
        assert!(past_links(OsStr::new("gcc"), Some(&path), &hoard).is_none());
        assert!(past_links(OsStr::new("./gcc"), Some(&path), &hoard).is_none());
    }
}
