//! [`TieredStorage`]: the local disk first, then the remote tiers in order, with backfill on
//! a lower-tier hit and asynchronous, bounded remote writes.
//!
//! The caller only ever waits for the local disk and for remote *reads*; every remote write
//! (a put, a backfill of an upper remote tier, a remove) goes through one bounded queue served
//! by a background task, so a slow or dead tier never holds up a compile. When the queue is
//! full the write is dropped and counted: a cache may forget, it must not block.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, mpsc};

use super::config::{TierConfig, TierConfigError};
use super::prefetch::{Prefetch, SegmentJob};
use super::remote::{Counters, RemoteTier};
pub(crate) use super::remotes::Remotes;
use super::{TierLatency, TierStats};
use crate::entry::EntryLimits;
use crate::signing::{Signer, Trust};
use crate::{CacheKey, DiskStore, Located, Storage, StorageError};

/// How long a compile waits on a prefetch of its key before also fetching the key itself.
const JOIN_PATIENCE: Duration = Duration::from_millis(20);

/// The local disk tier's name, in statistics and in where a hit was found.
pub const LOCAL_TIER: &str = "local";

/// Bounds of the remote write queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Writes waiting or running at most; more are dropped and counted as skipped.
    pub max_jobs: usize,
    /// Bytes of entries waiting or being written at most, so a burst of large entries
    /// cannot hold unbounded memory.
    pub max_bytes: u64,
    /// Remote writes running at once.
    pub concurrency: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_jobs: 1024,
            max_bytes: 256 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

/// The local [`DiskStore`] followed by remote tiers (memcached, redis, S3, WebDAV, a shared
/// directory), as one [`Storage`].
///
/// * `get` tries the local disk, then each remote tier in order. What a remote tier returns
///   is read up to the tier's entry limit and verified whole (checksums, declared sizes
///   against [`EntryLimits`], every file's blake3) before it is used; a bad entry is counted
///   as the tier's error and the next tier is tried. A sound hit in a lower tier is then
///   written to the local disk at once and queued for every writable remote tier above it.
///   A remote failure or timeout is counted and the next tier is tried.
/// * `put` writes the local disk at once and queues the entry for every writable remote tier
///   that accepts its size (larger entries are skipped and counted, not chunked).
/// * `remove` removes from the local disk at once and queues removal from writable remotes;
///   `remove_corrupt` (an entry found damaged) removes the local copy only.
///
/// Only the local disk's failures reach the caller. Remote writes run on a task spawned on
/// the runtime of the first call that queues one; call [`TieredStorage::flush`] before that
/// runtime ends (shutdown, a one-shot embedded compile) or queued writes are lost.
pub struct TieredStorage {
    local: DiskStore,
    /// What an entry from a remote tier may declare.
    limits: EntryLimits,
    local_counters: Arc<Counters>,
    shared: Arc<Shared>,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

/// What the background writer and the prefetcher share with the storage.
pub(crate) struct Shared {
    pub(crate) tiers: Vec<RemoteTier>,
    pub(crate) prefetch: Prefetch,
    /// What this chain signs with and whom it trusts ([`TieredStorage::with_trust`]).
    trust: OnceLock<Arc<Trust>>,
    limits: QueueLimits,
    /// Jobs queued or running, and their bytes; a job's [`Reservation`] gives them back.
    pending: AtomicUsize,
    pending_bytes: AtomicU64,
    idle: Notify,
}

enum Work {
    /// An entry to put; `own`: this machine's (signed, when it has a signing key), not a
    /// backfill of another tier's (which goes as it came: a machine vouches only for what
    /// it stored itself).
    Put {
        entry: Bytes,
        own: bool,
    },
    Remove,
    /// A prefetch index segment ([`prefetch`]).
    Segment(Arc<SegmentJob>),
}

struct Job {
    tier: usize,
    key: CacheKey,
    work: Work,
    /// Released however the job ends: done, or dropped with a channel or a runtime.
    _reservation: Reservation,
}

struct Reservation {
    shared: Arc<Shared>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared
            .pending_bytes
            .fetch_sub(self.bytes, Ordering::SeqCst);
        if self.shared.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

impl std::fmt::Debug for TieredStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStorage")
            .field("local", &self.local)
            .field("tiers", &self.shared.tiers)
            .finish_non_exhaustive()
    }
}

