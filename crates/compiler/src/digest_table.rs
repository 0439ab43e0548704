//! A digest memo shared by every process on the machine. Wrappers are short-lived, and a hit
//! in direct mode would otherwise read and hash every header of the compile again in each
//! one. The memo lives in one file of fixed size under `HOARD_DIR`, read and written with
//! single `pread`/`pwrite` calls: a record is keyed by what `stat` says of the file (device,
//! inode, size, mtime, ctime, to the nanosecond) and carries the content's blake3.
//!
//! Nothing here may ever give a wrong digest. Each record holds a checksum of itself, so a
//! record torn by two processes writing at once reads as absent; a file changed in the last
//! couple of seconds is hashed but not recorded, as ccache does, because its stat could
//! still change without its mtime moving; and any fault (no file, a short read) means "hash
//! the file", never "trust something".

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The table's file name in the state directory.
pub(crate) const TABLE_FILE: &str = "digests-v1.table";

/// Slots in the table (a power of two). Sparse on disk: only written slots take space.
const SLOTS: u64 = 1 << 16;
/// Slots tried from a key's home slot before giving up (lookup) or overwriting (insert).
const PROBE: u64 = 4;
/// Bytes of one record: seven stat fields, the digest, the checksum.
const RECORD: usize = 7 * 8 + 32 + 8;
/// Files changed this recently are not recorded.
const SETTLE_SECONDS: i64 = 2;

/// What identifies one version of a file's content: device, inode, size, mtime and ctime
/// to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp([u64; 7]);

impl Stamp {
    /// The stamp of a file as `meta` describes it.
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        Self([
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime().cast_unsigned(),
            meta.mtime_nsec().cast_unsigned(),
            meta.ctime().cast_unsigned(),
            meta.ctime_nsec().cast_unsigned(),
        ])
    }

    fn home_slot(self) -> u64 {
        // dev and ino spread well enough once mixed; the low bits index the table.
        let mixed = (self.0[0].rotate_left(32) ^ self.0[1]).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 16) & (SLOTS - 1)
    }

    /// The stamp's fields, in the order records keep them.
    pub(crate) fn fields(self) -> [u64; 7] {
        self.0
    }

    /// Whether the file has been left alone long enough that it cannot change without its
    /// stamp changing (ccache's rule).
    pub(crate) fn settled(self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mtime = self.0[3].cast_signed();
        let ctime = self.0[5].cast_signed();
        now - mtime.max(ctime) >= SETTLE_SECONDS
    }
}

fn encode(stamp: Stamp, digest: &[u8; 32]) -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    for (i, value) in stamp.0.iter().enumerate() {
        record[i * 8..i * 8 + 8].copy_from_slice(&value.to_le_bytes());
    }
    record[56..88].copy_from_slice(digest);
    let check = checksum(&record[..88]);
    record[88..].copy_from_slice(&check);
    record
}

fn checksum(body: &[u8]) -> [u8; 8] {
    let mut check = [0u8; 8];
    check.copy_from_slice(&blake3::hash(body).as_bytes()[..8]);
    check
}

/// The digest in `record` if it is whole and belongs to `stamp`.
fn decode(record: &[u8], stamp: Stamp) -> Option<[u8; 32]> {
    if record.len() != RECORD || record[88..] != checksum(&record[..88]) {
        return None;
    }
    let matches = stamp
        .0
        .iter()
        .enumerate()
        .all(|(i, value)| record[i * 8..i * 8 + 8] == value.to_le_bytes());
    if !matches {
        return None;
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&record[56..88]);
    Some(digest)
}

/// The machine-wide digest memo of one state directory.
#[derive(Debug)]
pub(crate) struct DigestTable {
    file: File,
}

