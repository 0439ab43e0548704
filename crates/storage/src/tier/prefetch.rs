//! Prefetch: a machine that starts from an empty disk reads ahead what other machines stored,
//! so its first build pays a remote tier's latency a few times, not once or twice per compile.
//!
//! * **Writing.** Every key a machine puts is noted; every [`MAX_SEGMENT_KEYS`] puts, when
//!   the oldest noted put is [`SEGMENT_AGE`] old, and when the chain is flushed (server
//!   shutdown), the keys go to each writable tier as one [`Segment`] object, in the order
//!   they were stored, and the segment is put at the head of the tier's [`Recent`] list.
//!   The list is read, changed and written back: two writers racing lose one of their
//!   segments from it, which only costs a reader that prefetch. On a tier where a request
//!   costs more than the bytes it carries (S3, WebDAV: [`RemoteTier::packs`]), the
//!   segment's entries also go as one [`Pack`] (up to [`MAX_PACK_BYTES`]).
//! * **Reading.** The server loads each tier's newest segments at startup
//!   ([`super::TieredStorage::warm_up`]), or at the first local miss. When a remote hit's key
//!   is in a segment, the rest of that segment (from the hit on, then what came before it)
//!   is fetched in the background, a few at a time (or as its pack, one request, then each
//!   entry the pack lacks), verified like any remote read and written to the local disk. A compile that asks for a key being prefetched waits for
//!   that fetch instead of making its own.
//!
//! Bounded: at most [`MAX_PREFETCH_ENTRIES`] entries and a quarter of the local disk's size
//! per process, [`PREFETCH_CONCURRENCY`] fetches at once per tier, segments at most
//! [`MAX_SEGMENT_AGE`] old. The index is a hint (see [`super::index`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;

use super::chain::Remotes;
use super::index::{MAX_PACK_BYTES, MAX_SEGMENT_KEYS, Pack, Recent, Segment, pack_key, recent_key};
use super::remote::{Counters, RemoteTier};
use super::remotes::Verified;
use super::slots;
use crate::CacheKey;

/// A segment is written once its oldest key is this old (at the next put).
pub(crate) const SEGMENT_AGE: Duration = Duration::from_secs(30);
/// Segments older than this are not loaded (and are dropped from the list).
pub(crate) const MAX_SEGMENT_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Entries one process prefetches at most.
pub(crate) const MAX_PREFETCH_ENTRIES: usize = 8192;
/// Fetches running at once per tier, beside the compiles' own.
pub(crate) const PREFETCH_CONCURRENCY: usize = 8;
/// A server's index is loaded again at its first lookup this long after the last load, so
/// a long-running server sees what other machines stored since.
pub(crate) const INDEX_REFRESH: Duration = Duration::from_secs(300);
/// Remote hits remembered while the index is still loading, to prefetch from once it is.
const MAX_EARLY_HITS: usize = 256;

/// A fetch that a compile and the prefetcher share: whichever polls it first drives it, and
/// both get its verified entry.
pub(crate) type SharedFetch = Shared<BoxFuture<'static, Option<Verified>>>;

/// A pack's verified entries, shared by the fetches of its keys.
type SharedPack = Shared<BoxFuture<'static, Arc<HashMap<CacheKey, Bytes>>>>;

/// What a writer sends to each tier for one segment.
pub(crate) struct SegmentJob {
    pub(crate) keys: Vec<CacheKey>,
    /// The entries as they were put, for a pack (only kept when some tier packs).
    pub(crate) bodies: Vec<(CacheKey, Bytes)>,
}

impl SegmentJob {
    /// The bytes it holds, for the write queue's bounds.
    pub(crate) fn bytes(&self) -> u64 {
        32 * self.keys.len() as u64
            + self
                .bodies
                .iter()
                .map(|(_, body)| body.len() as u64)
                .sum::<u64>()
    }
}

/// The prefetch state of a whole chain.
pub(crate) struct Prefetch {
    enabled: AtomicBool,
    /// Whether puts keep their entries until their segment is written, for a pack.
    keep_bodies: bool,
    /// How old a loaded index may get before the next lookup loads it again, in ms.
    refresh_ms: AtomicU64,
    pending: Mutex<Pending>,
    readers: Vec<TierReader>,
    /// Entries and bytes this process may still prefetch.
    entries_left: AtomicUsize,
    bytes_fetched: AtomicU64,
}

#[derive(Default)]
struct Pending {
    keys: Vec<CacheKey>,
    bodies: Vec<(CacheKey, Bytes)>,
    body_bytes: u64,
    since: Option<Instant>,
}

impl Pending {
    fn take(&mut self) -> SegmentJob {
        self.since = None;
        self.body_bytes = 0;
        SegmentJob {
            keys: std::mem::take(&mut self.keys),
            bodies: std::mem::take(&mut self.bodies),
        }
    }
}

