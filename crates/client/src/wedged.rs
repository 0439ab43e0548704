//! Remembering a server that does not answer, so a build pays its timeout once, not once per
//! compile.
//!
//! A server that is stopped, deadlocked or starved still has its socket: connections queue in
//! the listen backlog and nothing answers. A wrapper finds out only by waiting (the answer to
//! `Hello` has a short timeout of its own), then compiles locally. Without a memory every
//! later wrapper would wait the same timeout, and a build of 188 files at `-j2` would take
//! more than seven minutes longer. So the first wrapper to time out writes
//! `HOARD_DIR/server-unresponsive`, and until it expires every later wrapper compiles locally
//! at once (counted as the fallback cause `server_wedged`).
//!
//! The record names the server (socket path, or TCP address), the socket file's device and
//! inode, and the pid from the server's pid file when that process can be seen. It no longer
//! applies once any of these changes — the server was killed (its pid is gone), restarted (a
//! new socket), or the configuration points elsewhere — or when it expires. After expiry the
//! next wrapper asks again: a server that answers removes the record, one that does not
//! renews it. `hoard --stop-server` and any control command that gets an answer remove it too.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ClientConfig;
use crate::server_process::{pid_path, process_alive, recorded_pid};

/// The record's file name in the state directory.
pub const UNRESPONSIVE_FILE: &str = "server-unresponsive";

/// What the state directory remembers about the configured server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recall {
    /// Nothing (or a record about another server, or one that no longer applies).
    Nothing,
    /// It did not answer a moment ago: do not ask it.
    Unresponsive,
    /// It did not answer, but long enough ago to ask again; a record to remove if it answers.
    Expired,
}

/// What identifies the server a record is about, as seen now.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    target: String,
    socket: Option<(u64, u64)>,
}

