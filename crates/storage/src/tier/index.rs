//! The prefetch index a writer leaves in a remote tier: which keys it stored, in the order
//! it stored them ([`Segment`]), and which segments are the newest ([`Recent`]).
//!
//! Both are hints. Anyone who can write to the tier can write them, so they are decoded
//! with every length checked against fixed bounds, and what they name is fetched and
//! verified exactly like any other remote read: a forged index can make a reader fetch
//! entries it does not need (bounded by [`MAX_SEGMENT_KEYS`] per segment and the reader's
//! budget), never use bytes it would not otherwise use.

use bytes::Bytes;

use crate::CacheKey;

/// The most keys one segment holds; a writer starts a new segment after this many puts.
pub(crate) const MAX_SEGMENT_KEYS: usize = 1024;

/// The most segments [`Recent`] names: readers load at most this many.
pub(crate) const MAX_RECENT: usize = 64;

/// The most bytes of entries the packs of one segment hold.
pub(crate) const MAX_PACK_BYTES: u64 = 64 << 20;
/// The most bytes one pack part holds: a segment's packs come as parts a reader downloads
/// side by side, so the first entries arrive before the last part does.
pub(crate) const PACK_PART_BYTES: u64 = 8 << 20;
/// The most parts a segment's pack has.
pub(crate) const MAX_PACK_PARTS: u32 = 16;

const SEGMENT_MAGIC: &[u8; 8] = b"HRDSEG02";
const PACK_MAGIC: &[u8; 8] = b"HRDPAK01";
const RECENT_MAGIC: &[u8; 8] = b"HRDRCT01";

/// The key under which a tier's [`Recent`] list is stored: fixed, so every writer and
/// reader finds it without listing the tier (memcached and redis cannot list).
pub(crate) fn recent_key() -> CacheKey {
    CacheKey::from(blake3::hash(b"hoard prefetch index: recent segments, v1"))
}

/// The key of part `part` of the pack beside segment `segment`: derived, so a segment needs
/// only count them.
pub(crate) fn pack_key(segment: &CacheKey, part: u32) -> CacheKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hoard prefetch pack, v2");
    hasher.update(segment.as_bytes());
    hasher.update(&part.to_le_bytes());
    CacheKey::from(hasher.finalize())
}

/// Why an index object was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IndexError {
    /// It does not start with the expected magic: not an index object of this version.
    #[error("not a hoard {what} (wrong magic)")]
    Magic { what: &'static str },
    /// It declares more items than the format allows.
    #[error("{what} declares {count} items, more than the {max} allowed")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    /// Its length does not match the items it declares.
    #[error("{what} is {len} bytes, not the {want} its header declares")]
    Length {
        what: &'static str,
        len: usize,
        want: usize,
    },
}

/// The keys one writer stored, in order, and how many parts their pack has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) keys: Vec<CacheKey>,
    /// Parts of the pack beside it (0: no pack).
    pub(crate) pack_parts: u32,
}

impl Segment {
    /// `magic, u32 LE count, u32 LE pack parts, count × 32-byte key`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let keys = &self.keys[..self.keys.len().min(MAX_SEGMENT_KEYS)];
        let mut out = Vec::with_capacity(16 + 32 * keys.len());
        out.extend_from_slice(SEGMENT_MAGIC);
        out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.pack_parts.min(MAX_PACK_PARTS).to_le_bytes());
        for key in keys {
            out.extend_from_slice(key.as_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        const WHAT: &str = "prefetch index segment";
        // The parts count sits between the header and the keys: checked as a 4-byte item.
        if bytes.len() < 16 {
            return Err(IndexError::Magic { what: WHAT });
        }
        let mut without_parts = bytes[..12].to_vec();
        without_parts.extend_from_slice(&bytes[16..]);
        let count = header(&without_parts, *SEGMENT_MAGIC, WHAT, MAX_SEGMENT_KEYS, 32)?;
        let pack_parts = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if pack_parts > MAX_PACK_PARTS {
            return Err(IndexError::TooMany {
                what: WHAT,
                count: pack_parts as usize,
                max: MAX_PACK_PARTS as usize,
            });
        }
        let keys = bytes[16..]
            .chunks_exact(32)
            .take(count)
            .map(|chunk| {
                let mut key = [0u8; 32];
                key.copy_from_slice(chunk);
                CacheKey::from_bytes(key)
            })
            .collect();
        Ok(Self { keys, pack_parts })
    }
}