/// One tier's loaded index and its fetches in flight.
struct TierReader {
    state: Mutex<ReaderState>,
    slots: Arc<Semaphore>,
}

#[derive(Default)]
struct ReaderState {
    /// When the index was last loaded; `None` before the first load ends.
    loaded_at: Option<Instant>,
    loading: bool,
    /// The segments listed at the last load, by their own key (a pack's key derives from
    /// it). Segments never change, so a reload fetches only new ones.
    segments: HashMap<CacheKey, Arc<Segment>>,
    /// Where each key is: (segment, position); the newest segment wins.
    positions: HashMap<CacheKey, (CacheKey, usize)>,
    /// Segments already prefetched (or being prefetched).
    scheduled: HashSet<CacheKey>,
    /// Remote hits seen before the index was loaded.
    early: Vec<CacheKey>,
    inflight: HashMap<CacheKey, SharedFetch>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Prefetch {
    /// For `tiers` remote tiers; `keep_bodies` when some writable tier takes packs.
    pub(crate) fn new(tiers: usize, keep_bodies: bool) -> Self {
        Self {
            enabled: AtomicBool::new(true),
            keep_bodies,
            refresh_ms: AtomicU64::new(INDEX_REFRESH.as_millis() as u64),
            pending: Mutex::default(),
            readers: (0..tiers)
                .map(|_| TierReader {
                    state: Mutex::default(),
                    slots: Arc::new(Semaphore::new(PREFETCH_CONCURRENCY)),
                })
                .collect(),
            entries_left: AtomicUsize::new(MAX_PREFETCH_ENTRIES),
            bytes_fetched: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn set_refresh(&self, every: Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.refresh_ms.store(ms, Ordering::Relaxed);
    }

    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Notes a put of `entry` under `key`; returns a segment to write when one is due.
    pub(crate) fn note_put(&self, key: &CacheKey, entry: &Bytes) -> Option<SegmentJob> {
        if !self.enabled() {
            return None;
        }
        let mut pending = lock(&self.pending);
        pending.keys.push(*key);
        if self.keep_bodies && pending.body_bytes + entry.len() as u64 <= MAX_PACK_BYTES {
            pending.body_bytes += entry.len() as u64;
            pending.bodies.push((*key, entry.clone()));
        }
        let since = *pending.since.get_or_insert_with(Instant::now);
        (pending.keys.len() >= MAX_SEGMENT_KEYS || since.elapsed() >= SEGMENT_AGE)
            .then(|| pending.take())
    }

    /// The segment noted and not yet written, to write now (a flush).
    pub(crate) fn take_pending(&self) -> Option<SegmentJob> {
        Some(lock(&self.pending).take()).filter(|job| !job.keys.is_empty())
    }

    /// The fetch of `key` from tier `tier` the prefetcher has started, for a compile to
    /// wait on.
    pub(crate) fn joinable(&self, tier: usize, key: &CacheKey) -> Option<SharedFetch> {
        let reader = self.readers.get(tier)?;
        lock(&reader.state).inflight.get(key).cloned()
    }

    /// Starts loading every tier's index, unless prefetch is off, a load is running, or
    /// the last one is younger than the refresh period ([`INDEX_REFRESH`] by default).
    pub(crate) fn load_indexes(&self, remotes: &Remotes) {
        if !self.enabled() {
            return;
        }
        for (i, reader) in self.readers.iter().enumerate() {
            let mut state = lock(&reader.state);
            let refresh = Duration::from_millis(self.refresh_ms.load(Ordering::Relaxed));
            let due = state.loaded_at.is_none_or(|at| at.elapsed() >= refresh);
            if state.loading || !due {
                continue;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            state.loading = true;
            runtime.spawn(load_index(remotes.clone(), i));
        }
    }

    /// A compile's hit on `key` in tier `tier`: prefetches the rest of its segment, once.
    pub(crate) fn after_hit(&self, remotes: &Remotes, tier: usize, key: &CacheKey) {
        if !self.enabled() {
            return;
        }
        let Some(reader) = self.readers.get(tier) else {
            return;
        };
        let mut state = lock(&reader.state);
        // A load running may bring the segment that holds the key: looked up again after it.
        if state.loading && state.early.len() < MAX_EARLY_HITS {
            state.early.push(*key);
        }
        schedule(&mut state, remotes, tier, key);
    }

    /// Whether this process may prefetch one more entry; takes it from the budget.
    fn take_budget(&self, local_max: u64) -> bool {
        if self.bytes_fetched.load(Ordering::Relaxed) >= local_max / 4 {
            return false;
        }
        self.entries_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Schedules the prefetch of `key`'s segment if the index has it and it is not scheduled.
fn schedule(state: &mut ReaderState, remotes: &Remotes, tier: usize, key: &CacheKey) {
    let Some(&(segment_key, position)) = state.positions.get(key) else {
        return;
    };
    let Some(segment) = state.segments.get(&segment_key).map(Arc::clone) else {
        return;
    };
    let keys = &segment.keys;
    if !state.scheduled.insert(segment_key) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let order: Vec<CacheKey> = keys[position + 1..]
        .iter()
        .chain(&keys[..position])
        .copied()
        .collect();
    runtime.spawn(prefetch_segment(
        remotes.clone(),
        tier,
        (segment_key, segment.pack_parts),
        order,
    ));
}

/// Loads tier `tier`'s newest segments (those not already loaded), then prefetches for the
/// hits seen meanwhile. A list that cannot be read leaves the loaded index as it is.
async fn load_index(remotes: Remotes, tier_index: usize) {
    let tier = &remotes.shared.tiers[tier_index];
    let reader = &remotes.shared.prefetch.readers[tier_index];
    if tier.rewritable() {
        let (listed, fetched) = from_recent_list(tier, reader).await;
        apply_index(&remotes, tier_index, listed, fetched, true);
        return;
    }
    // Day slots: today's first, used as soon as they are read (the build that wants them is
    // most likely running now), then the week's.
    let today = slots::read_today(tier).await;
    let keys = |found: &[(CacheKey, Segment)]| found.iter().map(|(key, _)| *key).collect();
    let mut listed: Vec<CacheKey> = keys(&today);
    apply_index(
        &remotes,
        tier_index,
        Some(listed.clone()),
        today.into_iter().map(Some).collect(),
        false,
    );
    let older = slots::read_past_days(tier).await;
    listed.extend(keys(&older));
    apply_index(
        &remotes,
        tier_index,
        Some(listed),
        older.into_iter().map(Some).collect(),
        true,
    );
}

/// Takes `fetched` segments into tier `tier_index`'s index, keeps those `listed` (newest
/// first; `None`: the list could not be read, keep the index as it is), and prefetches for
/// the hits seen meanwhile. `last`: the load is over.
fn apply_index(
    remotes: &Remotes,
    tier_index: usize,
    listed: Option<Vec<CacheKey>>,
    fetched: Vec<Option<(CacheKey, Segment)>>,
    last: bool,
) {
    let tier = &remotes.shared.tiers[tier_index];
    let reader = &remotes.shared.prefetch.readers[tier_index];
    let mut state = lock(&reader.state);
    if let Some(listed) = listed {
        for (key, segment) in fetched.into_iter().flatten() {
            state.segments.insert(key, Arc::new(segment));
        }
        state.segments.retain(|key, _| listed.contains(key));
        // Newest first, as listed: the newest segment holding a key wins.
        let mut positions = HashMap::new();
        for segment_key in &listed {
            let Some(segment) = state.segments.get(segment_key) else {
                continue;
            };
            for (position, key) in segment.keys.iter().enumerate() {
                positions.entry(*key).or_insert((*segment_key, position));
            }
        }
        state.positions = positions;
    }
    state.loaded_at = Some(Instant::now());
    state.loading = !last;
    tracing::debug!(tier = %tier.config.name, segments = state.segments.len(),
        keys = state.positions.len(), last, "prefetch index loaded");
    let early = if last {
        std::mem::take(&mut state.early)
    } else {
        state.early.clone()
    };
    for key in early {
        schedule(&mut state, remotes, tier_index, &key);
    }
}

/// The segments the tier's list names, newest first, and those of them not loaded yet; the
/// list is `None` when it cannot be read.
async fn from_recent_list(
    tier: &RemoteTier,
    reader: &TierReader,
) -> (Option<Vec<CacheKey>>, Vec<Option<(CacheKey, Segment)>>) {
    let recent = match tier
        .get_uncounted(&recent_key())
        .await
        .map(|b| Recent::decode(&b))
    {
        Some(Ok(recent)) => Some(recent),
        Some(Err(why)) => {
            tracing::debug!(tier = %tier.config.name, %why, "prefetch index list not used");
            None
        }
        None => None,
    };
    let now = unix_now();
    let listed: Option<Vec<CacheKey>> = recent.map(|recent| {
        recent
            .segments
            .into_iter()
            .filter(|(_, secs)| now.saturating_sub(*secs) <= MAX_SEGMENT_AGE.as_secs())
            .map(|(key, _)| key)
            .collect()
    });
    let new: Vec<CacheKey> = {
        let state = lock(&reader.state);
        listed
            .iter()
            .flatten()
            .filter(|key| !state.segments.contains_key(key))
            .copied()
            .collect()
    };
    // A few at a time.
    let fetched = futures::stream::iter(new)
        .map(|key| async move { Some((key, load_segment(tier, key).await?)) })
        .buffered(PREFETCH_CONCURRENCY)
        .collect()
        .await;
    (listed, fetched)
}

async fn load_segment(tier: &RemoteTier, key: CacheKey) -> Option<Segment> {
    let bytes = tier.get_uncounted(&key).await?;
    Segment::decode(&bytes)
        .inspect_err(|why| {
            tracing::debug!(tier = %tier.config.name, %key, %why, "prefetch index segment not used");
        })
        .ok()
}

/// Fetches `keys` (of segment `segment_key`) from tier `tier` into the local disk, a few at
/// a time, skipping what is there or already being fetched, until the budget runs out. On a
/// tier that packs, the segment's pack is fetched once and each key is taken from it, or
/// fetched alone when the pack lacks it.
async fn prefetch_segment(
    remotes: Remotes,
    tier: usize,
    (segment_key, pack_parts): (CacheKey, u32),
    keys: Vec<CacheKey>,
) {
    let prefetch = &remotes.shared.prefetch;
    let reader = &prefetch.readers[tier];
    let local_max = remotes.local.max_size();
    let parts = if remotes.shared.tiers[tier].packs() {
        pack_parts
    } else {
        0
    };
    let wanted: Arc<HashSet<CacheKey>> = Arc::new(keys.iter().copied().collect());
    let pack: Arc<Vec<SharedPack>> = Arc::new(
        (0..parts)
            .map(|part| {
                load_pack(
                    remotes.clone(),
                    tier,
                    pack_key(&segment_key, part),
                    Arc::clone(&wanted),
                )
                .boxed()
                .shared()
            })
            .collect(),
    );
    // Every part downloads at once, whichever key asks first.
    if !pack.is_empty() {
        let parts: Vec<SharedPack> = pack.iter().cloned().collect();
        tokio::spawn(futures::future::join_all(parts));
    }
    let mut running = tokio::task::JoinSet::new();
    for key in keys {
        if remotes.local.contains(&key) {
            continue;
        }
        let fetch = {
            let mut state = lock(&reader.state);
            if state.inflight.contains_key(&key) {
                continue;
            }
            if !prefetch.take_budget(local_max) {
                break;
            }
            let fetch = fetch_one(remotes.clone(), tier, key, Arc::clone(&pack));
            state.inflight.insert(key, fetch.clone());
            fetch
        };
        let Ok(permit) = Arc::clone(&reader.slots).acquire_owned().await else {
            break;
        };
        let remotes = remotes.clone();
        running.spawn(async move {
            if let Some(Verified { entry, .. }) = fetch.await {
                let prefetch = &remotes.shared.prefetch;
                prefetch
                    .bytes_fetched
                    .fetch_add(entry.len() as u64, Ordering::Relaxed);
                if remotes.write_local(&key, entry).await {
                    Counters::bump(&remotes.shared.tiers[tier].counters.prefetched);
                }
            }
            lock(&remotes.shared.prefetch.readers[tier].state)
                .inflight
                .remove(&key);
            drop(permit);
        });
        // Reap what finished, so the set stays small.
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// The shared fetch of `key`: from `pack` when it has it, else alone.
fn fetch_one(
    remotes: Remotes,
    tier: usize,
    key: CacheKey,
    pack: Arc<Vec<SharedPack>>,
) -> SharedFetch {
    async move {
        // Each key verifies its own entry of the pack, so the first compiles wait for the
        // download of their part and their own entries, not for every entry's check.
        for part in pack.iter() {
            let Some(entry) = part.clone().await.get(&key).cloned() else {
                continue;
            };
            if let Some(entry) = remotes.verify_one(tier, &key, entry).await {
                return Some(entry);
            }
            break;
        }
        remotes.fetch_verified(tier, &key, false).await
    }
    .boxed()
    .shared()
}

/// The pack under `key` in tier `tier`: its entries among `wanted`, not yet verified (each
/// is, by the fetch that takes it); a pack that is missing or malformed has none.
async fn load_pack(
    remotes: Remotes,
    tier: usize,
    key: CacheKey,
    wanted: Arc<HashSet<CacheKey>>,
) -> Arc<HashMap<CacheKey, Bytes>> {
    let remote = &remotes.shared.tiers[tier];
    let Some(bytes) = remote.get_uncounted(&key).await else {
        return Arc::default();
    };
    let pack = match Pack::decode(&Bytes::from(bytes)) {
        Ok(pack) => pack,
        Err(why) => {
            remote.refused("get", &key, &why);
            return Arc::default();
        }
    };
    Arc::new(
        pack.entries
            .into_iter()
            .filter(|(key, _)| wanted.contains(key))
            .collect(),
    )
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
