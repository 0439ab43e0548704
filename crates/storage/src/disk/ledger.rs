//! The size ledger: the bytes and entries a store directory holds, kept in a small file in
//! that directory so every process sharing it counts every other's writes too.
//!
//! Without it each process counted only its own writes between rescans, and two servers on
//! one directory let it outgrow its limit by what the other had written. The file is two
//! little-endian `u64`s (bytes, entries) updated under an exclusive `flock`. It is only ever
//! an estimate the next rescan corrects: a process dying between renaming an entry and
//! updating the ledger, or a torn write, costs at most an early or late eviction. Where the
//! file cannot be opened (a read-only directory) the counts stay in this process, as before.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// The ledger's file name; not two hex digits, so scans never take it for an entry.
pub(super) const LEDGER_FILE: &str = "size-ledger";

/// What a store directory holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    /// Bytes in entries.
    pub bytes: u64,
    /// Number of entries.
    pub entries: u64,
}

/// The shared counts of one store directory.
pub(super) struct Ledger {
    file: Option<File>,
    /// The last totals seen; the only copy when there is no file. The mutex also keeps this
    /// process's own threads from interleaving their read-modify-write of the file.
    seen: Mutex<Totals>,
}

/// Opens (creating it if needed, never truncating) a small file every process sharing a
/// store directory reads, writes and locks.
pub(super) fn open_shared(path: &Path) -> io::Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl Ledger {
    /// Opens (creating it if needed) the ledger of `dir`, starting it at `truth`, which the
    /// caller has just scanned.
    pub(super) fn open(dir: &Path, truth: Totals) -> Ledger {
        let path = dir.join(LEDGER_FILE);
        let file = open_shared(&path)
            .inspect_err(|e| {
                tracing::debug!(path = %path.display(), error = %e,
                    "no shared size ledger; counting this process's writes only");
            })
            .ok();
        let ledger = Ledger {
            file,
            seen: Mutex::new(truth),
        };
        ledger.update(|_| truth);
        ledger
    }

    /// Reads the shared totals now.
    pub(super) fn read(&self) -> Totals {
        self.update(|now| now)
    }

    /// Applies `change` to the shared totals atomically across processes and returns the
    /// result.
    pub(super) fn update(&self, change: impl FnOnce(Totals) -> Totals) -> Totals {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(file) = &self.file else {
            *seen = change(*seen);
            return *seen;
        };
        match update_file(file, change, *seen) {
            Ok(totals) => *seen = totals,
            Err(e) => tracing::debug!(error = %e, "size ledger not updated"),
        }
        *seen
    }
}

fn update_file(
    file: &File,
    change: impl FnOnce(Totals) -> Totals,
    fallback: Totals,
) -> io::Result<Totals> {
    file.lock()?;
    let result = (|| {
        let mut raw = [0u8; 16];
        // A new or torn file reads short: start from what this process last saw.
        let now = match file.read_exact_at(&mut raw, 0) {
            Ok(()) => decode(raw),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => fallback,
            Err(e) => return Err(e),
        };
        let next = change(now);
        if next != now {
            file.write_all_at(&encode(next), 0)?;
        }
        Ok(next)
    })();
    // Closing the descriptor would release the lock too, but it stays open for the next put.
    let unlocked = file.unlock();
    let totals = result?;
    unlocked?;
    Ok(totals)
}

fn decode(raw: [u8; 16]) -> Totals {
    let (bytes, entries) = raw.split_at(8);
    Totals {
        bytes: u64::from_le_bytes(bytes.try_into().unwrap_or_default()),
        entries: u64::from_le_bytes(entries.try_into().unwrap_or_default()),
    }
}

fn encode(totals: Totals) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&totals.bytes.to_le_bytes());
    raw[8..].copy_from_slice(&totals.entries.to_le_bytes());
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_ledgers_on_one_directory_see_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ledger::open(dir.path(), Totals::default());
        let b = Ledger::open(dir.path(), Totals::default());
        a.update(|t| Totals {
            bytes: t.bytes + 100,
            entries: t.entries + 1,
        });
        let after_b = b.update(|t| Totals {
            bytes: t.bytes + 50,
            entries: t.entries + 1,
        });
        assert_eq!(
            after_b,
            Totals {
                bytes: 150,
                entries: 2
            }
        );
        assert_eq!(
            a.read(),
            Totals {
                bytes: 150,
                entries: 2
            }
        );
    }

    #[test]
    fn a_truncated_ledger_file_starts_from_what_this_process_saw() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(
            dir.path(),
            Totals {
                bytes: 7,
                entries: 1,
            },
        );
        std::fs::write(dir.path().join(LEDGER_FILE), b"abc").unwrap();
        assert_eq!(
            ledger.read(),
            Totals {
                bytes: 7,
                entries: 1
            }
        );
    }

    #[test]
    fn without_a_writable_directory_the_ledger_counts_in_process() {
        let ledger = Ledger::open(
            Path::new("/proc/no/such/dir"),
            Totals {
                bytes: 3,
                entries: 1,
            },
        );
        let after = ledger.update(|t| Totals {
            bytes: t.bytes + 2,
            entries: t.entries,
        });
        assert_eq!(
            after,
            Totals {
                bytes: 5,
                entries: 1
            }
        );
    }

    proptest! {
        #[test]
        fn ledger_encoding_round_trips(bytes: u64, entries: u64) {
            let totals = Totals { bytes, entries };
            prop_assert_eq!(decode(encode(totals)), totals);
        }
    }
}
