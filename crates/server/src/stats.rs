//! The server's counters. Client-side events (non-cacheable invocations, local fallbacks)
//! live in the client events file and are folded in when stats are read.
//!
//! The counters (the tiers' included) are saved to `HOARD_DIR/stats.json` a moment after
//! they change and at shutdown, and read back when a server starts: statistics survive a
//! restart, as `ccache -s` users expect, until `--zero-stats`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use hoard_protocol::{Stats, TierStats};

/// What happened to one request, as the counters see it.
#[derive(Debug, Clone, Copy)]
pub enum Counted<'a> {
    /// A hit, over protocol version `protocol`, of an entry whose compile took `saved_ms`.
    Hit {
        language: Option<&'a str>,
        protocol: u32,
        saved_ms: u64,
    },
    /// A miss over protocol version `protocol`.
    Miss {
        language: Option<&'a str>,
        protocol: u32,
    },
    /// A `CachePut` stored.
    Write,
    /// A request failed on the cache path.
    Error,
    /// A damaged entry was found, removed and answered as a miss.
    Corrupt,
    /// A v1 `Compile` that could not be cached, for the named reason.
    NonCacheable { reason: &'a str },
    /// A request carried by this protocol version.
    Request { version: u32 },
    /// A hit or put whose bytes travelled this way.
    Transfer(Transfer),
}

/// How a hit's or put's bytes travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// The server worked on the client's own paths.
    SharedFs,
    /// The entry crossed the connection.
    Inline,
}

/// The counters since the last zeroing.
#[derive(Debug)]
pub struct ServerStats {
    counters: Mutex<Stats>,
    client_events: PathBuf,
    /// Where the counters are saved.
    saved: PathBuf,
    /// The tiers' counters as saved by earlier servers, added to this server's own.
    tier_baseline: Mutex<Vec<TierStats>>,
    /// Set by every change, cleared by a save.
    dirty: AtomicBool,
    /// Connections and refused peers since this server started (not saved, not zeroed).
    pub connections: ConnectionCounters,
    /// When this server started, for its uptime.
    pub started: (Instant, SystemTime),
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The Unix socket.
    Unix,
    /// The TCP gateway (`--listen`).
    Tcp,
}

impl Listener {
    /// Both, in the order figures list them.
    pub const ALL: [Listener; 2] = [Listener::Unix, Listener::Tcp];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Unix => "unix",
            Listener::Tcp => "tcp",
        }
    }
}

/// Why a peer was sent away before any request of its was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// A TCP connection past the gateway's connection cap, closed at once.
    ConnectionCap,
    /// A TCP peer that sent something else before a `Hello` with the token.
    NoHello,
    /// A TCP peer whose `Hello` showed a wrong token, or none.
    WrongToken,
    /// A TCP peer that showed no token within the handshake deadline.
    HandshakeTimeout,
    /// A TCP peer still to show the token, pushed out by a newer connection.
    PushedOut,
    /// A local peer of another uid.
    ForeignUid,
    /// A local peer whose uid the kernel did not tell.
    UnknownCredentials,
}

impl PeerRefusal {
    /// Every reason, in the order figures list them.
    pub const ALL: [PeerRefusal; 7] = [
        PeerRefusal::ConnectionCap,
        PeerRefusal::NoHello,
        PeerRefusal::WrongToken,
        PeerRefusal::HandshakeTimeout,
        PeerRefusal::PushedOut,
        PeerRefusal::ForeignUid,
        PeerRefusal::UnknownCredentials,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            PeerRefusal::ConnectionCap => "connection_cap",
            PeerRefusal::NoHello => "no_hello",
            PeerRefusal::WrongToken => "wrong_token",
            PeerRefusal::HandshakeTimeout => "handshake_timeout",
            PeerRefusal::PushedOut => "pushed_out",
            PeerRefusal::ForeignUid => "foreign_uid",
            PeerRefusal::UnknownCredentials => "unknown_credentials",
        }
    }
}

/// Connections accepted and open per listener, and peers refused per reason: relaxed
/// atomics, bumped once per connection, never on a request.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    accepted: [AtomicU64; Listener::ALL.len()],
    open: [AtomicU64; Listener::ALL.len()],
    refused: [AtomicU64; PeerRefusal::ALL.len()],
}

/// A connection being served; counted open until dropped.
#[derive(Debug)]
pub struct OpenConnection<'a> {
    counters: &'a ConnectionCounters,
    listener: Listener,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.counters.open[self.listener as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// [`ConnectionCounters`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFigures {
    /// Connections taken into service, per listener, in [`Listener::ALL`]'s order.
    pub accepted: [u64; Listener::ALL.len()],
    /// Connections being served now, likewise.
    pub open: [u64; Listener::ALL.len()],
    /// Peers refused, per reason, in [`PeerRefusal::ALL`]'s order.
    pub refused: [u64; PeerRefusal::ALL.len()],
}

