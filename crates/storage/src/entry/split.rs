//! Split entries: how the local disk tier keeps a raw entry with large files, so that a hit
//! hands each large file over by a hard link (opt-in) or a kernel-side copy (a reflink on
//! filesystems that share extents) instead of reading it into memory and writing it out.
//!
//! ```text
//! stub  = b"HOARDENT" | 3: u32 LE | blake3(rest): 32 bytes | rest
//! rest  = stored_size: u64 LE | split_min: u64 LE | frame digest of the raw entry: 32 bytes
//!         | header_len: u32 LE | header (the raw entry's, byte for byte)
//!         | the bytes of each file smaller than split_min, in header order
//! ```
//!
//! Each file of `split_min` bytes or more lives beside the stub under its own name (the
//! first 16 hex digits of its blake3), written before the stub. The stub's digest covers the
//! header with every file's size and blake3, so a file beside it is checked against a
//! verified digest; joined back, stub and files are the raw entry byte for byte, frame digest
//! included. A split entry never leaves the disk tier: everything above it sees raw entries.

use std::borrow::Cow;
use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use super::codec::{self, Decoded, Header, MAGIC, PREAMBLE_LEN};
use super::{EntryError, EntryKind, EntryMeta, Extracted, MODE_MASK, RAW_ENTRY_FORMAT_VERSION};
use crate::OutputPath;

/// The version after the magic of a split entry's stub.
pub const SPLIT_ENTRY_FORMAT_VERSION: u32 = 3;

/// Files of this size or more are kept beside the stub: below it, a copy from memory costs
/// less than opening another file.
pub const SPLIT_MIN_SIZE: u64 = 64 * 1024;

const FIXED_LEN: usize = 8 + 8 + blake3::OUT_LEN;

/// A raw entry ready to be stored split: the stub, and the files to write beside it.
#[derive(Debug)]
pub struct Split<'a> {
    /// The stub's bytes.
    pub stub: Vec<u8>,
    /// The files kept beside the stub.
    pub beside: Vec<BesideFile<'a>>,
}

/// One file kept beside a stub.
#[derive(Debug)]
pub struct BesideFile<'a> {
    /// Its name beside the stub (16 hex digits of its blake3).
    pub name: String,
    /// Its permission bits, which a hard link hands over as they are.
    pub mode: u32,
    /// Its content.
    pub data: &'a [u8],
}

/// Splits a raw outputs entry whose files include one of `split_min` bytes or more; `None`
/// for any other entry (compressed, a blob, only small files), which is stored whole. The
/// entry is verified first, so what is split is sound.
pub fn split(entry: &[u8], split_min: u64) -> Result<Option<Split<'_>>, EntryError> {
    // Most entries (object files) have no large file: decided from the header alone, so
    // they are not hashed once more here.
    if !super::is_raw(entry) || codec::raw_largest_file(entry).is_none_or(|max| max < split_min) {
        return Ok(None);
    }
    let Decoded { header, files } = super::open::decode(entry, &super::EntryLimits::default())?;
    if header.kind != EntryKind::Outputs || header.files.iter().all(|f| f.size < split_min) {
        return Ok(None);
    }
    let body = &entry[PREAMBLE_LEN..];
    let header_end = 4 + u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let mut rest = Vec::with_capacity(FIXED_LEN + header_end);
    rest.extend_from_slice(&[0; 8]);
    rest.extend_from_slice(&split_min.to_le_bytes());
    rest.extend_from_slice(&entry[MAGIC.len() + 4..PREAMBLE_LEN]);
    rest.extend_from_slice(&body[..header_end]);
    let mut beside = Vec::new();
    for (record, data) in header.files.iter().zip(&files) {
        let Cow::Borrowed(data) = data else {
            return Ok(None);
        };
        if record.size < split_min {
            rest.extend_from_slice(data);
        } else {
            beside.push(BesideFile {
                name: beside_name(&record.blake3),
                mode: record.mode & MODE_MASK,
                data,
            });
        }
    }
    let stub_len = PREAMBLE_LEN + rest.len();
    let stored = stub_len as u64 + beside.iter().map(|f| f.data.len() as u64).sum::<u64>();
    rest[..8].copy_from_slice(&stored.to_le_bytes());
    let mut stub = Vec::with_capacity(stub_len);
    stub.extend_from_slice(MAGIC);
    stub.extend_from_slice(&SPLIT_ENTRY_FORMAT_VERSION.to_le_bytes());
    stub.extend_from_slice(blake3::hash(&rest).as_bytes());
    stub.extend_from_slice(&rest);
    Ok(Some(Split { stub, beside }))
}

