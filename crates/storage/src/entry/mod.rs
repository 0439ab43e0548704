//! The cache entry: one self-contained, versioned, checksummed blob holding a compile's output
//! files (each with its role, mode, size and blake3) and its stdout, stderr and exit status.
//! [`pack`] builds one from files on disk, `extract` verifies one completely and only then
//! writes its files onto the paths a caller names. A [`EntryKind::Blob`] entry holds one
//! opaque payload instead (direct-mode manifests).

mod codec;
mod extract;
#[doc(hidden)]
pub mod forge;
mod open;
pub(crate) mod parts;
pub mod signature;
pub mod split;

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use codec::{EntryFormat, MAX_CONTENT_SIZE, RAW_ENTRY_FORMAT_VERSION};
pub use extract::{
    Extracted, extract, extract_with_digests, extract_with_limits, verify, verify_signed,
};
pub use open::{EntryLimits, MAX_BLOB_SIZE};
pub use signature::Untrusted;

use extract::{check_roles, stage};

use crate::OutputPath;
use codec::{Decoded, FileIn};

/// The version written after the magic of a compressed entry ([`EntryFormat::Zstd`]). A
/// reader refuses versions it does not know with [`EntryError::UnsupportedVersion`].
pub const ENTRY_FORMAT_VERSION: u32 = 1;

/// The default for [`ReadLimits::max_file_size`]: 4 GiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 << 30;

/// Only permission bits travel in an entry: a cached file never comes back setuid, setgid or
/// sticky, whatever the original had.
const MODE_MASK: u32 = 0o777;

/// The role under which a blob's payload is stored.
const BLOB_ROLE: &str = "blob";

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A compile's output files with its stdout, stderr and exit status.
    Outputs,
    /// One opaque payload, such as a direct-mode manifest.
    Blob,
}

/// What a compile printed and returned, stored beside its output files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// The compiler's standard output.
    pub stdout: Vec<u8>,
    /// The compiler's standard error.
    pub stderr: Vec<u8>,
    /// The compiler's exit status.
    pub exit_status: i32,
    /// How long the compile took, in milliseconds: what each hit on the entry saves. Zero
    /// when unknown (entries written before it was recorded).
    pub compile_ms: u64,
}

