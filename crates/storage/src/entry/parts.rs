//! An entry taken apart and put back together, for a store that keeps each file as an
//! object of its own (a REAPI server's CAS: [`crate::tier`]'s `reapi` module). The header
//! travels as its own bytes, byte for byte, so what comes back (signature included) is the
//! entry that was stored; the files travel as plain blobs that identical outputs share.

use super::codec::{self, Decoded, EntryFormat, Header};
use super::{EntryError, EntryKind, EntryLimits};

/// One file of an entry taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFile {
    /// Its role in the entry.
    pub role: String,
    /// Its unix permission bits.
    pub mode: u32,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// An entry taken apart by [`take_apart`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryParts {
    /// The entry's header (msgpack), as [`put_together`] takes it back.
    pub header: Vec<u8>,
    /// Whether it holds a compile's outputs or one opaque payload.
    pub kind: EntryKind,
    /// Its files, in the header's order.
    pub files: Vec<PartFile>,
    /// The compiler's standard output.
    pub stdout: Vec<u8>,
    /// The compiler's standard error.
    pub stderr: Vec<u8>,
    /// The compiler's exit status.
    pub exit_status: i32,
}

/// What a stored header says of one file: enough to fetch it and bound the fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// Its role in the entry.
    pub role: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Decodes and verifies `entry` (either format) and takes it apart.
pub fn take_apart(entry: &[u8]) -> Result<EntryParts, EntryError> {
    let Decoded { header, files } = super::open::decode(entry, &EntryLimits::default())?;
    let header_bytes = rmp_serde::to_vec_named(&header).map_err(|e| EntryError::Encode {
        reason: format!("header: {e}"),
    })?;
    let files = header
        .files
        .iter()
        .zip(files)
        .map(|(record, data)| PartFile {
            role: record.role.clone(),
            mode: record.mode,
            data: data.into_owned(),
        })
        .collect();
    Ok(EntryParts {
        header: header_bytes,
        kind: header.kind,
        files,
        stdout: header.stdout,
        stderr: header.stderr,
        exit_status: header.exit_status,
    })
}

/// The files a stored header declares, in its order. The header is not trusted: a header
/// that does not decode, or declares a role twice or more than an entry may hold, is
/// refused as corrupt.
pub fn records(header: &[u8]) -> Result<Vec<PartRecord>, EntryError> {
    let header = parsed(header)?;
    Ok(header
        .files
        .into_iter()
        .map(|r| PartRecord {
            role: r.role,
            size: r.size,
        })
        .collect())
}

/// Puts an entry back together from its header and its files' bytes (`files[i]` for the
/// header's `i`th file), as a raw entry: a hit costs no compression. Only sizes are checked
/// here; the caller verifies the result as any entry from another writer (each file's
/// blake3 against the header, and the signature where one is required).
pub fn put_together(header: &[u8], files: &[&[u8]]) -> Result<Vec<u8>, EntryError> {
    let parsed = parsed(header)?;
    if parsed.files.len() != files.len() {
        return Err(codec::corrupt(format!(
            "header declares {} files, {} given",
            parsed.files.len(),
            files.len()
        )));
    }
    for (record, data) in parsed.files.iter().zip(files) {
        if record.size != data.len() as u64 {
            return Err(codec::corrupt(format!(
                "file {:?}: {} bytes where the header declares {}",
                record.role,
                data.len(),
                record.size
            )));
        }
    }
    codec::encode_header(EntryFormat::Raw, &parsed, files)
}

