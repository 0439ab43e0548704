//! What every connection of one server shares: the configuration, the store and its tiers,
//! the counters, single flight, the inline budget and the bookkeeping of idle shutdown. The
//! request handlers (`v1`, `v2`, `dispatch`) take this and nothing of the listener or the
//! connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hoard_storage::{DiskStore, EntryStore, TieredStorage};
use tokio::sync::Notify;

use crate::ServerConfig;
use crate::error::ServerError;
use crate::flight::Flights;
use crate::gateway::{GatewayLimits, InlineBudget};
use crate::stats::{Counted, ServerStats};

/// What every connection of one server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub store: EntryStore,
    /// The pipeline's view of the same store, for v1 `Compile` requests.
    pub v1_cache: hoard_compiler::StorageCache,
    /// The local disk and the remote tiers behind it.
    pub tiers: Arc<TieredStorage>,
    pub stats: Arc<ServerStats>,
    /// Puts being packed and stored after their answer went out; waited for at exit.
    pub background: tokio_util::task::TaskTracker,
    /// The server's own uid: only peers with this uid get file operations.
    pub own_uid: u32,
    pub shutdown: Notify,
    /// Keys some connection is compiling right now, for single flight.
    pub flights: Arc<Flights>,
    /// Connections being served.
    pub active: AtomicUsize,
    last_active: Mutex<Instant>,
    /// What inline puts in flight may hold together.
    pub inline_budget: InlineBudget,
}

impl Shared {
    /// Opens the store and tiers and gathers what every connection shares.
    pub fn open(
        config: ServerConfig,
        own_uid: u32,
        limits: &GatewayLimits,
    ) -> Result<Arc<Shared>, ServerError> {
        let cache_dir = config.cache_dir.join("cache");
        let disk = DiskStore::open(&cache_dir, config.cache_size)?;
        // Never connects here: a tier that is down now is picked up when it comes back.
        let tiers = Arc::new(
            TieredStorage::new(disk, config.tiers.clone())?
                .with_entry_limits(entry_limits(&config))
                .with_prefetch(config.prefetch)
                .with_trust(std::sync::Arc::clone(&config.trust)),
        );
        let stats = Arc::new(ServerStats::persistent(
            config.client_events_path(),
            config.stats_path(),
        ));
        Ok(Arc::new(Shared {
            store: entry_store(&tiers, &config, &stats),
            v1_cache: hoard_compiler::StorageCache::new(entry_store(&tiers, &config, &stats)),
            tiers,
            stats,
            background: tokio_util::task::TaskTracker::new(),
            own_uid,
            shutdown: Notify::new(),
            flights: Arc::new(Flights::new(config.single_flight_wait)),
            active: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            inline_budget: InlineBudget::new(limits),
            config,
        }))
    }

    /// Notes activity, for the idle timeout.
    pub fn touch(&self) {
        *self
            .last_active
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Whether `key` is in the local store now: one `stat`, no read.
    pub fn stored_locally(&self, key: &hoard_storage::CacheKey) -> bool {
        self.tiers.local().contains(key)
    }

    /// How long no connection has been open, or `None` while one is.
    pub fn idle_for(&self) -> Option<Duration> {
        (self.active.load(Ordering::SeqCst) == 0).then(|| {
            self.last_active
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed()
        })
    }

    /// This server's own tier counters, as they travel.
    pub fn live_tiers(&self) -> Vec<hoard_protocol::TierStats> {
        self.tiers
            .tier_stats()
            .into_iter()
            .map(|t| hoard_protocol::TierStats {
                name: t.name,
                hits: t.hits,
                misses: t.misses,
                writes: t.writes,
                errors: t.errors,
                timeouts: t.timeouts,
                skipped: t.skipped,
                prefetched: t.prefetched,
                untrusted: t.untrusted,
                read_only: t.read_only,
                state: t.state,
                retry_in_ms: t.retry_in_ms,
            })
            .collect()
    }

    /// Saves the counters for the next server; a failure only costs what it would have kept.
    pub fn save_stats(&self) {
        if let Err(e) = self.stats.save(self.live_tiers()) {
            tracing::debug!(path = %self.config.stats_path().display(), error = %e,
                "cannot save statistics");
        }
    }
}

/// The entry store over `tiers`, packing local entries as configured.
fn entry_store(
    tiers: &Arc<TieredStorage>,
    config: &ServerConfig,
    stats: &Arc<ServerStats>,
) -> EntryStore {
    let format = if config.local_compression {
        hoard_storage::entry::EntryFormat::Zstd
    } else {
        hoard_storage::entry::EntryFormat::Raw
    };
    let stats = stats.clone();
    EntryStore::new(tiers.clone())
        .with_limits(entry_limits(config))
        .with_format(format)
        .with_hard_links(config.hard_links)
        .on_corrupt(Arc::new(move |_| stats.count(Counted::Corrupt)))
}

/// What an entry from any tier may declare: no file over the largest output this server
/// would have read for a put.
fn entry_limits(config: &ServerConfig) -> hoard_storage::EntryLimits {
    hoard_storage::EntryLimits {
        max_file_size: config.max_output_size,
        ..hoard_storage::EntryLimits::default()
    }
}
