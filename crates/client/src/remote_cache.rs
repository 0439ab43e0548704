//! The compiler pipeline's `ArtifactCache`, served by a server over protocol v2: the server
//! extracts hits onto our output paths and packs puts from them, so no artifact bytes cross
//! the socket.

use async_trait::async_trait;
use hoard_compiler::{ArtifactCache, CacheError, CompileResult, Language};
use hoard_protocol::{OutputPath as WirePath, Request, Response, capability};
use hoard_storage::{CacheKey, OutputPath};
use tokio::sync::Mutex;

use crate::connection::unexpected;
use crate::{ClientError, Connection};

/// [`ArtifactCache`] over one connection to a v2 server.
#[derive(Debug)]
pub struct RemoteCache {
    connection: Mutex<Connection>,
}

impl RemoteCache {
    /// Serves the cache over `connection`.
    pub fn new(connection: Connection) -> Self {
        Self {
            connection: Mutex::new(connection),
        }
    }

    async fn request(&self, request: &Request) -> Result<Response, ClientError> {
        self.connection.lock().await.request(request).await
    }
}

fn wire(outputs: &[OutputPath]) -> Vec<WirePath> {
    outputs
        .iter()
        .map(|o| WirePath::new(o.role.clone(), &o.path))
        .collect()
}

#[async_trait]
impl ArtifactCache for RemoteCache {
    async fn get(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        language: Language,
    ) -> Result<Option<CompileResult>, CacheError> {
        let request = Request::CacheGet {
            key: key.to_hex(),
            outputs: wire(outputs),
            language: Some(language.name().to_owned()),
        };
        match self.request(&request).await.map_err(CacheError::new)? {
            Response::Hit {
                stdout,
                stderr,
                exit_status,
            } => Ok(Some(CompileResult {
                stdout,
                stderr,
                exit_status,
            })),
            Response::Miss => Ok(None),
            other => Err(CacheError::new(unexpected("CacheGet", &other))),
        }
    }

    async fn put(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        language: Language,
    ) -> Result<(), CacheError> {
        let request = Request::CachePut {
            key: key.to_hex(),
            outputs: wire(outputs),
            stdout: result.stdout.clone(),
            stderr: result.stderr.clone(),
            exit_status: result.exit_status,
            language: Some(language.name().to_owned()),
        };
        match self.request(&request).await.map_err(CacheError::new)? {
            Response::Stored => Ok(()),
            other => Err(CacheError::new(unexpected("CachePut", &other))),
        }
    }

    async fn get_manifest(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        let request = Request::ManifestGet { key: key.to_hex() };
        let mut connection = self.connection.lock().await;
        let response = connection.request(&request).await;
        // A server without manifests simply has none; known only after the first answer.
        if !connection.has_capability(capability::MANIFESTS) {
            return Ok(None);
        }
        match response.map_err(CacheError::new)? {
            Response::Manifest { manifest } => Ok(Some(manifest)),
            Response::Miss => Ok(None),
            other => Err(CacheError::new(unexpected("ManifestGet", &other))),
        }
    }

    async fn put_manifest(&self, key: &CacheKey, manifest: Vec<u8>) -> Result<(), CacheError> {
        let mut connection = self.connection.lock().await;
        if !connection.has_capability(capability::MANIFESTS) {
            return Ok(());
        }
        let request = Request::ManifestPut {
            key: key.to_hex(),
            manifest,
        };
        match connection
            .request(&request)
            .await
            .map_err(CacheError::new)?
        {
            Response::Stored => Ok(()),
            other => Err(CacheError::new(unexpected("ManifestPut", &other))),
        }
    }
}
