//! The bytes of an entry: preamble, then a frame holding a msgpack header and the files'
//! bytes. Everything here works on memory; reading and writing files is in the parent.
//!
//! ```text
//! b"HOARDENT" | version: u32 LE | blake3(frame): 32 bytes | frame
//! body  = header_len: u32 LE | header (msgpack) | file bytes, in header order
//! frame = zstd(body)   (version 1: compressed, what travels and what remote tiers hold)
//! frame = body         (version 2: raw, what the local disk tier holds by default)
//! ```
//!
//! A raw entry makes a local hit a verified copy: one blake3 pass over the frame and one
//! write per file, with no decompression and no second pass per file.
//!
//! The blake3 of the frame is there because zstd's own content checksum is 32 bits and does
//! not cover the frame header: a flipped window-size bit, for one, decodes to the same content.
//! With the digest, any damaged byte is refused before decompression starts.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::{ENTRY_FORMAT_VERSION, EntryError, EntryKind, EntryMeta};

/// The first bytes of every entry.
pub(super) const MAGIC: &[u8; 8] = b"HOARDENT";
pub(super) const PREAMBLE_LEN: usize = MAGIC.len() + 4 + blake3::OUT_LEN;

/// A header longer than this is refused before it is read: stdout and stderr live there, and
/// a compiler's diagnostics never come near it.
pub(super) const MAX_HEADER_LEN: u32 = 64 << 20;

/// The most file content one entry may hold in total. A lying header cannot make the
/// decoder allocate more than this, and `pack` refuses to build an entry `extract` would
/// refuse.
pub const MAX_CONTENT_SIZE: u64 = 8 << 30;

/// Memory reserved up front for one file; larger files grow as their bytes actually arrive,
/// so a header that lies about a size costs at most this much before the lie is found.
const MAX_UPFRONT_RESERVE: u64 = 64 << 20;

/// Level 1 as ccache uses by default: a miss pays for compression, and higher levels buy
/// little on object files for much more time.
const COMPRESSION_LEVEL: i32 = 1;

/// How an entry's body is framed: the version after the magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFormat {
    /// Version 1: the body in one zstd frame. Smaller; what remote tiers and old peers read.
    Zstd,
    /// Version 2: the body as is. A hit is a verified copy, without decompression.
    Raw,
}

impl EntryFormat {
    fn version(self) -> u32 {
        match self {
            EntryFormat::Zstd => ENTRY_FORMAT_VERSION,
            EntryFormat::Raw => RAW_ENTRY_FORMAT_VERSION,
        }
    }

    fn of_version(version: u32) -> Option<Self> {
        [EntryFormat::Zstd, EntryFormat::Raw]
            .into_iter()
            .find(|f| f.version() == version)
    }
}

/// The version of [`EntryFormat::Raw`] entries.
pub const RAW_ENTRY_FORMAT_VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
    pub kind: EntryKind,
    pub files: Vec<FileRecord>,
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    pub exit_status: i32,
    /// Added within format versions 1 and 2: entries without it read as zero, and older
    /// readers skip it.
    #[serde(default)]
    pub compile_ms: u64,
    /// Who wrote the entry ([`super::signature`]). Added within format versions 1 and 2:
    /// absent from unsigned entries, and older readers skip it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<super::signature::EntrySignature>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FileRecord {
    pub role: String,
    pub mode: u32,
    pub size: u64,
    #[serde(with = "serde_bytes")]
    pub blake3: Vec<u8>,
}

/// One file to encode: its role, unix permission bits and content.
pub(super) struct FileIn<'a> {
    pub role: &'a str,
    pub mode: u32,
    pub data: &'a [u8],
}

/// What an entry holds once decoded and verified; `files[i]` belongs to `header.files[i]`.
/// A raw entry's files are borrowed from the entry's bytes.
#[derive(Debug)]
pub(super) struct Decoded<'a> {
    pub header: Header,
    pub files: Vec<Cow<'a, [u8]>>,
}

