//! The tiered chain against real memcached and redis servers started here, and a shared
//! directory: sharing between two "machines", backfill, read-only tiers, size limits, a full
//! write queue, and a tier dying and coming back.

mod tiers_support;

use std::time::{Duration, Instant};

use hoard_storage::{DiskStore, QueueLimits, Storage, TieredStorage};
use tiers_support::*;

#[tokio::test]
async fn memcached_shares_entries_between_machines_and_backfills() {
    let server = Daemon::memcached();
    shared_between_two_machines(memcached_tier(server.port)).await;
}

#[tokio::test]
async fn redis_shares_entries_between_machines_and_backfills() {
    let server = Daemon::redis();
    shared_between_two_machines(redis_tier(server.port)).await;
    assert_eq!(redis_keys(server.port), 1);
}

#[tokio::test]
async fn shared_dir_shares_entries_between_machines_and_backfills() {
    let shared = tempfile::tempdir().unwrap();
    shared_between_two_machines(shared_dir_tier(shared.path())).await;
}

/// The local disk keeps raw entries (a hit is a verified copy); what leaves the machine is
/// compressed, so remote tiers and older peers hold and read what they always did.
#[tokio::test]
async fn a_raw_local_entry_reaches_remote_tiers_compressed() {
    use hoard_storage::OutputPath;
    use hoard_storage::entry::{self, EntryFormat, EntryMeta, ReadLimits};

    let work = tempfile::tempdir().unwrap();
    let object = work.path().join("a.o");
    std::fs::write(&object, vec![3u8; 300_000]).unwrap();
    let outputs = [OutputPath::new("object", &object)];
    let files = entry::read_outputs(&outputs, &ReadLimits::default()).unwrap();
    let raw = files
        .pack_as(&EntryMeta::default(), EntryFormat::Raw)
        .unwrap();

    let shared = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine(a_dir.path(), vec![shared_dir_tier(shared.path())]);
    let b = machine(b_dir.path(), vec![shared_dir_tier(shared.path())]);
    a.put(&key(9), raw.clone()).await.unwrap();
    assert!(a.flush(FLUSH).await);
    assert_eq!(a.local().get(&key(9)).await.unwrap(), Some(raw.clone()));

    let remote = b
        .get(&key(9))
        .await
        .unwrap()
        .expect("a hit from the shared tier");
    assert!(
        !entry::is_raw(&remote),
        "remote tiers hold compressed entries"
    );
    assert!(remote.len() < raw.len() / 10, "{} bytes", remote.len());
    assert_eq!(remote, entry::compressed(&raw).unwrap().into_owned());
    std::fs::remove_file(&object).unwrap();
    entry::extract(&remote, &outputs).unwrap();
    assert_eq!(std::fs::read(&object).unwrap(), vec![3u8; 300_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_dir_is_safe_with_many_writers() {
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let machines: Vec<_> = dirs
        .iter()
        .map(|d| machine(d.path(), vec![shared_dir_tier(shared.path())]))
        .collect();
    // Every machine writes the same keys with the same (content-addressed) bytes at once.
    let mut tasks = Vec::new();
    for (m, storage) in machines.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..20u8 {
                storage
                    .put(&key(n), entry(n, 50_000 + usize::from(n) * 1000))
                    .await
                    .unwrap();
            }
            assert!(storage.flush(FLUSH).await, "machine {m} did not drain");
            stats_of(&storage, "shared_dir")
        }));
    }
    for task in tasks {
        let stats = task.await.unwrap();
        assert_eq!(
            (stats.writes, stats.errors, stats.skipped),
            (20, 0, 0),
            "{stats:?}"
        );
    }
    let reader_dir = tempfile::tempdir().unwrap();
    let reader = machine(reader_dir.path(), vec![shared_dir_tier(shared.path())]);
    for n in 0..20u8 {
        let got = reader.get(&key(n)).await.unwrap();
        assert_eq!(
            got,
            Some(entry(n, 50_000 + usize::from(n) * 1000)),
            "entry {n}"
        );
    }
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(shared.path())
        .unwrap()
        .filter_map(Result::ok)
        .flat_map(|sub| std::fs::read_dir(sub.path()).into_iter().flatten())
        .filter_map(Result::ok)
        .filter(|f| f.file_name().to_string_lossy().starts_with(".tmp"))
        .map(|f| f.path())
        .collect();
    assert!(leftovers.is_empty(), "left over: {leftovers:?}");
}

