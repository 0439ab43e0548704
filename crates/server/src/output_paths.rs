//! The rules a client's output path must pass before the server touches it. The server acts
//! with its own uid on paths a client names, so it must never be led to a file the client
//! could not write or read itself: paths are absolute and normalised, no directory on the way
//! is a symlink, and what exists there belongs to the peer.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why an output path was refused. Each says which path and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathRefused {
    /// The path does not start at `/`.
    #[error("output path is not absolute: {0}")]
    Relative(PathBuf),
    /// The path has `.`, `..` or empty components.
    #[error("output path is not normalised (has '.', '..' or '//'): {0}")]
    NotNormalised(PathBuf),
    /// A directory on the way is a symlink.
    #[error("output path goes through a symlink at {link}: {path}")]
    ThroughSymlink {
        /// The requested path.
        path: PathBuf,
        /// The symlink found on the way.
        link: PathBuf,
    },
    /// The output's directory does not exist or is not a directory.
    #[error("output directory is missing or not a directory: {0}")]
    NoDirectory(PathBuf),
    /// The directory or the existing file belongs to another user.
    #[error("output path {path} is owned by uid {owner}, not by the client (uid {peer})")]
    NotOwned {
        /// The file or directory whose owner is wrong.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The peer's uid.
        peer: u32,
    },
    /// The existing file at the path is not a regular file.
    #[error("output path exists and is not a regular file: {0}")]
    NotRegularFile(PathBuf),
}

/// Checks `path` for an operation on behalf of a peer with uid `peer_uid`. The output's
/// directory must exist, be a real directory owned by the peer, and be reached without
/// symlinks; an existing file at `path` must be a regular file owned by the peer.
pub fn check(path: &Path, peer_uid: u32) -> Result<(), PathRefused> {
    let bytes = path.as_os_str().as_bytes();
    let Some(rest) = bytes.strip_prefix(b"/") else {
        return Err(PathRefused::Relative(path.to_owned()));
    };
    if rest
        .split(|b| *b == b'/')
        .any(|part| part.is_empty() || part == b"." || part == b"..")
    {
        return Err(PathRefused::NotNormalised(path.to_owned()));
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    for ancestor in parent.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let meta = std::fs::symlink_metadata(ancestor)
            .map_err(|_| PathRefused::NoDirectory(parent.to_owned()))?;
        if meta.file_type().is_symlink() {
            return Err(PathRefused::ThroughSymlink {
                path: path.to_owned(),
                link: ancestor.to_owned(),
            });
        }
        if !meta.is_dir() {
            return Err(PathRefused::NoDirectory(parent.to_owned()));
        }
        if ancestor == parent && meta.uid() != peer_uid {
            return Err(PathRefused::NotOwned {
                path: parent.to_owned(),
                owner: meta.uid(),
                peer: peer_uid,
            });
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(PathRefused::ThroughSymlink {
            path: path.to_owned(),
            link: path.to_owned(),
        }),
        Ok(meta) if !meta.is_file() => Err(PathRefused::NotRegularFile(path.to_owned())),
        Ok(meta) if meta.uid() != peer_uid => Err(PathRefused::NotOwned {
            path: path.to_owned(),
            owner: meta.uid(),
            peer: peer_uid,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn own_uid(dir: &Path) -> u32 {
        std::fs::metadata(dir).unwrap().uid()
    }

    #[test]
    fn relative_and_unnormalised_paths_are_refused() {
        assert!(matches!(
            check(Path::new("out.o"), 0),
            Err(PathRefused::Relative(_))
        ));
        for p in ["/tmp/../etc/x.o", "/tmp/./x.o", "/tmp//x.o", "/tmp/x.o/"] {
            assert!(
                matches!(check(Path::new(p), 0), Err(PathRefused::NotNormalised(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn a_directory_symlink_on_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let uid = own_uid(dir.path());
        assert!(check(&real.join("x.o"), uid).is_ok());
        assert!(matches!(
            check(&dir.path().join("link/x.o"), uid),
            Err(PathRefused::ThroughSymlink { .. })
        ));
    }

    #[test]
    fn a_symlink_at_the_target_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("x.o")).unwrap();
        assert!(matches!(
            check(&dir.path().join("x.o"), own_uid(dir.path())),
            Err(PathRefused::ThroughSymlink { .. })
        ));
    }

    #[test]
    fn another_users_directory_or_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uid = own_uid(dir.path());
        assert!(matches!(
            check(&dir.path().join("x.o"), uid + 1),
            Err(PathRefused::NotOwned { .. })
        ));
        std::fs::write(dir.path().join("x.o"), b"").unwrap();
        assert!(check(&dir.path().join("x.o"), uid).is_ok());
    }

    #[test]
    fn a_missing_directory_is_refused() {
        assert!(matches!(
            check(Path::new("/nonexistent-hoard-dir/x.o"), 0),
            Err(PathRefused::NoDirectory(_))
        ));
    }
}
