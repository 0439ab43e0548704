//! Faults: a server killed, hung, replaced or of a later protocol generation ([`server`]); a
//! cache directory read-only, full or damaged ([`storage`]); a remote tier down or slow
//! ([`tiers`]). Every build under a fault must come out as plain gcc makes it, in bounded
//! time, with the fault counted.
//!
//! What the three share is here: a small real C tree and its plain-gcc reference, timed
//! builds, signals, mounts that undo themselves, a loopback TCP proxy that delays every byte,
//! and a stand-in for a server of a protocol generation that does not exist yet.

mod server;
mod storage;
mod tiers;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    Sandbox, alive, build, c_files, files_under, lua_sources, run_ok, snapshot, text, wire,
};

/// Flags of every fault build: unoptimised keeps a build of the tree short, `-g` keeps paths
/// in the objects so a wrong one would show.
pub const FLAGS: &[&str] = &["-O0", "-g", "-Wall"];

/// Parallel compiles per build.
pub const JOBS: usize = 3;

/// How many of Lua's sources a fault build compiles: a real tree, small enough that a dozen
/// faults fit in CI's budget.
pub const TREE_FILES: usize = 20;

/// The C tree the faults are built on: the first [`TREE_FILES`] sources of Lua 5.4.
pub fn tree() -> Vec<PathBuf> {
    let mut sources = c_files(&lua_sources());
    sources.truncate(TREE_FILES);
    sources
}

/// A sandbox, the tree, its output directory and plain gcc's reference.
pub fn setup() -> (Sandbox, Vec<PathBuf>, PathBuf, Reference) {
    let sandbox = Sandbox::new();
    let sources = tree();
    let out = sandbox.dir.path().join("out");
    let reference = Reference::build(&sources, &out);
    (sandbox, sources, out, reference)
}

/// A build's results and how long it took.
pub struct Timed {
    pub outputs: Vec<Output>,
    pub took: Duration,
}

/// Builds `sources` into `out` through `launcher` (`None`: plain gcc), timed.
pub fn timed_build(launcher: Option<&Sandbox>, sources: &[PathBuf], out: &Path) -> Timed {
    let started = Instant::now();
    let outputs = build(launcher, "gcc", sources, out, FLAGS, JOBS);
    Timed {
        outputs,
        took: started.elapsed(),
    }
}

/// What plain gcc gives for the tree: every object and `.d` by name, and each compile's
/// diagnostics.
pub struct Reference {
    pub files: BTreeMap<String, blake3::Hash>,
    pub stderr: Vec<String>,
    pub took: Duration,
}

impl Reference {
    /// Builds `sources` into `out` with plain gcc, and leaves `out` empty again.
    pub fn build(sources: &[PathBuf], out: &Path) -> Reference {
        let plain = timed_build(None, sources, out);
        for o in &plain.outputs {
            assert!(o.status.success(), "plain gcc failed: {}", text(&o.stderr));
        }
        let files = snapshot(out);
        assert_eq!(
            files.len(),
            sources.len() * 2,
            "an object and a .d per source"
        );
        crate::support::clean(out);
        Reference {
            files,
            stderr: plain.outputs.iter().map(|o| text(&o.stderr)).collect(),
            took: plain.took,
        }
    }

    /// Asserts that a build through hoard succeeded, compile by compile with gcc's own
    /// diagnostics, and left exactly plain gcc's bytes in `out`.
    pub fn assert_same(&self, build: &Timed, out: &Path, what: &str, sandbox: &Sandbox) {
        for (o, plain) in build.outputs.iter().zip(&self.stderr) {
            assert_eq!(
                &text(&o.stderr),
                plain,
                "{what}: diagnostics differ from gcc's"
            );
        }
        self.assert_built(build, out, what, sandbox);
    }

    /// Zeroes the statistics, empties `out` and builds the tree there again through
    /// `sandbox`, which must give plain gcc's bytes and diagnostics ([`Reference::assert_same`]).
    pub fn rebuild_same(&self, sandbox: &Sandbox, sources: &[PathBuf], out: &Path, what: &str) {
        sandbox.zero_stats();
        crate::support::clean(out);
        let again = timed_build(Some(sandbox), sources, out);
        self.assert_same(&again, out, what, sandbox);
    }

    /// As [`Reference::assert_same`], without comparing diagnostics.
    pub fn assert_built(&self, build: &Timed, out: &Path, what: &str, sandbox: &Sandbox) {
        for o in &build.outputs {
            assert!(
                o.status.success(),
                "{what}: a compile failed: {}\nlog:\n{}",
                text(&o.stderr),
                sandbox.log()
            );
        }
        assert_eq!(
            snapshot(out),
            self.files,
            "{what}: outputs differ from plain gcc"
        );
    }

    /// The acceptance bound for a build with a fault: twice the plain build, plus 10 s.
    pub fn bound(&self) -> Duration {
        self.took * 2 + Duration::from_secs(10)
    }
}

/// A counter of `hoard --show-stats --json` (0 when the JSON leaves it out).
pub fn count(stats: &serde_json::Value, name: &str) -> u64 {
    stats[name].as_u64().unwrap_or(0)
}

/// How many local fallbacks were counted under `cause`.
pub fn fallbacks(stats: &serde_json::Value, cause: &str) -> u64 {
    stats["local_fallback_causes"][cause].as_u64().unwrap_or(0)
}