impl TieredStorage {
    /// The chain `local`, then `tiers` in order, with the default queue limits. Checks every
    /// tier's configuration; connects to nothing, so a tier that is down now is not an error
    /// and is used once it answers.
    pub fn new(local: DiskStore, tiers: Vec<TierConfig>) -> Result<Self, StorageError> {
        Self::with_queue_limits(local, tiers, QueueLimits::default())
    }

    /// Like [`TieredStorage::new`] with explicit bounds for the remote write queue.
    pub fn with_queue_limits(
        local: DiskStore,
        tiers: Vec<TierConfig>,
        limits: QueueLimits,
    ) -> Result<Self, StorageError> {
        let mut remotes: Vec<RemoteTier> = Vec::with_capacity(tiers.len());
        for config in tiers {
            if config.name == LOCAL_TIER || remotes.iter().any(|t| t.config.name == config.name) {
                return Err(TierConfigError::Duplicate(config.name).into());
            }
            remotes.push(RemoteTier::new(config)?);
        }
        Ok(Self {
            local,
            limits: EntryLimits::default(),
            local_counters: Arc::default(),
            shared: Arc::new(Shared {
                prefetch: Prefetch::new(
                    remotes.len(),
                    remotes.iter().any(|t| t.packs() && t.writable()),
                ),
                tiers: remotes,
                trust: OnceLock::new(),
                limits: QueueLimits {
                    max_jobs: limits.max_jobs.max(1),
                    concurrency: limits.concurrency.max(1),
                    ..limits
                },
                pending: AtomicUsize::new(0),
                pending_bytes: AtomicU64::new(0),
                idle: Notify::new(),
            }),
            queue: Mutex::new(None),
        })
    }

    /// Refuses remote entries declaring more than `limits` (by default
    /// [`EntryLimits::default`]: the server's default output limit) before any of their
    /// files is decompressed.
    #[must_use]
    pub fn with_entry_limits(mut self, limits: EntryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Signs what this machine puts into remote tiers with `trust.signer`, and accepts from
    /// each tier whose [`TierConfig::verify`] is set only entries signed by one of
    /// `trust.trusted` ([`crate::signing`]). Set it once, before the chain is used.
    #[must_use]
    pub fn with_trust(self, trust: Arc<Trust>) -> Self {
        if self.shared.trust.set(trust).is_err() {
            tracing::error!("the chain's signing keys were set twice; the first stay");
        }
        self
    }

    /// Whether machines using this chain leave a prefetch index in the remote tiers and
    /// read ahead along other machines' (module `prefetch`); on by default.
    #[must_use]
    pub fn with_prefetch(self, enabled: bool) -> Self {
        self.shared.prefetch.set_enabled(enabled);
        self
    }

    /// How long a loaded prefetch index is used before the next lookup loads it again, so a
    /// long-running server sees what other machines stored since (5 minutes by default).
    #[must_use]
    pub fn with_index_refresh(self, every: Duration) -> Self {
        self.shared.prefetch.set_refresh(every);
        self
    }

    /// Starts loading the remote tiers' prefetch indexes in the background (which also
    /// opens a connection to each), so the first compile's remote hit can prefetch at once.
    /// Call it on the runtime that serves the chain; without one it does nothing, and the
    /// indexes load at the first local miss.
    pub fn warm_up(&self) {
        self.shared.prefetch.load_indexes(&self.remotes());
    }

    /// The local tier.
    pub fn local(&self) -> &DiskStore {
        &self.local
    }

    /// Figures for every tier, the local disk first (named `local`).
    pub fn tier_stats(&self) -> Vec<TierStats> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let local = &self.local_counters;
        let mut stats = vec![TierStats {
            name: LOCAL_TIER.to_owned(),
            hits: load(&local.hits),
            misses: load(&local.misses),
            writes: load(&local.writes),
            errors: load(&local.errors),
            timeouts: 0,
            skipped: 0,
            prefetched: 0,
            untrusted: 0,
            state: "closed".to_owned(),
            retry_in_ms: None,
            read_only: false,
        }];
        stats.extend(self.shared.tiers.iter().map(|t| {
            TierStats {
                name: t.config.name.clone(),
                hits: load(&t.counters.hits),
                misses: load(&t.counters.misses),
                writes: load(&t.counters.writes),
                errors: load(&t.counters.errors),
                timeouts: load(&t.counters.timeouts),
                skipped: load(&t.counters.skipped),
                prefetched: load(&t.counters.prefetched),
                untrusted: load(&t.counters.untrusted),
                state: t.state_name().to_owned(),
                retry_in_ms: t
                    .retry_in()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                read_only: !t.writable(),
            }
        }));
        stats
    }

