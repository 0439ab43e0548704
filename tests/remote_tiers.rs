//! Shared caches end to end: two "machines" (two `HOARD_DIR`s, two servers) share one real
//! memcached, then one real redis, started by the test. Machine B, with an empty local disk,
//! builds a real C tree all from the remote tier, and those entries are backfilled into its
//! local tier. memcached dying mid-build costs nothing but counted faults; a read-only tier is
//! never written.

mod common;
#[path = "../crates/storage/tests/tiers_support/mod.rs"]
mod tiers_support;

use common::{Sandbox, build, clean, lua_sources, snapshot, text};
use tiers_support::{Daemon, memcached_items, redis_keys};

const FLAGS: &[&str] = &["-O0", "-g"];

fn all_ok(outputs: &[std::process::Output], what: &str) {
    for out in outputs {
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    }
}

fn tier<'a>(stats: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    stats["tiers"]
        .as_array()
        .and_then(|tiers| tiers.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no tier {name} in {stats}"))
}

fn machine(var: &str, endpoint: &str) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.set_env(var, endpoint);
    sandbox
}

fn two_machines_share_a_tree(var: &str, endpoint: &str, tier_name: &str) {
    let sources = common::c_files(&lua_sources());
    let a = machine(var, endpoint);
    let out = a.dir.path().join("out");
    all_ok(&build(None, "gcc", &sources, &out, FLAGS, 2), "plain build");
    let expected = snapshot(&out);

    clean(&out);
    all_ok(
        &build(Some(&a), "gcc", &sources, &out, FLAGS, 2),
        "machine A",
    );
    // Stopping A's server flushes its queued remote writes.
    assert!(a.hoard().arg("--stop-server").status().unwrap().success());

    let b = machine(var, endpoint);
    clean(&out);
    all_ok(
        &build(Some(&b), "gcc", &sources, &out, FLAGS, 2),
        "machine B",
    );
    assert_eq!(
        snapshot(&out),
        expected,
        "B's outputs differ from plain gcc"
    );
    let stats = b.stats();
    assert_eq!(stats["cache_hits"], sources.len(), "{stats}");
    assert!(
        tier(&stats, tier_name)["hits"].as_u64().unwrap() >= sources.len() as u64,
        "B's hits came from {tier_name}: {stats}"
    );

    // Backfilled: B alone, with no remote tier, still hits everything from its local disk.
    assert!(b.hoard().arg("--stop-server").status().unwrap().success());
    let mut alone = b;
    alone.env.clear();
    alone.zero_stats();
    clean(&out);
    all_ok(
        &build(Some(&alone), "gcc", &sources, &out, FLAGS, 2),
        "B alone",
    );
    let stats = alone.stats();
    assert_eq!(
        stats["cache_hits"],
        sources.len(),
        "backfilled into B's disk: {stats}"
    );
    assert_eq!(snapshot(&out), expected);
}

#[test]
fn a_second_machine_gets_every_hit_from_memcached_and_keeps_them_locally() {
    let memcached = Daemon::memcached();
    let endpoint = format!("tcp://127.0.0.1:{}", memcached.port);
    two_machines_share_a_tree("HOARD_MEMCACHED_ENDPOINT", &endpoint, "memcached");
}

#[test]
fn a_second_machine_gets_every_hit_from_redis_and_keeps_them_locally() {
    let redis = Daemon::redis();
    let endpoint = format!("redis://127.0.0.1:{}", redis.port);
    two_machines_share_a_tree("HOARD_REDIS_ENDPOINT", &endpoint, "redis");
}

#[test]
fn memcached_dying_mid_build_leaves_a_correct_build_and_counted_faults() {
    let sources = common::c_files(&lua_sources());
    let mut memcached = Daemon::memcached();
    let sandbox = machine(
        "HOARD_MEMCACHED_ENDPOINT",
        &format!("tcp://127.0.0.1:{}", memcached.port),
    );
    let out = sandbox.dir.path().join("out");
    let flags = ["-O2", "-g"];
    all_ok(
        &build(None, "gcc", &sources, &out, &flags, 2),
        "plain build",
    );
    let expected = snapshot(&out);
    clean(&out);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(700));
            memcached.kill();
        });
        all_ok(
            &build(Some(&sandbox), "gcc", &sources, &out, &flags, 2),
            "build",
        );
    });
    assert_eq!(
        snapshot(&out),
        expected,
        "outputs differ after memcached died"
    );
    // A lookup after the kill meets the dead tier.
    clean(&out);
    all_ok(
        &build(Some(&sandbox), "gcc", &sources, &out, &flags, 2),
        "warm build",
    );
    assert_eq!(snapshot(&out), expected);
    let stats = sandbox.stats();
    let m = tier(&stats, "memcached");
    assert!(
        m["errors"].as_u64().unwrap() + m["timeouts"].as_u64().unwrap() > 0,
        "faults counted: {stats}"
    );
    assert_eq!(
        stats["local_fallbacks"], 0,
        "the local tier kept serving: {stats}"
    );
}

#[test]
fn a_read_only_tier_is_never_written() {
    let sources = &common::c_files(&lua_sources())[..6];
    let memcached = Daemon::memcached();
    let redis = Daemon::redis();
    let mut sandbox = machine(
        "HOARD_MEMCACHED_ENDPOINT",
        &format!("tcp://127.0.0.1:{}", memcached.port),
    );
    sandbox.set_env(
        "HOARD_REDIS_ENDPOINT",
        &format!("redis://127.0.0.1:{}", redis.port),
    );
    sandbox.set_env("HOARD_READ_ONLY_TIERS", "redis");
    let out = sandbox.dir.path().join("out");
    all_ok(
        &build(Some(&sandbox), "gcc", sources, &out, FLAGS, 2),
        "build",
    );
    assert!(
        sandbox
            .hoard()
            .arg("--stop-server")
            .status()
            .unwrap()
            .success()
    );
    assert!(
        memcached_items(memcached.port) > 0,
        "the writable tier was written"
    );
    assert_eq!(redis_keys(redis.port), 0, "the read-only tier was written");
}
