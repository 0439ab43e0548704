//! The TOML config file: every environment setting can live there, the environment wins, and
//! a bad key is an error naming the key and the file — which never breaks a compile. A
//! wrapper tells a configuration mistake, or a setting set in vain, in one line on stderr,
//! once per build.

use std::path::Path;
use std::process::Output;

use crate::support::{Sandbox, compile_c, gcc_c, text};

/// `hoard gcc -c one.c` of a small file written in `dir`, which must build.
fn compile_one(sandbox: &Sandbox, dir: &std::path::Path) {
    std::fs::write(dir.join("one.c"), "int one(void) { return 1; }\n").unwrap();
    compile_c(sandbox.hoard(), dir, "one");
}

#[test]
fn a_tier_configured_in_the_file_is_shared_by_two_machines() {
    let shared = tempfile::tempdir().unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!("shared_dir = {:?}\ncache_size = \"1G\"\n", shared.path()),
    )
    .unwrap();
    let mut a = Sandbox::new();
    a.set_env("HOARD_CONFIG", &config.path().display().to_string());
    compile_one(&a, a.dir.path());
    a.stop_server();

    let mut b = Sandbox::new();
    b.set_env("HOARD_CONFIG", &config.path().display().to_string());
    compile_one(&b, a.dir.path());
    let stats = b.stats();
    assert_eq!(stats["cache_hits"], 1, "{stats}");
    assert_eq!(
        stats["cache_max_bytes"],
        1 << 30,
        "cache_size from the file: {stats}"
    );
    let tier = stats["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "shared_dir")
        .unwrap_or_else(|| panic!("no shared_dir tier: {stats}"));
    assert!(tier["hits"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn the_environment_wins_over_the_file() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "cache_size = \"1G\"\n").unwrap();
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_CONFIG", &config.path().display().to_string());
    sandbox.set_env("HOARD_CACHE_SIZE", "2G");
    assert_eq!(sandbox.stats()["cache_max_bytes"], 2u64 << 30);
}

#[test]
fn an_unknown_key_names_the_key_and_the_file_and_compiles_still_work() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "cache_sise = \"1G\"\n").unwrap();
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_CONFIG", &config.path().display().to_string());
    let out = sandbox
        .hoard()
        .args(["--show-stats", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = text(&out.stderr);
    assert!(
        message.contains("cache_sise") && message.contains(&config.path().display().to_string()),
        "{message}"
    );
    compile_one(&sandbox, sandbox.dir.path());
    assert!(
        sandbox.dir.path().join("one.o").exists(),
        "the compile ran without the cache"
    );
}

fn show_config(sandbox: &Sandbox) -> serde_json::Value {
    let out = sandbox
        .hoard()
        .args(["--show-config", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn show_config_says_where_each_value_came_from() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "cache_size = \"3G\"\nidle_timeout = 30\n").unwrap();
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_CONFIG", &config.path().display().to_string());
    sandbox.set_env("HOARD_IDLE_TIMEOUT", "45");
    let report = show_config(&sandbox);
    let file = config.path().display().to_string();
    assert_eq!(report["HOARD_CACHE_SIZE"]["value"], "3G", "{report}");
    assert_eq!(report["HOARD_CACHE_SIZE"]["from"]["file"], file.as_str());
    assert_eq!(report["HOARD_CACHE_SIZE"]["from"]["key"], "cache_size");
    // Set in both: the environment wins, and says so.
    assert_eq!(report["HOARD_IDLE_TIMEOUT"]["value"], "45");
    assert_eq!(report["HOARD_IDLE_TIMEOUT"]["from"], "environment");
    assert_eq!(report["HOARD_DIRECT_MODE"]["value"], "on");
    assert_eq!(report["HOARD_DIRECT_MODE"]["from"], "default");
    assert_eq!(report["HOARD_CONFIG"]["value"], file.as_str());

    let table = sandbox.hoard().arg("--show-config").output().unwrap();
    let table = text(&table.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("HOARD_CACHE_SIZE"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("3G") && line.contains(&file) && line.contains("cache_size"),
        "{line}"
    );
}

#[test]
fn show_config_never_prints_the_token() {
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_SERVER_TOKEN", "sekrit-token-value");
    let out = sandbox.hoard().arg("--show-config").output().unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success());
    assert!(shown.contains("HOARD_SERVER_TOKEN"), "{shown}");
    assert!(!shown.contains("sekrit-token-value"), "{shown}");
}

#[test]
fn a_malformed_value_in_the_file_names_the_key_the_file_and_the_value() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "cache_size = \"12 parsecs\"\n").unwrap();
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_CONFIG", &config.path().display().to_string());
    let out = sandbox.hoard().arg("--show-config").output().unwrap();
    assert!(!out.status.success());
    let message = text(&out.stderr);
    for needle in [
        "cache_size",
        "12 parsecs",
        &config.path().display().to_string(),
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    compile_one(&sandbox, sandbox.dir.path());
    assert!(sandbox.dir.path().join("one.o").exists());
}

/// The entry format versions in the store once it holds `count` entries. The server answers
/// a `CachePut` before it writes the entry (the build is not kept waiting for the packing), so
/// a loaded machine can show the store a moment before the put lands: wait for it, bounded.
fn stored_entry_versions(sandbox: &Sandbox, count: usize) -> Vec<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let versions = entry_versions(sandbox);
        if versions.len() >= count || std::time::Instant::now() > deadline {
            return versions;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The entry format versions found in a cache directory's store.
fn entry_versions(sandbox: &Sandbox) -> Vec<u32> {
    let mut versions = Vec::new();
    let store = sandbox.cache_dir().join("cache");
    for shard in std::fs::read_dir(store).unwrap().flatten() {
        if !shard.path().is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            if bytes.starts_with(b"HOARDENT") {
                versions.push(u32::from_le_bytes(bytes[8..12].try_into().unwrap()));
            }
        }
    }
    versions.sort_unstable();
    versions
}

#[test]
fn local_entries_are_raw_by_default_and_compressed_when_asked() {
    let raw = Sandbox::new();
    compile_one(&raw, raw.dir.path());
    // The object's entry is raw (2); the direct-mode manifest stays compressed (1).
    assert_eq!(stored_entry_versions(&raw, 2), [1, 2]);

    let mut compressed = Sandbox::new();
    compressed.set_env("HOARD_LOCAL_COMPRESSION", "on");
    compile_one(&compressed, compressed.dir.path());
    assert_eq!(stored_entry_versions(&compressed, 2), [1, 1]);
    std::fs::remove_file(compressed.dir.path().join("one.o")).unwrap();
    compile_one(&compressed, compressed.dir.path());
    assert_eq!(compressed.stats()["cache_hits"], 1);
}

/// A sandbox whose config file holds `toml`, and the file's path as messages name it.
fn with_config(toml: &str) -> (Sandbox, String) {
    let mut sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("config.toml");
    std::fs::write(&file, toml).unwrap();
    let file = file.display().to_string();
    sandbox.set_env("HOARD_CONFIG", &file);
    (sandbox, file)
}

/// Writes a small C file `<name>.c` into `dir`.
fn write_source(dir: &Path, name: &str) {
    std::fs::write(
        dir.join(format!("{name}.c")),
        format!("int {name}(void) {{ return 7; }}\n"),
    )
    .unwrap();
}

/// `hoard gcc -c <name>.c -o <name>.o` in the sandbox's directory, of a small file written
/// there; it must succeed.
fn wrapped_compile(sandbox: &Sandbox, name: &str) -> Output {
    let dir = sandbox.dir.path();
    write_source(dir, name);
    let out = sandbox
        .hoard()
        .current_dir(dir)
        .args(gcc_c(name))
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    out
}

/// The object plain gcc makes of `<name>.c` (written as [`wrapped_compile`] writes it) in
/// `dir`.
fn plain_object(dir: &Path, name: &str) -> Vec<u8> {
    write_source(dir, name);
    let out = std::process::Command::new("gcc")
        .current_dir(dir)
        .args(&gcc_c(name)[1..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let object = dir.join(format!("{name}.o"));
    let bytes = std::fs::read(&object).unwrap();
    std::fs::remove_file(object).unwrap();
    bytes
}

/// The lines hoard wrote on a compile's stderr (gcc writes none for these sources).
fn hoard_lines(out: &Output) -> Vec<String> {
    text(&out.stderr).lines().map(str::to_owned).collect()
}

/// Asserts that the compile ran without the cache: no server was started, nothing stored.
fn assert_uncached(sandbox: &Sandbox) {
    assert!(!sandbox.socket().exists(), "a server was started");
    assert!(
        !sandbox.cache_dir().join("cache").exists(),
        "the local store was written"
    );
}

#[test]
fn each_config_mistake_is_one_line_naming_its_place_and_the_compile_runs_uncached() {
    let cases = [
        (
            "cache_size = \"1G\"\nidle_timeout = \n",
            "2:16: not valid TOML",
        ),
        (
            "# sizes\ncache_size = \"12 parsecs\"\n",
            "2:14: cache_size = \"12 parsecs\": unknown unit \"parsecs\"",
        ),
        (
            "direct_mode = true\ncache_szie = \"1G\"\n",
            "2:1: unknown key \"cache_szie\"; did you mean \"cache_size\"?",
        ),
    ];
    for (toml, says) in cases {
        let (sandbox, file) = with_config(toml);
        let plain = plain_object(sandbox.dir.path(), "one");
        let out = wrapped_compile(&sandbox, "one");
        let lines = hoard_lines(&out);
        assert_eq!(lines.len(), 1, "{toml:?}: {lines:?}");
        let expected = format!("hoard: {file}:{says}");
        assert!(lines[0].starts_with(&expected), "{expected}\n{}", lines[0]);
        assert!(
            lines[0].ends_with(
                "; compiling without the cache (fix the file, or see hoard --show-config)"
            ),
            "{}",
            lines[0]
        );
        assert_eq!(
            std::fs::read(sandbox.dir.path().join("one.o")).unwrap(),
            plain,
            "{toml:?}: the object is plain gcc's"
        );
        assert_uncached(&sandbox);
        assert!(
            sandbox.log().contains("configuration error"),
            "logged too: {}",
            sandbox.log()
        );

        // The same build's next compile says nothing more.
        let again = wrapped_compile(&sandbox, "two");
        assert!(again.stderr.is_empty(), "{}", text(&again.stderr));
        assert!(sandbox.dir.path().join("two.o").exists());
    }
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_IDLE_TIMEOUT", "10 parsecs");
    let plain = plain_object(sandbox.dir.path(), "one");
    let lines = hoard_lines(&wrapped_compile(&sandbox, "one"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("hoard: HOARD_IDLE_TIMEOUT=\"10 parsecs\": ")
            && lines[0].contains("1h30m")
            && lines[0].ends_with("(fix the setting, or see hoard --show-config)"),
        "{}",
        lines[0]
    );
    assert_eq!(
        std::fs::read(sandbox.dir.path().join("one.o")).unwrap(),
        plain
    );
    assert_uncached(&sandbox);
}

#[test]
fn a_changed_mistake_or_a_new_build_is_told_again() {
    let (sandbox, file) = with_config("cache_szie = \"1G\"\n");
    assert_eq!(hoard_lines(&wrapped_compile(&sandbox, "one")).len(), 1);
    assert!(wrapped_compile(&sandbox, "one").stderr.is_empty());

    // The user edits the file and makes another mistake: told at once.
    std::fs::write(&file, "cache_size = \"1G\"\ndirect_mod = true\n").unwrap();
    let lines = hoard_lines(&wrapped_compile(&sandbox, "one"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(":2:1: unknown key \"direct_mod\""),
        "{lines:?}"
    );

    // The marker says the last compile was long ago: a new build, told again.
    let marker = sandbox.cache_dir().join(hoard::config_notice::MARKER);
    let recorded = std::fs::read_to_string(&marker).unwrap();
    let (digest, _) = recorded.split_once(' ').unwrap();
    std::fs::write(&marker, format!("{digest} 1000\n")).unwrap();
    assert_eq!(hoard_lines(&wrapped_compile(&sandbox, "one")).len(), 1);
    assert!(wrapped_compile(&sandbox, "one").stderr.is_empty());
}

#[test]
fn of_parallel_wrappers_exactly_one_tells_the_mistake() {
    let (sandbox, file) = with_config("cache_szie = \"1G\"\n");
    let names: Vec<String> = (0..8).map(|i| format!("unit{i}")).collect();
    for name in &names {
        write_source(sandbox.dir.path(), name);
    }
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            sandbox
                .hoard()
                .current_dir(sandbox.dir.path())
                .args(gcc_c(name))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut told = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        told.extend(hoard_lines(&out));
    }
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains(&file), "{told:?}");
    for name in &names {
        assert!(
            sandbox.dir.path().join(format!("{name}.o")).exists(),
            "{name}"
        );
    }
}

#[test]
fn a_setting_set_in_vain_is_a_warning_and_the_compile_is_cached() {
    let (mut sandbox, file) = with_config("s3_region = \"eu-west-1\"\n");
    sandbox.set_env("HOARD_MEMCACHED_MAX_ENTRY", "16M");
    let lines = hoard_lines(&wrapped_compile(&sandbox, "one"));
    assert_eq!(
        lines,
        [
            format!(
                "hoard: warning: {file}:1:13: s3_region is set but has no effect without \
                 s3_bucket"
            ),
            "hoard: warning: HOARD_MEMCACHED_MAX_ENTRY is set but has no effect without \
             HOARD_MEMCACHED_ENDPOINT"
                .to_owned(),
        ]
    );
    assert!(wrapped_compile(&sandbox, "two").stderr.is_empty());
    assert_eq!(sandbox.stats()["cache_misses"], 2, "the cache is in use");

    let report = show_config(&sandbox);
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["setting"].as_str().unwrap())
        .collect();
    assert_eq!(warnings, ["HOARD_S3_REGION", "HOARD_MEMCACHED_MAX_ENTRY"]);
    let table = text(
        &sandbox
            .hoard()
            .arg("--show-config")
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        table.contains("warning: HOARD_MEMCACHED_MAX_ENTRY is set but has no effect"),
        "{table}"
    );
}

#[test]
fn sizes_take_decimals_and_units_and_timeouts_take_durations() {
    let (mut sandbox, _) = with_config("cache_size = \"1.5G\"\nidle_timeout = \"10m\"\n");
    sandbox.set_env("HOARD_CLIENT_TIMEOUT", "1m30s");
    wrapped_compile(&sandbox, "one");
    let stats = sandbox.stats();
    assert_eq!(stats["cache_max_bytes"], 3u64 << 29, "{stats}");
    assert_eq!(stats["cache_misses"], 1, "{stats}");

    sandbox.stop_server();
    sandbox.set_env("HOARD_CACHE_SIZE", "2 GB");
    assert_eq!(sandbox.stats()["cache_max_bytes"], 2_000_000_000u64);
}
