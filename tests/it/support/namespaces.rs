//! Helpers for the tests that put client and server in different places: a build run inside
//! its own mount namespace on a private tmpfs, and a network namespace joined to the host by
//! a veth pair (removed on drop).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{HOARD, Sandbox, c_files, compile_args, run_ok, text};

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

fn sh_path(p: &Path) -> String {
    sh_quote(p.to_str().expect("test paths are UTF-8"))
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

/// Diagnostics of a host-side `crate::support::build`, by source stem, for comparing with
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
        run_ok("ip", &["netns", "add", &ns.name]);
        run_ok(
            "ip",
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &inner_if,
            ],
        );
        run_ok("ip", &["link", "set", &inner_if, "netns", &ns.name]);
        run_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", ns.host_ip),
                "dev",
                &ns.host_if,
            ],
        );
        run_ok("ip", &["link", "set", &ns.host_if, "up"]);
        run_ok(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "ip",
                "addr",
                "add",
                &format!("{}/30", ns.inner_ip),
                "dev",
                &inner_if,
            ],
        );
        run_ok(
            "ip",
            &[
                "netns", "exec", &ns.name, "ip", "link", "set", &inner_if, "up",
            ],
        );
        run_ok(
            "ip",
            &["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"],
        );
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