/// Encodes an entry. Only zstd or msgpack refusing its input can fail here.
pub(super) fn encode(
    format: EntryFormat,
    kind: EntryKind,
    files: &[FileIn<'_>],
    meta: &EntryMeta,
) -> Result<Vec<u8>, EntryError> {
    let header = Header {
        kind,
        files: files
            .iter()
            .map(|f| FileRecord {
                role: f.role.to_owned(),
                mode: f.mode,
                size: f.data.len() as u64,
                blake3: blake3::hash(f.data).as_bytes().to_vec(),
            })
            .collect(),
        stdout: meta.stdout.clone(),
        stderr: meta.stderr.clone(),
        exit_status: meta.exit_status,
        compile_ms: meta.compile_ms,
        sig: None,
    };
    let data: Vec<&[u8]> = files.iter().map(|f| f.data).collect();
    encode_header(format, &header, &data)
}

/// Encodes `header` with its files' bytes (`files[i]` for `header.files[i]`, whose size and
/// blake3 it must already hold).
pub(super) fn encode_header(
    format: EntryFormat,
    header: &Header,
    files: &[&[u8]],
) -> Result<Vec<u8>, EntryError> {
    let header_bytes = rmp_serde::to_vec_named(header).map_err(|e| EntryError::Encode {
        reason: format!("header: {e}"),
    })?;
    let header_len = u32::try_from(header_bytes.len())
        .ok()
        .filter(|len| *len <= MAX_HEADER_LEN)
        .ok_or_else(|| EntryError::Encode {
            reason: format!(
                "header of {} bytes (stdout/stderr) exceeds the {MAX_HEADER_LEN}-byte limit",
                header_bytes.len()
            ),
        })?;
    let content: u64 = files.iter().map(|f| f.len() as u64).sum();
    let body_len = 4 + u64::from(header_len) + content;

    let reserve = match format {
        EntryFormat::Zstd => body_len / 2,
        EntryFormat::Raw => body_len,
    };
    let mut out = Vec::with_capacity(PREAMBLE_LEN + reserve as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&format.version().to_le_bytes());
    out.extend_from_slice(&[0; blake3::OUT_LEN]);
    let write_body = |sink: &mut dyn Write| -> io::Result<()> {
        sink.write_all(&header_len.to_le_bytes())?;
        sink.write_all(&header_bytes)?;
        for file in files {
            sink.write_all(file)?;
        }
        Ok(())
    };
    let mut out = match format {
        EntryFormat::Zstd => compress(out, body_len, |enc| write_body(enc)),
        EntryFormat::Raw => write_body(&mut out).map(|()| out),
    }
    .map_err(|e| EntryError::Encode {
        reason: format!("compression: {e}"),
    })?;
    let digest = blake3::hash(&out[PREAMBLE_LEN..]);
    out[MAGIC.len() + 4..PREAMBLE_LEN].copy_from_slice(digest.as_bytes());
    Ok(out)
}

fn compress(
    out: Vec<u8>,
    body_len: u64,
    write: impl FnOnce(&mut zstd::stream::Encoder<'static, Vec<u8>>) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut enc = zstd::stream::Encoder::new(out, COMPRESSION_LEVEL)?;
    enc.include_checksum(true)?;
    enc.set_pledged_src_size(Some(body_len))?;
    write(&mut enc)?;
    enc.finish()
}

pub(super) fn corrupt(reason: impl Into<String>) -> EntryError {
    EntryError::Corrupt {
        reason: reason.into(),
    }
}

/// Re-encodes a raw entry as a compressed one, its header (signature included) unchanged; a
/// compressed entry comes back as it is. What leaves the machine (remote tiers) is
/// compressed.
pub(super) fn compressed(entry: &[u8]) -> Result<Cow<'_, [u8]>, EntryError> {
    if checked_frame(entry)?.0 == EntryFormat::Zstd {
        return Ok(Cow::Borrowed(entry));
    }
    reencode(entry, |_| ()).map(Cow::Owned)
}

/// Decodes and verifies `entry` (either format), lets `edit` change its header (not its
/// files), and encodes it compressed.
pub(super) fn reencode(
    entry: &[u8],
    edit: impl FnOnce(&mut Header),
) -> Result<Vec<u8>, EntryError> {
    let Decoded { mut header, files } = super::open::decode(entry, &super::EntryLimits::default())?;
    edit(&mut header);
    let data: Vec<&[u8]> = files.iter().map(AsRef::as_ref).collect();
    encode_header(EntryFormat::Zstd, &header, &data)
}

/// Checks the preamble (magic, version) and the frame's digest without decompressing, and
/// returns the format and the frame. Cheap enough for a server passing entry bytes through
/// unopened.
pub(super) fn checked_frame(entry: &[u8]) -> Result<(EntryFormat, &[u8]), EntryError> {
    if entry.len() < PREAMBLE_LEN {
        return Err(corrupt(format!(
            "{} bytes, shorter than the {PREAMBLE_LEN}-byte preamble",
            entry.len()
        )));
    }
    let (magic, rest) = entry.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(corrupt("bad magic: not a hoard entry"));
    }
    let (version, rest) = rest.split_at(4);
    let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
    let Some(format) = EntryFormat::of_version(version) else {
        return Err(EntryError::UnsupportedVersion {
            found: version,
            supported: RAW_ENTRY_FORMAT_VERSION,
        });
    };
    let (digest, frame) = rest.split_at(blake3::OUT_LEN);
    if blake3::hash(frame).as_bytes() != digest {
        return Err(corrupt("checksum mismatch: the entry was damaged"));
    }
    Ok((format, frame))
}

