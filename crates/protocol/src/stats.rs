//! The statistics a server reports, as they travel in a `Stats` response.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters since the last `ZeroStats`. Every field defaults, so a peer that reports fewer
/// fields (older) or more (newer) is still read. This is also the shape of
/// `hoard --show-stats --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Compiles served from the cache.
    pub cache_hits: u64,
    /// Cacheable compiles that were not in the cache.
    pub cache_misses: u64,
    /// Invocations that cannot be cached (linking, `-E`, ...).
    pub non_cacheable: u64,
    /// Compiles the client ran itself because the cache path failed.
    pub local_fallbacks: u64,
    /// Faults on the cache path (storage errors, refused requests, failed puts).
    pub cache_errors: u64,
    /// Entries stored.
    pub cache_writes: u64,
    /// Hits per language name (`c`, `c++`, ...).
    pub hits_by_language: BTreeMap<String, u64>,
    /// Misses per language name.
    pub misses_by_language: BTreeMap<String, u64>,
    /// Non-cacheable invocations per reason name.
    pub non_cacheable_reasons: BTreeMap<String, u64>,
    /// Local fallbacks per cause.
    pub local_fallback_causes: BTreeMap<String, u64>,
    /// Requests served per protocol version, keyed by the version number (`"1"`, `"2"`). A
    /// hit or miss a v2 client served from the local store itself counts as one v2 request.
    pub requests_by_protocol: BTreeMap<String, u64>,
    /// Bytes in the local cache.
    pub cache_size_bytes: u64,
    /// The local cache's size limit.
    pub cache_max_bytes: u64,
    /// Per storage tier (local first, then remote tiers in lookup order). Added after v2
    /// shipped: omitted from the wire when empty, so older peers' bytes are unchanged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierStats>,
    /// How the bytes of each hit and put travelled. Added after v2 shipped: omitted from the
    /// wire while both counts are zero.
    #[serde(skip_serializing_if = "TransferStats::is_zero")]
    pub transfers: TransferStats,
    /// Entries found damaged (truncated, a flipped byte, a foreign file), removed and
    /// answered as misses. Added after v2 shipped: omitted from the wire while zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub corrupt_entries: u64,
    /// Hits per protocol version (`"1"`, `"2"`), beside `requests_by_protocol`. Added after
    /// v2 shipped: omitted from the wire while empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hits_by_protocol: BTreeMap<String, u64>,
    /// Misses per protocol version. Added after v2 shipped: omitted while empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub misses_by_protocol: BTreeMap<String, u64>,
    /// The sum of the stored compile times of every hit, in milliseconds: the compiler time
    /// the cache saved (entries stored before compile times were recorded count zero).
    /// Added after v2 shipped: omitted while zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub time_saved_ms: u64,
}

// serde's skip_serializing_if passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Hits and puts by how their bytes travelled between client and server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransferStats {
    /// The server extracted onto, or packed from, the client's paths (one filesystem).
    pub shared_fs: u64,
    /// The entry's bytes crossed the connection (another mount namespace, machine or TCP).
    pub inline: u64,
    /// The client found the hit in its own cache directory and extracted it itself: nothing
    /// crossed the connection. Added after v2 shipped: omitted from the wire while zero, so
    /// older peers' bytes are unchanged.
    #[serde(skip_serializing_if = "is_zero")]
    pub local: u64,
}

impl TransferStats {
    /// Whether nothing has been counted.
    pub fn is_zero(&self) -> bool {
        self.shared_fs == 0 && self.inline == 0 && self.local == 0
    }
}

/// One storage tier's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TierStats {
    /// The tier's name (`local`, `memcached`, `redis`, `s3`, `webdav`, `shared_dir`).
    pub name: String,
    /// Lookups this tier answered.
    pub hits: u64,
    /// Lookups this tier did not have.
    pub misses: u64,
    /// Entries written to it.
    pub writes: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Operations that timed out.
    pub timeouts: u64,
    /// Writes skipped: too large for the tier, queue full, or the tier is read-only.
    pub skipped: u64,
    /// Entries read ahead from this tier into the local disk because a compile hit another
    /// entry stored beside them (prefetch); 0 for the local disk and from older servers.
    pub prefetched: u64,
    /// Entries refused because no trusted key signed them (`HOARD_TRUSTED_KEYS`,
    /// `HOARD_VERIFY_TIERS`); 0 for the local disk and from older servers.
    pub untrusted: u64,
    /// Whether the tier is never written: configured so (`HOARD_READ_ONLY_TIERS`), or its
    /// credentials were refused a write (a read-only Actions cache token).
    pub read_only: bool,
    /// The tier's state (`closed` = healthy, `open` = not called for a while after failures,
    /// `half_open` = being probed).
    pub state: String,
    /// While `state` is `open`: milliseconds until the tier is probed again. Added after v2
    /// shipped: omitted from the wire when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}
