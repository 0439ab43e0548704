//! Prefetch: a machine that starts from an empty disk reads ahead what other machines stored,
//! so its first build pays a remote tier's latency a few times, not once or twice per compile.
//!
//! * **Writing.** Every key a machine puts is noted; every [`MAX_SEGMENT_KEYS`] puts, when
//!   the oldest noted put is [`SEGMENT_AGE`] old, and when the chain is flushed (server
//!   shutdown), the keys go to each writable tier as one [`Segment`] object, in the order
//!   they were stored, and the segment is put at the head of the tier's [`Recent`] list.
//!   The list is read, changed and written back: two writers racing lose one of their
//!   segments from it, which only costs a reader that prefetch.
//! * **Reading.** The server loads each tier's newest segments at startup
//!   ([`super::TieredStorage::warm_up`]), or at the first local miss. When a remote hit's key
//!   is in a segment, the rest of that segment (from the hit on, then what came before it)
//!   is fetched in the background, a few at a time, verified like any remote read and
//!   written to the local disk. A compile that asks for a key being prefetched waits for
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
use futures::StreamExt;
use tokio::sync::{OnceCell, Semaphore};

use super::chain::Remotes;
use super::index::{MAX_SEGMENT_KEYS, Recent, Segment, recent_key};
use super::remote::{Counters, RemoteTier};
use crate::CacheKey;

/// A segment is written once its oldest key is this old (at the next put).
pub(crate) const SEGMENT_AGE: Duration = Duration::from_secs(30);
/// Segments older than this are not loaded (and are dropped from the list).
pub(crate) const MAX_SEGMENT_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Entries one process prefetches at most.
pub(crate) const MAX_PREFETCH_ENTRIES: usize = 8192;
/// Fetches running at once per tier, beside the compiles' own.
pub(crate) const PREFETCH_CONCURRENCY: usize = 8;
/// Remote hits remembered while the index is still loading, to prefetch from once it is.
const MAX_EARLY_HITS: usize = 256;

/// A fetch that a compile and the prefetcher share: the first to ask runs it.
pub(crate) type SharedFetch = Arc<OnceCell<Option<Bytes>>>;

/// The prefetch state of a whole chain.
pub(crate) struct Prefetch {
    enabled: AtomicBool,
    pending: Mutex<Pending>,
    readers: Vec<TierReader>,
    /// Entries and bytes this process may still prefetch.
    entries_left: AtomicUsize,
    bytes_fetched: AtomicU64,
}

#[derive(Default)]
struct Pending {
    keys: Vec<CacheKey>,
    since: Option<Instant>,
}

/// One tier's loaded index and its fetches in flight.
struct TierReader {
    state: Mutex<ReaderState>,
    slots: Arc<Semaphore>,
}

#[derive(Default)]
struct ReaderState {
    load: Load,
    segments: Vec<Arc<[CacheKey]>>,
    /// Where each key is: (segment, position); the newest segment wins.
    positions: HashMap<CacheKey, (usize, usize)>,
    /// Segments already being prefetched.
    scheduled: HashSet<usize>,
    /// Remote hits seen before the index was loaded.
    early: Vec<CacheKey>,
    inflight: HashMap<CacheKey, SharedFetch>,
}

