//! Writing the prefetch index ([`super::prefetch`]): a segment of the keys a machine stored,
//! its pack parts on a tier that packs, and its place at the head of the tier's list of
//! recent segments (or, on a tier that never rewrites a key, in a day slot:
//! [`super::slots`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;

use super::index::{
    MAX_PACK_BYTES, MAX_PACK_PARTS, PACK_PART_BYTES, Pack, Recent, Segment, pack_key, recent_key,
};
use super::prefetch::{MAX_SEGMENT_AGE, SegmentJob, unix_now};
use super::remote::{IndexWrite, RemoteTier};
use super::slots;
use crate::CacheKey;
use crate::signing::Signer;

/// Writes `job` as a new segment to tier `tier` (with its pack first, on a tier that packs)
/// and puts it at the head of the tier's list.
pub(crate) async fn write_segment(tier: &RemoteTier, job: &SegmentJob, signer: Option<&Signer>) {
    if !tier.rewritable() {
        return slots::write_segment(tier, job, signer).await;
    }
    let segment_key = new_segment_key();
    let parts = pack_parts(tier, job, signer).await;
    write_pack(tier, &segment_key, &parts).await;
    let bytes = Bytes::from(
        Segment {
            keys: job.keys.clone(),
            pack_parts: parts.len() as u32,
        }
        .encode(),
    );
    if tier.put_index(&segment_key, bytes).await != IndexWrite::Written {
        return;
    }
    let recent = match tier
        .get_uncounted(&recent_key())
        .await
        .map(|b| Recent::decode(&b))
    {
        Some(Ok(recent)) => recent,
        _ => Recent::default(),
    };
    let recent = recent.with_newest(segment_key, unix_now(), MAX_SEGMENT_AGE.as_secs());
    tier.put_index(&recent_key(), Bytes::from(recent.encode()))
        .await;
    tracing::debug!(tier = %tier.config.name, keys = job.keys.len(), %segment_key,
        "prefetch index segment written");
}

/// Writes the pack of `job`'s entries beside segment `segment_key`, on a tier that packs.
pub(crate) async fn write_pack(tier: &RemoteTier, segment_key: &CacheKey, parts: &[Pack]) {
    for (part, pack) in (0u32..).zip(parts) {
        tier.put_index(&pack_key(segment_key, part), Bytes::from(pack.encode()))
            .await;
    }
}

/// The parts of the pack of `job`'s entries, as tier `tier` holds entries (compressed, and
/// signed by `signer` when given), at most [`PACK_PART_BYTES`] each and [`MAX_PACK_BYTES`]
/// in all; none on a tier that does not pack.
pub(crate) async fn pack_parts(
    tier: &RemoteTier,
    job: &SegmentJob,
    signer: Option<&Signer>,
) -> Vec<Pack> {
    if !tier.packs() {
        return Vec::new();
    }
    let part_limit = PACK_PART_BYTES.min(tier.max_entry());
    let mut parts = vec![Pack::default()];
    let (mut total, mut size) = (0u64, 0u64);
    for (key, body) in &job.bodies {
        let Some(body) = super::chain::for_remote(key, body.clone(), signer).await else {
            continue;
        };
        let cost = 40 + body.len() as u64;
        if cost > part_limit || total + cost > MAX_PACK_BYTES {
            continue;
        }
        if size + cost > part_limit {
            if parts.len() as u32 == MAX_PACK_PARTS {
                break;
            }
            parts.push(Pack::default());
            size = 0;
        }
        size += cost;
        total += cost;
        if let Some(part) = parts.last_mut() {
            part.entries.push((*key, body));
        }
    }
    parts.retain(|part| !part.entries.is_empty());
    parts
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
