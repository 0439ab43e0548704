//! What a user asks of the local store by hand, as ccache's `-C`, `-c` and
//! `--evict-older-than` do: empty it, bring it within its limit now, or drop what has not
//! been used for a while. Each works on the directory under the eviction lock, as eviction
//! does, so it is safe beside a running server and other processes sharing the directory;
//! the shared ledger is corrected by what was removed.

use std::fs;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ledger::Totals;
use super::scan::{FileInfo, scan};
use super::{DiskStore, Inner};
use crate::{StorageError, run_blocking};

/// What a maintenance command removed, and what the store holds after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Entries removed (a split entry with its files beside it is one).
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Entries left.
    pub entries_left: u64,
    /// Bytes left.
    pub bytes_left: u64,
}

impl DiskStore {
    /// Removes every entry and every temporary file (`hoard --clear`). Entries stored while
    /// it runs may survive.
    pub async fn clear(&self) -> Result<Removed, StorageError> {
        let inner = Arc::clone(&self.inner);
        run_blocking("clear", move || inner.remove_where(|_| true)).await
    }

    /// Removes every entry not used (stored or hit) for `age` (`hoard --evict-older-than`):
    /// a hit refreshes an entry's modification time, which is what eviction orders by.
    pub async fn evict_older_than(&self, age: Duration) -> Result<Removed, StorageError> {
        let inner = Arc::clone(&self.inner);
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        run_blocking("evict older", move || {
            inner.remove_where(|file| file.mtime < cutoff)
        })
        .await
    }

    /// Brings the store within its limit now and clears temporary files left by writers
    /// that died (`hoard --cleanup`): one eviction round, reporting what it removed.
    pub async fn cleanup(&self) -> Result<Removed, StorageError> {
        let before = self.inner.ledger.read();
        self.evict().await?;
        let after = self.inner.ledger.read();
        Ok(Removed {
            entries: before.entries.saturating_sub(after.entries),
            bytes: before.bytes.saturating_sub(after.bytes),
            entries_left: after.entries,
            bytes_left: after.bytes,
        })
    }
}

impl Inner {
    /// Removes every entry `doomed` picks, every temporary file (any age: a maintenance
    /// command is run by hand, not under a build's writers) and rescans the truth.
    fn remove_where(&self, doomed: impl Fn(&FileInfo) -> bool) -> Result<Removed, StorageError> {
        let _evicting = self.eviction_lock();
        let at_scan = self.ledger.read();
        let scan = scan(&self.dir)?;
        let mut removed = Removed::default();
        let mut left = scan.totals();
        for tmp in &scan.temps {
            remove(&tmp.path);
        }
        for file in scan.entries.iter().filter(|f| doomed(f)) {
            match fs::remove_file(&file.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %file.path.display(), error = %e, "cannot remove entry");
                    continue;
                }
            }
            for beside in &file.beside {
                remove(beside);
            }
            removed.entries += 1;
            removed.bytes += file.size;
            left.entries -= 1;
            left.bytes -= file.size;
        }
        // As in eviction: what was stored while this ran is counted on top of the scan.
        let now = self.ledger.update(|now| Totals {
            bytes: left
                .bytes
                .saturating_add(now.bytes.saturating_sub(at_scan.bytes)),
            entries: left
                .entries
                .saturating_add(now.entries.saturating_sub(at_scan.entries)),
        });
        removed.entries_left = now.entries;
        removed.bytes_left = now.bytes;
        Ok(removed)
    }
}

fn remove(path: &std::path::Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::debug!(path = %path.display(), error = %e, "cannot remove file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CacheKey, Storage};

    fn key(n: u8) -> CacheKey {
        CacheKey::from_bytes([n; 32])
    }

    async fn store_with(dir: &std::path::Path, n: u8) -> DiskStore {
        let store = DiskStore::open(dir, 1 << 30).unwrap();
        for i in 0..n {
            store.put(&key(i), vec![i; 1000]).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn clear_removes_every_entry_and_zeroes_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 5).await;
        let removed = store.clear().await.unwrap();
        assert_eq!(removed.entries, 5);
        assert!(removed.bytes >= 5000);
        assert_eq!((removed.entries_left, removed.bytes_left), (0, 0));
        assert_eq!(store.entry_count(), 0);
        assert!(!store.contains(&key(0)));
        // The directory agrees, as a new process would see it.
        let reopened = DiskStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(reopened.size_bytes(), 0);
    }

    #[tokio::test]
    async fn evict_older_than_keeps_what_was_used_within_the_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 4).await;
        let old = SystemTime::now() - Duration::from_secs(3 * 86400);
        for i in 0..2 {
            let path = store.inner.entry_path(&key(i));
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let removed = store
            .evict_older_than(Duration::from_secs(86400))
            .await
            .unwrap();
        assert_eq!(removed.entries, 2);
        assert_eq!(removed.entries_left, 2);
        assert!(!store.contains(&key(0)) && !store.contains(&key(1)));
        assert!(store.contains(&key(2)) && store.contains(&key(3)));
    }

    #[tokio::test]
    async fn cleanup_brings_an_over_full_store_within_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        drop(store_with(dir.path(), 10).await);
        // Reopened with a smaller limit, as after `hoard -M`.
        let store = DiskStore::open(dir.path(), 5000).unwrap();
        let removed = store.cleanup().await.unwrap();
        assert!(removed.entries >= 5, "{removed:?}");
        assert!(removed.bytes_left <= 5000, "{removed:?}");
        assert_eq!(store.size_bytes(), removed.bytes_left);
    }
}