/// Prints one line of the suite's measurements (shown with `--nocapture`).
pub fn report(fault: &str, reference: &Reference, took: Duration, stats: &serde_json::Value) {
    eprintln!(
        "FAULT {fault}: build {:.2}s (plain {:.2}s, bound {:.2}s); hits {} misses {} \
         local_fallbacks {} {} cache_errors {}",
        took.as_secs_f64(),
        reference.took.as_secs_f64(),
        reference.bound().as_secs_f64(),
        count(stats, "cache_hits"),
        count(stats, "cache_misses"),
        count(stats, "local_fallbacks"),
        stats["local_fallback_causes"],
        count(stats, "cache_errors"),
    );
}

/// Waits until `pid` has exited (at most 20 s).
pub fn wait_dead(pid: i32) {
    let started = Instant::now();
    while alive(pid) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "pid {pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connections waiting in the listen backlog of the Unix socket at `path` (`ss`'s Recv-Q of
/// a listening socket).
pub fn backlog(path: &Path) -> u64 {
    let out = Command::new("ss").args(["-xlH"]).output().unwrap();
    let path = path.to_str().unwrap();
    text(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().any(|f| f == path))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// Waits until at least one connection waits in the backlog of the socket at `path`.
pub fn wait_for_backlog(path: &Path, limit: Duration) {
    let started = Instant::now();
    while backlog(path) == 0 {
        assert!(
            started.elapsed() < limit,
            "no client queued on {} within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A mount made by a test (a tmpfs, or a read-only bind), lazily unmounted when dropped, so a
/// failed assertion does not leave it behind.
pub struct Mount {
    pub path: PathBuf,
}

impl Mount {
    /// A tmpfs of `size` (`256k`) at `path`, created if needed.
    pub fn tmpfs(path: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(path).unwrap();
        let p = path.to_str().unwrap();
        run_ok(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "hoard-faults",
                p,
            ],
        );
        Mount {
            path: path.to_owned(),
        }
    }

    /// `path` bound onto itself read-only. Root ignores permission bits, so only a read-only
    /// mount makes a directory unwritable to these tests.
    pub fn read_only(path: &Path) -> Mount {
        let p = path.to_str().unwrap();
        run_ok("mount", &["--bind", p, p]);
        let mount = Mount {
            path: path.to_owned(),
        };
        run_ok("mount", &["-o", "remount,bind,ro", p]);
        mount
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

/// The stored result entries (not manifests) of a sandbox's cache.
pub fn result_entries(sandbox: &Sandbox) -> Vec<PathBuf> {
    files_under(&sandbox.cache_dir().join("cache"))
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.starts_with(b"HOARDENT") && hoard_storage::entry::unpack_blob(&bytes).is_err()
        })
        .collect()
}

/// XORs the byte in the middle of `path` with 0x5a.
pub fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// A TCP proxy on loopback in front of `upstream` that holds every chunk of bytes, both ways,
/// for `delay` before passing it on: a remote tier that is up but slow. Stopped on drop.
pub struct DelayProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl DelayProxy {
    pub fn start(upstream: u16, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (stop2, streams2) = (stop.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut kept = streams2.lock().unwrap();
                for s in [&client, &server] {
                    if let Ok(clone) = s.try_clone() {
                        kept.push(clone);
                    }
                }
                drop(kept);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client, server, delay));
                std::thread::spawn(move || pump(s2, c2, delay));
            }
        });
        DelayProxy {
            port,
            stop,
            streams,
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                std::thread::sleep(delay);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// How a stand-in for a server of a later protocol generation answers `Hello`.
#[derive(Debug, Clone, Copy)]
pub enum FutureHello {
    /// `Unsupported`, as today's server code answers a client with no version in common
    /// (and a server of v3 and later only would).
    Unsupported,
    /// `Welcome` naming a version this client never offered.
    Welcome(u32),
}

/// A server of a protocol generation that does not exist yet (none can be run, so this is a
/// stand-in written with the real codec): it answers `Hello` as told and every other request
/// `Unsupported`, as a server that has dropped v1 and v2 would. Stops, and removes its socket,
/// on drop.
pub struct FutureServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl FutureServer {
    pub fn start(path: &Path, hello: FutureHello) -> FutureServer {
        let listener = UnixListener::bind(path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || answer_all(stream, hello));
                }
            }
        });
        FutureServer {
            path: path.to_owned(),
            stop,
        }
    }
}

fn answer_all(mut stream: std::os::unix::net::UnixStream, hello: FutureHello) {
    use hoard_protocol::{Request, Response, decode};
    while let Some(body) = wire::read_frame(&mut stream) {
        let response = match (decode::<Request>(&body), hello) {
            (Ok(Request::Hello { capabilities, .. }), FutureHello::Welcome(version)) => {
                Response::Welcome {
                    version,
                    capabilities,
                    shared_fs: Some(true),
                }
            }
            _ => Response::Unsupported {
                message: Some("this server speaks protocol v3 and later only".into()),
            },
        };
        if stream.write_all(&wire::framed(&response)).is_err() {
            return;
        }
    }
}

impl Drop for FutureServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sets the modification time of `path` to `ago` before now.
pub fn backdate(path: &Path, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - ago)
        .unwrap();
}
