//! Scanning a store directory: every entry (a split one with the files beside its stub),
//! and every temporary or orphaned file, with sizes and modification times. The truth the
//! ledger is reset to, and what eviction orders by.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::ledger::Totals;
use super::{TEMP_PREFIX, beside, io_err};
use crate::StorageError;

/// One entry, or one temporary or orphaned file.
pub(super) struct FileInfo {
    pub path: PathBuf,
    /// With the files beside it, for a split entry.
    pub size: u64,
    pub mtime: SystemTime,
    /// A split entry's files beside its stub.
    pub beside: Vec<PathBuf>,
}

/// What a directory holds.
#[derive(Default)]
pub(super) struct Scan {
    pub entries: Vec<FileInfo>,
    /// Temporary files, and files beside a stub that is gone.
    pub temps: Vec<FileInfo>,
}

impl Scan {
    pub(super) fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    pub(super) fn totals(&self) -> Totals {
        Totals {
            bytes: self.total(),
            entries: self.entries.len() as u64,
        }
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lists every entry and temporary file. Files vanishing mid-scan (another process evicting)
/// are skipped; an unreadable subdirectory is logged and skipped rather than failing the scan.
pub(super) fn scan(dir: &Path) -> Result<Scan, StorageError> {
    let mut scan = Scan::default();
    for sub in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let Ok(sub) = sub else { continue };
        let name = sub.file_name();
        let Some(prefix) = name.to_str() else {
            continue;
        };
        if prefix.len() != 2 || !is_hex(prefix) || !sub.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let files = match fs::read_dir(sub.path()) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(path = %sub.path().display(), error = %e, "cannot list cache subdirectory");
                continue;
            }
        };
        let mut beside: Vec<(String, FileInfo)> = Vec::new();
        let first = scan.entries.len();
        for file in files {
            let Ok(file) = file else { continue };
            let name = file.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_temp = name.starts_with(TEMP_PREFIX);
            let is_entry = name.len() == 64 && name.starts_with(prefix) && is_hex(name);
            let owner = beside::stub_name_of(name);
            if !is_temp && !is_entry && owner.is_none() {
                continue;
            }
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let path = file.path();
            let mtime = not_after_now(&path, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            let info = FileInfo {
                path,
                size: meta.len(),
                mtime,
                beside: Vec::new(),
            };
            if let Some(owner) = owner {
                beside.push((owner.to_owned(), info));
            } else if is_temp {
                scan.temps.push(info);
            } else {
                scan.entries.push(info);
            }
        }
        // Each file beside a stub counts with its entry; one whose stub is gone (a writer
        // that died between the two) is cleared like a stale temporary file.
        let index: std::collections::HashMap<String, usize> = scan.entries[first..]
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let name = e.path.file_name()?.to_str()?.to_owned();
                Some((name, first + i))
            })
            .collect();
        for (stub, info) in beside {
            match index.get(&stub).map(|&i| &mut scan.entries[i]) {
                Some(entry) => {
                    entry.size += info.size;
                    entry.beside.push(info.path);
                }
                None => scan.temps.push(info),
            }
        }
    }
    Ok(scan)
}

/// A modification time in the future (a clock that was wrong, or one planted to pin an
/// entry: eviction goes oldest first, so it would never go) is taken as now, and the file's
/// mtime is set to now so that it ages from here like any other.
fn not_after_now(path: &Path, mtime: SystemTime) -> SystemTime {
    let now = SystemTime::now();
    if mtime <= now {
        return mtime;
    }
    let reset = fs::File::open(path).and_then(|f| f.set_modified(now));
    if let Err(e) = reset {
        tracing::debug!(path = %path.display(), error = %e, "cannot reset a future mtime");
    }
    now
}
