//! What the end-to-end tests share: a sandbox with its own cache directory and server socket,
//! the real binaries, and a real C tree from a crates.io source package.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const HOARD: &str = env!("CARGO_BIN_EXE_hoard");

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
        let needle = format!("HOARD_SERVER_UDS={}", self.socket().display());
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

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; sources.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(source) = sources.get(i) else { break };
                    let args = compile_args(source, out_dir, flags);
                    let output = match launcher {
                        Some(sandbox) => sandbox.hoard().arg(compiler).args(&args).output(),
                        None => Command::new(compiler).args(&args).output(),
                    }
                    .unwrap();
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
