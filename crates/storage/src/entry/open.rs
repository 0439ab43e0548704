//! Reading an entry under limits. The preamble and the frame's digest come first; then the
//! header, whose declared sizes are checked against [`EntryLimits`] before a byte of any
//! file is decompressed or a buffer for it allocated; then the files, streamed through one
//! fixed buffer and each checked against its size and blake3 as it passes. Whatever an
//! entry declares, reading it costs at most that buffer, zstd's window (itself capped) and
//! the header (capped too) in memory: a few kilobytes of zstd cannot claim a gigabyte.

use std::borrow::Cow;
use std::io::{self, Read};

use super::codec::{self, Decoded, EntryFormat, Header, MAX_CONTENT_SIZE, MAX_HEADER_LEN};
use super::{DEFAULT_MAX_FILE_SIZE, EntryError, EntryKind};

/// The most a blob (a direct-mode manifest) may declare: it is read into memory whole, and
/// a manifest lists a compile's headers, a few hundred kilobytes for the largest.
pub const MAX_BLOB_SIZE: u64 = 64 << 20;

/// Bytes decompressed at a time: what a file costs in memory while it streams through.
const CHUNK: u64 = 128 << 10;

/// The largest zstd window (as a power of two) a frame may ask for. hoard compresses at
/// level 1, whose window is 2^19 bytes at most; a frame asking for more was not written by
/// hoard, and honouring it would let a small frame make the decoder allocate its window.
const MAX_WINDOW_LOG: u32 = 23;

/// What an entry may declare, checked against its header before anything is decompressed.
/// An entry declaring more is refused as corrupt: it was not written under these limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLimits {
    /// The largest file an entry may hold (the server's limit on an output it reads for a
    /// put, 4 GiB by default).
    pub max_file_size: u64,
    /// The most content an entry may hold in total.
    pub max_content_size: u64,
}

impl Default for EntryLimits {
    fn default() -> Self {
        Self {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_content_size: MAX_CONTENT_SIZE,
        }
    }
}

impl EntryLimits {
    /// What a blob may declare (it is held in memory whole): [`MAX_BLOB_SIZE`].
    pub const BLOB: EntryLimits = EntryLimits {
        max_file_size: MAX_BLOB_SIZE,
        max_content_size: MAX_BLOB_SIZE,
    };

    /// Refuses a header declaring a file or a total over these limits.
    pub(super) fn check(&self, header: &Header) -> Result<(), EntryError> {
        let mut total: u64 = 0;
        for record in &header.files {
            if record.size > self.max_file_size {
                return Err(codec::corrupt(format!(
                    "file {:?} declares {} bytes, over the {}-byte limit",
                    record.role, record.size, self.max_file_size
                )));
            }
            total = total.saturating_add(record.size);
        }
        if total > self.max_content_size {
            return Err(codec::corrupt(format!(
                "files declare {total} bytes in all, over the {}-byte limit",
                self.max_content_size
            )));
        }
        Ok(())
    }
}

/// An entry whose preamble, digest and header have been checked, its files not yet read.
pub(super) struct Opened<'a> {
    /// The header, its declared sizes within the limits it was opened under.
    pub header: Header,
    body: Body<'a>,
}

enum Body<'a> {
    /// A raw entry's file bytes, back to back, exactly as long as the header declares and
    /// covered by the frame digest already checked.
    Raw(&'a [u8]),
    /// A compressed entry's stream, positioned just after the header.
    Zstd(zstd::stream::read::Decoder<'static, &'a [u8]>),
}

/// Checks `entry`'s preamble, digest and header (its declared sizes against `limits`) and
/// returns it ready to stream. Nothing of any file is decompressed yet.
pub(super) fn open<'a>(entry: &'a [u8], limits: &EntryLimits) -> Result<Opened<'a>, EntryError> {
    let (format, frame) = codec::checked_frame(entry)?;
    open_frame(format, frame, limits)
}

/// [`open`] on a frame whose digest is checked (or, in tests, deliberately not).
pub(super) fn open_frame<'a>(
    format: EntryFormat,
    frame: &'a [u8],
    limits: &EntryLimits,
) -> Result<Opened<'a>, EntryError> {
    let opened = match format {
        EntryFormat::Raw => open_raw(frame)?,
        EntryFormat::Zstd => open_zstd(frame)?,
    };
    limits.check(&opened.header)?;
    // A blob is only ever read into memory whole: its own, tighter limit applies wherever
    // it is read, so a blob bomb is not even streamed through.
    if opened.header.kind == EntryKind::Blob {
        EntryLimits::BLOB.check(&opened.header)?;
    }
    if let Body::Raw(files) = opened.body {
        let declared: u64 = opened.header.files.iter().map(|f| f.size).sum();
        if declared != files.len() as u64 {
            return Err(codec::corrupt(format!(
                "files declare {declared} bytes, the body holds {}",
                files.len()
            )));
        }
    }
    Ok(opened)
}

