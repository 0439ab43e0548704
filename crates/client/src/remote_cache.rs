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
    /// Serves the cache over `connection`, which must have negotiated v2.
    pub fn new(connection: Connection) -> Self {
        Self {
            connection: Mutex::new(connection),
        }
    }

    async fn request(&self, request: &Request) -> Result<Response, ClientError> {
        self.connection.lock().await.request(request).await
    }

    /// Looks `key` up; on a hit the server has written every output to its path.
    /// `language` only feeds the per-language statistics.
    pub async fn get_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        language: Option<&str>,
    ) -> Result<Option<CompileResult>, ClientError> {
        let request = Request::CacheGet {
            key: key.to_hex(),
            outputs: wire(outputs),
            language: language.map(str::to_owned),
        };
        match self.request(&request).await? {
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
            other => Err(unexpected("CacheGet", &other)),
        }
    }

    /// Has the server read the outputs from their paths and store them under `key`.
    pub async fn put_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        language: Option<&str>,
    ) -> Result<(), ClientError> {
        let request = Request::CachePut {
            key: key.to_hex(),
            outputs: wire(outputs),
            stdout: result.stdout.clone(),
            stderr: result.stderr.clone(),
            exit_status: result.exit_status,
            language: language.map(str::to_owned),
        };
        match self.request(&request).await? {
            Response::Stored => Ok(()),
            other => Err(unexpected("CachePut", &other)),
        }
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
        self.get_outputs(key, outputs, Some(language.name()))
            .await
            .map_err(CacheError::new)
    }

    async fn put(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        language: Language,
    ) -> Result<(), CacheError> {
        self.put_outputs(key, outputs, result, Some(language.name()))
            .await
            .map_err(CacheError::new)
    }

    async fn get_manifest(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        let mut connection = self.connection.lock().await;
        // A server without manifests simply has none.
        if !connection.has_capability(capability::MANIFESTS) {
            return Ok(None);
        }
        let request = Request::ManifestGet { key: key.to_hex() };
        match connection
            .request(&request)
            .await
            .map_err(CacheError::new)?
        {
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
