//! `hoard --report JOURNAL --format html`: one build as one self-contained HTML page (inline
//! CSS and SVG, no script, nothing fetched), to open from disk or keep as a CI artifact: the
//! totals, a timeline with one bar per compile by wall time coloured by outcome, the slowest
//! misses with why they missed, each crate and directory, and the reasons nothing was
//! cached. Every name and path in it is the user's (a file may be called `<script>`), so
//! every one goes through [`escape`]. Elements have stable ids and classes (`#timeline
//! rect.bar.miss`, `#top-misses tr.top-miss td.reason`, `#groups tr.group`) for tests and
//! for anyone who styles or scrapes the page.

use std::fmt::Write as _;
use std::path::Path;

use hoard_client::journal::{Outcome, Span, Summary, Tally};

use super::{group_label, millis, why_missed};

/// The timeline's width in SVG user units; the page scales it to the window.
const WIDTH: f64 = 1000.0;
/// A bar's height and the space between lanes.
const LANE: f64 = 12.0;
const LANE_GAP: f64 = 3.0;
/// Room under the lanes for the time axis.
const AXIS: f64 = 22.0;
/// The narrowest bar drawn, so a hit of a millisecond in a minute-long build still shows.
const MIN_BAR: f64 = 1.0;
/// The outcomes in the legend's order.
const OUTCOMES: [Outcome; 4] = [
    Outcome::Hit,
    Outcome::Miss,
    Outcome::NonCacheable,
    Outcome::Fallback,
];