    /// How long each remote tier's gets and puts have taken since the chain was built (the
    /// local disk is not timed: its hits are the hot path). Not reset by
    /// [`TieredStorage::zero_tier_stats`].
    pub fn tier_latencies(&self) -> Vec<TierLatency> {
        let mut latencies = Vec::with_capacity(2 * self.shared.tiers.len());
        for tier in &self.shared.tiers {
            for (op, histogram) in [("get", &tier.get_latency), ("put", &tier.put_latency)] {
                latencies.push(TierLatency {
                    tier: tier.config.name.clone(),
                    op,
                    latency: histogram.snapshot(),
                });
            }
        }
        latencies
    }

    /// Sets every tier's counters to zero (breaker states are left as they are).
    pub fn zero_tier_stats(&self) {
        self.local_counters.zero();
        for tier in &self.shared.tiers {
            tier.counters.zero();
        }
    }

    /// Waits until every queued remote write has finished, or `timeout` has passed.
    /// Returns whether the queue drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        if let Some(job) = self.shared.prefetch.take_pending() {
            self.enqueue_segment(job);
        }
        let drained = async {
            loop {
                let idle = self.shared.idle.notified();
                if self.shared.pending.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, drained).await.is_ok()
    }

    /// Queues `work` on tier `tier`; counts a skip when the queue is full or there is no
    /// runtime to run it.
    fn enqueue(&self, tier: usize, key: &CacheKey, work: Work) {
        let bytes = match &work {
            Work::Put { entry, .. } => entry.len() as u64,
            Work::Remove => 0,
            Work::Segment(job) => job.bytes(),
        };
        let shared = &self.shared;
        let skip = || {
            Counters::bump(&shared.tiers[tier].counters.skipped);
            tracing::debug!(tier = %shared.tiers[tier].config.name, %key,
                "remote write queue full, write dropped");
        };
        // Reserve room first, so the bounds hold however many callers race here.
        if shared.pending.fetch_add(1, Ordering::SeqCst) >= shared.limits.max_jobs {
            shared.pending.fetch_sub(1, Ordering::SeqCst);
            return skip();
        }
        let reservation = Reservation {
            shared: Arc::clone(shared),
            bytes,
        };
        if shared.pending_bytes.fetch_add(bytes, Ordering::SeqCst) + bytes > shared.limits.max_bytes
        {
            drop(reservation);
            return skip();
        }
        let job = Job {
            tier,
            key: *key,
            work,
            _reservation: reservation,
        };
        let Some(sender) = self.sender() else {
            return skip();
        };
        if sender.try_send(job).is_err() {
            skip();
        }
    }

    /// The queue's sender, starting the writer task on the current runtime when there is
    /// none yet or the runtime that ran it has gone.
    fn sender(&self) -> Option<mpsc::Sender<Job>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = queue.as_ref().filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel(self.shared.limits.max_jobs);
        runtime.spawn(write_remotes(Arc::clone(&self.shared), rx));
        *queue = Some(tx.clone());
        Some(tx)
    }

    /// Queues `entry` for each writable tier among `tiers` (indices), counting the ones
    /// it is too large for; `own` as [`Work::Put`] says.
    fn enqueue_puts(
        &self,
        tiers: std::ops::Range<usize>,
        key: &CacheKey,
        entry: &Bytes,
        own: bool,
    ) {
        for i in tiers {
            let tier = &self.shared.tiers[i];
            if !tier.writable() {
                continue;
            }
            // A raw entry travels compressed: whether it fits is known once the writer has
            // compressed it.
            if tier.accepts(entry.len()) || crate::entry::is_raw(entry) {
                self.enqueue(
                    i,
                    key,
                    Work::Put {
                        entry: entry.clone(),
                        own,
                    },
                );
            } else {
                Counters::bump(&tier.counters.skipped);
                tracing::debug!(tier = %tier.config.name, %key, size = entry.len(),
                    "entry larger than the tier accepts, not written");
            }
        }
    }

    /// Writes a remote hit's entry to the local disk after the hit is answered, off the
    /// build's critical path (a write and the size ledger's lock, for every remote hit of a
    /// first build). Counted as pending, so [`TieredStorage::flush`] waits for it; without a
    /// runtime to run it on, it is written here and now.
    fn backfill_local(&self, key: &CacheKey, entry: Bytes) {
        let remotes = self.remotes();
        let key = *key;
        let write = async move {
            // A failure leaves the hit good; only the local copy is missing.
            remotes.write_local(&key, entry).await;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return futures::executor::block_on(write);
        };
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        let reservation = Reservation {
            shared: Arc::clone(&self.shared),
            bytes: 0,
        };
        runtime.spawn(async move {
            write.await;
            drop(reservation);
        });
    }

    /// Queues a prefetch index segment for every writable tier.
    fn enqueue_segment(&self, job: SegmentJob) {
        let Some(first) = job.keys.first().copied() else {
            return;
        };
        let job = Arc::new(job);
        for (i, tier) in self.shared.tiers.iter().enumerate() {
            if tier.writable() {
                self.enqueue(i, &first, Work::Segment(Arc::clone(&job)));
            }
        }
    }

    /// What a background task needs to read the remote tiers into the local disk.
    fn remotes(&self) -> Remotes {
        Remotes {
            shared: Arc::clone(&self.shared),
            local: self.local.clone(),
            local_counters: Arc::clone(&self.local_counters),
            limits: self.limits,
        }
    }

    fn wants_remote_writes(&self) -> bool {
        self.shared.tiers.iter().any(RemoteTier::writable)
    }
}