fn open_raw(body: &[u8]) -> Result<Opened<'_>, EntryError> {
    let Some((len, rest)) = body.split_first_chunk::<4>() else {
        return Err(codec::corrupt("body ends before the header length"));
    };
    let header_len = u32::from_le_bytes(*len);
    if header_len > MAX_HEADER_LEN || header_len as usize > rest.len() {
        return Err(codec::corrupt(format!(
            "header length {header_len} past the body's end or the {MAX_HEADER_LEN}-byte limit"
        )));
    }
    let (header_bytes, files) = rest.split_at(header_len as usize);
    Ok(Opened {
        header: codec::parse_header(header_bytes)?,
        body: Body::Raw(files),
    })
}

fn zstd_err(e: &io::Error) -> EntryError {
    codec::corrupt(format!("decompression failed: {e}"))
}

/// A decoder over `frame` that refuses windows hoard never writes.
pub(super) fn decoder(frame: &[u8]) -> io::Result<zstd::stream::read::Decoder<'static, &[u8]>> {
    let mut dec = zstd::stream::read::Decoder::with_buffer(frame)?.single_frame();
    dec.window_log_max(MAX_WINDOW_LOG)?;
    Ok(dec)
}

fn open_zstd(frame: &[u8]) -> Result<Opened<'_>, EntryError> {
    let mut dec = decoder(frame).map_err(|e| zstd_err(&e))?;
    let mut len = [0u8; 4];
    dec.read_exact(&mut len)
        .map_err(|e| codec::corrupt(format!("body ends before the header length: {e}")))?;
    let header_len = u32::from_le_bytes(len);
    if header_len > MAX_HEADER_LEN {
        return Err(codec::corrupt(format!(
            "header length {header_len} exceeds the {MAX_HEADER_LEN}-byte limit"
        )));
    }
    let header_bytes =
        codec::read_exact_vec(&mut dec, u64::from(header_len)).map_err(|e| zstd_err(&e))?;
    if header_bytes.len() != header_len as usize {
        return Err(codec::corrupt(format!(
            "body ends inside the header ({} of {header_len} bytes)",
            header_bytes.len()
        )));
    }
    Ok(Opened {
        header: codec::parse_header(&header_bytes)?,
        body: Body::Zstd(dec),
    })
}

impl<'a> Opened<'a> {
    /// Streams each file, in header order, to `sink(index in the header, bytes)`, checking
    /// every file's size and (compressed) blake3, then that nothing follows the last one;
    /// returns the header. The sink sees a compressed entry's bytes before its file is
    /// verified: it must keep them aside until this returns `Ok`.
    pub(super) fn stream(
        self,
        mut sink: impl FnMut(usize, &[u8]) -> Result<(), EntryError>,
    ) -> Result<Header, EntryError> {
        let Opened { header, body } = self;
        match body {
            Body::Raw(mut rest) => {
                for (i, record) in header.files.iter().enumerate() {
                    // `open_frame` checked the sizes add up to exactly the body.
                    let (data, after) = rest.split_at(record.size as usize);
                    sink(i, data)?;
                    rest = after;
                }
            }
            Body::Zstd(mut dec) => {
                let largest = header.files.iter().map(|f| f.size).max().unwrap_or(0);
                let mut buf = vec![0u8; largest.clamp(1, CHUNK) as usize];
                for (i, record) in header.files.iter().enumerate() {
                    let mut hasher = blake3::Hasher::new();
                    let mut left = record.size;
                    while left > 0 {
                        let want = left.min(buf.len() as u64) as usize;
                        let n = read_some(&mut dec, &mut buf[..want])?;
                        if n == 0 {
                            return Err(codec::corrupt(format!(
                                "file {:?}: {} bytes stored, header says {}",
                                record.role,
                                record.size - left,
                                record.size
                            )));
                        }
                        hasher.update(&buf[..n]);
                        sink(i, &buf[..n])?;
                        left -= n as u64;
                    }
                    if hasher.finalize().as_bytes()[..] != record.blake3[..] {
                        return Err(codec::corrupt(format!(
                            "file {:?}: blake3 mismatch",
                            record.role
                        )));
                    }
                }
                // One more read takes the decoder to the frame's end, where zstd checks its
                // content checksum; anything left after that is not part of an entry.
                if read_some(&mut dec, &mut [0u8; 1])? != 0 {
                    return Err(codec::corrupt("data after the last file"));
                }
                if !dec.finish().is_empty() {
                    return Err(codec::corrupt("bytes after the zstd frame"));
                }
            }
        }
        Ok(header)
    }

