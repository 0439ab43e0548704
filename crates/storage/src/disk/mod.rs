//! The local disk store: one file per entry under `dir/<first 2 hex>/<full hex key>`, a size
//! limit, and least-recently-used eviction by file mtime. A raw entry with large files is
//! kept split ([`crate::entry::split`]): a small stub under the key and each large file
//! beside it, so a hit links or kernel-copies them ([`DiskStore::deliver`]).
//!
//! Several processes may share one directory. Every write is a temporary file in the entry's
//! own subdirectory renamed over the entry, so a reader sees a whole old entry, a whole new
//! one or none; a reader that has opened a file keeps reading it even if it is evicted. The
//! processes count the directory's size together in a `ledger` file, so the limit holds for
//! the directory, not per process; eviction rescans the directory, which is the truth.
//!
//! Here: opening, reading, writing and delivering entries. Beside it: `beside` (a split
//! entry's large files and the memo of those checked), `evict` (the LRU rounds and their
//! lock), `ledger` (the shared size count) and `scan` (what the directory holds).

mod beside;
mod evict;
mod ledger;
mod maintenance;
mod scan;

pub use maintenance::Removed;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::task::JoinHandle;

use crate::entry::{self, EntryError, Extracted, split};
use crate::{CacheKey, OutputPath, Storage, StorageError, run_blocking, run_sized};
use ledger::{Ledger, Totals};
use scan::scan;

/// Temporary files start with this, so eviction can tell them from entries.
const TEMP_PREFIX: &str = ".tmp-";

/// The local disk LRU store. Cheap to clone; clones share their counters.
#[derive(Clone)]
pub struct DiskStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    max_size: u64,
    ledger: Ledger,
    /// Files of this size or more are kept beside their entry's stub.
    split_min: u64,
    verified: beside::Verified,
    evicting: AtomicBool,
    eviction: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.inner.dir)
            .field("max_size", &self.inner.max_size)
            .field("size", &self.size_bytes())
            .field("entries", &self.entry_count())
            .finish_non_exhaustive()
    }
}

impl DiskStore {
    /// Opens (creating it if needed) the store in `dir`, holding at most `max_size` bytes.
    /// Scans the directory once to learn its current size.
    pub fn open(dir: &Path, max_size: u64) -> Result<DiskStore, StorageError> {
        Self::open_splitting(dir, max_size, split::SPLIT_MIN_SIZE)
    }

    /// [`DiskStore::open`], keeping files of `split_min` bytes or more beside their entry's
    /// stub (`u64::MAX`: every entry whole).
    pub fn open_splitting(
        dir: &Path,
        max_size: u64,
        split_min: u64,
    ) -> Result<DiskStore, StorageError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let scan = scan(dir)?;
        Ok(DiskStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                max_size,
                ledger: Ledger::open(dir, scan.totals()),
                split_min,
                verified: beside::Verified::default(),
                evicting: AtomicBool::new(false),
                eviction: Mutex::new(None),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The bytes held, as the processes sharing the directory count them together (exact
    /// after a rescan, and between rescans unless a writer died mid-put).
    pub fn size_bytes(&self) -> u64 {
        self.inner.ledger.read().bytes
    }

    /// The size limit.
    pub fn max_size(&self) -> u64 {
        self.inner.max_size
    }

    /// The number of entries held, counted like [`DiskStore::size_bytes`].
    pub fn entry_count(&self) -> u64 {
        self.inner.ledger.read().entries
    }

    /// Whether an entry is stored under `key`, without reading it or refreshing its recency.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.inner.entry_path(key).is_file()
    }

    /// Writes the outputs of the entry under `key` onto `outputs` straight from the store:
    /// a split entry's large files by a hard link when `link` is set (else, or where a link
    /// cannot be made, by a kernel-side copy), after checking them (`beside`); a whole
    /// entry by extracting it. `None`: nothing stored under `key`. The inner result is the
    /// entry's verdict: a damaged or mismatched entry is an [`EntryError`] for the caller
    /// to judge, as for bytes it got.
    pub async fn deliver(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        link: bool,
    ) -> Result<Option<Result<Extracted, EntryError>>, StorageError> {
        let path = self.inner.entry_path(key);
        let Some(bytes) = read_stored(&path).await? else {
            return Ok(None);
        };
        let work = split::stored_size(&bytes).unwrap_or(bytes.len() as u64);
        let inner = Arc::clone(&self.inner);
        let outputs = outputs.to_vec();
        run_sized("deliver entry", work, move || {
            Ok(Some(inner.deliver_bytes(&path, &bytes, &outputs, link)))
        })
        .await
    }
}

#[async_trait]
impl Storage for DiskStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.inner.entry_path(key);
        let Some(bytes) = read_stored(&path).await? else {
            return Ok(None);
        };
        let Some(stored) = split::stored_size(&bytes) else {
            return Ok(Some(bytes));
        };
        let inner = Arc::clone(&self.inner);
        run_sized("join entry", stored, move || inner.join(&path, &bytes)).await
    }

    async fn put(&self, key: &CacheKey, entry: Vec<u8>) -> Result<(), StorageError> {
        self.put_shared(key, bytes::Bytes::from(entry)).await
    }

    async fn remove(&self, key: &CacheKey) -> Result<(), StorageError> {
        let inner = Arc::clone(&self.inner);
        let key = *key;
        run_blocking("remove entry", move || inner.remove_entry(&key)).await
    }

    async fn deliver(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        link: bool,
    ) -> Result<Option<crate::Delivery>, StorageError> {
        Ok(DiskStore::deliver(self, key, outputs, link)
            .await?
            .map(|result| crate::Delivery { result, tier: None }))
    }
}

