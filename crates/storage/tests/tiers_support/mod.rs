//! Helpers for the remote tier tests: real servers on free loopback ports, killed on drop.
#![allow(dead_code)]

pub mod cloud;
pub mod reapi;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoard_storage::{CacheKey, DiskStore, Storage, TierConfig, TierKind, TieredStorage};

/// A loopback port nothing listens on (bound, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, within: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < within,
            "nothing listens on port {port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server process, killed (and reaped) on drop.
pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    /// The server leads its own process group (it may fork workers): killing it kills the
    /// whole group, so no worker outlives it.
    process_group: bool,
}

impl Daemon {
    pub fn spawn(program: &str, args: &[&str], port: u16) -> Daemon {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        wait_for_port(port, Duration::from_secs(20));
        Daemon {
            child: Some(child),
            port,
            process_group: false,
        }
    }

    /// memcached on `port`, with its default 1 MiB item limit.
    pub fn memcached_on(port: u16) -> Daemon {
        let port_s = port.to_string();
        let mut args = vec!["-l", "127.0.0.1", "-p", &port_s, "-m", "64", "-U", "0"];
        // memcached refuses to run as root without -u.
        if is_root() {
            args.extend(["-u", "root"]);
        }
        Daemon::spawn("memcached", &args, port)
    }

    pub fn memcached() -> Daemon {
        Daemon::memcached_on(free_port())
    }

    pub fn redis() -> Daemon {
        Daemon::redis_on(free_port())
    }

