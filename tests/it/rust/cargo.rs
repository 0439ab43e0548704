//! End to end with real cargo and rustc: the workspace in `tests/fixtures/rust-workspace`
//! (a build script, a proc-macro crate, `env!`/`option_env!`, a feature, a `--cfg`, a bin)
//! built with `RUSTC_WRAPPER=hoard`, offline. After `cargo clean` every crate is a hit and the
//! binary prints what a plain build prints; an edit, an environment variable, a `--cfg` or a
//! feature misses exactly the crates it changes; a clone at another path (and with another
//! target directory) is all hits; cargo's pipelining on and off, and the v1 placement.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{self, HOARD, Sandbox, text, tools};

/// rustc compiles in one build of the fixture: greeting, features, shout (proc-macro),
/// generated's build script and library, app (bin).
const UNITS: u64 = 6;

/// The fixture copied into `dir/name`, so tests can edit it.
pub(crate) fn workspace(sandbox: &Sandbox, name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rust-workspace");
    let to = sandbox.dir.path().join(name);
    copy_dir(&from, &to);
    to
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if entry.file_name() == "target" {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// `cargo build --offline` in `ws` through hoard, with `env` on top of a clean environment.
fn cargo_build(sandbox: &Sandbox, ws: &Path, target: &Path, env: &[(&str, &str)]) -> Output {
    cargo(sandbox, ws, target, env, &[])
}

/// [`cargo_build`] with more arguments.
fn cargo(
    sandbox: &Sandbox,
    ws: &Path,
    target: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut cmd = support::cargo::cargo_build(sandbox, ws, target, true);
    cmd.args(args).envs(env.iter().copied());
    support::cargo::succeeded(&mut cmd, sandbox)
}

/// What the fixture's binary prints.
fn run_app(target: &Path) -> String {
    let out = Command::new(target.join("debug/app")).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// `(hits, misses)` since the last zeroing; asserts nothing fell back and that the only
/// non-cacheable calls were cargo's probes.
fn counts(sandbox: &Sandbox) -> (u64, u64) {
    let stats = sandbox.stats();
    assert_eq!(stats["local_fallbacks"], 0, "{stats}\n{}", sandbox.log());
    assert_eq!(stats["cache_errors"], 0, "{stats}\n{}", sandbox.log());
    let reasons = stats["non_cacheable_reasons"].as_object().unwrap();
    for (reason, count) in reasons {
        assert!(
            count == 0 || reason == "rustc_probe" || reason == "stdin_source",
            "a real compile was not cacheable: {reason} ({stats})"
        );
    }
    (
        stats["cache_hits"].as_u64().unwrap(),
        stats["cache_misses"].as_u64().unwrap(),
    )
}

/// Builds cold into a fresh target directory, then again after removing it; returns the
/// warm `(hits, misses)` after asserting the outputs print the same.
fn cold_then_warm(sandbox: &Sandbox, ws: &Path, target: &Path, env: &[(&str, &str)]) -> String {
    let _ = std::fs::remove_dir_all(target);
    sandbox.zero_stats();
    cargo_build(sandbox, ws, target, env);
    let cold = run_app(target);
    let (_, misses) = counts(sandbox);
    assert_eq!(misses, UNITS, "cold build");
    std::fs::remove_dir_all(target).unwrap();
    sandbox.zero_stats();
    cargo_build(sandbox, ws, target, env);
    assert_eq!(counts(sandbox), (UNITS, 0), "warm build after cargo clean");
    assert_eq!(
        run_app(target),
        cold,
        "the binary built from cache prints otherwise"
    );
    cold
}

fn plain_output(sandbox: &Sandbox, ws: &Path) -> String {
    let target = sandbox.dir.path().join("plain-target");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("HOARD_FIXTURE_GREETING")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    run_app(&target)
}

/// After a clean rebuild of `ws` into `target` with `env`: `(hits, misses)`.
fn clean_build(sandbox: &Sandbox, ws: &Path, target: &Path, env: &[(&str, &str)]) -> (u64, u64) {
    let _ = std::fs::remove_dir_all(target);
    sandbox.zero_stats();
    cargo_build(sandbox, ws, target, env);
    counts(sandbox)
}

#[test]
fn warm_build_is_all_hits_and_prints_what_a_plain_build_prints() {
    let sandbox = Sandbox::new();
    let ws = workspace(&sandbox, "ws");
    let target = sandbox.dir.path().join("target");
    let printed = cold_then_warm(&sandbox, &ws, &target, &[]);
    assert_eq!(printed, plain_output(&sandbox, &ws));
    assert!(printed.contains("CACHED!") && printed.contains("squares sum to 140"));
    let stats = sandbox.stats();
    assert_eq!(stats["hits_by_language"]["rust"], UNITS, "{stats}");
    // cargo finds everything a hit wrote up to date: a second build runs no rustc.
    sandbox.zero_stats();
    cargo_build(&sandbox, &ws, &target, &[]);
    assert_eq!(counts(&sandbox), (0, 0), "cargo rebuilt after a warm build");

    // The dependency files name this build's paths.
    let deps = target.join("debug/deps");
    let app_d = std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "d")
                && p.file_name().unwrap().to_string_lossy().starts_with("app-")
        })
        .unwrap();
    let d = std::fs::read_to_string(&app_d).unwrap();
    assert!(d.contains(&format!("{}/app-", deps.display())), "{d}");
    assert!(d.contains("crates/app/src/main.rs"), "{d}");
    assert!(!d.contains('\u{1}'), "placeholder left in {d}");
}

