//! The reapi tier (a Bazel Remote Execution API action cache and CAS) against a real
//! BuildGrid server started here (PyPI `buildgrid`; `scripts/test` installs it). What hoard
//! stores is read back with BuildGrid's own client, `bgd`, and the action cache keys are
//! computed with BuildGrid's own protobuf classes, so the mapping is checked against another
//! implementation of the API. Each test says so when `bgd` is missing; under
//! `HOARD_TEST_REQUIRE=all` that fails it.

mod require;
mod tiers_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hoard_storage::entry::{self, EntryMeta};
use hoard_storage::{OutputPath, ReadLimits, Storage, TierConfig, TierKind};
use tiers_support::reapi::{
    self, BuildGrid, GRPC_MESSAGE_LIMIT, NO_BGD, Options, output_file, output_files, pki,
};
use tiers_support::*;

/// BuildGrid serving `instances`, or `None` after saying `test` cannot run without it.
fn buildgrid(test: &str, instances: &[&str]) -> Option<BuildGrid> {
    let server = BuildGrid::with_instances(instances);
    if server.is_none() {
        require::unavailable(test, NO_BGD);
    }
    server
}

/// The reapi tier at `endpoint`, in `instance` (`None`: the default one). These tests are
/// about what is stored and read, never about how fast: one operation may take 30 s (the
/// default, 1 s, bounds a whole multi-MiB transfer, which a busy machine can exceed).
fn reapi_tier_at(endpoint: String, instance: Option<&str>) -> TierConfig {
    let mut tier = TierConfig::new(TierKind::Reapi {
        endpoint,
        instance: instance.map(str::to_owned),
        headers: Vec::new(),
        tls_ca: None,
        tls_client_cert: None,
        tls_client_key: None,
    });
    tier.op_timeout = Duration::from_secs(30);
    // A BuildGrid just started on a loaded machine can take longer than the default 200 ms
    // to accept a connection; these tests are about what is stored, not how fast.
    tier.connect_timeout = Duration::from_secs(10);
    tier
}

fn reapi_tier(server: &BuildGrid) -> TierConfig {
    reapi_tier_at(server.endpoint(), None)
}

/// The payload of a blob entry a tier returned. The reapi tier rebuilds an entry from its
/// files (as a raw entry), so its bytes need not be the compressed ones that were put: what
/// must be the same is what it holds.
fn payload(got: Option<Vec<u8>>) -> Option<Vec<u8>> {
    got.map(|e| entry::unpack_blob(&e).unwrap_or_else(|err| panic!("not a blob entry: {err}")))
}

/// The payload of [`entry`]`(n, len)`.
fn blob(n: u8, len: usize) -> Vec<u8> {
    entry::unpack_blob(&entry(n, len)).unwrap()
}

/// A compile's entry, as a server packs it from the files a compile left: an object of
/// `object_len` incompressible bytes (executable, as a linked output is) and a dependency
/// file, with what the compiler printed.
struct Compiled {
    object: Vec<u8>,
    dep: Vec<u8>,
    meta: EntryMeta,
    entry: Vec<u8>,
}

