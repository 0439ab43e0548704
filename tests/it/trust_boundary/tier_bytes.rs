//! What a storage tier returns is bounded and verified before it is used: whoever can write
//! to a shared directory (`HOARD_SHARED_DIR`) plants a decompression bomb, a huge sparse
//! file, a FIFO or a symlink at an entry's path, and the victim's build still comes out as
//! plain gcc makes it, in bounded memory and time, with nothing copied into its local cache.
//! A damaged local copy never deletes the shared one, and a planted future mtime never pins
//! a local entry against eviction.
//!
//! Each test seeds the shared directory with a real compile on "machine A" (its own
//! `HOARD_DIR` and server), plants the attack where those entries are, and compiles again on
//! a fresh "machine B" that shares only the directory.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use hoard_storage::entry::forge;

use crate::support::{self, Sandbox, alive, text};

/// The bound on the server's peak memory with a hostile tier.
const MAX_PEAK_RSS_KIB: u64 = 200 * 1024;

/// What a 1 GiB bomb declares.
const BOMB_DECLARED: u64 = 1 << 30;

/// A source tree of `n` small C units written here.
fn sources(dir: &Path, n: usize) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let path = dir.join(format!("unit{i}.c"));
            let body = format!(
                "static const int table{i}[64] = {{ {list} }};\n\
                 int unit{i}(int x) {{ return table{i}[x & 63] * {i} + x; }}\n",
                list = (0..64)
                    .map(|k| (k * 7 + i).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            fs::write(&path, body).unwrap();
            path
        })
        .collect()
}

/// A "machine" whose server shares `shared` as its shared-directory tier.
fn machine(shared: &Path) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_SHARED_DIR", &shared.display().to_string());
    sandbox
}

fn object_of(source: &Path, out: &Path) -> PathBuf {
    out.join(format!(
        "{}.o",
        source.file_stem().unwrap().to_string_lossy()
    ))
}

/// Compiles `source` into `out` with gcc, through `sandbox` when given; must succeed.
/// Returns how long the whole command took.
fn compile(sandbox: Option<&Sandbox>, source: &Path, out: &Path) -> Duration {
    fs::create_dir_all(out).unwrap();
    let args = [
        "-O1".to_owned(),
        "-c".to_owned(),
        source.display().to_string(),
        "-o".to_owned(),
        object_of(source, out).display().to_string(),
    ];
    let start = Instant::now();
    let output = match sandbox {
        Some(sandbox) => sandbox.hoard().arg("gcc").args(&args).output(),
        None => Command::new("gcc").args(&args).output(),
    }
    .unwrap();
    let took = start.elapsed();
    assert!(
        output.status.success(),
        "compile of {} failed: {}",
        source.display(),
        text(&output.stderr)
    );
    took
}

/// What plain gcc makes of `source`.
fn reference(source: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("reference");
    compile(None, source, &out);
    fs::read(object_of(source, &out)).unwrap()
}

/// Every entry file (`<2 hex>/<64 hex>`) under a tier's directory.
fn entry_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for sub in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = sub.file_name().to_string_lossy().into_owned();
        if name.len() != 2 || !sub.path().is_dir() {
            continue;
        }
        for file in fs::read_dir(sub.path()).unwrap().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                found.push(file.path());
            }
        }
    }
    found.sort();
    found
}

/// The entry files under `dir` that hold a compile's object (not a direct-mode manifest).
fn object_entries(dir: &Path) -> Vec<PathBuf> {
    entry_files(dir)
        .into_iter()
        .filter(|path| {
            let bytes = fs::read(path).unwrap();
            forge::declared_files(&bytes)
                .is_ok_and(|files| files.iter().any(|(r, _)| r == "object"))
        })
        .collect()
}

/// Machine A compiles `source` with the shared directory, and its server is stopped so its
/// queued writes are flushed. Returns A (stopped) and the shared directory's entries.
fn seed(shared: &Path, source: &Path, out: &Path) -> (Sandbox, Vec<PathBuf>) {
    let a = machine(shared);
    compile(Some(&a), source, out);
    a.stop_server();
    let entries = entry_files(shared);
    assert!(
        entries.len() >= 2,
        "A's entries (manifest and object) reached the shared directory: {entries:?}"
    );
    (a, entries)
}