fn beside_name(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut name, b| {
            let _ = write!(name, "{b:02x}");
            name
        })
}

/// Whether these bytes begin like a split entry's stub; nothing is verified.
pub fn is_split(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
        && bytes.get(8..12) == Some(&SPLIT_ENTRY_FORMAT_VERSION.to_le_bytes()[..])
}

/// The bytes a split entry occupies, stub and files together, as its stub records it
/// (unverified: for size accounting). `None` when the bytes are not a stub.
pub fn stored_size(stub: &[u8]) -> Option<u64> {
    if !is_split(stub) {
        return None;
    }
    let bytes = stub.get(PREAMBLE_LEN..PREAMBLE_LEN + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// A verified stub.
#[derive(Debug)]
pub struct Stub<'a> {
    frame_digest: &'a [u8],
    header_bytes: &'a [u8],
    header: Header,
    /// The entry's files, in header order.
    pub files: Vec<StubFile<'a>>,
}

/// One file of a split entry.
#[derive(Debug)]
pub struct StubFile<'a> {
    /// Its role.
    pub role: String,
    /// Its permission bits.
    pub mode: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Its blake3.
    pub blake3: [u8; 32],
    /// Its bytes, when they are in the stub; `None` when the file is beside it.
    pub inline: Option<&'a [u8]>,
    /// Its name beside the stub, when it is there.
    pub beside: Option<String>,
}

/// Checks a stub's digest and reads its header.
pub fn parse(stub: &[u8]) -> Result<Stub<'_>, EntryError> {
    let corrupt = |reason: &str| EntryError::Corrupt {
        reason: format!("split entry: {reason}"),
    };
    if !is_split(stub) || stub.len() < PREAMBLE_LEN + FIXED_LEN + 4 {
        return Err(corrupt("not a stub, or shorter than its fixed fields"));
    }
    let rest = &stub[PREAMBLE_LEN..];
    if blake3::hash(rest).as_bytes()[..] != stub[MAGIC.len() + 4..PREAMBLE_LEN] {
        return Err(corrupt("checksum mismatch: the stub was damaged"));
    }
    let split_min = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
    let frame_digest = &rest[16..FIXED_LEN];
    let body = &rest[FIXED_LEN..];
    let header_len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let header_bytes = body
        .get(..4 + header_len)
        .ok_or_else(|| corrupt("header past the end"))?;
    let header = codec::parse_header(&header_bytes[4..])?;
    let mut data = &body[4 + header_len..];
    let mut files = Vec::with_capacity(header.files.len());
    for record in &header.files {
        let blake3: [u8; 32] = record.blake3.as_slice().try_into().unwrap_or_default();
        let (inline, beside) = if record.size < split_min {
            let size = usize::try_from(record.size).unwrap_or(usize::MAX);
            if size > data.len() {
                return Err(corrupt("a file runs past the end"));
            }
            let (file, after) = data.split_at(size);
            data = after;
            (Some(file), None)
        } else {
            (None, Some(beside_name(&blake3)))
        };
        files.push(StubFile {
            role: record.role.clone(),
            mode: record.mode & MODE_MASK,
            size: record.size,
            blake3,
            inline,
            beside,
        });
    }
    if !data.is_empty() {
        return Err(corrupt("data after the last file"));
    }
    Ok(Stub {
        frame_digest,
        header_bytes,
        header,
        files,
    })
}

