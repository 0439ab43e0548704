//! Protocol v2: the server only stores. It extracts entries onto, and packs them from, paths
//! the client names on the shared filesystem, after checking each path.

use std::os::unix::ffi::OsStrExt;

use hoard_protocol::{ByteBuf, OutputPath as WirePath, PROTOCOL_V2, Response};
use hoard_storage::{CacheKey, EntryMeta, Located, OutputPath, OutputsHit, ReadLimits};

use crate::flight::Holder;
use crate::output_paths::{self, PathRefused};
use crate::probe::ProvenDir;
use crate::shared::Shared;
use crate::stats::{Counted, Transfer};

fn refused(shared: &Shared, message: String) -> Response {
    shared.stats.count(Counted::Error);
    tracing::debug!("{message}");
    Response::Error { message }
}

/// What a handler answers: `Err` is a refusal, answered as it is (the handler stops there).
pub(crate) type Answer = Result<Response, Response>;

/// The key a request names, or the refusal of a malformed one.
// The refusal is the answer itself, sent as it is; boxing it would only move it.
#[allow(clippy::result_large_err)]
fn parse_key(shared: &Shared, key: &str) -> Result<CacheKey, Response> {
    key.parse::<CacheKey>()
        .map_err(|e| refused(shared, e.to_string()))
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

/// Each output's path, once it passes the rules and once its directory is proven to be the
/// very one the client sees: by the identity (device and inode) the client sent for it, or,
/// for an output sent without one, by being the directory of this connection's `Hello` probe.
/// Without proof the answer is `NotShared` (a client that can go inline does; an older one
/// that cannot compiles locally): otherwise a same-uid peer that does not share this
/// filesystem (a container on the socket) could name any path the server's user may write.
fn checked_outputs(
    outputs: &[WirePath],
    peer_uid: u32,
    proven: Option<&ProvenDir>,
) -> Result<Vec<OutputPath>, PathsRefused> {
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
    let checked = outputs
        .iter()
        .map(|o| {
            let path = o.to_path_buf();
            output_paths::check(&path, peer_uid).map_err(PathsRefused::Refused)?;
            Ok(OutputPath::new(o.role.clone(), path))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Then paths without an identity: the path rules hold for them (an error says what is
    // wrong), but nothing proves this is the client's directory unless the probe's is.
    for o in outputs.iter().filter(|o| o.dir.is_none()) {
        let path = o.to_path_buf();
        let dir = path.parent().unwrap_or(&path);
        if !proven.is_some_and(|p| p.is(dir)) {
            return Err(PathsRefused::NotShared(dir.as_os_str().as_bytes().to_vec()));
        }
    }
    Ok(checked)
}

/// `CacheGet`: on a hit the entry is extracted onto the outputs and its stdout/stderr returned.
/// Single flight: a miss while another connection is producing the key waits for it.
pub(crate) async fn cache_get(
    shared: &Shared,
    (holder, peer_uid, proven): (Holder, u32, Option<&ProvenDir>),
    key: &str,
    outputs: &[WirePath],
    language: Option<&str>,
) -> Answer {
    let key = parse_key(shared, key)?;
    let outputs = checked_outputs(outputs, peer_uid, proven).map_err(|e| e.answer(shared))?;
    let found = if outputs.is_empty() {
        // A lookup naming no outputs only counts a miss (the pipeline's miss probe after a
        // compile): it leads nothing and waits for nothing.
        shared.store.find_outputs(&key, &outputs).await
    } else {
        let look = || shared.store.find_outputs(&key, &outputs);
        let stored = || shared.stored_locally(&key);
        shared.flights.look(&key, holder, stored, look).await
    };
    Ok(match found {
        Ok(Some(OutputsHit {
            meta,
            tier,
            signer,
            digests,
        })) => {
            shared.stats.count(Counted::Hit {
                language,
                protocol: PROTOCOL_V2,
                saved_ms: meta.compile_ms,
            });
            shared.stats.count(Counted::Transfer(Transfer::SharedFs));
            Response::Hit {
                compile_ms: (meta.compile_ms > 0).then_some(meta.compile_ms),
                stdout: meta.stdout,
                stderr: meta.stderr,
                exit_status: meta.exit_status,
                tier,
                signer,
                digests: digests.iter().map(|d| ByteBuf::from(d.to_vec())).collect(),
            }
        }
        Ok(None) => {
            shared.stats.count(Counted::Miss {
                language,
                protocol: PROTOCOL_V2,
            });
            Response::Miss
        }
        Err(e) => refused(shared, format!("cache get {key}: {e}")),
    })
}

/// `CachePut`: packs the outputs from the client's paths and stores the entry.
pub(crate) async fn cache_put(
    shared: &Shared,
    (holder, peer_uid, proven): (Holder, u32, Option<&ProvenDir>),
    key: &str,
    outputs: &[WirePath],
    meta: &EntryMeta,
) -> Answer {
    let key = parse_key(shared, key)?;
    // Whatever happens to the put, this connection's flight of the key ends here: on success
    // it passes to the store below, on a refusal its followers stop waiting for it.
    let landing = scopeguard(|| shared.flights.land(&key, holder));
    let outputs = checked_outputs(outputs, peer_uid, proven).map_err(|e| e.answer(shared))?;
    let limits = ReadLimits {
        owner_uid: Some(peer_uid),
        max_file_size: shared.config.max_output_size,
    };
    // Read now (once we answer, the build may touch the files), compress and store after
    // answering: the client is on the build's critical path, the packing is not.
    let files = match shared.store.read_outputs(&outputs, &limits).await {
        Ok(files) => files,
        Err(e) => return Err(refused(shared, format!("cache put {key}: {e}"))),
    };
    shared.stats.count(Counted::Transfer(Transfer::SharedFs));
    let (store, stats, meta) = (shared.store.clone(), shared.stats.clone(), meta.clone());
    // Followers of the key wait for the entry to be on disk, not merely for this answer.
    let storing = shared.flights.storing(&key);
    drop(landing);
    shared.background.spawn(async move {
        match store.put_files(&key, files, meta).await {
            Ok(()) => stats.count(Counted::Write),
            Err(e) => {
                tracing::warn!("cache put {key}: {e}");
                stats.count(Counted::Error);
            }
        }
        drop(storing);
    });
    Ok(Response::Stored)
}

/// Runs `f` when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

fn scopeguard<F: FnOnce()>(f: F) -> OnDrop<F> {
    OnDrop(Some(f))
}

/// `CacheGetInline`: the stored entry's bytes, checksum verified, for the client to extract.
#[allow(clippy::result_large_err)] // as `parse_key`'s
pub(crate) async fn cache_get_inline(
    shared: &Shared,
    holder: Holder,
    key: &str,
    language: Option<&str>,
) -> Result<Located, Response> {
    let key = parse_key(shared, key)?;
    let look = || shared.store.get_entry(&key);
    let stored = || shared.stored_locally(&key);
    match shared.flights.look(&key, holder, stored, look).await {
        Ok(Some(found)) => {
            shared.stats.count(Counted::Hit {
                language,
                protocol: PROTOCOL_V2,
                saved_ms: hoard_storage::entry::stored_compile_ms(&found.entry).unwrap_or(0),
            });
            shared.stats.count(Counted::Transfer(Transfer::Inline));
            Ok(found)
        }
        Ok(None) => {
            shared.stats.count(Counted::Miss {
                language,
                protocol: PROTOCOL_V2,
            });
            Err(Response::Miss)
        }
        Err(e) => Err(refused(shared, format!("cache get {key}: {e}"))),
    }
}

/// `CachePutInline`: stores an entry the client packed, once its checksum holds.
pub(crate) async fn cache_put_inline(
    shared: &Shared,
    holder: Holder,
    key: &str,
    bytes: Vec<u8>,
) -> Answer {
    let key = parse_key(shared, key)?;
    let put = shared.store.put_entry(&key, bytes);
    store_and_land(shared, holder, &key, "cache put", put).await?;
    shared.stats.count(Counted::Transfer(Transfer::Inline));
    shared.stats.count(Counted::Write);
    Ok(Response::Stored)
}

/// Waits for `put` of `key`, then lands this connection's flight of the key whatever came of
/// it (its followers stop waiting either way). A failure is refused as `what` failed.
async fn store_and_land<E: std::fmt::Display>(
    shared: &Shared,
    holder: Holder,
    key: &CacheKey,
    what: &str,
    put: impl Future<Output = Result<(), E>>,
) -> Result<(), Response> {
    let stored = put.await;
    shared.flights.land(key, holder);
    stored.map_err(|e| refused(shared, format!("{what} {key}: {e}")))
}

/// `ManifestGet`: the direct-mode manifest under `key`, if any.
/// Single flight: in direct mode a first compile's only lookup before compiling is of its
/// manifest, so concurrent first compiles of one source wait here for the first to record.
pub(crate) async fn manifest_get(shared: &Shared, holder: Holder, key: &str) -> Answer {
    let key = parse_key(shared, key)?;
    let look = || shared.store.get_blob(&key);
    let stored = || shared.stored_locally(&key);
    Ok(
        match shared.flights.look(&key, holder, stored, look).await {
            Ok(Some(manifest)) => Response::Manifest { manifest },
            Ok(None) => Response::Miss,
            Err(e) => refused(shared, format!("manifest get {key}: {e}")),
        },
    )
}

/// `ManifestPut`: stores a direct-mode manifest.
pub(crate) async fn manifest_put(
    shared: &Shared,
    holder: Holder,
    key: &str,
    manifest: Vec<u8>,
) -> Answer {
    let key = parse_key(shared, key)?;
    let put = shared.store.put_blob(&key, manifest);
    store_and_land(shared, holder, &key, "manifest put", put).await?;
    Ok(Response::Stored)
}
