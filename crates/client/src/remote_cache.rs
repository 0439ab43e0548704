//! The compiler pipeline's `ArtifactCache`, served by a server over protocol v2.
//!
//! On a shared filesystem the server extracts hits onto our output paths and packs puts from
//! them, so no artifact bytes cross the socket; each request says which directory (device and
//! inode) we saw, and a server that sees another answers `NotShared`. Then, and whenever the
//! handshake showed no shared filesystem at all (another mount namespace, TCP), the entry's
//! bytes travel inline: we extract and verify hits ourselves and pack puts ourselves. Keys are
//! the same either way, so both kinds of client share entries.

use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use hoard_compiler::{ArtifactCache, CacheError, CompileResult, Language};
use hoard_protocol::{
    ClientEvent, LOCAL_HITS_FILE, OutputPath as WirePath, PROTOCOL_V2, Request, Response,
    capability,
};
use hoard_storage::entry::{self, EntryError};
use hoard_storage::{CacheKey, DiskStore, OutputPath, ReadLimits};
use tokio::sync::Mutex;

use crate::connection::{HitSource, unexpected};
use crate::not_shared::{NotSharedDirs, identity};
use crate::{ClientError, Connection};

/// [`ArtifactCache`] over one connection to a v2 server.
#[derive(Debug)]
pub struct RemoteCache {
    connection: Mutex<Connection>,
    not_shared: std::sync::Mutex<Option<NotSharedDirs>>,
    /// Set when the first answer showed a server from before v2 (see
    /// [`ArtifactCache::withdrawn`]).
    predates_v2: AtomicBool,
    /// How the last hit or put's bytes travelled, for the journal.
    last_transfer: std::sync::Mutex<Option<&'static str>>,
    last_source: std::sync::Mutex<HitSource>,
    /// `HOARD_RECACHE`: every lookup misses, and what is compiled is stored over what the
    /// cache held.
    recache: bool,
}

/// How one request's bytes will travel.
enum Transfer {
    /// The server works on these paths, whose directories we identified.
    SharedFs(Vec<WirePath>),
    /// The bytes cross the connection.
    Inline,
}

impl RemoteCache {
    /// Serves the cache over `connection`, which must have negotiated v2.
    pub fn new(connection: Connection) -> Self {
        Self {
            connection: Mutex::new(connection),
            not_shared: std::sync::Mutex::new(None),
            predates_v2: AtomicBool::new(false),
            last_transfer: std::sync::Mutex::new(None),
            last_source: std::sync::Mutex::new(HitSource::default()),
            recache: false,
        }
    }

    /// Makes every lookup a miss, so each compile runs and its result replaces the stored
    /// one (`HOARD_RECACHE`, ccache's `CCACHE_RECACHE`). Manifests are still read, so a
    /// recompiled result joins the candidates a later lookup may find.
    #[must_use]
    pub fn recaching(mut self, recache: bool) -> Self {
        self.recache = recache;
        self
    }

