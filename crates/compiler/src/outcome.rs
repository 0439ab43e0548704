//! What the pipeline gives back for a compile: what the compiler printed and returned
//! ([`CompileResult`]), how the cache served it ([`CacheStatus`]), where its time went
//! ([`PhaseTimes`]), and all of it together ([`CompileOutcome`]).

use std::time::Duration;

use crate::cache::CacheError;
use crate::language::Language;
use crate::reason::NonCacheable;
use crate::result::CompileResult;

/// How the cache served a compile.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Served from the cache; `direct` when found through a manifest, with no preprocessor run.
    Hit {
        /// Whether the hit came from direct mode.
        direct: bool,
    },
    /// Compiled (and stored when it succeeded).
    Miss,
    /// A cache lookup failed, so the compile ran locally without the cache.
    Fallback,
    /// The command cannot be cached; it ran as it is.
    NotCacheable(NonCacheable),
    /// The cache withdrew at its first answer ([`ArtifactCache::withdrawn`]): nothing ran,
    /// `result` is empty, and the caller must run the compile itself.
    ///
    /// [`ArtifactCache::withdrawn`]: crate::ArtifactCache::withdrawn
    Withdrawn,
}

/// Where a compile's time went: cache lookups and stores, compiler runs, and the rest
/// (classifying, reading and hashing inputs, preprocessing for a key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhaseTimes {
    /// Everything that is neither a cache call nor the compile: computing the key.
    pub hashing: Duration,
    /// Cache lookups and stores (manifests included).
    pub lookup: Duration,
    /// Running the compiler to produce the outputs.
    pub compile: Duration,
}

/// The result of [`cached_compile`](crate::cached_compile).
#[derive(Debug)]
#[non_exhaustive]
pub struct CompileOutcome {
    /// What to give the caller: exactly what the plain compiler gives.
    pub result: CompileResult,
    /// How the cache served it.
    pub status: CacheStatus,
    /// Every cache failure met on the way; none of them changed `result`.
    pub cache_errors: Vec<CacheError>,
    /// The source language, when the command was classified as a cacheable compile.
    pub language: Option<Language>,
    /// Whether the compiler's standard error was already copied to this process's standard
    /// error while it ran (see
    /// [`CacheableCompile::stream_stderr`](crate::CacheableCompile::stream_stderr));
    /// `result.stderr` still holds all of it, and the caller must not print it again.
    pub stderr_streamed: bool,
    /// Where the time went.
    pub times: PhaseTimes,
    /// Why this compile's key keeps its paths, so it is not shared with another checkout or
    /// build directory (`paths_in_debug_info`, `paths_exact`, ...): the journal counts a
    /// miss under it. `None` when the key is path-independent or the family does not say.
    pub paths_kept: Option<&'static str>,
    /// On a miss that stored an entry, why it missed: `first compile of this output`, or
    /// which inputs differ from the entry last stored for the same output (`changed:
    /// include k.h`), as `hoard --explain` would name them. `None` otherwise.
    pub miss_reason: Option<String>,
}
