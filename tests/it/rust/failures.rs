//! End to end with real rustc: the compiles cargo's build scripts run to probe the compiler
//! (anyhow, thiserror and proc-macro2 each compile a file meant to fail on stable) are stored
//! when they fail and replayed on the next build, diagnostics, status and dependency file
//! alike, while a failure with any cause the key does not cover is compiled again.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{Sandbox, text};

/// A probe like anyhow's: a feature gate stable refuses, and the variable that lifts it.
const PROBE: &str = "#![feature(never_type)]\n\
    pub fn f() -> ! { loop {} }\n\
    const _: Option<&str> = option_env!(\"RUSTC_BOOTSTRAP\");\n";

/// `hoard rustc` compiling `source` as a library's metadata into `dir/out`, as the probes
/// do; the caller adds arguments and environment.
fn probe_command(sandbox: &Sandbox, dir: &Path, source: &str) -> Command {
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut cmd = sandbox.hoard();
    cmd.current_dir(dir)
        .env_remove("RUSTC_BOOTSTRAP")
        .args(["rustc", "--crate-name=probe", "--crate-type=lib"])
        .args(["--emit=dep-info,metadata", "--cap-lints=allow", "--out-dir"])
        .arg(&out_dir)
        .arg(source);
    cmd
}

fn probe(sandbox: &Sandbox, dir: &Path, source: &str, extra: &[&str]) -> Output {
    probe_command(sandbox, dir, source)
        .args(extra)
        .output()
        .unwrap()
}

fn counter(sandbox: &Sandbox, name: &str) -> u64 {
    sandbox.stats()[name].as_u64().unwrap_or(0)
}

#[test]
fn a_failing_probe_is_replayed_with_its_diagnostics_and_dependency_file() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("probe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("probe.rs"), PROBE).unwrap();

    let cold = probe(&sandbox, &dir, "probe.rs", &[]);
    assert_eq!(cold.status.code(), Some(1), "{}", text(&cold.stderr));
    assert!(
        text(&cold.stderr).contains("E0554"),
        "{}",
        text(&cold.stderr)
    );
    let dep_info = std::fs::read(dir.join("out/probe.d")).unwrap();
    std::fs::remove_file(dir.join("out/probe.d")).unwrap();
    assert_eq!(counter(&sandbox, "cache_writes"), 1);

    let warm = probe(&sandbox, &dir, "probe.rs", &[]);
    assert_eq!(warm.status.code(), Some(1));
    assert_eq!(text(&warm.stderr), text(&cold.stderr));
    assert_eq!(warm.stdout, cold.stdout);
    assert_eq!(std::fs::read(dir.join("out/probe.d")).unwrap(), dep_info);
    assert!(!dir.join("out/libprobe.rmeta").exists());
    assert_eq!(counter(&sandbox, "cache_hits"), 1);

    // The probe read RUSTC_BOOTSTRAP: set, the feature is allowed and the compile succeeds.
    let bootstrapped = probe_command(&sandbox, &dir, "probe.rs")
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .unwrap();
    assert!(
        bootstrapped.status.success(),
        "{}",
        text(&bootstrapped.stderr)
    );
    assert!(dir.join("out/libprobe.rmeta").exists());
    assert_eq!(counter(&sandbox, "cache_hits"), 1);
}

#[test]
fn a_root_that_fails_before_its_dependency_file_is_replayed_and_an_edit_misses() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("syntax");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("probe.rs"), "pub fn f( {\n").unwrap();

    let cold = probe(&sandbox, &dir, "probe.rs", &[]);
    assert_eq!(cold.status.code(), Some(1));
    assert!(!dir.join("out/probe.d").exists());
    let warm = probe(&sandbox, &dir, "probe.rs", &[]);
    assert_eq!(warm.status.code(), Some(1));
    assert_eq!(text(&warm.stderr), text(&cold.stderr));
    assert!(!dir.join("out/probe.d").exists());
    assert_eq!(counter(&sandbox, "cache_hits"), 1);

    std::fs::write(dir.join("probe.rs"), "pub fn g( {\n").unwrap();
    let edited = probe(&sandbox, &dir, "probe.rs", &[]);
    assert_eq!(edited.status.code(), Some(1));
    assert!(
        text(&edited.stderr).contains("fn g("),
        "{}",
        text(&edited.stderr)
    );
    assert_eq!(counter(&sandbox, "cache_hits"), 1);
}

#[test]
fn failures_the_key_cannot_explain_are_compiled_again() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("uncovered");
    std::fs::create_dir_all(dir.join("deps")).unwrap();
    std::fs::write(dir.join("probe.rs"), PROBE).unwrap();
    std::fs::write(dir.join("module.rs"), "mod other;\npub fn f( {\n").unwrap();
    std::fs::write(dir.join("other.rs"), "").unwrap();
    std::fs::write(dir.join("main.rs"), "fn main() { let x: u8 = \"\"; }\n").unwrap();
    let cases: [(&str, &[&str]); 3] = [
        // A crate search path: the compile may load crates no key covers.
        ("probe.rs", &["-L", "dependency=deps"]),
        // Out-of-line modules, before any dependency file.
        ("module.rs", &[]),
        // A linked crate type: its link step could fail for reasons outside the key.
        ("main.rs", &["--crate-type=bin"]),
    ];
    for (source, extra) in cases {
        for _ in 0..2 {
            let out = probe(&sandbox, &dir, source, extra);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{source}: {}",
                text(&out.stderr)
            );
        }
    }
    assert_eq!(counter(&sandbox, "cache_hits"), 0);
    assert_eq!(counter(&sandbox, "cache_writes"), 0);

    // An I/O error (an output directory that is a file) is never stored either.
    std::fs::write(dir.join("not-a-dir"), "").unwrap();
    for _ in 0..2 {
        let out = sandbox
            .hoard()
            .current_dir(&dir)
            .args(["rustc", "--crate-name=probe", "--crate-type=lib"])
            .args([
                "--emit=dep-info,metadata",
                "--out-dir",
                "not-a-dir",
                "probe.rs",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("os error"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(counter(&sandbox, "cache_hits"), 0);
    assert_eq!(counter(&sandbox, "cache_writes"), 0);
}