impl DigestTable {
    /// Opens (creating when needed) the table in `state_dir`; `None` when it cannot be used,
    /// and then every digest is computed from the file.
    pub(crate) fn open(state_dir: &Path) -> Option<Self> {
        let path = state_dir.join(TABLE_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .ok()?;
        let size = SLOTS * RECORD as u64;
        if file.metadata().ok()?.len() != size {
            // Another process may be doing the same; set_len to the same size is harmless.
            file.set_len(size).ok()?;
        }
        Some(Self { file })
    }

    /// The blake3 digest of the content of the file at `path`, from the table when its stat
    /// matches a record, else read, hashed and recorded.
    pub(crate) fn digest(&self, path: &Path) -> std::io::Result<[u8; 32]> {
        let stamp = Stamp::of(&std::fs::metadata(path)?);
        if let Some(digest) = self.lookup(stamp) {
            return Ok(digest);
        }
        let content = std::fs::read(path)?;
        let digest = *blake3::hash(&content).as_bytes();
        // Stat again after hashing: a file rewritten meanwhile must not be recorded under
        // the stamp it had before.
        let unchanged = std::fs::metadata(path).is_ok_and(|m| Stamp::of(&m) == stamp);
        if unchanged && stamp.settled() {
            self.record(stamp, &digest);
        }
        Ok(digest)
    }

    /// Hashes and records a file hoard has just delivered (a hit's outputs, a compile's
    /// outputs just stored), young as it is. The settle rule guards files something else
    /// may still be writing within one timestamp tick; a build output nothing rewrites once
    /// its compile is done does not need it, and recording it now means the crates that
    /// read it next (`--extern`) find its digest instead of each hashing it again.
    pub(crate) fn record_delivered(&self, path: &Path) -> std::io::Result<[u8; 32]> {
        let stamp = Stamp::of(&std::fs::metadata(path)?);
        if let Some(digest) = self.lookup(stamp) {
            return Ok(digest);
        }
        let digest = *blake3::hash(&std::fs::read(path)?).as_bytes();
        if std::fs::metadata(path).is_ok_and(|m| Stamp::of(&m) == stamp) {
            self.record(stamp, &digest);
        }
        Ok(digest)
    }

    /// Records `digest`, which the caller knows to be the blake3 of the file at `path` as it
    /// is now (a cache hit just wrote it from a verified entry): one `stat`, no read.
    pub(crate) fn record_known(&self, path: &Path, digest: &[u8; 32]) -> std::io::Result<()> {
        let stamp = Stamp::of(&std::fs::metadata(path)?);
        if self.lookup(stamp) != Some(*digest) {
            self.record(stamp, digest);
        }
        Ok(())
    }

    /// The slots a stamp may live in, read in one call.
    fn window(&self, stamp: Stamp) -> Option<(u64, [u8; RECORD * PROBE as usize])> {
        let home = stamp.home_slot();
        let mut window = [0u8; RECORD * PROBE as usize];
        (home + PROBE <= SLOTS
            && self
                .file
                .read_exact_at(&mut window, home * RECORD as u64)
                .is_ok())
        .then_some((home, window))
    }

    fn lookup(&self, stamp: Stamp) -> Option<[u8; 32]> {
        let (_, window) = self.window(stamp)?;
        window
            .chunks_exact(RECORD)
            .find_map(|record| decode(record, stamp))
    }

    /// Records `digest` for `stamp` in the first slot that is free, damaged or the same
    /// file's, else over the home slot. A failed write only costs a later process a hash.
    fn record(&self, stamp: Stamp, digest: &[u8; 32]) {
        let Some((home, window)) = self.window(stamp) else {
            return;
        };
        let key = window_key(stamp);
        let slot = window
            .chunks_exact(RECORD)
            .position(|record| record[88..] != checksum(&record[..88]) || record[..16] == key)
            .unwrap_or(0) as u64;
        let _ = self
            .file
            .write_all_at(&encode(stamp, digest), (home + slot) * RECORD as u64);
    }
}

/// The (device, inode) bytes a record starts with.
fn window_key(stamp: Stamp) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&stamp.0[0].to_le_bytes());
    key[8..].copy_from_slice(&stamp.0[1].to_le_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_delivered_file_is_recorded_young_and_found_by_its_stamp() {
        let state = tempfile::tempdir().unwrap();
        let table = DigestTable::open(state.path()).unwrap();
        let path = state.path().join("libx.rlib");
        std::fs::write(&path, b"rlib bytes").unwrap();
        let stamp = Stamp::of(&std::fs::metadata(&path).unwrap());
        assert!(!stamp.settled());
        assert_eq!(table.lookup(stamp), None);
        let digest = table.record_delivered(&path).unwrap();
        // A digest the caller knows is recorded from a stat alone: what is found next is
        // that digest, not one read from the file (so a stand-in shows it was not hashed).
        let other = state.path().join("known.rlib");
        std::fs::write(&other, b"known content").unwrap();
        let stand_in = [7u8; 32];
        table.record_known(&other, &stand_in).unwrap();
        assert_eq!(table.record_delivered(&other).unwrap(), stand_in);
        assert_eq!(digest, *blake3::hash(b"rlib bytes").as_bytes());
        assert_eq!(table.lookup(stamp), Some(digest));
        // A rewrite is another stamp: never the recorded digest.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"other bytes").unwrap();
        assert_eq!(
            table.digest(&path).unwrap(),
            *blake3::hash(b"other bytes").as_bytes()
        );
    }

    #[test]
    fn a_digest_is_the_contents_blake3() {
        let state = tempfile::tempdir().unwrap();
        let table = DigestTable::open(state.path()).unwrap();
        let path = state.path().join("a.h");
        std::fs::write(&path, b"#define A 1\n").unwrap();
        let expected = *blake3::hash(b"#define A 1\n").as_bytes();
        assert_eq!(table.digest(&path).unwrap(), expected);
        // Just written, so not settled and not recorded.
        let stamp = Stamp::of(&std::fs::metadata(&path).unwrap());
        assert!(!stamp.settled());
        assert_eq!(table.lookup(stamp), None);
    }

    #[test]
    fn a_recorded_digest_is_found_by_its_stamp_only() {
        let state = tempfile::tempdir().unwrap();
        let table = DigestTable::open(state.path()).unwrap();
        let stamp = Stamp([1, 2, 3, 4, 5, 6, 7]);
        table.record(stamp, &[5; 32]);
        assert_eq!(table.lookup(stamp), Some([5; 32]));
        // Another process sees it.
        let again = DigestTable::open(state.path()).unwrap();
        assert_eq!(again.lookup(stamp), Some([5; 32]));
        // The same file with another size, mtime or ctime is another version.
        for i in 2..7 {
            let mut other = stamp;
            other.0[i] += 1;
            assert_eq!(table.lookup(other), None, "field {i}");
        }
        // Re-recording the same file replaces its record.
        table.record(stamp, &[6; 32]);
        assert_eq!(table.lookup(stamp), Some([6; 32]));
    }

    #[test]
    fn a_file_changed_in_place_is_hashed_again() {
        let state = tempfile::tempdir().unwrap();
        let table = DigestTable::open(state.path()).unwrap();
        let path = state.path().join("b.h");
        std::fs::write(&path, b"one").unwrap();
        let stamp = Stamp::of(&std::fs::metadata(&path).unwrap());
        table.record(stamp, blake3::hash(b"one").as_bytes());
        assert_eq!(
            table.digest(&path).unwrap(),
            *blake3::hash(b"one").as_bytes()
        );
        std::fs::write(&path, b"two!").unwrap();
        assert_eq!(
            table.digest(&path).unwrap(),
            *blake3::hash(b"two!").as_bytes()
        );
    }

    #[test]
    fn a_torn_record_reads_as_absent() {
        let stamp = Stamp([1, 2, 3, 4, 5, 6, 7]);
        let mut record = encode(stamp, &[9; 32]);
        assert_eq!(decode(&record, stamp), Some([9; 32]));
        record[60] ^= 1;
        assert_eq!(decode(&record, stamp), None);
        assert_eq!(
            decode(&encode(stamp, &[9; 32]), Stamp([1, 2, 3, 4, 5, 6, 8])),
            None
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_nothing_or_to_their_own_stamp(
            bytes in proptest::collection::vec(any::<u8>(), RECORD),
            fields in any::<[u64; 7]>(),
        ) {
            prop_assert_eq!(decode(&bytes, Stamp(fields)), None);
            let record = encode(Stamp(fields), &[3; 32]);
            prop_assert_eq!(decode(&record, Stamp(fields)), Some([3; 32]));
        }
    }
}
