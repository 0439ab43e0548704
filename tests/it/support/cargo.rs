//! `cargo build` the way every Rust end-to-end test runs it: offline, without incremental
//! compilation, and with nothing from the developer's shell or machine that would change what
//! is built or how hoard keys it (wrappers, flags, path policy, a config file, a pinned
//! protocol). The cache is the sandbox's.

use std::path::Path;
use std::process::{Command, Output};

use super::{HOARD, Sandbox, text};

/// Variables a test's cargo must not inherit.
const CLEARED: &[&str] = &[
    "RUSTC_WRAPPER",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_PIPELINING",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CC",
    "CFLAGS",
    "HOARD_PATHS",
    "HOARD_BASEDIRS",
    "HOARD_CONFIG",
    "HOARD_PROTOCOL",
    "HOARD_SERVER_MAX_PROTOCOL",
    "HOARD_DIRECT_MODE",
    "HOARD_FIXTURE_GREETING",
];

/// `cargo build --offline --quiet` in `dir` into `target`, through hoard (`RUSTC_WRAPPER`)
/// when `wrapped`; the sandbox's environment last, so a test's own `set_env` wins.
pub fn cargo_build(sandbox: &Sandbox, dir: &Path, target: &Path, wrapped: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--offline", "--quiet"]).current_dir(dir);
    for name in CLEARED {
        cmd.env_remove(name);
    }
    cmd.env("CARGO_TARGET_DIR", target)
        .env("CARGO_INCREMENTAL", "0")
        .env("HOARD_DIR", sandbox.cache_dir())
        .env("HOARD_SERVER_UDS", sandbox.socket())
        // No config file of the machine's: a test that wants one sets HOARD_CONFIG.
        .env("XDG_CONFIG_HOME", sandbox.dir.path())
        .env("HOARD_LOG", "debug");
    if wrapped {
        cmd.env("RUSTC_WRAPPER", HOARD);
    }
    cmd.envs(sandbox.env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Runs `cmd`, which must succeed; its output.
pub fn succeeded(cmd: &mut Command, sandbox: &Sandbox) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        text(&out.stderr),
        sandbox.log()
    );
    out
}
