//! What the end-to-end tests share: a sandbox with its own cache directory and server socket,
//! the real binaries, and a real C tree from a crates.io source package; in submodules, the
//! tools a test may need ([`tools`]), the wire format spoken by hand ([`wire`]), a TCP gateway
//! ([`gateway`]), mount and network namespaces ([`namespaces`]) and remote-tier daemons
//! ([`tiers`]).

pub mod cargo;
pub mod gateway;
pub mod namespaces;
/// Real memcached and redis servers on free loopback ports, shared with the storage crate's
/// own tier tests.
#[path = "../../../crates/storage/tests/tiers_support/mod.rs"]
pub mod tiers;
pub mod tools;
pub mod wire;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

pub use tiers::free_port;

/// The client binary under test.
pub const HOARD: &str = env!("CARGO_BIN_EXE_hoard");

/// The server binary under test.
pub const HOARD_SERVER: &str = env!("CARGO_BIN_EXE_hoard-server");

/// Two kinds of tests that never ran side by side while they were separate test binaries
/// (cargo runs those one after another): tests that load the whole machine (dozens of
/// wrappers at once) and tests that hold a build to a wall-clock bound (the fault suites). In
/// one binary they still do not; tests of one kind run beside each other as before, and
/// every other test runs beside anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Load,
    Timed,
}

/// Which kind of test is running, and how many of it.
static RUNNING: Mutex<(Option<Kind>, usize)> = Mutex::new((None, 0));
static TURN: Condvar = Condvar::new();

/// Held while a test of one [`Kind`] runs; lets the other kind in when the last one leaves.
pub struct Turn;

fn take_turn(kind: Kind) -> Turn {
    // A test that failed while holding the lock has left all the same.
    let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    while running.0.is_some_and(|k| k != kind) {
        running = TURN.wait(running).unwrap_or_else(PoisonError::into_inner);
    }
    *running = (Some(kind), running.1 + 1);
    Turn
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        running.1 -= 1;
        if running.1 == 0 {
            running.0 = None;
            TURN.notify_all();
        }
    }
}

/// Taken by a test that loads the whole machine, for as long as it runs.
pub fn loading_the_machine() -> Turn {
    take_turn(Kind::Load)
}

/// Taken by a test that asserts a bound on wall-clock time, for as long as it runs.
pub fn timed() -> Turn {
    take_turn(Kind::Timed)
}