    pub fn redis_on(port: u16) -> Daemon {
        let port_s = port.to_string();
        Daemon::spawn(
            "redis-server",
            &[
                "--port",
                &port_s,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            port,
        )
    }

    /// Kills the server now (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.process_group {
                let group = format!("-{}", child.id());
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &group])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Sends one memcached text command and returns the reply up to its terminator.
pub fn memcached_command(port: u16, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(command.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        reply.extend_from_slice(&buf[..n]);
        if n == 0 || reply.ends_with(b"END\r\n") || reply.ends_with(b"ERROR\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// memcached's `curr_items`: how many items the server holds.
pub fn memcached_items(port: u16) -> u64 {
    let stats = memcached_command(port, "stats\r\n");
    stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT curr_items "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// redis's `DBSIZE`, through redis-cli.
pub fn redis_keys(port: u16) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "dbsize"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

pub fn memcached_tier(port: u16) -> TierConfig {
    TierConfig::new(TierKind::Memcached {
        endpoint: format!("tcp://127.0.0.1:{port}"),
    })
}

pub fn redis_tier(port: u16) -> TierConfig {
    TierConfig::new(TierKind::Redis {
        endpoint: format!("redis://127.0.0.1:{port}"),
    })
}

pub fn shared_dir_tier(path: &Path) -> TierConfig {
    TierConfig::new(TierKind::SharedDir {
        path: path.to_path_buf(),
    })
}

/// One "machine": its own local disk in `dir`, and `tiers`, without prefetch: these tests
/// count what the tiers hold, and prefetch's index objects are tested apart (`prefetch.rs`).
pub fn machine(dir: &Path, tiers: Vec<TierConfig>) -> TieredStorage {
    machine_prefetching(dir, tiers).with_prefetch(false)
}

/// One "machine" with prefetch on, as the server runs it.
pub fn machine_prefetching(dir: &Path, tiers: Vec<TierConfig>) -> TieredStorage {
    let local = DiskStore::open(dir, 1 << 30).unwrap();
    TieredStorage::new(local, tiers).unwrap()
}

pub fn key(n: u8) -> CacheKey {
    CacheKey::from_bytes(*blake3::hash(&[n]).as_bytes())
}

/// A real entry of about `len` bytes (a blob of incompressible bytes): the chain verifies
/// whatever a remote tier returns before it uses it.
pub fn entry(n: u8, len: usize) -> Vec<u8> {
    let mut payload = vec![0u8; len.saturating_sub(64)];
    blake3::Hasher::new()
        .update(&[n])
        .finalize_xof()
        .fill(&mut payload);
    hoard_storage::entry::pack_blob(&payload)
}

pub fn stats_of(storage: &TieredStorage, name: &str) -> hoard_storage::TierStats {
    storage
        .tier_stats()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no tier {name}"))
}

/// A program given by `env_var`, else found on PATH.
pub fn find_program(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

pub const FLUSH: Duration = Duration::from_secs(10);

/// A puts, B (another local disk, same remote) gets it from the remote tier, and B's local
/// disk has it afterwards.
pub async fn shared_between_two_machines(tier: TierConfig) {
    let name = tier.name.clone();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = machine(a_dir.path(), vec![tier.clone()]);
    let tier_again = tier.clone();
    let b = machine(b_dir.path(), vec![tier]);
    let (k, e) = (key(1), entry(1, 200_000));

    a.put(&k, e.clone()).await.unwrap();
    assert!(a.flush(FLUSH).await, "{name}: remote writes did not drain");
    assert_eq!(
        stats_of(&a, &name).writes,
        1,
        "{name}: {:?}",
        a.tier_stats()
    );

    assert_eq!(b.local().get(&k).await.unwrap(), None);
    assert_eq!(
        b.get(&k).await.unwrap(),
        Some(e.clone()),
        "{name}: no remote hit"
    );
    let remote = stats_of(&b, &name);
    assert_eq!(
        (remote.hits, remote.errors, remote.timeouts),
        (1, 0, 0),
        "{remote:?}"
    );
    // Backfilled into B's local tier, after the hit was answered (flush waits for it): the
    // next get is a local hit.
    assert!(b.flush(Duration::from_secs(10)).await);
    assert_eq!(b.local().get(&k).await.unwrap(), Some(e.clone()));
    assert_eq!(b.get(&k).await.unwrap(), Some(e));
    let local = stats_of(&b, "local");
    assert_eq!(
        (local.hits, local.misses, local.writes),
        (1, 1, 1),
        "{local:?}"
    );
    assert_eq!(stats_of(&b, &name).hits, 1);

    // A miss everywhere is a miss, and counted as one by the remote tier.
    assert_eq!(b.get(&key(2)).await.unwrap(), None);
    assert_eq!(stats_of(&b, &name).misses, 1);

    // A third machine whose limit is under the entry's size refuses it (counted as the
    // tier's error, never a hit), however the tier reads: one ranged request for an object
    // store, a whole value for a key-value service.
    let tight_dir = tempfile::tempdir().unwrap();
    let mut tight = tier_again;
    tight.max_entry_size = Some(100_000);
    let third = machine(tight_dir.path(), vec![tight]);
    assert_eq!(third.get(&k).await.unwrap(), None, "{name}: over the limit");
    let refused = stats_of(&third, &name);
    assert_eq!(
        (refused.hits, refused.errors),
        (0, 1),
        "{name}: {refused:?}"
    );
}

/// Two machines, `a` and `b`, each with its own local disk and `tier`: `a` puts entry 1 of
/// `len` bytes, and `b` reads it through the tier.
pub async fn a_puts_b_reads(
    a_dir: &Path,
    b_dir: &Path,
    tier: &TierConfig,
    len: usize,
) -> (TieredStorage, TieredStorage) {
    let a = machine(a_dir, vec![tier.clone()]);
    let b = machine(b_dir, vec![tier.clone()]);
    a.put(&key(1), entry(1, len)).await.unwrap();
    assert!(a.flush(FLUSH).await);
    assert_eq!(b.get(&key(1)).await.unwrap(), Some(entry(1, len)));
    (a, b)
}

/// After the server of `b`'s tier `name` died: `b`'s gets of `keys` are misses (each one
/// timed), and the tier's breaker opened after three failures, so later ones never call it.
pub async fn misses_open_the_breaker(
    b: &TieredStorage,
    name: &str,
    keys: std::ops::Range<u8>,
) -> Vec<Duration> {
    let mut each = Vec::new();
    for n in keys {
        let start = Instant::now();
        assert_eq!(b.get(&key(n)).await.unwrap(), None);
        each.push(start.elapsed());
    }
    let s = stats_of(b, name);
    assert_eq!(
        (s.errors + s.timeouts, s.state.as_str()),
        (3, "open"),
        "{s:?}"
    );
    each
}

/// WsgiDAV serving `root` on a free port.
pub fn wsgidav(program: &Path, root: &Path) -> Daemon {
    let port = free_port();
    Daemon::spawn(
        program.to_str().unwrap(),
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--root",
            root.to_str().unwrap(),
            "--auth",
            "anonymous",
            "--no-config",
        ],
        port,
    )
}

pub fn webdav_tier(server: &Daemon) -> TierConfig {
    TierConfig::new(TierKind::Webdav {
        endpoint: format!("http://127.0.0.1:{}/", server.port),
    })
}

/// Waits (at most 20 s) until `done` holds of tier `name`'s stats.
pub async fn wait_for_tier(
    storage: &TieredStorage,
    name: &str,
    done: impl Fn(&hoard_storage::TierStats) -> bool,
) -> hoard_storage::TierStats {
    let start = Instant::now();
    loop {
        let stats = stats_of(storage, name);
        if done(&stats) {
            return stats;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} never got there: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
