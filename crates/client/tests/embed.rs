//! The embedding API in-process, with real gcc: keyed gets and puts, the full pipeline, and
//! two handles sharing one cache directory.

use std::path::Path;

use hoard_client::{CacheKey, CacheStatus, CommandLine, Hoard, NonCacheable, OutputPath};

const MAX_SIZE: u64 = 1 << 30;

fn gcc(dir: &Path, args: &[&str]) -> CommandLine {
    CommandLine {
        program: "gcc".into(),
        args: args.iter().map(Into::into).collect(),
        cwd: dir.to_path_buf(),
        env: std::env::vars_os().collect(),
    }
}

#[tokio::test]
async fn embedded_put_then_get_restores_every_output_byte_identically() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = Hoard::embedded(dir.path().join("hoard"), MAX_SIZE).unwrap();
    let key = CacheKey::from_bytes([1; 32]);
    // Binary content with every byte value, and an empty file: nothing may be mangled.
    let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let outputs = [
        OutputPath::new("blob", dir.path().join("blob.bin")),
        OutputPath::new("empty", dir.path().join("empty")),
    ];
    std::fs::write(&outputs[0].path, &blob).unwrap();
    std::fs::write(&outputs[1].path, b"").unwrap();
    hoard
        .put(&key, &outputs, b"said this\n", b"warned that\n", 0)
        .await
        .unwrap();
    for output in &outputs {
        std::fs::remove_file(&output.path).unwrap();
    }

    let hit = hoard.get(&key, &outputs).await.unwrap().expect("a hit");
    assert_eq!(hit.stdout, b"said this\n");
    assert_eq!(hit.stderr, b"warned that\n");
    assert_eq!(hit.exit_status, 0);
    assert_eq!(std::fs::read(&outputs[0].path).unwrap(), blob);
    assert_eq!(std::fs::read(&outputs[1].path).unwrap(), b"");
}

#[tokio::test]
async fn embedded_get_of_an_unknown_key_is_none_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = Hoard::embedded(dir.path().join("hoard"), MAX_SIZE).unwrap();
    let out = OutputPath::new("out", dir.path().join("out.txt"));
    let got = hoard
        .get(&CacheKey::from_bytes([2; 32]), std::slice::from_ref(&out))
        .await
        .unwrap();
    assert!(got.is_none());
    assert!(!out.path.exists());
}

#[tokio::test]
async fn compile_twice_hits_the_second_time_with_a_byte_identical_object() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = Hoard::embedded(dir.path().join("hoard"), MAX_SIZE).unwrap();
    std::fs::write(
        dir.path().join("sum.c"),
        "int sum(int a, int b) { return a + b; }\n",
    )
    .unwrap();
    let command = gcc(dir.path(), &["-O2", "-c", "sum.c", "-o", "sum.o"]);
    let object = dir.path().join("sum.o");

    let first = hoard.compile(&command).await;
    assert_eq!(first.result.exit_status, 0, "{first:?}");
    assert_eq!(first.status, CacheStatus::Miss);
    assert!(first.cache_errors.is_empty(), "{:?}", first.cache_errors);
    let compiled = std::fs::read(&object).unwrap();
    std::fs::remove_file(&object).unwrap();

    let second = hoard.compile(&command).await;
    assert_eq!(second.result.exit_status, 0, "{second:?}");
    assert!(
        matches!(second.status, CacheStatus::Hit { .. }),
        "{:?}",
        second.status
    );
    assert!(second.cache_errors.is_empty(), "{:?}", second.cache_errors);
    assert_eq!(std::fs::read(&object).unwrap(), compiled);
}

