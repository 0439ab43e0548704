//! The journal (`HOARD_JOURNAL=path`): one JSON line per wrapper invocation, appended with
//! one `write` on an `O_APPEND` file so lines from parallel wrappers never interleave, and a
//! summary of one build read back from it (`hoard --show-stats --since-journal path`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How an invocation ended, as the journal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Served from the cache.
    Hit,
    /// Compiled (and stored when it succeeded).
    Miss,
    /// Not a cacheable command; ran as it is.
    NonCacheable,
    /// A cache fault; compiled locally.
    Fallback,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    /// When the invocation started, in seconds since the Unix epoch.
    pub time: f64,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The first output (the object, the crate), when the command was classified.
    pub output: Option<PathBuf>,
    /// The source language, when known.
    pub language: Option<String>,
    /// Hit, miss, non-cacheable or fallback.
    pub result: Outcome,
    /// Why it was not cacheable, what made it fall back, or, on a miss, why its key keeps
    /// its paths (`paths_in_debug_info`, `paths_exact`, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// On a hit, whether a direct-mode manifest found it (no preprocessor run).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub direct: Option<bool>,
    /// The tier that served a hit (`local`, `redis`, ...), when the server says.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tier: Option<String>,
    /// The trusted key that signed a hit's entry, when it came from a tier whose entries
    /// must be signed (`HOARD_TRUSTED_KEYS`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signer: Option<String>,
    /// How a hit's or put's bytes travelled: `shared_fs` or `inline`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transfer: Option<String>,
    /// Milliseconds computing the key (reading and hashing inputs).
    pub hashing_ms: f64,
    /// Milliseconds in cache lookups and stores.
    pub lookup_ms: f64,
    /// Milliseconds running the compiler.
    pub compile_ms: f64,
    /// Milliseconds in all, as the wrapper saw it.
    pub total_ms: f64,
}

/// Milliseconds, for the journal.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Seconds since the epoch of `t`.
pub fn unix_time(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Appends `line` to the journal at `path`. A journal that cannot be written never fails the
/// compile: the fault is logged.
pub fn append(path: &Path, line: &JournalLine) {
    let Ok(mut text) = serde_json::to_vec(line) else {
        return;
    };
    text.push(b'\n');
    // It names the user's directories and outputs: the user's to read, like the logs.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(&text));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot append to the journal");
    }
}

/// A journal that could not be summarised.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read.
    #[error("cannot read the journal {path}: {source}")]
    Read {
        /// The journal.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a journal line.
    #[error("{path}:{line}: not a journal line: {message}")]
    BadLine {
        /// The journal.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
}

/// One build, summarised from its journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Invocations by outcome.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Non-cacheable invocations.
    pub non_cacheable: u64,
    /// Local fallbacks.
    pub fallbacks: u64,
    /// Non-cacheable reasons with their counts, most frequent first.
    pub non_cacheable_reasons: Vec<(String, u64)>,
    /// Fallback causes with their counts, most frequent first.
    pub fallback_causes: Vec<(String, u64)>,
    /// Misses whose keys keep their paths, by why, most frequent first: these are never
    /// shared with another checkout or build directory.
    pub misses_keeping_paths: Vec<(String, u64)>,
    /// The slowest misses: output and milliseconds, slowest first (at most ten).
    pub slowest_misses: Vec<(String, f64)>,
    /// Milliseconds in hashing, lookups and compiles, summed.
    pub hashing_ms: f64,
    /// Lookup milliseconds, summed.
    pub lookup_ms: f64,
    /// Compile milliseconds, summed.
    pub compile_ms: f64,
}

impl Summary {
    /// Hits over cacheable invocations (hits and misses), in percent.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            return 0.0;
        }
        // Counts stay far below 2^52, so the conversions are exact.
        #[allow(clippy::cast_precision_loss)]
        let rate = self.hits as f64 * 100.0 / lookups as f64;
        rate
    }
}

/// Reads and summarises the journal at `path`. Every line must parse: a damaged journal is
/// reported with its line number rather than summarised wrongly.
pub fn summarise(path: &Path) -> Result<Summary, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parsed: JournalLine =
            serde_json::from_str(line).map_err(|e| JournalError::BadLine {
                path: path.to_owned(),
                line: i + 1,
                message: e.to_string(),
            })?;
        lines.push(parsed);
    }
    Ok(summary_of(&lines))
}

fn ranked(counts: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked
}

