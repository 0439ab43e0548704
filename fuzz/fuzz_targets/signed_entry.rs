//! The signature check of entries from a verifying tier: any bytes a writer to a shared tier
//! puts under a key must be refused (as damage or as untrusted) or accepted as signed by the
//! trusted key, never panic, and never be accepted unless that key signed exactly them.
//!
//! Besides raw bytes, the target reaches the signature field with a correct frame digest:
//! it compresses the input as an entry body (length-prefixed header, then files), and it
//! takes a genuinely signed entry, XORs the input over its decompressed body and frames it
//! again, so the header parser, the `sig` field's decoder and the content digest see every
//! variation of a real signed header.

#![no_main]

use std::sync::OnceLock;

use hoard_storage::entry::{
    self, ENTRY_FORMAT_VERSION, EntryLimits, RAW_ENTRY_FORMAT_VERSION, verify_signed,
};
use hoard_storage::signing::{Signer, TrustedKeys};
use hoard_storage::{CacheKey, EntryError};
use libfuzzer_sys::fuzz_target;

struct Fixed {
    key: CacheKey,
    trusted: TrustedKeys,
    /// The body of a real signed entry, decompressed.
    body: Vec<u8>,
    /// That entry's bytes.
    signed: Vec<u8>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let signer = Signer::from_secret_bytes(&[7; 32], "fuzz");
        let key = CacheKey::from(blake3::hash(b"fuzz key"));
        let unsigned = entry::pack_blob(b"a payload the fuzzer varies");
        let signed = entry::for_remote(&unsigned, &key, Some(&signer))
            .expect("a signed entry")
            .into_owned();
        let body = zstd::decode_all(&signed[44..]).expect("its body");
        Fixed {
            key,
            trusted: TrustedKeys::parse(&signer.public_line()).expect("the public line"),
            body,
            signed,
        }
    })
}

fn framed(version: u32, frame: &[u8]) -> Vec<u8> {
    let mut entry = b"HOARDENT".to_vec();
    entry.extend_from_slice(&version.to_le_bytes());
    entry.extend_from_slice(blake3::hash(frame).as_bytes());
    entry.extend_from_slice(frame);
    entry
}

fn check(entry: &[u8]) {
    let fixed = fixed();
    match verify_signed(entry, &EntryLimits::BLOB, &fixed.key, &fixed.trusted) {
        // Accepted: it must be the signed entry's content, whatever its framing.
        Ok(name) => {
            assert_eq!(name, "fuzz");
            assert_eq!(
                entry::unpack_blob(entry).ok(),
                entry::unpack_blob(&fixed.signed).ok(),
                "accepted other content under the trusted key's signature"
            );
        }
        Err(EntryError::Untrusted { .. } | EntryError::Corrupt { .. }) => {}
        Err(EntryError::UnsupportedVersion { .. }) => {}
        Err(other) => panic!("unexpected verdict: {other}"),
    }
    let _ = entry::signer_of(entry, &fixed.key, &fixed.trusted);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => check(rest),
        1 => {
            if let Ok(frame) = zstd::bulk::compress(rest, 1) {
                check(&framed(ENTRY_FORMAT_VERSION, &frame));
            }
        }
        2 => check(&framed(RAW_ENTRY_FORMAT_VERSION, rest)),
        _ => {
            let mut body = fixed().body.clone();
            for (b, x) in body.iter_mut().zip(rest) {
                *b ^= x;
            }
            if let Ok(frame) = zstd::bulk::compress(&body, 1) {
                check(&framed(ENTRY_FORMAT_VERSION, &frame));
            }
            check(&framed(RAW_ENTRY_FORMAT_VERSION, &body));
        }
    }
});
