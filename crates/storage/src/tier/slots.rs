//! The prefetch index on a tier that keeps a key's first write forever (the GitHub Actions
//! cache): no list can be rewritten there, so segments go under keys a reader can compute,
//! *slots*: slot 0, 1, 2... of each day (UTC, by the writer's clock). A writer takes the first
//! free slot of its day (a taken one answers "exists" and the next is tried); a reader probes
//! each of the last days' slots a batch at a time until one is empty, and reads the segments
//! it finds on the way.

use bytes::Bytes;
use futures::StreamExt;

use super::index::Segment;
use super::prefetch::{MAX_SEGMENT_AGE, SegmentJob, unix_now};
use super::remote::{IndexWrite, RemoteTier};
use super::segment_writer::{pack_parts, write_pack};
use crate::CacheKey;

/// Slots per day a writer tries; later segments of a busier day are not indexed.
const SLOTS_PER_DAY: u32 = 64;
/// Slots a reader probes at once.
const PROBE_BATCH: u32 = 8;
const DAY_SECS: u64 = 24 * 3600;

/// The key of slot `slot` of day `day` (days since the Unix epoch).
pub(crate) fn slot_key(day: u64, slot: u32) -> CacheKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hoard prefetch segment slot, v1");
    hasher.update(&day.to_le_bytes());
    hasher.update(&slot.to_le_bytes());
    CacheKey::from(hasher.finalize())
}

/// Writes `job` as a segment in the first free slot of today, then its pack beside it.
pub(crate) async fn write_segment(
    tier: &RemoteTier,
    job: &SegmentJob,
    signer: Option<&crate::signing::Signer>,
) {
    let day = unix_now() / DAY_SECS;
    let parts = pack_parts(tier, job, signer).await;
    let bytes = Bytes::from(
        Segment {
            keys: job.keys.clone(),
            pack_parts: parts.len() as u32,
        }
        .encode(),
    );
    for slot in 0..SLOTS_PER_DAY {
        let key = slot_key(day, slot);
        match tier.put_index(&key, bytes.clone()).await {
            IndexWrite::Written => {
                write_pack(tier, &key, &parts).await;
                tracing::debug!(tier = %tier.config.name, day, slot, keys = job.keys.len(),
                    "prefetch index segment written to a slot");
                return;
            }
            IndexWrite::Taken => {}
            IndexWrite::Failed => return,
        }
    }
}

/// Today's segments, newest (last slot) first, each with its key.
pub(crate) async fn read_today(tier: &RemoteTier) -> Vec<(CacheKey, Segment)> {
    let mut found = read_day(tier, unix_now() / DAY_SECS).await;
    found.reverse();
    found
}

/// The segments of the days before today within the prefetch window, newest first.
pub(crate) async fn read_past_days(tier: &RemoteTier) -> Vec<(CacheKey, Segment)> {
    let today = unix_now() / DAY_SECS;
    let days = MAX_SEGMENT_AGE.as_secs() / DAY_SECS;
    let per_day: Vec<Vec<(CacheKey, Segment)>> = futures::stream::iter(1..=days)
        .map(|back| read_day(tier, today.saturating_sub(back)))
        .buffered(4)
        .collect()
        .await;
    per_day
        .into_iter()
        .flat_map(|mut day| {
            day.reverse();
            day
        })
        .collect()
}

/// Day `day`'s segments in slot order, probing a batch of slots at a time until one is empty.
async fn read_day(tier: &RemoteTier, day: u64) -> Vec<(CacheKey, Segment)> {
    let mut found = Vec::new();
    let mut first = 0;
    while first < SLOTS_PER_DAY {
        let batch: Vec<(CacheKey, Option<Vec<u8>>)> =
            futures::stream::iter(first..(first + PROBE_BATCH).min(SLOTS_PER_DAY))
                .map(|slot| {
                    let key = slot_key(day, slot);
                    async move { (key, tier.get_uncounted(&key).await) }
                })
                .buffered(PROBE_BATCH as usize)
                .collect()
                .await;
        for (key, bytes) in batch {
            let Some(bytes) = bytes else {
                return found;
            };
            match Segment::decode(&bytes) {
                Ok(segment) => found.push((key, segment)),
                Err(why) => {
                    tracing::debug!(tier = %tier.config.name, %key, %why,
                        "prefetch index slot not used");
                }
            }
        }
        first += PROBE_BATCH;
    }
    found
}
