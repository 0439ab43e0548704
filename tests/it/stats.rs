//! `hoard --show-stats` across server restarts: the counters live in `HOARD_DIR`, time saved
//! is the stored compile time of every hit, and hits are told apart by protocol version.

use crate::support::{Sandbox, build, c_files, clean, free_port, lua_sources, text, tier};

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

/// The tables of a Markdown document, each as rows of cell texts (the header row first),
/// as a CommonMark parser with GitHub's table extension reads them.
fn markdown_tables(markdown: &str) -> Vec<Vec<Vec<String>>> {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let mut tables = Vec::new();
    let mut cell: Option<String> = None;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Table(_)) => tables.push(Vec::new()),
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                tables.last_mut().unwrap().push(Vec::new());
            }
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(cell) = cell.as_mut() {
                    cell.push_str(&t);
                }
            }
            Event::End(TagEnd::TableCell) => {
                let row = tables.last_mut().unwrap().last_mut().unwrap();
                row.push(cell.take().unwrap());
            }
            _ => {}
        }
    }
    tables
}

#[test]
fn show_stats_format_markdown_renders_tables_a_markdown_parser_reads() {
    let sandbox = Sandbox::new();
    let sources: Vec<_> = c_files(&lua_sources()).into_iter().take(4).collect();
    let out = sandbox.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for _ in 0..2 {
        clean(&out);
        for output in build(Some(&sandbox), "gcc", &sources, &out, &["-O1"], 2) {
            assert!(output.status.success(), "{}", text(&output.stderr));
        }
    }
    // One call hoard does not cache (preprocessing only), so a breakdown table appears too.
    let preprocessed = sandbox
        .hoard()
        .args(["gcc", "-E", "-o"])
        .arg(sandbox.dir.path().join("a.i"))
        .arg(&sources[0])
        .output()
        .unwrap();
    assert!(
        preprocessed.status.success(),
        "{}",
        text(&preprocessed.stderr)
    );
    let shown = sandbox
        .hoard()
        .args(["--show-stats", "--format", "markdown"])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let markdown = text(&shown.stdout);
    let tables = markdown_tables(&markdown);
    assert!(
        tables.len() >= 3,
        "summary, non-cacheable, tiers: {markdown}"
    );
    let summary = &tables[0];
    let hit_rate = summary
        .iter()
        .find(|row| row[0] == "Hit rate")
        .unwrap_or_else(|| panic!("no hit rate row: {markdown}"));
    assert_eq!(hit_rate[1], "50.0 % (4 of 8)", "{markdown}");
    assert!(
        tables.iter().any(|t| t[0][0] == "reason" && t.len() >= 2),
        "non-cacheable reasons: {markdown}"
    );
    let tiers = tables
        .iter()
        .find(|t| t[0][0] == "tier")
        .unwrap_or_else(|| panic!("no tiers table: {markdown}"));
    assert_eq!(tiers[1][0], "local", "{markdown}");
    assert_eq!(tiers[1].last().unwrap(), "healthy", "{markdown}");
    assert!(
        tiers.iter().all(|row| row.len() == tiers[0].len()),
        "every row has every column: {markdown}"
    );

    // `--format json` is `--json`.
    let json = |args: &[&str]| -> serde_json::Value {
        let out = sandbox.hoard().args(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let by_format = json(&["--show-stats", "--format", "json"]);
    assert_eq!(by_format["cache_hits"], 4, "{by_format}");
    assert_eq!(by_format, json(&["--show-stats", "--json"]));
    let misplaced = sandbox
        .hoard()
        .args(["--show-config", "--format", "markdown"])
        .output()
        .unwrap();
    assert!(!misplaced.status.success());
    assert!(
        text(&misplaced.stderr).contains("--format markdown goes with --show-stats"),
        "{}",
        text(&misplaced.stderr)
    );
}

#[test]
fn the_stats_table_names_tier_states_in_words_with_writes_timeouts_and_skips() {
    let mut sandbox = Sandbox::new();
    // Nothing listens there: every call fails, and the tier's breaker opens.
    sandbox.set_env(
        "HOARD_MEMCACHED_ENDPOINT",
        &format!("tcp://127.0.0.1:{}", free_port()),
    );
    let shared = sandbox.dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    sandbox.set_env("HOARD_SHARED_DIR", &shared.display().to_string());
    sandbox.set_env("HOARD_READ_ONLY_TIERS", "shared_dir");
    let sources: Vec<_> = c_files(&lua_sources()).into_iter().take(6).collect();
    let out = sandbox.dir.path().join("out");
    for output in build(Some(&sandbox), "gcc", &sources, &out, &["-O1"], 2) {
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let stats = sandbox.stats();
    let memcached = tier(&stats, "memcached");
    let failed = memcached["errors"].as_u64().unwrap() + memcached["timeouts"].as_u64().unwrap();
    assert!(failed > 0, "{stats}");
    let breaker = memcached["state"].as_str().unwrap();
    assert!(matches!(breaker, "open" | "half_open"), "{stats}");
    if breaker == "open" {
        let retry = memcached["retry_in_ms"].as_u64().unwrap();
        assert!(retry <= 60_000, "{stats}");
    }

    let table = sandbox.hoard().arg("--show-stats").output().unwrap();
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row in\n{table}"))
            .to_owned()
    };
    let local = row("local");
    assert!(local.ends_with("healthy"), "{local}");
    assert!(
        local.contains(&format!(" {} writes", tier(&stats, "local")["writes"])),
        "{local}"
    );
    let memcached_row = row("memcached");
    for needle in [
        format!(" {} errors", memcached["errors"]),
        format!(" {} timeouts", memcached["timeouts"]),
        format!(" {} skipped", memcached["skipped"]),
        "failing".to_owned(),
    ] {
        assert!(
            memcached_row.contains(&needle),
            "{needle:?} not in {memcached_row:?}"
        );
    }
    assert!(row("shared_dir").ends_with("read-only"), "{table}");
    let tiers_section = &table[table.find("Tiers:").unwrap()..];
    for jargon in ["closed", "half_open", " open"] {
        assert!(
            !tiers_section.contains(jargon),
            "{jargon:?} in\n{tiers_section}"
        );
    }
}
