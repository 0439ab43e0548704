//! The files a split entry keeps beside its stub (`<key hex>.<16 hex>`, see
//! [`crate::entry::split`]): writing them, finding them, and trusting them on a hit.
//!
//! A hit checks each file's size and, the first time this process sees the file as it is
//! now, its blake3. The identity it saw (device, inode, size, modification time) is then
//! remembered: a file written here, or read and verified here, is not hashed again until
//! something changes it. Anything that writes into the file changes its modification time,
//! including a build tool writing through a hard link this store handed out.

use std::collections::HashMap;
use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::entry::EntryError;
use crate::entry::split::{BesideFile, BesideFiles, StubFile};

/// Remembered identities are dropped wholesale past this many, which only costs hashing.
const MAX_REMEMBERED: usize = 1 << 16;

/// What a file looked like when its content was last known to be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// Files beside stubs whose content this process knows to be right.
#[derive(Debug, Default)]
pub(super) struct Verified {
    stamps: Mutex<HashMap<PathBuf, Stamp>>,
}

impl Verified {
    /// Remembers `path` as it is now, its content known right.
    pub(super) fn remember(&self, path: &Path) {
        if let Ok(meta) = fs::metadata(path) {
            self.insert(path, Stamp::of(&meta));
        }
    }

    fn insert(&self, path: &Path, stamp: Stamp) {
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        if stamps.len() >= MAX_REMEMBERED {
            stamps.clear();
        }
        stamps.insert(path.to_path_buf(), stamp);
    }

    fn knows(&self, path: &Path, stamp: Stamp) -> bool {
        self.stamps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            == Some(&stamp)
    }

    fn forget(&self, path: &Path) {
        self.stamps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path);
    }
}

/// The file `name` beside the stub at `stub`.
pub(super) fn beside_path(stub: &Path, name: &str) -> PathBuf {
    let mut path = stub.as_os_str().to_owned();
    path.push(".");
    path.push(name);
    PathBuf::from(path)
}

/// Whether `name` is a file beside a stub (`<64 hex>.<16 hex>`), and whose.
pub(super) fn stub_name_of(name: &str) -> Option<&str> {
    let (key, suffix) = name.split_once('.')?;
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (key.len() == 64 && suffix.len() == 16 && hex(key) && hex(suffix)).then_some(key)
}

/// Writes one file beside a stub: a temporary file renamed into place, with its mode.
pub(super) fn write(stub: &Path, file: &BesideFile<'_>, temp_prefix: &str) -> io::Result<PathBuf> {
    let dir = stub.parent().unwrap_or(Path::new("."));
    let path = beside_path(stub, &file.name);
    let mut tmp = tempfile::Builder::new()
        .prefix(temp_prefix)
        .tempfile_in(dir)?;
    tmp.write_all(file.data)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(file.mode))?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// Every file beside the stub at `stub`, found by listing its directory: what removal uses,
/// since a damaged stub cannot say.
pub(super) fn list(stub: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(key)) = (stub.parent(), stub.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(stub_name_of)
                .is_some_and(|k| k == key)
        })
        .map(|e| e.path())
        .collect()
}

/// [`BesideFiles`] for one stub of a disk store.
pub(super) struct Beside<'a> {
    pub stub: &'a Path,
    pub verified: &'a Verified,
}

impl BesideFiles for Beside<'_> {
    fn path(&self, name: &str) -> PathBuf {
        beside_path(self.stub, name)
    }

    fn verify(&self, path: &Path, file: &StubFile<'_>) -> Result<(), EntryError> {
        let corrupt = |reason: String| EntryError::Corrupt {
            reason: format!("{}: {reason}", path.display()),
        };
        let meta =
            fs::metadata(path).map_err(|e| corrupt(format!("file beside the entry: {e}")))?;
        if meta.len() != file.size {
            return Err(corrupt(format!(
                "{} bytes, the entry says {}",
                meta.len(),
                file.size
            )));
        }
        let stamp = Stamp::of(&meta);
        if self.verified.knows(path, stamp) {
            return Ok(());
        }
        let mut hasher = blake3::Hasher::new();
        let read = File::open(path).and_then(|f| hasher.update_reader(f).map(|_| ()));
        read.map_err(|e| corrupt(format!("reading: {e}")))?;
        if hasher.finalize().as_bytes() != &file.blake3 {
            self.verified.forget(path);
            return Err(corrupt("blake3 mismatch".to_owned()));
        }
        // The identity from before the read: a change during it moved the mtime, so the file
        // is hashed again next time.
        self.verified.insert(path, stamp);
        Ok(())
    }
}
