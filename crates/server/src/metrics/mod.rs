//! What an operator watching a server sees: `hoard-server --metrics HOST:PORT` serves
//! Prometheus metrics at `GET /metrics` and a JSON status page at `GET /status` over HTTP.
//!
//! Nothing here runs on a request's path. A scrape gathers, at that moment, what the server
//! counts anyway ([`ServerStats`](crate::stats::ServerStats) and its connection counters, the
//! tiers' counters and latency histograms, the local store's size ledger) into one
//! [`Gathered`], from which `exposition` writes the Prometheus text and `status` the JSON, so
//! the two always show the same numbers. `http` serves them to anyone who can reach the
//! address: read-only, no entry bytes, no tier endpoints or credentials, tiny requests with
//! a deadline.

mod exposition;
mod http;
mod status;

use std::time::{Duration, UNIX_EPOCH};

use hoard_protocol::{MIN_PROTOCOL, Stats, TierStats};
use hoard_storage::tier::TierLatency;

use crate::shared::Shared;
use crate::stats::ConnectionFigures;

pub(crate) use http::{bind, serve};

/// The version a scrape reports: this crate's, which the workspace shares.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One tier: its counters, as `GetStats` reports them, and what a watcher wants beside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TierWatch {
    /// The counters (saved and live), the breaker's state and whether it is read-only.
    pub counters: TierStats,
    /// `disk` for the local store, else the kind's name (`memcached`, `s3`, ...).
    pub kind: &'static str,
    /// Seconds until an open breaker's next probe.
    pub retry_in_secs: Option<u64>,
}

impl TierWatch {
    /// Whether the tier is being called: its breaker is closed.
    pub fn healthy(&self) -> bool {
        self.counters.state == "closed"
    }

    /// Its state in words: `healthy`, `failing, retry in N s` or `failing, probing`, with
    /// `, read-only` after when it is never written.
    pub fn state_words(&self) -> String {
        let state = match (self.counters.state.as_str(), self.retry_in_secs) {
            ("closed", _) => "healthy".to_owned(),
            ("open", Some(secs)) => format!("failing, retry in {secs} s"),
            _ => "failing, probing".to_owned(),
        };
        if self.counters.read_only {
            format!("{state}, read-only")
        } else {
            state
        }
    }
}

/// Everything one scrape shows, gathered at once.
#[derive(Debug, Clone)]
pub(crate) struct Gathered {
    /// The counters exactly as `hoard --show-stats` sees them (client events folded in, the
    /// local store's size and limit set); the tiers are in [`Gathered::tiers`].
    pub stats: Stats,
    /// Entries in the local store.
    pub cache_entries: u64,
    /// The local store first, then the remote tiers in lookup order.
    pub tiers: Vec<TierWatch>,
    /// The remote tiers' get and put latencies since the server started.
    pub latencies: Vec<TierLatency>,
    /// Connections and refused peers since the server started.
    pub connections: ConnectionFigures,
    /// How long the server has run.
    pub uptime: Duration,
    /// When it started, in seconds since the Unix epoch.
    pub started_unix_seconds: f64,
    /// The protocol versions served, lowest and highest.
    pub protocols: (u32, u32),
    /// The server's version.
    pub version: &'static str,
}

/// Gathers what a scrape shows. Reads the client events log and the store's size ledger:
/// call it off the async workers.
pub(crate) fn gather(shared: &Shared) -> Gathered {
    // What `GetStats` answers, so a scrape and `--show-stats` agree.
    let saved_and_live = shared.stats.with_saved_tiers(shared.live_tiers());
    let mut stats = shared.stats.snapshot(saved_and_live);
    let local = shared.tiers.local();
    stats.cache_size_bytes = local.size_bytes();
    stats.cache_max_bytes = local.max_size();
    let live = shared.tiers.tier_stats();
    let tiers = std::mem::take(&mut stats.tiers)
        .into_iter()
        .map(|counters| {
            let kind = shared
                .config
                .tiers
                .iter()
                .find(|t| t.name == counters.name)
                .map_or("disk", |t| t.kind.name());
            let retry_in_secs = live
                .iter()
                .find(|t| t.name == counters.name)
                .and_then(|t| t.retry_in_ms)
                .map(|ms| ms.div_ceil(1000));
            TierWatch {
                counters,
                kind,
                retry_in_secs,
            }
        })
        .collect();
    let (started, started_at) = shared.stats.started;
    Gathered {
        stats,
        cache_entries: local.entry_count(),
        tiers,
        latencies: shared.tiers.tier_latencies(),
        connections: shared.stats.connections.figures(),
        uptime: started.elapsed(),
        started_unix_seconds: started_at
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        protocols: (
            MIN_PROTOCOL,
            shared
                .config
                .max_protocol
                .clamp(MIN_PROTOCOL, hoard_protocol::MAX_PROTOCOL),
        ),
        version: VERSION,
    }
}

