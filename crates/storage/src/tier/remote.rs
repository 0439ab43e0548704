//! One remote tier: an OpenDAL operator for the configured service (or, for memcached, the
//! pooled client of [`super::memcached`]; for a shared directory, the link-refusing file work
//! of [`shared_dir`]; for a REAPI server, the gRPC client of [`super::reapi`]), wrapped in deadlines, a circuit breaker, a size limit on what is read
//! and counters. No wire protocol is written here; this module only decides when to call,
//! for how long, how much to accept and what a failure means (never an error for the
//! caller).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opendal::{ErrorKind, Operator};
use tokio::sync::OnceCell;

use super::bounded_read::{self, Bounded};
use super::breaker::{Admit, Breaker};
use super::config::{TierConfig, TierConfigError, TierKind};
use super::memcached::{Memcached, MemcachedError};
use super::operators::{build_operator, invalid};
use super::reapi::{Reapi, ReapiError, Written};
use super::shared_dir::{self, Lookup, Refusal, SharedDirError};
use crate::CacheKey;

/// Where entries go inside a key-value tier (memcached, redis, the default S3 prefix), so
/// hoard can share a server with other users of it.
pub(super) const KEY_ROOT: &str = "/hoard/";

/// Counters of one tier, as reported in [`super::TierStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// Entries read ahead into the local disk ([`super::prefetch`]).
    pub(crate) prefetched: AtomicU64,
    /// Entries refused because no trusted key signed them ([`crate::signing`]).
    pub(crate) untrusted: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn zero(&self) {
        for c in [
            &self.hits,
            &self.misses,
            &self.writes,
            &self.errors,
            &self.timeouts,
            &self.skipped,
            &self.prefetched,
            &self.untrusted,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// How a guarded call ended.
enum Call<T> {
    Done(T),
    /// Not attempted: the breaker is open.
    Rejected,
    /// Attempted and failed or timed out (already counted).
    Failed,
}

/// A tier operation failed (a timeout is counted apart).
#[derive(Debug, thiserror::Error)]
enum TierError {
    /// OpenDAL's service failed.
    #[error(transparent)]
    Dal(#[from] opendal::Error),
    /// The memcached client failed.
    #[error(transparent)]
    Memcached(#[from] MemcachedError),
    /// The shared directory's file work failed.
    #[error(transparent)]
    SharedDir(#[from] SharedDirError),
    /// The REAPI server failed a call, or returned what cannot be used.
    #[error(transparent)]
    Reapi(#[from] ReapiError),
    /// The blocking task doing the file work did not finish.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The most a tier with no configured limit ([`TierConfig::max_entry_size`]) is sent or
/// read per entry. A remote tier is written by others, so what it returns is bounded before
/// it is read whole; hoard's own write queue holds 256 MiB in all, and compressed entries
/// that large are rare even for Rust crates. Set `max_entry_size` to go above it.
pub const DEFAULT_MAX_REMOTE_ENTRY: u64 = 128 << 20;

/// A remote tier ready to be called. Holds no connection until the first operation:
/// OpenDAL's services connect lazily, and some operators are only built on first use
/// ([`RemoteTier::operator`]), so construction never touches the network or a mount. A
/// shared directory is not reached through OpenDAL at all ([`shared_dir`]).
pub(crate) struct RemoteTier {
    pub(crate) config: TierConfig,
    pub(crate) counters: Counters,
    breaker: Breaker,
    operator: OnceCell<Operator>,
    /// memcached's client (that tier only): its connections are pooled and kept open.
    memcached: Option<Memcached>,
    /// A REAPI server's client (that tier only).
    reapi: Option<Reapi>,
    /// Entries larger than this are neither written to the tier nor read from it.
    max_entry: u64,
    /// Whether the last operation succeeded, i.e. a connection has been seen to work and
    /// none has failed since.
    answering: AtomicBool,
    /// A write was refused for lack of permission: the tier is read-only from then on.
    writes_refused: AtomicBool,
}

/// How a write of a prefetch index object ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexWrite {
    Written,
    /// The key holds something already, and the tier never rewrites a key.
    Taken,
    /// Failed, refused, or not attempted.
    Failed,
}

/// How a write ended that did not fail.
enum Stored {
    Written,
    /// Something at the entry's path is refused (the shared directory).
    Refused(Refusal),
    /// The tier answered and did not take it.
    Declined(Decline),
}

/// Why a tier that answered did not take a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decline {
    /// The key is taken and never rewritten (the Actions cache keeps a key's first write).
    Exists,
    /// Too many requests: this one is dropped, not retried.
    RateLimited,
    /// These credentials may not write.
    NotAllowed,
}

impl Decline {
    fn of(e: &opendal::Error) -> Option<Decline> {
        match e.kind() {
            ErrorKind::AlreadyExists => Some(Decline::Exists),
            ErrorKind::RateLimited => Some(Decline::RateLimited),
            ErrorKind::PermissionDenied => Some(Decline::NotAllowed),
            // OpenDAL's Actions cache service says so when the service answers `ok: false`
            // to the creation of an entry whose key exists.
            ErrorKind::Unexpected if e.message().contains("create cache entry returns non-ok") => {
                Some(Decline::Exists)
            }
            _ => None,
        }
    }
}

impl std::fmt::Debug for RemoteTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTier")
            .field("name", &self.config.name)
            .field("kind", &self.config.kind.name())
            .field("state", &self.breaker.state_name())
            .finish_non_exhaustive()
    }
}

impl RemoteTier {
    /// Checks `config` and builds what can be built without I/O.
    pub(crate) fn new(config: TierConfig) -> Result<Self, TierConfigError> {
        config.validate()?;
        // An operator whose builder needs no I/O is built now, so OpenDAL's own checks
        // (an S3 region it cannot find, ...) fail at startup, naming the tier.
        let (operator, memcached) = match &config.kind {
            TierKind::SharedDir { .. } | TierKind::Reapi { .. } => (OnceCell::new(), None),
            TierKind::Memcached { endpoint } => {
                let client = Memcached::new(endpoint).map_err(|reason| {
                    invalid(&config, "endpoint", endpoint, &reason).scrubbed(&config.kind)
                })?;
                (OnceCell::new(), Some(client))
            }
            _ => (OnceCell::new_with(Some(build_operator(&config)?)), None),
        };
        // A probe that has not reported after two full deadlines was dropped mid-way.
        let probe_deadline = 2 * (config.op_timeout + config.connect_timeout);
        Ok(Self {
            max_entry: config
                .effective_max_entry_size()
                .unwrap_or(DEFAULT_MAX_REMOTE_ENTRY),
            breaker: Breaker::new(probe_deadline),
            counters: Counters::default(),
            operator,
            memcached,
            reapi: Reapi::of(&config),
            answering: AtomicBool::new(false),
            writes_refused: AtomicBool::new(false),
            config,
        })
    }

    /// Breaker state for stats.
    pub(crate) fn state_name(&self) -> &'static str {
        self.breaker.state_name()
    }

    /// How long until the open breaker probes the tier again, for stats.
    pub(crate) fn retry_in(&self) -> Option<std::time::Duration> {
        self.breaker.retry_in()
    }

    /// Whether a request costs this tier more than the bytes it carries (an HTTP object
    /// store: S3, GCS, Azure, WebDAV, the Actions cache), so prefetch sends a segment's entries
    /// as one pack.
    pub(crate) fn packs(&self) -> bool {
        self.is_object_store()
    }

    /// Whether the tier is an object store reached over HTTP, which answers ranged reads.
    fn is_object_store(&self) -> bool {
        matches!(
            self.config.kind,
            TierKind::S3 { .. }
                | TierKind::Webdav { .. }
                | TierKind::Azure { .. }
                | TierKind::Gcs { .. }
                | TierKind::Gha { .. }
        )
    }

    /// Whether objects can be written again under the same key. The Actions cache keeps the
    /// first write of a key forever, so prefetch's list of recent segments (rewritten by every
    /// writer) cannot live there: its segments go to day slots instead ([`super::slots`]).
    pub(crate) fn rewritable(&self) -> bool {
        !matches!(self.config.kind, TierKind::Gha { .. })
    }

    /// The most bytes one object read from or written to the tier may have.
    pub(crate) fn max_entry(&self) -> u64 {
        self.max_entry
    }

    /// Whether an entry of `len` bytes fits the tier's limit.
    pub(crate) fn accepts(&self, len: usize) -> bool {
        len as u64 <= self.max_entry
    }

    /// The entry's bytes under `key`, at most the tier's entry limit, unverified: the
    /// caller verifies them and counts the hit (or the error). `None` on a miss (counted),
    /// an error, a timeout, an open breaker, or something at the entry's path this tier
    /// refuses to read (counted as an error, but not against the breaker: the tier
    /// answered).
    pub(crate) async fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        match self.lookup(key).await {
            Call::Done(Lookup::Found(bytes)) => Some(bytes),
            Call::Done(Lookup::Missing) => {
                Counters::bump(&self.counters.misses);
                None
            }
            Call::Done(Lookup::Refused(why)) => {
                self.refused("get", key, &why);
                None
            }
            Call::Rejected | Call::Failed => None,
        }
    }

    /// Like [`RemoteTier::get`], for reads that are not a compile's lookup (the prefetch
    /// index's objects, entries read ahead): a missing object is not a miss of the tier
    /// (failures still count, and still count against the breaker).
    pub(crate) async fn get_uncounted(&self, key: &CacheKey) -> Option<Vec<u8>> {
        match self.lookup(key).await {
            Call::Done(Lookup::Found(bytes)) => Some(bytes),
            Call::Done(Lookup::Refused(why)) => {
                self.refused("get", key, &why);
                None
            }
            _ => None,
        }
    }

    /// The guarded read behind [`RemoteTier::get`], uncounted but for failures.
    async fn lookup(&self, key: &CacheKey) -> Call<Lookup> {
        if let Some(root) = self.shared_root() {
            let (owned_key, limit) = (*key, self.max_entry);
            let read = in_shared_dir(root, move |root| shared_dir::read(root, &owned_key, limit));
            self.guarded("get", key, read).await
        } else if let Some(memcached) = &self.memcached {
            self.guarded("get", key, self.memcached_get(memcached, key))
                .await
        } else if let Some(reapi) = &self.reapi {
            if reapi.unusable() {
                return Call::Rejected;
            }
            let read = async { Ok(Box::pin(reapi.get(key, self.max_entry)).await?) };
            self.guarded("get", key, read).await
        } else {
            self.guarded("get", key, self.dal_get(key)).await
        }
    }

    /// Counts and logs something the tier returned that is not used.
    pub(crate) fn refused(&self, op: &'static str, key: &CacheKey, why: &dyn std::fmt::Display) {
        Counters::bump(&self.counters.errors);
        tracing::warn!(tier = %self.config.name, op, %key, %why, "refused what the remote tier holds");
    }

    /// Counts an entry refused because no trusted key signed it as the entry under `key`.
    pub(crate) fn untrusted(&self, key: &CacheKey, why: &dyn std::fmt::Display) {
        Counters::bump(&self.counters.untrusted);
        tracing::warn!(tier = %self.config.name, %key, %why, "refused an entry no trusted key signed");
    }

    /// A read from memcached, whose values are bounded by the server's item size; what is
    /// over the tier's limit anyway is refused before it is used.
    async fn memcached_get(
        &self,
        memcached: &Memcached,
        key: &CacheKey,
    ) -> Result<Lookup, TierError> {
        let path = entry_path(key);
        Ok(match memcached.get(&memcached_key(&path)).await? {
            None => Lookup::Missing,
            Some(bytes) if bytes.len() as u64 > self.max_entry => {
                Lookup::Refused(Refusal::TooLarge {
                    path: path.into(),
                    size: bytes.len() as u64,
                    limit: self.max_entry,
                })
            }
            Some(bytes) => Lookup::Found(bytes),
        })
    }

    /// A read through OpenDAL: an object store in one bounded request ([`bounded_read`]);
    /// whatever is over the limit is refused before it is used.
    async fn dal_get(&self, key: &CacheKey) -> Result<Lookup, TierError> {
        let op = self.operator().await?;
        let path = entry_path(key);
        if !self.is_object_store() {
            // redis: its values are bounded by the server, and OpenDAL's key-value adapter
            // answers ranged reads past a value's end with an error.
            return Ok(match op.read(&path).await {
                Ok(buf) if buf.len() as u64 > self.max_entry => {
                    Lookup::Refused(Refusal::TooLarge {
                        path: path.into(),
                        size: buf.len() as u64,
                        limit: self.max_entry,
                    })
                }
                Ok(buf) => Lookup::Found(Vec::from(buf.to_bytes())),
                Err(e) if e.kind() == ErrorKind::NotFound => Lookup::Missing,
                Err(e) => return Err(e.into()),
            });
        }
        Ok(match bounded_read::read(op, &path, self.max_entry).await? {
            Bounded::Found(bytes) => Lookup::Found(bytes),
            Bounded::Missing => Lookup::Missing,
            Bounded::TooLarge(size) => Lookup::Refused(Refusal::TooLarge {
                path: path.into(),
                size,
                limit: self.max_entry,
            }),
        })
    }

    /// Writes `entry` under `key`; failures are counted, an open breaker counts a skip.
    pub(crate) async fn put(&self, key: &CacheKey, entry: Bytes) {
        match self.store(key, entry).await {
            Call::Done(Stored::Written) => Counters::bump(&self.counters.writes),
            Call::Done(Stored::Refused(why)) => self.refused("put", key, &why),
            Call::Done(Stored::Declined(decline)) => self.declined(key, decline),
            Call::Rejected => Counters::bump(&self.counters.skipped),
            Call::Failed => {}
        }
    }

    /// A write the tier answered but did not take: skipped, never retried. A token that may
    /// not write (the Actions cache gives pull requests from forks a read-only one) makes the
    /// tier read-only from now on, without an error.
    fn declined(&self, key: &CacheKey, decline: Decline) {
        Counters::bump(&self.counters.skipped);
        if decline == Decline::NotAllowed && !self.writes_refused.swap(true, Ordering::Relaxed) {
            tracing::info!(tier = %self.config.name, %key,
                "the tier refuses writes with these credentials: read-only from now on");
        } else {
            tracing::debug!(tier = %self.config.name, %key, ?decline, "write not taken");
        }
    }

    /// Whether entries are written to the tier: not configured read-only, and no write
    /// refused for lack of permission.
    pub(crate) fn writable(&self) -> bool {
        !self.config.read_only && !self.writes_refused.load(Ordering::Relaxed)
    }

    /// Writes an object of the prefetch index: not an entry, so not counted as a write.
    pub(crate) async fn put_index(&self, key: &CacheKey, object: Bytes) -> IndexWrite {
        match self.store(key, object).await {
            Call::Done(Stored::Written) => IndexWrite::Written,
            Call::Done(Stored::Declined(Decline::Exists)) => IndexWrite::Taken,
            _ => IndexWrite::Failed,
        }
    }

    /// The guarded write behind [`RemoteTier::put`]: `Some(why)` when the tier's path was
    /// refused.
    async fn store(&self, key: &CacheKey, entry: Bytes) -> Call<Stored> {
        if let Some(root) = self.shared_root() {
            let owned_key = *key;
            let write = in_shared_dir(root, move |root| {
                match shared_dir::write(root, &owned_key, &entry) {
                    Err(SharedDirError::Refused(why)) => Ok(Stored::Refused(why)),
                    other => other.map(|()| Stored::Written),
                }
            });
            self.guarded("put", key, write).await
        } else if let Some(memcached) = &self.memcached {
            let path = memcached_key(&entry_path(key));
            let write = async {
                memcached.set(&path, &entry).await?;
                Ok(Stored::Written)
            };
            self.guarded("put", key, write).await
        } else if let Some(reapi) = &self.reapi {
            if reapi.unusable() {
                return Call::Rejected;
            }
            let write = async {
                // Boxed: the upload's future is large, and every tier's put would carry it.
                match Box::pin(reapi.put(key, entry)).await {
                    Ok(Written::Stored) => Ok(Stored::Written),
                    Ok(Written::ReadOnly) => Ok(Stored::Declined(Decline::NotAllowed)),
                    Err(e) if e.is_permission_denied() => Ok(Stored::Declined(Decline::NotAllowed)),
                    Err(e) if e.is_rate_limited() => Ok(Stored::Declined(Decline::RateLimited)),
                    Err(e) => Err(e.into()),
                }
            };
            self.guarded("put", key, write).await
        } else {
            let path = entry_path(key);
            let write = async {
                let op = self.operator().await?;
                match op.write(&path, entry).await {
                    Ok(_) => Ok(Stored::Written),
                    Err(e) => Decline::of(&e).map(Stored::Declined).ok_or(e.into()),
                }
            };
            self.guarded("put", key, write).await
        }
    }

    /// Removes `key`, best-effort.
    pub(crate) async fn remove(&self, key: &CacheKey) {
        if let Some(root) = self.shared_root() {
            let owned_key = *key;
            let remove = in_shared_dir(root, move |root| shared_dir::remove(root, &owned_key));
            self.guarded("remove", key, remove).await;
        } else if let Some(memcached) = &self.memcached {
            let path = memcached_key(&entry_path(key));
            let remove = async { Ok(memcached.delete(&path).await?) };
            self.guarded("remove", key, remove).await;
        } else if let Some(reapi) = &self.reapi {
            if !reapi.unusable() {
                let remove = async { Ok(Box::pin(reapi.remove(key)).await?) };
                self.guarded("remove", key, remove).await;
            }
        } else {
            let path = entry_path(key);
            let remove = async {
                let op = self.operator().await?;
                match op.delete(&path).await {
                    Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
                    _ => Ok(()),
                }
            };
            self.guarded("remove", key, remove).await;
        }
    }

    /// The shared directory's root, for that tier: its file work is done by
    /// [`shared_dir`], not OpenDAL.
    fn shared_root(&self) -> Option<PathBuf> {
        if let TierKind::SharedDir { path } = &self.config.kind {
            Some(path.clone())
        } else {
            None
        }
    }

    /// Runs `work` under the breaker and a deadline, counting failures.
    async fn guarded<T>(
        &self,
        what: &'static str,
        key: &CacheKey,
        work: impl Future<Output = Result<T, TierError>>,
    ) -> Call<T> {
        if self.breaker.admit() == Admit::Reject {
            return Call::Rejected;
        }
        let deadline = self.deadline();
        let result = tokio::time::timeout(deadline, work).await;
        let failure = match result {
            Ok(Ok(value)) => {
                self.breaker.success();
                self.answering.store(true, Ordering::Relaxed);
                return Call::Done(value);
            }
            Ok(Err(e)) => {
                Counters::bump(&self.counters.errors);
                format!("{e}")
            }
            Err(_) => {
                Counters::bump(&self.counters.timeouts);
                format!("no answer within {deadline:?}")
            }
        };
        self.answering.store(false, Ordering::Relaxed);
        let opened = self.breaker.failure();
        tracing::debug!(tier = %self.config.name, op = what, %key, error = %failure,
            "remote tier operation failed");
        if opened {
            tracing::warn!(tier = %self.config.name, error = %failure,
                "remote tier failing, not calling it for a while");
        }
        Call::Failed
    }

    /// How long one operation may take. HTTP clients apply the connect timeout themselves;
    /// memcached and redis connect inside an operation, so while the tier has no proven
    /// connection (startup, after a failure, a probe) an operation gets only the connect
    /// timeout: a dead server then costs that, not a full operation timeout.
    fn deadline(&self) -> Duration {
        // A REAPI operation is several calls, each with a deadline of its own that grows
        // with the bytes it moves (a 20 MiB output is more than a second's work for some
        // servers): the whole gets their sum.
        if let Some(reapi) = &self.reapi {
            return reapi.deadline(self.max_entry);
        }
        let connects_in_op = matches!(
            self.config.kind,
            TierKind::Memcached { .. } | TierKind::Redis { .. }
        );
        if connects_in_op && !self.answering.load(Ordering::Relaxed) {
            self.config.connect_timeout
        } else {
            self.config.op_timeout
        }
    }

    /// The operator, built on first use if it was not at startup. A failed build is retried
    /// next time. A shared directory and memcached never ask for one.
    async fn operator(&self) -> opendal::Result<&Operator> {
        self.operator
            .get_or_try_init(|| async {
                let config = self.config.clone();
                tokio::task::spawn_blocking(move || build_operator(&config))
                    .await
                    .map_err(|e| {
                        opendal::Error::new(ErrorKind::Unexpected, "building the operator")
                            .set_source(e)
                    })?
                    .map_err(|e| config_to_opendal(&e))
            })
            .await
    }
}

/// Runs shared-directory file work on the blocking pool (it may wait on a slow mount; the
/// tier's deadline bounds the wait, not the thread).
async fn in_shared_dir<T: Send + 'static>(
    root: PathBuf,
    work: impl FnOnce(&Path) -> Result<T, SharedDirError> + Send + 'static,
) -> Result<T, TierError> {
    Ok(tokio::task::spawn_blocking(move || work(&root)).await??)
}

/// memcached's key for an entry: its path under [`KEY_ROOT`], without the leading slash
/// (the key OpenDAL's memcached service used, so entries written before are still found).
fn memcached_key(path: &str) -> String {
    format!("{}{path}", KEY_ROOT.trim_start_matches('/'))
}

/// `<2 hex>/<64 hex>` under the tier's root, like the local disk layout.
fn entry_path(key: &CacheKey) -> String {
    let hex = key.to_hex();
    format!("{}/{hex}", &hex[..2])
}

/// Carries a configuration error found at first use as an operation failure.
fn config_to_opendal(e: &TierConfigError) -> opendal::Error {
    opendal::Error::new(ErrorKind::ConfigInvalid, e.to_string())
}