/// Replaces the file at `path` with `bytes`, as a writer to the shared directory would.
fn plant(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("planting");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// The peak resident memory of process `pid` (VmHWM), in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// Machine B, with the shared directory and its server started; returns it with the pid.
fn machine_b(shared: &Path) -> (Sandbox, i32) {
    let b = machine(shared);
    b.start_server();
    let pid = b.server_pid().expect("B's server pid");
    (b, pid)
}

/// One source compiled by machine A into a shared directory, ready for what a hostile writer
/// then does to the entries there.
struct Seeded {
    work: tempfile::TempDir,
    shared: PathBuf,
    source: PathBuf,
    expected: Vec<u8>,
    out: PathBuf,
    /// The shared directory's entries (manifest and object).
    entries: Vec<PathBuf>,
    _a: Sandbox,
}

impl Seeded {
    fn new() -> Seeded {
        let work = tempfile::tempdir().unwrap();
        let shared = work.path().join("shared");
        let source = sources(&work.path().join("src"), 1).remove(0);
        let expected = reference(&source, work.path());
        let out = work.path().join("out");
        let (a, entries) = seed(&shared, &source, &out);
        Seeded {
            work,
            shared,
            source,
            expected,
            out,
            entries,
            _a: a,
        }
    }

    /// Machine B compiles the source with the shared directory behind it, and gets plain
    /// gcc's object whatever the directory held. Returns B, its server's pid and how long the
    /// compile took.
    fn build_on_b(&self) -> (Sandbox, i32, Duration) {
        let (b, pid) = machine_b(&self.shared);
        fs::remove_file(object_of(&self.source, &self.out)).unwrap();
        let took = compile(Some(&b), &self.source, &self.out);
        assert_eq!(
            fs::read(object_of(&self.source, &self.out)).unwrap(),
            self.expected,
            "B's object differs from plain gcc's"
        );
        (b, pid, took)
    }
}

fn tier<'a>(stats: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    stats["tiers"]
        .as_array()
        .and_then(|tiers| tiers.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no tier {name} in {stats}"))
}

fn count(value: &serde_json::Value, name: &str) -> u64 {
    value[name].as_u64().unwrap_or(0)
}

/// Bytes held under `dir`, counting every regular file.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            total += bytes_under(&entry.path());
        } else if meta.is_file() {
            total += meta.blocks() * 512;
        }
    }
    total
}

#[test]
fn a_decompression_bomb_in_the_shared_dir_is_refused_in_bounded_memory() {
    let seeded = Seeded::new();
    // The object's entry, its header edited to declare 1 GiB, which it then holds (zeros
    // that compress to a few dozen kilobytes) under the real object's digest.
    let objects = object_entries(&seeded.shared);
    assert!(
        !objects.is_empty(),
        "an object entry in the shared directory"
    );
    for path in &objects {
        let bomb = forge::inflated(&fs::read(path).unwrap(), "object", BOMB_DECLARED).unwrap();
        eprintln!("bomb: {} bytes declaring {BOMB_DECLARED}", bomb.len());
        assert!(bomb.len() < 256 << 10, "{} bytes", bomb.len());
        plant(path, &bomb);
    }

    let (b, pid, _) = seeded.build_on_b();
    let peak = peak_rss_kib(pid);
    eprintln!("B's server peak RSS with a 1 GiB bomb in the shared directory: {peak} KiB");
    let stats = b.stats();
    assert!(
        count(tier(&stats, "shared_dir"), "errors") >= 1,
        "the bomb is refused and counted: {stats}"
    );
    assert!(
        peak < MAX_PEAK_RSS_KIB,
        "the server's peak RSS reached {peak} KiB with a bomb in the shared directory"
    );
}

#[test]
fn a_huge_sparse_file_at_an_entry_path_is_neither_read_whole_nor_backfilled() {
    let seeded = Seeded::new();
    for path in &seeded.entries {
        fs::remove_file(path).unwrap();
        let file = fs::File::create(path).unwrap();
        file.set_len(256 << 20).unwrap();
    }

    let (b, pid, _) = seeded.build_on_b();
    let peak = peak_rss_kib(pid);
    eprintln!("B's server peak RSS with 256 MiB sparse files at entry paths: {peak} KiB");
    let stats = b.stats();
    let local = bytes_under(&b.cache_dir().join("cache"));
    eprintln!("B's local cache: {local} bytes");
    assert!(
        count(tier(&stats, "shared_dir"), "errors") >= 1,
        "the sparse files are refused and counted: {stats}"
    );
    assert!(
        peak < MAX_PEAK_RSS_KIB,
        "the server's peak RSS reached {peak} KiB reading a sparse file"
    );
    assert!(
        local < 16 << 20,
        "B's local cache grew by the sparse file: {local} bytes"
    );
    // Each local write is one of B's own entries: nothing was backfilled and then dropped.
    let local_entries = entry_files(&b.cache_dir().join("cache")).len() as u64;
    assert!(
        count(tier(&stats, "local"), "writes") <= local_entries,
        "a refused file was written to the local cache: {stats}"
    );
}

