//! `hoard --report JOURNAL --format markdown`: one build as GitHub-flavoured Markdown, for a
//! CI job summary (`>> "$GITHUB_STEP_SUMMARY"`): the totals, each crate and directory, the
//! slowest misses with why, and the reasons nothing was cached.

use std::fmt::Write as _;
use std::path::Path;

use hoard_client::journal::{Summary, Tally};

use super::{group_label, millis, why_missed};
use crate::stats_markdown::cell;

/// How many groups the table lists: a job summary is read, not searched.
const GROUPS_SHOWN: usize = 30;

/// Renders `summary` as a Markdown section.
pub(super) fn render(summary: &Summary, journal: &Path) -> String {
    let mut out = String::from("### hoard build report\n\n");
    let _ = writeln!(
        out,
        "From `{}`.\n",
        cell(&journal.display().to_string()).replace('`', "'")
    );
    let t = &summary.totals;
    let _ = writeln!(out, "| | |\n|---|---:|");
    for (name, value) in [
        (
            "Hit rate",
            format!("{:.1} % ({} of {})", t.hit_rate, t.hits, t.hits + t.misses),
        ),
        ("Misses", t.misses.to_string()),
        ("Time saved by hits", millis(t.saved_ms)),
        ("Time in misses", millis(t.miss_ms)),
        ("Non-cacheable calls", t.non_cacheable.to_string()),
        ("Local fallbacks", t.fallbacks.to_string()),
        ("Wall time", millis(summary.wall_ms)),
    ] {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    if !summary.groups.is_empty() {
        let _ = writeln!(
            out,
            "\n**By crate and directory**\n\n| crate or directory | compiles | hits | misses | hit rate | saved | in misses |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for group in summary.groups.iter().take(GROUPS_SHOWN) {
            let c = &group.counts;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} % | {} | {} |",
                cell(&group_label(group)),
                c.compiles,
                c.hits,
                c.misses,
                c.hit_rate,
                millis(c.saved_ms),
                millis(c.miss_ms)
            );
        }
        let more = summary.groups.len().saturating_sub(GROUPS_SHOWN);
        if more > 0 {
            let _ = writeln!(out, "\n{more} more in `hoard --report --format json`.");
        }
    }
    if !summary.slowest_misses.is_empty() {
        let _ = writeln!(
            out,
            "\n**Slowest misses**\n\n| time | output | why |\n|---:|---|---|"
        );
        for miss in &summary.slowest_misses {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                millis(miss.ms),
                cell(&miss.output),
                cell(&why_missed(miss))
            );
        }
    }
    for (title, key, tallies) in [
        (
            "Misses whose keys keep their paths",
            "why",
            &summary.misses_keeping_paths,
        ),
        ("Not cacheable", "reason", &summary.non_cacheable_reasons),
        ("Local fallbacks", "cause", &summary.fallback_causes),
    ] {
        tally(&mut out, title, key, tallies);
    }
    out
}

fn tally(out: &mut String, title: &str, key: &str, tallies: &[Tally]) {
    if tallies.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n**{title}**\n\n| {key} | count |\n|---|---:|");
    for t in tallies {
        let _ = writeln!(out, "| {} | {} |", cell(&t.name), t.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoard_client::journal::{JournalLine, Outcome, summary_of};

    fn line(result: Outcome, output: &str, total_ms: f64) -> JournalLine {
        JournalLine {
            miss_reason: (result == Outcome::Miss).then(|| "changed: arg -O2 | -O3".into()),
            ..crate::report::test_line(result, output, 1.0, total_ms)
        }
    }

    #[test]
    fn the_markdown_report_has_a_row_per_group_and_per_slow_miss() {
        let summary = summary_of(&[
            line(Outcome::Hit, "/w/a/x.o", 1.0),
            line(Outcome::Miss, "/w/b/<y>.o", 300.0),
        ]);
        let md = render(&summary, Path::new("j.jsonl"));
        assert!(md.contains("| Hit rate | 50.0 % (1 of 2) |"), "{md}");
        assert!(
            md.contains("| dir /w/b | 1 | 0 | 1 | 0.0 % | 0 ms | 300 ms |"),
            "{md}"
        );
        assert!(md.contains("| dir /w/a | 1 | 1 | 0 | 100.0 % |"), "{md}");
        assert!(
            md.contains("| 300 ms | /w/b/&lt;y&gt;.o | changed: arg -O2 \\| -O3 |"),
            "a path is escaped and a | stays in its cell: {md}"
        );
        // Every table row has as many cells as its header.
        for table in md.split("\n\n").filter(|t| t.starts_with('|')) {
            let mut rows = table.lines();
            let header = rows.next().unwrap();
            let cells = |row: &str| row.replace("\\|", "").matches('|').count();
            for row in rows {
                assert_eq!(cells(row), cells(header), "{row}");
            }
        }
    }
}
