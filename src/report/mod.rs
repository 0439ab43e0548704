//! `hoard --report JOURNAL`: one build, read from its journal (`HOARD_JOURNAL`), as aligned
//! text for a terminal, JSON for a program, Markdown for a CI job summary, or one
//! self-contained HTML page with a timeline of the build's compiles. The numbers come from
//! [`hoard_client::journal::Summary`]; this module only lays them out.

mod html;
mod json;
mod markdown;
mod text;

use std::path::Path;

use hoard_client::journal::{Group, GroupKind, Miss, Summary};

pub use html::escape;

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// Aligned text, for a terminal.
    Text,
    /// One JSON object: the summary's fields, with `journal` naming the file.
    Json,
    /// GitHub-flavoured Markdown tables (`>> "$GITHUB_STEP_SUMMARY"`).
    Markdown,
    /// One HTML page, with no external resource and no script.
    Html,
}

/// The report of `summary`, read from `journal`, in `format`.
pub fn render(
    summary: &Summary,
    journal: &Path,
    format: ReportFormat,
) -> Result<String, serde_json::Error> {
    Ok(match format {
        ReportFormat::Text => text::render(summary, journal),
        ReportFormat::Json => json::render(summary, journal)?,
        ReportFormat::Markdown => markdown::render(summary, journal),
        ReportFormat::Html => html::render(summary, journal),
    })
}

/// Milliseconds as a person reads them: `850 ms` below a second, else as
/// [`crate::stats_table`] prints durations (`3.2 s`, `4 min 12 s`).
fn millis(ms: f64) -> String {
    if ms < 1000.0 {
        return format!("{ms:.0} ms");
    }
    // Far below u64::MAX, and a fraction of a millisecond does not matter here.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    crate::stats_table::duration(ms.round() as u64)
}

/// A group as a report names it: `crate serde`, `dir /w/out`.
fn group_label(group: &Group) -> String {
    match group.kind {
        GroupKind::Crate => format!("crate {}", group.name),
        GroupKind::Directory => format!("dir {}", group.name),
    }
}

/// Why a miss missed, in words: the explain reason, and whether its key keeps its paths.
fn why_missed(miss: &Miss) -> String {
    let reason = miss.reason.as_deref().unwrap_or("not recorded");
    match &miss.paths_kept {
        Some(kept) => format!("{reason}; key keeps its paths ({kept})"),
        None => reason.to_owned(),
    }
}

/// A journal line for the formats' tests: a C compile of `output` in `/w`, with no reason,
/// route or phase times but its compile; each test sets what it is about on top.
#[cfg(test)]
fn test_line(
    result: hoard_client::journal::Outcome,
    output: &str,
    time: f64,
    total_ms: f64,
) -> hoard_client::journal::JournalLine {
    hoard_client::journal::JournalLine {
        time,
        cwd: "/w".into(),
        output: Some(output.into()),
        crate_name: None,
        language: Some("c".into()),
        result,
        reason: None,
        miss_reason: None,
        saved_ms: None,
        direct: None,
        tier: None,
        signer: None,
        transfer: None,
        hashing_ms: 0.0,
        lookup_ms: 0.0,
        compile_ms: total_ms,
        total_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_read_as_ms_below_a_second_and_as_durations_above() {
        assert_eq!(millis(0.4), "0 ms");
        assert_eq!(millis(850.2), "850 ms");
        assert_eq!(millis(3_250.0), "3.2 s");
        assert_eq!(millis(252_000.0), "4 min 12 s");
    }

    #[test]
    fn a_miss_says_why_and_whether_its_key_keeps_paths() {
        let miss = Miss {
            output: "/w/a.o".into(),
            group: "/w".into(),
            ms: 1.0,
            reason: Some("changed: include k.h".into()),
            paths_kept: Some("paths_in_debug_info".into()),
        };
        assert_eq!(
            why_missed(&miss),
            "changed: include k.h; key keeps its paths (paths_in_debug_info)"
        );
        let older = Miss {
            reason: None,
            paths_kept: None,
            ..miss
        };
        assert_eq!(why_missed(&older), "not recorded");
    }
}
