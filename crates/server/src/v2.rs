//! Protocol v2: the server only stores. It extracts entries onto, and packs them from, paths
//! the client names on the shared filesystem, after checking each path.

use std::os::unix::ffi::OsStrExt;

use hoard_protocol::{OutputPath as WirePath, Response};
use hoard_storage::{CacheKey, EntryMeta, OutputPath, ReadLimits};

use crate::output_paths::{self, PathRefused};
use crate::server::Shared;
use crate::stats::{Counted, Transfer};

fn refused(shared: &Shared, message: String) -> Response {
    shared.stats.count(Counted::Error);
    tracing::debug!("{message}");
    Response::Error { message }
}

fn parse_key(key: &str) -> Result<CacheKey, String> {
    key.parse::<CacheKey>().map_err(|e| e.to_string())
}

/// Why the server will not act on a request's paths.
enum PathsRefused {
    /// The client's directory is not this one: nothing was touched; the client goes inline.
    NotShared(Vec<u8>),
    /// A path breaks the rules.
    Refused(PathRefused),
}

impl PathsRefused {
    fn answer(self, shared: &Shared) -> Response {
        match self {
            Self::NotShared(directory) => {
                tracing::debug!(
                    directory = %String::from_utf8_lossy(&directory),
                    "not the client's directory; the client goes inline"
                );
                Response::NotShared { directory }
            }
            Self::Refused(e) => refused(shared, e.to_string()),
        }
    }
}

/// Each output's path, once it passes the rules and, when the client said which directory it
/// saw, once that directory is the very one here (device and inode).
fn checked_outputs(outputs: &[WirePath], peer_uid: u32) -> Result<Vec<OutputPath>, PathsRefused> {
    // Identities first, so a foreign directory is reported as not shared whatever else would
    // be wrong with it here.
    for o in outputs {
        let path = o.to_path_buf();
        if let (Some(identity), Some(dir)) = (o.dir, path.parent())
            && !crate::probe::same_directory(dir, identity)
        {
            return Err(PathsRefused::NotShared(dir.as_os_str().as_bytes().to_vec()));
        }
    }
    outputs
        .iter()
        .map(|o| {
            let path = o.to_path_buf();
            output_paths::check(&path, peer_uid).map_err(PathsRefused::Refused)?;
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
        Err(e) => return e.answer(shared),
    };
    match shared.store.get_outputs(&key, &outputs).await {
        Ok(Some(meta)) => {
            shared.stats.count(Counted::Hit { language });
            shared.stats.count(Counted::Transfer(Transfer::SharedFs));
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
        Err(e) => return e.answer(shared),
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
    shared.stats.count(Counted::Transfer(Transfer::SharedFs));
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

/// `CacheGetInline`: the stored entry's bytes, checksum verified, for the client to extract.
pub(crate) async fn cache_get_inline(
    shared: &Shared,
    key: &str,
    language: Option<&str>,
) -> Result<Vec<u8>, Response> {
    let key = parse_key(key).map_err(|e| refused(shared, e))?;
    match shared.store.get_entry(&key).await {
        Ok(Some(bytes)) => {
            shared.stats.count(Counted::Hit { language });
            shared.stats.count(Counted::Transfer(Transfer::Inline));
            Ok(bytes)
        }
        Ok(None) => {
            shared.stats.count(Counted::Miss { language });
            Err(Response::Miss)
        }
        Err(e) => Err(refused(shared, format!("cache get {key}: {e}"))),
    }
}

/// `CachePutInline`: stores an entry the client packed, once its checksum holds.
pub(crate) async fn cache_put_inline(
    shared: &Shared,
    key: &str,
    _language: Option<&str>,
    bytes: Vec<u8>,
) -> Response {
    shared.stats.count(Counted::Request {
        version: hoard_protocol::PROTOCOL_V2,
    });
    let key = match parse_key(key) {
        Ok(k) => k,
        Err(e) => return refused(shared, e),
    };
    match shared.store.put_entry(&key, bytes).await {
        Ok(()) => {
            shared.stats.count(Counted::Transfer(Transfer::Inline));
            shared.stats.count(Counted::Write);
            Response::Stored
        }
        Err(e) => refused(shared, format!("cache put {key}: {e}")),
    }
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