    /// Verifies every file and returns them with the header: borrowed from a raw entry's
    /// bytes, decompressed into memory (no faster than they arrive, no more than the limits
    /// the entry was opened under) from a compressed one.
    pub(super) fn into_decoded(self) -> Result<Decoded<'a>, EntryError> {
        if let Body::Raw(mut rest) = self.body {
            let mut files = Vec::with_capacity(self.header.files.len());
            for record in &self.header.files {
                let (data, after) = rest.split_at(record.size as usize);
                files.push(Cow::Borrowed(data));
                rest = after;
            }
            return Ok(Decoded {
                header: self.header,
                files,
            });
        }
        let mut files: Vec<Vec<u8>> = vec![Vec::new(); self.header.files.len()];
        let header = self.stream(|i, chunk| {
            files[i].extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(Decoded {
            header,
            files: files.into_iter().map(Cow::Owned).collect(),
        })
    }
}

/// One read, retried when interrupted; a decoding error is corruption.
fn read_some(dec: &mut impl Read, buf: &mut [u8]) -> Result<usize, EntryError> {
    loop {
        match dec.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(zstd_err(&e)),
        }
    }
}

/// Decodes and verifies a whole entry under `limits`: preamble, digest, header, every
/// file's size (and, compressed, blake3). Never panics, whatever the bytes.
pub(super) fn decode<'a>(entry: &'a [u8], limits: &EntryLimits) -> Result<Decoded<'a>, EntryError> {
    open(entry, limits)?.into_decoded()
}

