//! Signed entries: what a signature covers and where it travels.
//!
//! The signature is a field of the entry's header (`sig`), which readers that predate it
//! skip like any unknown field: an old reader still reads a signed entry, and the frame's
//! blake3 still covers every byte. It signs, with Ed25519:
//!
//! ```text
//! "hoard entry signature v1\0" | cache key (32 bytes) | content digest (32 bytes)
//! ```
//!
//! * The **cache key** (or manifest key) the entry was put under: a validly signed entry
//!   copied under another key does not verify there.
//! * The **content digest**: blake3 (in derive-key mode, context [`CONTENT_CONTEXT`]) over
//!   the header's fields in a fixed order, each length-prefixed: the kind, every file's
//!   role, mode, size and blake3, stdout, stderr, the exit status and the compile time.
//!   Every file's bytes are checked against their blake3 before a signature is believed, so
//!   the digest covers the whole content. It does not depend on how the entry is framed
//!   (raw or compressed): re-encoding keeps the signature good.
//! * The **scheme version** (`v`, 1, also in the signed context): a reader refuses a
//!   scheme it does not know rather than guess what it covered.

use serde::{Deserialize, Serialize};

use super::EntryKind;
use super::codec::Header;
use crate::CacheKey;
use crate::signing::{Signer, TrustedKeys, fingerprint};

/// The scheme this build signs with and verifies.
pub const SIGNATURE_SCHEME: u32 = 1;

/// What is signed starts with this, so a signature over anything else hoard or another
/// program signs can never pass for an entry's.
const SIGNED_CONTEXT: &[u8] = b"hoard entry signature v1\0";

/// blake3's derive-key context of the content digest.
pub const CONTENT_CONTEXT: &str = "hoard 2026-12-01 entry content v1";

/// The signature in an entry's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntrySignature {
    /// The scheme ([`SIGNATURE_SCHEME`]).
    pub v: u32,
    /// The signer's Ed25519 public key, 32 bytes.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The Ed25519 signature, 64 bytes.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// Why an entry from a verifying tier was not accepted. Not damage: the entry may be sound,
/// only not vouched for by a trusted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// It carries no signature (an old writer, or one without a signing key).
    #[error("unsigned")]
    Unsigned,
    /// It is signed under a scheme this build does not know.
    #[error("signed under scheme {0}, which this build does not verify")]
    UnknownScheme(u32),
    /// It is signed by a key not among the trusted keys (named by fingerprint).
    #[error("signed by {0}, which is not a trusted key")]
    UnknownSigner(String),
    /// The signature is not the named key's over this key and content: the entry was moved
    /// under another key, altered, or forged.
    #[error("the signature by {0} does not match this key and content (moved, altered or forged)")]
    BadSignature(String),
}

/// The content digest of `header` (see the module's documentation).
pub(super) fn content_digest(header: &Header) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CONTENT_CONTEXT);
    let field = |h: &mut blake3::Hasher, bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    h.update(&[match header.kind {
        EntryKind::Outputs => 0,
        EntryKind::Blob => 1,
    }]);
    h.update(&(header.files.len() as u64).to_le_bytes());
    for file in &header.files {
        field(&mut h, file.role.as_bytes());
        h.update(&file.mode.to_le_bytes());
        h.update(&file.size.to_le_bytes());
        field(&mut h, &file.blake3);
    }
    field(&mut h, &header.stdout);
    field(&mut h, &header.stderr);
    h.update(&header.exit_status.to_le_bytes());
    h.update(&header.compile_ms.to_le_bytes());
    *h.finalize().as_bytes()
}

fn message(key: &CacheKey, digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNED_CONTEXT.len() + 64);
    m.extend_from_slice(SIGNED_CONTEXT);
    m.extend_from_slice(key.as_bytes());
    m.extend_from_slice(digest);
    m
}

/// Signs `header` as the entry under `key`, replacing any signature it had.
pub(super) fn sign(header: &mut Header, key: &CacheKey, signer: &Signer) {
    let digest = content_digest(header);
    header.sig = Some(EntrySignature {
        v: SIGNATURE_SCHEME,
        key: signer.public_bytes().to_vec(),
        sig: signer.sign(&message(key, &digest)).to_vec(),
    });
}