/// The background writer: runs queued jobs, a few at a time, until the storage is dropped.
async fn write_remotes(shared: Arc<Shared>, mut rx: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(shared.limits.concurrency));
    while let Some(job) = rx.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let tier = &shared.tiers[job.tier];
            let trust = shared.trust();
            let signer = trust.signer.as_ref();
            match &job.work {
                Work::Put { entry, own } => {
                    let sign = if *own { signer } else { None };
                    match for_remote(&job.key, entry.clone(), sign).await {
                        Some(entry) if tier.accepts(entry.len()) => tier.put(&job.key, entry).await,
                        Some(entry) => {
                            Counters::bump(&tier.counters.skipped);
                            tracing::debug!(tier = %tier.config.name, key = %job.key, size = entry.len(),
                                "entry larger than the tier accepts, not written");
                        }
                        None => {
                            tracing::warn!(key = %job.key, "not sending a damaged entry to a remote tier");
                        }
                    }
                }
                Work::Remove => tier.remove(&job.key).await,
                Work::Segment(segment) => {
                    super::segment_writer::write_segment(tier, segment, signer).await;
                }
            }
            drop(slot);
            drop(job);
        });
    }
}

/// The bytes as remote tiers hold them, signed by `signer` as the entry under `key` when
/// one is given: a raw local entry is re-encoded compressed (off the async workers), or
/// `None` if it is damaged; an unsigned compressed entry goes as it is.
pub(crate) async fn for_remote(
    key: &CacheKey,
    entry: Bytes,
    signer: Option<&Signer>,
) -> Option<Bytes> {
    if signer.is_none() && !crate::entry::is_raw(&entry) {
        return Some(entry);
    }
    let key = *key;
    let signer = signer.cloned();
    let recompress = move || match crate::entry::for_remote(&entry, &key, signer.as_ref()) {
        Ok(std::borrow::Cow::Borrowed(_)) => Some(entry.clone()),
        Ok(std::borrow::Cow::Owned(compressed)) => Some(Bytes::from(compressed)),
        Err(_) => None,
    };
    tokio::task::spawn_blocking(recompress).await.ok().flatten()
}

