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
    /// Requests served per protocol version, keyed by the version number (`"1"`, `"2"`).
    pub requests_by_protocol: BTreeMap<String, u64>,
    /// Bytes in the local cache.
    pub cache_size_bytes: u64,
    /// The local cache's size limit.
    pub cache_max_bytes: u64,
}