#[tokio::test]
async fn a_read_only_tier_is_never_written() {
    let server = Daemon::memcached();
    let redis = Daemon::redis();
    let dir = tempfile::tempdir().unwrap();
    let mut mc = memcached_tier(server.port);
    mc.read_only = true;
    let mut rd = redis_tier(redis.port);
    rd.read_only = true;
    let storage = machine(dir.path(), vec![mc, rd]);
    for n in 0..5 {
        storage.put(&key(n), entry(n, 1000)).await.unwrap();
    }
    storage.remove(&key(0)).await.unwrap();
    // A miss in both: a hit in neither, so nothing to backfill either.
    assert_eq!(storage.get(&key(9)).await.unwrap(), None);
    assert!(storage.flush(FLUSH).await);
    assert_eq!(memcached_items(server.port), 0);
    assert_eq!(redis_keys(redis.port), 0);
    for name in ["memcached", "redis"] {
        let s = stats_of(&storage, name);
        assert!(s.read_only);
        assert_eq!((s.writes, s.skipped, s.misses), (0, 0, 1), "{s:?}");
    }
    // It is still read: an entry another machine wrote is a hit.
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = machine(writer_dir.path(), vec![memcached_tier(server.port)]);
    writer.put(&key(7), entry(7, 1000)).await.unwrap();
    assert!(writer.flush(FLUSH).await);
    assert_eq!(storage.get(&key(7)).await.unwrap(), Some(entry(7, 1000)));
    assert_eq!(stats_of(&storage, "memcached").hits, 1);
    // A hit in the lower tier is not backfilled into the read-only one above it.
    assert!(storage.flush(FLUSH).await);
    assert_eq!(redis_keys(redis.port), 0);
}

#[tokio::test]
async fn a_raw_entry_over_the_limit_that_compresses_under_it_is_written() {
    let server = Daemon::memcached();
    let dir = tempfile::tempdir().unwrap();
    let storage = machine(dir.path(), vec![memcached_tier(server.port)]);
    // An object of 3 MiB that compresses to a few kilobytes: the limit (1 MiB by default)
    // applies to what travels, the compressed entry.
    let object = dir.path().join("big.o");
    std::fs::write(&object, vec![0u8; 3 << 20]).unwrap();
    let raw = hoard_storage::entry::read_outputs(
        &[hoard_storage::OutputPath::new("object", object)],
        &hoard_storage::ReadLimits::default(),
    )
    .unwrap()
    .pack_as(
        &hoard_storage::EntryMeta::default(),
        hoard_storage::entry::EntryFormat::Raw,
    )
    .unwrap();
    assert!(raw.len() > 3 << 20);
    storage.put(&key(1), raw).await.unwrap();
    memcached_wrote_one(&storage, server.port, 0).await;
}

/// Once `storage`'s writes drained: memcached holds one item, and the tier counted one write,
/// `skipped` skips and no error.
async fn memcached_wrote_one(storage: &TieredStorage, port: u16, skipped: u64) {
    assert!(storage.flush(FLUSH).await);
    let s = stats_of(storage, "memcached");
    assert_eq!((s.skipped, s.writes, s.errors), (skipped, 1, 0), "{s:?}");
    assert_eq!(memcached_items(port), 1);
}