impl ConnectionCounters {
    /// Counts a connection taken into service on `listener`, open until the guard drops.
    pub fn opened(&self, listener: Listener) -> OpenConnection<'_> {
        self.accepted[listener as usize].fetch_add(1, Ordering::Relaxed);
        self.open[listener as usize].fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            counters: self,
            listener,
        }
    }

    /// Counts a peer refused for `why`.
    pub fn refused(&self, why: PeerRefusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The figures now.
    pub fn figures(&self) -> ConnectionFigures {
        let load = |counters: &[AtomicU64]| -> Vec<u64> {
            counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
        };
        let mut figures = ConnectionFigures::default();
        figures.accepted.copy_from_slice(&load(&self.accepted));
        figures.open.copy_from_slice(&load(&self.open));
        figures.refused.copy_from_slice(&load(&self.refused));
        figures
    }
}

impl ServerStats {
    /// Counters saved at `saved`, starting from what an earlier server saved there. A file
    /// that cannot be read as statistics is set aside as `<saved>.unreadable` (so nothing
    /// is lost) and counting starts from zero.
    pub fn persistent(client_events: PathBuf, saved: PathBuf) -> Self {
        let earlier = load(&saved).unwrap_or_default();
        let baseline = earlier.tiers.clone();
        Self {
            counters: Mutex::new(Stats {
                tiers: Vec::new(),
                ..earlier
            }),
            client_events,
            saved,
            tier_baseline: Mutex::new(baseline),
            dirty: AtomicBool::new(false),
            connections: ConnectionCounters::default(),
            started: (Instant::now(), SystemTime::now()),
        }
    }

    /// The tiers' counters: `live` (this server's) plus what earlier servers saved, by tier
    /// name. A saved tier no longer configured is dropped.
    pub fn with_saved_tiers(&self, mut live: Vec<TierStats>) -> Vec<TierStats> {
        let baseline = self
            .tier_baseline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for tier in &mut live {
            if let Some(old) = baseline.iter().find(|b| b.name == tier.name) {
                tier.hits += old.hits;
                tier.misses += old.misses;
                tier.writes += old.writes;
                tier.errors += old.errors;
                tier.timeouts += old.timeouts;
                tier.skipped += old.skipped;
                tier.prefetched += old.prefetched;
                tier.untrusted += old.untrusted;
            }
        }
        live
    }

    /// Saves the counters with the tiers' `live` ones, if anything changed since the last
    /// save. Written to a temporary file and renamed, so a reader (or a crash) never sees
    /// half a file.
    pub fn save(&self, live_tiers: Vec<TierStats>) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let mut stats = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        stats.tiers = self.with_saved_tiers(live_tiers);
        let written = write_atomically(&self.saved, &stats);
        if written.is_err() {
            // Try again next time.
            self.dirty.store(true, Ordering::SeqCst);
        }
        written
    }

    /// Counts one event.
    pub fn count(&self, event: Counted<'_>) {
        self.dirty.store(true, Ordering::SeqCst);
        let mut s = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let language = |l: Option<&str>| l.unwrap_or("unknown").to_owned();
        match event {
            Counted::Hit {
                language: l,
                protocol,
                saved_ms,
            } => {
                s.cache_hits += 1;
                *s.hits_by_language.entry(language(l)).or_default() += 1;
                *s.hits_by_protocol.entry(protocol.to_string()).or_default() += 1;
                s.time_saved_ms = s.time_saved_ms.saturating_add(saved_ms);
            }
            Counted::Miss {
                language: l,
                protocol,
            } => {
                s.cache_misses += 1;
                *s.misses_by_language.entry(language(l)).or_default() += 1;
                *s.misses_by_protocol
                    .entry(protocol.to_string())
                    .or_default() += 1;
            }
            Counted::Write => s.cache_writes += 1,
            Counted::NonCacheable { reason } => {
                s.non_cacheable += 1;
                *s.non_cacheable_reasons
                    .entry(reason.to_owned())
                    .or_default() += 1;
            }
            Counted::Error => s.cache_errors += 1,
            Counted::Corrupt => s.corrupt_entries += 1,
            Counted::Transfer(Transfer::SharedFs) => s.transfers.shared_fs += 1,
            Counted::Transfer(Transfer::Inline) => s.transfers.inline += 1,
            Counted::Request { version } => {
                *s.requests_by_protocol
                    .entry(version.to_string())
                    .or_default() += 1;
            }
        }
    }

    /// The counters with the tiers' figures `tiers` and then the client events folded in (a
    /// client's own hit counts for the local tier).
    pub fn snapshot(&self, tiers: Vec<TierStats>) -> Stats {
        let mut stats = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        stats.tiers = tiers;
        if let Ok(log) = std::fs::read_to_string(&self.client_events) {
            stats.add_client_events(&log);
        }
        stats
    }

    /// Resets every counter, the client events log and the saved tiers' counters included.
    pub fn zero(&self) -> std::io::Result<()> {
        *self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Stats::default();
        self.tier_baseline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.dirty.store(true, Ordering::SeqCst);
        match std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.client_events)
        {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Reads saved counters; a missing file is `None`, an unreadable one is set aside.
fn load(path: &Path) -> Option<Stats> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read saved statistics");
            return None;
        }
    };
    match serde_json::from_slice::<Stats>(&text) {
        Ok(stats) => Some(stats),
        Err(e) => {
            let aside = path.with_extension("json.unreadable");
            tracing::warn!(path = %path.display(), error = %e, aside = %aside.display(),
                "saved statistics unreadable; set aside, counting from zero");
            let _ = std::fs::rename(path, &aside);
            None
        }
    }
}

