//! Faults of a remote tier, each met by a parallel build of a real C tree through `hoard gcc`:
//! a memcached that is down, and a real memcached behind a loopback proxy that delays every
//! byte past the tier's timeouts. Neither may fail or hold up the build; both must show in the
//! tier's statistics.

use std::time::Duration;

use crate::faults::{DelayProxy, count, report, setup, timed_build};
use crate::support::tiers::{Daemon, free_port};
use crate::support::{self, Sandbox, tier, tools};

/// Builds the tree from an empty local cache with memcached at `port`, and checks the build.
/// Returns the sandbox (its server still running) and the stats.
fn build_with_memcached_at(port: u16, fault: &str) -> (Sandbox, serde_json::Value) {
    let (mut sandbox, sources, out, reference) = setup();
    sandbox.set_env(
        "HOARD_MEMCACHED_ENDPOINT",
        &format!("tcp://127.0.0.1:{port}"),
    );
    let build = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_same(&build, &out, fault, &sandbox);
    let stats = sandbox.stats();
    report(fault, &reference, build.took, &stats);
    let m = tier(&stats, "memcached");
    eprintln!("FAULT {fault}: memcached tier {m}");
    let n = sources.len() as u64;
    // The local tier took everything; nothing fell back to an uncached compile.
    assert_eq!(count(&stats, "cache_misses"), n, "{stats}");
    assert_eq!(count(&stats, "cache_writes"), n, "{stats}");
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
    assert_eq!(m["hits"], 0, "{stats}");
    assert!(
        build.took < reference.bound(),
        "a remote tier held the build up: {:?}, plain {:?}",
        build.took,
        reference.took
    );
    (sandbox, stats)
}

#[test]
fn a_remote_tier_that_is_down_costs_the_build_nothing_but_counted_errors() {
    let _machine = support::timed();
    // Nothing listens there: every connection is refused.
    let (_sandbox, stats) = build_with_memcached_at(free_port(), "remote tier down");
    let m = tier(&stats, "memcached");
    assert!(
        count(m, "errors") + count(m, "timeouts") > 0,
        "the dead tier's failures counted: {stats}"
    );
}

#[test]
fn a_slow_remote_tier_is_timed_out_and_does_not_hold_up_the_build() {
    if !tools::installed(&["memcached"]) {
        return;
    }
    let _machine = support::timed();
    let memcached = Daemon::memcached();
    // Every byte, both ways, three seconds late: past the tier's one-second operation timeout.
    let proxy = DelayProxy::start(memcached.port, Duration::from_secs(3));
    let (sandbox, stats) = build_with_memcached_at(proxy.port, "remote tier slow");
    let m = tier(&stats, "memcached");
    assert!(
        count(m, "timeouts") > 0,
        "the slow tier's timeouts counted: {stats}"
    );
    // Gone before the server stops, so that its last queued uploads fail at once instead of
    // making the stop wait for them.
    drop(proxy);
    drop(memcached);
    drop(sandbox);
}
