//! Split entries on a real directory: a raw entry with large files is kept as a stub with
//! its large files beside it, reads back byte for byte, hands its outputs over by a kernel
//! copy or (asked) a hard link, is counted and evicted whole, and is found out and removed
//! when a file beside it changes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoard_storage::entry::split::SPLIT_MIN_SIZE;
use hoard_storage::{
    CacheKey, DiskStore, EntryMeta, EntryStore, OutputPath, ReadLimits, Storage, entry,
};

const BIG: usize = 3 * SPLIT_MIN_SIZE as usize;

fn key(n: u8) -> CacheKey {
    CacheKey::from(blake3::hash(&[n]))
}

fn meta() -> EntryMeta {
    EntryMeta {
        stdout: b"out".to_vec(),
        stderr: b"warning: x".to_vec(),
        exit_status: 0,
        compile_ms: 12,
    }
}

/// A compile's outputs in `dir`: a large rlib (split off), a small rmeta and a `.d`.
fn outputs(dir: &Path, seed: u8) -> Vec<OutputPath> {
    fs::create_dir_all(dir).unwrap();
    let big: Vec<u8> = (0..BIG)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    fs::write(dir.join("libx.rlib"), big).unwrap();
    fs::write(dir.join("libx.rmeta"), [seed; 100]).unwrap();
    fs::write(dir.join("x.d"), b"x.rlib: x.rs\n").unwrap();
    ["libx.rlib", "libx.rmeta", "x.d"]
        .iter()
        .map(|name| OutputPath::new(*name, dir.join(name)))
        .collect()
}

fn elsewhere(dir: &Path) -> Vec<OutputPath> {
    fs::create_dir_all(dir).unwrap();
    ["libx.rlib", "libx.rmeta", "x.d"]
        .iter()
        .map(|name| OutputPath::new(*name, dir.join(name)))
        .collect()
}

fn stub_path(cache: &Path, k: &CacheKey) -> PathBuf {
    let hex = k.to_hex();
    cache.join(&hex[..2]).join(hex)
}

/// The files beside the stub for `k`.
fn beside(cache: &Path, k: &CacheKey) -> Vec<PathBuf> {
    let stub = stub_path(cache, k);
    let name = stub.file_name().unwrap().to_string_lossy().into_owned();
    let mut found: Vec<PathBuf> = fs::read_dir(stub.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}."))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_large_entry_is_kept_split_and_reads_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let store = DiskStore::open(&cache, 1 << 30).unwrap();
    let packed = entry::read_outputs(&outputs(&dir.path().join("a"), 1), &ReadLimits::default())
        .unwrap()
        .pack_as(&meta(), entry::EntryFormat::Raw)
        .unwrap();
    let k = key(1);
    store.put(&k, packed.clone()).await.unwrap();

    let files = beside(&cache, &k);
    assert_eq!(files.len(), 1, "only the rlib is large: {files:?}");
    assert_eq!(fs::metadata(&files[0]).unwrap().len(), BIG as u64);
    let stub_len = fs::metadata(stub_path(&cache, &k)).unwrap().len();
    assert!(stub_len < 1024, "stub of {stub_len} bytes");
    assert_eq!(store.size_bytes(), stub_len + BIG as u64);
    assert_eq!(store.entry_count(), 1);
    assert_eq!(store.get(&k).await.unwrap().unwrap(), packed);

    // A reopened store counts it the same from the directory.
    let reopened = DiskStore::open(&cache, 1 << 30).unwrap();
    reopened.evict().await.unwrap();
    assert_eq!(reopened.size_bytes(), stub_len + BIG as u64);
    assert_eq!(reopened.entry_count(), 1);

    // Compressed entries and small raw ones are stored whole.
    let small = entry::read_outputs(
        &[OutputPath::new("o", dir.path().join("a/libx.rmeta"))],
        &ReadLimits::default(),
    )
    .unwrap()
    .pack_as(&meta(), entry::EntryFormat::Raw)
    .unwrap();
    store.put(&key(2), small.clone()).await.unwrap();
    assert!(beside(&cache, &key(2)).is_empty());
    assert_eq!(fs::read(stub_path(&cache, &key(2))).unwrap(), small);
}