impl Stub<'_> {
    /// What the compile printed, returned and took.
    pub fn meta(&self) -> EntryMeta {
        EntryMeta {
            stdout: self.header.stdout.clone(),
            stderr: self.header.stderr.clone(),
            exit_status: self.header.exit_status,
            compile_ms: self.header.compile_ms,
        }
    }

    /// The names of the files beside the stub.
    pub fn beside_names(&self) -> impl Iterator<Item = &str> {
        self.files.iter().filter_map(|f| f.beside.as_deref())
    }

    /// The raw entry again, byte for byte, with each file beside the stub read by `read`
    /// (given its name and size). The caller verifies it like any raw entry.
    pub fn join(
        &self,
        mut read: impl FnMut(&str, u64) -> io::Result<Vec<u8>>,
    ) -> io::Result<Vec<u8>> {
        let content: u64 = self.files.iter().map(|f| f.size).sum();
        let mut out = Vec::with_capacity(PREAMBLE_LEN + self.header_bytes.len() + content as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&RAW_ENTRY_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(self.frame_digest);
        out.extend_from_slice(self.header_bytes);
        for file in &self.files {
            match (&file.inline, &file.beside) {
                (Some(data), _) => out.extend_from_slice(data),
                (None, Some(name)) => out.extend_from_slice(&read(name, file.size)?),
                (None, None) => {}
            }
        }
        Ok(out)
    }
}

