//! The server's counters. Client-side events (non-cacheable invocations, local fallbacks)
//! live in the client events file and are folded in when stats are read.

use std::path::PathBuf;
use std::sync::Mutex;

use hoard_protocol::Stats;

/// What happened to one request, as the counters see it.
#[derive(Debug, Clone, Copy)]
pub enum Counted<'a> {
    /// A `CacheGet` hit.
    Hit { language: Option<&'a str> },
    /// A `CacheGet` miss.
    Miss { language: Option<&'a str> },
    /// A `CachePut` stored.
    Write,
    /// A request failed on the cache path.
    Error,
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
}

impl ServerStats {
    /// Counters that fold in the client events log at `client_events`.
    pub fn new(client_events: PathBuf) -> Self {
        Self {
            counters: Mutex::new(Stats::default()),
            client_events,
        }
    }

    /// Counts one event.
    pub fn count(&self, event: Counted<'_>) {
        let mut s = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let language = |l: Option<&str>| l.unwrap_or("unknown").to_owned();
        match event {
            Counted::Hit { language: l } => {
                s.cache_hits += 1;
                *s.hits_by_language.entry(language(l)).or_default() += 1;
            }
            Counted::Miss { language: l } => {
                s.cache_misses += 1;
                *s.misses_by_language.entry(language(l)).or_default() += 1;
            }
            Counted::Write => s.cache_writes += 1,
            Counted::NonCacheable { reason } => {
                s.non_cacheable += 1;
                *s.non_cacheable_reasons
                    .entry(reason.to_owned())
                    .or_default() += 1;
            }
            Counted::Error => s.cache_errors += 1,
            Counted::Transfer(Transfer::SharedFs) => s.transfers.shared_fs += 1,
            Counted::Transfer(Transfer::Inline) => s.transfers.inline += 1,
            Counted::Request { version } => {
                *s.requests_by_protocol
                    .entry(version.to_string())
                    .or_default() += 1;
            }
        }
    }

    /// The counters with the client events folded in.
    pub fn snapshot(&self) -> Stats {
        let mut stats = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Ok(log) = std::fs::read_to_string(&self.client_events) {
            stats.add_client_events(&log);
        }
        stats
    }

    /// Resets every counter, the client events log included.
    pub fn zero(&self) -> std::io::Result<()> {
        *self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Stats::default();
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