#[tokio::test]
async fn a_split_hit_copies_large_outputs_and_with_hard_links_links_them() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let store = Arc::new(DiskStore::open(&cache, 1 << 30).unwrap());
    let copies = EntryStore::new(store.clone());
    let links = EntryStore::new(store.clone()).with_hard_links(true);
    let compiled = outputs(&dir.path().join("a"), 2);
    let k = key(3);
    copies
        .put_outputs(&k, &compiled, &meta(), &ReadLimits::default())
        .await
        .unwrap();
    let stored = &beside(&cache, &k)[0];

    for (store, linked) in [(&copies, false), (&links, true)] {
        let out_dir = dir.path().join(format!("out-{linked}"));
        let wanted = elsewhere(&out_dir);
        let hit = store.find_outputs(&k, &wanted).await.unwrap().unwrap();
        assert_eq!(hit.meta, meta());
        for (got, want) in wanted.iter().zip(&compiled) {
            assert_eq!(fs::read(&got.path).unwrap(), fs::read(&want.path).unwrap());
            assert_eq!(
                hit.digests[wanted.iter().position(|o| o == got).unwrap()],
                *blake3::hash(&fs::read(&want.path).unwrap()).as_bytes()
            );
        }
        let rlib = fs::metadata(out_dir.join("libx.rlib")).unwrap();
        let same_inode = rlib.ino() == fs::metadata(stored).unwrap().ino();
        assert_eq!(same_inode, linked, "hard links: {linked}");
        // The small files are always written from the stub.
        assert_eq!(fs::metadata(out_dir.join("x.d")).unwrap().nlink(), 1);
    }
}

#[tokio::test]
async fn an_output_written_through_a_hard_link_makes_the_entry_corrupt_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let corrupt = Arc::new(AtomicUsize::new(0));
    let counted = corrupt.clone();
    let store = EntryStore::new(Arc::new(DiskStore::open(&cache, 1 << 30).unwrap()))
        .with_hard_links(true)
        .on_corrupt(Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
    let k = key(4);
    store
        .put_outputs(
            &k,
            &outputs(&dir.path().join("a"), 3),
            &meta(),
            &ReadLimits::default(),
        )
        .await
        .unwrap();
    let out_dir = dir.path().join("out");
    assert!(
        store
            .find_outputs(&k, &elsewhere(&out_dir))
            .await
            .unwrap()
            .is_some()
    );

    // A tool rewrites the output in place, same size: the stored file changes with it.
    let rlib = out_dir.join("libx.rlib");
    let mut bytes = fs::read(&rlib).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&rlib, &bytes).unwrap();

    let again = dir.path().join("again");
    assert!(
        store
            .find_outputs(&k, &elsewhere(&again))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(corrupt.load(Ordering::SeqCst), 1);
    assert!(
        !again.join("libx.rlib").exists(),
        "nothing written from a changed entry"
    );
    assert!(!stub_path(&cache, &k).exists());
    assert!(beside(&cache, &k).is_empty());
}

#[tokio::test]
async fn a_store_that_did_not_write_the_entry_verifies_it_and_finds_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let writer = EntryStore::new(Arc::new(DiskStore::open(&cache, 1 << 30).unwrap()));
    let k = key(5);
    writer
        .put_outputs(
            &k,
            &outputs(&dir.path().join("a"), 4),
            &meta(),
            &ReadLimits::default(),
        )
        .await
        .unwrap();
    let stored = beside(&cache, &k).remove(0);
    let mut bytes = fs::read(&stored).unwrap();
    bytes[7] ^= 1;
    fs::write(&stored, &bytes).unwrap();

    // Another process (a second server on the directory) has never seen the file.
    let reader = EntryStore::new(Arc::new(DiskStore::open(&cache, 1 << 30).unwrap()));
    let out = dir.path().join("out");
    assert!(
        reader
            .find_outputs(&k, &elsewhere(&out))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!out.join("libx.rlib").exists());
    assert!(!stub_path(&cache, &k).exists());
}

#[tokio::test]
async fn eviction_removes_a_split_entry_with_its_files_and_clears_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let limit = 2 * BIG as u64 + BIG as u64 / 2;
    let store = EntryStore::new(Arc::new(DiskStore::open(&cache, limit).unwrap()));
    for n in 0..3u8 {
        store
            .put_outputs(
                &key(10 + n),
                &outputs(&dir.path().join(format!("src{n}")), n),
                &meta(),
                &ReadLimits::default(),
            )
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let disk = DiskStore::open(&cache, limit).unwrap();
    disk.evict().await.unwrap();
    assert!(
        !stub_path(&cache, &key(10)).exists(),
        "the oldest is evicted"
    );
    assert!(
        beside(&cache, &key(10)).is_empty(),
        "with the file beside it"
    );
    assert!(stub_path(&cache, &key(12)).exists());
    assert!(disk.size_bytes() <= limit);

    // A file beside no stub (its writer died before the stub) is cleared once stale.
    let orphan =
        stub_path(&cache, &key(12)).with_file_name(format!("{}.0123456789abcdef", "f".repeat(64)));
    fs::write(&orphan, b"left behind").unwrap();
    fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    disk.evict().await.unwrap();
    assert!(!orphan.exists());
}