/// What [`pack`] accepts as an output file. The server sets `owner_uid` to the peer's uid so
/// a client can never make it read a file the client could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// When set, every output must be owned by this uid.
    pub owner_uid: Option<u32>,
    /// The largest output file accepted, in bytes.
    pub max_file_size: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            owner_uid: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// Packing or extracting an entry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The entry's bytes are damaged or were never an entry: bad magic, bad checksum,
    /// undecodable header, a file whose size or blake3 does not match. Such an entry is to be
    /// removed and treated as a miss.
    #[error("corrupt entry: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
    /// The entry was written in a format version this build does not read (a newer or older
    /// hoard wrote it). Not damage: it is a miss, and the entry is left for its writer.
    #[error("entry format version {found} is not readable by this build (reads {supported})")]
    UnsupportedVersion {
        /// The version in the entry.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The entry is sound but not signed by a trusted key as the entry under its key, where
    /// signatures are required. Not damage: the entry is left where it is.
    #[error("untrusted entry: {why}")]
    Untrusted {
        /// What was missing or wrong.
        why: Untrusted,
    },
    /// The roles asked for are not exactly the roles stored.
    #[error("entry holds outputs {stored:?} but {requested:?} were requested")]
    RoleMismatch {
        /// The stored roles, sorted.
        stored: Vec<String>,
        /// The requested roles, sorted.
        requested: Vec<String>,
    },
    /// Two outputs given to [`pack`] share a role.
    #[error("output role {role:?} is named twice")]
    DuplicateRole {
        /// The repeated role.
        role: String,
    },
    /// An output path is a symbolic link; outputs are only read through no link.
    #[error("{path}: is a symbolic link, outputs are read only from regular files")]
    Symlink {
        /// The output path.
        path: PathBuf,
    },
    /// An output path is a directory, device, FIFO or socket.
    #[error("{path}: not a regular file")]
    NotRegularFile {
        /// The output path.
        path: PathBuf,
    },
    /// An output file is owned by another uid than [`ReadLimits::owner_uid`].
    #[error("{path}: owned by uid {owner}, expected uid {expected}")]
    NotOwned {
        /// The output path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The uid required.
        expected: u32,
    },
    /// An output file is larger than [`ReadLimits::max_file_size`].
    #[error("{path}: {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The output path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The outputs together exceed [`MAX_CONTENT_SIZE`].
    #[error("outputs total {size} bytes, over the {limit}-byte entry limit")]
    EntryTooLarge {
        /// Their total size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The entry could not be encoded (msgpack or zstd refused; stdout/stderr too large).
    #[error("cannot encode entry: {reason}")]
    Encode {
        /// What went wrong.
        reason: String,
    },
    /// An I/O operation on an output path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `read`, `write`, `rename`, ...).
        op: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl EntryError {
    /// Whether the entry itself is damaged, so it should be removed from the store.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { op, path, source }
    }
}

/// Reads every output from its path and packs them with `meta` into an entry.
///
/// Each path is opened without following a symbolic link and checked on the open file: it
/// must be a regular file, owned by `limits.owner_uid` when set, and no larger than
/// `limits.max_file_size`.
pub fn pack(
    outputs: &[OutputPath],
    meta: &EntryMeta,
    limits: &ReadLimits,
) -> Result<Vec<u8>, EntryError> {
    read_outputs(outputs, limits)?.pack(meta)
}

/// Output files read into memory, ready to be packed. Reading and packing are separate so a
/// server can answer a put as soon as the files are read (the client may then let the build
/// touch them) and compress afterwards.
#[derive(Debug, Clone)]
pub struct OutputFiles {
    /// Role, unix mode and content of each file, in the order given.
    files: Vec<(String, u32, Vec<u8>)>,
}

impl OutputFiles {
    /// Total bytes of content.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|(_, _, d)| d.len() as u64).sum()
    }

    /// Encodes the files and `meta` into one compressed entry: what travels and what any
    /// peer, old or new, can read.
    pub fn pack(&self, meta: &EntryMeta) -> Result<Vec<u8>, EntryError> {
        self.pack_as(meta, EntryFormat::Zstd)
    }

    /// Encodes the files and `meta` into one entry of the given format.
    pub fn pack_as(&self, meta: &EntryMeta, format: EntryFormat) -> Result<Vec<u8>, EntryError> {
        let files: Vec<FileIn<'_>> = self
            .files
            .iter()
            .map(|(role, mode, data)| FileIn {
                role,
                mode: *mode,
                data,
            })
            .collect();
        codec::encode(format, EntryKind::Outputs, &files, meta)
    }
}

/// Reads every output under `limits` (see [`pack`] for the rules each file must pass).
pub fn read_outputs(
    outputs: &[OutputPath],
    limits: &ReadLimits,
) -> Result<OutputFiles, EntryError> {
    for (i, out) in outputs.iter().enumerate() {
        if outputs[..i].iter().any(|o| o.role == out.role) {
            return Err(EntryError::DuplicateRole {
                role: out.role.clone(),
            });
        }
    }
    let mut files = Vec::with_capacity(outputs.len());
    let mut total: u64 = 0;
    for out in outputs {
        let (mode, data) = read_output(&out.path, limits)?;
        total = total.saturating_add(data.len() as u64);
        if total > MAX_CONTENT_SIZE {
            return Err(EntryError::EntryTooLarge {
                size: total,
                limit: MAX_CONTENT_SIZE,
            });
        }
        files.push((out.role.clone(), mode, data));
    }
    Ok(OutputFiles { files })
}

fn read_output(path: &Path, limits: &ReadLimits) -> Result<(u32, Vec<u8>), EntryError> {
    // O_NONBLOCK so that opening a FIFO returns at once and is then refused by the file-type
    // check, instead of hanging until some writer appears.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                EntryError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                EntryError::io("open", path)(source)
            }
        })?;
    let meta = file.metadata().map_err(EntryError::io("stat", path))?;
    if !meta.file_type().is_file() {
        return Err(EntryError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    if let Some(expected) = limits.owner_uid
        && meta.uid() != expected
    {
        return Err(EntryError::NotOwned {
            path: path.to_path_buf(),
            owner: meta.uid(),
            expected,
        });
    }
    let size = meta.len();
    if size > limits.max_file_size {
        return Err(EntryError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: limits.max_file_size,
        });
    }
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte past the size stat gave shows a file still being written.
    (&file)
        .take(size + 1)
        .read_to_end(&mut data)
        .map_err(EntryError::io("read", path))?;
    if data.len() as u64 != size {
        return Err(EntryError::io("read", path)(io::Error::other(format!(
            "file changed size while being read (stat said {size} bytes, read {})",
            data.len()
        ))));
    }
    Ok((meta.mode() & MODE_MASK, data))
}