#[tokio::test]
async fn a_link_command_is_not_cacheable_and_still_builds_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = Hoard::embedded(dir.path().join("hoard"), MAX_SIZE).unwrap();
    std::fs::write(dir.path().join("main.c"), "int main(void) { return 3; }\n").unwrap();

    let outcome = hoard
        .compile(&gcc(dir.path(), &["main.c", "-o", "main"]))
        .await;
    assert_eq!(
        outcome.status,
        CacheStatus::NotCacheable(NonCacheable::Linking)
    );
    assert_eq!(outcome.result.exit_status, 0, "{outcome:?}");
    let status = std::process::Command::new(dir.path().join("main"))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn two_embedded_handles_on_one_directory_share_entries() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("hoard");
    let writer = Hoard::embedded(&cache_dir, MAX_SIZE).unwrap();
    let reader = Hoard::embedded(&cache_dir, MAX_SIZE).unwrap();

    // Keyed entries.
    let key = CacheKey::from_bytes([3; 32]);
    let written = OutputPath::new("out", dir.path().join("written.txt"));
    std::fs::write(&written.path, "shared\n").unwrap();
    writer
        .put(&key, std::slice::from_ref(&written), b"", b"", 0)
        .await
        .unwrap();
    let read = OutputPath::new("out", dir.path().join("read.txt"));
    assert!(
        reader
            .get(&key, std::slice::from_ref(&read))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(std::fs::read(&read.path).unwrap(), b"shared\n");

    // And the pipeline's entries.
    std::fs::write(dir.path().join("one.c"), "int one(void) { return 1; }\n").unwrap();
    let command = gcc(dir.path(), &["-c", "one.c", "-o", "one.o"]);
    assert_eq!(writer.compile(&command).await.status, CacheStatus::Miss);
    let compiled = std::fs::read(dir.path().join("one.o")).unwrap();
    std::fs::remove_file(dir.path().join("one.o")).unwrap();
    let served = reader.compile(&command).await;
    assert!(
        matches!(served.status, CacheStatus::Hit { .. }),
        "{:?}",
        served.status
    );
    assert_eq!(std::fs::read(dir.path().join("one.o")).unwrap(), compiled);
}

#[tokio::test]
async fn an_entry_is_a_miss_when_asked_for_other_roles() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = Hoard::embedded(dir.path().join("hoard"), MAX_SIZE).unwrap();
    let key = CacheKey::from_bytes([4; 32]);
    let stored = OutputPath::new("object", dir.path().join("a.o"));
    std::fs::write(&stored.path, "obj").unwrap();
    hoard
        .put(&key, std::slice::from_ref(&stored), b"", b"", 0)
        .await
        .unwrap();
    let other = OutputPath::new("dep", dir.path().join("a.d"));
    assert!(
        hoard
            .get(&key, std::slice::from_ref(&other))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn put_of_a_missing_output_is_an_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = Hoard::embedded(dir.path().join("hoard"), MAX_SIZE).unwrap();
    let key = CacheKey::from_bytes([5; 32]);
    let missing = OutputPath::new("out", dir.path().join("never-written"));
    assert!(
        hoard
            .put(&key, std::slice::from_ref(&missing), b"", b"", 0)
            .await
            .is_err()
    );
    assert!(
        hoard
            .get(&key, std::slice::from_ref(&missing))
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn embedded_refuses_a_cache_directory_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let error = Hoard::embedded(&file, MAX_SIZE).unwrap_err();
    assert!(
        matches!(error, hoard_client::EmbedError::Open { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn embedded_caches_with_a_shared_tier_share_entries_across_machines() {
    use hoard_storage::{TierConfig, TierKind};
    let (a_dir, b_dir, shared) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let tier = || {
        vec![TierConfig::new(TierKind::SharedDir {
            path: shared.path().to_owned(),
        })]
    };
    let a = Hoard::embedded_with_tiers(a_dir.path(), MAX_SIZE, tier()).unwrap();
    let b = Hoard::embedded_with_tiers(b_dir.path(), MAX_SIZE, tier()).unwrap();
    let key = CacheKey::from_bytes([7; 32]);
    let output = [OutputPath::new("out", a_dir.path().join("out.txt"))];
    std::fs::write(&output[0].path, b"made on machine A").unwrap();
    a.put(&key, &output, b"", b"", 0).await.unwrap();
    assert!(
        a.flush(std::time::Duration::from_secs(10)).await,
        "A's upload finished"
    );

    let there = [OutputPath::new("out", b_dir.path().join("out.txt"))];
    assert!(
        b.get(&key, &there).await.unwrap().is_some(),
        "B hits A's entry"
    );
    assert_eq!(std::fs::read(&there[0].path).unwrap(), b"made on machine A");
}
