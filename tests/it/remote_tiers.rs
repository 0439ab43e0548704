//! Shared caches end to end: two "machines" (two `HOARD_DIR`s, two servers) share one real
//! memcached, then one real redis, started by the test. Machine B, with an empty local disk,
//! builds a real C tree all from the remote tier, and those entries are backfilled into its
//! local tier. memcached dying mid-build costs nothing but counted faults; a read-only tier is
//! never written.

use crate::support::tiers::{Daemon, memcached_items, redis_keys};
use crate::support::{
    Sandbox, assert_all_succeeded, build, c_files, lua_sources, plain_build, tier, tools,
};

const FLAGS: &[&str] = &["-O0", "-g"];

fn machine(var: &str, endpoint: &str) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.set_env(var, endpoint);
    sandbox
}

/// Machine A builds the tree into the tier; machine B, with an empty disk, builds it all
/// from the tier, and a third build with no tier at all hits B's own disk. With `prefetch`,
/// B first compiles one file, whose hit reads ahead everything else A stored, and then
/// builds the rest from its own disk; without it, every hit is a lookup in the tier.
pub(crate) fn two_machines_share_a_tree(env: &[(&str, &str)], tier_name: &str, prefetch: bool) {
    two_machines_share_a_tree_as(env, env, tier_name, prefetch);
}

/// [`two_machines_share_a_tree`], with machine A configured by `a_env` and machine B by
/// `b_env` (a writer that signs and a reader that verifies).
pub(crate) fn two_machines_share_a_tree_as(
    a_env: &[(&str, &str)],
    b_env: &[(&str, &str)],
    tier_name: &str,
    prefetch: bool,
) {
    let sources = c_files(&lua_sources());
    let on_the_tier = |env: &[(&str, &str)]| {
        let mut sandbox = Sandbox::new();
        for (var, value) in env {
            sandbox.set_env(var, value);
        }
        sandbox
    };
    let a = on_the_tier(a_env);
    let out = a.dir.path().join("out");
    let plain = plain_build("gcc", &sources, &out, FLAGS, &a);

    assert_all_succeeded(
        &build(Some(&a), "gcc", &sources, &out, FLAGS, 2),
        "machine A",
        &a,
    );
    // Stopping A's server flushes its queued remote writes (and its prefetch index).
    a.stop_server();

    let mut b = on_the_tier(b_env);
    if prefetch {
        assert_all_succeeded(
            &build(Some(&b), "gcc", &sources[..1], &out, FLAGS, 1),
            "machine B's first file",
            &b,
        );
        // The manifest and the result of every other file.
        let others = 2 * (sources.len() as u64 - 1);
        let stats = b.wait_for_stats("prefetched entries", |stats| {
            tier(stats, tier_name)["prefetched"].as_u64() >= Some(others)
        });
        assert_eq!(
            tier(&stats, tier_name)["hits"],
            2,
            "one file's lookups: {stats}"
        );
    } else {
        b.set_env("HOARD_PREFETCH", "off");
    }
    plain.again_through(&b, "machine B");
    let stats = b.stats();
    assert_eq!(
        stats["cache_hits"],
        sources.len() as u64 + u64::from(prefetch),
        "{stats}"
    );
    let from_tier = tier(&stats, tier_name);
    if prefetch {
        assert_eq!(
            from_tier["hits"], 2,
            "the rest came from B's own disk: {stats}"
        );
    } else {
        assert!(
            from_tier["hits"].as_u64().unwrap() >= sources.len() as u64,
            "B's hits came from {tier_name}: {stats}"
        );
        assert_eq!(from_tier["prefetched"], 0, "{stats}");
    }

    // Backfilled: B alone, with no remote tier, still hits everything from its local disk.
    b.stop_server();
    let mut alone = b;
    alone.env.clear();
    alone.zero_stats();
    plain.again_through(&alone, "B alone");
    let stats = alone.stats();
    assert_eq!(
        stats["cache_hits"],
        sources.len(),
        "backfilled into B's disk: {stats}"
    );
}

#[test]
fn a_second_machine_prefetches_from_memcached_after_one_hit_and_builds_from_its_own_disk() {
    if !tools::installed(&["memcached"]) {
        return;
    }
    let memcached = Daemon::memcached();
    let endpoint = format!("tcp://127.0.0.1:{}", memcached.port);
    two_machines_share_a_tree(
        &[("HOARD_MEMCACHED_ENDPOINT", &endpoint)],
        "memcached",
        true,
    );
}

#[test]
fn a_second_machine_without_prefetch_gets_every_hit_from_redis_and_keeps_them_locally() {
    if !tools::installed(&["redis-server"]) {
        return;
    }
    let redis = Daemon::redis();
    let endpoint = format!("redis://127.0.0.1:{}", redis.port);
    two_machines_share_a_tree(&[("HOARD_REDIS_ENDPOINT", &endpoint)], "redis", false);
}

#[test]
fn memcached_dying_mid_build_leaves_a_correct_build_and_counted_faults() {
    if !tools::installed(&["memcached"]) {
        return;
    }
    let mut memcached = Daemon::memcached();
    let endpoint = format!("tcp://127.0.0.1:{}", memcached.port);
    killed_mid_build(
        &[("HOARD_MEMCACHED_ENDPOINT", &endpoint)],
        "memcached",
        &mut memcached,
    );
}

/// Builds the tree through the tier `env` names while `server` is killed 700 ms in: the
/// build is what the plain compiler builds, the faults are counted against `tier_name`, and
/// nothing fell back to a local compile.
pub(crate) fn killed_mid_build(env: &[(&str, &str)], tier_name: &str, server: &mut Daemon) {
    let sources = c_files(&lua_sources());
    let mut sandbox = Sandbox::new();
    for (var, value) in env {
        sandbox.set_env(var, value);
    }
    let out = sandbox.dir.path().join("out");
    let flags = ["-O2", "-g"];
    let plain = plain_build("gcc", &sources, &out, &flags, &sandbox);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(700));
            server.kill();
        });
        plain.again_through(&sandbox, "the build the tier died in");
    });
    // A lookup after the kill meets the dead tier.
    plain.again_through(&sandbox, "warm build");
    let stats = sandbox.stats();
    let t = tier(&stats, tier_name);
    assert!(
        t["errors"].as_u64().unwrap() + t["timeouts"].as_u64().unwrap() > 0,
        "faults counted: {stats}"
    );
    assert_eq!(
        stats["local_fallbacks"], 0,
        "the local tier kept serving: {stats}"
    );
}

#[test]
fn a_read_only_tier_is_never_written() {
    if !tools::installed(&["memcached", "redis-server", "redis-cli"]) {
        return;
    }
    let sources = &c_files(&lua_sources())[..6];
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
    assert_all_succeeded(
        &build(Some(&sandbox), "gcc", sources, &out, FLAGS, 2),
        "build",
        &sandbox,
    );
    sandbox.stop_server();
    assert!(
        memcached_items(memcached.port) > 0,
        "the writable tier was written"
    );
    assert_eq!(redis_keys(redis.port), 0, "the read-only tier was written");
}