/// Checks an entry's preamble and the digest over its compressed frame, without
/// decompressing it: what a server does to entry bytes it only passes through (inline
/// transfers). A damaged byte anywhere is found; `extract` still verifies every file.
pub fn verify_checksum(entry: &[u8]) -> Result<(), EntryError> {
    codec::checked_frame(entry).map(|_| ())
}

/// Whether these bytes begin like a raw ([`EntryFormat::Raw`]) entry; nothing is verified.
pub fn is_raw(bytes: &[u8]) -> bool {
    bytes.starts_with(codec::MAGIC)
        && bytes.get(8..12) == Some(&RAW_ENTRY_FORMAT_VERSION.to_le_bytes()[..])
}

/// The entry re-encoded as a compressed ([`EntryFormat::Zstd`]) entry, or the same bytes if
/// it is one already: what goes to remote tiers and to peers that may predate raw entries.
/// A damaged entry is an error.
pub fn compressed(entry: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, EntryError> {
    codec::compressed(entry)
}

/// The entry as remote tiers hold it (compressed), signed by `signer` as the entry under
/// `key` when a signer is given (replacing any signature it had). A damaged entry is an
/// error.
pub fn for_remote<'a>(
    entry: &'a [u8],
    key: &crate::CacheKey,
    signer: Option<&crate::signing::Signer>,
) -> Result<std::borrow::Cow<'a, [u8]>, EntryError> {
    match signer {
        None => codec::compressed(entry),
        Some(signer) => {
            codec::reencode(entry, |header| signature::sign(header, key, signer)).map(Into::into)
        }
    }
}

/// Who signed the entry under `key`, as its header says, checked against `trusted` without
/// reading its files: for reports on an entry verified when it arrived (the local disk's,
/// in `hoard --explain`), never for accepting one. `None` when the bytes are not an entry
/// with a readable header (a split local entry's stub).
pub fn signer_of(
    entry: &[u8],
    key: &crate::CacheKey,
    trusted: &crate::signing::TrustedKeys,
) -> Option<Result<String, Untrusted>> {
    let header = codec::read_header(entry)?;
    Some(signature::check(&header, key, trusted))
}

/// The compile time recorded in an entry's header, in milliseconds, read without verifying
/// or unpacking the entry: for counting the time a hit saved when the entry's bytes are
/// passed on unopened. `None` when the bytes are not a readable entry.
pub fn stored_compile_ms(entry: &[u8]) -> Option<u64> {
    codec::stored_compile_ms(entry)
}

/// Packs one opaque payload (a direct-mode manifest) as a [`EntryKind::Blob`] entry.
///
/// Encoding a payload in memory cannot fail short of a payload over [`MAX_CONTENT_SIZE`];
/// should it fail anyway, the result is an empty entry, which every reader refuses as
/// corrupt: a miss, never a wrong answer.
pub fn pack_blob(payload: &[u8]) -> Vec<u8> {
    let file = FileIn {
        role: BLOB_ROLE,
        mode: 0o644,
        data: payload,
    };
    // Compressed: manifests are read straight from the local store by wrappers of any age.
    codec::encode(
        EntryFormat::Zstd,
        EntryKind::Blob,
        &[file],
        &EntryMeta::default(),
    )
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode a blob entry; storing an empty one");
        Vec::new()
    })
}