/// Verifies a whole entry under `limits` without keeping any of its files, and returns its
/// header: what the tiered chain does to bytes from a remote tier before it delivers them or
/// copies them anywhere.
pub(super) fn verify(entry: &[u8], limits: &EntryLimits) -> Result<Header, EntryError> {
    let opened = open(entry, limits)?;
    if !matches!(opened.body, Body::Raw(_)) {
        return opened.stream(|_, _| Ok(()));
    }
    // A raw entry's frame digest is only as good as whoever computed it: from another
    // writer, each file is checked against its own blake3 too (what a signature covers).
    let Decoded { header, files } = opened.into_decoded()?;
    for (record, data) in header.files.iter().zip(&files) {
        if blake3::hash(data).as_bytes()[..] != record.blake3[..] {
            return Err(codec::corrupt(format!(
                "file {:?}: blake3 mismatch",
                record.role
            )));
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::codec::FileRecord;
    use proptest::prelude::*;
    use std::io::Write;

    fn decode_frame(frame: &[u8]) -> Result<Decoded<'_>, EntryError> {
        open_frame(EntryFormat::Zstd, frame, &EntryLimits::default()).and_then(Opened::into_decoded)
    }

    fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        enc.include_checksum(true).unwrap();
        enc.write_all(body).unwrap();
        enc.finish().unwrap()
    }

    fn body_with_header(header: &Header, files: &[u8]) -> Vec<u8> {
        let h = rmp_serde::to_vec_named(header).unwrap();
        let mut body = (h.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(&h);
        body.extend_from_slice(files);
        body
    }

    fn one_file_header(size: u64, digest: Vec<u8>) -> Header {
        Header {
            kind: EntryKind::Blob,
            files: vec![FileRecord {
                role: "blob".into(),
                mode: 0o644,
                size,
                blake3: digest,
            }],
            stdout: vec![],
            stderr: vec![],
            exit_status: 0,
            compile_ms: 0,
            sig: None,
        }
    }

    #[test]
    fn a_header_declaring_a_huge_file_fails_without_reserving_it() {
        let header = one_file_header(MAX_CONTENT_SIZE, vec![0; 32]);
        let frame = frame_of(&body_with_header(&header, b"short"));
        let err = decode_frame(&frame).err().unwrap();
        assert!(err.is_corrupt(), "{err}");
    }

    #[test]
    fn declared_sizes_past_the_content_limit_are_refused_before_reading() {
        let mut header = one_file_header(MAX_CONTENT_SIZE, vec![0; 32]);
        header.files.push(FileRecord {
            role: "second".into(),
            mode: 0,
            size: u64::MAX,
            blake3: vec![0; 32],
        });
        let frame = frame_of(&body_with_header(&header, b""));
        let err = decode_frame(&frame).err().unwrap();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn a_blob_declaring_more_than_a_blob_may_is_refused_from_its_header() {
        let header = one_file_header(MAX_BLOB_SIZE + 1, vec![0; 32]);
        let frame = frame_of(&body_with_header(&header, b""));
        let err = decode_frame(&frame).err().unwrap();
        assert!(err.to_string().contains("limit"), "{err}");
        let mut outputs = one_file_header(MAX_BLOB_SIZE + 1, vec![0; 32]);
        outputs.kind = EntryKind::Outputs;
        let frame = frame_of(&body_with_header(&outputs, b""));
        let err = decode_frame(&frame).err().unwrap();
        assert!(!err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn a_header_length_past_the_limit_is_refused() {
        let frame = frame_of(&(MAX_HEADER_LEN + 1).to_le_bytes());
        assert!(decode_frame(&frame).unwrap_err().is_corrupt());
    }

    #[test]
    fn duplicate_roles_in_a_header_are_corrupt() {
        let data = b"x";
        let digest = blake3::hash(data).as_bytes().to_vec();
        let mut header = one_file_header(1, digest.clone());
        header.files.push(FileRecord {
            role: "blob".into(),
            mode: 0,
            size: 1,
            blake3: digest,
        });
        let frame = frame_of(&body_with_header(&header, b"xx"));
        assert!(
            decode_frame(&frame)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn data_after_the_last_file_is_corrupt() {
        let data = b"x";
        let header = one_file_header(1, blake3::hash(data).as_bytes().to_vec());
        let frame = frame_of(&body_with_header(&header, b"xy"));
        assert!(decode_frame(&frame).is_err());
        let good = frame_of(&body_with_header(&header, b"x"));
        assert!(decode_frame(&good).is_ok());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_frame(&trailing).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn arbitrary_bodies_in_a_valid_frame_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = decode_frame(&frame_of(&body));
        }

        #[test]
        fn arbitrary_headers_after_a_plausible_length_never_panic(
            header in proptest::collection::vec(any::<u8>(), 0..256),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut body = (header.len() as u32).to_le_bytes().to_vec();
            body.extend_from_slice(&header);
            body.extend_from_slice(&tail);
            let _ = decode_frame(&frame_of(&body));
        }

        #[test]
        fn arbitrary_raw_bodies_never_panic_and_verify_or_refuse(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            max_file in 0u64..1024,
        ) {
            let limits = EntryLimits { max_file_size: max_file, max_content_size: 2 * max_file };
            if let Ok(opened) = open_frame(EntryFormat::Raw, &body, &limits) {
                let declared: u64 = opened.header.files.iter().map(|f| f.size).sum();
                let mut seen = 0u64;
                opened.stream(|_, chunk| { seen += chunk.len() as u64; Ok(()) }).unwrap();
                prop_assert_eq!(seen, declared);
            }
        }

        /// Declared sizes over the limits are refused from the header alone (the frame holds
        /// no file bytes at all); within them, the stream finds the bytes missing.
        #[test]
        fn declared_sizes_are_judged_before_any_file_byte(
            sizes in proptest::collection::vec(0u64..1 << 40, 1..4),
            max_file in 0u64..1 << 40,
            max_content in 0u64..1 << 41,
            raw in any::<bool>(),
        ) {
            let mut header = one_file_header(sizes[0], vec![0; 32]);
            for (i, size) in sizes.iter().enumerate().skip(1) {
                header.files.push(FileRecord {
                    role: format!("f{i}"),
                    mode: 0o644,
                    size: *size,
                    blake3: vec![0; 32],
                });
            }
            let body = body_with_header(&header, b"");
            let (format, frame) = if raw {
                (EntryFormat::Raw, body)
            } else {
                (EntryFormat::Zstd, frame_of(&body))
            };
            let limits = EntryLimits { max_file_size: max_file, max_content_size: max_content };
            // The header is a blob's, so a blob's own limit applies beside the given ones.
            let over = sizes.iter().any(|s| *s > max_file.min(MAX_BLOB_SIZE))
                || sizes.iter().sum::<u64>()
                    > max_content.min(MAX_CONTENT_SIZE).min(MAX_BLOB_SIZE);
            match open_frame(format, &frame, &limits) {
                Err(e) => {
                    let said_limit = e.to_string().contains("limit");
                    prop_assert!(e.is_corrupt());
                    // Raw: a body shorter than declared is refused at open too.
                    prop_assert!(said_limit == over || (raw && !over), "{}", e);
                }
                Ok(opened) => {
                    prop_assert!(!over);
                    let all_empty = sizes.iter().all(|s| *s == 0);
                    let streamed = opened.stream(|_, _| Ok(()));
                    prop_assert!(streamed.is_err() || all_empty);
                }
            }
        }

        #[test]
        fn arbitrary_entries_never_panic_under_any_limits(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            max_file in any::<u64>(),
        ) {
            let limits = EntryLimits { max_file_size: max_file, max_content_size: max_file };
            let _ = verify(&bytes, &limits);
            let _ = decode(&bytes, &limits);
        }
    }
}