#[derive(Default, PartialEq, Eq)]
enum Load {
    #[default]
    NotStarted,
    Loading,
    Loaded,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Prefetch {
    pub(crate) fn new(tiers: usize) -> Self {
        Self {
            enabled: AtomicBool::new(true),
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

    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Notes a put of `key`; returns the keys to write as a segment when one is due.
    pub(crate) fn note_put(&self, key: &CacheKey) -> Option<Vec<CacheKey>> {
        if !self.enabled() {
            return None;
        }
        let mut pending = lock(&self.pending);
        pending.keys.push(*key);
        let since = *pending.since.get_or_insert_with(Instant::now);
        if pending.keys.len() >= MAX_SEGMENT_KEYS || since.elapsed() >= SEGMENT_AGE {
            pending.since = None;
            return Some(std::mem::take(&mut pending.keys));
        }
        None
    }

    /// The keys noted and not yet written, to write now (a flush).
    pub(crate) fn take_pending(&self) -> Option<Vec<CacheKey>> {
        let mut pending = lock(&self.pending);
        pending.since = None;
        Some(std::mem::take(&mut pending.keys)).filter(|keys| !keys.is_empty())
    }

    /// The fetch of `key` from tier `tier` the prefetcher has started, for a compile to
    /// wait on.
    pub(crate) fn joinable(&self, tier: usize, key: &CacheKey) -> Option<SharedFetch> {
        let reader = self.readers.get(tier)?;
        lock(&reader.state).inflight.get(key).cloned()
    }

    /// Starts loading every tier's index, unless prefetch is off or it has started.
    pub(crate) fn load_indexes(&self, remotes: &Remotes) {
        if !self.enabled() {
            return;
        }
        for (i, reader) in self.readers.iter().enumerate() {
            let mut state = lock(&reader.state);
            if state.load != Load::NotStarted {
                continue;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            state.load = Load::Loading;
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
        if state.load != Load::Loaded {
            if state.early.len() < MAX_EARLY_HITS {
                state.early.push(*key);
            }
            return;
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
    let Some(&(segment, position)) = state.positions.get(key) else {
        return;
    };
    if !state.scheduled.insert(segment) {
        return;
    }
    let keys = Arc::clone(&state.segments[segment]);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let order: Vec<CacheKey> = keys[position + 1..]
        .iter()
        .chain(&keys[..position])
        .copied()
        .collect();
    runtime.spawn(prefetch_keys(remotes.clone(), tier, order));
}

/// Loads tier `tier`'s newest segments, then prefetches for the hits seen meanwhile.
async fn load_index(remotes: Remotes, tier_index: usize) {
    let tier = &remotes.shared.tiers[tier_index];
    let recent = match tier
        .get_index(&recent_key())
        .await
        .map(|b| Recent::decode(&b))
    {
        Some(Ok(recent)) => recent,
        Some(Err(why)) => {
            tracing::debug!(tier = %tier.config.name, %why, "prefetch index list not used");
            Recent::default()
        }
        None => Recent::default(),
    };
    let now = unix_now();
    let fresh = recent
        .segments
        .into_iter()
        .filter(|(_, secs)| now.saturating_sub(*secs) <= MAX_SEGMENT_AGE.as_secs())
        .map(|(key, _)| key);
    // Newest first, as listed; a few at a time.
    let segments: Vec<Option<Segment>> = futures::stream::iter(fresh)
        .map(|key| load_segment(tier, key))
        .buffered(PREFETCH_CONCURRENCY)
        .collect()
        .await;
    let reader = &remotes.shared.prefetch.readers[tier_index];
    let mut state = lock(&reader.state);
    for segment in segments.into_iter().flatten() {
        let index = state.segments.len();
        for (position, key) in segment.keys.iter().enumerate() {
            state.positions.entry(*key).or_insert((index, position));
        }
        state.segments.push(segment.keys.into());
    }
    state.load = Load::Loaded;
    tracing::debug!(tier = %tier.config.name, segments = state.segments.len(),
        keys = state.positions.len(), "prefetch index loaded");
    for key in std::mem::take(&mut state.early) {
        schedule(&mut state, &remotes, tier_index, &key);
    }
}

async fn load_segment(tier: &RemoteTier, key: CacheKey) -> Option<Segment> {
    let bytes = tier.get_index(&key).await?;
    Segment::decode(&bytes)
        .inspect_err(|why| {
            tracing::debug!(tier = %tier.config.name, %key, %why, "prefetch index segment not used");
        })
        .ok()
}

/// Fetches `keys` from tier `tier` into the local disk, a few at a time, skipping what is
/// there or already being fetched, until the budget runs out.
async fn prefetch_keys(remotes: Remotes, tier: usize, keys: Vec<CacheKey>) {
    let prefetch = &remotes.shared.prefetch;
    let reader = &prefetch.readers[tier];
    let local_max = remotes.local.max_size();
    let mut running = tokio::task::JoinSet::new();
    for key in keys {
        if remotes.local.contains(&key) {
            continue;
        }
        let cell = {
            let mut state = lock(&reader.state);
            if state.inflight.contains_key(&key) {
                continue;
            }
            if !prefetch.take_budget(local_max) {
                break;
            }
            Arc::clone(state.inflight.entry(key).or_default())
        };
        let Ok(permit) = Arc::clone(&reader.slots).acquire_owned().await else {
            break;
        };
        let remotes = remotes.clone();
        running.spawn(async move {
            let fetched = cell
                .get_or_init(|| remotes.fetch_verified(tier, &key, false))
                .await
                .clone();
            if let Some(entry) = fetched {
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

/// Writes `keys` as a new segment to tier `tier` and puts it at the head of its list.
pub(crate) async fn write_segment(tier: &RemoteTier, keys: &[CacheKey]) {
    let segment_key = new_segment_key();
    let bytes = Bytes::from(
        Segment {
            keys: keys.to_vec(),
        }
        .encode(),
    );
    if !tier.put_index(&segment_key, bytes).await {
        return;
    }
    let recent = match tier
        .get_index(&recent_key())
        .await
        .map(|b| Recent::decode(&b))
    {
        Some(Ok(recent)) => recent,
        _ => Recent::default(),
    };
    let recent = recent.with_newest(segment_key, unix_now(), MAX_SEGMENT_AGE.as_secs());
    tier.put_index(&recent_key(), Bytes::from(recent.encode()))
        .await;
    tracing::debug!(tier = %tier.config.name, keys = keys.len(), %segment_key,
        "prefetch index segment written");
}

/// A key no other writer picks: random, not secret.
fn new_segment_key() -> CacheKey {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: the process, the time and a counter still tell writers apart.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&std::process::id().to_le_bytes());
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.update(&nanos.to_le_bytes());
        hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        bytes = *hasher.finalize().as_bytes();
    }
    CacheKey::from_bytes(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
