//! What a compile gives back: what it printed and returned ([`CompileResult`]), how the cache
//! served it ([`CacheStatus`]), where its time went ([`PhaseTimes`]), and all of it together
//! ([`CompileOutcome`]). Every compiler family and every placement speaks these types.

use std::time::Duration;

use crate::cache::CacheError;
use crate::language::Language;
use crate::reason::NonCacheable;

/// What a compile printed and returned. Two results are equal when they printed and
/// returned the same: how long each took is not part of what the build sees.
#[derive(Debug, Clone, Default)]
pub struct CompileResult {
    /// The compiler's standard output.
    pub stdout: Vec<u8>,
    /// The compiler's standard error.
    pub stderr: Vec<u8>,
    /// The exit status; 128 + the signal number when the compiler was killed, 127 when it
    /// could not be started.
    pub exit_status: i32,
    /// How long the compiler ran; on a hit, how long it ran when the entry was stored (zero
    /// when the entry did not record it): the time the hit saved.
    pub compile_time: Duration,
    /// On a hit, the blake3 of each output as delivered, in the order of the compile's
    /// outputs, when the cache knew them (empty otherwise): a Rust hit memoises its crates'
    /// digests from these instead of reading the crates back.
    pub output_digests: Vec<[u8; 32]>,
}

impl PartialEq for CompileResult {
    fn eq(&self, other: &Self) -> bool {
        self.stdout == other.stdout
            && self.stderr == other.stderr
            && self.exit_status == other.exit_status
    }
}

impl Eq for CompileResult {}

impl CompileResult {
    /// A hit: what the entry stored, and the digests of the outputs it delivered.
    pub fn from_stored(meta: hoard_storage::EntryMeta, output_digests: Vec<[u8; 32]>) -> Self {
        Self {
            stdout: meta.stdout,
            stderr: meta.stderr,
            exit_status: meta.exit_status,
            compile_time: Duration::from_millis(meta.compile_ms),
            output_digests,
        }
    }

    /// What an entry keeps of this result (the inverse of [`CompileResult::from_stored`]):
    /// its output, status and compile time.
    pub fn entry_meta(&self) -> hoard_storage::EntryMeta {
        hoard_storage::EntryMeta {
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            exit_status: self.exit_status,
            compile_ms: self.compile_ms(),
        }
    }

    /// [`CompileResult::compile_time`] in whole milliseconds, as entries and the wire keep it.
    pub fn compile_ms(&self) -> u64 {
        u64::try_from(self.compile_time.as_millis()).unwrap_or(u64::MAX)
    }
}

/// How the cache served a compile.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}
