//! `hoard --show-stats` across server restarts: the counters live in `HOARD_DIR`, time saved
//! is the stored compile time of every hit, and hits are told apart by protocol version.

use crate::support::{Sandbox, build, c_files, clean, lua_sources, text};

fn counter(stats: &serde_json::Value, path: &[&str]) -> u64 {
    let mut value = stats;
    for key in path {
        value = &value[*key];
    }
    value.as_u64().unwrap_or(0)
}

#[test]
fn statistics_survive_a_server_restart_with_time_saved_and_hits_by_protocol_version() {
    let mut sandbox = Sandbox::new();
    let sources: Vec<_> = c_files(&lua_sources()).into_iter().take(8).collect();
    let n = sources.len() as u64;
    let out = sandbox.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let build_all = |sandbox: &Sandbox| {
        clean(&out);
        for output in build(Some(sandbox), "gcc", &sources, &out, &["-O2"], 2) {
            assert!(output.status.success(), "{}", text(&output.stderr));
        }
    };
    // Cold then warm over v2.
    build_all(&sandbox);
    build_all(&sandbox);
    let before = sandbox.stats();
    assert_eq!(counter(&before, &["cache_hits"]), n, "{before}");
    assert_eq!(counter(&before, &["hits_by_protocol", "2"]), n, "{before}");
    assert_eq!(
        counter(&before, &["misses_by_protocol", "2"]),
        n,
        "{before}"
    );
    // Each hit saved what its compile took, and gcc -O2 takes some milliseconds.
    let saved = counter(&before, &["time_saved_ms"]);
    assert!(saved >= n, "{before}");

    sandbox.stop_server();
    assert!(sandbox.server_pid().is_none(), "the server stopped");
    let after = sandbox.stats();
    for path in [
        &["cache_hits"][..],
        &["cache_misses"],
        &["cache_writes"],
        &["time_saved_ms"],
        &["hits_by_protocol", "2"],
        &["hits_by_language", "c"],
    ] {
        assert_eq!(
            counter(&after, path),
            counter(&before, path),
            "{path:?} after a restart: {after}\nbefore: {before}"
        );
    }
    let local = |s: &serde_json::Value| counter(&s["tiers"][0], &["hits"]);
    assert_eq!(local(&after), local(&before), "tier counters too: {after}");

    // A client pinned to v1 hits the same entries: counted under version 1, saving the
    // same compile times again.
    sandbox.set_env("HOARD_PROTOCOL", "1");
    build_all(&sandbox);
    let v1 = sandbox.stats();
    assert_eq!(counter(&v1, &["hits_by_protocol", "1"]), n, "{v1}");
    assert_eq!(counter(&v1, &["hits_by_protocol", "2"]), n, "{v1}");
    assert_eq!(counter(&v1, &["time_saved_ms"]), 2 * saved, "{v1}");

    let table = sandbox.hoard().arg("--show-stats").output().unwrap();
    let table = text(&table.stdout);
    for needle in ["Time saved", "Hit rate by protocol:", "v1", "v2"] {
        assert!(table.contains(needle), "{needle:?} not in\n{table}");
    }

    // Zeroing is what resets them, and it holds across a restart too.
    sandbox.zero_stats();
    sandbox.stop_server();
    let zeroed = sandbox.stats();
    assert_eq!(counter(&zeroed, &["cache_hits"]), 0, "{zeroed}");
    assert_eq!(counter(&zeroed, &["time_saved_ms"]), 0, "{zeroed}");
}