fn write_atomically(path: &Path, stats: &Stats) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".stats-")
        .tempfile_in(dir)?;
    serde_json::to_writer(&mut tmp, stats).map_err(std::io::Error::other)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(name: &str, hits: u64) -> TierStats {
        TierStats {
            name: name.into(),
            hits,
            ..TierStats::default()
        }
    }

    #[test]
    fn saved_counters_are_read_back_by_the_next_server() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("stats.json");
        let events = dir.path().join("events");
        let first = ServerStats::persistent(events.clone(), saved.clone());
        first.count(Counted::Hit {
            language: Some("c"),
            protocol: 2,
            saved_ms: 1500,
        });
        first.count(Counted::Corrupt);
        first.save(vec![tier("local", 3)]).unwrap();

        let second = ServerStats::persistent(events, saved);
        second.count(Counted::Hit {
            language: Some("c"),
            protocol: 1,
            saved_ms: 500,
        });
        let stats = second.snapshot(Vec::new());
        assert_eq!(stats.cache_hits, 2);
        assert_eq!(stats.time_saved_ms, 2000);
        assert_eq!(stats.corrupt_entries, 1);
        assert_eq!(stats.hits_by_protocol.get("1"), Some(&1));
        assert_eq!(stats.hits_by_protocol.get("2"), Some(&1));
        let tiers = second.with_saved_tiers(vec![tier("local", 4), tier("redis", 1)]);
        assert_eq!(tiers, vec![tier("local", 7), tier("redis", 1)]);

        second.zero().unwrap();
        assert_eq!(second.snapshot(Vec::new()), Stats::default());
        assert_eq!(
            second.with_saved_tiers(vec![tier("local", 4)]),
            vec![tier("local", 4)]
        );
    }

    #[test]
    fn an_unreadable_stats_file_is_set_aside_and_counting_starts_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("stats.json");
        std::fs::write(&saved, b"{ not json").unwrap();
        let stats = ServerStats::persistent(dir.path().join("events"), saved.clone());
        assert_eq!(stats.snapshot(Vec::new()), Stats::default());
        assert_eq!(
            std::fs::read(dir.path().join("stats.json.unreadable")).unwrap(),
            b"{ not json"
        );
    }

    #[test]
    fn a_connection_counts_open_until_its_guard_drops_and_refusals_by_reason() {
        let counters = ConnectionCounters::default();
        let first = counters.opened(Listener::Tcp);
        let second = counters.opened(Listener::Tcp);
        drop(counters.opened(Listener::Unix));
        counters.refused(PeerRefusal::WrongToken);
        counters.refused(PeerRefusal::WrongToken);
        counters.refused(PeerRefusal::ConnectionCap);
        drop(first);
        let figures = counters.figures();
        assert_eq!(figures.accepted, [1, 2]);
        assert_eq!(figures.open, [0, 1]);
        assert_eq!(figures.refused, [1, 0, 2, 0, 0, 0, 0]);
        drop(second);
        assert_eq!(counters.figures().open, [0, 0]);
    }

    #[test]
    fn nothing_is_written_until_something_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("stats.json");
        let stats = ServerStats::persistent(dir.path().join("events"), saved.clone());
        stats.save(Vec::new()).unwrap();
        assert!(!saved.exists());
        stats.count(Counted::Write);
        stats.save(Vec::new()).unwrap();
        assert!(saved.exists());
    }
}