/// Where the files beside a stub are, and how a hit may trust them.
pub trait BesideFiles {
    /// The path of the file named `name` beside the stub.
    fn path(&self, name: &str) -> PathBuf;
    /// Checks that the file at `path` holds `file`'s bytes (its size and blake3); a file
    /// that does not is [`EntryError::Corrupt`].
    fn verify(&self, path: &Path, file: &StubFile<'_>) -> Result<(), EntryError>;
}

/// What [`deliver`] did.
#[derive(Debug)]
pub struct Delivered {
    /// What a whole entry's extraction returns.
    pub extracted: Extracted,
    /// The files beside the stub that were hard-linked into place (now sharing their inode
    /// with an output).
    pub linked: Vec<PathBuf>,
}

/// Writes a split entry's files onto `outputs`: the stub's small files from memory, the
/// files beside it by a hard link when `link` is set (falling back to a copy where a link
/// cannot be made, across filesystems for one) or else by a kernel-side copy. Every file is
/// verified and staged before any is renamed into place, as `super::extract` does.
pub fn deliver(
    stub: &Stub<'_>,
    outputs: &[OutputPath],
    beside: &dyn BesideFiles,
    link: bool,
) -> Result<Delivered, EntryError> {
    if stub.header.kind != EntryKind::Outputs {
        return Err(EntryError::Corrupt {
            reason: "split entry is not outputs".into(),
        });
    }
    super::check_roles(stub.files.iter().map(|f| f.role.clone()), outputs)?;
    let mut staged: Vec<TempPath> = Vec::with_capacity(outputs.len());
    let mut digests = Vec::with_capacity(outputs.len());
    let mut linked = Vec::new();
    for out in outputs {
        let Some(file) = stub.files.iter().find(|f| f.role == out.role) else {
            continue;
        };
        match (&file.inline, &file.beside) {
            (Some(data), _) => {
                staged.push(super::stage(&out.path, file.mode, data)?.into_temp_path());
            }
            (None, Some(name)) => {
                let source = beside.path(name);
                beside.verify(&source, file)?;
                let hard_linked = if link {
                    stage_link(&out.path, &source)
                } else {
                    None
                };
                if let Some(temp) = hard_linked {
                    staged.push(temp);
                    linked.push(source);
                } else {
                    staged.push(stage_copy(&out.path, file.mode, &source)?);
                }
            }
            (None, None) => {}
        }
        digests.push(file.blake3);
    }
    for (temp, out) in staged.into_iter().zip(outputs) {
        temp.persist(&out.path)
            .map_err(|e| EntryError::io("rename onto", &out.path)(e.error))?;
    }
    Ok(Delivered {
        extracted: Extracted {
            meta: stub.meta(),
            digests,
        },
        linked,
    })
}

fn dir_of(target: &Path) -> &Path {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A hard link to `source` under a fresh name beside `target`; `None` when the filesystem
/// will not make one (another filesystem, a link limit), so the caller copies instead.
fn stage_link(target: &Path, source: &Path) -> Option<TempPath> {
    let temp = tempfile::Builder::new()
        .prefix(".hoard-")
        .suffix(".tmp")
        .make_in(dir_of(target), |path| fs::hard_link(source, path));
    match temp {
        Ok(temp) => Some(temp.into_temp_path()),
        Err(e) => {
            tracing::debug!(source = %source.display(), error = %e, "no hard link, copying");
            None
        }
    }
}

/// A copy of `source` beside `target`, made by the kernel (`copy_file_range`, which shares
/// extents where the filesystem can).
fn stage_copy(target: &Path, mode: u32, source: &Path) -> Result<TempPath, EntryError> {
    let dir = dir_of(target);
    let mut temp = tempfile::Builder::new()
        .prefix(".hoard-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(EntryError::io("create a temporary file in", dir))?;
    let mut from = File::open(source).map_err(EntryError::io("open", source))?;
    io::copy(&mut from, temp.as_file_mut()).map_err(EntryError::io("copy into", temp.path()))?;
    temp.as_file_mut()
        .flush()
        .map_err(EntryError::io("write", temp.path()))?;
    temp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(EntryError::io("chmod", temp.path()))?;
    Ok(temp.into_temp_path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::codec::FileIn;
    use proptest::prelude::*;

    fn raw(files: &[Vec<u8>]) -> Vec<u8> {
        let roles: Vec<String> = (0..files.len()).map(|i| format!("f{i}")).collect();
        let inputs: Vec<FileIn<'_>> = files
            .iter()
            .zip(&roles)
            .map(|(data, role)| FileIn {
                role,
                mode: 0o644,
                data,
            })
            .collect();
        let meta = EntryMeta {
            stdout: b"o".to_vec(),
            stderr: b"e".to_vec(),
            exit_status: 0,
            compile_ms: 3,
        };
        codec::encode(
            super::super::EntryFormat::Raw,
            EntryKind::Outputs,
            &inputs,
            &meta,
        )
        .unwrap()
    }

    proptest! {
        #[test]
        fn split_then_join_gives_the_raw_entry_back(
            sizes in proptest::collection::vec(0usize..96, 1..5),
            split_min in 1u64..64,
        ) {
            let files: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| (0..*n).map(|b| (b as u8).wrapping_add(i as u8)).collect())
                .collect();
            let entry = raw(&files);
            let Some(split) = split(&entry, split_min).unwrap() else {
                prop_assert!(sizes.iter().all(|n| (*n as u64) < split_min));
                return Ok(());
            };
            let by_name: std::collections::HashMap<String, Vec<u8>> = split
                .beside
                .iter()
                .map(|f| (f.name.clone(), f.data.to_vec()))
                .collect();
            let beside_total: u64 = split.beside.iter().map(|f| f.data.len() as u64).sum();
            prop_assert_eq!(stored_size(&split.stub), Some(split.stub.len() as u64 + beside_total));
            let stub = parse(&split.stub).unwrap();
            let joined = stub.join(|name, _| Ok(by_name[name].clone())).unwrap();
            prop_assert_eq!(joined, entry);
        }

        #[test]
        fn any_stub_bytes_parse_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            flip in any::<usize>(),
        ) {
            let _ = parse(&bytes);
            let mut stub = split(&raw(&[vec![7; 80], vec![1; 3]]), 64).unwrap().unwrap().stub;
            let i = flip % stub.len();
            stub[i] ^= 0x10;
            prop_assert!(parse(&stub).is_err(), "byte {i} flipped");
        }
    }
}
