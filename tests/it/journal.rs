//! The journal (`HOARD_JOURNAL`): one JSON line per invocation of a real build, and a summary
//! of it (`hoard --show-stats --since-journal`, the alias of `hoard --report`) that agrees with
//! the server's own stats.

use crate::support::{Sandbox, build, c_files, journal_lines, lua_sources, text};

#[test]
fn a_journal_of_a_real_build_agrees_with_the_servers_stats() {
    let mut sandbox = Sandbox::new();
    let journal = sandbox.dir.path().join("build.jsonl");
    sandbox.set_env("HOARD_JOURNAL", &journal.display().to_string());
    let sources: Vec<_> = c_files(&lua_sources()).into_iter().take(12).collect();
    let out = sandbox.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Cold, then warm: 12 misses, then 12 hits.
    for _ in 0..2 {
        crate::support::clean(&out);
        for output in build(Some(&sandbox), "gcc", &sources, &out, &["-O1"], 3) {
            assert!(output.status.success(), "{}", text(&output.stderr));
        }
    }
    // And two commands no cache serves.
    let link = sandbox
        .hoard()
        .current_dir(&out)
        .args(["gcc", "-o", "/dev/null", "-x", "c", "/dev/null"])
        .output()
        .unwrap();
    assert!(
        !link.status.success(),
        "nothing to link: gcc fails, as it would"
    );
    let stats = sandbox.stats();

    let lines = journal_lines(&journal);
    assert_eq!(lines.len(), 2 * sources.len() + 1);
    let count = |result: &str| lines.iter().filter(|l| l["result"] == result).count() as u64;
    assert_eq!(
        count("hit"),
        stats["cache_hits"].as_u64().unwrap(),
        "{stats}"
    );
    assert_eq!(
        count("miss"),
        stats["cache_misses"].as_u64().unwrap(),
        "{stats}"
    );
    assert_eq!(
        count("non_cacheable"),
        stats["non_cacheable"].as_u64().unwrap()
    );
    assert_eq!((count("hit"), count("miss")), (12, 12));
    let miss = lines.iter().find(|l| l["result"] == "miss").unwrap();
    assert!(miss["compile_ms"].as_f64().unwrap() > 0.0, "{miss}");
    assert_eq!(miss["language"], "c");
    let output = std::path::PathBuf::from(miss["output"].as_str().unwrap());
    assert_eq!(output.extension().unwrap(), "o", "{miss}");
    let hit = lines.iter().find(|l| l["result"] == "hit").unwrap();
    assert!(hit["compile_ms"].as_f64().unwrap() < 1e-9, "{hit}");
    // The client read the hit from its own cache directory: no round trip.
    assert_eq!(hit["transfer"], "local", "{hit}");
    assert_eq!(hit["tier"], "local", "{hit}");
    let linked = lines
        .iter()
        .find(|l| l["result"] == "non_cacheable")
        .unwrap();
    assert_eq!(linked["reason"], "linking", "{linked}");

    // The server's own table shows the same build by tier and by transfer.
    let table = sandbox.hoard().arg("--show-stats").output().unwrap();
    let table = text(&table.stdout);
    let local = table
        .lines()
        .find(|l| l.trim_start().starts_with("local "))
        .unwrap_or_else(|| panic!("no local tier row in\n{table}"));
    // Storage-level counts: manifests and the miss probes are lookups too.
    assert!(local.contains(" 12 hits ("), "{local}");
    assert!(table.contains("shared filesystem"), "{table}");

    let summary = sandbox
        .hoard()
        .args(["--show-stats", "--since-journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(summary.status.success(), "{}", text(&summary.stderr));
    let summary = text(&summary.stdout);
    for needle in ["12 (50.0 %)", "Slowest misses:", "linking"] {
        assert!(summary.contains(needle), "{needle:?} not in\n{summary}");
    }
}

#[test]
fn a_damaged_journal_is_an_error_naming_the_line() {
    let sandbox = Sandbox::new();
    let journal = sandbox.dir.path().join("bad.jsonl");
    std::fs::write(&journal, "{\"not\": \"a journal line\"}\n").unwrap();
    let out = sandbox
        .hoard()
        .args(["--show-stats", "--since-journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = text(&out.stderr);
    assert!(message.contains("bad.jsonl:1:"), "{message}");
}

#[test]
fn a_client_pinned_to_v1_journals_the_servers_hits_as_hits() {
    let mut sandbox = Sandbox::new();
    let journal = sandbox.dir.path().join("v1.jsonl");
    sandbox.set_env("HOARD_JOURNAL", &journal.display().to_string());
    sandbox.set_env("HOARD_PROTOCOL", "1");
    let sources: Vec<_> = c_files(&lua_sources()).into_iter().take(6).collect();
    let out = sandbox.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for _ in 0..2 {
        crate::support::clean(&out);
        for output in build(Some(&sandbox), "gcc", &sources, &out, &["-O1"], 2) {
            assert!(output.status.success(), "{}", text(&output.stderr));
        }
    }
    let stats = sandbox.stats();
    let lines = journal_lines(&journal);
    let count = |result: &str| lines.iter().filter(|l| l["result"] == result).count() as u64;
    assert_eq!((count("hit"), count("miss")), (6, 6), "{lines:?}");
    assert_eq!(
        count("hit"),
        stats["hits_by_protocol"]["1"].as_u64().unwrap(),
        "{stats}"
    );
    assert!(lines.iter().all(|l| l["transfer"] == "v1"), "{lines:?}");
}