/// The summary of parsed lines.
pub fn summary_of(lines: &[JournalLine]) -> Summary {
    let mut summary = Summary::default();
    let mut reasons = BTreeMap::new();
    let mut causes = BTreeMap::new();
    let mut kept = BTreeMap::new();
    let mut misses = Vec::new();
    for line in lines {
        let unnamed = || line.reason.clone().unwrap_or_else(|| "unknown".into());
        match line.result {
            Outcome::Hit => summary.hits += 1,
            Outcome::Miss => {
                summary.misses += 1;
                if let Some(why) = &line.reason {
                    *kept.entry(why.clone()).or_insert(0) += 1;
                }
                let output = line.output.as_ref().map_or_else(
                    || line.cwd.display().to_string(),
                    |o| o.display().to_string(),
                );
                misses.push((output, line.total_ms));
            }
            Outcome::NonCacheable => {
                summary.non_cacheable += 1;
                *reasons.entry(unnamed()).or_insert(0) += 1;
            }
            Outcome::Fallback => {
                summary.fallbacks += 1;
                *causes.entry(unnamed()).or_insert(0) += 1;
            }
        }
        summary.hashing_ms += line.hashing_ms;
        summary.lookup_ms += line.lookup_ms;
        summary.compile_ms += line.compile_ms;
    }
    misses.sort_by(|a, b| b.1.total_cmp(&a.1));
    misses.truncate(10);
    summary.slowest_misses = misses;
    summary.non_cacheable_reasons = ranked(reasons);
    summary.fallback_causes = ranked(causes);
    summary.misses_keeping_paths = ranked(kept);
    summary
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "{name:<32} {value:>14}");
        };
        row("Cacheable calls", (self.hits + self.misses).to_string());
        row(
            "  Hits",
            format!("{} ({:.1} %)", self.hits, self.hit_rate()),
        );
        row("  Misses", self.misses.to_string());
        row("Non-cacheable calls", self.non_cacheable.to_string());
        row("Local fallbacks", self.fallbacks.to_string());
        row("Time hashing", format!("{:.1} s", self.hashing_ms / 1000.0));
        row(
            "Time in lookups",
            format!("{:.1} s", self.lookup_ms / 1000.0),
        );
        row(
            "Time compiling",
            format!("{:.1} s", self.compile_ms / 1000.0),
        );
        f.write_str(&out)?;
        if !self.slowest_misses.is_empty() {
            writeln!(f, "Slowest misses:")?;
            for (output, ms) in &self.slowest_misses {
                writeln!(f, "  {ms:>9.1} ms  {output}")?;
            }
        }
        if !self.misses_keeping_paths.is_empty() {
            writeln!(f, "Misses whose keys keep their paths:")?;
            for (why, n) in &self.misses_keeping_paths {
                writeln!(f, "  {why:<30} {n:>14}")?;
            }
        }
        if !self.non_cacheable_reasons.is_empty() {
            writeln!(f, "Top non-cacheable reasons:")?;
            for (reason, n) in &self.non_cacheable_reasons {
                writeln!(f, "  {reason:<30} {n:>14}")?;
            }
        }
        if !self.fallback_causes.is_empty() {
            writeln!(f, "Local fallback causes:")?;
            for (cause, n) in &self.fallback_causes {
                writeln!(f, "  {cause:<30} {n:>14}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(result: Outcome, reason: Option<&str>, total_ms: f64) -> JournalLine {
        JournalLine {
            time: 1.5,
            cwd: "/w".into(),
            output: Some(format!("/w/{total_ms}.o").into()),
            language: Some("c".into()),
            result,
            reason: reason.map(str::to_owned),
            direct: None,
            tier: None,
            signer: None,
            transfer: None,
            hashing_ms: 1.0,
            lookup_ms: 2.0,
            compile_ms: 3.0,
            total_ms,
        }
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
        assert_eq!((summary.hits, summary.misses), (1, 3));
        assert_eq!(
            summary.misses_keeping_paths,
            [("paths_in_debug_info".to_owned(), 1)]
        );
        assert_eq!((summary.non_cacheable, summary.fallbacks), (3, 1));
        assert_eq!(summary.non_cacheable_reasons[0], ("linking".into(), 2));
        assert_eq!(summary.slowest_misses[0], ("/w/90.o".into(), 90.0));
        assert!((summary.hit_rate() - 100.0 / 4.0).abs() < 1e-9);
        assert!((summary.compile_ms - 24.0).abs() < 1e-9);
    }

    #[test]
    fn appended_lines_read_back_and_a_damaged_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        append(&path, &line(Outcome::Hit, None, 1.0));
        append(&path, &line(Outcome::Miss, None, 2.0));
        assert_eq!(summarise(&path).unwrap().hits, 1);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        let err = summarise(&path).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }

    proptest! {
        #[test]
        fn any_line_round_trips(total in 0.0f64..1e6, hit in any::<bool>(), reason in proptest::option::of("[a-z_]{1,12}")) {
            let mut l = line(if hit { Outcome::Hit } else { Outcome::Miss }, None, total);
            l.reason = reason;
            let text = serde_json::to_string(&l).unwrap();
            let mut back: JournalLine = serde_json::from_str(&text).unwrap();
            // serde_json's fast float parser may land one ulp off: far below a microsecond.
            prop_assert!((back.total_ms - l.total_ms).abs() <= 1e-9 * l.total_ms.max(1.0));
            back.total_ms = l.total_ms;
            prop_assert_eq!(back, l);
        }
    }
}
