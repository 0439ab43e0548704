//! Remote storage tiers and the tiered chain: the local disk LRU first, then shared stores
//! (redis, S3 and WebDAV, reached through Apache OpenDAL; memcached, through hoard's pooled
//! client (module `memcached`); a Bazel remote cache, through REAPI's gRPC services (module
//! `reapi`); and a shared directory, whose files are opened here without
//! following links).
//!
//! * [`config`]: what a tier is ([`TierConfig`], [`TierKind`]) and the `HOARD_*` variables
//!   that describe a chain ([`tiers_from_env`]);
//! * [`TieredStorage`]: the chain as one [`crate::Storage`], with backfill, an asynchronous
//!   bounded write queue, per-tier deadlines and circuit breakers, and [`TierStats`];
//! * [`TierLatency`]: how long each remote tier's gets and puts take, for a watcher.

mod bounded_read;
mod breaker;
mod chain;
mod cloud;
pub mod config;
mod index;
mod latency;
mod memcached;
mod operators;
mod prefetch;
mod reapi;
mod remote;
mod remotes;
mod segment_writer;
mod shared_dir;
mod slots;

pub use remote::DEFAULT_MAX_REMOTE_ENTRY;

pub use chain::{LOCAL_TIER, QueueLimits, TieredStorage};
pub use config::{SizeError, TierConfig, TierConfigError, TierKind, parse_size, tiers_from_env};
pub use latency::{LATENCY_BOUNDS_SECONDS, LatencySnapshot, TierLatency};

/// Figures for one tier of a [`TieredStorage`], as the stats report them (serialises to the
/// stats JSON's `tiers` array items).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TierStats {
    /// `local` for the local disk, else the tier's configured name.
    pub name: String,
    /// Gets answered by this tier.
    pub hits: u64,
    /// Gets this tier did not have.
    pub misses: u64,
    /// Entries written to this tier (puts and backfills).
    pub writes: u64,
    /// Operations that failed, and what the tier returned that was refused: something other
    /// than a regular file at an entry's path (a link, a FIFO, a device), an entry over the
    /// size limit, or one that failed verification.
    pub errors: u64,
    /// Operations that ran out of time.
    pub timeouts: u64,
    /// Writes not attempted: entry too large for the tier, write queue full, or the tier's
    /// breaker open.
    pub skipped: u64,
    /// Entries read ahead from this tier into the local disk, because a compile hit another
    /// entry the same machine stored at the same time (prefetch). Always 0 for the local
    /// disk.
    pub prefetched: u64,
    /// Entries refused because they were not signed by a trusted key as the entry under
    /// their key, on a tier whose entries must be ([`crate::signing`]). Always 0 for the
    /// local disk, which is the user's own.
    pub untrusted: u64,
    /// The tier's circuit breaker: `closed` (in use), `open` (failing, not called) or
    /// `half_open` (due for, or running, a probe). Always `closed` for the local disk.
    pub state: String,
    /// While the breaker is `open`: milliseconds until it lets a probe through. Left out of
    /// the JSON otherwise, and absent from servers that predate it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_in_ms: Option<u64>,
    /// Whether the tier is never written.
    pub read_only: bool,
}
