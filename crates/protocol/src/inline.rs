//! How an entry's bytes are cut into pieces to travel inline, and put back together: the one
//! rule both sides follow. The sender ([`InlinePieces`]) puts the entry's size and its first
//! piece in the opening message (`CachePutInline` or `Entry`) and the rest in `Chunk`s of at
//! most [`INLINE_CHUNK_SIZE`] bytes; the receiver ([`InlineAssembly`]) checks the announced
//! size against its limit before it holds anything, and refuses a piece that does not fit.
//! Which message carries a piece is the caller's business: this module only sees bytes.

use crate::INLINE_CHUNK_SIZE;

/// The most a receiver sets aside for an entry before its bytes arrive: an announced size is
/// only a claim, so memory beyond this is taken as the bytes come.
const PREALLOCATE_AT_MOST: usize = 64 << 20;

/// An entry cut into the pieces it travels as.
#[derive(Debug, Clone, Copy)]
pub struct InlinePieces<'a> {
    entry: &'a [u8],
    chunk_size: usize,
}

impl<'a> InlinePieces<'a> {
    /// `entry` in pieces of [`INLINE_CHUNK_SIZE`].
    pub fn new(entry: &'a [u8]) -> Self {
        Self::with_chunk_size(entry, INLINE_CHUNK_SIZE)
    }

    /// `entry` in pieces of `chunk_size` bytes (at least one). Peers always use
    /// [`InlinePieces::new`]; a smaller size is for tests.
    pub fn with_chunk_size(entry: &'a [u8], chunk_size: usize) -> Self {
        Self {
            entry,
            chunk_size: chunk_size.max(1),
        }
    }

    /// The size the opening message announces: the whole entry's length.
    pub fn size(&self) -> u64 {
        self.entry.len() as u64
    }

    /// The piece the opening message carries (empty for an empty entry).
    pub fn first(&self) -> &'a [u8] {
        &self.entry[..self.entry.len().min(self.chunk_size)]
    }

    /// The pieces that follow in `Chunk`s, in order.
    pub fn rest(&self) -> std::slice::Chunks<'a, u8> {
        self.entry[self.first().len()..].chunks(self.chunk_size)
    }
}

/// Why an inline entry was refused on the way in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InlineError {
    /// The announced size is beyond what the receiver takes.
    #[error("refused: inline entry of {size} bytes exceeds the {limit}-byte limit")]
    Oversized {
        /// The size announced.
        size: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// More bytes came than were announced.
    #[error("inline entry: {arrived} bytes arrived, {size} announced")]
    Overflow {
        /// The bytes that came, the offending piece included.
        arrived: u64,
        /// The size announced.
        size: u64,
    },
    /// The transfer ended before the announced size was reached.
    #[error("inline entry: {arrived} bytes arrived, {size} announced")]
    Short {
        /// The bytes that came.
        arrived: u64,
        /// The size announced.
        size: u64,
    },
    /// A piece came after the entry was already whole.
    #[error("inline entry: a piece came after all {size} bytes")]
    OutOfOrder {
        /// The size announced (and reached).
        size: u64,
    },
}

/// An inline entry being received: its announced size and the bytes so far.
#[derive(Debug)]
pub struct InlineAssembly {
    size: u64,
    data: Vec<u8>,
}

impl InlineAssembly {
    /// Refuses an announced `size` over `limit`, as [`InlineAssembly::begin`] does: for a
    /// receiver that checks before it sets anything aside for the entry.
    pub fn check_size(size: u64, limit: u64) -> Result<(), InlineError> {
        if size > limit {
            return Err(InlineError::Oversized { size, limit });
        }
        Ok(())
    }

    /// Begins an entry the opening message announced as `size` bytes, carrying `first`.
    /// Refused when `size` is over `limit`. A `first` longer than `size` is refused by
    /// [`InlineAssembly::finish`], as the entry is then already whole.
    pub fn begin(size: u64, mut first: Vec<u8>, limit: u64) -> Result<Self, InlineError> {
        Self::check_size(size, limit)?;
        first.reserve(
            usize::try_from(size)
                .unwrap_or(0)
                .saturating_sub(first.len())
                .min(PREALLOCATE_AT_MOST),
        );
        Ok(Self { size, data: first })
    }

    /// Whether every announced byte has come: no more pieces are expected.
    pub fn is_complete(&self) -> bool {
        self.data.len() as u64 >= self.size
    }

    /// Appends the next piece. Refused when the entry is already whole or the piece would
    /// take it past its announced size.
    pub fn push(&mut self, piece: &[u8]) -> Result<(), InlineError> {
        let size = self.size;
        if self.is_complete() {
            return Err(InlineError::OutOfOrder { size });
        }
        let arrived = (self.data.len() as u64).saturating_add(piece.len() as u64);
        if arrived > size {
            return Err(InlineError::Overflow { arrived, size });
        }
        self.data.extend_from_slice(piece);
        Ok(())
    }

    /// The whole entry, when exactly the announced bytes came.
    pub fn finish(self) -> Result<Vec<u8>, InlineError> {
        let (arrived, size) = (self.data.len() as u64, self.size);
        match arrived.cmp(&size) {
            std::cmp::Ordering::Equal => Ok(self.data),
            std::cmp::Ordering::Less => Err(InlineError::Short { arrived, size }),
            std::cmp::Ordering::Greater => Err(InlineError::Overflow { arrived, size }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_entry_travels_as_one_empty_piece() {
        let pieces = InlinePieces::new(&[]);
        assert_eq!((pieces.size(), pieces.first()), (0, &[][..]));
        assert_eq!(pieces.rest().count(), 0);
        let assembly = InlineAssembly::begin(0, Vec::new(), 0).unwrap();
        assert!(assembly.is_complete());
        assert_eq!(assembly.finish().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn pieces_are_cut_at_the_chunk_size() {
        let entry = [7u8; 10];
        let pieces = InlinePieces::with_chunk_size(&entry, 4);
        assert_eq!(pieces.first().len(), 4);
        let rest: Vec<usize> = pieces.rest().map(<[u8]>::len).collect();
        assert_eq!(rest, vec![4, 2]);
    }

    #[test]
    fn a_first_piece_longer_than_announced_is_refused_at_the_end() {
        let assembly = InlineAssembly::begin(2, vec![1, 2, 3], 10).unwrap();
        assert!(assembly.is_complete());
        assert_eq!(
            assembly.finish().unwrap_err(),
            InlineError::Overflow {
                arrived: 3,
                size: 2
            }
        );
    }
}