fn parsed(header: &[u8]) -> Result<Header, EntryError> {
    if header.len() as u64 > u64::from(codec::MAX_HEADER_LEN) {
        return Err(codec::corrupt("header over the size limit"));
    }
    let header = codec::parse_header(header)?;
    EntryLimits::default().check(&header)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{self, EntryFormat, EntryMeta, pack_blob};
    use proptest::prelude::*;

    fn packed(files: &[(&str, u32, Vec<u8>)], meta: &EntryMeta, format: EntryFormat) -> Vec<u8> {
        let ins: Vec<codec::FileIn<'_>> = files
            .iter()
            .map(|(role, mode, data)| codec::FileIn {
                role,
                mode: *mode,
                data,
            })
            .collect();
        codec::encode(format, EntryKind::Outputs, &ins, meta).unwrap()
    }

    #[test]
    fn a_blob_entry_comes_apart_as_one_file_and_back_whole() {
        let entry = pack_blob(b"manifest bytes");
        let parts = take_apart(&entry).unwrap();
        assert_eq!(parts.kind, EntryKind::Blob);
        assert_eq!(parts.files.len(), 1);
        let data: Vec<&[u8]> = parts.files.iter().map(|f| &f.data[..]).collect();
        let back = put_together(&parts.header, &data).unwrap();
        assert_eq!(entry::unpack_blob(&back).unwrap(), b"manifest bytes");
    }

    #[test]
    fn a_file_of_the_wrong_size_or_count_is_refused() {
        let meta = EntryMeta::default();
        let entry = packed(
            &[("object", 0o644, vec![1, 2, 3])],
            &meta,
            EntryFormat::Zstd,
        );
        let parts = take_apart(&entry).unwrap();
        assert!(
            put_together(&parts.header, &[b"12"])
                .unwrap_err()
                .is_corrupt()
        );
        assert!(put_together(&parts.header, &[]).unwrap_err().is_corrupt());
        assert!(put_together(b"not msgpack", &[]).unwrap_err().is_corrupt());
    }

    #[test]
    fn a_file_with_the_right_size_but_other_bytes_fails_verification() {
        let meta = EntryMeta::default();
        let entry = packed(
            &[("object", 0o644, vec![1, 2, 3])],
            &meta,
            EntryFormat::Zstd,
        );
        let parts = take_apart(&entry).unwrap();
        let back = put_together(&parts.header, &[&[9, 9, 9]]).unwrap();
        let verified = super::super::open::verify(&back, &EntryLimits::default());
        assert!(verified.unwrap_err().is_corrupt());
    }

    proptest! {
        #[test]
        fn any_entry_taken_apart_comes_back_with_the_same_header_and_files(
            files in proptest::collection::vec(
                (0u32..0o777, proptest::collection::vec(any::<u8>(), 0..300)), 0..4),
            stdout in proptest::collection::vec(any::<u8>(), 0..50),
            stderr in proptest::collection::vec(any::<u8>(), 0..50),
            exit_status in any::<i32>(),
            compile_ms in any::<u64>(),
            raw in any::<bool>(),
        ) {
            let named: Vec<(String, u32, Vec<u8>)> = files
                .into_iter()
                .enumerate()
                .map(|(i, (mode, data))| (format!("role{i}"), mode, data))
                .collect();
            let refs: Vec<(&str, u32, Vec<u8>)> =
                named.iter().map(|(r, m, d)| (r.as_str(), *m, d.clone())).collect();
            let meta = EntryMeta { stdout, stderr, exit_status, compile_ms };
            let format = if raw { EntryFormat::Raw } else { EntryFormat::Zstd };
            let entry = packed(&refs, &meta, format);
            let parts = take_apart(&entry).unwrap();
            prop_assert_eq!(&parts.stdout, &meta.stdout);
            prop_assert_eq!(parts.exit_status, exit_status);
            let records = records(&parts.header).unwrap();
            prop_assert_eq!(records.len(), named.len());
            let data: Vec<&[u8]> = parts.files.iter().map(|f| &f.data[..]).collect();
            let back = put_together(&parts.header, &data).unwrap();
            let header = super::super::open::verify(&back, &EntryLimits::default()).unwrap();
            prop_assert_eq!(header.compile_ms, compile_ms);
            let again = take_apart(&back).unwrap();
            prop_assert_eq!(again, parts);
        }

        #[test]
        fn records_never_panic_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = records(&bytes);
        }
    }
}