    /// The storage tier that held the last hit (`local`, `redis`, ...) and the trusted key
    /// that signed it, as far as the server said.
    pub fn last_source(&self) -> HitSource {
        self.last_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn note_source(&self, source: HitSource) {
        *self
            .last_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = source;
    }

    /// How the last hit or stored put's bytes travelled: `shared_fs` or `inline`.
    pub fn last_transfer(&self) -> Option<&'static str> {
        *self
            .last_transfer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note_transfer(&self, how: &'static str) {
        *self
            .last_transfer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(how);
    }

    /// The connection back, for a caller that goes on in v1 after [`ArtifactCache::withdrawn`].
    pub fn into_connection(self) -> Connection {
        self.connection.into_inner()
    }

    /// Sends `request` and notes a server that turned out to predate v2.
    async fn ask(
        &self,
        connection: &mut Connection,
        request: &Request,
    ) -> Result<Response, ClientError> {
        let answer = connection.request(request).await;
        if connection.version() < PROTOCOL_V2 {
            self.predates_v2.store(true, Ordering::Relaxed);
        }
        answer
    }

    /// Runs `work` on the remembered not-shared directories, loaded on first use.
    fn with_not_shared<T>(
        &self,
        state_dir: &Path,
        work: impl FnOnce(&mut NotSharedDirs) -> T,
    ) -> T {
        let mut guard = self
            .not_shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(guard.get_or_insert_with(|| NotSharedDirs::load(state_dir)))
    }

    /// Decides how a request on `outputs` travels.
    fn transfer(&self, connection: &Connection, outputs: &[OutputPath]) -> Transfer {
        if !connection.shared_fs() {
            return Transfer::Inline;
        }
        let wire: Vec<WirePath> = outputs
            .iter()
            .map(|o| {
                let dir = o.path.parent().and_then(identity);
                WirePath::new(o.role.clone(), &o.path).with_dir(dir)
            })
            .collect();
        let known = self.with_not_shared(connection.state_dir(), |dirs| {
            outputs.iter().zip(&wire).any(|(o, w)| {
                matches!((o.path.parent(), w.dir), (Some(dir), Some(id)) if dirs.contains(dir, id))
            })
        });
        if known {
            Transfer::Inline
        } else {
            Transfer::SharedFs(wire)
        }
    }

    /// Remembers the directory a `NotShared` answer named, and checks that inline is possible.
    fn not_shared(
        &self,
        connection: &Connection,
        wire: &[WirePath],
        directory: Vec<u8>,
    ) -> Result<(), ClientError> {
        let dir =
            std::path::PathBuf::from(<std::ffi::OsString as OsStringExt>::from_vec(directory));
        let sent = wire
            .iter()
            .find(|w| w.to_path_buf().parent() == Some(dir.as_path()))
            .and_then(|w| w.dir);
        if let Some(id) = sent {
            self.with_not_shared(connection.state_dir(), |dirs| dirs.remember(&dir, id));
        }
        if connection.has_capability(capability::INLINE) {
            Ok(())
        } else {
            Err(ClientError::NotShared { directory: dir })
        }
    }

    /// Looks `key` up; on a hit every output is in place. `language` only feeds the
    /// per-language statistics.
    pub async fn get_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        language: Option<&str>,
    ) -> Result<Option<CompileResult>, ClientError> {
        let mut connection = self.connection.lock().await;
        if self.recache {
            // Counted as the miss it is, as a local-store miss counts, without asking.
            if let Some(language) = language {
                let event = ClientEvent::LocalMiss {
                    language: language.to_owned(),
                };
                let _ = crate::events::try_record_event(connection.state_dir(), &event);
            }
            return Ok(None);
        }
        if let Some(result) = self.local_hit(&connection, key, outputs, language) {
            return Ok(Some(result));
        }
        if let Transfer::SharedFs(wire) = self.transfer(&connection, outputs) {
            let request = Request::CacheGet {
                key: key.to_hex(),
                outputs: wire.clone(),
                language: language.map(str::to_owned),
            };
            match self.ask(&mut connection, &request).await? {
                Response::Hit {
                    stdout,
                    stderr,
                    exit_status,
                    tier,
                    signer,
                    digests,
                    compile_ms,
                } => {
                    self.note_transfer("shared_fs");
                    self.note_source(HitSource { tier, signer });
                    // The server counts the time saved; the journal shows it per compile.
                    let mut result = CompileResult::new(stdout, stderr, exit_status);
                    result.compile_time = std::time::Duration::from_millis(compile_ms.unwrap_or(0));
                    result.output_digests = output_digests(&digests, outputs.len());
                    return Ok(Some(result));
                }
                Response::Miss => return Ok(None),
                Response::NotShared { directory } => {
                    self.not_shared(&connection, &wire, directory)?;
                }
                other => return Err(unexpected("CacheGet", &other)),
            }
        }
        let Some((bytes, source)) = connection
            .get_inline(key.to_hex(), language.map(str::to_owned))
            .await?
        else {
            return Ok(None);
        };
        drop(connection);
        match entry::extract_with_digests(&bytes, outputs) {
            Ok(extracted) => {
                self.note_transfer("inline");
                self.note_source(source);
                Ok(Some(CompileResult::from_stored(
                    extracted.meta,
                    extracted.digests,
                )))
            }
            // Not this compile's entry after all, or damaged on the way: a miss, and the put
            // that follows replaces it.
            Err(
                e @ (EntryError::Corrupt { .. }
                | EntryError::RoleMismatch { .. }
                | EntryError::UnsupportedVersion { .. }),
            ) => {
                tracing::warn!(%key, "inline entry not usable, a miss: {e}");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The hit under `key` in our own cache directory, extracted onto `outputs` here, as the
    /// manifest is read there: no round trip, no process woken. The server's local store is
    /// our `HOARD_DIR`'s, whose entries are verified whole as they are written out (a split
    /// entry's large files copied from beside its stub); the hit is counted through the
    /// client events log the server folds into its statistics. Anything else (no such entry,
    /// one that does not verify or is not for these outputs) is asked of the server, which
    /// also knows the remote tiers and removes what is damaged.
    fn local_hit(
        &self,
        connection: &Connection,
        key: &CacheKey,
        outputs: &[OutputPath],
        language: Option<&str>,
    ) -> Option<CompileResult> {
        let state_dir = served_locally(connection)?;
        let delivered = DiskStore::peek_deliver(&state_dir.join("cache"), key, outputs).ok()??;
        let extracted = match delivered {
            Ok(extracted) => extracted,
            Err(e) => {
                tracing::debug!(%key, "local entry not used, asking the server: {e}");
                return None;
            }
        };
        let counted = crate::events::try_record_event(
            state_dir,
            &ClientEvent::LocalHit {
                language: language.unwrap_or("unknown").to_owned(),
                saved_ms: extracted.meta.compile_ms,
            },
        );
        if let Err(e) = counted {
            // A hit nobody counts is a hit the statistics cannot explain (a read-only or full
            // cache directory): the server serves it again, the same bytes, and counts it.
            tracing::debug!(%key, "local hit not countable ({e}), asking the server");
            return None;
        }
        self.note_transfer("local");
        self.note_source(HitSource {
            tier: Some("local".to_owned()),
            signer: None,
        });
        Some(CompileResult::from_stored(
            extracted.meta,
            extracted.digests,
        ))
    }

    /// Stores the outputs under `key`: the server reads them from their paths, or we pack
    /// them and send the bytes.
    pub async fn put_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        language: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut connection = self.connection.lock().await;
        if let Transfer::SharedFs(wire) = self.transfer(&connection, outputs) {
            let request = Request::CachePut {
                key: key.to_hex(),
                outputs: wire.clone(),
                stdout: result.stdout.clone(),
                stderr: result.stderr.clone(),
                exit_status: result.exit_status,
                language: language.map(str::to_owned),
                compile_ms: result.compile_ms(),
            };
            match self.ask(&mut connection, &request).await? {
                Response::Stored => {
                    self.note_transfer("shared_fs");
                    return Ok(());
                }
                Response::NotShared { directory } => {
                    self.not_shared(&connection, &wire, directory)?;
                }
                other => return Err(unexpected("CachePut", &other)),
            }
        }
        let packed = entry::pack(outputs, &result.entry_meta(), &ReadLimits::default())?;
        match connection
            .put_inline(key.to_hex(), language.map(str::to_owned), &packed)
            .await?
        {
            Response::Stored => {
                self.note_transfer("inline");
                Ok(())
            }
            other => Err(unexpected("CachePutInline", &other)),
        }
    }
}

/// The cache directory whose local store this client may serve hits from and count them in
/// itself; `None` for a server pinned to v1 or from before local hits (no marker), which
/// sees and counts every hit and miss itself, and for a client in another mount namespace
/// than the server's (a container), whose hits go inline.
fn served_locally(connection: &Connection) -> Option<&Path> {
    let state_dir = connection.state_dir();
    if !connection.has_capability(capability::MANIFESTS) {
        return None;
    }
    let marker = std::fs::read_to_string(state_dir.join(LOCAL_HITS_FILE)).ok()?;
    let ours = hoard_protocol::local_hits_marker(&hoard_protocol::mount_namespace()?);
    (marker == ours).then_some(state_dir)
}

/// The manifest under `key` in the local store of `state_dir`, if it is there and sound.
fn local_manifest(state_dir: &Path, key: &CacheKey) -> Option<Vec<u8>> {
    let bytes = DiskStore::peek(&state_dir.join("cache"), key).ok()??;
    entry::unpack_blob(&bytes).ok()
}

#[async_trait]
impl ArtifactCache for RemoteCache {
    async fn get(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        language: Language,
    ) -> Result<Option<CompileResult>, CacheError> {
        Ok(self
            .get_outputs(key, outputs, Some(language.name()))
            .await?)
    }

    async fn put(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        language: Language,
    ) -> Result<(), CacheError> {
        Ok(self
            .put_outputs(key, outputs, result, Some(language.name()))
            .await?)
    }

    async fn get_manifest(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        let mut connection = self.connection.lock().await;
        // A server without manifests simply has none.
        if !connection.has_capability(capability::MANIFESTS) {
            return Ok(None);
        }
        // The server's local store is our HOARD_DIR's: read the manifest there and spare the
        // round trip. Anything but a good manifest (absent, damaged, another directory) is
        // asked of the server, which also knows the remote tiers.
        if let Some(manifest) = local_manifest(connection.state_dir(), key) {
            return Ok(Some(manifest));
        }
        let request = Request::ManifestGet { key: key.to_hex() };
        match self.ask(&mut connection, &request).await? {
            Response::Manifest { manifest } => Ok(Some(manifest)),
            Response::Miss => Ok(None),
            other => Err(unexpected("ManifestGet", &other).into()),
        }
    }

    async fn count_miss(&self, probe: &CacheKey, language: Language) -> Result<(), CacheError> {
        // Where hits are served from the local store, the miss is counted the same way, with
        // no round trip and no remote tier asked for a key nothing is stored under.
        {
            let connection = self.connection.lock().await;
            if let Some(state_dir) = served_locally(&connection) {
                let event = ClientEvent::LocalMiss {
                    language: language.name().to_owned(),
                };
                if crate::events::try_record_event(state_dir, &event).is_ok() {
                    return Ok(());
                }
            }
        }
        self.get(probe, &[], language).await.map(|_| ())
    }

    fn withdrawn(&self) -> bool {
        self.predates_v2.load(Ordering::Relaxed)
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
        match connection.request(&request).await? {
            Response::Stored => Ok(()),
            other => Err(unexpected("ManifestPut", &other).into()),
        }
    }
}

/// The output digests a server sent with a hit, if it sent one 32-byte digest per output
/// (older servers send none; anything else is ignored rather than trusted).
fn output_digests(sent: &[hoard_protocol::ByteBuf], outputs: usize) -> Vec<[u8; 32]> {
    let digests: Vec<[u8; 32]> = sent
        .iter()
        .filter_map(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
        .collect();
    if digests.len() == outputs && sent.len() == outputs {
        digests
    } else {
        Vec::new()
    }
}