#[tokio::test]
async fn an_entry_over_memcacheds_item_limit_is_skipped_and_counted() {
    let server = Daemon::memcached();
    let dir = tempfile::tempdir().unwrap();
    let storage = machine(dir.path(), vec![memcached_tier(server.port)]);
    let big = entry(1, 2 * 1024 * 1024);
    storage.put(&key(1), big.clone()).await.unwrap();
    storage.put(&key(2), entry(2, 1000)).await.unwrap();
    memcached_wrote_one(&storage, server.port, 1).await;
    // Still cached locally, whole.
    assert_eq!(storage.get(&key(1)).await.unwrap(), Some(big));

    // A limit above the server's own is the server's to refuse: an error, counted, and the
    // tier keeps serving.
    let mut loose = memcached_tier(server.port);
    loose.max_entry_size = Some(8 * 1024 * 1024);
    let dir2 = tempfile::tempdir().unwrap();
    let storage = machine(dir2.path(), vec![loose]);
    storage
        .put(&key(3), entry(3, 2 * 1024 * 1024))
        .await
        .unwrap();
    assert!(storage.flush(FLUSH).await);
    let s = stats_of(&storage, "memcached");
    assert_eq!((s.writes, s.errors), (0, 1), "{s:?}");
    let other_dir = tempfile::tempdir().unwrap();
    let other = machine(other_dir.path(), vec![memcached_tier(server.port)]);
    assert_eq!(other.get(&key(2)).await.unwrap(), Some(entry(2, 1000)));
}

/// A TCP listener that never answers: connections complete in the kernel's backlog and
/// then every request waits out its deadline.
fn black_hole() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[tokio::test]
async fn a_full_write_queue_drops_writes_and_counts_them_and_puts_never_wait() {
    let (_hole, port) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let local = DiskStore::open(dir.path(), 1 << 30).unwrap();
    let limits = QueueLimits {
        max_jobs: 3,
        max_bytes: 1 << 20,
        concurrency: 1,
    };
    let storage =
        TieredStorage::with_queue_limits(local, vec![memcached_tier(port)], limits).unwrap();
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let start = Instant::now();
        storage.put(&key(n), entry(n, 1000)).await.unwrap();
        slowest = slowest.max(start.elapsed());
    }
    println!("slowest put with a hung remote tier and a full queue: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a put waited for the remote: {slowest:?}"
    );
    let s = stats_of(&storage, "memcached");
    assert!(s.skipped >= 17, "{s:?}");
    // Every entry is in the local tier all the same.
    for n in 0..20 {
        assert!(storage.local().get(&key(n)).await.unwrap().is_some());
    }
    // The byte bound drops too: one entry larger than the whole queue.
    let before = stats_of(&storage, "memcached").skipped;
    storage.put(&key(99), entry(99, 2 << 20)).await.unwrap();
    assert_eq!(stats_of(&storage, "memcached").skipped, before + 1);
    assert!(storage.flush(Duration::from_secs(5)).await);
    let s = stats_of(&storage, "memcached");
    assert_eq!(s.writes, 0);
    assert!(s.timeouts >= 1, "{s:?}");
}

#[tokio::test]
async fn memcached_killed_mid_way_then_restarted_on_the_same_port() {
    let mut server = Daemon::memcached();
    let port = server.port;
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let tier = memcached_tier(port);
    let (a, b) = a_puts_b_reads(a_dir.path(), b_dir.path(), &tier, 5000).await;

    server.kill();

    // Gets and puts keep working from the local tier; the remote's failures are counted.
    let first = misses_open_the_breaker(&b, "memcached", 10..13).await;
    // Open: the tier is not called, so a get costs what a local miss costs.
    let gets = 500u32;
    let start = Instant::now();
    for n in 0..gets {
        let k = hoard_storage::CacheKey::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
        assert_eq!(b.get(&k).await.unwrap(), None);
    }
    let open_cost = start.elapsed() / gets;
    let s = stats_of(&b, "memcached");
    assert_eq!(s.errors + s.timeouts, 3, "calls went on while open: {s:?}");
    b.put(&key(20), entry(20, 1000)).await.unwrap();
    assert_eq!(b.get(&key(20)).await.unwrap(), Some(entry(20, 1000)));
    assert_eq!(b.get(&key(1)).await.unwrap(), Some(entry(1, 5000)));
    assert!(b.flush(FLUSH).await);
    assert!(stats_of(&b, "memcached").skipped >= 1);

    // A local-only miss, for comparison.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = machine(plain_dir.path(), vec![]);
    let start = Instant::now();
    for n in 0..gets {
        let k = hoard_storage::CacheKey::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
        assert_eq!(plain.get(&k).await.unwrap(), None);
    }
    let local_cost = start.elapsed() / gets;
    println!(
        "memcached down: first failing gets {first:?}; per get with the breaker open \
         {open_cost:?} (local-only miss {local_cost:?})"
    );

    // Back on the same port: after the cool-down a probe finds it and hits resume, with no
    // new storage.
    let _server = Daemon::memcached_on(port);
    a.put(&key(30), entry(30, 3000)).await.unwrap();
    // A's breaker may be open too (its own writes failed); wait for both to probe.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(a.flush(FLUSH).await);
        if b.get(&key(30)).await.unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hits did not resume: {:?}",
            b.tier_stats()
        );
        a.put(&key(30), entry(30, 3000)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let s = stats_of(&b, "memcached");
    assert_eq!(s.state, "closed", "{s:?}");
    assert!(s.hits >= 2, "{s:?}");
}

