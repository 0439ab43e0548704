//! Helpers for the tests that put client and server in different places: a build run inside
//! its own mount namespace on a private tmpfs, a `hoard-server` TCP gateway (killed on drop),
//! and a network namespace joined to the host by a veth pair (removed on drop).
//!
//! Declared from a test file next to `mod common;` with
//! `#[path = "common/namespaces.rs"] mod namespaces;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{HOARD, Sandbox, c_files, compile_args, text};

pub const HOARD_SERVER: &str = env!("CARGO_BIN_EXE_hoard-server");

/// How long a server may take to come up before the harness gives up (not an assertion about
/// speed: a server that is up sooner is seen sooner).
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// Variables from the test's own environment that would change what `hoard` or `hoard-server`
/// does; every command built here removes them unless it sets them.
const HOARD_VARS: &[&str] = &[
    "HOARD_SERVER_ADDR",
    "HOARD_SERVER_TOKEN",
    "HOARD_SERVER_LISTEN",
    "HOARD_CACHE_SIZE",
    "HOARD_DIRECT_MODE",
    "HOARD_PROTOCOL",
    "HOARD_SERVER_MAX_PROTOCOL",
    "HOARD_IDLE_TIMEOUT",
];

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

fn sh_path(p: &Path) -> String {
    sh_quote(p.to_str().expect("test paths are UTF-8"))
}

/// The `transfers` counters of `hoard --show-stats --json`: `(shared_fs, inline)`. A counter
/// the JSON leaves out (nothing counted yet) is 0.
pub fn transfers(stats: &serde_json::Value) -> (u64, u64) {
    let count = |name: &str| stats["transfers"][name].as_u64().unwrap_or(0);
    (count("shared_fs"), count("inline"))
}

