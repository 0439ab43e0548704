//! The entry decoder: bytes read back from a cache directory or a remote tier, or sent by an
//! inline client, must be refused or extracted, never panic or allocate without bound.
//!
//! A blake3 digest guards the frame, and no fuzzer forges one, so besides the raw bytes the
//! target also wraps its input the way an entry is laid out (`b"HOARDENT" | version (u32 LE) |
//! blake3(frame) | frame`, see the entry codec) with a correct digest: once with the input as
//! the zstd frame, once with the input compressed into one, which takes it to the header
//! parser and the per-file checks.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hoard_storage::OutputPath;
use hoard_storage::entry::{ENTRY_FORMAT_VERSION, extract, unpack_blob, verify_checksum};
use libfuzzer_sys::fuzz_target;

/// Where a successful extraction writes: one scratch directory for the whole run.
fn outputs() -> &'static [OutputPath] {
    static OUTPUTS: OnceLock<(tempfile::TempDir, Vec<OutputPath>)> = OnceLock::new();
    let (_, outputs) = OUTPUTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let outputs = ["object", "dep", "dwo"]
            .iter()
            .map(|role| OutputPath::new(*role, PathBuf::from(dir.path().join(role))))
            .collect();
        (dir, outputs)
    });
    outputs
}

fn wrapped(frame: &[u8]) -> Vec<u8> {
    let mut entry = b"HOARDENT".to_vec();
    entry.extend_from_slice(&ENTRY_FORMAT_VERSION.to_le_bytes());
    entry.extend_from_slice(blake3::hash(frame).as_bytes());
    entry.extend_from_slice(frame);
    entry
}

fn decode_all_ways(entry: &[u8]) {
    let _ = verify_checksum(entry);
    let _ = unpack_blob(entry);
    let _ = extract(entry, outputs());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => decode_all_ways(rest),
        1 => decode_all_ways(&wrapped(rest)),
        _ => {
            if let Ok(frame) = zstd::bulk::compress(rest, 1) {
                decode_all_ways(&wrapped(&frame));
            }
        }
    }
});
