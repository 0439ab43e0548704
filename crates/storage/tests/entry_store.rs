//! `EntryStore`: outputs and blobs through a real `DiskStore`, on both runtime flavours, and
//! what counts as a miss.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use hoard_storage::{
    CacheKey, DiskStore, EntryError, EntryMeta, EntryStore, OutputPath, ReadLimits, StoreError,
};

fn key(n: u8) -> CacheKey {
    CacheKey::from(blake3::hash(&[n]))
}

fn store(dir: &Path) -> EntryStore {
    EntryStore::new(Arc::new(
        DiskStore::open(&dir.join("cache"), 1 << 20).unwrap(),
    ))
}

fn meta() -> EntryMeta {
    EntryMeta {
        stdout: b"".to_vec(),
        stderr: b"a.c:1: warning: unused\n".to_vec(),
        exit_status: 0,
        compile_ms: 40,
    }
}

/// Writes an object and a dep file under `dir/src` and returns them as outputs.
fn compiled(dir: &Path) -> Vec<OutputPath> {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.o"), b"object").unwrap();
    fs::write(src.join("a.d"), b"a.o: a.c\n").unwrap();
    vec![
        OutputPath::new("object", src.join("a.o")),
        OutputPath::new("dep", src.join("a.d")),
    ]
}

fn elsewhere(dir: &Path) -> Vec<OutputPath> {
    let out = dir.join("out");
    fs::create_dir_all(&out).unwrap();
    vec![
        OutputPath::new("dep", out.join("b.d")),
        OutputPath::new("object", out.join("b.o")),
    ]
}

async fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let k = key(1);
    assert_eq!(
        store.get_outputs(&k, &elsewhere(dir.path())).await.unwrap(),
        None
    );
    store
        .put_outputs(&k, &compiled(dir.path()), &meta(), &ReadLimits::default())
        .await
        .unwrap();
    let got = store.get_outputs(&k, &elsewhere(dir.path())).await.unwrap();
    assert_eq!(got, Some(meta()));
    assert_eq!(fs::read(dir.path().join("out/b.o")).unwrap(), b"object");
    assert_eq!(fs::read(dir.path().join("out/b.d")).unwrap(), b"a.o: a.c\n");

    assert_eq!(store.get_blob(&key(2)).await.unwrap(), None);
    store.put_blob(&key(2), b"manifest".to_vec()).await.unwrap();
    assert_eq!(store.get_blob(&key(2)).await.unwrap().unwrap(), b"manifest");
}

#[tokio::test]
async fn outputs_and_blobs_round_trip_on_a_current_thread_runtime() {
    round_trip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_and_blobs_round_trip_on_a_multi_thread_runtime() {
    round_trip().await;
}

#[tokio::test]
async fn a_corrupt_outputs_entry_is_a_miss_writes_nothing_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let k = key(3);
    store
        .put_outputs(&k, &compiled(dir.path()), &meta(), &ReadLimits::default())
        .await
        .unwrap();
    let mut raw = store.storage().get(&k).await.unwrap().unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0xff;
    store.storage().put(&k, raw).await.unwrap();

    let targets = elsewhere(dir.path());
    assert_eq!(store.get_outputs(&k, &targets).await.unwrap(), None);
    assert!(targets.iter().all(|t| !t.path.exists()));
    assert_eq!(store.storage().get(&k).await.unwrap(), None);
}

#[tokio::test]
async fn a_role_mismatch_is_a_miss_and_keeps_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let k = key(4);
    store
        .put_outputs(&k, &compiled(dir.path()), &meta(), &ReadLimits::default())
        .await
        .unwrap();
    let only_object = [OutputPath::new("object", dir.path().join("c.o"))];
    assert_eq!(store.get_outputs(&k, &only_object).await.unwrap(), None);
    assert!(!dir.path().join("c.o").exists());
    assert!(store.storage().get(&k).await.unwrap().is_some());
}

#[tokio::test]
async fn put_outputs_reports_an_output_it_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let outputs = compiled(dir.path());
    let link = dir.path().join("link.o");
    std::os::unix::fs::symlink(&outputs[0].path, &link).unwrap();
    let err = store
        .put_outputs(
            &key(5),
            &[OutputPath::new("object", &link)],
            &meta(),
            &ReadLimits::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Entry(EntryError::Symlink { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("link.o"), "{err}");
    assert_eq!(store.storage().get(&key(5)).await.unwrap(), None);
}

#[tokio::test]
async fn an_extract_that_cannot_write_is_an_error_not_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let k = key(6);
    store
        .put_outputs(&k, &compiled(dir.path()), &meta(), &ReadLimits::default())
        .await
        .unwrap();
    let targets = [
        OutputPath::new("object", dir.path().join("nowhere/a.o")),
        OutputPath::new("dep", dir.path().join("nowhere/a.d")),
    ];
    let err = store.get_outputs(&k, &targets).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Entry(EntryError::Io { .. })),
        "{err}"
    );
    assert!(store.storage().get(&k).await.unwrap().is_some());
}
