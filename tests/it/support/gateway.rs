//! A `hoard-server` TCP gateway (`--listen` or `HOARD_SERVER_LISTEN`, guarded by
//! `HOARD_SERVER_TOKEN`) with a private cache directory, started directly, inside a network
//! namespace, or under a shell prelude such as a `ulimit`; killed when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{HOARD, HOARD_SERVER, files_under, free_port, text};

/// How long a server may take to come up before the harness gives up (not an assertion about
/// speed: a server that is up sooner is seen sooner).
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// How a gateway is told to listen on TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenBy {
    /// `hoard-server --listen ADDR`.
    Flag,
    /// `HOARD_SERVER_LISTEN=ADDR hoard-server`.
    Env,
}

/// How the gateway's process is started.
#[derive(Debug, Clone, Copy)]
pub enum Launch<'a> {
    /// `hoard-server` itself.
    Direct,
    /// `ip netns exec NS hoard-server`, which execs the server in place inside namespace NS.
    InNetns(&'a str),
    /// `sh -c '<prelude> exec hoard-server'`, for a `ulimit` or a `umask`.
    AfterShell(&'a str),
}

/// `127.0.0.1` and a port nobody listens on right now.
pub fn loopback_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Removes from `cmd` every `HOARD_*` variable of the test's own environment: they would
/// change what `hoard` or `hoard-server` does.
pub fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HOARD_")) {
        cmd.env_remove(key);
    }
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
        clean_env(cmd);
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
        Self::start_at(Launch::Direct, &loopback_addr(), token, by, env)
    }

    /// Starts a gateway listening on `addr`, launched as `launch` says, with `env` on top of
    /// its own (`HOARD_LOG=debug` unless `env` says otherwise).
    pub fn start_at(
        launch: Launch,
        addr: &str,
        token: &str,
        by: ListenBy,
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("hoard-gateway")
            .tempdir()
            .unwrap();
        let mut cmd = match launch {
            Launch::Direct => Command::new(HOARD_SERVER),
            Launch::InNetns(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, HOARD_SERVER]);
                cmd
            }
            Launch::AfterShell(prelude) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(format!("{prelude} exec \"$0\" \"$@\""))
                    .arg(HOARD_SERVER);
                cmd
            }
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

    /// `hoard` talking to the gateway through its Unix socket, as a client on its machine.
    pub fn hoard_over_uds(&self) -> Command {
        let mut cmd = Command::new(HOARD);
        clean_env(&mut cmd);
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
