//! `hoard --show-stats --format markdown`: the statistics as GitHub-flavoured Markdown
//! tables, for a CI job summary (`>> "$GITHUB_STEP_SUMMARY"`).

use std::collections::BTreeMap;
use std::fmt::Write;

use hoard_protocol::Stats;

use crate::stats_table::{duration, human, percent, tier_state};

/// Renders the statistics as a Markdown section: a summary table, then one table per
/// breakdown that has anything in it (misses by language, non-cacheable reasons, local
/// fallback causes, tiers).
pub fn render(stats: &Stats) -> String {
    let mut out = String::from("### hoard compile cache\n\n");
    let lookups = stats.cache_hits + stats.cache_misses;
    let _ = writeln!(out, "| | |\n|---|---:|");
    let rows = [
        (
            "Hit rate",
            format!(
                "{:.1} % ({} of {lookups})",
                percent(stats.cache_hits, lookups),
                stats.cache_hits
            ),
        ),
        ("Misses", stats.cache_misses.to_string()),
        ("Time saved", duration(stats.time_saved_ms)),
        ("Non-cacheable calls", stats.non_cacheable.to_string()),
        ("Local fallbacks", stats.local_fallbacks.to_string()),
        ("Cache errors", stats.cache_errors.to_string()),
        (
            "Local cache size",
            format!(
                "{} of {}",
                human(stats.cache_size_bytes),
                human(stats.cache_max_bytes)
            ),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    for (title, key, map) in [
        ("Misses by language", "language", &stats.misses_by_language),
        ("Not cacheable", "reason", &stats.non_cacheable_reasons),
        ("Local fallbacks", "cause", &stats.local_fallback_causes),
    ] {
        breakdown(&mut out, title, key, map);
    }
    tiers(&mut out, stats);
    out
}

fn breakdown(out: &mut String, title: &str, key: &str, map: &BTreeMap<String, u64>) {
    if map.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n**{title}**\n\n| {key} | count |\n|---|---:|");
    for (name, count) in map {
        let _ = writeln!(out, "| {} | {count} |", cell(name));
    }
}

fn tiers(out: &mut String, stats: &Stats) {
    if stats.tiers.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n**Tiers**\n\n| tier | hits | misses | hit rate | writes | prefetched | untrusted | errors | timeouts | skipped | state |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for t in &stats.tiers {
        let condition = tier_state(t);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} % | {} | {} | {} | {} | {} | {} | {} |",
            cell(&t.name),
            t.hits,
            t.misses,
            percent(t.hits, t.hits + t.misses),
            t.writes,
            t.prefetched,
            t.untrusted,
            t.errors,
            t.timeouts,
            t.skipped,
            cell(&condition)
        );
    }
}

/// A table cell's text: a `|` or a line break would end the cell or the row, and `<`, `>`,
/// `&` would be read as HTML (a path is the user's to name).
pub(crate) fn cell(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoard_protocol::TierStats;

    #[test]
    fn the_tier_table_names_states_in_words_with_timeouts_and_skips() {
        let stats = Stats {
            tiers: vec![
                TierStats {
                    name: "local".into(),
                    state: "closed".into(),
                    ..TierStats::default()
                },
                TierStats {
                    name: "redis".into(),
                    writes: 7,
                    timeouts: 2,
                    skipped: 9,
                    state: "open".into(),
                    retry_in_ms: Some(12_000),
                    ..TierStats::default()
                },
            ],
            ..Stats::default()
        };
        let table = render(&stats);
        assert!(
            table.contains("| local | 0 | 0 | 0.0 % | 0 | 0 | 0 | 0 | 0 | 0 | healthy |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| redis | 0 | 0 | 0.0 % | 7 | 0 | 0 | 0 | 2 | 9 | failing, retry in 12 s |"
            ),
            "{table}"
        );
    }

    #[test]
    fn a_cell_keeps_its_text_out_of_the_table_and_out_of_html() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell("<b>&"), "&lt;b&gt;&amp;");
    }
}
