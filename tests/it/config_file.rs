//! The TOML config file: every environment setting can live there, the environment wins, and
//! a bad key is an error naming the key and the file — which never breaks a compile.

use crate::support::{Sandbox, compile_c, text};

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
