//! The handshake's shared-filesystem probe and the per-directory identity check: how the
//! server learns whether it sees the client's files at all, and whether the directory a
//! request names is the very directory the client saw.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hoard_protocol::{DirIdentity, Probe};

/// A probe file is a nonce: anything longer is not one.
const MAX_PROBE_LEN: u64 = 256;

/// A directory a peer's probe proved this server sees as the peer does: the probe file's
/// directory, as it was when the probe was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProvenDir {
    path: PathBuf,
    identity: DirIdentity,
}

impl ProvenDir {
    /// Whether `dir` is this directory, still.
    pub(crate) fn is(&self, dir: &Path) -> bool {
        dir == self.path && same_directory(dir, self.identity)
    }
}

/// The probe file's directory, if the probe file the client wrote is visible here with the
/// client's nonce in it. It must be a regular file reached without a symlink at its end and,
/// when the peer's uid is known, owned by the peer: the server never reads a file for a
/// client that the client could not have written.
pub(crate) fn seen(probe: &Probe, peer_uid: Option<u32>) -> Option<ProvenDir> {
    if !sees(probe, peer_uid) {
        return None;
    }
    let path = Path::new(std::ffi::OsStr::from_bytes(&probe.path)).parent()?;
    let meta = std::fs::metadata(path).ok()?;
    Some(ProvenDir {
        path: path.to_owned(),
        identity: DirIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        },
    })
}

/// Whether the probe file the client wrote is visible here with the client's nonce in it.
fn sees(probe: &Probe, peer_uid: Option<u32>) -> bool {
    let path = Path::new(std::ffi::OsStr::from_bytes(&probe.path));
    if !path.is_absolute() || probe.nonce.is_empty() {
        return false;
    }
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.len() > MAX_PROBE_LEN || peer_uid.is_some_and(|u| u != meta.uid()) {
        return false;
    }
    let mut found = Vec::new();
    (&file)
        .take(MAX_PROBE_LEN)
        .read_to_end(&mut found)
        .is_ok_and(|_| found == probe.nonce)
}

/// Whether `dir`, as this process sees it, is the directory the client identified. A
/// missing directory is not the same one.
pub(crate) fn same_directory(dir: &Path, identity: DirIdentity) -> bool {
    std::fs::metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.dev() == identity.dev && m.ino() == identity.ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(path: &Path, nonce: &[u8]) -> Probe {
        Probe {
            path: path.as_os_str().as_bytes().to_vec(),
            nonce: nonce.to_vec(),
        }
    }

    #[test]
    fn the_probe_is_seen_only_with_the_same_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("probe");
        std::fs::write(&file, b"nonce-1").unwrap();
        let uid = std::fs::metadata(&file).unwrap().uid();
        assert!(sees(&probe(&file, b"nonce-1"), Some(uid)));
        assert!(!sees(&probe(&file, b"nonce-2"), Some(uid)));
        assert!(!sees(&probe(&file, b"nonce-1"), Some(uid + 1)));
        assert!(!sees(&probe(&dir.path().join("absent"), b"nonce-1"), None));
        assert!(!sees(&probe(Path::new("probe"), b"nonce-1"), None));
    }

    #[test]
    fn a_seen_probe_proves_its_own_directory_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("probe");
        std::fs::write(&file, b"n").unwrap();
        let proven = seen(&probe(&file, b"n"), None).unwrap();
        assert!(proven.is(dir.path()));
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(!proven.is(&sub));
        assert!(seen(&probe(&file, b"other"), None).is_none());
    }

    #[test]
    fn a_symlinked_probe_is_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert!(!sees(&probe(&dir.path().join("link"), b"n"), None));
    }

    #[test]
    fn a_directory_is_itself_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let identity = DirIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        assert!(same_directory(dir.path(), identity));
        let other = DirIdentity {
            ino: identity.ino + 1,
            ..identity
        };
        assert!(!same_directory(dir.path(), other));
        assert!(!same_directory(&dir.path().join("gone"), identity));
    }
}