fn compiled(n: u8, object_len: usize) -> Compiled {
    let work = tempfile::tempdir().unwrap();
    let mut object = vec![0u8; object_len];
    blake3::Hasher::new()
        .update(b"object")
        .update(&[n])
        .finalize_xof()
        .fill(&mut object);
    let dep = format!("out/{n}.o: src/{n}.c include/{n}.h\n").into_bytes();
    std::fs::write(work.path().join("x.o"), &object).unwrap();
    std::fs::set_permissions(
        work.path().join("x.o"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(work.path().join("x.d"), &dep).unwrap();
    let meta = EntryMeta {
        stdout: if n.is_multiple_of(2) {
            Vec::new()
        } else {
            format!("note {n}\n").into_bytes()
        },
        stderr: format!("src/{n}.c:1:1: warning: entry {n}\n").into_bytes(),
        exit_status: 0,
        compile_ms: 10 + u64::from(n),
    };
    let entry = entry::pack(&outputs_in(work.path()), &meta, &ReadLimits::default()).unwrap();
    Compiled {
        object,
        dep,
        meta,
        entry,
    }
}

/// The outputs of a [`compiled`] entry, as paths under `dir`.
fn outputs_in(dir: &Path) -> [OutputPath; 2] {
    [
        OutputPath::new("object", dir.join("x.o")),
        OutputPath::new("dep", dir.join("x.d")),
    ]
}

/// Asserts that `got` (an entry a tier returned) delivers exactly `want`'s files and meta.
fn assert_delivers(got: &[u8], want: &Compiled, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let outputs = outputs_in(dir.path());
    let meta = entry::extract(got, &outputs).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(meta, want.meta, "{what}: stdout, stderr, exit status");
    assert!(
        std::fs::read(&outputs[0].path).unwrap() == want.object,
        "{what}: the object differs"
    );
    let mode = std::fs::metadata(&outputs[0].path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "{what}: the object's mode");
    assert_eq!(
        std::fs::read(&outputs[1].path).unwrap(),
        want.dep,
        "{what}: the dependency file"
    );
}

#[tokio::test]
async fn buildgrid_shares_entries_between_machines_and_backfills() {
    let Some(server) = buildgrid("buildgrid_shares_entries", &[""]) else {
        return;
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine(a_dir.path(), vec![reapi_tier(&server)]);
    let b = machine(b_dir.path(), vec![reapi_tier(&server)]);
    a.put(&key(1), entry(1, 200_000)).await.unwrap();
    assert!(a.flush(FLUSH).await, "remote writes did not drain");
    assert_eq!(stats_of(&a, "reapi").writes, 1, "{:?}", a.tier_stats());

    assert_eq!(b.local().get(&key(1)).await.unwrap(), None);
    let hit = b.get(&key(1)).await.unwrap();
    assert_eq!(
        payload(hit.clone()),
        Some(blob(1, 200_000)),
        "no remote hit"
    );
    let remote = stats_of(&b, "reapi");
    assert_eq!(
        (remote.hits, remote.errors, remote.timeouts),
        (1, 0, 0),
        "{remote:?}"
    );
    // Backfilled into B's local tier after the hit was answered: the next get is local.
    assert!(b.flush(FLUSH).await);
    assert_eq!(b.local().get(&key(1)).await.unwrap(), hit);
    assert_eq!(b.get(&key(1)).await.unwrap(), hit);
    let local = stats_of(&b, "local");
    assert_eq!(
        (local.hits, local.misses, local.writes),
        (1, 1, 1),
        "{local:?}"
    );
    assert_eq!(stats_of(&b, "reapi").hits, 1);

    // A miss everywhere is a miss, counted as one by the tier.
    assert_eq!(b.get(&key(2)).await.unwrap(), None);
    assert_eq!(stats_of(&b, "reapi").misses, 1);

    // A third machine whose limit is under the entry's size refuses it: the tier's error,
    // never a hit.
    let tight_dir = tempfile::tempdir().unwrap();
    let mut tight = reapi_tier(&server);
    tight.max_entry_size = Some(100_000);
    let third = machine(tight_dir.path(), vec![tight]);
    assert_eq!(third.get(&key(1)).await.unwrap(), None, "over the limit");
    let refused = stats_of(&third, "reapi");
    assert_eq!((refused.hits, refused.errors), (0, 1), "{refused:?}");
}

#[tokio::test]
async fn a_second_machine_on_an_empty_disk_gets_every_entry_from_buildgrid() {
    let Some(server) = buildgrid("a_second_machine_gets_every_entry", &[""]) else {
        return;
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine(a_dir.path(), vec![reapi_tier(&server)]);
    let entries: Vec<Compiled> = (0..12u8)
        .map(|n| compiled(n, 1000 + usize::from(n) * 37_000))
        .collect();
    for (n, c) in (0u8..).zip(&entries) {
        a.put(&key(n), c.entry.clone()).await.unwrap();
    }
    assert!(a.flush(FLUSH).await, "A's writes did not drain");
    let written = stats_of(&a, "reapi");
    assert_eq!(
        (
            written.writes,
            written.errors,
            written.timeouts,
            written.skipped
        ),
        (12, 0, 0, 0),
        "{written:?}\nserver log:\n{}",
        server.log()
    );

    let b = machine(b_dir.path(), vec![reapi_tier(&server)]);
    for (n, c) in (0u8..).zip(&entries) {
        assert_eq!(b.local().get(&key(n)).await.unwrap(), None);
        let got = b
            .get(&key(n))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("entry {n}: a miss: {:?}", b.tier_stats()));
        assert_delivers(&got, c, &format!("entry {n} on B"));
    }
    let read = stats_of(&b, "reapi");
    assert_eq!(
        (read.hits, read.misses, read.errors, read.timeouts),
        (12, 0, 0, 0),
        "{read:?}"
    );
    // Backfilled: B's own disk delivers them all now.
    assert!(b.flush(FLUSH).await);
    for (n, c) in (0u8..).zip(&entries) {
        let local = b.local().get(&key(n)).await.unwrap();
        assert_delivers(
            &local.unwrap_or_else(|| panic!("entry {n} not backfilled")),
            c,
            &format!("entry {n} on B's disk"),
        );
    }
    assert_eq!(b.get(&key(200)).await.unwrap(), None);
    assert_eq!(stats_of(&b, "reapi").misses, 1);
}

#[tokio::test]
async fn a_file_over_buildgrids_4_mib_message_limit_round_trips_byte_for_byte_through_bytestream() {
    let Some(server) = buildgrid("a_file_over_the_message_limit", &[""]) else {
        return;
    };
    // BuildGrid refuses any gRPC message over 4 MiB, so no batch call can carry this object
    // either way: only ByteStream's chunked writes and reads can.
    let big = compiled(1, 6 << 20);
    assert!(big.object.len() > GRPC_MESSAGE_LIMIT);
    assert!(big.entry.len() > GRPC_MESSAGE_LIMIT, "incompressible");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine(a_dir.path(), vec![reapi_tier(&server)]);
    a.put(&key(1), big.entry.clone()).await.unwrap();
    assert!(a.flush(FLUSH).await);
    let s = stats_of(&a, "reapi");
    assert_eq!(
        (s.writes, s.errors, s.timeouts, s.skipped),
        (1, 0, 0, 0),
        "{s:?}\nserver log:\n{}",
        server.log()
    );

    let b = machine(b_dir.path(), vec![reapi_tier(&server)]);
    let got = b.get(&key(1)).await.unwrap();
    let s = stats_of(&b, "reapi");
    assert_eq!((s.hits, s.errors, s.timeouts), (1, 0, 0), "{s:?}");
    assert_delivers(&got.unwrap(), &big, "the 6 MiB entry on B");

    // The server holds the object as one blob of its own, the very bytes.
    let action = server.action_digest(&key(1).to_hex());
    let result = server.action_result("", &action).expect("an ActionResult");
    let object = output_file(&result, "object");
    assert!(object.ends_with(&format!("/{}", 6 << 20)), "{object}");
    assert!(
        server.download("", &object) == big.object,
        "the blob differs"
    );
}

#[tokio::test]
async fn a_named_instance_keeps_its_entries_apart_from_the_default_instance() {
    let Some(server) = buildgrid("a_named_instance", &["", "team-a"]) else {
        return;
    };
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let team = |dir: &Path| machine(dir, vec![reapi_tier_at(server.endpoint(), Some("team-a"))]);
    let default = |dir: &Path| machine(dir, vec![reapi_tier(&server)]);
    let (team_writer, default_writer) = (team(dirs[0].path()), default(dirs[1].path()));
    team_writer.put(&key(1), entry(1, 5000)).await.unwrap();
    default_writer.put(&key(2), entry(2, 5000)).await.unwrap();
    assert!(team_writer.flush(FLUSH).await && default_writer.flush(FLUSH).await);
    for writer in [&team_writer, &default_writer] {
        let s = stats_of(writer, "reapi");
        assert_eq!((s.writes, s.errors), (1, 0), "{s:?}");
    }

    let (team_reader, default_reader) = (team(dirs[2].path()), default(dirs[3].path()));
    assert_eq!(
        payload(team_reader.get(&key(1)).await.unwrap()),
        Some(blob(1, 5000))
    );
    assert_eq!(team_reader.get(&key(2)).await.unwrap(), None);
    assert_eq!(
        payload(default_reader.get(&key(2)).await.unwrap()),
        Some(blob(2, 5000))
    );
    assert_eq!(default_reader.get(&key(1)).await.unwrap(), None);
    for reader in [&team_reader, &default_reader] {
        let s = stats_of(reader, "reapi");
        assert_eq!((s.hits, s.misses, s.errors), (1, 1, 0), "{s:?}");
    }

    // BuildGrid agrees: each ActionResult is in its own instance's action cache only.
    let actions = server.action_digests(&[key(1).to_hex(), key(2).to_hex()]);
    assert!(server.action_result("team-a", &actions[0]).is_some());
    assert!(server.action_result("", &actions[0]).is_none());
    assert!(server.action_result("", &actions[1]).is_some());
    assert!(server.action_result("team-a", &actions[1]).is_none());
}

#[tokio::test]
async fn the_stored_action_result_is_readable_by_bgd_and_its_blobs_are_the_entrys_bytes() {
    let Some(server) = buildgrid("the_stored_action_result_is_readable_by_bgd", &[""]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = machine(dir.path(), vec![reapi_tier(&server)]);
    // Entry 1 printed on stdout and stderr; entry 2 on stderr only.
    let (one, two) = (compiled(1, 300_000), compiled(2, 1000));
    a.put(&key(1), one.entry.clone()).await.unwrap();
    a.put(&key(2), two.entry.clone()).await.unwrap();
    assert!(a.flush(FLUSH).await);
    assert_eq!(stats_of(&a, "reapi").writes, 2);

    let actions = server.action_digests(&[key(1).to_hex(), key(2).to_hex()]);
    for ((action, c), n) in actions.iter().zip([&one, &two]).zip(1..) {
        let result = server
            .action_result("", action)
            .unwrap_or_else(|| panic!("entry {n}: no ActionResult under {action}"));
        let mut paths: Vec<String> = output_files(&result).into_iter().map(|(p, _)| p).collect();
        paths.sort();
        assert_eq!(
            paths,
            [".hoard/header", "dep", "object"],
            "entry {n}: {result}"
        );
        // Every output is a blob of its own: the file's bytes under their SHA-256 (bgd's
        // --verify checks the digest).
        assert!(
            server.download("", &output_file(&result, "object")) == c.object,
            "entry {n}: the object blob differs"
        );
        assert_eq!(
            server.download("", &output_file(&result, "dep")),
            c.dep,
            "entry {n}: the dep blob"
        );
        assert!(
            !server
                .download("", &output_file(&result, ".hoard/header"))
                .is_empty()
        );
        let printed = |field: &str| {
            result
                .get(field)
                .map(|d| server.download("", &reapi::digest_string(d)))
        };
        assert_eq!(printed("stderrDigest"), Some(c.meta.stderr.clone()));
        if c.meta.stdout.is_empty() {
            assert_eq!(printed("stdoutDigest"), None, "entry {n}: {result}");
        } else {
            assert_eq!(printed("stdoutDigest"), Some(c.meta.stdout.clone()));
        }
        // A success: proto3 JSON leaves out an exit code of 0.
        assert_eq!(result["exitCode"].as_i64().unwrap_or(0), 0, "{result}");
    }

    // A key hoard never stored is nothing BuildGrid knows either.
    let never = server.action_digest(&key(3).to_hex());
    assert!(server.action_result("", &never).is_none());
}

/// The action cache key of a hoard key is BuildGrid's, computed with its own protobuf
/// classes: a fixed example, to show the computation the other tests rely on is the
/// contract's (`Action { command_digest, input_root_digest: the empty blob }`, SHA-256).
#[test]
fn the_action_key_of_a_hoard_key_is_the_digest_of_its_action_message() {
    let Some(server) = buildgrid("the_action_key_of_a_hoard_key", &[""]) else {
        return;
    };
    // Command { arguments: ["hoard", "entry", "abab…"] }, its digest in an Action with the
    // empty input root (size 0, left out on the wire), hashed again: computed once with
    // BuildGrid 0.4.4's remote_execution_pb2 and written down here.
    assert_eq!(
        server.action_digest(&"ab".repeat(32)),
        "73df9b5f73b153c2daff6cdec5b0fb8f42c4ef78f02e4e134223b646456ab0ae/138"
    );
}

#[tokio::test]
async fn a_dead_endpoint_makes_gets_misses_and_puts_counted_failures_never_errors() {
    // Nothing listens there, and nothing needs to be installed for it.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let storage = machine(
        dir.path(),
        vec![reapi_tier_at(format!("grpc://127.0.0.1:{port}"), None)],
    );
    let start = Instant::now();
    assert_eq!(storage.get(&key(1)).await.unwrap(), None);
    storage.put(&key(2), entry(2, 1000)).await.unwrap();
    assert!(storage.flush(FLUSH).await);
    let s = stats_of(&storage, "reapi");
    assert_eq!((s.hits, s.writes), (0, 0), "{s:?}");
    assert_eq!(
        s.errors + s.timeouts,
        2,
        "a failed get and a failed put: {s:?}"
    );
    // The put is in the local tier all the same, and a get of it is a local hit.
    assert_eq!(storage.get(&key(2)).await.unwrap(), Some(entry(2, 1000)));
    println!(
        "a dead reapi endpoint: {:?} for a get and a put",
        start.elapsed()
    );

    // Past three failures the breaker opens: gets are misses without a call, puts are
    // skipped.
    for n in 3..6 {
        assert_eq!(storage.get(&key(n)).await.unwrap(), None);
    }
    let s = stats_of(&storage, "reapi");
    assert_eq!(s.state, "open", "{s:?}");
    assert!(s.errors + s.timeouts <= 3, "called while open: {s:?}");
    storage.put(&key(7), entry(7, 1000)).await.unwrap();
    assert!(storage.flush(FLUSH).await);
    assert!(stats_of(&storage, "reapi").skipped >= 1);
}

#[tokio::test]
async fn a_read_only_reapi_tier_is_never_written() {
    let Some(server) = buildgrid("a_read_only_reapi_tier", &[""]) else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut read_only = reapi_tier(&server);
    read_only.read_only = true;
    let storage = machine(dir.path(), vec![read_only, shared_dir_tier(shared.path())]);
    for n in 0..5 {
        storage.put(&key(n), entry(n, 1000)).await.unwrap();
    }
    storage.remove(&key(0)).await.unwrap();
    assert_eq!(storage.get(&key(9)).await.unwrap(), None);
    assert!(storage.flush(FLUSH).await);
    let s = stats_of(&storage, "reapi");
    assert!(s.read_only);
    assert_eq!(
        (s.writes, s.skipped, s.misses, s.errors),
        (0, 0, 1, 0),
        "{s:?}"
    );

    // It is still read: an entry another machine wrote is a hit.
    let writer_dir = tempfile::tempdir().unwrap();
    let writer = machine(writer_dir.path(), vec![reapi_tier(&server)]);
    writer.put(&key(7), entry(7, 1000)).await.unwrap();
    assert!(writer.flush(FLUSH).await);
    assert_eq!(
        payload(storage.get(&key(7)).await.unwrap()),
        Some(blob(7, 1000))
    );
    assert_eq!(stats_of(&storage, "reapi").hits, 1);

    // A hit in the lower tier is not backfilled into the read-only one above it.
    let seed_dir = tempfile::tempdir().unwrap();
    let seed = machine(seed_dir.path(), vec![shared_dir_tier(shared.path())]);
    seed.put(&key(8), entry(8, 1000)).await.unwrap();
    assert!(seed.flush(FLUSH).await);
    assert_eq!(
        payload(storage.get(&key(8)).await.unwrap()),
        Some(blob(8, 1000))
    );
    assert!(storage.flush(FLUSH).await);
    assert_eq!(stats_of(&storage, "reapi").writes, 0);

    // BuildGrid holds only what the writer put.
    let keys: Vec<String> = (0..10).map(|n| key(n).to_hex()).collect();
    for (n, action) in server.action_digests(&keys).iter().enumerate() {
        assert_eq!(
            server.action_result("", action).is_some(),
            n == 7,
            "entry {n} on the server"
        );
    }
}

#[tokio::test]
async fn buildgrid_killed_then_restarted_on_the_same_port_hits_resume_without_a_new_storage() {
    let Some(mut server) = buildgrid("buildgrid_killed_then_restarted", &[""]) else {
        return;
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine(a_dir.path(), vec![reapi_tier(&server)]);
    let b = machine(b_dir.path(), vec![reapi_tier(&server)]);
    a.put(&key(1), entry(1, 5000)).await.unwrap();
    assert!(a.flush(FLUSH).await);
    assert_eq!(payload(b.get(&key(1)).await.unwrap()), Some(blob(1, 5000)));
    // The hit reaches B's disk in the background: wait for it.
    assert!(b.flush(FLUSH).await);

    server.kill();
    let each = misses_open_the_breaker(&b, "reapi", 10..20).await;
    println!("BuildGrid down: gets took {each:?} (the breaker opens after 3)");
    // B keeps working from its own disk.
    assert_eq!(payload(b.get(&key(1)).await.unwrap()), Some(blob(1, 5000)));

    // Back on the same port, with the same CAS directory (its action cache is in memory and
    // starts empty): after the cool-down a probe finds it and hits resume.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        a.put(&key(30), entry(30, 3000)).await.unwrap();
        assert!(a.flush(FLUSH).await);
        if b.get(&key(30)).await.unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hits did not resume: A {:?} B {:?}\nserver log:\n{}",
            a.tier_stats(),
            b.tier_stats(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let s = stats_of(&b, "reapi");
    assert_eq!(s.state, "closed", "{s:?}");
}

/// A blob whose bytes changed on the server (a disk fault, a bad cache node) is refused: the
/// entry is neither delivered nor copied into the local disk. And once the blob is gone,
/// the key is a plain miss (BuildGrid drops a result whose blobs it lost).
#[tokio::test]
async fn a_blob_changed_on_the_server_is_refused_never_delivered_nor_backfilled() {
    let Some(server) = buildgrid("a_blob_changed_on_the_server", &[""]) else {
        return;
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine(a_dir.path(), vec![reapi_tier(&server)]);
    let c = compiled(1, 100_000);
    a.put(&key(1), c.entry.clone()).await.unwrap();
    assert!(a.flush(FLUSH).await);
    assert_eq!(stats_of(&a, "reapi").writes, 1);
    let action = server.action_digest(&key(1).to_hex());
    let result = server.action_result("", &action).expect("an ActionResult");
    let object = output_file(&result, "object");
    let hash = object.split('/').next().unwrap();
    let on_disk: Vec<_> = walk(&server.cas_dir())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy() == hash[2..])
        })
        .collect();
    assert_eq!(on_disk.len(), 1, "the object's blob on BuildGrid's disk");
    let mut bytes = std::fs::read(&on_disk[0]).unwrap();
    bytes[50_000] ^= 0x55;
    std::fs::write(&on_disk[0], &bytes).unwrap();

    let b = machine(b_dir.path(), vec![reapi_tier(&server)]);
    assert_eq!(b.get(&key(1)).await.unwrap(), None);
    assert!(b.flush(FLUSH).await);
    let s = stats_of(&b, "reapi");
    assert_eq!((s.hits, s.errors), (0, 1), "{s:?}");
    assert_eq!(b.local().get(&key(1)).await.unwrap(), None, "backfilled");

    std::fs::remove_file(&on_disk[0]).unwrap();
    assert_eq!(b.get(&key(1)).await.unwrap(), None);
    let s = stats_of(&b, "reapi");
    assert_eq!((s.hits, s.errors, s.misses), (0, 1, 1), "{s:?}");
}

/// REAPI servers bound the RPCs they serve at once and answer more with RESOURCE_EXHAUSTED,
/// which the API calls retryable ("the client may retry after a delay"): BuildGrid's bound
/// is its thread pool, 5 per core by default. A burst of lookups over the bound (parallel
/// compiles and prefetch's read-ahead make one) must still find what the server holds.
#[tokio::test]
async fn a_burst_of_lookups_over_the_servers_concurrent_rpc_limit_still_hits_everything() {
    let Some(server) = BuildGrid::with(Options {
        thread_pool_size: Some(5),
        ..Options::default()
    }) else {
        return require::unavailable("a_burst_of_lookups", NO_BGD);
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = machine(a_dir.path(), vec![reapi_tier(&server)]);
    // One at a time: the writer stays under the limit.
    for n in 0..16 {
        a.put(&key(n), entry(n, 3000)).await.unwrap();
        assert!(a.flush(FLUSH).await);
    }
    let s = stats_of(&a, "reapi");
    assert_eq!((s.writes, s.errors, s.timeouts), (16, 0, 0), "{s:?}");

    let b = machine(b_dir.path(), vec![reapi_tier(&server)]);
    let keys: Vec<_> = (0..16).map(key).collect();
    let got = futures::future::join_all(keys.iter().map(|k| b.get(k))).await;
    let missed: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, g)| !matches!(g, Ok(Some(_))))
        .map(|(n, _)| n)
        .collect();
    assert!(
        missed.is_empty(),
        "entries {missed:?} missed: {:?}",
        stats_of(&b, "reapi")
    );
    for (n, got) in (0u8..).zip(got) {
        assert_eq!(payload(got.unwrap()), Some(blob(n, 3000)), "entry {n}");
    }
}

/// `tier` with these headers on every call.
fn with_headers(mut tier: TierConfig, with: &[(&str, &str)]) -> TierConfig {
    if let TierKind::Reapi { headers, .. } = &mut tier.kind {
        *headers = with
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }
    tier
}

/// `tier` trusting `ca`, and presenting `client` (certificate, key) when given.
fn with_tls(mut tier: TierConfig, ca: Option<&Path>, client: Option<(&Path, &Path)>) -> TierConfig {
    if let TierKind::Reapi {
        tls_ca,
        tls_client_cert,
        tls_client_key,
        ..
    } = &mut tier.kind
    {
        *tls_ca = ca.map(Path::to_path_buf);
        *tls_client_cert = client.map(|(cert, _)| cert.to_path_buf());
        *tls_client_key = client.map(|(_, key)| key.to_path_buf());
    }
    tier
}

/// `writer` puts a small entry and one over the message limit (so both the batch calls and
/// ByteStream carry the credentials), and `reader`, on another disk, gets both.
async fn a_writer_and_a_reader_share(writer: TierConfig, reader: TierConfig, server: &BuildGrid) {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (small, big) = (compiled(1, 2000), compiled(2, 5 << 20));
    let a = machine(a_dir.path(), vec![writer]);
    a.put(&key(1), small.entry.clone()).await.unwrap();
    a.put(&key(2), big.entry.clone()).await.unwrap();
    assert!(a.flush(FLUSH).await);
    let s = stats_of(&a, "reapi");
    assert_eq!(
        (s.writes, s.errors, s.timeouts),
        (2, 0, 0),
        "{s:?}\nserver log:\n{}",
        server.log()
    );
    let b = machine(b_dir.path(), vec![reader]);
    for (n, c) in [(1, &small), (2, &big)] {
        let got = b.get(&key(n)).await.unwrap();
        assert_delivers(
            &got.unwrap_or_else(|| panic!("entry {n}: {:?}", b.tier_stats())),
            c,
            &format!("entry {n}"),
        );
    }
}

/// A machine whose calls the server refuses: its get is a miss and its put is not written,
/// both counted as the tier's failures, and neither is an error for the caller.
async fn refused(tier: TierConfig, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let storage = machine(dir.path(), vec![tier]);
    assert_eq!(storage.get(&key(1)).await.unwrap(), None, "{what}");
    storage.put(&key(3), entry(3, 1000)).await.unwrap();
    assert!(storage.flush(FLUSH).await);
    let s = stats_of(&storage, "reapi");
    assert_eq!((s.hits, s.writes), (0, 0), "{what}: {s:?}");
    // The get failed; the put failed too, or (a server that says "not allowed") was
    // declined, which makes the tier read-only from then on.
    assert_eq!(
        s.errors + s.timeouts,
        1 + u64::from(!s.read_only),
        "{what}: {s:?}"
    );
    assert_eq!(s.skipped, u64::from(s.read_only), "{what}: {s:?}");
    assert_eq!(storage.get(&key(3)).await.unwrap(), Some(entry(3, 1000)));
}

#[tokio::test]
async fn a_bearer_token_in_the_headers_is_let_in_by_a_server_that_requires_one() {
    let secret = "hoard-test-secret";
    let Some(server) = BuildGrid::with(Options {
        jwt_secret: Some(secret.into()),
        ..Options::default()
    }) else {
        return require::unavailable("a_bearer_token_in_the_headers", NO_BGD);
    };
    let bearer = format!("Bearer {}", server.token(secret, 3600));
    let authorized = with_headers(
        reapi_tier(&server),
        &[("x-hoard-test", "1"), ("authorization", &bearer)],
    );
    a_writer_and_a_reader_share(authorized.clone(), authorized, &server).await;
    // BuildGrid's own client, with a token, sees the result.
    let action = server.action_digest(&key(1).to_hex());
    assert!(server.action_result("", &action).is_some());

    refused(reapi_tier(&server), "no token").await;
    let forged = format!("Bearer {}", server.token("another secret", 3600));
    refused(
        with_headers(reapi_tier(&server), &[("authorization", &forged)]),
        "a token signed with another secret",
    )
    .await;
    let expired = format!("Bearer {}", server.token(secret, -600));
    refused(
        with_headers(reapi_tier(&server), &[("authorization", &expired)]),
        "an expired token",
    )
    .await;
    // Nothing the refused machines put reached the server.
    let action = server.action_digest(&key(3).to_hex());
    assert!(server.action_result("", &action).is_none());
}

#[tokio::test]
async fn tls_with_the_configured_ca_shares_entries_and_an_untrusted_server_is_a_counted_failure() {
    let certs = tempfile::tempdir().unwrap();
    let Some(pki) = pki(certs.path()) else {
        return require::unavailable("tls_with_the_configured_ca", "no openssl");
    };
    let Some(server) = BuildGrid::with(Options {
        tls: Some(pki.clone()),
        ..Options::default()
    }) else {
        return require::unavailable("tls_with_the_configured_ca", NO_BGD);
    };
    assert!(server.endpoint().starts_with("grpcs://"));
    let trusting = with_tls(reapi_tier(&server), Some(&pki.ca), None);
    a_writer_and_a_reader_share(trusting.clone(), trusting, &server).await;
    // The system's roots do not know this CA; plain gRPC to a TLS port is no better.
    refused(reapi_tier(&server), "no CA configured").await;
    refused(
        reapi_tier_at(format!("grpc://127.0.0.1:{}", server.port), None),
        "plain gRPC to a TLS server",
    )
    .await;
}

#[tokio::test]
async fn a_server_requiring_client_certificates_lets_in_the_configured_one_and_refuses_none() {
    let certs = tempfile::tempdir().unwrap();
    let Some(pki) = pki(certs.path()) else {
        return require::unavailable("a_server_that_requires_client_certificates", "no openssl");
    };
    let Some(server) = BuildGrid::with(Options {
        tls: Some(pki.clone()),
        client_certs: true,
        ..Options::default()
    }) else {
        return require::unavailable("a_server_that_requires_client_certificates", NO_BGD);
    };
    let with_cert = with_tls(
        reapi_tier(&server),
        Some(&pki.ca),
        Some((&pki.client_cert, &pki.client_key)),
    );
    a_writer_and_a_reader_share(with_cert.clone(), with_cert, &server).await;
    refused(
        with_tls(reapi_tier(&server), Some(&pki.ca), None),
        "no client certificate",
    )
    .await;
}