#[tokio::test]
async fn a_tier_down_at_startup_does_not_stop_construction_and_is_used_once_up() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let storage = machine(dir.path(), vec![memcached_tier(port)]);
    assert_eq!(storage.get(&key(1)).await.unwrap(), None);
    assert_eq!(stats_of(&storage, "memcached").errors, 1);
    let _server = Daemon::memcached_on(port);
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = machine(writer_dir.path(), vec![memcached_tier(port)]);
    writer.put(&key(1), entry(1, 100)).await.unwrap();
    assert!(writer.flush(FLUSH).await);
    assert_eq!(storage.get(&key(1)).await.unwrap(), Some(entry(1, 100)));
    assert_eq!(stats_of(&storage, "memcached").hits, 1);
}

#[tokio::test]
async fn a_lower_tier_hit_is_backfilled_into_the_remote_tiers_above() {
    let mc = Daemon::memcached();
    let rd = Daemon::redis();
    let shared = tempfile::tempdir().unwrap();
    // Only the shared directory has the entry.
    let seed_dir = tempfile::tempdir().unwrap();
    let seed = machine(seed_dir.path(), vec![shared_dir_tier(shared.path())]);
    seed.put(&key(5), entry(5, 4000)).await.unwrap();
    assert!(seed.flush(FLUSH).await);

    let dir = tempfile::tempdir().unwrap();
    let chain = machine(
        dir.path(),
        vec![
            memcached_tier(mc.port),
            redis_tier(rd.port),
            shared_dir_tier(shared.path()),
        ],
    );
    assert_eq!(chain.get(&key(5)).await.unwrap(), Some(entry(5, 4000)));
    assert!(chain.flush(FLUSH).await);
    assert_eq!(memcached_items(mc.port), 1);
    assert_eq!(redis_keys(rd.port), 1);
    let names: Vec<_> = chain
        .tier_stats()
        .into_iter()
        .map(|s| (s.name, s.hits, s.misses, s.writes))
        .collect();
    assert_eq!(
        names,
        vec![
            ("local".to_owned(), 0, 1, 1),
            ("memcached".to_owned(), 0, 1, 1),
            ("redis".to_owned(), 0, 1, 1),
            ("shared_dir".to_owned(), 1, 0, 0),
        ]
    );
    chain.zero_tier_stats();
    assert!(
        chain
            .tier_stats()
            .iter()
            .all(|s| s.hits + s.misses + s.writes == 0)
    );

    // A remove (a corrupt entry) reaches every writable tier.
    chain.remove(&key(5)).await.unwrap();
    assert!(chain.flush(FLUSH).await);
    assert_eq!(memcached_items(mc.port), 0);
    assert_eq!(redis_keys(rd.port), 0);
    assert_eq!(chain.get(&key(5)).await.unwrap(), None);
}