/// The compile time an entry's header records, read without verifying the entry (for
/// statistics on bytes passed through unopened): the header alone is parsed, decompressing
/// only as far as it reaches. `None` when the bytes are not an entry or the header is
/// unreadable.
pub(super) fn stored_compile_ms(entry: &[u8]) -> Option<u64> {
    read_header(entry).map(|header| header.compile_ms)
}

/// An entry's header, read without verifying the entry (decompressing only as far as the
/// header reaches); `None` when the bytes are not an entry or the header is unreadable.
pub(super) fn read_header(entry: &[u8]) -> Option<Header> {
    let version = u32::from_le_bytes(*entry.get(MAGIC.len()..)?.first_chunk::<4>()?);
    if !entry.starts_with(MAGIC) {
        return None;
    }
    let frame = entry.get(PREAMBLE_LEN..)?;
    let header = match EntryFormat::of_version(version)? {
        EntryFormat::Raw => {
            let (len, rest) = frame.split_first_chunk::<4>()?;
            parse_header(rest.get(..u32::from_le_bytes(*len) as usize)?).ok()?
        }
        EntryFormat::Zstd => {
            let mut dec = super::open::decoder(frame).ok()?;
            let mut len = [0u8; 4];
            dec.read_exact(&mut len).ok()?;
            let header_len = u32::from_le_bytes(len);
            if header_len > MAX_HEADER_LEN {
                return None;
            }
            let bytes = read_exact_vec(&mut dec, u64::from(header_len)).ok()?;
            parse_header(&bytes).ok()?
        }
    };
    Some(header)
}

/// The largest file size a raw entry's header declares, read without verifying anything:
/// whether the entry is worth verifying and splitting. `None` when the header is unreadable.
pub(super) fn raw_largest_file(entry: &[u8]) -> Option<u64> {
    let body = entry.get(PREAMBLE_LEN..)?;
    let (len, rest) = body.split_first_chunk::<4>()?;
    let header = parse_header(rest.get(..u32::from_le_bytes(*len) as usize)?).ok()?;
    (header.kind == EntryKind::Outputs).then(|| header.files.iter().map(|f| f.size).max())?
}

/// Reads up to `len` bytes, reserving memory only as fast as data actually arrives.
pub(super) fn read_exact_vec(reader: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len.min(MAX_UPFRONT_RESERVE) as usize);
    reader.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

pub(super) fn parse_header(bytes: &[u8]) -> Result<Header, EntryError> {
    let mut de = rmp_serde::Deserializer::new(bytes);
    let header = Header::deserialize(&mut de)
        .map_err(|e| corrupt(format!("header does not decode: {e}")))?;
    if !de.into_inner().is_empty() {
        return Err(corrupt("bytes after the header"));
    }
    let mut roles = HashSet::new();
    let mut total: u64 = 0;
    for record in &header.files {
        if record.blake3.len() != blake3::OUT_LEN {
            return Err(corrupt(format!(
                "file {:?}: digest of {} bytes",
                record.role,
                record.blake3.len()
            )));
        }
        if !roles.insert(record.role.as_str()) {
            return Err(corrupt(format!("role {:?} stored twice", record.role)));
        }
        total = total
            .checked_add(record.size)
            .filter(|t| *t <= MAX_CONTENT_SIZE)
            .ok_or_else(|| {
                corrupt(format!(
                    "declared file sizes exceed the {MAX_CONTENT_SIZE}-byte limit"
                ))
            })?;
    }
    Ok(header)
}
