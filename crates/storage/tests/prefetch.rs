//! Prefetch against real memcached and redis servers started here, and a shared directory:
//! a machine with an empty disk that hits one entry another machine stored reads the rest of
//! what that machine stored into its local disk; prefetch off leaves no index; a forged index
//! gets nothing unverified onto the local disk. On WebDAV (WsgiDAV, a real server), what is
//! prefetched comes from the segment's pack, and a damaged entry in a pack is fetched alone.

mod require;
mod tiers_support;

use std::path::Path;
use std::time::Duration;

use hoard_storage::{CacheKey, Storage, TierConfig};
use tiers_support::*;

const FLUSH: Duration = Duration::from_secs(10);
const ENTRIES: u8 = 30;

/// Machine A stores ENTRIES entries (and, flushed, its index); machine B, empty, hits the
/// first one from the tier, and the other ENTRIES - 1 are prefetched onto its disk, after
/// which every get is a local hit.
async fn one_hit_prefetches_the_rest(tier: TierConfig, work: &Path) {
    let name = tier.name.clone();
    let a = machine_prefetching(&work.join("a"), vec![tier.clone()]);
    for n in 0..ENTRIES {
        a.put(&key(n), entry(n, 2000)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);

    let b = machine_prefetching(&work.join("b"), vec![tier]);
    b.warm_up();
    let first = b.get_located(&key(0)).await.unwrap().unwrap();
    assert_eq!(first.tier.as_deref(), Some(name.as_str()));
    let stats = wait_for_tier(&b, &name, |s| s.prefetched == u64::from(ENTRIES) - 1).await;
    assert_eq!((stats.hits, stats.errors), (1, 0), "{stats:?}");
    for n in 1..ENTRIES {
        let found = b.get_located(&key(n)).await.unwrap().unwrap();
        assert_eq!(found.entry, entry(n, 2000), "entry {n}");
        assert_eq!(found.tier.as_deref(), Some("local"), "entry {n}");
    }
    let stats = stats_of(&b, &name);
    assert_eq!((stats.hits, stats.misses), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_memcached_hit_prefetches_the_rest_of_what_the_writer_stored() {
    let server = Daemon::memcached();
    let work = tempfile::tempdir().unwrap();
    one_hit_prefetches_the_rest(memcached_tier(server.port), work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_hit_prefetches_the_rest_of_what_the_writer_stored() {
    let server = Daemon::redis();
    let work = tempfile::tempdir().unwrap();
    one_hit_prefetches_the_rest(redis_tier(server.port), work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_dir_hit_prefetches_the_rest_of_what_the_writer_stored() {
    let work = tempfile::tempdir().unwrap();
    let shared = work.path().join("shared");
    one_hit_prefetches_the_rest(shared_dir_tier(&shared), work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_reloads_the_index_and_prefetches_what_was_stored_since() {
    let server = Daemon::memcached();
    let work = tempfile::tempdir().unwrap();
    let b = machine_prefetching(&work.path().join("b"), vec![memcached_tier(server.port)])
        .with_index_refresh(Duration::ZERO);
    b.warm_up();
    assert!(
        b.get(&key(0)).await.unwrap().is_none(),
        "nothing stored yet"
    );

    let a = machine_prefetching(&work.path().join("a"), vec![memcached_tier(server.port)]);
    for n in 0..ENTRIES {
        a.put(&key(n), entry(n, 1000)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);
    assert!(b.get(&key(0)).await.unwrap().is_some());
    wait_for_tier(&b, "memcached", |s| s.prefetched == u64::from(ENTRIES) - 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_off_leaves_no_index_and_reads_ahead_nothing() {
    let server = Daemon::memcached();
    let work = tempfile::tempdir().unwrap();
    let a = machine(&work.path().join("a"), vec![memcached_tier(server.port)]);
    for n in 0..5 {
        a.put(&key(n), entry(n, 500)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);
    assert_eq!(memcached_items(server.port), 5, "entries only, no index");

    // An index written by a machine with prefetch on is not read by one with it off.
    let on = machine_prefetching(&work.path().join("on"), vec![memcached_tier(server.port)]);
    on.put(&key(9), entry(9, 500)).await.unwrap();
    assert!(on.flush(FLUSH).await);
    assert_eq!(
        memcached_items(server.port),
        8,
        "one more entry, a segment and the list"
    );
    let b = machine(&work.path().join("b"), vec![memcached_tier(server.port)]);
    b.warm_up();
    assert!(b.get(&key(9)).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stats_of(&b, "memcached").prefetched, 0);
    assert!(!b.local().contains(&key(0)));
}

/// Writes `bytes` where the shared directory keeps `key`.
fn plant(shared: &Path, key: &CacheKey, bytes: &[u8]) {
    let hex = key.to_hex();
    std::fs::create_dir_all(shared.join(&hex[..2])).unwrap();
    std::fs::write(shared.join(&hex[..2]).join(&hex), bytes).unwrap();
}

/// The index formats, spelled out: a segment is `HRDSEG02`, a u32 LE count, a u32 LE number
/// of pack parts and the keys;
/// the list is `HRDRCT01`, a u32 LE count and (segment key, u64 LE seconds) pairs, under a
/// fixed key.
fn segment(keys: &[CacheKey]) -> Vec<u8> {
    let mut out = b"HRDSEG02".to_vec();
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for key in keys {
        out.extend_from_slice(key.as_bytes());
    }
    out
}

fn recent_list(segments: &[CacheKey]) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut out = b"HRDRCT01".to_vec();
    out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    for key in segments {
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&now.to_le_bytes());
    }
    out
}

fn recent_key() -> CacheKey {
    CacheKey::from(blake3::hash(b"hoard prefetch index: recent segments, v1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_index_gets_nothing_unverified_onto_the_local_disk() {
    let work = tempfile::tempdir().unwrap();
    let shared = work.path().join("shared");
    let a = machine(&work.path().join("a"), vec![shared_dir_tier(&shared)]);
    for n in 0..3 {
        a.put(&key(n), entry(n, 500)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);
    // Whoever can write the tier damages entry 1 and lists a segment naming entries 0, 1
    // (damaged), 7 (absent) and the list itself, behind a segment that is garbage and one
    // that declares more keys than it holds.
    let mut damaged = entry(1, 500);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    plant(&shared, &key(1), &damaged);
    let forged = CacheKey::from_bytes([7; 32]);
    let garbage = CacheKey::from_bytes([8; 32]);
    let short = CacheKey::from_bytes([9; 32]);
    plant(
        &shared,
        &forged,
        &segment(&[key(0), key(1), key(7), recent_key()]),
    );
    plant(&shared, &garbage, b"not an index");
    let mut lying = segment(&[key(2)]);
    lying[8] = 200;
    plant(&shared, &short, &lying);
    plant(
        &shared,
        &recent_key(),
        &recent_list(&[garbage, short, forged]),
    );

    let b = machine_prefetching(&work.path().join("b"), vec![shared_dir_tier(&shared)]);
    b.warm_up();
    // Entry 0 from the tier: the forged segment is read ahead, and what it names verified.
    assert!(b.get(&key(0)).await.unwrap().is_some());
    let stats = wait_for_tier(&b, "shared_dir", |s| s.errors >= 2).await;
    assert_eq!(stats.prefetched, 0, "{stats:?}");
    assert!(!b.local().contains(&key(1)), "the damaged entry stayed out");
    assert!(!b.local().contains(&recent_key()), "the list is no entry");
    assert!(
        b.get(&key(1)).await.unwrap().is_none(),
        "still refused when asked"
    );
    assert_eq!(b.get(&key(2)).await.unwrap(), Some(entry(2, 500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_webdav_a_segment_comes_as_one_pack_and_a_damaged_packed_entry_is_fetched_alone() {
    let Some(program) = find_program("HOARD_TEST_WSGIDAV", "wsgidav") else {
        require::unavailable(
            "on_webdav_a_segment_comes_as_one_pack_and_a_damaged_packed_entry_is_fetched_alone",
            "no wsgidav (pip install wsgidav cheroot)",
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let server = wsgidav(&program, root.path());
    let tier = webdav_tier(&server);
    let work = tempfile::tempdir().unwrap();
    let a = machine_prefetching(&work.path().join("a"), vec![tier.clone()]);
    for n in 0..ENTRIES {
        a.put(&key(n), entry(n, 2000)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);

    // Entries 1 to ENTRIES - 2 now exist only in the pack; the last one's copy in the pack
    // (its bytes end the pack) is damaged, and only its own object is sound.
    let path = |key: &CacheKey| {
        let hex = key.to_hex();
        root.path().join(&hex[..2]).join(hex)
    };
    for n in 1..ENTRIES - 1 {
        std::fs::remove_file(path(&key(n))).unwrap();
    }
    let packs: Vec<_> = walk(root.path())
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().starts_with(b"HRDPAK01"))
        .collect();
    assert_eq!(packs.len(), 1, "one pack for one segment");
    let mut pack = std::fs::read(&packs[0]).unwrap();
    let last = pack.len() - 1;
    pack[last] ^= 0xff;
    std::fs::write(&packs[0], pack).unwrap();

    let b = machine_prefetching(&work.path().join("b"), vec![tier]);
    b.warm_up();
    assert!(b.get(&key(0)).await.unwrap().is_some());
    let stats = wait_for_tier(&b, "webdav", |s| s.prefetched == u64::from(ENTRIES) - 1).await;
    assert_eq!(stats.errors, 1, "the damaged packed entry: {stats:?}");
    for n in 1..ENTRIES {
        let found = b.get_located(&key(n)).await.unwrap().unwrap();
        assert_eq!(
            (found.entry, found.tier.as_deref()),
            (entry(n, 2000), Some("local")),
            "entry {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_larger_than_a_pack_part_comes_in_several_parts() {
    let Some(program) = find_program("HOARD_TEST_WSGIDAV", "wsgidav") else {
        require::unavailable(
            "a_segment_larger_than_a_pack_part_comes_in_several_parts",
            "no wsgidav (pip install wsgidav cheroot)",
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let server = wsgidav(&program, root.path());
    let work = tempfile::tempdir().unwrap();
    // Five incompressible entries of 3 MiB: more than one 8 MiB part holds.
    let big = |n: u8| entry(n, 3 << 20);
    let a = machine_prefetching(&work.path().join("a"), vec![webdav_tier(&server)]);
    for n in 0..5 {
        a.put(&key(n), big(n)).await.unwrap();
    }
    assert!(a.flush(FLUSH).await);
    let parts = walk(root.path())
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().starts_with(b"HRDPAK01"))
        .count();
    assert!(parts >= 2, "{parts} pack parts");
    // Only the packs hold entries 1 to 4 now.
    for n in 1..5 {
        let hex = key(n).to_hex();
        std::fs::remove_file(root.path().join(&hex[..2]).join(hex)).unwrap();
    }
    let b = machine_prefetching(&work.path().join("b"), vec![webdav_tier(&server)]);
    b.warm_up();
    assert!(b.get(&key(0)).await.unwrap().is_some());
    wait_for_tier(&b, "webdav", |s| s.prefetched == 4).await;
    for n in 1..5 {
        assert_eq!(
            b.local().get(&key(n)).await.unwrap(),
            Some(big(n)),
            "entry {n}"
        );
    }
}
