//! The path policy for Rust, end to end with real cargo and rustc: a workspace whose binary
//! depends on a path dependency beside the workspace (so cargo runs rustc for it in the
//! dependency's own directory, with its source given by absolute path, as for a registry
//! crate). Under `HOARD_PATHS=exact` the binary prints the `file!()` and panic location a
//! plain `cargo build` prints and is byte-identical to it, and a second clone at another path
//! misses; by default (`shared`) hoard remaps those paths and the clone hits. The mode is set
//! from the environment or the config file, `--show-config` says which and from where, and a
//! value hoard does not know is named there and compiled as `exact`. The README's advice for
//! debugging remapped sources is checked with gdb.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Sandbox, counter, text};

/// rustc compiles in one build: the path dependency and the binary.
const UNITS: u64 = 2;

/// A workspace `root/ws` (package `app`, a binary) depending on `root/lib`, outside it; `lib`
/// reports its `file!()` and a `#[track_caller]` location (what a panic in it would name).
fn project(root: &Path) -> PathBuf {
    project_with(root, "lib")
}

/// [`project`] with the dependency at `root/<lib>` (`ws/lib`: inside the workspace).
fn project_with(root: &Path, lib: &str) -> PathBuf {
    let dep = lib
        .strip_prefix("ws/")
        .map_or_else(|| format!("../{lib}"), str::to_owned);
    let manifest = format!(
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nlib = {{ path = \"{dep}\" }}\n"
    );
    let lib_manifest = format!("{lib}/Cargo.toml");
    let lib_source = format!("{lib}/src/lib.rs");
    let files = [
        ("ws/Cargo.toml", manifest.as_str()),
        (
            "ws/src/main.rs",
            "fn main() {\n    println!(\"file: {}\", lib::here());\n    \
             println!(\"caller: {}\", lib::caller());\n}\n",
        ),
        (
            lib_manifest.as_str(),
            "[package]\nname = \"lib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        (
            lib_source.as_str(),
            "pub fn here() -> &'static str {\n    file!()\n}\n\n#[track_caller]\n\
             fn located() -> String {\n    std::panic::Location::caller().to_string()\n}\n\n\
             pub fn caller() -> String {\n    located()\n}\n",
        ),
    ];
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    root.join("ws")
}

/// `cargo build` of `ws` into a fresh `target`, through hoard unless `hoard` is false, with
/// `env` on top; returns what the binary prints.
fn build(sandbox: &Sandbox, ws: &Path, target: &Path, hoard: bool, env: &[(&str, &str)]) -> String {
    let _ = std::fs::remove_dir_all(target);
    let mut cmd = crate::support::cargo::cargo_build(sandbox, ws, target, hoard);
    cmd.envs(env.iter().copied());
    crate::support::cargo::succeeded(&mut cmd, sandbox);
    let run = Command::new(target.join("debug/app")).output().unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    text(&run.stdout)
}

/// `(hits, misses)` since the last zeroing, which is then zeroed again; nothing fell back.
fn counts(sandbox: &Sandbox) -> (u64, u64) {
    let stats = sandbox.stats();
    assert_eq!(counter(&stats, "local_fallbacks"), 0, "{stats}");
    assert_eq!(counter(&stats, "cache_errors"), 0, "{stats}");
    sandbox.zero_stats();
    (
        counter(&stats, "cache_hits"),
        counter(&stats, "cache_misses"),
    )
}

/// The binary a build left in `target`.
fn binary(target: &Path) -> Vec<u8> {
    std::fs::read(target.join("debug/app")).unwrap()
}

#[test]
fn exact_mode_builds_what_a_plain_build_does_and_shared_remaps() {
    let sandbox = Sandbox::new();
    let ws = project(&sandbox.dir.path().join("one"));
    let lib = sandbox.dir.path().join("one/lib/src/lib.rs");
    let target = sandbox.dir.path().join("target");
    let plain = build(&sandbox, &ws, &target, false, &[]);
    assert_eq!(
        plain,
        format!("file: {0}\ncaller: {0}:11:5\n", lib.display())
    );
    let plain_binary = binary(&target);
    sandbox.zero_stats();

    let exact = [("HOARD_PATHS", "exact")];
    for (round, want) in [(0, (0, UNITS)), (1, (UNITS, 0))] {
        assert_eq!(
            build(&sandbox, &ws, &target, true, &exact),
            plain,
            "round {round}"
        );
        assert_eq!(counts(&sandbox), want, "exact, round {round}");
        assert!(
            binary(&target) == plain_binary,
            "exact, round {round}: the binary differs from a plain build's"
        );
    }

    // The default remaps the dependency's directory to its name (and keys apart from exact).
    let shared = build(&sandbox, &ws, &target, true, &[]);
    assert_eq!(
        shared,
        "file: lib/src/lib.rs\ncaller: lib/src/lib.rs:11:5\n"
    );
    assert_eq!(counts(&sandbox), (0, UNITS), "shared after exact");
    assert!(binary(&target) != plain_binary);
}

#[test]
fn exact_mode_misses_in_a_clone_at_another_path_where_shared_hits() {
    // The dependency inside the workspace: cargo keys one outside it by its absolute path
    // itself (`-C metadata`), so no clone of such a layout shares it in any mode.
    let sandbox = Sandbox::new();
    let first = project_with(&sandbox.dir.path().join("first"), "ws/lib");
    let second = project_with(&sandbox.dir.path().join("second/elsewhere"), "ws/lib");
    let (target_one, target_two) = (first.join("target"), second.join("target"));
    let exact = [("HOARD_PATHS", "exact")];
    let plain = build(&sandbox, &second, &target_two, false, &[]);
    sandbox.zero_stats();
    for (env, mode, clone) in [
        (&exact[..], "exact", (0, UNITS)),
        (&[][..], "shared", (UNITS, 0)),
    ] {
        build(&sandbox, &first, &target_one, true, env);
        assert_eq!(counts(&sandbox), (0, UNITS), "{mode}: first checkout");
        assert_eq!(
            build(&sandbox, &second, &target_two, true, env),
            plain,
            "{mode}"
        );
        assert_eq!(counts(&sandbox), clone, "{mode}: the clone");
    }
    assert_eq!(plain, "file: lib/src/lib.rs\ncaller: lib/src/lib.rs:11:5\n");
}

/// `hoard --show-config --json` with `env`; its exit status and report.
fn show_config(sandbox: &Sandbox, env: &[(&str, &str)]) -> (bool, serde_json::Value, String) {
    let out = sandbox
        .hoard()
        .args(["--show-config", "--json"])
        .env_remove("HOARD_PATHS")
        .env_remove("HOARD_BASEDIRS")
        .env("XDG_CONFIG_HOME", sandbox.dir.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.success(), report, text(&out.stderr))
}

#[test]
fn the_mode_comes_from_the_environment_or_the_config_file_and_show_config_says_which() {
    let sandbox = Sandbox::new();
    let (ok, report, _) = show_config(&sandbox, &[]);
    assert!(ok);
    assert_eq!(report["HOARD_PATHS"]["value"], "shared", "{report}");
    assert_eq!(report["HOARD_PATHS"]["from"], "default");
    assert!(
        report["HOARD_PATHS"]["note"]
            .as_str()
            .unwrap()
            .contains("--remap-path-prefix")
    );
    assert_eq!(report["HOARD_BASEDIRS"]["from"], "default");
    let (_, report, _) = show_config(
        &sandbox,
        &[("HOARD_PATHS", "exact"), ("HOARD_BASEDIRS", "/a:/b")],
    );
    assert_eq!(report["HOARD_PATHS"]["value"], "exact");
    assert_eq!(report["HOARD_PATHS"]["from"], "environment");
    assert_eq!(report["HOARD_BASEDIRS"]["value"], "/a:/b");

    let config = sandbox.dir.path().join("hoard.toml");
    std::fs::write(
        &config,
        "paths = \"exact\"\nbasedirs = [\"/src\", \"/build\"]\n",
    )
    .unwrap();
    let file = config.display().to_string();
    let (ok, report, _) = show_config(&sandbox, &[("HOARD_CONFIG", &file)]);
    assert!(ok);
    assert_eq!(report["HOARD_PATHS"]["value"], "exact", "{report}");
    assert_eq!(report["HOARD_PATHS"]["from"]["file"], file.as_str());
    assert_eq!(report["HOARD_PATHS"]["from"]["key"], "paths");
    assert_eq!(report["HOARD_BASEDIRS"]["value"], "/src:/build");
    let table = sandbox
        .hoard()
        .arg("--show-config")
        .env_remove("HOARD_PATHS")
        .env("HOARD_CONFIG", &file)
        .output()
        .unwrap();
    let table = text(&table.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("HOARD_PATHS"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("exact") && line.contains(&file) && line.contains("paths"),
        "{line}"
    );

    // The file's mode reaches the compile: the build prints what a plain one does.
    let ws = project(&sandbox.dir.path().join("p"));
    let target = sandbox.dir.path().join("target");
    let plain = build(&sandbox, &ws, &target, false, &[]);
    assert_eq!(
        build(&sandbox, &ws, &target, true, &[("HOARD_CONFIG", &file)]),
        plain
    );
    // A v1 client sends the command with the file's value in its environment; the server
    // decides as the client would.
    let v1 = [("HOARD_CONFIG", file.as_str()), ("HOARD_PROTOCOL", "1")];
    sandbox.zero_stats();
    assert_eq!(build(&sandbox, &ws, &target, true, &v1), plain);
    let stats = sandbox.stats();
    assert!(
        counter(&stats["requests_by_protocol"], "1") >= UNITS,
        "{stats}"
    );
    // The environment wins over the file.
    let shared = build(
        &sandbox,
        &ws,
        &target,
        true,
        &[("HOARD_CONFIG", &file), ("HOARD_PATHS", "shared")],
    );
    assert!(shared.starts_with("file: lib/src/lib.rs\n"), "{shared}");
}

#[test]
fn an_unknown_mode_is_named_by_show_config_and_compiles_as_exact() {
    let sandbox = Sandbox::new();
    let (ok, report, stderr) = show_config(&sandbox, &[("HOARD_PATHS", "relative")]);
    assert!(!ok, "--show-config accepted HOARD_PATHS=relative");
    assert!(
        stderr.contains("HOARD_PATHS=\"relative\"") && stderr.contains("exact"),
        "{stderr}"
    );
    assert_eq!(report["HOARD_PATHS"]["value"], "relative", "{report}");
    let error = report["HOARD_PATHS"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(error.contains("\"relative\""), "{error}");

    let ws = project(&sandbox.dir.path().join("p"));
    let target = sandbox.dir.path().join("target");
    let plain = build(&sandbox, &ws, &target, false, &[]);
    sandbox.zero_stats();
    assert_eq!(
        build(&sandbox, &ws, &target, true, &[("HOARD_PATHS", "relative")]),
        plain
    );
    assert_eq!(counts(&sandbox), (0, UNITS));
}

/// gdb's `info source` at a breakpoint in `function` of the binary in `target`, run in `cwd`
/// with `setup` (gdb commands) first.
fn gdb_source(cwd: &Path, target: &Path, setup: &[String], function: &str) -> String {
    let mut cmd = Command::new("gdb");
    cmd.args(["-q", "-batch", "-nx"]).current_dir(cwd);
    for line in setup {
        cmd.args(["-ex", line]);
    }
    cmd.args([
        "-ex",
        &format!("break {function}"),
        "-ex",
        "run",
        "-ex",
        "info source",
    ])
    .arg(target.join("debug/app"));
    text(&cmd.output().unwrap().stdout)
}

#[test]
fn a_debugger_finds_remapped_sources_as_the_readme_says() {
    if !crate::support::tools::installed(&["gdb"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let root = sandbox.dir.path().join("one");
    let ws = project(&root);
    let target = ws.join("target");
    build(&sandbox, &ws, &target, true, &[]);
    // A member, from the workspace root: its compilation directory is `.`.
    let member = gdb_source(&ws, &target, &[], "app::main");
    let main = ws.join("src/main.rs");
    assert!(
        member.contains(&format!("Located in {}", main.display())),
        "{member}"
    );
    // A package outside the workspace is `lib/...`: found once gdb is told where `lib` is.
    let lost = gdb_source(&ws, &target, &[], "lib::here");
    assert!(
        lost.contains("Compilation directory is lib") && !lost.contains("Located in"),
        "{lost}"
    );
    let lib = root.join("lib/src/lib.rs");
    for setup in [
        format!("directory {}", root.display()),
        format!("set substitute-path lib {}", root.join("lib").display()),
    ] {
        let found = gdb_source(&ws, &target, std::slice::from_ref(&setup), "lib::here");
        assert!(
            found.contains(&format!("Located in {}", lib.display())),
            "{setup}: {found}"
        );
    }
}
