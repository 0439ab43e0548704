//! hoard's storage layer. It knows what a cache entry is (a self-contained, versioned,
//! checksummed blob holding a compile's output files and its stdout/stderr), how to pack one
//! from files on disk and extract one onto paths, and where entries are kept: the local disk
//! LRU and the tiered chain of the local disk and remote tiers. It never knows about the wire
//! protocol or about compilers; the server, the client's embedded mode and the compiler
//! pipeline's storage adapter all pack and extract through this crate.
//!
//! # What an embedder uses
//!
//! A build tool embeds hoard through `hoard-client`'s `Hoard`, and needs from this crate only
//! the names that API speaks:
//! * [`CacheKey`] and [`OutputPath`]: what an action is stored under, and which output file
//!   goes where (both are re-exported by `hoard-client`);
//! * [`TierConfig`] and [`TierKind`]: remote tiers behind an embedded cache
//!   (`Hoard::embedded_with_tiers`), or [`tiers_from_env`] to read them from the same
//!   `HOARD_*` variables the `hoard` binary reads;
//! * [`signing`]: signed entries, what to sign with and whom to trust
//!   (`Hoard::embedded_with_trust`);
//! * the errors these return: [`StorageError`], [`EntryError`], [`TierConfigError`],
//!   [`InvalidKey`].
//!
//! # Inside
//!
//! Everything else is public only so that hoard's own crates can share it; it is left out of
//! this documentation and may change in any release. The layers: `entry` is the format and
//! the file work (pack from paths, verify, extract onto paths); a `Storage` keeps opaque entry
//! bytes by key (`DiskStore` on the local disk, `TieredStorage` with remote tiers behind it,
//! see `tier`); `EntryStore` joins the two and is the one place where a corrupt entry becomes
//! a miss and is removed.

// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub mod disk;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub mod entry;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub mod entry_store;
mod key;
mod output;
pub mod signing;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub mod tier;

pub use entry::EntryError;
pub use key::{CacheKey, InvalidKey};
pub use output::OutputPath;
pub use tier::{DEFAULT_MAX_REMOTE_ENTRY, TierConfig, TierConfigError, TierKind, tiers_from_env};

// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use disk::DiskStore;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use entry::{EntryKind, EntryLimits, EntryMeta, OutputFiles, ReadLimits};
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use entry_store::{CorruptHook, EntryStore, OutputsHit, StoreError};
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use tier::{LOCAL_TIER, QueueLimits, SizeError, TierStats, TieredStorage, parse_size};

use async_trait::async_trait;

/// A place entries are kept, addressed by [`CacheKey`]. Values are whole encoded entries
/// (see [`entry`]); a store does not look inside them.
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
#[async_trait]
pub trait Storage: Send + Sync {
    /// The entry stored under `key`, or `None`.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StorageError>;
    /// The entry stored under `key` with the name of the tier that held it (`local`,
    /// `redis`, ...), for a store made of tiers; a single store names none.
    async fn get_located(&self, key: &CacheKey) -> Result<Option<Located>, StorageError> {
        Ok(self.get(key).await?.map(|entry| Located {
            entry,
            tier: None,
            signer: None,
        }))
    }
    /// Writes the outputs of the entry under `key` onto `outputs` from files the store
    /// keeps, when it can do so without handing the entry's bytes over (a local disk: a
    /// split entry's large files are linked or copied by the kernel). `None`: not held
    /// here, or not this way; the caller then gets the bytes. The inner result is the
    /// entry's verdict, as extracting bytes would give it. `link` asks for hard links.
    async fn deliver(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        link: bool,
    ) -> Result<Option<Delivery>, StorageError> {
        let _ = (key, outputs, link);
        Ok(None)
    }
    /// Stores `entry` under `key`, replacing what was there. Atomic: a reader sees the old
    /// entry, the new one or none, never a mix.
    async fn put(&self, key: &CacheKey, entry: Vec<u8>) -> Result<(), StorageError>;
    /// Removes the entry under `key`, if any, from everywhere the store keeps it.
    async fn remove(&self, key: &CacheKey) -> Result<(), StorageError>;
    /// Removes the copy of the entry under `key` found corrupt, which came from `tier` (as
    /// [`Storage::get_located`] or [`Storage::deliver`] named it), and no other: damage
    /// seen in one place says nothing of the copies elsewhere. A store of one place
    /// removes its entry.
    async fn remove_corrupt(&self, key: &CacheKey, tier: Option<&str>) -> Result<(), StorageError> {
        let _ = tier;
        self.remove(key).await
    }
}

/// Outputs a store wrote itself ([`Storage::deliver`]), and where it found them.
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
#[derive(Debug)]
pub struct Delivery {
    /// What the entry held, or why it could not be used.
    pub result: Result<entry::Extracted, entry::EntryError>,
    /// The tier that held it, when the store has tiers.
    pub tier: Option<String>,
}

/// An entry and where it was found.
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The entry's bytes.
    pub entry: Vec<u8>,
    /// The tier that held it, when the store has tiers.
    pub tier: Option<String>,
    /// The trusted key that signed it, when it came from a tier whose entries must be
    /// signed ([`signing`]).
    pub signer: Option<String>,
}

/// A store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O operation on a path in the store failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, `rename`, ...).
        op: &'static str,
        /// The path it was done on.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A remote tier's configuration is wrong (raised at construction, never because a
    /// tier is down).
    #[error(transparent)]
    TierConfig(#[from] TierConfigError),
    /// The blocking task doing `op` panicked or was cancelled with its runtime.
    #[error("{op}: background task failed: {source}")]
    Task {
        /// What the task was doing.
        op: &'static str,
        /// Why it did not finish.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// File work on this many bytes or fewer runs where it is asked for: a hop to the blocking
/// pool and back costs two thread wake-ups, more than reading and decompressing a typical
/// object file's entry.
pub(crate) const INLINE_WORK_BYTES: u64 = 1 << 20;

/// Runs file work inline when it concerns at most [`INLINE_WORK_BYTES`], else on the
/// blocking pool.
pub(crate) async fn run_sized<T, F>(
    op: &'static str,
    bytes: u64,
    work: F,
) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    if bytes <= INLINE_WORK_BYTES {
        work()
    } else {
        run_blocking(op, work).await
    }
}

/// Runs file work on tokio's blocking pool so neither runtime flavour stalls on disk I/O.
pub(crate) async fn run_blocking<T, F>(op: &'static str, work: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| StorageError::Task { op, source })?
}
