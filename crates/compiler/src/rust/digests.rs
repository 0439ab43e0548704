//! Content digests of large inputs (`--extern` crates, native libraries, linkers, sysroot
//! libraries), kept on disk under a digest of the file's (device, inode, size, mtime, ctime,
//! path), so a 40-crate build does not rehash every rlib in every wrapper process. A file
//! changed in the last couple of seconds is hashed but not recorded (ccache's rule): its
//! stat could still change without its mtime moving past the recorded one.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest_table::DigestTable;

/// Files younger than this are not recorded.
const SETTLE_SECONDS: i64 = 2;

/// A digest could not be computed.
#[derive(Debug, thiserror::Error)]
#[error("digesting {path}: {source}")]
pub(crate) struct DigestError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The digest cache under a state directory: the machine-wide digest table
/// ([`DigestTable`]: one `pread` per known file), else one small file per digest.
#[derive(Debug)]
pub(crate) struct DigestCache {
    dir: PathBuf,
    table: Option<DigestTable>,
}

impl DigestCache {
    pub(crate) fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("digests"),
            table: DigestTable::open(state_dir),
        }
    }

    /// The blake3 digest of the file at `path`'s content.
    pub(crate) fn digest(&self, path: &Path) -> Result<[u8; 32], DigestError> {
        let error = |source| DigestError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(table) = &self.table {
            return table.digest(path).map_err(error);
        }
        let meta = std::fs::metadata(path).map_err(error)?;
        let mut stat = blake3::Hasher::new();
        stat.update(b"hoard-digest-stat-v1\0");
        for value in [
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime().cast_unsigned(),
            meta.mtime_nsec().cast_unsigned(),
            meta.ctime().cast_unsigned(),
            meta.ctime_nsec().cast_unsigned(),
        ] {
            stat.update(&value.to_le_bytes());
        }
        stat.update(path.as_os_str().as_bytes());
        let hex = stat.finalize().to_hex();
        let record = self.dir.join(&hex[..2]).join(&hex[2..]);
        if let Ok(known) = std::fs::read(&record)
            && let Ok(digest) = <[u8; 32]>::try_from(known.as_slice())
        {
            return Ok(digest);
        }
        let mut hasher = blake3::Hasher::new();
        let mut file = std::fs::File::open(path).map_err(error)?;
        let mut buffer = vec![0; 256 * 1024];
        loop {
            let n = file.read(&mut buffer).map_err(error)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        let digest = *hasher.finalize().as_bytes();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if meta.mtime() < now - SETTLE_SECONDS
            && meta.ctime() < now - SETTLE_SECONDS
            && let Err(e) = write_record(&record, &digest)
        {
            // Only a later process pays: it hashes the file again.
            tracing::debug!("cannot keep digest in {}: {e}", record.display());
        }
        Ok(digest)
    }
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

    #[test]
    fn old_files_are_recorded_and_young_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DigestCache {
            dir: dir.path().join("state/digests"),
            table: None,
        };
        let file = dir.path().join("lib.rlib");
        std::fs::write(&file, b"content").unwrap();
        let want = *blake3::hash(b"content").as_bytes();
        assert_eq!(cache.digest(&file).unwrap(), want);
        assert!(
            !dir.path().join("state/digests").exists(),
            "young file recorded"
        );

        let old = std::fs::File::options().write(true).open(&file).unwrap();
        old.set_modified(SystemTime::now() - std::time::Duration::from_secs(60))
            .unwrap();
        // ctime is now, so still not recorded; the digest is right either way.
        assert_eq!(cache.digest(&file).unwrap(), want);
        assert!(cache.digest(&dir.path().join("missing")).is_err());
    }
}
