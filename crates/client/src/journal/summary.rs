//! One build summarised from its journal, for `hoard --report`: totals, the same counts per
//! group (a Rust crate, or the directory of a C/C++ output), the slowest misses with why they
//! missed, the reasons nothing was cached, and a timeline of every compile. Plain data, to
//! be printed as text, JSON, Markdown or HTML by whoever shows it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{JournalLine, Outcome};

/// How many of the slowest misses a summary keeps.
pub const SLOWEST_MISSES: usize = 10;

/// Compiles by outcome, with the time misses took and hits saved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Invocations in all.
    pub compiles: u64,
    /// Served from the cache.
    pub hits: u64,
    /// Compiled and stored.
    pub misses: u64,
    /// Not cacheable, run as they are.
    pub non_cacheable: u64,
    /// Compiled locally after a cache fault.
    pub fallbacks: u64,
    /// Hits over hits and misses, in percent (0 with neither).
    pub hit_rate: f64,
    /// The compile time the hits' entries recorded, summed: the time the cache saved.
    pub saved_ms: f64,
    /// Wall milliseconds of the misses, summed.
    pub miss_ms: f64,
}

impl Counts {
    fn add(&mut self, line: &JournalLine) {
        self.compiles += 1;
        match line.result {
            Outcome::Hit => {
                self.hits += 1;
                self.saved_ms += line.saved_ms.unwrap_or(0.0);
            }
            Outcome::Miss => {
                self.misses += 1;
                self.miss_ms += line.total_ms;
            }
            Outcome::NonCacheable => self.non_cacheable += 1,
            Outcome::Fallback => self.fallbacks += 1,
        }
        let lookups = self.hits + self.misses;
        // Counts stay far below 2^52, so the conversions are exact.
        #[allow(clippy::cast_precision_loss)]
        let rate = self.hits as f64 * 100.0 / lookups as f64;
        self.hit_rate = if lookups == 0 { 0.0 } else { rate };
    }
}

/// What a group of compiles is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// The compiles of one Rust crate (by `--crate-name`).
    Crate,
    /// The C/C++ compiles whose output is in one directory, or, for a command with no
    /// known output, that ran in it.
    Directory,
}

/// The compiles of one crate or directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// A crate or a directory.
    pub kind: GroupKind,
    /// The crate's name (a build script's with its directory: `build_script_build
    /// (serde-1a2b)`), or the directory's path.
    pub name: String,
    /// Its compiles.
    #[serde(flatten)]
    pub counts: Counts,
}

/// One miss, for the slowest-misses list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    /// What it built: the output's path (the working directory when unknown).
    pub output: String,
    /// The group it belongs to.
    pub group: String,
    /// Wall milliseconds.
    pub ms: f64,
    /// Why it missed, as `hoard --explain` would say (absent from older journals and for a
    /// compile that stored nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why its key keeps its paths, so no other checkout shares it (`paths_in_debug_info`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths_kept: Option<String>,
}

/// One compile on the build's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    /// When it started, in milliseconds after the build's first compile started.
    pub start_ms: f64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// How it was served.
    pub result: Outcome,
    /// What it built: the crate, the output's file name, or the command's directory.
    pub what: String,
    /// The reason, where there is one: why it missed, was not cacheable, or fell back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A name with how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// The reason or cause.
    pub name: String,
    /// Its occurrences.
    pub count: u64,
}

/// One build, summarised from its journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Every invocation.
    #[serde(flatten)]
    pub totals: Counts,
    /// Milliseconds computing keys, summed.
    pub hashing_ms: f64,
    /// Milliseconds in cache lookups and stores, summed.
    pub lookup_ms: f64,
    /// Milliseconds running compilers, summed.
    pub compile_ms: f64,
    /// From the first invocation's start to the last one's end, in milliseconds.
    pub wall_ms: f64,
    /// Per crate and per directory, those whose misses took longest first.
    pub groups: Vec<Group>,
    /// The slowest misses, slowest first (at most [`SLOWEST_MISSES`]).
    pub slowest_misses: Vec<Miss>,
    /// Misses whose keys keep their paths, by why, most frequent first: these are never
    /// shared with another checkout or build directory.
    pub misses_keeping_paths: Vec<Tally>,
    /// Why commands were not cacheable, most frequent first.
    pub non_cacheable_reasons: Vec<Tally>,
    /// What made compiles fall back, most frequent first.
    pub fallback_causes: Vec<Tally>,
    /// Every invocation by start time.
    pub timeline: Vec<Span>,
}