/// Verifies a [`EntryKind::Blob`] entry as thoroughly as `extract` does and returns its
/// payload.
pub fn unpack_blob(entry: &[u8]) -> Result<Vec<u8>, EntryError> {
    let Decoded { header, mut files } = open::decode(entry, &EntryLimits::BLOB)?;
    if header.kind != EntryKind::Blob {
        return Err(EntryError::Corrupt {
            reason: format!("entry is {:?}, not a blob", header.kind),
        });
    }
    match (header.files.as_slice(), files.pop()) {
        ([record], Some(payload)) if record.role == BLOB_ROLE => Ok(payload.into_owned()),
        _ => Err(EntryError::Corrupt {
            reason: "blob entry does not hold exactly one payload".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trips() {
        let entry = pack_blob(b"manifest");
        assert_eq!(&entry[..8], codec::MAGIC);
        assert_eq!(unpack_blob(&entry).unwrap(), b"manifest");
    }

    #[test]
    fn a_blob_is_not_outputs_and_outputs_are_not_a_blob() {
        let blob = pack_blob(b"x");
        assert!(extract(&blob, &[]).unwrap_err().is_corrupt());
        let outputs = codec::encode(
            EntryFormat::Zstd,
            EntryKind::Outputs,
            &[],
            &EntryMeta::default(),
        )
        .unwrap();
        assert!(unpack_blob(&outputs).unwrap_err().is_corrupt());
        assert_eq!(extract(&outputs, &[]).unwrap(), EntryMeta::default());
    }

    #[test]
    fn another_format_version_is_not_corrupt() {
        let mut entry = pack_blob(b"x");
        let unknown = RAW_ENTRY_FORMAT_VERSION + 1;
        entry[8..12].copy_from_slice(&unknown.to_le_bytes());
        let err = unpack_blob(&entry).unwrap_err();
        assert!(matches!(err, EntryError::UnsupportedVersion { found, .. } if found == unknown));
        assert!(!err.is_corrupt());
    }

    fn files(contents: &[(&str, &[u8])]) -> OutputFiles {
        OutputFiles {
            files: contents
                .iter()
                .map(|(role, data)| ((*role).to_owned(), 0o644, data.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn a_raw_entry_extracts_the_same_files_as_a_compressed_one_and_recompresses_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let object = vec![7u8; 100_000];
        let packed = files(&[("object", &object), ("dep", b"a.o: a.c\n")]);
        let meta = EntryMeta {
            stdout: b"out".to_vec(),
            stderr: b"warning: x".to_vec(),
            exit_status: 0,
            compile_ms: 1234,
        };
        let raw = packed.pack_as(&meta, EntryFormat::Raw).unwrap();
        let zstd = packed.pack(&meta).unwrap();
        assert_eq!(raw[8..12], RAW_ENTRY_FORMAT_VERSION.to_le_bytes());
        assert!(raw.len() > object.len() && zstd.len() < object.len() / 10);
        for entry in [&raw, &zstd] {
            let outputs = [
                OutputPath::new("object", dir.path().join("a.o")),
                OutputPath::new("dep", dir.path().join("a.d")),
            ];
            assert_eq!(extract(entry, &outputs).unwrap(), meta);
            assert_eq!(std::fs::read(dir.path().join("a.o")).unwrap(), object);
            assert_eq!(
                std::fs::read(dir.path().join("a.d")).unwrap(),
                b"a.o: a.c\n"
            );
        }
        assert_eq!(compressed(&raw).unwrap().as_ref(), zstd.as_slice());
        assert_eq!(stored_compile_ms(&raw), Some(1234));
        for entry in [&raw, &zstd] {
            let outputs = [
                OutputPath::new("dep", dir.path().join("b.d")),
                OutputPath::new("object", dir.path().join("b.o")),
            ];
            let extracted = extract_with_digests(entry, &outputs).unwrap();
            assert_eq!(
                extracted.digests,
                vec![
                    *blake3::hash(b"a.o: a.c\n").as_bytes(),
                    *blake3::hash(&object).as_bytes()
                ]
            );
        }
        assert_eq!(stored_compile_ms(&zstd), Some(1234));
        assert_eq!(stored_compile_ms(&raw[..40]), None);
        assert_eq!(stored_compile_ms(b"not an entry at all, not at all"), None);
        assert!(matches!(
            compressed(&zstd).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn any_flipped_byte_of_a_raw_entry_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let raw = files(&[("object", b"0123456789abcdef")])
            .pack_as(&EntryMeta::default(), EntryFormat::Raw)
            .unwrap();
        let target = dir.path().join("a.o");
        for i in 0..raw.len() {
            let mut damaged = raw.clone();
            damaged[i] ^= 0x20;
            let outputs = [OutputPath::new("object", target.clone())];
            assert!(extract(&damaged, &outputs).is_err(), "byte {i} flipped");
            assert!(!target.exists(), "byte {i} flipped: nothing written");
            assert!(compressed(&damaged).is_err());
        }
    }

    #[test]
    fn duplicate_roles_are_refused_before_reading() {
        let outs = [
            OutputPath::new("object", "/nonexistent/a"),
            OutputPath::new("object", "/nonexistent/b"),
        ];
        let err = pack(&outs, &EntryMeta::default(), &ReadLimits::default()).unwrap_err();
        assert!(matches!(err, EntryError::DuplicateRole { role } if role == "object"));
    }

    #[test]
    fn errors_name_the_path() {
        let err = pack(
            &[OutputPath::new("object", "/nonexistent/a.o")],
            &EntryMeta::default(),
            &ReadLimits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/a.o"), "{err}");
    }
}
