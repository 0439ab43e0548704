//! Telling the user about a configuration problem from inside a build, where hoard's only
//! voice is the compiler's stderr: once per build, not once per compile.
//!
//! A wrapper that cannot read its configuration compiles without the cache; one whose
//! settings are partly in vain compiles with it. Either way it says so on stderr, in lines
//! starting `hoard: `, and logs it. A build is a run of compiles without a quiet gap of
//! [`QUIET_GAP`]: the marker file [`MARKER`] in the cache directory holds a digest of the
//! last notice and when a wrapper last had it to tell. A wrapper prints when the notice
//! differs from the marker's (the user changed something) or the marker is older than the
//! gap (a new build), and rewrites the marker either way, under an exclusive lock on it, so
//! of many wrappers started together (`make -j`) exactly one prints.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{ConfigError, ConfigWarning};

/// The marker's name in the cache directory.
pub const MARKER: &str = "config-notice";

/// How long without a compile that has the same notice to tell ends a build: the next one
/// tells it again.
pub const QUIET_GAP: Duration = Duration::from_secs(60);

/// Reports a configuration the wrapper could not use: one line on stderr (at most once per
/// build) naming the file, line and column or the variable, what is wrong, and that the
/// compile runs without the cache; and an error in the wrapper's log.
pub fn config_error(error: &ConfigError) {
    let hint = if error.in_file() {
        "fix the file"
    } else {
        "fix the setting"
    };
    let line = format!(
        "hoard: {}; compiling without the cache ({hint}, or see hoard --show-config)",
        one_line(&error.to_string())
    );
    let dir = notice_dir();
    if let Some(dir) = &dir {
        crate::logging::init(dir, crate::logging::WRAPPER_LOG);
    }
    tracing::error!("configuration error, compiling without the cache: {error}");
    tell(dir.as_deref(), &[line]);
}

/// Reports settings that have no effect: a `hoard: warning: ` line each on stderr (at most
/// once per build) and a warning each in the wrapper's log, which goes to `cache_dir`.
pub fn warnings(cache_dir: &Path, warnings: &[ConfigWarning]) {
    crate::logging::init(cache_dir, crate::logging::WRAPPER_LOG);
    let lines: Vec<String> = warnings
        .iter()
        .map(|w| {
            tracing::warn!("configuration: {w}");
            format!("hoard: warning: {}", one_line(&w.to_string()))
        })
        .collect();
    tell(Some(cache_dir), &lines);
}

/// Prints `lines` to stderr unless this build has printed them already (as the marker in
/// `dir` says). Without a directory for the marker, prints: a notice too often beats none.
fn tell(dir: Option<&Path>, lines: &[String]) {
    let text = lines.join("\n");
    let first = dir.is_none_or(|dir| first_in_build(dir, &text, SystemTime::now()));
    if first {
        eprintln!("{text}");
    }
}

/// More than a marker's line (32 hex digits, a space, a time) ever needs.
const MARKER_MAX_BYTES: u64 = 128;

/// Whether `notice` is new to the build that `dir`'s marker records at `now`; records it as
/// told at `now` either way. Any failure to use the marker counts as new.
pub fn first_in_build(dir: &Path, notice: &str, now: SystemTime) -> bool {
    let digest = blake3::hash(notice.as_bytes()).to_hex();
    let digest = &digest[..32];
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(MARKER))
    else {
        return true;
    };
    // Held until the file is closed: the read, the decision and the write are one step for
    // every wrapper started together.
    if file.lock().is_err() {
        return true;
    }
    let mut recorded = String::new();
    // The marker is one short line; a larger file is not ours and is not read whole.
    let seen = (&mut file)
        .take(MARKER_MAX_BYTES)
        .read_to_string(&mut recorded)
        .is_ok()
        && recorded.split_once(' ').is_some_and(|(told, at)| {
            let at = at.trim().parse::<u64>().unwrap_or(0);
            // Either way round: a wrapper that read the clock a moment before another
            // may take the lock after it.
            told == digest && now_secs.abs_diff(at) < QUIET_GAP.as_secs()
        });
    let record = format!("{digest} {now_secs}\n");
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(record.as_bytes()));
    !seen
}

/// The directory the marker and the log go to: `HOARD_DIR` (from the environment, or from
/// the file when it could be read), else the default cache directory, whichever can be
/// created.
fn notice_dir() -> Option<PathBuf> {
    let configured = crate::config_file::setting("HOARD_DIR")
        .filter(|d| !d.trim().is_empty())
        .map(PathBuf::from);
    configured
        .into_iter()
        .chain(crate::config::default_cache_dir())
        .find(|dir| crate::config::create_private_dir(dir).is_ok())
}

/// `text` on one line: a message that runs over lines would be several notices.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_notice_is_told_once_while_compiles_keep_coming() {
        let dir = tempfile::tempdir().unwrap();
        assert!(first_in_build(dir.path(), "bad", at(1000)));
        assert!(!first_in_build(dir.path(), "bad", at(1030)));
        // Each compile that has it to tell extends the build.
        assert!(!first_in_build(dir.path(), "bad", at(1080)));
        assert!(!first_in_build(dir.path(), "bad", at(1139)));
    }

    #[test]
    fn a_quiet_gap_starts_a_new_build_that_is_told_again() {
        let dir = tempfile::tempdir().unwrap();
        assert!(first_in_build(dir.path(), "bad", at(1000)));
        assert!(first_in_build(
            dir.path(),
            "bad",
            at(1000 + QUIET_GAP.as_secs())
        ));
    }

    #[test]
    fn a_changed_notice_is_told_at_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(first_in_build(dir.path(), "bad key", at(1000)));
        assert!(first_in_build(dir.path(), "bad value", at(1001)));
        assert!(first_in_build(dir.path(), "bad key", at(1002)));
    }

    #[test]
    fn a_marker_from_the_future_or_in_pieces_does_not_silence_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        assert!(first_in_build(dir.path(), "bad", at(5000)));
        assert!(
            first_in_build(dir.path(), "bad", at(1000)),
            "clock went back"
        );
        // A wrapper that read the clock just before the one that told took the lock.
        assert!(!first_in_build(dir.path(), "bad", at(999)));
        std::fs::write(dir.path().join(MARKER), "garbage").unwrap();
        assert!(first_in_build(dir.path(), "bad", at(1001)));
        assert!(!first_in_build(dir.path(), "bad", at(1002)));
    }

    #[test]
    fn without_a_usable_directory_the_notice_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir");
        assert!(first_in_build(&missing, "bad", at(1000)));
        assert!(first_in_build(&missing, "bad", at(1001)));
    }

    #[test]
    fn of_many_wrappers_at_once_exactly_one_tells() {
        let dir = tempfile::tempdir().unwrap();
        let told: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| scope.spawn(|| first_in_build(dir.path(), "bad", SystemTime::now())))
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(told, 1);
    }

    #[test]
    fn a_message_over_lines_becomes_one() {
        assert_eq!(one_line("a\n  b\n\nc"), "a; b; c");
    }
}