impl DiskStore {
    /// [`Storage::put`] of bytes the caller keeps a handle on (a backfill, whose bytes are
    /// also queued for other tiers and returned), without copying them.
    pub(crate) async fn put_shared(
        &self,
        key: &CacheKey,
        entry: bytes::Bytes,
    ) -> Result<(), StorageError> {
        if entry.len() as u64 > self.inner.max_size {
            tracing::debug!(%key, size = entry.len(), max = self.inner.max_size,
                "entry larger than the whole store, not stored");
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        let key = *key;
        let totals = run_blocking("write entry", move || inner.write_entry(&key, &entry)).await?;
        // The size was raised before this check and the evictor re-checks after clearing its
        // flag, so an over-limit store always has an eviction coming.
        if totals.bytes > self.inner.max_size {
            self.start_eviction();
        }
        Ok(())
    }

    /// Reads the entry under `key` straight from a store's directory, without opening the
    /// store (no scan, no size accounting), refreshing its recency as a read through the
    /// store does. For a process that shares a server's directory and only reads (a client
    /// looking up a manifest); it never writes or evicts.
    pub fn peek(dir: &Path, key: &CacheKey) -> Result<Option<Vec<u8>>, StorageError> {
        let hex = key.to_hex();
        read_entry(&dir.join(&hex[..2]).join(hex))
    }

    /// Writes the outputs of the entry under `key` straight from a store's directory, as
    /// [`DiskStore::peek`] reads (no scan, no accounting, never a write to the store): a whole
    /// entry is extracted, a split one delivered with the files beside its stub copied, never
    /// linked (a hard link is the store's own to make). Everything is verified before any
    /// output is renamed into place; a file beside a stub is hashed whole, since this process
    /// keeps no memory of files it verified before. `Ok(None)` when there is no entry; the
    /// inner result is the entry's verdict, as [`DiskStore::deliver`] gives it.
    pub fn peek_deliver(
        dir: &Path,
        key: &CacheKey,
        outputs: &[OutputPath],
    ) -> Result<Option<Result<Extracted, EntryError>>, StorageError> {
        let hex = key.to_hex();
        let path = dir.join(&hex[..2]).join(hex);
        let Some(bytes) = read_entry(&path)? else {
            return Ok(None);
        };
        let verified = beside::Verified::default();
        Ok(Some(deliver_at(&path, &bytes, outputs, &verified, false)))
    }
}

/// Writes the entry or stub `bytes`, read from `path`, onto `outputs`: a whole entry is
/// extracted, a split one delivered from the files beside the stub (hard-linked when `link`,
/// else copied), those `verified` remembers as already hashed not hashed again.
fn deliver_at(
    path: &Path,
    bytes: &[u8],
    outputs: &[OutputPath],
    verified: &beside::Verified,
    link: bool,
) -> Result<Extracted, EntryError> {
    if !split::is_split(bytes) {
        return entry::extract_with_digests(bytes, outputs);
    }
    let stub = split::parse(bytes)?;
    let files = beside::Beside {
        stub: path,
        verified,
    };
    let delivered = split::deliver(&stub, outputs, &files, link)?;
    for source in &delivered.linked {
        // A linked output shares its inode, and its mtime, with the stored file: made now,
        // as a copied output's is, so `make` does not see it as older than its sources. The
        // new mtime is this process's own doing, so the file stays trusted.
        let touched = File::open(source).and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = touched {
            tracing::debug!(path = %source.display(), error = %e, "cannot refresh linked output mtime");
        }
        verified.remember(source);
    }
    Ok(delivered.extracted)
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { op, path, source }
}

/// The file at `path` (an entry or a stub), refreshing its recency; `None` when there is
/// none. Opened and sized here; a small file (most objects, every stub) is read here too, a
/// large one on the blocking pool.
async fn read_stored(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let path = path.to_path_buf();
    run_sized("read entry", size, move || read_open_entry(file, &path)).await
}

/// An entry read by a process outside the store ([`DiskStore::peek`]): a client that serves
/// its own hits. It reads only what its own uid's server could have written: a regular file
/// (not followed through a link) of this uid that no other user may write. Anything else is
/// refused, and the caller asks its server instead.
fn read_entry(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let meta = file.metadata().map_err(io_err("stat", path))?;
    let own = rustix::process::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != own || meta.mode() & 0o022 != 0 {
        let why = format!(
            "not a regular file of uid {own} that only it may write (uid {}, mode {:o})",
            meta.uid(),
            meta.mode() & 0o7777
        );
        return Err(io_err("refuse to read", path)(io::Error::other(why)));
    }
    read_open_entry(file, path)
}

fn read_open_entry(mut file: File, path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let mut entry = Vec::new();
    file.read_to_end(&mut entry).map_err(io_err("read", path))?;
    // The mtime is the recency eviction goes by; failing to bump it only makes this entry
    // look older than it is.
    if let Err(e) = file.set_modified(SystemTime::now()) {
        tracing::debug!(path = %path.display(), error = %e, "cannot refresh entry mtime");
    }
    Ok(Some(entry))
}

impl Inner {
    fn entry_path(&self, key: &CacheKey) -> PathBuf {
        let hex = key.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Writes an entry (split, when it has large files: those first, the stub last) and
    /// returns the directory's totals with it counted.
    fn write_entry(&self, key: &CacheKey, entry: &[u8]) -> Result<Totals, StorageError> {
        let path = self.entry_path(key);
        let sub = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(sub).map_err(io_err("create directory", sub))?;
        let split = split::split(entry, self.split_min).unwrap_or_else(|e| {
            tracing::debug!(%key, error = %e, "entry not split, stored whole");
            None
        });
        let old = stored_size_at(&path);
        let old_beside = match old {
            Some((_, true)) => beside::list(&path),
            _ => Vec::new(),
        };
        let (bytes, stored, mut kept) = match &split {
            Some(split) => {
                let mut written = Vec::with_capacity(split.beside.len());
                for file in &split.beside {
                    let at = beside::write(&path, file, TEMP_PREFIX)
                        .map_err(io_err("write beside", &path))?;
                    self.verified.remember(&at);
                    written.push(at);
                }
                let stored = split::stored_size(&split.stub).unwrap_or(0);
                (&split.stub[..], stored, written)
            }
            None => (entry, entry.len() as u64, Vec::new()),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(sub)
            .map_err(io_err("create a temporary file in", sub))?;
        tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
        tmp.persist(&path)
            .map_err(|e| io_err("rename onto", &path)(e.error))?;
        kept.sort();
        for stale in old_beside {
            if kept.binary_search(&stale).is_err() {
                let _ = fs::remove_file(&stale);
            }
        }
        Ok(self.ledger.update(|now| Totals {
            bytes: (now.bytes + stored).saturating_sub(old.map_or(0, |(size, _)| size)),
            entries: now.entries + u64::from(old.is_none()),
        }))
    }

    /// Writes a split entry's outputs, or extracts a whole one; see [`DiskStore::deliver`].
    fn deliver_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        outputs: &[OutputPath],
        link: bool,
    ) -> Result<Extracted, EntryError> {
        deliver_at(path, bytes, outputs, &self.verified, link)
    }

    /// The raw entry a split one stands for, its files read from beside the stub. A stub
    /// that is damaged or lost a file is removed, and is a miss.
    fn join(&self, path: &Path, stub: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let joined = split::parse(stub).map_err(Unusable::Stub).and_then(|stub| {
            stub.join(|name, _| fs::read(beside::beside_path(path, name)))
                .map_err(Unusable::File)
        });
        match joined {
            Ok(entry) => Ok(Some(entry)),
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "removing unusable split entry");
                self.remove_path(path)?;
                Ok(None)
            }
        }
    }