/// The name of the trusted key that signed `header` as the entry under `key`. The files must
/// already be checked against the header's digests.
pub(super) fn check(
    header: &Header,
    key: &CacheKey,
    trusted: &TrustedKeys,
) -> Result<String, Untrusted> {
    let Some(sig) = &header.sig else {
        return Err(Untrusted::Unsigned);
    };
    if sig.v != SIGNATURE_SCHEME {
        return Err(Untrusted::UnknownScheme(sig.v));
    }
    let (Ok(public), Ok(signature)) = (
        <[u8; 32]>::try_from(sig.key.as_slice()),
        <[u8; 64]>::try_from(sig.sig.as_slice()),
    ) else {
        return Err(Untrusted::BadSignature("a malformed key".into()));
    };
    let Some(signer) = trusted.get(&public) else {
        return Err(Untrusted::UnknownSigner(fingerprint(&public)));
    };
    if signer.verifies(&message(key, &content_digest(header)), &signature) {
        Ok(signer.name.clone())
    } else {
        Err(Untrusted::BadSignature(signer.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::codec::{self, EntryFormat, FileIn};
    use crate::entry::{EntryError, EntryLimits, EntryMeta, for_remote, verify_signed};
    use proptest::prelude::*;

    fn signer(seed: u8, name: &str) -> Signer {
        Signer::from_secret_bytes(&[seed; 32], name)
    }

    fn trusting(signers: &[&Signer]) -> TrustedKeys {
        let lines: Vec<String> = signers.iter().map(|s| s.public_line()).collect();
        TrustedKeys::parse(&lines.join("\n")).unwrap()
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::from_bytes([n; 32])
    }

    fn entry(format: EntryFormat, object: &[u8], stderr: &[u8]) -> Vec<u8> {
        let meta = EntryMeta {
            stdout: b"out".to_vec(),
            stderr: stderr.to_vec(),
            exit_status: 0,
            compile_ms: 42,
        };
        let files = [FileIn {
            role: "object",
            mode: 0o644,
            data: object,
        }];
        codec::encode(format, EntryKind::Outputs, &files, &meta).unwrap()
    }

    fn check(entry: &[u8], key: &CacheKey, trusted: &TrustedKeys) -> Result<String, Untrusted> {
        match verify_signed(entry, &EntryLimits::default(), key, trusted) {
            Ok(name) => Ok(name),
            Err(EntryError::Untrusted { why }) => Err(why),
            Err(other) => panic!("not an untrusted verdict: {other}"),
        }
    }

    #[test]
    fn a_signed_entry_verifies_under_its_key_from_either_format_and_names_its_signer() {
        let ci = signer(1, "ci");
        let trusted = trusting(&[&ci]);
        for format in [EntryFormat::Raw, EntryFormat::Zstd] {
            let unsigned = entry(format, b"object code", b"warning");
            let signed = for_remote(&unsigned, &key(1), Some(&ci)).unwrap();
            assert_eq!(check(&signed, &key(1), &trusted), Ok("ci".into()));
            // Compressing a raw copy again keeps the signature good.
            let again = codec::compressed(&signed).unwrap();
            assert_eq!(check(&again, &key(1), &trusted), Ok("ci".into()));
        }
    }

    #[test]
    fn moved_unsigned_foreign_and_rewritten_entries_are_each_refused_for_what_they_are() {
        let ci = signer(1, "ci");
        let mallory = signer(2, "mallory");
        let trusted = trusting(&[&ci]);
        let signed = for_remote(&entry(EntryFormat::Zstd, b"good", b""), &key(1), Some(&ci))
            .unwrap()
            .into_owned();
        // A validly signed entry under another key.
        assert_eq!(
            check(&signed, &key(2), &trusted),
            Err(Untrusted::BadSignature("ci".into()))
        );
        // No signature at all.
        let unsigned = entry(EntryFormat::Zstd, b"good", b"");
        assert_eq!(
            check(&unsigned, &key(1), &trusted),
            Err(Untrusted::Unsigned)
        );
        // Signed, by a key nobody trusts.
        let foreign = for_remote(&unsigned, &key(1), Some(&mallory)).unwrap();
        assert!(matches!(
            check(&foreign, &key(1), &trusted),
            Err(Untrusted::UnknownSigner(fp)) if fp.starts_with("SHA256:")
        ));
        // The signature of a good entry on other content (frame digest recomputed, as an
        // attacker would).
        let codec::Decoded { header, .. } =
            crate::entry::open::decode(&signed, &EntryLimits::default()).unwrap();
        let evil = codec::reencode(&entry(EntryFormat::Zstd, b"evil", b""), |h| {
            h.sig.clone_from(&header.sig);
        })
        .unwrap();
        assert_eq!(
            check(&evil, &key(1), &trusted),
            Err(Untrusted::BadSignature("ci".into()))
        );
        // An unknown scheme is not guessed at.
        let future = codec::reencode(&signed, |h| {
            if let Some(sig) = h.sig.as_mut() {
                sig.v = 2;
            }
        })
        .unwrap();
        assert_eq!(
            check(&future, &key(1), &trusted),
            Err(Untrusted::UnknownScheme(2))
        );
        // Without verification the same bytes are sound entries.
        for sound in [&signed[..], &unsigned, &foreign, &evil, &future] {
            crate::entry::verify(sound, &EntryLimits::default()).unwrap();
        }
    }

    #[test]
    fn a_raw_entry_whose_file_no_longer_matches_its_signed_digest_is_corrupt() {
        let ci = signer(1, "ci");
        let raw = entry(EntryFormat::Raw, b"0123456789", b"");
        let codec::Decoded { mut header, .. } =
            crate::entry::open::decode(&raw, &EntryLimits::default()).unwrap();
        sign(&mut header, &key(1), &ci);
        // Other bytes under the signed header, the frame digest recomputed to match.
        let forged = codec::encode_header(EntryFormat::Raw, &header, &[b"9876543210"]).unwrap();
        let err = verify_signed(&forged, &EntryLimits::default(), &key(1), &trusting(&[&ci]))
            .unwrap_err();
        assert!(err.is_corrupt(), "{err}");
    }

    /// The header as readers before signatures decoded it.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct ReleasedHeader {
        kind: EntryKind,
        files: Vec<codec::FileRecord>,
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
        #[serde(with = "serde_bytes")]
        stderr: Vec<u8>,
        exit_status: i32,
        #[serde(default)]
        compile_ms: u64,
    }

    #[test]
    fn a_reader_from_before_signatures_decodes_a_signed_header() {
        let signed = for_remote(
            &entry(EntryFormat::Raw, b"x", b"w"),
            &key(1),
            Some(&signer(1, "ci")),
        )
        .unwrap()
        .into_owned();
        let (_, frame) = codec::checked_frame(&signed).unwrap();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut crate::entry::open::decoder(frame).unwrap(), &mut body)
            .unwrap();
        let len = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
        let old: ReleasedHeader = rmp_serde::from_slice(&body[4..4 + len]).unwrap();
        assert_eq!((old.stderr.as_slice(), old.compile_ms), (&b"w"[..], 42));
    }

    proptest! {
        /// Whatever a writer puts in the signature field, verifying never panics and never
        /// accepts it unless it is the trusted key's signature.
        #[test]
        fn forged_signature_fields_never_verify(
            v in prop_oneof![Just(1u32), any::<u32>()],
            key_bytes in prop::collection::vec(any::<u8>(), 0..40),
            sig_bytes in prop::collection::vec(any::<u8>(), 0..80),
            use_ci_key in any::<bool>(),
        ) {
            let ci = signer(1, "ci");
            let key_bytes = if use_ci_key { ci.public_bytes().to_vec() } else { key_bytes };
            let forged = codec::reencode(&entry(EntryFormat::Zstd, b"o", b""), |h| {
                h.sig = Some(EntrySignature { v, key: key_bytes, sig: sig_bytes });
            })
            .unwrap();
            prop_assert!(check(&forged, &key(1), &trusting(&[&ci])).is_err());
        }

        /// Any one byte of a signed entry changed is refused: as damage, or as untrusted.
        #[test]
        fn any_changed_byte_of_a_signed_entry_is_refused(at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let ci = signer(1, "ci");
            let mut signed = for_remote(&entry(EntryFormat::Raw, b"code", b""), &key(1), Some(&ci))
                .unwrap()
                .into_owned();
            let i = at.index(signed.len());
            signed[i] ^= 1 << bit;
            prop_assert!(
                verify_signed(&signed, &EntryLimits::default(), &key(1), &trusting(&[&ci])).is_err()
            );
        }
    }
}
