//! [`ArtifactCache`] served from local storage: embedded mode and the server's v1 handler use
//! this one adapter, so packing and extracting stay in the storage crate.

use async_trait::async_trait;
use hoard_storage::{CacheKey, EntryStore, OutputPath, ReadLimits, StoreError};

use crate::cache::{ArtifactCache, CacheError};
use crate::language::Language;
use crate::result::CompileResult;

/// A cache operation on local storage failed.
#[derive(Debug, thiserror::Error)]
enum StorageCacheError {
    #[error("getting entry {key} from storage: {source}")]
    Get {
        key: CacheKey,
        #[source]
        source: StoreError,
    },
    #[error("storing entry {key}: {source}")]
    Put {
        key: CacheKey,
        #[source]
        source: StoreError,
    },
    #[error("getting manifest {key} from storage: {source}")]
    GetManifest {
        key: CacheKey,
        #[source]
        source: StoreError,
    },
    #[error("storing manifest {key}: {source}")]
    PutManifest {
        key: CacheKey,
        #[source]
        source: StoreError,
    },
}

/// Serves the pipeline's cache from an `EntryStore`: a hit is extracted straight onto the
/// output paths, a put packs the outputs from them. Manifests are stored as blobs.
#[derive(Debug, Clone)]
pub struct StorageCache {
    store: EntryStore,
}

impl StorageCache {
    /// An adapter over `store`.
    pub fn new(store: EntryStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl ArtifactCache for StorageCache {
    async fn get(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        _language: Language,
    ) -> Result<Option<CompileResult>, CacheError> {
        let hit = self
            .store
            .find_outputs(key, outputs)
            .await
            .map_err(|source| CacheError::new(StorageCacheError::Get { key: *key, source }))?;
        Ok(hit.map(|hit| CompileResult::from_stored(hit.meta, hit.digests)))
    }

    async fn put(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        _language: Language,
    ) -> Result<(), CacheError> {
        let meta = result.entry_meta();
        self.store
            .put_outputs(key, outputs, &meta, &ReadLimits::default())
            .await
            .map_err(|source| CacheError::new(StorageCacheError::Put { key: *key, source }))
    }

    async fn get_manifest(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        self.store
            .get_blob(key)
            .await
            .map_err(|source| CacheError::new(StorageCacheError::GetManifest { key: *key, source }))
    }

    async fn put_manifest(&self, key: &CacheKey, manifest: Vec<u8>) -> Result<(), CacheError> {
        self.store
            .put_blob(key, manifest)
            .await
            .map_err(|source| CacheError::new(StorageCacheError::PutManifest { key: *key, source }))
    }
}