    fn remove_entry(&self, key: &CacheKey) -> Result<(), StorageError> {
        self.remove_path(&self.entry_path(key))
    }

    fn remove_path(&self, path: &Path) -> Result<(), StorageError> {
        let Some((size, _)) = stored_size_at(path) else {
            return Ok(());
        };
        let beside = beside::list(path);
        match fs::remove_file(path) {
            Ok(()) => {
                for file in beside {
                    let _ = fs::remove_file(file);
                }
                self.ledger.update(|now| Totals {
                    bytes: now.bytes.saturating_sub(size),
                    entries: now.entries.saturating_sub(1),
                });
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", path)(e)),
        }
    }
}

/// Why a split entry cannot be joined (and is removed).
#[derive(Debug, thiserror::Error)]
enum Unusable {
    /// The stub does not parse.
    #[error(transparent)]
    Stub(EntryError),
    /// A file beside it cannot be read.
    #[error(transparent)]
    File(io::Error),
}

/// The bytes the entry at `path` occupies (a split entry's stub and files together), and
/// whether it is split; `None` when there is none.
fn stored_size_at(path: &Path) -> Option<(u64, bool)> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut prefix = [0u8; 64];
    let mut filled = 0;
    while filled < prefix.len() {
        match file.read(&mut prefix[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    Some(match split::stored_size(&prefix[..filled]) {
        Some(stored) => (stored, true),
        None => (len, false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_outside_the_store_reads_only_entries_no_other_user_may_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1000).unwrap();
        let key = CacheKey::from_bytes([7; 32]);
        store.put(&key, b"entry".to_vec()).await.unwrap();
        assert_eq!(
            DiskStore::peek(dir.path(), &key).unwrap(),
            Some(b"entry".to_vec())
        );
        let hex = key.to_hex();
        let path = dir.path().join(&hex[..2]).join(&hex);
        // Writable by others: anyone could have planted it.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(DiskStore::peek(dir.path(), &key).is_err());
        // A link in its place is not followed.
        fs::remove_file(&path).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, b"entry").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(DiskStore::peek(dir.path(), &key).is_err());
        assert!(DiskStore::peek_deliver(dir.path(), &key, &[]).is_err());
    }

    #[test]
    fn open_counts_existing_entries_and_ignores_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::from_bytes([0xab; 32]);
        let sub = dir.path().join("ab");
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(key.to_hex()), b"12345").unwrap();
        fs::write(sub.join("README"), b"not an entry").unwrap();
        fs::write(dir.path().join("stats.json"), b"{}").unwrap();
        let store = DiskStore::open(dir.path(), 1000).unwrap();
        assert_eq!(store.size_bytes(), 5);
        assert_eq!(store.entry_count(), 1);
    }

    #[tokio::test]
    async fn put_replacing_an_entry_counts_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1000).unwrap();
        let key = CacheKey::from_bytes([1; 32]);
        store.put(&key, vec![0; 10]).await.unwrap();
        store.put(&key, vec![0; 20]).await.unwrap();
        assert_eq!(store.size_bytes(), 20);
        assert_eq!(store.entry_count(), 1);
        store.remove(&key).await.unwrap();
        store.remove(&key).await.unwrap();
        assert_eq!(store.size_bytes(), 0);
        assert_eq!(store.entry_count(), 0);
        assert_eq!(store.get(&key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_store_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 10).unwrap();
        let key = CacheKey::from_bytes([2; 32]);
        store.put(&key, vec![0; 11]).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
        assert_eq!(store.size_bytes(), 0);
    }
}
