//! Inline chunking: what [`InlinePieces`] cuts, [`InlineAssembly`] puts back unchanged, and
//! the assembler refuses a size over its limit, bytes past the announced size and pieces
//! after the entry is whole, each with its own error.

use hoard_protocol::{InlineAssembly, InlineError, InlinePieces};
use proptest::collection::vec;
use proptest::prelude::*;

/// Sends `entry` cut at `chunk` and receives it under `limit`.
fn round_trip(entry: &[u8], chunk: usize, limit: u64) -> Result<Vec<u8>, InlineError> {
    let pieces = InlinePieces::with_chunk_size(entry, chunk);
    let mut assembly = InlineAssembly::begin(pieces.size(), pieces.first().to_vec(), limit)?;
    for piece in pieces.rest() {
        assert!(!assembly.is_complete(), "a piece after the entry was whole");
        assembly.push(piece)?;
    }
    assert!(assembly.is_complete());
    assembly.finish()
}

proptest! {
    #[test]
    fn every_entry_comes_back_unchanged(entry in vec(any::<u8>(), 0..2048), chunk in 1usize..300) {
        prop_assert_eq!(round_trip(&entry, chunk, entry.len() as u64)?, entry.clone());
        let pieces = InlinePieces::with_chunk_size(&entry, chunk);
        prop_assert!(pieces.first().len() <= chunk);
        prop_assert!(pieces.rest().all(|p| !p.is_empty() && p.len() <= chunk));
        prop_assert_eq!(pieces.rest().count(), entry.len().div_ceil(chunk).saturating_sub(1));
    }

    #[test]
    fn a_size_over_the_limit_is_refused_before_anything_is_held(
        size in 1u64..u64::MAX, below in 1u64..1024,
    ) {
        let limit = size.saturating_sub(below);
        prop_assert_eq!(
            InlineAssembly::begin(size, Vec::new(), limit).unwrap_err(),
            InlineError::Oversized { size, limit }
        );
    }

    #[test]
    fn bytes_past_the_announced_size_are_refused(
        entry in vec(any::<u8>(), 1..1024), chunk in 1usize..200,
    ) {
        // A sender that announces one byte less than it sends, and sends every piece.
        let short = (entry.len() - 1) as u64;
        let pieces = InlinePieces::with_chunk_size(&entry, chunk);
        let mut assembly = InlineAssembly::begin(short, pieces.first().to_vec(), u64::MAX)?;
        let refused = match pieces.rest().find_map(|piece| assembly.push(piece).err()) {
            Some(e) => e,
            None => assembly.finish().unwrap_err(),
        };
        // Past the size inside a piece, or a whole piece after the size was reached.
        prop_assert!(
            matches!(refused, InlineError::Overflow { size, arrived } if size == short && arrived > short)
                || refused == InlineError::OutOfOrder { size: short },
            "{:?}", refused
        );
    }

    #[test]
    fn a_piece_after_the_entry_is_whole_is_out_of_order(
        entry in vec(any::<u8>(), 0..512), late in vec(any::<u8>(), 0..64),
    ) {
        let size = entry.len() as u64;
        let mut assembly = InlineAssembly::begin(size, entry, size)?;
        prop_assert_eq!(assembly.push(&late).unwrap_err(), InlineError::OutOfOrder { size });
    }

    #[test]
    fn an_entry_cut_short_is_refused(entry in vec(any::<u8>(), 2..1024), cut in 1usize..1024) {
        let cut = cut.min(entry.len() - 1);
        let size = entry.len() as u64;
        let mut assembly = InlineAssembly::begin(size, entry[..cut].to_vec(), size)?;
        prop_assert!(!assembly.is_complete());
        assembly.push(&[])?;
        prop_assert_eq!(
            assembly.finish().unwrap_err(),
            InlineError::Short { arrived: cut as u64, size }
        );
    }
}
