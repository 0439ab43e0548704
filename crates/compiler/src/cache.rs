//! The one interface between the pipeline and wherever entries are kept: local storage, a v2
//! server, or anything an embedder supplies.

use async_trait::async_trait;
use hoard_storage::{CacheKey, OutputPath};

use crate::language::Language;
use crate::result::CompileResult;

/// A place compile results and manifests are kept. Implementations report every failure as a
/// [`CacheError`]; the pipeline then compiles locally, so a broken cache never breaks a build.
#[async_trait]
pub trait ArtifactCache: Send + Sync {
    /// Looks up a result. On a hit the outputs are already written to their paths when this
    /// returns, and the compile's stdout, stderr and exit status are returned.
    async fn get(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        language: Language,
    ) -> Result<Option<CompileResult>, CacheError>;

    /// Stores a successful compile: the outputs are read from their paths.
    async fn put(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        language: Language,
    ) -> Result<(), CacheError>;

    /// The manifest stored under `key`, as opaque bytes.
    async fn get_manifest(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError>;

    /// Stores a manifest under `key`, replacing any older one.
    async fn put_manifest(&self, key: &CacheKey, manifest: Vec<u8>) -> Result<(), CacheError>;

    /// Has a miss counted where this cache counts misses, for a compile that no result lookup
    /// preceded (depend mode learns its key only by compiling). By default a lookup of
    /// `probe`, a key nothing is stored under, whose miss the cache counts as it answers.
    async fn count_miss(&self, probe: &CacheKey, language: Language) -> Result<(), CacheError> {
        self.get(probe, &[], language).await.map(|_| ())
    }

    /// Whether this cache has found, on its first answer, that it cannot serve here at all
    /// and its owner will run the compile another way (a v2 client whose server turns out to
    /// predate v2 hands the whole command to it). The pipeline then stops at the failure
    /// without compiling and reports [`CacheStatus::Withdrawn`](crate::CacheStatus).
    fn withdrawn(&self) -> bool {
        false
    }
}

/// A cache operation failed. Displays as the wrapped error; `source()` is that error, so a
/// caller can walk the chain and downcast to its own error type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(#[source] Box<dyn std::error::Error + Send + Sync>);

impl CacheError {
    /// Wraps an error, or a message (`CacheError::new("server hung up")`).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }

    /// The wrapped error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for CacheError {
    fn from(error: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[derive(Debug, thiserror::Error)]
    #[error("socket closed")]
    struct Closed;

    #[test]
    fn displays_the_wrapped_error_and_exposes_it_as_source() {
        let error = CacheError::new(Closed);
        assert_eq!(error.to_string(), "socket closed");
        assert!(
            error
                .source()
                .is_some_and(|s| s.downcast_ref::<Closed>().is_some())
        );
        assert!(error.get_ref().downcast_ref::<Closed>().is_some());
        assert_eq!(
            CacheError::new("plain message").to_string(),
            "plain message"
        );
    }
}