#[test]
fn a_fifo_at_an_entry_path_costs_the_build_under_a_second_and_never_blocks_shutdown() {
    let _machine = support::timed();
    let seeded = Seeded::new();
    for path in &seeded.entries {
        fs::remove_file(path).unwrap();
        let made = Command::new("mkfifo").arg(path).status().unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
    }

    let (b, pid, took) = seeded.build_on_b();
    eprintln!("hoard gcc with FIFOs at the entry paths: {took:?}");
    let stats = b.stats();
    assert!(
        count(tier(&stats, "shared_dir"), "errors") >= 1,
        "the FIFOs are refused and counted: {stats}"
    );
    assert!(
        took < Duration::from_secs(1),
        "FIFOs in the shared directory held the build for {took:?}"
    );

    b.stop_server();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(pid),
        "the server (pid {pid}) is still running 5 s after --stop-server"
    );
}

#[test]
fn a_symlink_at_an_entry_path_is_refused_not_followed() {
    let seeded = Seeded::new();
    let elsewhere = seeded.work.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    // Each valid entry moved out of the shared directory, a link to it left in its place.
    for path in &seeded.entries {
        let target = elsewhere.join(path.file_name().unwrap());
        fs::rename(path, &target).unwrap();
        std::os::unix::fs::symlink(&target, path).unwrap();
    }

    let (b, _, _) = seeded.build_on_b();
    let stats = b.stats();
    let shared_tier = tier(&stats, "shared_dir");
    assert_eq!(
        count(shared_tier, "hits"),
        0,
        "an entry was read through a symlink: {stats}"
    );
    assert_eq!(count(&stats, "cache_hits"), 0, "{stats}");
    assert!(
        count(shared_tier, "errors") >= 1,
        "the links are refused and counted: {stats}"
    );
}

#[test]
fn a_corrupt_local_entry_does_not_delete_the_shared_copy() {
    let work = tempfile::tempdir().unwrap();
    let shared = work.path().join("shared");
    let source = &sources(&work.path().join("src"), 1)[0];
    let expected = reference(source, work.path());
    let out = work.path().join("out");
    let (a, _) = seed(&shared, source, &out);
    let shared_objects = object_entries(&shared);
    assert_eq!(shared_objects.len(), 1, "{shared_objects:?}");
    let shared_object = &shared_objects[0];
    let before = (
        fs::metadata(shared_object).unwrap().ino(),
        fs::read(shared_object).unwrap(),
    );

    // A's own copy of the object's entry, damaged on A's disk.
    let local_objects = object_entries(&a.cache_dir().join("cache"));
    assert_eq!(local_objects.len(), 1, "{local_objects:?}");
    let mut damaged = fs::read(&local_objects[0]).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    fs::write(&local_objects[0], &damaged).unwrap();

    fs::remove_file(object_of(source, &out)).unwrap();
    compile(Some(&a), source, &out);
    assert_eq!(fs::read(object_of(source, &out)).unwrap(), expected);
    let stats = a.stats();
    // Stopping the server drains its queued remote writes (and, before, removals).
    a.stop_server();
    assert!(
        count(&stats, "corrupt_entries") >= 1,
        "the damaged entry was found: {stats}"
    );
    assert!(
        shared_object.exists(),
        "the shared copy was deleted because A's copy was damaged"
    );
    let after = (
        fs::metadata(shared_object).unwrap().ino(),
        fs::read(shared_object).unwrap(),
    );
    assert!(
        after == before,
        "the shared copy was removed and written again (inode {} -> {})",
        before.0,
        after.0
    );
    assert!(
        count(tier(&stats, "shared_dir"), "hits") >= 1,
        "the good shared copy served the compile: {stats}"
    );
}

#[test]
fn a_future_mtime_does_not_pin_a_local_entry_against_eviction() {
    let work = tempfile::tempdir().unwrap();
    let units = sources(&work.path().join("src"), 12);
    let out = work.path().join("out");
    let mut sandbox = Sandbox::new();
    let store = sandbox.cache_dir().join("cache");

    // A first compile, to learn how large one compile's entries are.
    compile(Some(&sandbox), &units[0], &out);
    let pinned = entry_files(&store);
    assert!(!pinned.is_empty());
    let one_compile: u64 = pinned.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    // Room for about four compiles: each later one pushes the store over its limit.
    sandbox.stop_server();
    sandbox.set_env("HOARD_CACHE_SIZE", &(one_compile * 4).to_string());
    let far_future = SystemTime::now() + Duration::from_secs(50 * 365 * 24 * 3600);
    for path in &pinned {
        fs::File::open(path)
            .unwrap()
            .set_modified(far_future)
            .unwrap();
    }

    for unit in &units[1..] {
        compile(Some(&sandbox), unit, &out);
    }
    // Eviction runs in the background after a put; give the last one time to finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pinned.iter().any(|p| p.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<_> = pinned.iter().filter(|p| p.exists()).collect();
    assert!(
        left.is_empty(),
        "entries with a far-future mtime were never evicted: {left:?} (store holds {} bytes, \
         limit {})",
        bytes_under(&store),
        one_compile * 4
    );
}
