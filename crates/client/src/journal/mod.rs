//! The journal (`HOARD_JOURNAL=path`): one JSON line per wrapper invocation, appended with
//! one `write` on an `O_APPEND` file so lines from parallel wrappers never interleave, read
//! back ([`read`]) and summarised per build ([`summary`], for `hoard --report path`).

pub mod summary;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use summary::{Counts, Group, GroupKind, Miss, Span, Summary, Tally, summary_of};

/// How an invocation ended, as the journal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

impl Outcome {
    /// The name the journal gives it: `hit`, `miss`, `non_cacheable`, `fallback`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::NonCacheable => "non_cacheable",
            Outcome::Fallback => "fallback",
        }
    }
}

/// One line of the journal. Fields added since the first journals are optional, so an older
/// journal still reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    /// When the invocation started, in seconds since the Unix epoch.
    pub time: f64,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The first output (the object for C and C++: the build's target; the crate for
    /// rustc), when the command was classified.
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// The crate a rustc compile builds (its `--crate-name`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crate_name: Option<String>,
    /// The source language, when known.
    #[serde(default)]
    pub language: Option<String>,
    /// Hit, miss, non-cacheable or fallback.
    pub result: Outcome,
    /// Why it was not cacheable, what made it fall back, or, on a miss, why its key keeps
    /// its paths (`paths_in_debug_info`, `paths_exact`, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// On a miss that stored an entry, why it missed, as `hoard --explain` would say:
    /// `first compile of this output`, or the inputs that differ from the entry last stored
    /// for the same output (`changed: include k.h`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub miss_reason: Option<String>,
    /// On a hit, how long the compile that stored the entry took, in milliseconds: the time
    /// the hit saved (absent when the entry or the server did not say).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub saved_ms: Option<f64>,
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

/// A journal that could not be read.
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

/// Reads every line of the journal at `path`. Every line must parse: a damaged journal is
/// reported with its line number rather than summarised wrongly.
pub fn read(path: &Path) -> Result<Vec<JournalLine>, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| JournalError::BadLine {
                path: path.to_owned(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Reads and summarises the journal at `path` (see [`read`] and [`summary_of`]).
pub fn summarise(path: &Path) -> Result<Summary, JournalError> {
    Ok(summary_of(&read(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A C line of `total_ms` with outcome `result`.
    pub(crate) fn line(result: Outcome, reason: Option<&str>, total_ms: f64) -> JournalLine {
        JournalLine {
            time: 1.5,
            cwd: "/w".into(),
            output: Some(format!("/w/{total_ms}.o").into()),
            crate_name: None,
            language: Some("c".into()),
            result,
            reason: reason.map(str::to_owned),
            miss_reason: None,
            saved_ms: None,
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
    fn appended_lines_read_back_and_a_damaged_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        append(&path, &line(Outcome::Hit, None, 1.0));
        append(&path, &line(Outcome::Miss, None, 2.0));
        assert_eq!(summarise(&path).unwrap().totals.hits, 1);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        let err = summarise(&path).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }

    #[test]
    fn a_line_from_before_crate_names_and_miss_reasons_still_reads() {
        let old = r#"{"time":1.0,"cwd":"/w","output":"/w/a.o","language":"c","result":"miss","hashing_ms":1,"lookup_ms":1,"compile_ms":5,"total_ms":7}"#;
        let parsed: JournalLine = serde_json::from_str(old).unwrap();
        assert_eq!(parsed.result, Outcome::Miss);
        assert_eq!(
            (parsed.crate_name, parsed.miss_reason, parsed.saved_ms),
            (None, None, None)
        );
        let bare = r#"{"time":1.0,"cwd":"/w","result":"non_cacheable","hashing_ms":0,"lookup_ms":0,"compile_ms":0,"total_ms":1}"#;
        let parsed: JournalLine = serde_json::from_str(bare).unwrap();
        assert_eq!((parsed.output, parsed.language), (None, None));
    }

    proptest! {
        #[test]
        fn any_line_round_trips(
            total in 0.0f64..1e6,
            hit in any::<bool>(),
            reason in proptest::option::of("[a-z_]{1,12}"),
            crate_name in proptest::option::of("[a-z_][a-z0-9_]{0,12}"),
            miss_reason in proptest::option::of("\\PC{0,40}"),
            saved in proptest::option::of(0u32..1_000_000),
        ) {
            let mut l = line(if hit { Outcome::Hit } else { Outcome::Miss }, None, total);
            l.reason = reason;
            l.crate_name = crate_name;
            l.miss_reason = miss_reason;
            l.saved_ms = saved.map(f64::from);
            let text = serde_json::to_string(&l).unwrap();
            let mut back: JournalLine = serde_json::from_str(&text).unwrap();
            // serde_json's fast float parser may land one ulp off: far below a microsecond.
            prop_assert!((back.total_ms - l.total_ms).abs() <= 1e-9 * l.total_ms.max(1.0));
            back.total_ms = l.total_ms;
            prop_assert_eq!(back, l);
        }
    }
}