impl Shared {
    /// What the chain signs with and whom it trusts (nothing, unless set).
    pub(crate) fn trust(&self) -> Arc<Trust> {
        Arc::clone(self.trust.get_or_init(Arc::default))
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.get_located(key).await?.map(|found| found.entry))
    }

    async fn get_located(&self, key: &CacheKey) -> Result<Option<Located>, StorageError> {
        match self.local.get(key).await {
            Ok(Some(entry)) => {
                Counters::bump(&self.local_counters.hits);
                return Ok(Some(Located {
                    entry,
                    tier: Some(LOCAL_TIER.to_owned()),
                    signer: None,
                }));
            }
            Ok(None) => Counters::bump(&self.local_counters.misses),
            Err(e) => {
                Counters::bump(&self.local_counters.errors);
                return Err(e);
            }
        }
        if self.shared.tiers.is_empty() {
            return Ok(None);
        }
        let remotes = self.remotes();
        self.shared.prefetch.load_indexes(&remotes);
        for (i, tier) in self.shared.tiers.iter().enumerate() {
            // A key the prefetcher is fetching is waited for, not fetched twice; the
            // prefetcher writes it to the local disk.
            let (entry, prefetched) = match self.shared.prefetch.joinable(i, key) {
                Some(fetch) => {
                    // The prefetcher's fetch may be a whole pack part: if it has not
                    // answered within a moment, this compile also asks for its own entry,
                    // and whichever brings a sound entry first wins (a miss of its own
                    // never wins: the pack may still hold it).
                    let own = async {
                        tokio::time::sleep(JOIN_PATIENCE).await;
                        match remotes.fetch_verified(i, key, false).await {
                            Some(entry) => entry,
                            None => std::future::pending().await,
                        }
                    };
                    let (entry, prefetched) = tokio::select! {
                        entry = fetch => (entry, true),
                        entry = own => (Some(entry), false),
                    };
                    if entry.is_none() {
                        Counters::bump(&tier.counters.misses);
                    }
                    (entry, prefetched)
                }
                None => (remotes.fetch_verified(i, key, true).await, false),
            };
            let Some(entry) = entry else {
                continue;
            };
            Counters::bump(&tier.counters.hits);
            self.shared.prefetch.after_hit(&remotes, i, key);
            // Backfill: the next get of this key is a local hit, and remote tiers above this
            // one (faster, by the configured order) get it for other machines.
            self.enqueue_puts(0..i, key, &entry.entry, false);
            if !prefetched {
                self.backfill_local(key, entry.entry.clone());
            }
            return Ok(Some(Located {
                entry: Vec::from(entry.entry),
                tier: Some(tier.config.name.clone()),
                signer: entry.signer.map(|name| name.to_string()),
            }));
        }
        Ok(None)
    }

    async fn deliver(
        &self,
        key: &CacheKey,
        outputs: &[crate::OutputPath],
        link: bool,
    ) -> Result<Option<crate::Delivery>, StorageError> {
        // Only the local tier delivers; a local miss is counted by the `get_located` the
        // caller falls back to.
        match self.local.deliver(key, outputs, link).await {
            Ok(Some(result)) => {
                Counters::bump(&self.local_counters.hits);
                Ok(Some(crate::Delivery {
                    result,
                    tier: Some(LOCAL_TIER.to_owned()),
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                Counters::bump(&self.local_counters.errors);
                Err(e)
            }
        }
    }

    async fn put(&self, key: &CacheKey, entry: Vec<u8>) -> Result<(), StorageError> {
        // Queued before the local write, so a failing local disk does not keep the entry
        // from the shared tiers.
        if self.wants_remote_writes() {
            let shared = Bytes::copy_from_slice(&entry);
            self.enqueue_puts(0..self.shared.tiers.len(), key, &shared, true);
            if let Some(job) = self.shared.prefetch.note_put(key, &shared) {
                self.enqueue_segment(job);
            }
        }
        match self.local.put(key, entry).await {
            Ok(()) => {
                Counters::bump(&self.local_counters.writes);
                Ok(())
            }
            Err(e) => {
                Counters::bump(&self.local_counters.errors);
                Err(e)
            }
        }
    }

    /// Only the local copy goes, wherever the damage was seen: a remote copy was verified
    /// before it was delivered (what is wrong with it here was found after its backfill,
    /// which is what is removed), and one machine's bad disk or one reader's damaged view
    /// must never delete a shared cache's entries.
    async fn remove_corrupt(&self, key: &CacheKey, tier: Option<&str>) -> Result<(), StorageError> {
        tracing::debug!(%key, tier = tier.unwrap_or(LOCAL_TIER), "removing the local copy of a corrupt entry");
        self.local.remove(key).await.inspect_err(|_| {
            Counters::bump(&self.local_counters.errors);
        })
    }

    async fn remove(&self, key: &CacheKey) -> Result<(), StorageError> {
        for (i, tier) in self.shared.tiers.iter().enumerate() {
            if tier.writable() {
                self.enqueue(i, key, Work::Remove);
            }
        }
        self.local.remove(key).await.inspect_err(|_| {
            Counters::bump(&self.local_counters.errors);
        })
    }
}
