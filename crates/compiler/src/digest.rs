//! The digest memo both compiler families read files through: the content digests of
//! headers, sources, `--extern` crates, native libraries, linkers and sysroot libraries.
//! Behind it is the machine-wide table ([`DigestTable`]: one `pread` per known file); when
//! that cannot be opened, a [`Digests::persistent`] memo keeps one small file per digest
//! under `digests/`, keyed by the same stat [`Stamp`] and with the same settle rule, and a
//! [`Digests::memo`] one hashes the file. Within one compile each path is digested once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::digest_table::{DigestTable, Stamp};

/// A digest could not be computed.
#[derive(Debug, thiserror::Error)]
#[error("digesting {path}: {source}")]
pub(crate) struct DigestError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Digests of files: per compile (several candidates usually list the same headers), and
/// across processes through the machine-wide table.
#[derive(Debug, Default)]
pub(crate) struct Digests {
    seen: HashMap<PathBuf, Option<[u8; 32]>>,
    table: Option<DigestTable>,
    /// Where one file per digest is kept when the table cannot be used.
    records: Option<PathBuf>,
}

impl Digests {
    /// Digests backed by the table in `state_dir` (when it can be opened), else hashed.
    pub(crate) fn memo(state_dir: &Path) -> Self {
        Self {
            seen: HashMap::new(),
            table: DigestTable::open(state_dir),
            records: None,
        }
    }

    /// As [`Digests::memo`], and without the table, kept as one file per digest: for large
    /// inputs (crates, libraries) that every wrapper process would otherwise hash again.
    pub(crate) fn persistent(state_dir: &Path) -> Self {
        Self {
            records: Some(state_dir.join("digests")),
            ..Self::memo(state_dir)
        }
    }

    /// The digest of the file at `path`, or `None` when it cannot be read; each path is
    /// digested at most once per memo.
    pub(crate) fn digest(&mut self, path: &Path) -> Option<[u8; 32]> {
        match self.seen.entry(path.to_path_buf()) {
            Entry::Occupied(known) => *known.get(),
            Entry::Vacant(slot) => {
                let digest = match &self.table {
                    Some(table) => table.digest(path).ok(),
                    None => Self::unmemoised(self.records.as_deref(), path).ok(),
                };
                *slot.insert(digest)
            }
        }
    }

    /// The digest of the file at `path`, saying why when it cannot be computed.
    pub(crate) fn digest_file(&self, path: &Path) -> Result<[u8; 32], DigestError> {
        match &self.table {
            Some(table) => table.digest(path),
            None => Self::unmemoised(self.records.as_deref(), path),
        }
        .map_err(|source| DigestError {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Without the table: from the record under `records` (when kept) or by hashing.
    fn unmemoised(records: Option<&Path>, path: &Path) -> std::io::Result<[u8; 32]> {
        let Some(records) = records else {
            return hash_file(path);
        };
        let stamp = Stamp::of(&std::fs::metadata(path)?);
        let mut stat = blake3::Hasher::new();
        stat.update(b"hoard-digest-stat-v1\0");
        for value in stamp.fields() {
            stat.update(&value.to_le_bytes());
        }
        stat.update(path.as_os_str().as_bytes());
        let hex = stat.finalize().to_hex();
        let record = records.join(&hex[..2]).join(&hex[2..]);
        if let Ok(known) = std::fs::read(&record)
            && let Ok(digest) = <[u8; 32]>::try_from(known.as_slice())
        {
            return Ok(digest);
        }
        let digest = hash_file(path)?;
        if stamp.settled()
            && let Err(e) = write_record(&record, &digest)
        {
            // Only a later process pays: it hashes the file again.
            tracing::debug!("cannot keep digest in {}: {e}", record.display());
        }
        Ok(digest)
    }
}

/// The blake3 of a file's content, read in pieces.
fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(*hasher.finalize().as_bytes())
}

fn write_record(record: &Path, digest: &[u8; 32]) -> std::io::Result<()> {
    let dir = record.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(temp.path(), digest)?;
    temp.persist(record).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn old_files_are_recorded_and_young_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Digests {
            records: Some(dir.path().join("state/digests")),
            ..Digests::default()
        };
        let file = dir.path().join("lib.rlib");
        std::fs::write(&file, b"content").unwrap();
        let want = *blake3::hash(b"content").as_bytes();
        assert_eq!(cache.digest_file(&file).unwrap(), want);
        assert!(
            !dir.path().join("state/digests").exists(),
            "young file recorded"
        );

        let old = std::fs::File::options().write(true).open(&file).unwrap();
        old.set_modified(SystemTime::now() - std::time::Duration::from_secs(60))
            .unwrap();
        // ctime is now, so still not recorded; the digest is right either way.
        assert_eq!(cache.digest_file(&file).unwrap(), want);
        assert!(cache.digest_file(&dir.path().join("missing")).is_err());
    }
}