const STYLE: &str = "
:root{--hit:#2f9e44;--miss:#e03131;--non_cacheable:#868e96;--fallback:#f08c00;
--ink:#212529;--muted:#6c757d;--line:#dee2e6;font-family:system-ui,sans-serif;color:var(--ink)}
body{margin:2rem auto;max-width:72rem;padding:0 1rem;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}
.source{color:var(--muted);margin-top:0}code{font-size:.9em;word-break:break-all}
dl.totals{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.6rem}
dl.totals div{border:1px solid var(--line);border-radius:6px;padding:.5rem .7rem}
dt{color:var(--muted);font-size:.85rem}dd{margin:0;font-size:1.2rem;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}
ul.legend{list-style:none;padding:0;display:flex;gap:1.2rem;flex-wrap:wrap}
.swatch{display:inline-block;width:.9rem;height:.9rem;border-radius:2px;margin-right:.35rem;vertical-align:-.1rem}
svg.chart{width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
svg.chart .tick line{stroke:var(--line)}svg.chart rect.bar{stroke:#fff;stroke-width:.6}
svg.chart rect.bar:hover{opacity:.7}svg.chart .tick text{fill:var(--muted);font-size:10px}
.hit{fill:var(--hit);background:var(--hit)}.miss{fill:var(--miss);background:var(--miss)}
.non_cacheable{fill:var(--non_cacheable);background:var(--non_cacheable)}
.fallback{fill:var(--fallback);background:var(--fallback)}
meter{width:5rem}footer{margin-top:2rem;color:var(--muted);font-size:.8rem}
";

/// `text` safe in HTML text and in a quoted attribute: `&`, `<`, `>`, `"` and `'` become
/// character references, everything else stays as it is.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders `summary` as one HTML page.
pub(super) fn render(summary: &Summary, journal: &Path) -> String {
    let journal = escape(&journal.display().to_string());
    let mut out = String::with_capacity(16 * 1024 + 400 * summary.timeline.len());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>hoard build report: {journal}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>hoard build report</h1>\n<p class=\"source\">From <code id=\"journal\">{journal}</code></p>\n"
    );
    totals(&mut out, summary);
    timeline(&mut out, summary);
    top_misses(&mut out, summary);
    groups(&mut out, summary);
    for (id, title, key, tallies) in [
        (
            "paths-kept",
            "Misses whose keys keep their paths",
            "why",
            &summary.misses_keeping_paths,
        ),
        (
            "non-cacheable",
            "Not cacheable",
            "reason",
            &summary.non_cacheable_reasons,
        ),
        (
            "fallbacks",
            "Local fallbacks",
            "cause",
            &summary.fallback_causes,
        ),
    ] {
        tally(&mut out, id, title, key, tallies);
    }
    let _ = write!(
        out,
        "<footer>Made by hoard {} from the journal (HOARD_JOURNAL) of one build.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn totals(out: &mut String, summary: &Summary) {
    let t = &summary.totals;
    let cards = [
        ("hit-rate", "Hit rate", format!("{:.1} %", t.hit_rate)),
        ("compiles", "Compiles", t.compiles.to_string()),
        ("hits", "Hits", t.hits.to_string()),
        ("misses", "Misses", t.misses.to_string()),
        (
            "non-cacheable",
            "Not cacheable",
            t.non_cacheable.to_string(),
        ),
        ("fallbacks", "Local fallbacks", t.fallbacks.to_string()),
        ("saved", "Time saved by hits", millis(t.saved_ms)),
        ("in-misses", "Time in misses", millis(t.miss_ms)),
        ("wall", "Wall time", millis(summary.wall_ms)),
    ];
    out.push_str("<section id=\"summary\">\n<dl class=\"totals\">\n");
    for (id, name, value) in cards {
        let _ = writeln!(
            out,
            "<div id=\"total-{id}\"><dt>{name}</dt><dd>{}</dd></div>",
            escape(&value)
        );
    }
    out.push_str("</dl>\n</section>\n");
}

/// Each span's lane: the first lane free when it starts, so overlapping compiles (a parallel
/// build) sit on separate lanes and the number of lanes is the build's peak parallelism.
fn lanes(spans: &[Span]) -> (Vec<usize>, usize) {
    let mut ends: Vec<f64> = Vec::new();
    let mut lanes = Vec::with_capacity(spans.len());
    for span in spans {
        let end = span.start_ms + span.duration_ms;
        if let Some(free) = ends.iter().position(|e| *e <= span.start_ms) {
            ends[free] = end;
            lanes.push(free);
        } else {
            ends.push(end);
            lanes.push(ends.len() - 1);
        }
    }
    (lanes, ends.len())
}

/// A step between axis ticks of 1, 2 or 5 times a power of ten, for about eight ticks.
fn tick_step(wall_ms: f64) -> f64 {
    let raw = (wall_ms / 8.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn timeline(out: &mut String, summary: &Summary) {
    out.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    let count = |outcome: Outcome| {
        summary
            .timeline
            .iter()
            .filter(|s| s.result == outcome)
            .count()
    };
    out.push_str("<ul class=\"legend\" id=\"legend\">\n");
    for outcome in OUTCOMES {
        let name = outcome.name();
        let _ = writeln!(
            out,
            "<li class=\"legend-item\" data-outcome=\"{name}\"><span class=\"swatch {name}\"></span>{} ({})</li>",
            name.replace('_', "-"),
            count(outcome)
        );
    }
    out.push_str("</ul>\n");
    if summary.timeline.is_empty() {
        out.push_str("<p class=\"empty\">No compiles in this journal.</p>\n</section>\n");
        return;
    }
    let wall = summary.wall_ms.max(1.0);
    let (lane_of, lane_count) = lanes(&summary.timeline);
    #[allow(clippy::cast_precision_loss)] // lanes are few
    let lanes_height = lane_count as f64 * (LANE + LANE_GAP);
    let height = lanes_height + AXIS;
    let _ = writeln!(
        out,
        "<svg class=\"chart\" id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{} compiles over {}\">",
        summary.timeline.len(),
        escape(&millis(summary.wall_ms))
    );
    let step = tick_step(wall);
    let mut tick = 0.0;
    while tick <= wall {
        let x = tick / wall * WIDTH;
        let anchor = if x > WIDTH - 40.0 { "end" } else { "start" };
        let _ = writeln!(
            out,
            "<g class=\"tick\"><line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{lanes_height}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text></g>",
            lanes_height + 14.0,
            escape(&millis(tick))
        );
        tick += step;
    }
    for (span, lane) in summary.timeline.iter().zip(lane_of) {
        let name = span.result.name();
        let x = span.start_ms / wall * WIDTH;
        let width = (span.duration_ms / wall * WIDTH).max(MIN_BAR);
        #[allow(clippy::cast_precision_loss)] // lanes are few
        let y = lane as f64 * (LANE + LANE_GAP);
        let mut title = format!(
            "{}: {name}, {} at +{}",
            span.what,
            millis(span.duration_ms),
            millis(span.start_ms)
        );
        if let Some(reason) = &span.reason {
            let _ = write!(title, " ({reason})");
        }
        let _ = writeln!(
            out,
            "<rect class=\"bar {name}\" data-outcome=\"{name}\" x=\"{x:.2}\" y=\"{y:.1}\" \
             width=\"{width:.2}\" height=\"{LANE}\"><title>{}</title></rect>",
            escape(&title)
        );
    }
    out.push_str("</svg>\n</section>\n");
}

fn top_misses(out: &mut String, summary: &Summary) {
    out.push_str("<section id=\"top-misses\">\n<h2>Slowest misses</h2>\n");
    if summary.slowest_misses.is_empty() {
        out.push_str("<p class=\"empty\">No misses.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table id=\"top-misses-table\">\n<thead><tr><th class=\"num\">time</th><th>output</th>\
         <th>crate or directory</th><th>why it missed</th></tr></thead>\n<tbody>\n",
    );
    for miss in &summary.slowest_misses {
        let _ = writeln!(
            out,
            "<tr class=\"top-miss\"><td class=\"num time\">{}</td><td class=\"output\"><code>{}</code></td>\
             <td class=\"group\">{}</td><td class=\"reason\">{}</td></tr>",
            escape(&millis(miss.ms)),
            escape(&miss.output),
            escape(&miss.group),
            escape(&why_missed(miss))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn groups(out: &mut String, summary: &Summary) {
    if summary.groups.is_empty() {
        return;
    }
    out.push_str(
        "<section id=\"groups\">\n<h2>By crate and directory</h2>\n<table id=\"groups-table\">\n\
         <thead><tr><th>crate or directory</th><th class=\"num\">compiles</th><th class=\"num\">hits</th>\
         <th class=\"num\">misses</th><th class=\"num\">other</th><th class=\"num\">hit rate</th><th></th>\
         <th class=\"num\">saved</th><th class=\"num\">in misses</th></tr></thead>\n<tbody>\n",
    );
    for group in &summary.groups {
        let c = &group.counts;
        let kind = match group.kind {
            hoard_client::journal::GroupKind::Crate => "crate",
            hoard_client::journal::GroupKind::Directory => "directory",
        };
        let _ = writeln!(
            out,
            "<tr class=\"group\" data-kind=\"{kind}\"><td class=\"name\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.1} %</td><td><meter min=\"0\" max=\"100\" value=\"{:.1}\"></meter></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&group_label(group)),
            c.compiles,
            c.hits,
            c.misses,
            c.non_cacheable + c.fallbacks,
            c.hit_rate,
            c.hit_rate,
            escape(&millis(c.saved_ms)),
            escape(&millis(c.miss_ms))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn tally(out: &mut String, id: &str, title: &str, key: &str, tallies: &[Tally]) {
    if tallies.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<section id=\"{id}\">\n<h2>{title}</h2>\n<table>\n<thead><tr><th>{key}</th>\
         <th class=\"num\">count</th></tr></thead>\n<tbody>\n"
    );
    for t in tallies {
        let _ = writeln!(
            out,
            "<tr class=\"tally\"><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&t.name),
            t.count
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoard_client::journal::{JournalLine, summary_of};
    use proptest::prelude::*;

    fn line(result: Outcome, output: &str, time: f64, total_ms: f64) -> JournalLine {
        JournalLine {
            miss_reason: (result == Outcome::Miss).then(|| "first compile of this output".into()),
            saved_ms: (result == Outcome::Hit).then_some(100.0),
            ..crate::report::test_line(result, output, time, total_ms)
        }
    }

    /// Turns the five character references back into characters.
    fn unescape(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    proptest! {
        #[test]
        fn escaped_text_holds_no_markup_and_reads_back(text in "\\PC*|[<>&\"' a-z;#]{0,40}") {
            let escaped = escape(&text);
            prop_assert!(!escaped.contains(['<', '>', '"', '\'']), "{}", escaped);
            for (i, _) in escaped.match_indices('&') {
                let rest = &escaped[i..];
                prop_assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|r| rest.starts_with(r)),
                    "a bare & in {}", escaped
                );
            }
            prop_assert_eq!(unescape(&escaped), text);
        }
    }

    #[test]
    fn a_page_has_a_bar_per_compile_a_row_per_slow_miss_and_no_script() {
        let hostile = "/w/<script>alert('x')</script>/\"a\".o";
        let mut odd = line(Outcome::Miss, hostile, 100.1, 40.0);
        odd.crate_name = Some("<img src=x onerror=alert(1)>".into());
        let mut linking = line(Outcome::NonCacheable, "/w/app", 100.3, 5.0);
        linking.reason = Some("<b>linking</b>".into());
        let lines = [
            line(Outcome::Hit, "/w/a.o", 100.0, 3.0),
            line(Outcome::Miss, "/w/b.o", 100.0, 250.0),
            odd,
            linking,
            line(Outcome::Fallback, "/w/c.o", 100.2, 30.0),
        ];
        let page = render(&summary_of(&lines), Path::new("/tmp/<j>.jsonl"));
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(
            page.matches("<rect class=\"bar ").count(),
            lines.len(),
            "{page}"
        );
        for outcome in ["hit", "miss", "non_cacheable", "fallback"] {
            assert_eq!(
                page.matches(&format!("<rect class=\"bar {outcome}\""))
                    .count(),
                lines.iter().filter(|l| l.result.name() == outcome).count(),
                "{outcome}"
            );
            assert!(
                page.contains(&format!("data-outcome=\"{outcome}\"><span")),
                "legend {outcome}"
            );
        }
        assert_eq!(page.matches("<tr class=\"top-miss\">").count(), 2);
        assert!(page.contains("<td class=\"reason\">first compile of this output</td>"));
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("/tmp/&lt;j&gt;.jsonl"));
        // Nothing is fetched: no URL but the SVG namespace's.
        assert_eq!(page.matches("http").count(), 1, "{page}");
        assert!(!page.contains("src=\""));
        assert!(!page.contains("href="));
        assert!(!page.contains("<link"));
    }

    #[test]
    fn overlapping_compiles_take_separate_lanes_and_reuse_freed_ones() {
        let spans: Vec<Span> = [(0.0, 10.0), (5.0, 10.0), (12.0, 3.0), (15.0, 1.0)]
            .into_iter()
            .map(|(start_ms, duration_ms)| Span {
                start_ms,
                duration_ms,
                result: Outcome::Hit,
                what: String::new(),
                reason: None,
            })
            .collect();
        assert_eq!(lanes(&spans), (vec![0, 1, 0, 0], 2));
    }

    #[test]
    fn axis_ticks_come_in_steps_of_one_two_or_five() {
        assert!((tick_step(8_000.0) - 1_000.0).abs() < 1e-9);
        assert!((tick_step(12_000.0) - 2_000.0).abs() < 1e-9);
        assert!((tick_step(30_000.0) - 5_000.0).abs() < 1e-9);
        assert!((tick_step(3.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn an_empty_journal_is_a_page_that_says_so() {
        let page = render(&summary_of(&[]), Path::new("j"));
        assert!(page.contains("No compiles in this journal."));
        assert!(page.contains("No misses."));
        assert!(!page.contains("<rect"));
    }
}