/// The group a line belongs to.
fn group_of(line: &JournalLine) -> (GroupKind, String) {
    if let Some(name) = &line.crate_name {
        // Every build script is `build_script_build`: its directory tells the package.
        let dir = line
            .output
            .as_deref()
            .and_then(Path::parent)
            .and_then(Path::file_name);
        return match dir {
            Some(dir) if name == "build_script_build" => (
                GroupKind::Crate,
                format!("{name} ({})", dir.to_string_lossy()),
            ),
            _ => (GroupKind::Crate, name.clone()),
        };
    }
    let dir = line
        .output
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(&line.cwd);
    (GroupKind::Directory, dir.display().to_string())
}

/// What a line built, in a few words for the timeline.
fn what_of(line: &JournalLine) -> String {
    if let Some(name) = &line.crate_name {
        return name.clone();
    }
    match line.output.as_deref().and_then(Path::file_name) {
        Some(file) => file.to_string_lossy().into_owned(),
        None => line.cwd.display().to_string(),
    }
}

fn ranked(counts: BTreeMap<String, u64>) -> Vec<Tally> {
    let mut ranked: Vec<Tally> = counts
        .into_iter()
        .map(|(name, count)| Tally { name, count })
        .collect();
    ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    ranked
}

/// The summary of parsed lines.
pub fn summary_of(lines: &[JournalLine]) -> Summary {
    let mut summary = Summary::default();
    let mut groups: BTreeMap<(GroupKind, String), Counts> = BTreeMap::new();
    let (mut reasons, mut causes, mut kept) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut misses = Vec::new();
    for line in lines {
        summary.totals.add(line);
        let group = group_of(line);
        groups.entry(group.clone()).or_default().add(line);
        let named = || line.reason.clone().unwrap_or_else(|| "unknown".into());
        match line.result {
            Outcome::Hit => {}
            Outcome::Miss => {
                if let Some(why) = &line.reason {
                    *kept.entry(why.clone()).or_insert(0) += 1;
                }
                misses.push(Miss {
                    output: line.output.as_ref().map_or_else(
                        || line.cwd.display().to_string(),
                        |o| o.display().to_string(),
                    ),
                    group: group.1,
                    ms: line.total_ms,
                    reason: line.miss_reason.clone(),
                    paths_kept: line.reason.clone(),
                });
            }
            Outcome::NonCacheable => *reasons.entry(named()).or_insert(0) += 1,
            Outcome::Fallback => *causes.entry(named()).or_insert(0) += 1,
        }
        summary.hashing_ms += line.hashing_ms;
        summary.lookup_ms += line.lookup_ms;
        summary.compile_ms += line.compile_ms;
    }
    misses.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    misses.truncate(SLOWEST_MISSES);
    summary.slowest_misses = misses;
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|((kind, name), counts)| Group { kind, name, counts })
        .collect();
    groups.sort_by(|a, b| {
        b.counts
            .miss_ms
            .total_cmp(&a.counts.miss_ms)
            .then_with(|| b.counts.compiles.cmp(&a.counts.compiles))
            .then_with(|| a.name.cmp(&b.name))
    });
    summary.groups = groups;
    summary.non_cacheable_reasons = ranked(reasons);
    summary.fallback_causes = ranked(causes);
    summary.misses_keeping_paths = ranked(kept);
    (summary.timeline, summary.wall_ms) = timeline(lines);
    summary
}