/// The newest segments of a tier, newest first, each with when it was written (seconds
/// since the Unix epoch, as the writer's clock had it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Recent {
    pub(crate) segments: Vec<(CacheKey, u64)>,
}

impl Recent {
    /// `magic, u32 LE count, count × (32-byte segment key, u64 LE seconds)`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let segments = &self.segments[..self.segments.len().min(MAX_RECENT)];
        let mut out = Vec::with_capacity(12 + 40 * segments.len());
        out.extend_from_slice(RECENT_MAGIC);
        out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
        for (key, secs) in segments {
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&secs.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        const WHAT: &str = "prefetch index list";
        let count = header(bytes, *RECENT_MAGIC, WHAT, MAX_RECENT, 40)?;
        let segments = bytes[12..]
            .chunks_exact(40)
            .take(count)
            .map(|chunk| {
                let mut key = [0u8; 32];
                key.copy_from_slice(&chunk[..32]);
                let mut secs = [0u8; 8];
                secs.copy_from_slice(&chunk[32..]);
                (CacheKey::from_bytes(key), u64::from_le_bytes(secs))
            })
            .collect();
        Ok(Self { segments })
    }

    /// This list with `segment` (written at `now`) first, without segments older than
    /// `max_age_secs` and at most [`MAX_RECENT`] long.
    pub(crate) fn with_newest(mut self, segment: CacheKey, now: u64, max_age_secs: u64) -> Self {
        self.segments
            .retain(|(key, secs)| *key != segment && now.saturating_sub(*secs) <= max_age_secs);
        self.segments.insert(0, (segment, now));
        self.segments.truncate(MAX_RECENT);
        self
    }
}

/// The entries of a segment in one object, for tiers where a request costs more than the
/// bytes it carries (S3, WebDAV): a reader fetches one pack instead of each entry. Every
/// entry in it is verified like any remote read before it is used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Pack {
    pub(crate) entries: Vec<(CacheKey, Bytes)>,
}

impl Pack {
    /// `magic, u32 LE count, count × (32-byte key, u64 LE length), the entries' bytes`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let entries = &self.entries[..self.entries.len().min(MAX_SEGMENT_KEYS)];
        let body: usize = entries.iter().map(|(_, bytes)| bytes.len()).sum();
        let mut out = Vec::with_capacity(12 + 40 * entries.len() + body);
        out.extend_from_slice(PACK_MAGIC);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (key, bytes) in entries {
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        }
        for (_, bytes) in entries {
            out.extend_from_slice(bytes);
        }
        out
    }

    /// The entries, sharing `bytes` (no copy).
    pub(crate) fn decode(bytes: &Bytes) -> Result<Self, IndexError> {
        const WHAT: &str = "prefetch pack";
        if bytes.len() < 12 || bytes[..8] != PACK_MAGIC[..] {
            return Err(IndexError::Magic { what: WHAT });
        }
        let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if count > MAX_SEGMENT_KEYS {
            return Err(IndexError::TooMany {
                what: WHAT,
                count,
                max: MAX_SEGMENT_KEYS,
            });
        }
        let header = 12 + 40 * count;
        let mut want = header as u64;
        let mut sizes = Vec::with_capacity(count);
        if bytes.len() >= header {
            for chunk in bytes[12..header].chunks_exact(40) {
                let mut key = [0u8; 32];
                key.copy_from_slice(&chunk[..32]);
                let mut len = [0u8; 8];
                len.copy_from_slice(&chunk[32..]);
                let len = u64::from_le_bytes(len);
                want = want.saturating_add(len);
                sizes.push((CacheKey::from_bytes(key), len));
            }
        }
        if bytes.len() < header || want != bytes.len() as u64 {
            return Err(IndexError::Length {
                what: WHAT,
                len: bytes.len(),
                want: usize::try_from(want).unwrap_or(usize::MAX),
            });
        }
        let mut at = header;
        let entries = sizes
            .into_iter()
            .map(|(key, len)| {
                // Every length was summed to the object's own length above.
                let end = at + len as usize;
                let entry = (key, bytes.slice(at..end));
                at = end;
                entry
            })
            .collect();
        Ok(Self { entries })
    }
}

