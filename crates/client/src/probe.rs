//! The client's half of the shared-filesystem probe: a file in `HOARD_DIR` holding a random
//! nonce, named in every `Hello`. A server that reads the same nonce at the same path sees at
//! least that directory as we do; one that does not (another mount namespace with its own
//! `HOARD_DIR`, another machine) gets every entry inline.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hoard_protocol::Probe;

/// The probe file's name in the state directory.
pub const PROBE_FILE: &str = "probe";

/// The probe to send: the nonce file in `state_dir`, created on first use and then reused, so
/// a wrapper pays one small read for it. `None` when the file can be neither read nor made:
/// the server then assumes paths are shared and checks each directory on its own.
pub(crate) fn nonce_file(state_dir: &Path) -> Option<Probe> {
    let path = state_dir.join(PROBE_FILE);
    let nonce = match std::fs::read(&path) {
        Ok(nonce) if nonce.len() == NONCE_LEN => nonce,
        // Damaged: replaced (a wrapper racing on this rare repair may go inline once).
        Ok(_) => create(state_dir, &path, Existing::Replace)?,
        Err(_) => create(state_dir, &path, Existing::Keep)?,
    };
    Some(Probe {
        path: path.as_os_str().as_bytes().to_vec(),
        nonce,
    })
}

/// Bytes of a nonce (32 hex digits).
const NONCE_LEN: usize = 32;

/// What [`create`] does when a probe file is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Keep it and use its nonce.
    Keep,
    /// Replace it.
    Replace,
}

/// Writes a fresh nonce atomically (complete, or not at all). Where there was no file, the
/// first of several wrappers racing to make one wins and the others use its nonce: were each
/// to put its own in place, every wrapper but the last would name a nonce the file no longer
/// holds, the server would deny sharing a filesystem with it, and its transfers would go
/// inline for nothing (the first compiles in a fresh cache directory meet this).
fn create(state_dir: &Path, path: &Path, existing: Existing) -> Option<Vec<u8>> {
    // A 0700 directory when hoard makes it; the temporary file below is 0600.
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .ok()?;
    let nonce = random_hex()?;
    let tmp = tempfile::NamedTempFile::new_in(state_dir).ok()?;
    std::fs::write(tmp.path(), &nonce).ok()?;
    match existing {
        Existing::Replace => tmp.persist(path).ok().map(|_| nonce),
        Existing::Keep => match tmp.persist_noclobber(path) {
            Ok(_) => Some(nonce),
            Err(_) => std::fs::read(path).ok().filter(|n| n.len() == NONCE_LEN),
        },
    }
}

/// 16 random bytes as 32 hex digits.
fn random_hex() -> Option<Vec<u8>> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    Some(
        bytes
            .iter()
            .flat_map(|b| {
                let hex = b"0123456789abcdef";
                [hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_is_made_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = nonce_file(&dir.path().join("state")).unwrap();
        assert_eq!(first.nonce.len(), 32);
        assert_eq!(
            std::fs::read(dir.path().join("state").join(PROBE_FILE)).unwrap(),
            first.nonce
        );
        assert_eq!(nonce_file(&dir.path().join("state")).unwrap(), first);
    }

    #[test]
    fn two_state_directories_get_different_nonces() {
        let dir = tempfile::tempdir().unwrap();
        let a = nonce_file(&dir.path().join("a")).unwrap();
        let b = nonce_file(&dir.path().join("b")).unwrap();
        assert_ne!(a.nonce, b.nonce);
    }

    #[test]
    fn wrappers_racing_to_make_the_nonce_all_name_the_one_that_stays() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state");
            let named: Vec<Probe> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| nonce_file(&state).unwrap()))
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let kept = std::fs::read(state.join(PROBE_FILE)).unwrap();
            assert!(
                named.iter().all(|p| p.nonce == kept),
                "{named:?} / {kept:?}"
            );
        }
    }

    #[test]
    fn a_damaged_nonce_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROBE_FILE), b"short").unwrap();
        let probe = nonce_file(dir.path()).unwrap();
        assert_eq!(probe.nonce.len(), NONCE_LEN);
        assert_eq!(
            std::fs::read(dir.path().join(PROBE_FILE)).unwrap(),
            probe.nonce
        );
    }
}