#[test]
fn an_edit_misses_that_crate_and_its_dependents_only() {
    let sandbox = Sandbox::new();
    let ws = workspace(&sandbox, "ws");
    let target = sandbox.dir.path().join("target");
    cold_then_warm(&sandbox, &ws, &target, &[]);
    // A new item changes greeting's metadata, so features and app must be rebuilt too.
    let lib = ws.join("crates/greeting/src/lib.rs");
    let mut source = std::fs::read_to_string(&lib).unwrap();
    source.push_str("\n/// Added by the test.\npub fn added() -> u32 { 7 }\n");
    std::fs::write(&lib, source).unwrap();
    assert_eq!(clean_build(&sandbox, &ws, &target, &[]), (3, 3));
    // The bin has no dependents.
    let main = ws.join("crates/app/src/main.rs");
    let mut source = std::fs::read_to_string(&main).unwrap();
    source.push_str("// a comment\n");
    std::fs::write(&main, source).unwrap();
    assert_eq!(
        clean_build(&sandbox, &ws, &target, &[]),
        (UNITS - 1, 1),
        "only app misses"
    );
}

#[test]
fn env_cfg_and_features_miss_exactly_where_they_should() {
    let sandbox = Sandbox::new();
    let ws = workspace(&sandbox, "ws");
    let target = sandbox.dir.path().join("target");
    cold_then_warm(&sandbox, &ws, &target, &[]);

    // option_env!: greeting reads it; features and app see greeting's new constant.
    let env = [("HOARD_FIXTURE_GREETING", "hi there")];
    assert_eq!(clean_build(&sandbox, &ws, &target, &env), (3, 3));
    assert!(run_app(&target).starts_with("hi there\n"));
    assert_eq!(clean_build(&sandbox, &ws, &target, &env), (UNITS, 0));

    // --cfg through RUSTFLAGS reaches every rustc call, build script included.
    let cfg = [("RUSTFLAGS", "--cfg hoard_fixture_cfg")];
    assert_eq!(clean_build(&sandbox, &ws, &target, &cfg), (0, UNITS));
    assert!(run_app(&target).contains("configured: true"));
    assert_eq!(clean_build(&sandbox, &ws, &target, &[]), (UNITS, 0));
    assert!(run_app(&target).contains("configured: false"));

    // A feature of app that turns on one of features': those two crates only.
    let _ = std::fs::remove_dir_all(&target);
    sandbox.zero_stats();
    cargo(&sandbox, &ws, &target, &[], &["--features", "app/fancy"]);
    assert_eq!(counts(&sandbox), (UNITS - 2, 2));
    assert!(run_app(&target).starts_with("*** hello ***\n"));
}

#[test]
fn a_clone_at_another_path_is_all_hits_with_either_target_directory() {
    let sandbox = Sandbox::new();
    let ws = workspace(&sandbox, "first/ws");
    let target = sandbox.dir.path().join("target");
    let printed = cold_then_warm(&sandbox, &ws, &target, &[]);

    let clone = workspace(&sandbox, "second/elsewhere");
    assert_eq!(clean_build(&sandbox, &clone, &target, &[]), (UNITS, 0));
    assert_eq!(run_app(&target), printed);

    let other_target = sandbox.dir.path().join("second/target-two");
    assert_eq!(
        clean_build(&sandbox, &clone, &other_target, &[]),
        (UNITS, 0)
    );
    assert_eq!(run_app(&other_target), printed);
    // Nothing the clone's build wrote points back at the first checkout or target.
    let first = ws.display().to_string();
    for entry in walk(&other_target) {
        if entry.extension().is_some_and(|e| e == "d") {
            let d = std::fs::read_to_string(&entry).unwrap();
            assert!(
                !d.contains(&first),
                "{} names {first}:\n{d}",
                entry.display()
            );
            assert!(!d.contains(&target.display().to_string()), "{d}");
        }
    }
    let binary = std::fs::read(other_target.join("debug/app")).unwrap();
    assert!(
        !contains(&binary, first.as_bytes()),
        "the binary embeds the first checkout's path"
    );
}

