//! The TOML config file: every environment setting can live there, the environment wins, and
//! a bad key is an error naming the key and the file — which never breaks a compile.

mod common;

use common::{Sandbox, text};

fn compile_one(sandbox: &Sandbox, dir: &std::path::Path) {
    std::fs::write(dir.join("one.c"), "int one(void) { return 1; }\n").unwrap();
    let out = sandbox
        .hoard()
        .current_dir(dir)
        .args(["gcc", "-c", "one.c", "-o", "one.o"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
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
    assert!(a.hoard().arg("--stop-server").status().unwrap().success());

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