/// A counter of `hoard --show-stats --json`, which must be present.
pub fn counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// Every regular file under `dir`, recursively (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_under(&path));
        } else if kind.is_file() {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Copies the regular files of `from` (not recursively) into `to`, created if needed.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A port nobody listens on right now on 127.0.0.1 (the kernel's pick).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One step of a build run inside a mount namespace.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Compile every source with the plain compiler; outputs and diagnostics are saved under
    /// `results/<name>`.
    Plain(&'a str),
    /// Compile every source through `hoard <compiler>`; saved under `results/<name>`.
    Hoard(&'a str),
    /// `hoard --show-stats --json` into `results/<name>.json`.
    Stats(&'a str),
    /// `hoard --zero-stats`.
    ZeroStats,
}

/// A C tree built inside a new private mount namespace, on a tmpfs mounted at `root` that
/// exists only in that namespace. The tree is copied to `root/src`, objects go to `root/out`,
/// and each step's objects, `.d` files and per-source stderr (`<stem>.err`) are copied out to
/// `results/<step>` (which must lie outside `root`, on the shared filesystem).
pub struct MountNsBuild<'a> {
    pub sandbox: &'a Sandbox,
    pub compiler: &'a str,
    pub tree: PathBuf,
    pub root: PathBuf,
    pub flags: &'a [&'a str],
    pub results: PathBuf,
}

impl MountNsBuild<'_> {
    /// The sources as they are named inside the namespace.
    pub fn sources(&self) -> Vec<PathBuf> {
        c_files(&self.tree)
            .iter()
            .map(|s| self.root.join("src").join(s.file_name().unwrap()))
            .collect()
    }

    fn script(&self, steps: &[Step]) -> String {
        let root = sh_path(&self.root);
        let src = sh_path(&self.root.join("src"));
        let out = sh_path(&self.root.join("out"));
        let hoard = sh_quote(HOARD);
        let mut s = String::new();
        writeln!(s, "set -eu").unwrap();
        // The tmpfs is this namespace's alone: the host sees the empty directory beneath it.
        writeln!(s, "mount -t tmpfs -o mode=0755 hoard-ns-build {root}").unwrap();
        writeln!(s, "mkdir {src} {out}").unwrap();
        writeln!(
            s,
            "find {} -maxdepth 1 -type f -exec cp {{}} {src}/ \\;",
            sh_path(&self.tree)
        )
        .unwrap();
        // build DEST [LAUNCHER]: every source, two at a time; failures are listed in
        // DEST/failures rather than stopping the script.
        writeln!(s, "build() {{").unwrap();
        writeln!(s, "  dest=$1; shift").unwrap();
        writeln!(s, "  mkdir -p \"$dest\"").unwrap();
        writeln!(s, "  rm -f {out}/*.o {out}/*.d").unwrap();
        for (i, source) in self.sources().iter().enumerate() {
            let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
            let args: Vec<String> = compile_args(source, &self.root.join("out"), self.flags)
                .iter()
                .map(sh_quote)
                .collect();
            writeln!(
                s,
                "  {{ \"$@\" {} {} 2>\"$dest\"/{stem}.err || echo \"{stem}: exit $?\" >>\"$dest\"/failures; }} &",
                sh_quote(self.compiler),
                args.join(" "),
            )
            .unwrap();
            if i % 2 == 1 {
                writeln!(s, "  wait").unwrap();
            }
        }
        writeln!(s, "  wait").unwrap();
        writeln!(s, "  cp {out}/*.o {out}/*.d \"$dest\"/").unwrap();
        writeln!(s, "}}").unwrap();
        for step in steps {
            match step {
                Step::Plain(name) => {
                    writeln!(s, "build {}", sh_path(&self.results.join(name))).unwrap();
                }
                Step::Hoard(name) => {
                    writeln!(s, "build {} {hoard}", sh_path(&self.results.join(name))).unwrap();
                }
                Step::Stats(name) => writeln!(
                    s,
                    "{hoard} --show-stats --json >{}",
                    sh_path(&self.results.join(format!("{name}.json")))
                )
                .unwrap(),
                Step::ZeroStats => writeln!(s, "{hoard} --zero-stats").unwrap(),
            }
        }
        s
    }

    /// Runs `steps` in a new mount namespace (`unshare --mount --propagation private`) with
    /// the sandbox's `hoard` environment, and asserts that the script and every compile in it
    /// succeeded.
    pub fn run(&self, steps: &[Step]) {
        std::fs::create_dir_all(&self.root).unwrap();
        std::fs::create_dir_all(&self.results).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(self.script(steps));
        // Exactly the environment `sandbox.hoard()` would give.
        for (key, value) in self.sandbox.hoard().get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        let out = cmd.output().expect("unshare (util-linux) runs");
        assert!(
            out.status.success(),
            "the mount-namespace build failed ({}):\nstdout: {}\nstderr: {}\nlog:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.sandbox.log()
        );
        for step in steps {
            if let Step::Plain(name) | Step::Hoard(name) = step {
                let failures = self.results.join(name).join("failures");
                assert!(
                    !failures.exists(),
                    "compiles failed in step {name}: {}\nlog:\n{}",
                    std::fs::read_to_string(&failures).unwrap_or_default(),
                    self.sandbox.log()
                );
            }
        }
    }

    /// The saved stats of a [`Step::Stats`].
    pub fn stats(&self, name: &str) -> serde_json::Value {
        let path = self.results.join(format!("{name}.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The saved diagnostics of a build step, by source stem.
    pub fn stderr_of(&self, name: &str) -> BTreeMap<String, String> {
        std::fs::read_dir(self.results.join(name))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "err"))
            .map(|p| {
                (
                    p.file_stem().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect()
    }
}

/// Diagnostics of a host-side `common::build`, by source stem, for comparing with
/// [`MountNsBuild::stderr_of`].
pub fn stderr_by_stem(sources: &[PathBuf], outputs: &[Output]) -> BTreeMap<String, String> {
    sources
        .iter()
        .zip(outputs)
        .map(|(s, o)| {
            (
                s.file_stem().unwrap().to_string_lossy().into_owned(),
                text(&o.stderr),
            )
        })
        .collect()
}

/// How a gateway is told to listen on TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenBy {
    /// `hoard-server --listen ADDR`.
    Flag,
    /// `HOARD_SERVER_LISTEN=ADDR hoard-server`.
    Env,
}

/// A `hoard-server` serving TCP (and its own Unix socket), with a private cache directory.
/// Killed when dropped.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    /// `host:port` it listens on.
    pub addr: String,
    child: Child,
}

impl Gateway {
    /// The gateway's cache directory (`HOARD_DIR`).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The gateway's own Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("gateway.sock")
    }

    /// Entry and manifest files the gateway has stored.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let store = self.cache_dir().join("cache");
        // Entries live one level down, in `<2 hex>/`; the store's own size ledger is not one.
        files_under(&store)
            .into_iter()
            .filter(|p| p.parent() != Some(store.as_path()))
            .collect()
    }

    /// The `hoard-server` command for a gateway in `dir` listening on `addr`; `token` is
    /// `HOARD_SERVER_TOKEN` (removed when `None`).
    pub fn command(dir: &Path, addr: &str, token: Option<&str>, by: ListenBy) -> Command {
        let mut cmd = Command::new(HOARD_SERVER);
        Self::configure(&mut cmd, dir, addr, token, by);
        cmd
    }

    fn configure(cmd: &mut Command, dir: &Path, addr: &str, token: Option<&str>, by: ListenBy) {
        for var in HOARD_VARS {
            cmd.env_remove(var);
        }
        cmd.env("HOARD_DIR", dir.join("cache"))
            .env("HOARD_SERVER_UDS", dir.join("gateway.sock"))
            .env("HOARD_LOG", "debug");
        if let Some(token) = token {
            cmd.env("HOARD_SERVER_TOKEN", token);
        }
        match by {
            ListenBy::Flag => {
                cmd.args(["--listen", addr]);
            }
            ListenBy::Env => {
                cmd.env("HOARD_SERVER_LISTEN", addr);
            }
        }
    }

    /// Starts a gateway on 127.0.0.1 and a free port with `token`, and waits until it
    /// accepts connections on TCP and on its Unix socket.
    pub fn start(token: &str, by: ListenBy, env: &[(&str, &str)]) -> Gateway {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::start_at(None, &addr, token, by, env)
    }

    /// Starts a gateway listening on `addr`, inside network namespace `netns` when given
    /// (`ip netns exec NS hoard-server ...`, which execs the server in place).
    pub fn start_at(
        netns: Option<&str>,
        addr: &str,
        token: &str,
        by: ListenBy,
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("hoard-gateway")
            .tempdir()
            .unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, HOARD_SERVER]);
                cmd
            }
            None => Command::new(HOARD_SERVER),
        };
        Self::configure(&mut cmd, dir.path(), addr, Some(token), by);
        cmd.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap());
        let child = cmd.spawn().expect("hoard-server starts");
        let mut gateway = Gateway {
            dir,
            addr: addr.to_owned(),
            child,
        };
        gateway.wait_ready();
        gateway
    }

    fn wait_ready(&mut self) {
        let addr: SocketAddr = self.addr.parse().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the gateway exited before serving ({status}):\n{}",
                    self.output()
                );
            }
            let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok();
            if tcp && self.socket().exists() {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "the gateway never served {} and {}:\n{}",
                self.addr,
                self.socket().display(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The gateway process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the gateway process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `hoard` talking to the gateway through its Unix socket, as a client on its machine.
    pub fn hoard_over_uds(&self) -> Command {
        let mut cmd = Command::new(HOARD);
        for var in HOARD_VARS {
            cmd.env_remove(var);
        }
        cmd.env("HOARD_DIR", self.cache_dir())
            .env("HOARD_SERVER_UDS", self.socket())
            .env("HOARD_LOG", "debug");
        cmd
    }

    /// The gateway's statistics, asked through its Unix socket.
    pub fn stats_over_uds(&self) -> serde_json::Value {
        let out = self
            .hoard_over_uds()
            .args(["--show-stats", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "show-stats over the gateway's socket failed: {}\n{}",
            text(&out.stderr),
            self.output()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Its stdout, stderr and logs, for failure messages.
    pub fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        let log = std::fs::read_to_string(self.cache_dir().join("server.log"));
        format!(
            "gateway stdout: {}\ngateway stderr: {}\ngateway server.log:\n{}",
            read("stdout").unwrap_or_default(),
            read("stderr").unwrap_or_default(),
            log.unwrap_or_default()
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, killing it (and failing) if it is still running after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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

/// A network namespace joined to the host by a veth pair, with a /30 between the two ends
/// that no other interface uses. The namespace and both veth ends are removed on drop (also
/// while unwinding from a failed assertion).
pub struct NetNs {
    pub name: String,
    host_if: String,
    /// The namespace end's address.
    pub inner_ip: String,
    /// The host end's address.
    pub host_ip: String,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

impl NetNs {
    pub fn create() -> NetNs {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("hoard-e2e-{pid}-{n}");
        // Interface names are at most 15 bytes.
        let host_if = format!("hv{pid}x{n}h");
        let inner_if = format!("hv{pid}x{n}n");
        // A 10.77.X.0/30 that no interface of the host has an address in.
        let in_use = text(&ip(&["-4", "-o", "addr", "show"]).stdout);
        let routes = text(&ip(&["-4", "route", "show", "table", "all"]).stdout);
        let start = pid as usize + n;
        let third = (0..254)
            .map(|i| (start + i) % 254 + 1)
            .find(|x| {
                let prefix = format!("10.77.{x}.");
                !in_use.contains(&prefix) && !routes.contains(&prefix)
            })
            .expect("a free 10.77.x.0/30");
        let ns = NetNs {
            name,
            host_if,
            inner_ip: format!("10.77.{third}.1"),
            host_ip: format!("10.77.{third}.2"),
        };
        // From here on, drop removes whatever was made.
        ip_ok(&["netns", "add", &ns.name]);
        ip_ok(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &inner_if,
        ]);
        ip_ok(&["link", "set", &inner_if, "netns", &ns.name]);
        ip_ok(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        ip_ok(&["link", "set", &ns.host_if, "up"]);
        ip_ok(&[
            "netns",
            "exec",
            &ns.name,
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.inner_ip),
            "dev",
            &inner_if,
        ]);
        ip_ok(&[
            "netns", "exec", &ns.name, "ip", "link", "set", &inner_if, "up",
        ]);
        ip_ok(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both; deleting the namespace would too.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