/// Every line as a span from the first start, by start time; and the build's wall time.
fn timeline(lines: &[JournalLine]) -> (Vec<Span>, f64) {
    let Some(first) = lines.iter().map(|l| l.time).min_by(f64::total_cmp) else {
        return (Vec::new(), 0.0);
    };
    let mut spans: Vec<Span> = lines
        .iter()
        .map(|line| Span {
            start_ms: (line.time - first) * 1000.0,
            duration_ms: line.total_ms.max(0.0),
            result: line.result,
            what: what_of(line),
            reason: match line.result {
                Outcome::Hit => None,
                Outcome::Miss => line.miss_reason.clone().or_else(|| line.reason.clone()),
                Outcome::NonCacheable | Outcome::Fallback => line.reason.clone(),
            },
        })
        .collect();
    spans.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    let wall = spans
        .iter()
        .map(|s| s.start_ms + s.duration_ms)
        .fold(0.0, f64::max);
    (spans, wall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::tests::line;

    fn rust(name: &str, output: &str, result: Outcome, total_ms: f64) -> JournalLine {
        let mut l = line(result, None, total_ms);
        l.crate_name = Some(name.into());
        l.output = Some(output.into());
        l.language = Some("rust".into());
        l
    }

    #[test]
    fn a_summary_counts_outcomes_ranks_reasons_and_orders_misses_slowest_first() {
        let lines = [
            line(Outcome::Hit, None, 1.0),
            line(Outcome::Miss, None, 40.0),
            line(Outcome::Miss, None, 90.0),
            line(Outcome::Miss, Some("paths_in_debug_info"), 7.0),
            line(Outcome::NonCacheable, Some("linking"), 5.0),
            line(Outcome::NonCacheable, Some("linking"), 5.0),
            line(Outcome::NonCacheable, Some("preprocess_only"), 5.0),
            line(Outcome::Fallback, Some("timeout"), 5.0),
        ];
        let summary = summary_of(&lines);
        assert_eq!((summary.totals.hits, summary.totals.misses), (1, 3));
        assert_eq!(
            summary.misses_keeping_paths,
            [Tally {
                name: "paths_in_debug_info".into(),
                count: 1
            }]
        );
        assert_eq!(
            (summary.totals.non_cacheable, summary.totals.fallbacks),
            (3, 1)
        );
        assert_eq!(summary.non_cacheable_reasons[0].name, "linking");
        assert_eq!(summary.non_cacheable_reasons[0].count, 2);
        assert_eq!(summary.slowest_misses[0].output, "/w/90.o");
        assert!((summary.slowest_misses[0].ms - 90.0).abs() < 1e-9);
        assert!((summary.totals.hit_rate - 100.0 / 4.0).abs() < 1e-9);
        assert!((summary.compile_ms - 24.0).abs() < 1e-9);
    }

    #[test]
    fn rust_lines_group_by_crate_and_c_lines_by_output_directory() {
        let mut hit = rust("serde", "/t/debug/deps/libserde-1.rlib", Outcome::Hit, 2.0);
        hit.saved_ms = Some(1500.0);
        let mut changed = rust("app", "/t/debug/deps/app-2", Outcome::Miss, 900.0);
        changed.miss_reason = Some("changed: file src/main.rs".into());
        let lines = [
            hit,
            changed,
            rust(
                "build_script_build",
                "/t/debug/build/gen-3/build_script_build-3",
                Outcome::Miss,
                50.0,
            ),
            line(Outcome::Miss, None, 30.0),
            line(Outcome::Hit, None, 1.0),
        ];
        let summary = summary_of(&lines);
        let names: Vec<(GroupKind, &str)> = summary
            .groups
            .iter()
            .map(|g| (g.kind, g.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (GroupKind::Crate, "app"),
                (GroupKind::Crate, "build_script_build (gen-3)"),
                (GroupKind::Directory, "/w"),
                (GroupKind::Crate, "serde"),
            ]
        );
        let serde = &summary.groups[3].counts;
        assert_eq!((serde.hits, serde.misses), (1, 0));
        assert!((serde.saved_ms - 1500.0).abs() < 1e-9);
        let dir = &summary.groups[2].counts;
        assert_eq!((dir.compiles, dir.hits, dir.misses), (2, 1, 1));
        assert!((dir.hit_rate - 50.0).abs() < 1e-9);
        assert!((summary.totals.saved_ms - 1500.0).abs() < 1e-9);
        let slowest = &summary.slowest_misses[0];
        assert_eq!(slowest.group, "app");
        assert_eq!(slowest.reason.as_deref(), Some("changed: file src/main.rs"));
    }

    #[test]
    fn the_timeline_orders_compiles_by_start_from_the_first() {
        let mut late = line(Outcome::Hit, None, 10.0);
        late.time = 101.0;
        let mut early = line(Outcome::Miss, None, 500.0);
        early.time = 100.0;
        early.miss_reason = Some("first compile of this output".into());
        let summary = summary_of(&[late, early]);
        let starts: Vec<f64> = summary.timeline.iter().map(|s| s.start_ms).collect();
        assert_eq!(starts, [0.0, 1000.0]);
        assert_eq!(summary.timeline[0].result, Outcome::Miss);
        assert_eq!(summary.timeline[0].what, "500.o");
        assert_eq!(
            summary.timeline[0].reason.as_deref(),
            Some("first compile of this output")
        );
        assert!((summary.wall_ms - 1010.0).abs() < 1e-9);
    }

    #[test]
    fn an_empty_journal_is_an_empty_summary() {
        let summary = summary_of(&[]);
        assert_eq!(summary, Summary::default());
    }
}
