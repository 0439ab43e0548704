//! hoard's storage layer. It knows what a cache entry is (a self-contained, versioned,
//! checksummed blob holding a compile's output files and its stdout/stderr), how to pack one
//! from files on disk and extract one onto paths, and where entries are kept: the [`Storage`]
//! trait, implemented by the local disk LRU ([`DiskStore`]) and, later, remote tiers. It never
//! knows about the wire protocol or about compilers; the server, the client's embedded mode
//! and the compiler pipeline's storage adapter all pack and extract through this crate.

mod key;
mod output;

pub use key::{CacheKey, InvalidKey};
pub use output::OutputPath;

use async_trait::async_trait;

/// A place entries are kept, addressed by [`CacheKey`]. Values are whole encoded entries
/// (see [`entry`]); a store does not look inside them.
#[async_trait]
pub trait Storage: Send + Sync {
    /// The entry stored under `key`, or `None`.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stores `entry` under `key`, replacing what was there. Atomic: a reader sees the old
    /// entry, the new one or none, never a mix.
    async fn put(&self, key: &CacheKey, entry: Vec<u8>) -> Result<(), StorageError>;
    /// Removes the entry under `key`, if any (a corrupt entry is removed this way).
    async fn remove(&self, key: &CacheKey) -> Result<(), StorageError>;
}

/// A store could not do what was asked.
#[derive(Debug, thiserror::Error)]
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
}