fn identity(config: &ClientConfig) -> Identity {
    match &config.server_addr {
        Some(addr) => Identity {
            target: format!("tcp:{addr}"),
            socket: None,
        },
        None => Identity {
            target: hex(config.socket_path.as_os_str().as_bytes()),
            socket: std::fs::metadata(&config.socket_path)
                .ok()
                .map(|m| (m.dev(), m.ino())),
        },
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Reads the record for the configured server. One `open` that fails when there is none, so
/// the common case costs a wrapper next to nothing.
pub(crate) fn recall(config: &ClientConfig) -> Recall {
    let Ok(text) = std::fs::read_to_string(config.cache_dir.join(UNRESPONSIVE_FILE)) else {
        return Recall::Nothing;
    };
    let Some(record) = Record::parse(&text) else {
        return Recall::Nothing;
    };
    let now = identity(config);
    if record.target != now.target || record.socket != now.socket {
        return Recall::Nothing;
    }
    if let Some(pid) = record.pid
        && (!process_alive(pid) || recorded_pid(&config.socket_path) != Some(pid))
    {
        // Killed or replaced: whatever runs there now deserves a question.
        return Recall::Nothing;
    }
    if now_ms() < record.until_ms {
        Recall::Unresponsive
    } else {
        Recall::Expired
    }
}

/// Records that the configured server did not answer, for `config.unresponsive_memory`. A
/// failure to write only costs later wrappers the wait.
pub(crate) fn remember(config: &ClientConfig) {
    let now = identity(config);
    // The pid only counts when this process can see it (not from another pid namespace):
    // otherwise a reader could never tell it is alive.
    let pid = config
        .server_addr
        .is_none()
        .then(|| recorded_pid(&config.socket_path))
        .flatten()
        .filter(|pid| process_alive(*pid));
    let record = Record {
        until_ms: now_ms() + config.unresponsive_memory.as_millis(),
        pid,
        socket: now.socket,
        target: now.target,
    };
    let written = tempfile::NamedTempFile::new_in(&config.cache_dir).and_then(|mut tmp| {
        tmp.write_all(record.to_line().as_bytes())?;
        tmp.persist(config.cache_dir.join(UNRESPONSIVE_FILE))
            .map_err(|e| e.error)?;
        Ok(())
    });
    match written {
        Ok(()) => tracing::warn!(
            "the hoard server did not answer; compiling without it for up to {:?}",
            config.unresponsive_memory
        ),
        Err(e) => tracing::warn!("cannot remember the unresponsive server: {e}"),
    }
}

/// Forgets any record: the server answered.
pub(crate) fn forget(cache_dir: &Path) {
    match std::fs::remove_file(cache_dir.join(UNRESPONSIVE_FILE)) {
        Ok(()) => tracing::info!("the hoard server answers again"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot forget the unresponsive server: {e}"),
    }
}

/// One record: `until_ms pid|- dev:ino|- target`.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    until_ms: u128,
    pid: Option<u32>,
    socket: Option<(u64, u64)>,
    target: String,
}

impl Record {
    fn to_line(&self) -> String {
        let pid = self.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let socket = self
            .socket
            .map_or_else(|| "-".to_owned(), |(dev, ino)| format!("{dev}:{ino}"));
        format!("{} {pid} {socket} {}\n", self.until_ms, self.target)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut fields = text.trim_end().splitn(4, ' ');
        let until_ms = fields.next()?.parse().ok()?;
        let pid = match fields.next()? {
            "-" => None,
            p => Some(p.parse().ok()?),
        };
        let socket = match fields.next()? {
            "-" => None,
            s => {
                let (dev, ino) = s.split_once(':')?;
                Some((dev.parse().ok()?, ino.parse().ok()?))
            }
        };
        let target = fields.next()?.to_owned();
        Some(Self {
            until_ms,
            pid,
            socket,
            target,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How long a wrapper waits for a server's first answer: short, whatever the request timeout,
/// since a live server answers `Hello` at once however loaded it is. Except while it is coming
/// up: a server listens (and writes its pid file) before it has opened and scanned its cache,
/// and until then answers nobody. That is not a wedged server, so until `connect_timeout`
/// after its start (the age of its pid file) it gets the rest of that.
pub(crate) fn first_answer_timeout(config: &ClientConfig) -> Duration {
    let usual = config.answer_timeout.min(config.request_timeout);
    if config.server_addr.is_some() {
        return usual;
    }
    let age = std::fs::metadata(pid_path(&config.socket_path))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|started| started.elapsed().ok());
    match age.and_then(|age| config.connect_timeout.checked_sub(age)) {
        Some(rest) => usual.max(rest),
        None => usual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> ClientConfig {
        let mut config = ClientConfig::new(dir.join("state"), dir.join("s.sock"));
        std::fs::create_dir_all(&config.cache_dir).unwrap();
        config.unresponsive_memory = Duration::from_secs(60);
        config
    }

    #[test]
    fn a_record_round_trips_through_its_line() {
        for record in [
            Record {
                until_ms: 17,
                pid: Some(42),
                socket: Some((1, 2)),
                target: "2f746d70".into(),
            },
            Record {
                until_ms: 0,
                pid: None,
                socket: None,
                target: "tcp:host:1".into(),
            },
        ] {
            assert_eq!(Record::parse(&record.to_line()), Some(record));
        }
        assert_eq!(Record::parse("garbage"), None);
        assert_eq!(Record::parse(""), None);
    }

    #[test]
    fn a_remembered_server_is_skipped_until_the_record_expires_or_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        assert_eq!(recall(&config), Recall::Nothing);
        remember(&config);
        assert_eq!(recall(&config), Recall::Unresponsive);
        forget(&config.cache_dir);
        assert_eq!(recall(&config), Recall::Nothing);
        config.unresponsive_memory = Duration::ZERO;
        remember(&config);
        assert_eq!(recall(&config), Recall::Expired);
    }

    #[test]
    fn a_record_about_another_server_or_a_new_socket_does_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        remember(&config);
        let other = ClientConfig::new(config.cache_dir.clone(), dir.path().join("other.sock"));
        assert_eq!(recall(&other), Recall::Nothing);
        // A socket file appears where there was none: another server now.
        std::fs::write(&config.socket_path, b"").unwrap();
        assert_eq!(recall(&config), Recall::Nothing);
    }

    #[test]
    fn a_server_that_just_started_gets_the_start_timeout_for_its_first_answer() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.answer_timeout = Duration::from_secs(5);
        config.request_timeout = Duration::from_secs(1);
        config.connect_timeout = Duration::from_secs(30);
        assert_eq!(first_answer_timeout(&config), Duration::from_secs(1));
        // Its pid file was written a moment ago: it may still be scanning its cache.
        std::fs::write(pid_path(&config.socket_path), b"1\n").unwrap();
        let allowed = first_answer_timeout(&config);
        assert!(allowed > Duration::from_secs(25), "{allowed:?}");
        config.connect_timeout = Duration::ZERO;
        assert_eq!(first_answer_timeout(&config), Duration::from_secs(1));
    }

    #[test]
    fn a_record_naming_a_dead_pid_does_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        std::fs::write(
            crate::server_process::pid_path(&config.socket_path),
            format!("{pid}\n"),
        )
        .unwrap();
        // Written by hand: `remember` itself would not record a pid that is not running.
        let record = Record {
            until_ms: now_ms() + 60_000,
            pid: Some(pid),
            socket: None,
            target: identity(&config).target,
        };
        std::fs::write(config.cache_dir.join(UNRESPONSIVE_FILE), record.to_line()).unwrap();
        assert_eq!(recall(&config), Recall::Nothing);
    }
}