#[test]
fn pipelining_off_and_the_v1_placement_work_too() {
    let mut sandbox = Sandbox::new();
    let ws = workspace(&sandbox, "ws");
    let target = sandbox.dir.path().join("target");
    let no_pipelining = [("CARGO_BUILD_PIPELINING", "false")];
    let printed = cold_then_warm(&sandbox, &ws, &target, &no_pipelining);
    assert_eq!(
        clean_build(&sandbox, &ws, &target, &no_pipelining),
        (UNITS, 0)
    );

    // A v1 client: the server runs the same pipeline and shares the entries.
    sandbox.set_env("HOARD_PROTOCOL", "1");
    assert_eq!(
        clean_build(&sandbox, &ws, &target, &no_pipelining),
        (UNITS, 0)
    );
    assert_eq!(run_app(&target), printed);
    let stats = sandbox.stats();
    assert!(
        stats["requests_by_protocol"]["1"].as_u64().unwrap() >= UNITS,
        "{stats}"
    );
    let v1 = sandbox.dir.path().join("v1-target");
    let clone = workspace(&sandbox, "v1-clone");
    assert_eq!(clean_build(&sandbox, &clone, &v1, &[]), (UNITS, 0));
    assert_eq!(run_app(&v1), printed);
}

#[test]
fn a_failing_compile_fails_the_same_and_is_not_stored() {
    let sandbox = Sandbox::new();
    let ws = workspace(&sandbox, "ws");
    let target = sandbox.dir.path().join("target");
    std::fs::write(
        ws.join("crates/greeting/src/lib.rs"),
        "pub const GREETING: &str = 42;\n",
    )
    .unwrap();
    for _ in 0..2 {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--offline", "--quiet", "-p", "greeting"])
            .current_dir(&ws)
            .env("RUSTC_WRAPPER", HOARD)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_INCREMENTAL", "0")
            .env("HOARD_DIR", sandbox.cache_dir())
            .env("HOARD_SERVER_UDS", sandbox.socket())
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(stderr.contains("mismatched types"), "{stderr}");
        assert!(stderr.contains("crates/greeting/src/lib.rs"), "{stderr}");
    }
    let stats = sandbox.stats();
    assert_eq!(stats["cache_hits"], 0, "{stats}");
    assert_eq!(stats["cache_writes"], 0, "{stats}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn warnings_are_replayed_on_a_hit_with_this_builds_paths() {
    let sandbox = Sandbox::new();
    let ws = workspace(&sandbox, "ws");
    let lib = ws.join("crates/greeting/src/lib.rs");
    let mut source = std::fs::read_to_string(&lib).unwrap();
    source.push_str("\nfn unused_helper() {}\n");
    std::fs::write(&lib, source).unwrap();
    let target = sandbox.dir.path().join("target");
    let cold = cargo_build(&sandbox, &ws, &target, &[]);
    let cold = text(&cold.stderr);
    assert!(cold.contains("`unused_helper` is never used"), "{cold}");
    assert!(cold.contains("crates/greeting/src/lib.rs"), "{cold}");
    std::fs::remove_dir_all(&target).unwrap();
    sandbox.zero_stats();
    let warm = cargo_build(&sandbox, &ws, &target, &[]);
    assert_eq!(counts(&sandbox), (UNITS, 0));
    assert_eq!(text(&warm.stderr), cold, "the replayed warning differs");
}

#[test]
fn an_explicit_target_is_cached_too() {
    let sandbox = Sandbox::new();
    let host = Command::new("rustc").arg("-vV").output().unwrap();
    let host = text(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap();
    let ws = workspace(&sandbox, "ws");
    let target = sandbox.dir.path().join("target");
    let args = ["--target", host.as_str()];
    for round in 0..2 {
        let _ = std::fs::remove_dir_all(&target);
        sandbox.zero_stats();
        cargo(&sandbox, &ws, &target, &[], &args);
        let want = if round == 0 { (0, UNITS) } else { (UNITS, 0) };
        assert_eq!(counts(&sandbox), want, "round {round}");
        let out = Command::new(target.join(&host).join("debug/app"))
            .output()
            .unwrap();
        assert!(text(&out.stdout).contains("CACHED!"));
    }
    let clone = workspace(&sandbox, "clone");
    let _ = std::fs::remove_dir_all(&target);
    sandbox.zero_stats();
    cargo(&sandbox, &clone, &target, &[], &args);
    assert_eq!(counts(&sandbox), (UNITS, 0), "clone with --target");
}

#[test]
fn an_output_that_embeds_its_checkout_path_is_not_shared_with_a_clone() {
    let sandbox = Sandbox::new();
    let target = sandbox.dir.path().join("target");
    let mut printed = Vec::new();
    for name in ["first", "second"] {
        let ws = workspace(&sandbox, name);
        let main = ws.join("crates/app/src/main.rs");
        let source = std::fs::read_to_string(&main).unwrap().replace(
            "fn main() {",
            "fn main() {\n    println!(\"{}\", env!(\"CARGO_MANIFEST_DIR\"));",
        );
        std::fs::write(&main, source).unwrap();
        let (hits, misses) = clean_build(&sandbox, &ws, &target, &[]);
        let out = run_app(&target);
        let here = ws.join("crates/app").display().to_string();
        assert!(out.starts_with(&format!("{here}\n")), "{out}");
        printed.push(((hits, misses), out));
    }
    assert_eq!(printed[0].0, (0, UNITS));
    // Every other crate is shared; app embeds the path, so the clone compiles it.
    assert_eq!(printed[1].0, (UNITS - 1, 1));
}

#[test]
fn a_second_machine_builds_the_workspace_all_from_memcached_or_redis() {
    use crate::support::tiers::{Daemon, free_port};
    if !tools::installed(&["memcached", "redis-server"]) {
        return;
    }
    // Linked outputs (the bin, build scripts, proc-macros) exceed memcached's default 1 MiB
    // items: give it 16 MiB items and tell hoard so, as a team caching Rust would.
    let port = free_port();
    let port_arg = port.to_string();
    let memcached = Daemon::spawn(
        "memcached",
        &[
            "-l",
            "127.0.0.1",
            "-p",
            &port_arg,
            "-m",
            "128",
            "-I",
            "16m",
            "-u",
            "root",
        ],
        port,
    );
    let redis = Daemon::redis();
    for (var, endpoint) in [
        (
            "HOARD_MEMCACHED_ENDPOINT",
            format!("tcp://127.0.0.1:{}", memcached.port),
        ),
        (
            "HOARD_REDIS_ENDPOINT",
            format!("redis://127.0.0.1:{}", redis.port),
        ),
    ] {
        second_machine_builds_from(
            var,
            &[
                (var, endpoint.as_str()),
                ("HOARD_MEMCACHED_MAX_ENTRY", "16M"),
            ],
        );
    }
}

#[test]
fn a_second_machine_builds_the_workspace_all_from_azure_gcs_and_the_actions_cache() {
    use crate::cloud_tiers::{actions_cache, azure, gcs};
    for tier in [azure(), gcs(), actions_cache("job-token")] {
        let Some(tier) = tier else { return };
        second_machine_builds_from(tier.name, &tier.env());
    }
}

/// Machine A builds the workspace with `env` (a remote tier), then machine B, with an empty
/// disk, builds it all from the tier and its binary prints what A's printed.
fn second_machine_builds_from(what: &str, env: &[(&str, &str)]) {
    second_machine_builds_from_as(what, env, env);
}

/// [`second_machine_builds_from`], with machine A configured by `a_env` and machine B by
/// `b_env` (a writer that signs and a reader that verifies); returns B's statistics.
pub(crate) fn second_machine_builds_from_as(
    what: &str,
    a_env: &[(&str, &str)],
    b_env: &[(&str, &str)],
) -> serde_json::Value {
    let on_the_tier = |env: &[(&str, &str)]| {
        let mut sandbox = Sandbox::new();
        for (var, value) in env {
            sandbox.set_env(var, value);
        }
        sandbox
    };
    let a = on_the_tier(a_env);
    let ws = workspace(&a, "ws");
    let target = a.dir.path().join("target");
    assert_eq!(
        clean_build(&a, &ws, &target, &[]),
        (0, UNITS),
        "{what}: machine A"
    );
    let printed = run_app(&target);
    // Stopping A's server flushes its queued uploads.
    a.stop_server();

    let b = on_the_tier(b_env);
    let ws_b = workspace(&b, "ws");
    let target_b = b.dir.path().join("target");
    assert_eq!(
        clean_build(&b, &ws_b, &target_b, &[]),
        (UNITS, 0),
        "{what}: machine B, empty disk, all from the remote tier"
    );
    assert_eq!(run_app(&target_b), printed);
    b.stats()
}
