//! Protocol v2: the server only stores. It extracts entries onto, and packs them from, paths
//! the client names on the shared filesystem, after checking each path.

use hoard_protocol::{OutputPath as WirePath, Response};
use hoard_storage::{CacheKey, EntryMeta, OutputPath, ReadLimits};

use crate::output_paths::{self, PathRefused};
use crate::server::Shared;
use crate::stats::Counted;

fn refused(shared: &Shared, message: String) -> Response {
    shared.stats.count(Counted::Error);
    tracing::debug!("{message}");
    Response::Error { message }
}

fn parse_key(key: &str) -> Result<CacheKey, String> {
    key.parse::<CacheKey>().map_err(|e| e.to_string())
}

fn checked_outputs(outputs: &[WirePath], peer_uid: u32) -> Result<Vec<OutputPath>, PathRefused> {
    outputs
        .iter()
        .map(|o| {
            let path = o.to_path_buf();
            output_paths::check(&path, peer_uid)?;
            Ok(OutputPath::new(o.role.clone(), path))
        })
        .collect()
}

/// `CacheGet`: on a hit the entry is extracted onto the outputs and its stdout/stderr returned.
pub(crate) async fn cache_get(
    shared: &Shared,
    peer_uid: u32,
    key: &str,
    outputs: &[WirePath],
    language: Option<&str>,
) -> Response {
    let key = match parse_key(key) {
        Ok(k) => k,
        Err(e) => return refused(shared, e),
    };
    let outputs = match checked_outputs(outputs, peer_uid) {
        Ok(o) => o,
        Err(e) => return refused(shared, e.to_string()),
    };
    match shared.store.get_outputs(&key, &outputs).await {
        Ok(Some(meta)) => {
            shared.stats.count(Counted::Hit { language });
            Response::Hit {
                stdout: meta.stdout,
                stderr: meta.stderr,
                exit_status: meta.exit_status,
            }
        }
        Ok(None) => {
            shared.stats.count(Counted::Miss { language });
            Response::Miss
        }
        Err(e) => refused(shared, format!("cache get {key}: {e}")),
    }
}

/// `CachePut`: packs the outputs from the client's paths and stores the entry.
pub(crate) async fn cache_put(
    shared: &Shared,
    peer_uid: u32,
    key: &str,
    outputs: &[WirePath],
    meta: &EntryMeta,
) -> Response {
    let key = match parse_key(key) {
        Ok(k) => k,
        Err(e) => return refused(shared, e),
    };
    let outputs = match checked_outputs(outputs, peer_uid) {
        Ok(o) => o,
        Err(e) => return refused(shared, e.to_string()),
    };
    let limits = ReadLimits {
        owner_uid: Some(peer_uid),
        max_file_size: shared.config.max_output_size,
    };
    // Read now (once we answer, the build may touch the files), compress and store after
    // answering: the client is on the build's critical path, the packing is not.
    let files = match shared.store.read_outputs(&outputs, &limits).await {
        Ok(files) => files,
        Err(e) => return refused(shared, format!("cache put {key}: {e}")),
    };
    let (store, stats, meta) = (shared.store.clone(), shared.stats.clone(), meta.clone());
    shared.background.spawn(async move {
        match store.put_files(&key, files, meta).await {
            Ok(()) => stats.count(Counted::Write),
            Err(e) => {
                tracing::warn!("cache put {key}: {e}");
                stats.count(Counted::Error);
            }
        }
    });
    Response::Stored
}

/// `ManifestGet`: the direct-mode manifest under `key`, if any.
pub(crate) async fn manifest_get(shared: &Shared, key: &str) -> Response {
    let key = match parse_key(key) {
        Ok(k) => k,
        Err(e) => return refused(shared, e),
    };
    match shared.store.get_blob(&key).await {
        Ok(Some(manifest)) => Response::Manifest { manifest },
        Ok(None) => Response::Miss,
        Err(e) => refused(shared, format!("manifest get {key}: {e}")),
    }
}

/// `ManifestPut`: stores a direct-mode manifest.
pub(crate) async fn manifest_put(shared: &Shared, key: &str, manifest: Vec<u8>) -> Response {
    let key = match parse_key(key) {
        Ok(k) => k,
        Err(e) => return refused(shared, e),
    };
    match shared.store.put_blob(&key, manifest).await {
        Ok(()) => Response::Stored,
        Err(e) => refused(shared, format!("manifest put {key}: {e}")),
    }
}