#[tokio::test]
async fn a_hung_tier_costs_a_connect_timeout_per_get_until_the_breaker_opens() {
    let (_hole, port) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let mut tier = memcached_tier(port);
    tier.connect_timeout = Duration::from_millis(100);
    let storage = machine(dir.path(), vec![tier]);
    let mut first = Vec::new();
    for n in 0..3 {
        let start = Instant::now();
        assert_eq!(storage.get(&key(n)).await.unwrap(), None);
        first.push(start.elapsed());
    }
    assert!(
        first.iter().all(|t| *t < Duration::from_millis(300)),
        "{first:?}"
    );
    let s = stats_of(&storage, "memcached");
    assert_eq!((s.timeouts, s.state.as_str()), (3, "open"), "{s:?}");
    let start = Instant::now();
    for n in 3..103 {
        assert_eq!(storage.get(&key(n)).await.unwrap(), None);
    }
    let open_cost = start.elapsed() / 100;
    println!(
        "hung memcached: first gets {first:?}, then {open_cost:?} per get with the breaker open"
    );
    assert!(open_cost < Duration::from_millis(5), "{open_cost:?}");
}

#[tokio::test]
async fn rediss_against_a_plain_server_fails_cleanly_and_is_counted() {
    // No TLS redis here: this checks the TLS path is wired (a crypto provider is there, no
    // panic) and that a handshake failure is an ordinary, counted tier failure.
    let server = Daemon::redis();
    let dir = tempfile::tempdir().unwrap();
    let tier = hoard_storage::TierConfig::new(hoard_storage::TierKind::Redis {
        endpoint: format!("rediss://127.0.0.1:{}", server.port),
    });
    let storage = machine(dir.path(), vec![tier]);
    assert_eq!(storage.get(&key(1)).await.unwrap(), None);
    let s = stats_of(&storage, "redis");
    assert_eq!(s.errors + s.timeouts, 1, "{s:?}");
}

/// A damaged entry from a remote tier is a miss, counted as the tier's error, and is
/// neither delivered nor copied into any other tier; it is left where it is (a reader's
/// view of a shared cache never deletes from it), for the put after the compile to replace.
#[tokio::test]
async fn a_corrupt_remote_entry_is_a_miss_and_is_never_backfilled() {
    let server = Daemon::memcached();
    let shared = tempfile::tempdir().unwrap();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = machine(a_dir.path(), vec![shared_dir_tier(shared.path())]);
    let mut blob = hoard_storage::entry::pack_blob(b"manifest");
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
    a.put(&key(1), blob).await.unwrap();
    assert!(a.flush(FLUSH).await);

    let b = std::sync::Arc::new(machine(
        b_dir.path(),
        vec![memcached_tier(server.port), shared_dir_tier(shared.path())],
    ));
    let store = hoard_storage::EntryStore::new(b.clone());
    assert_eq!(store.get_blob(&key(1)).await.unwrap(), None);
    assert_eq!(b.get(&key(1)).await.unwrap(), None);
    assert!(b.flush(FLUSH).await);
    let s = stats_of(&b, "shared_dir");
    assert_eq!((s.hits, s.errors), (0, 2), "{s:?}");
    assert_eq!(memcached_items(server.port), 0, "copied into memcached");
    assert_eq!(b.local().get(&key(1)).await.unwrap(), None);
    let hex = key(1).to_hex();
    assert!(shared.path().join(&hex[..2]).join(&hex).exists());
}

#[tokio::test]
async fn redis_killed_then_restarted_hits_resume_without_a_new_storage() {
    let mut server = Daemon::redis();
    let port = server.port;
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let (a, b) = a_puts_b_reads(a_dir.path(), b_dir.path(), &redis_tier(port), 1000).await;
    server.kill();
    let each = misses_open_the_breaker(&b, "redis", 10..20).await;
    println!("redis down: gets took {each:?} (the breaker opens after 3)");

    let _server = Daemon::redis_on(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        a.put(&key(30), entry(30, 3000)).await.unwrap();
        assert!(a.flush(FLUSH).await);
        if b.get(&key(30)).await.unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hits did not resume: {:?}",
            b.tier_stats()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stats_of(&b, "redis").state, "closed");
}