#[cfg(test)]
pub(crate) mod sample {
    //! A [`Gathered`] with something in every field, for the renderers' tests.

    use super::*;
    use crate::stats::{Listener, PeerRefusal};
    use hoard_storage::tier::LatencySnapshot;

    fn tier(name: &str, kind: &'static str, state: &str, retry: Option<u64>) -> TierWatch {
        TierWatch {
            counters: TierStats {
                name: name.into(),
                hits: 3,
                misses: 2,
                writes: 1,
                state: state.into(),
                ..TierStats::default()
            },
            kind,
            retry_in_secs: retry,
        }
    }

    /// A server with a local store and a failing redis tier, after a few compiles.
    pub(crate) fn gathered() -> Gathered {
        let mut stats = Stats {
            cache_hits: 5,
            cache_misses: 2,
            cache_errors: 1,
            cache_writes: 2,
            cache_size_bytes: 4096,
            cache_max_bytes: 1 << 30,
            time_saved_ms: 1500,
            ..Stats::default()
        };
        stats.hits_by_language.insert("c".into(), 4);
        stats.hits_by_language.insert("rust".into(), 1);
        stats.misses_by_language.insert("c".into(), 2);
        stats.requests_by_protocol.insert("2".into(), 7);
        stats.non_cacheable = 1;
        stats.non_cacheable_reasons.insert("linking".into(), 1);
        stats.transfers.shared_fs = 3;
        stats.transfers.local = 2;
        let mut connections = ConnectionFigures::default();
        connections.accepted[Listener::Unix as usize] = 9;
        connections.open[Listener::Tcp as usize] = 1;
        connections.refused[PeerRefusal::WrongToken as usize] = 2;
        let mut redis = tier("redis", "redis", "open", Some(12));
        redis.counters.read_only = true;
        Gathered {
            stats,
            cache_entries: 4,
            tiers: vec![tier("local", "disk", "closed", None), redis],
            latencies: vec![TierLatency {
                tier: "redis".into(),
                op: "get",
                latency: LatencySnapshot {
                    buckets: vec![(0.001, 2), (0.01, 1), (f64::INFINITY, 0)],
                    count: 3,
                    sum_seconds: 0.0125,
                },
            }],
            connections,
            uptime: Duration::from_secs(90),
            started_unix_seconds: 1_700_000_000.0,
            protocols: (1, 2),
            version: VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_of_a_real_server_names_its_tiers_and_shows_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            crate::ServerConfig::new(dir.path().join("s.sock"), dir.path().join("cache"));
        let endpoint = "redis://alice:hunter2-secret@127.0.0.1:9/0";
        let redis = hoard_storage::TierKind::Redis {
            endpoint: endpoint.into(),
        };
        config.tiers = vec![hoard_storage::TierConfig::new(redis).named("team-redis")];
        let limits = crate::GatewayLimits::for_fd_limit(1024);
        let shared = Shared::open(config, 0, &limits).unwrap();
        let gathered = gather(&shared);
        let names: Vec<(&str, &str)> = gathered
            .tiers
            .iter()
            .map(|t| (t.counters.name.as_str(), t.kind))
            .collect();
        assert_eq!(names, [("local", "disk"), ("team-redis", "redis")]);
        assert_eq!(gathered.latencies.len(), 2, "a get and a put histogram");
        let pages = [
            exposition::render(gathered.clone(), exposition::Format::PrometheusText).unwrap(),
            exposition::render(gathered.clone(), exposition::Format::OpenMetrics).unwrap(),
            status::render(&gathered).to_string(),
        ];
        for page in pages {
            assert!(page.contains("team-redis"), "{page}");
            for secret in ["hunter2", "alice", "127.0.0.1:9"] {
                assert!(!page.contains(secret), "{secret} in {page}");
            }
        }
    }

    #[test]
    fn a_tiers_state_reads_as_words() {
        let [local, redis] = <[TierWatch; 2]>::try_from(sample::gathered().tiers).unwrap();
        assert_eq!(local.state_words(), "healthy");
        assert_eq!(redis.state_words(), "failing, retry in 12 s, read-only");
        let probing = TierWatch {
            counters: TierStats {
                state: "half_open".into(),
                ..redis.counters.clone()
            },
            retry_in_secs: None,
            ..redis
        };
        assert_eq!(probing.state_words(), "failing, probing, read-only");
        assert!(local.healthy() && !probing.healthy());
    }
}
