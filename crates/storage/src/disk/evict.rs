//! Eviction: least recently used entries (by file mtime) go when the directory is over its
//! limit. A put that takes the store over starts a background task; [`DiskStore::evict`]
//! runs one round now. Each round rescans the directory, the truth that the shared ledger
//! only approximates, under a lock file so two processes never evict at once.

use std::fs::{self, File};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use super::ledger::{self, Totals};
use super::scan::scan;
use super::{DiskStore, Inner};
use crate::{StorageError, run_blocking};

/// Held (`flock`) by the process evicting, so two never rescan and delete at once: each
/// would count the other's deletions as well as its own, and the ledger lose track of the
/// directory. Not two hex digits, so scans never take it for an entry.
const EVICTION_LOCK: &str = "eviction-lock";

/// A temporary file older than this was left by a process that died mid-write.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Eviction rounds one background task runs before leaving the rest to the next put; bounds
/// the work when entries cannot be deleted.
const MAX_EVICTION_ROUNDS: u32 = 4;

impl DiskStore {
    /// Waits until no eviction started by this store is running. Puts start evictions in the
    /// background so the caller does not wait for a rescan; tests and an orderly shutdown
    /// wait here.
    pub async fn wait_for_eviction(&self) {
        loop {
            let handle = self
                .inner
                .eviction
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(handle) = handle else { return };
            if let Err(e) = handle.await {
                tracing::warn!(error = %e, dir = %self.inner.dir.display(), "eviction task failed");
            }
        }
    }

    /// Rescans the directory and evicts until it is within its limit, now, waiting for it.
    pub async fn evict(&self) -> Result<(), StorageError> {
        let inner = Arc::clone(&self.inner);
        run_blocking("evict", move || inner.evict_once()).await
    }

    /// Starts a background eviction unless one is running.
    pub(super) fn start_eviction(&self) {
        if self.inner.evicting.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = Arc::clone(&self.inner);
        let handle = tokio::task::spawn_blocking(move || inner.run_evictions());
        *self
            .inner
            .eviction
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }
}

impl Inner {
    /// The body of a background eviction task.
    fn run_evictions(&self) {
        for _ in 0..MAX_EVICTION_ROUNDS {
            {
                // Cleared on drop so a panicking round cannot stop eviction for good.
                let _flag = ClearOnDrop(&self.evicting);
                if let Err(e) = self.evict_once() {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "eviction failed");
                }
            }
            // Puts that landed during the round may have pushed the store over again; their
            // own check may have seen the flag still set, so look once more.
            if self.ledger.read().bytes <= self.max_size
                || self.evicting.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
        self.evicting.store(false, Ordering::SeqCst);
    }

    /// Rescans the directory, deletes stale temporary files and, when over the limit, the
    /// oldest entries until the store is at 90% of its limit.
    fn evict_once(&self) -> Result<(), StorageError> {
        let _evicting = self.eviction_lock();
        let at_scan = self.ledger.read();
        let mut scan = scan(&self.dir)?;
        let now = SystemTime::now();
        for tmp in &scan.temps {
            if now.duration_since(tmp.mtime).unwrap_or_default() > STALE_TEMP_AGE
                && let Err(e) = fs::remove_file(&tmp.path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::debug!(path = %tmp.path.display(), error = %e, "cannot remove stale temporary file");
            }
        }
        let mut total = scan.total();
        let mut count = scan.entries.len() as u64;
        if total > self.max_size {
            let target = self.max_size - self.max_size / 10;
            scan.entries
                .sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.path.cmp(&b.path)));
            let before = total;
            for file in &scan.entries {
                if total <= target {
                    break;
                }
                match fs::remove_file(&file.path) {
                    Ok(()) => {
                        for beside in &file.beside {
                            let _ = fs::remove_file(beside);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %file.path.display(), error = %e, "cannot evict entry");
                        continue;
                    }
                }
                total -= file.size;
                count -= 1;
            }
            tracing::debug!(dir = %self.dir.display(), before, after = total, "evicted");
        }
        // Puts that landed while this ran (here or in another process) may or may not be in
        // the scan. Counting them again errs on the side of too big, which costs at most an
        // early eviction; overwriting the ledger with the scan would lose them and let the
        // directory outgrow its limit.
        self.ledger.update(|now| Totals {
            bytes: total.saturating_add(now.bytes.saturating_sub(at_scan.bytes)),
            entries: count.saturating_add(now.entries.saturating_sub(at_scan.entries)),
        });
        Ok(())
    }

    /// The eviction lock, held until the file is dropped; `None` where it cannot be had (a
    /// read-only directory), and evictions then go unserialised, as before.
    pub(super) fn eviction_lock(&self) -> Option<File> {
        let path = self.dir.join(EVICTION_LOCK);
        let file = ledger::open_shared(&path).ok()?;
        file.lock()
            .inspect_err(
                |e| tracing::debug!(path = %path.display(), error = %e, "eviction not locked"),
            )
            .ok()?;
        Some(file)
    }
}

struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporary_files_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("00");
        fs::create_dir_all(&sub).unwrap();
        let stale = sub.join(".tmp-stale");
        let fresh = sub.join(".tmp-fresh");
        fs::write(&stale, b"x").unwrap();
        fs::write(&fresh, b"x").unwrap();
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * STALE_TEMP_AGE)
            .unwrap();
        let store = DiskStore::open(dir.path(), 1000).unwrap();
        store.inner.evict_once().unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }
}
