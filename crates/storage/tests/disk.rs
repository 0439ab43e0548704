//! The local disk store on real directories: layout, LRU order, the size limit, and two
//! stores sharing one directory.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoard_storage::{
    CacheKey, DiskStore, EntryMeta, EntryStore, OutputPath, ReadLimits, Storage, entry,
};

fn key(n: u8) -> CacheKey {
    CacheKey::from(blake3::hash(&[n]))
}

/// Entries on disk and their total size, read from the directory itself.
fn on_disk(dir: &Path) -> (u64, u64) {
    let mut count = 0;
    let mut total = 0;
    for sub in fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap();
        if !sub.file_type().unwrap().is_dir() {
            continue;
        }
        for file in fs::read_dir(sub.path()).unwrap() {
            let file = file.unwrap();
            if !file.file_name().to_string_lossy().starts_with('.') {
                count += 1;
                total += file.metadata().unwrap().len();
            }
        }
    }
    (count, total)
}

/// File timestamps come from the kernel's coarse clock; a pause keeps mtimes distinct.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

#[tokio::test]
async fn entries_live_at_prefix_slash_full_hex_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(&dir.path().join("cache"), 1 << 20).unwrap();
    let k = key(1);
    store.put(&k, b"bytes".to_vec()).await.unwrap();
    let hex = k.to_hex();
    let path = dir.path().join("cache").join(&hex[..2]).join(&hex);
    assert_eq!(fs::read(path).unwrap(), b"bytes");
    assert_eq!(store.get(&k).await.unwrap().unwrap(), b"bytes");
    assert_eq!(store.get(&key(2)).await.unwrap(), None);
}

#[tokio::test]
async fn lru_evicts_the_least_recently_read_entry_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), 3500).unwrap();
    for n in 1..=3 {
        store.put(&key(n), vec![n; 1000]).await.unwrap();
        tick().await;
    }
    // Reading the oldest makes it the newest; the second is now least recently used.
    assert!(store.get(&key(1)).await.unwrap().is_some());
    tick().await;
    store.put(&key(4), vec![4; 1000]).await.unwrap();
    store.wait_for_eviction().await;

    assert_eq!(store.get(&key(2)).await.unwrap(), None);
    for n in [1, 3, 4] {
        assert_eq!(
            store.get(&key(n)).await.unwrap(),
            Some(vec![n; 1000]),
            "entry {n}"
        );
    }
    assert_eq!(store.size_bytes(), 3000);
    assert_eq!(store.entry_count(), 3);
}

#[tokio::test]
async fn size_is_held_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let max = 10_000;
    let store = DiskStore::open(dir.path(), max).unwrap();
    for n in 0..100 {
        store.put(&key(n), vec![n; 700]).await.unwrap();
        // Eviction runs in the background, so puts may overshoot briefly, never run away.
        let (_, total) = on_disk(dir.path());
        assert!(total <= 2 * max, "{total} bytes on disk at put {n}");
    }
    store.wait_for_eviction().await;
    let (_, total) = on_disk(dir.path());
    assert!(total <= max, "{total} bytes on disk over {max}");
    // Puts racing a background eviction may be counted twice, never missed.
    assert!(store.size_bytes() >= total);
    store.evict().await.unwrap();
    let (count, total) = on_disk(dir.path());
    assert_eq!(store.size_bytes(), total);
    assert_eq!(store.entry_count(), count);
    // The newest entry survives.
    assert!(store.get(&key(99)).await.unwrap().is_some());
}

