//! Signed entries through the tiered chain, against a real WebDAV server (WsgiDAV) where
//! entries also travel in prefetch packs: a writer with a signing key signs what it puts
//! and what it packs; a reader that verifies reads ahead only what a trusted key signed, and
//! a packed entry moved under another key is refused and fetched alone.

mod require;
mod tiers_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoard_storage::signing::{Signer, Trust, TrustedKeys};
use hoard_storage::{Storage, TierConfig, TieredStorage, entry};
use tiers_support::*;

const FLUSH: Duration = Duration::from_secs(10);
const ENTRIES: u8 = 12;

fn ci() -> Signer {
    Signer::from_secret_bytes(&[7; 32], "ci")
}

fn signing(dir: &Path, tier: TierConfig) -> TieredStorage {
    machine_prefetching(dir, vec![tier])
        .with_trust(Arc::new(Trust::new(Some(ci()), TrustedKeys::default())))
}

fn verifying(dir: &Path, mut tier: TierConfig) -> TieredStorage {
    tier.verify = true;
    machine_prefetching(dir, vec![tier]).with_trust(Arc::new(Trust::new(
        None,
        TrustedKeys::parse(&ci().public_line()).unwrap(),
    )))
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the entry is in the pack")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifying_reader_prefetches_a_signed_pack_and_refuses_packed_entries_moved_between_keys()
{
    let Some(program) = find_program("HOARD_TEST_WSGIDAV", "wsgidav") else {
        require::unavailable(
            "a_verifying_reader_prefetches_a_signed_pack_and_refuses_packed_entries_moved_between_keys",
            "no wsgidav (pip install wsgidav cheroot)",
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let server = wsgidav(&program, root.path());
    let work = tempfile::tempdir().unwrap();
    let a = signing(&work.path().join("a"), webdav_tier(&server));
    for n in 0..ENTRIES {
        a.put(&key(n), entry(n, 2000)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);

    // Every object A wrote is signed by the CI key, and so is its copy in the pack.
    let object = |n: u8| {
        let hex = key(n).to_hex();
        std::fs::read(root.path().join(&hex[..2]).join(hex)).unwrap()
    };
    for n in 0..ENTRIES {
        assert_eq!(
            entry::forge::signer_bytes(&object(n)),
            Some(ci().public_bytes().to_vec())
        );
    }
    let packs: Vec<_> = walk(root.path())
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().starts_with(b"HRDPAK01"))
        .collect();
    assert_eq!(packs.len(), 1, "one pack for one segment");
    // Entries 1 and 2 trade places in the pack: each is validly signed, for the other key.
    let mut pack = std::fs::read(&packs[0]).unwrap();
    let (one, two) = (object(1), object(2));
    assert_eq!(one.len(), two.len());
    let (at_one, at_two) = (find(&pack, &one), find(&pack, &two));
    pack[at_one..at_one + one.len()].copy_from_slice(&two);
    pack[at_two..at_two + two.len()].copy_from_slice(&one);
    std::fs::write(&packs[0], pack).unwrap();

    let b = verifying(&work.path().join("b"), webdav_tier(&server));
    b.warm_up();
    let hit = b.get_located(&key(0)).await.unwrap().unwrap();
    assert_eq!(hit.signer.as_deref(), Some("ci"));
    let stats = wait_for_tier(&b, "webdav", |s| s.prefetched == u64::from(ENTRIES) - 1).await;
    assert_eq!(
        stats.untrusted, 2,
        "the two moved packed entries: {stats:?}"
    );
    assert_eq!(stats.errors, 0, "{stats:?}");
    // Each one is on B's disk now, A's content under A's signature: the two moved ones
    // fetched alone after their packed copies were refused.
    for n in 1..ENTRIES {
        let found = b.get_located(&key(n)).await.unwrap().unwrap();
        assert_eq!(found.tier.as_deref(), Some("local"), "entry {n}");
        assert!(
            entry::unpack_blob(&found.entry).unwrap()
                == entry::unpack_blob(&entry(n, 2000)).unwrap(),
            "entry {n} holds its own content"
        );
        assert_eq!(
            entry::forge::signer_bytes(&found.entry),
            Some(ci().public_bytes().to_vec()),
            "entry {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifying_reader_reads_ahead_nothing_an_unsigned_writer_packed() {
    let Some(program) = find_program("HOARD_TEST_WSGIDAV", "wsgidav") else {
        require::unavailable(
            "a_verifying_reader_reads_ahead_nothing_an_unsigned_writer_packed",
            "no wsgidav (pip install wsgidav cheroot)",
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let server = wsgidav(&program, root.path());
    let work = tempfile::tempdir().unwrap();
    let a = machine_prefetching(&work.path().join("a"), vec![webdav_tier(&server)]);
    for n in 0..ENTRIES {
        a.put(&key(n), entry(n, 2000)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);
    let b = verifying(&work.path().join("b"), webdav_tier(&server));
    b.warm_up();
    for n in 0..ENTRIES {
        assert!(b.get(&key(n)).await.unwrap().is_none(), "entry {n}");
    }
    let stats = stats_of(&b, "webdav");
    assert_eq!(
        (stats.untrusted, stats.hits, stats.prefetched),
        (u64::from(ENTRIES), 0, 0),
        "{stats:?}"
    );
    for n in 0..ENTRIES {
        assert!(b.local().get(&key(n)).await.unwrap().is_none());
    }
}

/// A signed entry as this release writes it, kept as bytes: every later build must verify
/// it (the signed message and the content digest are a format), and readers that predate
/// signatures read it (`entry::signature`'s test of the released header).
#[test]
fn a_signed_entry_of_this_release_still_verifies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/entry/signed-v1.hoard");
    let key = hoard_storage::CacheKey::from(blake3::hash(b"fixture key"));
    if std::env::var_os("HOARD_BLESS").is_some() && !path.exists() {
        let unsigned = entry::pack_blob(b"fixture payload: a manifest or an object");
        let signed = entry::for_remote(&unsigned, &key, Some(&ci())).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, signed).unwrap();
    }
    let fixture = std::fs::read(&path).unwrap();
    let trusted = TrustedKeys::parse(&ci().public_line()).unwrap();
    let limits = hoard_storage::EntryLimits::default();
    assert_eq!(
        entry::verify_signed(&fixture, &limits, &key, &trusted).unwrap(),
        "ci"
    );
    assert_eq!(
        entry::unpack_blob(&fixture).unwrap(),
        b"fixture payload: a manifest or an object"
    );
    let other = hoard_storage::CacheKey::from(blake3::hash(b"another key"));
    assert!(matches!(
        entry::verify_signed(&fixture, &limits, &other, &trusted),
        Err(hoard_storage::EntryError::Untrusted { .. })
    ));
}
