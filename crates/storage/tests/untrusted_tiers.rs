//! What the chain does with bytes from a tier whoever else can write to: verified whole
//! before they are delivered or copied anywhere, bounded before they are read, never read
//! through a link or from a FIFO; and a damaged local copy never deletes a shared one.

mod require;
mod tiers_support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoard_storage::entry::{EntryLimits, EntryMeta, ReadLimits};
use hoard_storage::{EntryStore, OutputPath, Storage};
use tiers_support::*;

fn at(root: &Path, key: &hoard_storage::CacheKey) -> PathBuf {
    let hex = key.to_hex();
    root.join(&hex[..2]).join(hex)
}

/// An object file and its outputs under `dir`.
fn outputs(dir: &Path, content: &[u8]) -> Vec<OutputPath> {
    let object = dir.join("a.o");
    std::fs::write(&object, content).unwrap();
    vec![OutputPath::new("object", object)]
}

#[tokio::test]
async fn a_corrupt_local_copy_is_removed_locally_and_the_shared_copy_serves() {
    let shared = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let chain = Arc::new(machine(local.path(), vec![shared_dir_tier(shared.path())]));
    let store = EntryStore::new(chain.clone());
    let outs = outputs(work.path(), &[5u8; 4000]);
    store
        .put_outputs(
            &key(1),
            &outs,
            &EntryMeta::default(),
            &ReadLimits::default(),
        )
        .await
        .unwrap();
    assert!(chain.flush(FLUSH).await);
    let remote = at(shared.path(), &key(1));
    let before = (
        std::fs::metadata(&remote).unwrap().ino(),
        std::fs::read(&remote).unwrap(),
    );

    let mine = at(local.path(), &key(1));
    let mut damaged = std::fs::read(&mine).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    std::fs::write(&mine, damaged).unwrap();

    std::fs::remove_file(&outs[0].path).unwrap();
    let hit = store
        .find_outputs(&key(1), &outs)
        .await
        .unwrap()
        .expect("a hit");
    assert_eq!(hit.tier.as_deref(), Some("shared_dir"));
    assert_eq!(std::fs::read(&outs[0].path).unwrap(), vec![5u8; 4000]);
    assert!(chain.flush(FLUSH).await);
    let after = (
        std::fs::metadata(&remote).unwrap().ino(),
        std::fs::read(&remote).unwrap(),
    );
    assert!(after == before, "the shared copy was touched");
    // Backfilled again, sound.
    assert!(store.find_outputs(&key(1), &outs).await.unwrap().is_some());
    assert_eq!(stats_of(&chain, "shared_dir").hits, 1);
}

#[tokio::test]
async fn a_remote_entry_declaring_more_than_the_limits_is_refused_and_never_backfilled() {
    let shared = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(machine(
        writer_dir.path(),
        vec![shared_dir_tier(shared.path())],
    ));
    EntryStore::new(writer.clone())
        .put_outputs(
            &key(2),
            &outputs(work.path(), &vec![1u8; 50_000]),
            &EntryMeta::default(),
            &ReadLimits::default(),
        )
        .await
        .unwrap();
    assert!(writer.flush(FLUSH).await);

    let reader_dir = tempfile::tempdir().unwrap();
    let reader = machine(reader_dir.path(), vec![shared_dir_tier(shared.path())])
        .with_entry_limits(EntryLimits {
            max_file_size: 10_000,
            ..EntryLimits::default()
        });
    assert_eq!(reader.get(&key(2)).await.unwrap(), None);
    let s = stats_of(&reader, "shared_dir");
    assert_eq!(
        (s.hits, s.errors, s.state.as_str()),
        (0, 1, "closed"),
        "{s:?}"
    );
    assert_eq!(reader.local().get(&key(2)).await.unwrap(), None);
    assert!(
        at(shared.path(), &key(2)).exists(),
        "left for the next put to replace"
    );
}

#[tokio::test]
async fn an_entry_over_the_tiers_size_limit_is_not_read() {
    let shared = tempfile::tempdir().unwrap();
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = machine(writer_dir.path(), vec![shared_dir_tier(shared.path())]);
    writer.put(&key(3), entry(3, 5000)).await.unwrap();
    assert!(writer.flush(FLUSH).await);

    let reader_dir = tempfile::tempdir().unwrap();
    let mut tight = shared_dir_tier(shared.path());
    tight.max_entry_size = Some(1000);
    let reader = machine(reader_dir.path(), vec![tight]);
    assert_eq!(reader.get(&key(3)).await.unwrap(), None);
    let s = stats_of(&reader, "shared_dir");
    assert_eq!((s.hits, s.errors), (0, 1), "{s:?}");
    // The default limit, with none configured, is generous but finite.
    let other_dir = tempfile::tempdir().unwrap();
    let loose = machine(other_dir.path(), vec![shared_dir_tier(shared.path())]);
    assert_eq!(loose.get(&key(3)).await.unwrap(), Some(entry(3, 5000)));
}

#[tokio::test]
async fn fifos_at_entry_paths_are_refused_at_once_and_never_open_the_breaker() {
    let shared = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = machine(dir.path(), vec![shared_dir_tier(shared.path())]);
    let start = Instant::now();
    for n in 0..10 {
        let path = at(shared.path(), &key(n));
        require::mkfifo(&path).unwrap();
        assert_eq!(storage.get(&key(n)).await.unwrap(), None);
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let s = stats_of(&storage, "shared_dir");
    assert_eq!(
        (s.errors, s.timeouts, s.state.as_str()),
        (10, 0, "closed"),
        "{s:?}"
    );
    // The tier still serves: a put replaces the FIFO with an entry.
    storage.put(&key(0), entry(0, 100)).await.unwrap();
    assert!(storage.flush(FLUSH).await);
    let other_dir = tempfile::tempdir().unwrap();
    let other = machine(other_dir.path(), vec![shared_dir_tier(shared.path())]);
    assert_eq!(other.get(&key(0)).await.unwrap(), Some(entry(0, 100)));
}