#[tokio::test]
async fn two_stores_sharing_a_directory_hold_one_limit_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let max = 10_000;
    let a = DiskStore::open(dir.path(), max).unwrap();
    let b = DiskStore::open(dir.path(), max).unwrap();
    // Each writes less than the limit; together they write almost twice it.
    for n in 0..9 {
        a.put(&key(n), vec![n; 1000]).await.unwrap();
        b.put(&key(100 + n), vec![n; 1000]).await.unwrap();
    }
    a.wait_for_eviction().await;
    b.wait_for_eviction().await;
    let (count, total) = on_disk(dir.path());
    assert!(total <= max, "{total} bytes on disk over the shared {max}");
    assert_eq!(a.size_bytes(), total);
    assert_eq!(b.entry_count(), count);
    a.remove(&key(108)).await.unwrap();
    b.remove(&key(108)).await.unwrap();
    assert!(!b.contains(&key(108)));
    assert_eq!(a.size_bytes(), on_disk(dir.path()).1);
}

#[tokio::test]
async fn reopening_counts_what_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), 1 << 20).unwrap();
    for n in 0..5 {
        store.put(&key(n), vec![0; 100]).await.unwrap();
    }
    let reopened = DiskStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(reopened.size_bytes(), 500);
    assert_eq!(reopened.entry_count(), 5);
}

#[tokio::test]
async fn an_over_limit_directory_is_trimmed_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let big = DiskStore::open(dir.path(), 1 << 20).unwrap();
    for n in 0..10 {
        big.put(&key(n), vec![0; 1000]).await.unwrap();
    }
    let small = DiskStore::open(dir.path(), 5000).unwrap();
    small.evict().await.unwrap();
    assert!(small.size_bytes() <= 4500);
    assert!(on_disk(dir.path()).1 <= 4500);
}

#[tokio::test]
async fn a_corrupt_entry_on_disk_is_a_miss_and_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStore::open(dir.path(), 1 << 20).unwrap();
    let store = EntryStore::new(Arc::new(disk.clone()));
    let k = key(7);
    store.put_blob(&k, b"manifest".to_vec()).await.unwrap();
    let hex = k.to_hex();
    let path = dir.path().join(&hex[..2]).join(&hex);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&path, bytes).unwrap();

    assert_eq!(store.get_blob(&k).await.unwrap(), None);
    assert!(!path.exists());
    assert_eq!(disk.entry_count(), 0);
}