/// Checks magic, count and length; returns the count.
fn header(
    bytes: &[u8],
    magic: [u8; 8],
    what: &'static str,
    max: usize,
    item: usize,
) -> Result<usize, IndexError> {
    if bytes.len() < 12 || &bytes[..8] != magic.as_slice() {
        return Err(IndexError::Magic { what });
    }
    let mut count = [0u8; 4];
    count.copy_from_slice(&bytes[8..12]);
    let count = u32::from_le_bytes(count) as usize;
    if count > max {
        return Err(IndexError::TooMany { what, count, max });
    }
    let want = 12 + item * count;
    if bytes.len() != want {
        return Err(IndexError::Length {
            what,
            len: bytes.len(),
            want,
        });
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = CacheKey> {
        any::<[u8; 32]>().prop_map(CacheKey::from_bytes)
    }

    proptest! {
        #[test]
        fn a_segment_decodes_to_what_was_encoded(
            keys in prop::collection::vec(key(), 0..64), pack_parts in 0..=MAX_PACK_PARTS
        ) {
            let segment = Segment { keys, pack_parts };
            prop_assert_eq!(Segment::decode(&segment.encode()), Ok(segment));
        }

        #[test]
        fn a_recent_list_decodes_to_what_was_encoded(
            segments in prop::collection::vec((key(), any::<u64>()), 0..MAX_RECENT)
        ) {
            let recent = Recent { segments };
            prop_assert_eq!(Recent::decode(&recent.encode()), Ok(recent));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_never_decode_past_their_length(
            bytes in prop::collection::vec(any::<u8>(), 0..600)
        ) {
            if let Ok(segment) = Segment::decode(&bytes) {
                prop_assert_eq!(segment.encode(), bytes.clone());
            }
            if let Ok(recent) = Recent::decode(&bytes) {
                prop_assert_eq!(recent.encode(), bytes);
            }
        }

        #[test]
        fn a_pack_decodes_to_what_was_encoded(
            entries in prop::collection::vec((key(), prop::collection::vec(any::<u8>(), 0..64)), 0..16)
        ) {
            let pack = Pack {
                entries: entries.into_iter().map(|(k, b)| (k, Bytes::from(b))).collect(),
            };
            prop_assert_eq!(Pack::decode(&Bytes::from(pack.encode())), Ok(pack));
        }

        #[test]
        fn arbitrary_bytes_never_decode_as_a_pack_past_their_length(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            lens in prop::collection::vec(any::<u64>(), 0..4),
        ) {
            // Also a well-formed header with arbitrary lengths (huge ones included).
            let mut forged = PACK_MAGIC.to_vec();
            forged.extend_from_slice(&(lens.len() as u32).to_le_bytes());
            for len in &lens {
                forged.extend_from_slice(&[1; 32]);
                forged.extend_from_slice(&len.to_le_bytes());
            }
            forged.extend_from_slice(&bytes);
            for candidate in [bytes, forged] {
                let candidate = Bytes::from(candidate);
                if let Ok(pack) = Pack::decode(&candidate) {
                    prop_assert_eq!(Bytes::from(pack.encode()), candidate);
                }
            }
        }

        #[test]
        fn a_truncated_or_extended_segment_is_refused(
            keys in prop::collection::vec(key(), 1..16), cut in 1usize..32
        ) {
            let bytes = Segment { keys, pack_parts: 1 }.encode();
            let short = Segment::decode(&bytes[..bytes.len() - cut]);
            prop_assert!(matches!(short, Err(IndexError::Length { .. })), "{short:?}");
            let mut long = bytes.clone();
            long.push(0);
            prop_assert!(Segment::decode(&long).is_err());
        }
    }

    #[test]
    fn a_count_over_the_bound_is_refused_before_anything_is_read() {
        let mut bytes = SEGMENT_MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            Segment::decode(&bytes),
            Err(IndexError::TooMany { count, .. }) if count == u32::MAX as usize
        ));
    }

    #[test]
    fn the_newest_segment_goes_first_and_old_or_surplus_ones_are_dropped() {
        let k = |b: u8| CacheKey::from_bytes([b; 32]);
        let mut recent = Recent::default();
        for i in 0..(MAX_RECENT as u8 + 5) {
            recent = recent.with_newest(k(i), 1_000 + u64::from(i), 10_000);
        }
        assert_eq!(recent.segments.len(), MAX_RECENT);
        assert_eq!(recent.segments[0].0, k(MAX_RECENT as u8 + 4));
        let recent = recent.with_newest(k(200), 1_000_000, 10_000);
        assert_eq!(recent.segments, vec![(k(200), 1_000_000)]);
    }
}