/// A private hoard installation: cache directory and socket in a tempdir; the server it starts
/// is stopped (and, failing that, killed) when the sandbox is dropped.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// Extra environment for every `hoard` this sandbox runs.
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("hoard-e2e")
                .tempdir()
                .unwrap(),
            env: Vec::new(),
        }
    }

    /// Sets (or replaces) one variable for every later `hoard` run.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("hoard.sock")
    }

    /// `hoard` with this sandbox's environment.
    pub fn hoard(&self) -> Command {
        let mut cmd = Command::new(HOARD);
        cmd.env("HOARD_DIR", self.cache_dir())
            .env("HOARD_SERVER_UDS", self.socket())
            .env("HOARD_LOG", "debug")
            .env_remove("HOARD_CACHE_SIZE")
            .env_remove("HOARD_DIRECT_MODE")
            .env_remove("HOARD_PROTOCOL")
            .env_remove("HOARD_SERVER_MAX_PROTOCOL")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `hoard --start-server`, which must succeed.
    pub fn start_server(&self) {
        let out = self.hoard().arg("--start-server").output().unwrap();
        assert!(
            out.status.success(),
            "start-server failed: {}",
            text(&out.stderr)
        );
    }

    /// `hoard --stop-server`, which must succeed.
    pub fn stop_server(&self) {
        let out = self.hoard().arg("--stop-server").output().unwrap();
        assert!(
            out.status.success(),
            "stop-server failed: {}",
            text(&out.stderr)
        );
    }

    /// `hoard --show-stats --json`, parsed.
    pub fn stats(&self) -> serde_json::Value {
        let out = self
            .hoard()
            .args(["--show-stats", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "show-stats failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The server's stats once `done` holds of them; panics naming `what` after 30 s.
    pub fn wait_for_stats(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{what}: never reached: {stats}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn zero_stats(&self) {
        assert!(self.hoard().arg("--zero-stats").status().unwrap().success());
    }

    /// The running server's pid, from its pid file.
    pub fn server_pid(&self) -> Option<i32> {
        let mut pid_file = self.socket().into_os_string();
        pid_file.push(".pid");
        std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
    }

    /// Pids of live `hoard-server` processes serving this sandbox.
    pub fn server_pids(&self) -> Vec<i32> {
        server_pids_of(&self.socket())
    }

    pub fn log(&self) -> String {
        let mut all = String::new();
        for f in ["hoard.log", "server.log"] {
            all += &std::fs::read_to_string(self.cache_dir().join(f)).unwrap_or_default();
        }
        all
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.hoard().arg("--stop-server").output();
        for pid in self.server_pids() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Pids of live `hoard-server` processes started to serve `socket` (by the
/// `HOARD_SERVER_UDS` in their environment).
pub fn server_pids_of(socket: &Path) -> Vec<i32> {
    let needle = format!("HOARD_SERVER_UDS={}", socket.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
        if !exe.to_string_lossy().ends_with("hoard-server") {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// A new temporary directory named `prefix…`, with permission bits `mode`.
pub fn tempdir_with_mode(prefix: &str, mode: u32) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// Bytes as text, for messages and comparisons (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that every command of a build succeeded, naming `what` and showing the sandbox's
/// logs when one did not.
pub fn assert_all_succeeded(outputs: &[Output], what: &str, sandbox: &Sandbox) {
    for out in outputs {
        assert!(
            out.status.success(),
            "{what}: {}\nlog:\n{}",
            text(&out.stderr),
            sandbox.log()
        );
    }
}

/// A counter of `hoard --show-stats --json`, which must be present.
pub fn counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// A remote tier's entry in the stats.
pub fn tier<'a>(stats: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    stats["tiers"]
        .as_array()
        .and_then(|tiers| tiers.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no tier {name} in {stats}"))
}

/// The lines of a journal (`HOARD_JOURNAL`), parsed; the file must exist.
pub fn journal_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Hits a client served from its own cache directory (`transfers.local`).
pub fn local_hits(stats: &serde_json::Value) -> u64 {
    stats["transfers"]["local"].as_u64().unwrap_or(0)
}

/// The `transfers` counters of `hoard --show-stats --json`: `(shared_fs, inline)`. A counter
/// the JSON leaves out (nothing counted yet) is 0.
pub fn transfers(stats: &serde_json::Value) -> (u64, u64) {
    let count = |name: &str| stats["transfers"][name].as_u64().unwrap_or(0);
    (count("shared_fs"), count("inline"))
}

/// Every regular file under `dir`, recursively, sorted (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => found.extend(files_under(&path)),
            Ok(t) if t.is_file() => found.push(path),
            _ => {}
        }
    }
    found.sort();
    found
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`, `TERM`) to `pid`.
pub fn signal(pid: i32, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {name} {pid}");
}

/// `gcc -c <name>.c -o <name>.o` in `dir`, run by `cmd` (a `hoard` with its environment);
/// must succeed.
pub fn compile_c(mut cmd: Command, dir: &Path, name: &str) {
    let out = cmd.current_dir(dir).args(gcc_c(name)).output().unwrap();
    assert!(out.status.success(), "{name}: {}", text(&out.stderr));
}

/// `gcc -c <name>.c -o <name>.o`, as arguments of `hoard`.
pub fn gcc_c(name: &str) -> [String; 5] {
    [
        "gcc".into(),
        "-c".into(),
        format!("{name}.c"),
        "-o".into(),
        format!("{name}.o"),
    ]
}

/// Runs `program args...`, which must succeed.
pub fn run_ok(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: impl std::fmt::Display) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Waits for `child` to exit, killing it (and failing) if it is still running after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Lua 5.4 sources shipped in the `lua-src` crate (a dev-dependency), located through
/// `cargo metadata`. A real multi-file C tree, never copied into this repository.
pub fn lua_sources() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Only this platform's packages: the others were never downloaded, and tests must not
        // reach the network.
        let host = Command::new("rustc").arg("-vV").output().unwrap();
        let host = text(&host.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .unwrap();
        let out = Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--offline",
                "--filter-platform",
                &host,
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo metadata: {}",
            text(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let manifest = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "lua-src")
            .expect("lua-src is a dev-dependency")["manifest_path"]
            .as_str()
            .unwrap()
            .to_owned();
        let root = Path::new(&manifest).parent().unwrap();
        std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("lua-5.4"))
            })
            .max()
            .expect("lua-5.4 sources in lua-src")
    })
    .clone()
}

/// The `.c` files of a tree, sorted.
pub fn c_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    files.sort();
    files
}

/// One compile of `source` to `out_dir/<stem>.o` (with `-MD`, so a `.d` beside it).
pub fn compile_args(source: &Path, out_dir: &Path, flags: &[&str]) -> Vec<String> {
    let stem = source.file_stem().unwrap().to_string_lossy();
    let mut args: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
    args.extend([
        "-MD".into(),
        "-I".into(),
        source.parent().unwrap().display().to_string(),
        "-c".into(),
        source.display().to_string(),
        "-o".into(),
        out_dir.join(format!("{stem}.o")).display().to_string(),
    ]);
    args
}

/// Compiles every file of `sources`, `jobs` at a time, each through `launcher` (`None`: plain
/// compiler). Returns each command's output, in order.
pub fn build(
    launcher: Option<&Sandbox>,
    compiler: &str,
    sources: &[PathBuf],
    out_dir: &Path,
    flags: &[&str],
    jobs: usize,
) -> Vec<Output> {
    std::fs::create_dir_all(out_dir).unwrap();
    run_parallel(sources.len(), jobs, |i| {
        let args = compile_args(&sources[i], out_dir, flags);
        match launcher {
            Some(sandbox) => sandbox.hoard().arg(compiler).args(&args).output(),
            None => Command::new(compiler).args(&args).output(),
        }
        .unwrap()
    })
}

/// Runs `job(i)` for every `i` below `n`, `jobs` at a time; their outputs in order.
pub fn run_parallel(n: usize, jobs: usize, job: impl Fn(usize) -> Output + Sync) -> Vec<Output> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; n]);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let output = job(i);
                    results.lock().unwrap()[i] = Some(output);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// What the plain compiler makes of a tree: each compile's output, and the digests of the
/// objects and `.d` files (one of each per source) by name; and the build, to run again
/// through hoard and compare.
pub struct Plain<'a> {
    pub outputs: Vec<Output>,
    pub files: std::collections::BTreeMap<String, blake3::Hash>,
    compiler: &'a str,
    sources: &'a [PathBuf],
    out: &'a Path,
    flags: &'a [&'a str],
}

/// Builds `sources` into `out` with the plain `compiler`, two at a time, and cleans `out`
/// again. Every compile must succeed (shown with `sandbox`'s logs when one does not) and
/// leave an object and a `.d`.
pub fn plain_build<'a>(
    compiler: &'a str,
    sources: &'a [PathBuf],
    out: &'a Path,
    flags: &'a [&'a str],
    sandbox: &Sandbox,
) -> Plain<'a> {
    let outputs = build(None, compiler, sources, out, flags, 2);
    assert_all_succeeded(&outputs, "plain build", sandbox);
    let files = snapshot(out);
    assert_eq!(
        files.len(),
        sources.len() * 2,
        "an object and a .d per source"
    );
    clean(out);
    Plain {
        outputs,
        files,
        compiler,
        sources,
        out,
        flags,
    }
}

impl Plain<'_> {
    /// Empties `out` and builds the tree there again, through `sandbox`: every compile must
    /// succeed and leave exactly the plain build's files. Returns each compile's output.
    pub fn again_through(&self, sandbox: &Sandbox, what: &str) -> Vec<Output> {
        clean(self.out);
        let outputs = build(
            Some(sandbox),
            self.compiler,
            self.sources,
            self.out,
            self.flags,
            2,
        );
        assert_all_succeeded(&outputs, what, sandbox);
        assert_eq!(
            snapshot(self.out),
            self.files,
            "{what}: outputs differ from plain {}",
            self.compiler
        );
        outputs
    }

    /// Asserts that each of `outputs` printed what its plain compile printed.
    pub fn assert_same_diagnostics(&self, outputs: &[Output], what: &str) {
        for (o, p) in outputs.iter().zip(&self.outputs) {
            assert_eq!(
                text(&o.stderr),
                text(&p.stderr),
                "diagnostics differ {what}"
            );
        }
    }
}

/// Digests of every `.o` and `.d` under `dir`, by file name.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, blake3::Hash> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "o" || e == "d"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                blake3::hash(&std::fs::read(&p).unwrap()),
            )
        })
        .collect()
}

/// Removes the `.o` and `.d` files under `dir` (a `make clean`).
pub fn clean(dir: &Path) {
    for p in std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()) {
        if p.extension().is_some_and(|e| e == "o" || e == "d") {
            std::fs::remove_file(p).unwrap();
        }
    }
}