/// A payload that says which key and version it belongs to and carries a checksum of itself,
/// so a reader can tell a whole entry from a mix of two.
fn payload(k: u8, version: u32) -> Vec<u8> {
    let len = 1500 + (version as usize * 37 + k as usize * 101) % 3000;
    let mut body = vec![k];
    body.extend_from_slice(&version.to_le_bytes());
    // Incompressible, so entries are as large on disk as they are here and evictions happen.
    let mut filler = vec![0; len];
    blake3::Hasher::new()
        .update(&body)
        .finalize_xof()
        .fill(&mut filler);
    body.extend_from_slice(&filler);
    let mut out = blake3::hash(&body).as_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn check_payload(k: u8, got: &[u8]) {
    let (digest, body) = got.split_at(32);
    assert_eq!(
        blake3::hash(body).as_bytes(),
        digest,
        "payload of key {k} is a mix"
    );
    assert_eq!(body[0], k, "payload of another key served for key {k}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_sharing_a_directory_never_serve_a_corrupt_entry() {
    let dir = tempfile::tempdir().unwrap();
    // Room for about ten of the sixteen keys: both stores evict all the time.
    let a = DiskStore::open(dir.path(), 40_000).unwrap();
    let b = DiskStore::open(dir.path(), 40_000).unwrap();
    let stores = [
        EntryStore::new(Arc::new(a.clone())),
        EntryStore::new(Arc::new(b.clone())),
    ];

    let mut tasks = Vec::new();
    for worker in 0..8u32 {
        let store = stores[worker as usize % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut hits = 0;
            for round in 0..150u32 {
                // Half the workers fight over the same four keys; the rest spread out.
                let k = if worker % 2 == 0 {
                    (round % 4) as u8
                } else {
                    ((round * 7 + worker) % 16) as u8
                };
                let ck = key(k);
                if round % 3 == 0 {
                    store
                        .put_blob(&ck, payload(k, round * 8 + worker))
                        .await
                        .unwrap();
                }
                // The raw bytes, not only the EntryStore view: a corrupt entry would be
                // turned into a miss there, so check that none is ever on disk.
                if let Some(raw) = store.storage().get(&ck).await.unwrap() {
                    let got = entry::unpack_blob(&raw).expect("a stored entry must verify");
                    check_payload(k, &got);
                    hits += 1;
                }
                if let Some(got) = store.get_blob(&ck).await.unwrap() {
                    check_payload(k, &got);
                }
            }
            hits
        }));
    }
    let mut hits = 0;
    for task in tasks {
        hits += task.await.unwrap();
    }
    a.wait_for_eviction().await;
    b.wait_for_eviction().await;
    eprintln!("{hits} raw hits");
    assert!(
        hits > 100,
        "only {hits} hits: the test did not exercise reads"
    );
    // Each store counts only its own puts between rescans; a rescan sees both.
    a.evict().await.unwrap();
    let (_, total) = on_disk(dir.path());
    assert!(total <= 40_000, "{total} bytes on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_sharing_a_directory_extract_only_whole_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let a = DiskStore::open(&cache, 30_000).unwrap();
    let b = DiskStore::open(&cache, 30_000).unwrap();
    let stores = [EntryStore::new(Arc::new(a)), EntryStore::new(Arc::new(b))];

    let mut tasks = Vec::new();
    for worker in 0..6u32 {
        let store = stores[worker as usize % 2].clone();
        let work = dir.path().join(format!("w{worker}"));
        fs::create_dir(&work).unwrap();
        tasks.push(tokio::spawn(async move {
            let outputs = [
                OutputPath::new("object", work.join("x.o")),
                OutputPath::new("dep", work.join("x.d")),
            ];
            let mut hits = 0;
            for round in 0..100u32 {
                let k = ((round + worker) % 8) as u8;
                let ck = key(k);
                if round % 2 == 0 {
                    fs::write(&outputs[0].path, payload(k, round * 6 + worker)).unwrap();
                    fs::write(&outputs[1].path, payload(k, round)).unwrap();
                    let meta = EntryMeta {
                        stdout: vec![k],
                        ..EntryMeta::default()
                    };
                    store
                        .put_outputs(&ck, &outputs, &meta, &ReadLimits::default())
                        .await
                        .unwrap();
                }
                let _ = fs::remove_file(&outputs[0].path);
                let _ = fs::remove_file(&outputs[1].path);
                if let Some(meta) = store.get_outputs(&ck, &outputs).await.unwrap() {
                    assert_eq!(meta.stdout, [k]);
                    check_payload(k, &fs::read(&outputs[0].path).unwrap());
                    check_payload(k, &fs::read(&outputs[1].path).unwrap());
                    hits += 1;
                }
            }
            hits
        }));
    }
    let mut hits = 0;
    for task in tasks {
        hits += task.await.unwrap();
    }
    eprintln!("{hits} extract hits");
    assert!(hits > 50, "only {hits} hits");
}

/// A planted (or mistaken) mtime in the future does not pin an entry: eviction takes it as
/// now, and resets it, so the entry ages and goes like any other.
#[tokio::test]
async fn an_entry_with_a_future_mtime_ages_from_now_and_is_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), 3500).unwrap();
    store.put(&key(1), vec![1; 1000]).await.unwrap();
    let hex = key(1).to_hex();
    let pinned = dir.path().join(&hex[..2]).join(&hex);
    let future = std::time::SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    fs::File::open(&pinned)
        .unwrap()
        .set_modified(future)
        .unwrap();
    tick().await;
    for n in 2..=8 {
        store.put(&key(n), vec![n; 1000]).await.unwrap();
        store.wait_for_eviction().await;
        tick().await;
    }
    assert!(
        !pinned.exists(),
        "the entry with a future mtime was never evicted"
    );
    assert_eq!(store.get(&key(8)).await.unwrap(), Some(vec![8; 1000]));
}
