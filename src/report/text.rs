//! `hoard --report JOURNAL` for a terminal: totals as aligned rows in the way
//! `hoard --show-stats` prints them, then each crate and directory, the slowest misses with
//! why they missed, and the reasons nothing was cached.

use std::fmt::Write as _;
use std::path::Path;

use hoard_client::journal::{Summary, Tally};

use super::{group_label, millis, why_missed};

/// How many groups the text report lists; the JSON, Markdown and HTML reports list all.
const GROUPS_SHOWN: usize = 20;

/// Renders `summary` as aligned text.
pub(super) fn render(summary: &Summary, journal: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Build report of {}", journal.display());
    let totals = &summary.totals;
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<32} {value:>14}");
    };
    row("Compiles", totals.compiles.to_string());
    row("Cacheable calls", (totals.hits + totals.misses).to_string());
    row(
        "  Hits",
        format!("{} ({:.1} %)", totals.hits, totals.hit_rate),
    );
    row("  Misses", totals.misses.to_string());
    row("Non-cacheable calls", totals.non_cacheable.to_string());
    row("Local fallbacks", totals.fallbacks.to_string());
    row("Time saved by hits", millis(totals.saved_ms));
    row("Time in misses", millis(totals.miss_ms));
    row("Time hashing", millis(summary.hashing_ms));
    row("Time in lookups", millis(summary.lookup_ms));
    row("Time compiling", millis(summary.compile_ms));
    row("Wall time, first to last", millis(summary.wall_ms));
    groups(&mut out, summary);
    if !summary.slowest_misses.is_empty() {
        let _ = writeln!(out, "Slowest misses:");
        for miss in &summary.slowest_misses {
            let _ = writeln!(
                out,
                "  {:>10}  {}\n              {}",
                millis(miss.ms),
                miss.output,
                why_missed(miss)
            );
        }
    }
    for (title, tallies) in [
        (
            "Misses whose keys keep their paths:",
            &summary.misses_keeping_paths,
        ),
        ("Top non-cacheable reasons:", &summary.non_cacheable_reasons),
        ("Local fallback causes:", &summary.fallback_causes),
    ] {
        section(&mut out, title, tallies);
    }
    out
}

/// Each crate and directory: compiles, hits, misses, hit rate, time saved, time in misses.
fn groups(out: &mut String, summary: &Summary) {
    if summary.groups.is_empty() {
        return;
    }
    let _ = writeln!(out, "By crate and directory (longest in misses first):");
    let _ = writeln!(
        out,
        "  {:>8} {:>6} {:>6} {:>8} {:>11} {:>11}  crate or directory",
        "compiles", "hits", "misses", "hit rate", "saved", "in misses"
    );
    for group in summary.groups.iter().take(GROUPS_SHOWN) {
        let c = &group.counts;
        let _ = writeln!(
            out,
            "  {:>8} {:>6} {:>6} {:>6.1} % {:>11} {:>11}  {}",
            c.compiles,
            c.hits,
            c.misses,
            c.hit_rate,
            millis(c.saved_ms),
            millis(c.miss_ms),
            group_label(group)
        );
    }
    let more = summary.groups.len().saturating_sub(GROUPS_SHOWN);
    if more > 0 {
        let _ = writeln!(out, "  ... and {more} more (see --format json)");
    }
}

fn section(out: &mut String, title: &str, tallies: &[Tally]) {
    if tallies.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    for tally in tallies {
        let _ = writeln!(out, "  {:<30} {:>14}", tally.name, tally.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoard_client::journal::{JournalLine, Outcome, summary_of};

    fn line(result: Outcome, output: &str, reason: Option<&str>, total_ms: f64) -> JournalLine {
        JournalLine {
            miss_reason: reason.map(str::to_owned),
            saved_ms: (result == Outcome::Hit).then_some(2_000.0),
            hashing_ms: 1.0,
            lookup_ms: 1.0,
            ..crate::report::test_line(result, output, 10.0, total_ms)
        }
    }

    #[test]
    fn the_text_report_has_totals_groups_and_misses_with_reasons() {
        let mut linking = line(Outcome::NonCacheable, "/w/app", None, 3.0);
        linking.output = None;
        linking.reason = Some("linking".into());
        let summary = summary_of(&[
            line(Outcome::Hit, "/w/out/a.o", None, 2.0),
            line(
                Outcome::Miss,
                "/w/out/b.o",
                Some("changed: include k.h"),
                700.0,
            ),
            line(
                Outcome::Miss,
                "/w/lib/c.o",
                Some("first compile of this output"),
                90.0,
            ),
            linking,
        ]);
        let text = render(&summary, Path::new("build.jsonl"));
        for needle in [
            "Build report of build.jsonl",
            "1 (33.3 %)",
            "Time saved by hits",
            "2.0 s",
            "Slowest misses:",
            "/w/out/b.o",
            "changed: include k.h",
            "dir /w/out",
            "dir /w/lib",
            "Top non-cacheable reasons:",
            "linking",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        let slowest = text.find("/w/out/b.o\n").unwrap();
        assert!(slowest < text.find("/w/lib/c.o\n").unwrap(), "{text}");
    }
}
