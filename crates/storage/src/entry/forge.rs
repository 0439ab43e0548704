//! Hostile entries, for hoard's own tests of what a reader does with bytes from a tier it
//! does not trust. Not part of the API: nothing in hoard calls this.

use std::io::{self, Write};

use super::codec::{self, Header, MAGIC, PREAMBLE_LEN};
use super::{ENTRY_FORMAT_VERSION, EntryError, EntryLimits};

/// Zeros written per call while inflating a file.
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

/// `entry` (any format) re-encoded as a compressed entry in which the file of `role`
/// declares `declared` bytes and holds that many zero bytes, its blake3 in the header left
/// as the real file's. Its checksum holds and every byte decompresses: a reader finds it
/// wrong only once it has decompressed the whole file. About 32 KiB of zstd per GiB
/// declared (a "decompression bomb"). An error when `entry` does not verify or holds no
/// file of `role`.
pub fn inflated(entry: &[u8], role: &str, declared: u64) -> Result<Vec<u8>, EntryError> {
    let decoded = super::open::decode(entry, &EntryLimits::default())?;
    let mut header: Header = decoded.header;
    let target = header
        .files
        .iter()
        .position(|f| f.role == role)
        .ok_or_else(|| codec::corrupt(format!("no file {role:?} in the entry")))?;
    header.files[target].size = declared;
    let header_bytes = rmp_serde::to_vec_named(&header).map_err(|e| EntryError::Encode {
        reason: format!("header: {e}"),
    })?;
    let encode_err = |e: io::Error| EntryError::Encode {
        reason: format!("compression: {e}"),
    };
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&ENTRY_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; blake3::OUT_LEN]);
    let mut enc = zstd::stream::Encoder::new(out, 1).map_err(encode_err)?;
    enc.include_checksum(true).map_err(encode_err)?;
    let header_len = u32::try_from(header_bytes.len()).unwrap_or(u32::MAX);
    enc.write_all(&header_len.to_le_bytes())
        .and_then(|()| enc.write_all(&header_bytes))
        .map_err(encode_err)?;
    for (i, data) in decoded.files.iter().enumerate() {
        if i != target {
            enc.write_all(data).map_err(encode_err)?;
            continue;
        }
        let mut left = declared;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64) as usize;
            enc.write_all(&ZEROS[..n]).map_err(encode_err)?;
            left -= n as u64;
        }
    }
    let mut out = enc.finish().map_err(encode_err)?;
    let digest = blake3::hash(&out[PREAMBLE_LEN..]);
    out[MAGIC.len() + 4..PREAMBLE_LEN].copy_from_slice(digest.as_bytes());
    Ok(out)
}

/// The roles and declared sizes of an entry's files, read from a verified header (the
/// files themselves are not read): how a test tells an object's entry from a manifest's.
pub fn declared_files(entry: &[u8]) -> Result<Vec<(String, u64)>, EntryError> {
    let opened = super::open::open(entry, &EntryLimits::default())?;
    Ok(opened
        .header
        .files
        .iter()
        .map(|f| (f.role.clone(), f.size))
        .collect())
}

/// `content`'s files and output, carrying `donor`'s signature (both any format): what a
/// writer to a shared tier makes of a validly signed entry to smuggle other bytes under it.
/// Its checksums hold; only the signature can tell. An error when either does not verify.
pub fn with_signature_of(content: &[u8], donor: &[u8]) -> Result<Vec<u8>, EntryError> {
    let donor = super::open::decode(donor, &EntryLimits::default())?
        .header
        .sig;
    codec::reencode(content, |header| header.sig = donor)
}

/// `entry` without its signature, compressed: what a writer without a signing key (or one
/// that strips signatures) puts in a tier. An error when it does not verify.
pub fn unsigned(entry: &[u8]) -> Result<Vec<u8>, EntryError> {
    codec::reencode(entry, |header| header.sig = None)
}

/// The public key that signed `entry`, as far as its header says (nothing is verified), or
/// `None` when it is unsigned or unreadable: for tests that check who signed what a tier
/// holds.
pub fn signer_bytes(entry: &[u8]) -> Option<Vec<u8>> {
    super::open::decode(entry, &EntryLimits::default())
        .ok()?
        .header
        .sig
        .map(|sig| sig.key)
}
