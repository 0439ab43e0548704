//! The REAPI tier's client: a Bazel remote cache (bazel-remote, Buildbarn, BuildGrid,
//! NativeLink, BuildBuddy) reached over gRPC with tonic and the published REAPI protos
//! (`bazel-remote-apis`), holding hoard's entries as native ActionCache and CAS objects
//! ([`mapping`]) moved by [`cas`].
//!
//! Like every tier's backend it only says what the server answered; [`super::remote`]
//! decides deadlines, breakers and counting. The channel is built at the first operation
//! (nothing connects at startup), and the server's capabilities are asked once: a server
//! without SHA-256 is reported once and skipped from then on.

mod cas;
mod mapping;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream::byte_stream_client::ByteStreamClient;
use bytes::Bytes;
use re::action_cache_client::ActionCacheClient;
use re::capabilities_client::CapabilitiesClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tokio::sync::OnceCell;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::config::{TierConfig, TierKind};
use super::shared_dir::{Lookup, Refusal};
use crate::CacheKey;
use crate::entry::parts;
use cas::Fetched;
use mapping::{Stored, shown};

/// The batch limit assumed when a server does not give one: gRPC's default message limit,
/// which most servers keep.
const DEFAULT_MAX_BATCH: usize = 4 << 20;

/// What one response may carry: above any batch hoard asks for, and above ByteStream's
/// chunks, so a server's own chunking never trips it.
const MAX_MESSAGE: usize = 64 << 20;

/// The slowest transfer a call is allowed, in bytes per second: a call moving blobs gets the
/// time its bytes take at this rate on top of the tier's operation timeout. Well below what
/// a loaded BuildGrid (a Python server) managed here (15-20 MiB/s), so only a stalled server
/// runs into it.
const MIN_TRANSFER_RATE: u64 = 4 << 20;

/// The calls one operation makes one after another at most: capabilities, the action
/// result (or the missing blobs), the blobs, the action result's update.
const CALLS_PER_OPERATION: u32 = 4;

/// How long `bytes` take at [`MIN_TRANSFER_RATE`].
fn transfer_time(bytes: u64) -> Duration {
    Duration::from_millis(bytes.saturating_mul(1000) / MIN_TRANSFER_RATE)
}

/// A PEM file (CA bundle, certificate, key) larger than this is refused unread.
const MAX_PEM_FILE: u64 = 1 << 20;

/// A call to a REAPI server failed, or what it returned cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReapiError {
    /// The server answered a call with an error status.
    #[error("{call}: {code:?}: {message}")]
    Status {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    /// The channel could not be set up (TLS configuration, endpoint): what tonic said, with
    /// its causes (its own text is only "transport error").
    #[error("setting up the channel: {0}")]
    Channel(String),
    /// A TLS file could not be read.
    #[error("{path}: {why}")]
    TlsFile { path: PathBuf, why: String },
    /// A blob could not be stored or did not come back as its digest says.
    #[error("blob {digest}: {why}")]
    Blob { digest: String, why: String },
    /// The server cannot hold hoard's objects (checked once, at the first call).
    #[error("the server cannot serve hoard: {0}")]
    Unusable(String),
}

impl From<tonic::transport::Error> for ReapiError {
    fn from(e: tonic::transport::Error) -> Self {
        ReapiError::Channel(with_causes(&e))
    }
}

/// `e` and every error under it, as one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl ReapiError {
    /// A call's failure, with what lies under the status (a connection refused, a TLS
    /// handshake refused): tonic's message alone says only "operation was canceled".
    fn status(call: &'static str, status: &tonic::Status) -> Self {
        let mut message = status.message().to_owned();
        if let Some(cause) = std::error::Error::source(status) {
            message.push_str(": ");
            message.push_str(&with_causes(cause));
        }
        ReapiError::Status {
            call,
            code: status.code(),
            message,
        }
    }

    /// Whether the server refused these credentials (or this client) the call.
    pub(crate) fn is_permission_denied(&self) -> bool {
        matches!(
            self,
            ReapiError::Status {
                code: tonic::Code::PermissionDenied | tonic::Code::Unauthenticated,
                ..
            }
        )
    }

    /// Whether the server is shedding load.
    pub(crate) fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            ReapiError::Status {
                code: tonic::Code::ResourceExhausted,
                ..
            }
        )
    }
}

/// How many times a call the server refuses as busy is made again.
const BUSY_RETRIES: u32 = 6;

/// Makes `call` again while the server answers RESOURCE_EXHAUSTED (BuildGrid refuses calls
/// over its thread pool; Bazel retries these too), after a pause doubling from about 5 ms
/// (about 0.6 s in all, jittered so a burst does not come back at once). The tier's deadline
/// bounds the whole; any other answer is returned as it is.
pub(super) async fn patiently<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut pause = Duration::from_millis(5);
    for _ in 0..BUSY_RETRIES {
        match call().await {
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(pause + jitter(pause)).await;
                pause *= 2;
            }
            other => return other,
        }
    }
    call().await
}

/// Up to `pause` more, from the clock's nanoseconds: only spread matters, not quality.
fn jitter(pause: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    pause.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

/// What the server said it can do, asked once.
#[derive(Debug, Clone)]
struct Capabilities {
    /// The most bytes one batch call may carry.
    max_batch: usize,
    /// Whether this client may write the action cache.
    updates: bool,
    /// Why the server cannot serve hoard, when it cannot.
    unusable: Option<String>,
}

/// The headers every call carries (tokens, API keys).
#[derive(Clone)]
pub(super) struct Headers(std::sync::Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>);

impl tonic::service::Interceptor for Headers {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        for (name, value) in self.0.iter() {
            request.metadata_mut().insert(name.clone(), value.clone());
        }
        Ok(request)
    }
}

type Intercepted = InterceptedService<Channel, Headers>;

/// The connection and the per-call context [`cas`] needs.
pub(super) struct Clients {
    channel: Channel,
    headers: Headers,
    instance: String,
    op_timeout: Duration,
}

impl Clients {
    fn cas(&self) -> ContentAddressableStorageClient<Intercepted> {
        ContentAddressableStorageClient::with_interceptor(
            self.channel.clone(),
            self.headers.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE)
    }

    fn bytestream(&self) -> ByteStreamClient<Intercepted> {
        ByteStreamClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE)
    }

    /// An action result names blobs and carries no content of hoard's (it asks for none
    /// inlined), so gRPC's default 4 MiB bounds what a server can make it allocate.
    fn action_cache(&self) -> ActionCacheClient<Intercepted> {
        ActionCacheClient::with_interceptor(self.channel.clone(), self.headers.clone())
    }

    /// A request carrying the tier's deadline for one call (`grpc-timeout`: tonic enforces
    /// it, and the server can stop work hoard has stopped waiting for).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.transfer(message, 0)
    }

    /// A request moving `bytes` of blobs: the deadline of one call, plus the time those
    /// bytes take at [`MIN_TRANSFER_RATE`], so a large output is not cut off by a deadline
    /// meant for a round trip while a server that stops answering is still given up on.
    fn transfer<T>(&self, message: T, bytes: u64) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.op_timeout + transfer_time(bytes));
        request
    }

    /// A ByteStream resource name under the instance.
    fn resource(&self, rest: &str) -> String {
        if self.instance.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.instance)
        }
    }
}

/// A REAPI server as one tier's store. Built without I/O.
pub(crate) struct Reapi {
    endpoint: String,
    instance: String,
    headers: Vec<(String, String)>,
    tls: Option<Tls>,
    connect_timeout: Duration,
    op_timeout: Duration,
    clients: OnceCell<Clients>,
    capabilities: OnceCell<Capabilities>,
    reported_unusable: AtomicBool,
}

#[derive(Clone)]
struct Tls {
    ca: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
}

/// How a write ended that did not fail.
pub(crate) enum Written {
    Stored,
    /// The server lets this client read only.
    ReadOnly,
}

impl Reapi {
    /// The client of `config`'s REAPI tier (`None` for other kinds).
    pub(crate) fn of(config: &TierConfig) -> Option<Reapi> {
        let TierKind::Reapi {
            endpoint,
            instance,
            headers,
            tls_ca,
            tls_client_cert,
            tls_client_key,
        } = &config.kind
        else {
            return None;
        };
        // `grpcs` is what users write; tonic speaks `https` (and turns TLS on for it).
        let (endpoint, tls) = match endpoint.split_once("://") {
            Some(("grpcs" | "https", rest)) => (format!("https://{rest}"), true),
            Some((_, rest)) => (format!("http://{rest}"), false),
            None => (format!("http://{endpoint}"), false),
        };
        Some(Reapi {
            endpoint,
            instance: instance.clone().unwrap_or_default(),
            headers: headers.clone(),
            tls: tls.then(|| Tls {
                ca: tls_ca.clone(),
                identity: tls_client_cert.clone().zip(tls_client_key.clone()),
            }),
            connect_timeout: config.connect_timeout,
            op_timeout: config.op_timeout,
            clients: OnceCell::new(),
            capabilities: OnceCell::new(),
            reported_unusable: AtomicBool::new(false),
        })
    }

    /// The most one operation may take in all when nothing it moves is over `max_entry`
    /// bytes: each call is bounded on its own (see [`Clients::transfer`]); this only bounds
    /// their sum.
    pub(crate) fn deadline(&self, max_entry: u64) -> Duration {
        self.op_timeout * CALLS_PER_OPERATION + transfer_time(max_entry)
    }

    /// Whether the server was found unable to serve hoard (reported once, when found).
    pub(crate) fn unusable(&self) -> bool {
        self.capabilities
            .get()
            .is_some_and(|c| c.unusable.is_some())
    }

    /// The object under `key`: an entry put back together (as a raw entry, to be verified
    /// by the caller), or an object that is not an entry, as stored. What the server holds
    /// beyond `limit` bytes is refused before any blob is read.
    pub(crate) async fn get(&self, key: &CacheKey, limit: u64) -> Result<Lookup, ReapiError> {
        let clients = self.clients().await?;
        let caps = self.capabilities(clients).await?;
        let action = mapping::action_of(key);
        let request = re::GetActionResultRequest {
            instance_name: clients.instance.clone(),
            action_digest: Some(action.digest.clone()),
            inline_stdout: false,
            inline_stderr: false,
            digest_function: re::digest_function::Value::Sha256 as i32,
            ..Default::default()
        };
        let call = || {
            let (mut cache, request) = (clients.action_cache(), clients.request(request.clone()));
            async move { cache.get_action_result(request).await }
        };
        let result = match patiently(call).await {
            Ok(result) => result.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(Lookup::Missing),
            Err(status) => return Err(ReapiError::status("GetActionResult", &status)),
        };
        let at = || PathBuf::from(format!("ac/{}", shown(&action.digest)));
        let stored = match mapping::stored(&result) {
            Ok(stored) => stored,
            Err(why) => {
                return Ok(Lookup::Refused(Refusal::NotAnEntry {
                    path: at(),
                    why: why.to_string(),
                }));
            }
        };
        let blobs = stored.blobs();
        let size: u64 = blobs.iter().map(mapping::declared).sum();
        if size > limit {
            return Ok(Lookup::Refused(Refusal::TooLarge {
                path: at(),
                size,
                limit,
            }));
        }
        if stored == Stored::Removed {
            return Ok(Lookup::Missing);
        }
        let fetched = match cas::download(clients, caps.max_batch, blobs).await? {
            Fetched::All(fetched) => fetched,
            // The result outlived one of its blobs (the CAS evicted it): a miss.
            Fetched::Missing(digest) => {
                tracing::debug!(%key, blob = %shown(&digest), "action result without its blob");
                return Ok(Lookup::Missing);
            }
        };
        let blob = |digest: &re::Digest| fetched.get(&digest.hash).cloned().unwrap_or_default();
        match stored {
            Stored::Object(digest) => Ok(Lookup::Found(blob(&digest).to_vec())),
            Stored::Entry { header, files } => {
                let header = blob(&header);
                let rebuilt = parts::records(&header).and_then(|records| {
                    let mut data = Vec::with_capacity(records.len());
                    for record in &records {
                        let path = mapping::role_path(&record.role);
                        let Some(digest) = files.get(&path) else {
                            return Err(crate::EntryError::Corrupt {
                                reason: format!("no output {path:?} for role {:?}", record.role),
                            });
                        };
                        data.push(blob(digest));
                    }
                    let slices: Vec<&[u8]> = data.iter().map(AsRef::as_ref).collect();
                    parts::put_together(&header, &slices)
                });
                Ok(match rebuilt {
                    Ok(entry) => Lookup::Found(entry),
                    Err(why) => Lookup::Refused(Refusal::NotAnEntry {
                        path: at(),
                        why: why.to_string(),
                    }),
                })
            }
            Stored::Removed => Ok(Lookup::Missing),
        }
    }

    /// Stores `object` under `key`: an entry as its files, header and printed output, an
    /// object that is not an entry as one blob. The blobs go first, the action result last,
    /// so a server that checks results against its CAS accepts it and a reader never finds
    /// a result whose blobs are still on their way.
    pub(crate) async fn put(&self, key: &CacheKey, object: Bytes) -> Result<Written, ReapiError> {
        let clients = self.clients().await?;
        let caps = self.capabilities(clients).await?;
        if !caps.updates {
            return Ok(Written::ReadOnly);
        }
        let action = mapping::action_of(key);
        let upload = match parts::take_apart(&object) {
            Ok(parts) => mapping::entry_upload(parts, &action),
            // Not an entry: prefetch's index objects are stored as they are.
            Err(_) => mapping::object_upload(object, &action),
        };
        cas::upload(clients, caps.max_batch, upload.blobs).await?;
        self.update(clients, &action, upload.result).await?;
        Ok(Written::Stored)
    }

    /// Makes `key` a miss: REAPI has no delete, so it gets a result without outputs.
    pub(crate) async fn remove(&self, key: &CacheKey) -> Result<(), ReapiError> {
        let clients = self.clients().await?;
        let caps = self.capabilities(clients).await?;
        if caps.updates {
            let action = mapping::action_of(key);
            self.update(clients, &action, mapping::removed()).await?;
        }
        Ok(())
    }

    async fn update(
        &self,
        clients: &Clients,
        action: &mapping::ActionOf,
        result: re::ActionResult,
    ) -> Result<(), ReapiError> {
        let request = re::UpdateActionResultRequest {
            instance_name: clients.instance.clone(),
            action_digest: Some(action.digest.clone()),
            action_result: Some(result),
            digest_function: re::digest_function::Value::Sha256 as i32,
            ..Default::default()
        };
        let call = || {
            let (mut cache, request) = (clients.action_cache(), clients.request(request.clone()));
            async move { cache.update_action_result(request).await }
        };
        patiently(call)
            .await
            .map_err(|status| ReapiError::status("UpdateActionResult", &status))?;
        Ok(())
    }

    /// The channel, set up at the first call (a failed setup is tried again next call).
    async fn clients(&self) -> Result<&Clients, ReapiError> {
        self.clients
            .get_or_try_init(|| async {
                let mut endpoint = Endpoint::from_shared(self.endpoint.clone())?
                    .connect_timeout(self.connect_timeout)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_while_idle(true);
                if let Some(tls) = &self.tls {
                    endpoint = endpoint.tls_config(tls_config(tls).await?)?;
                }
                let headers = self
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let key = name.parse::<AsciiMetadataKey>();
                        let value = value.parse::<AsciiMetadataValue>();
                        match (key, value) {
                            (Ok(key), Ok(value)) => Ok((key, value)),
                            _ => Err(ReapiError::Unusable(format!(
                                "header {name} cannot be sent as gRPC metadata"
                            ))),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Clients {
                    channel: endpoint.connect_lazy(),
                    headers: Headers(std::sync::Arc::new(headers)),
                    instance: self.instance.clone(),
                    op_timeout: self.op_timeout,
                })
            })
            .await
    }

    /// The server's capabilities, asked at the first call. A server without the
    /// capabilities service (some caches) is taken to serve SHA-256 with 4 MiB batches.
    async fn capabilities(&self, clients: &Clients) -> Result<&Capabilities, ReapiError> {
        let caps = self
            .capabilities
            .get_or_try_init(|| async {
                let request = re::GetCapabilitiesRequest {
                    instance_name: clients.instance.clone(),
                };
                let client = CapabilitiesClient::with_interceptor(
                    clients.channel.clone(),
                    clients.headers.clone(),
                );
                let call = || {
                    let (mut client, request) = (client.clone(), clients.request(request.clone()));
                    async move { client.get_capabilities(request).await }
                };
                match patiently(call).await {
                    Ok(response) => Ok(capabilities_of(&response.into_inner())),
                    Err(status) if status.code() == tonic::Code::Unimplemented => {
                        Ok(Capabilities {
                            max_batch: DEFAULT_MAX_BATCH,
                            updates: true,
                            unusable: None,
                        })
                    }
                    Err(status) => Err(ReapiError::status("GetCapabilities", &status)),
                }
            })
            .await?;
        if let Some(why) = &caps.unusable {
            if !self.reported_unusable.swap(true, Ordering::Relaxed) {
                tracing::warn!(endpoint = %self.endpoint, instance = %self.instance, %why,
                    "the REAPI server cannot serve hoard: the tier is skipped");
            }
            return Err(ReapiError::Unusable(why.clone()));
        }
        Ok(caps)
    }
}

/// What hoard takes from a server's capabilities.
fn capabilities_of(server: &re::ServerCapabilities) -> Capabilities {
    let Some(cache) = &server.cache_capabilities else {
        return Capabilities {
            max_batch: DEFAULT_MAX_BATCH,
            updates: false,
            unusable: Some("it offers no remote cache (no cache capabilities)".into()),
        };
    };
    let sha256 = re::digest_function::Value::Sha256 as i32;
    // An empty list is an old server's way of saying SHA-256.
    let unusable = (!cache.digest_functions.is_empty()
        && !cache.digest_functions.contains(&sha256))
    .then(|| {
        let names: Vec<&str> = cache
            .digest_functions
            .iter()
            .map(|f| {
                re::digest_function::Value::try_from(*f).map_or("unknown", |v| v.as_str_name())
            })
            .collect();
        format!(
            "its digest functions are {}; hoard needs SHA256",
            names.join(", ")
        )
    });
    let max_batch = usize::try_from(cache.max_batch_total_size_bytes)
        .ok()
        .filter(|n| *n > 0)
        .map_or(DEFAULT_MAX_BATCH, |n| n.min(DEFAULT_MAX_BATCH));
    Capabilities {
        max_batch,
        updates: cache
            .action_cache_update_capabilities
            .as_ref()
            .is_none_or(|u| u.update_enabled),
        unusable,
    }
}

/// The TLS setup: the given CA (else the system's roots), and a client certificate for mTLS.
async fn tls_config(tls: &Tls) -> Result<ClientTlsConfig, ReapiError> {
    let mut config = ClientTlsConfig::new();
    config = match &tls.ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(pem(ca).await?)),
        None => config.with_native_roots(),
    };
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(pem(cert).await?, pem(key).await?));
    }
    Ok(config)
}

async fn pem(path: &Path) -> Result<Vec<u8>, ReapiError> {
    let failed = |why: String| ReapiError::TlsFile {
        path: path.to_owned(),
        why,
    };
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| failed(e.to_string()))?
        .len();
    if size > MAX_PEM_FILE {
        return Err(failed(format!("{size} bytes: not a PEM file")));
    }
    tokio::fs::read(path)
        .await
        .map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(functions: Vec<i32>, max_batch: i64, update: Option<bool>) -> re::ServerCapabilities {
        re::ServerCapabilities {
            cache_capabilities: Some(re::CacheCapabilities {
                digest_functions: functions,
                max_batch_total_size_bytes: max_batch,
                action_cache_update_capabilities: update
                    .map(|update_enabled| re::ActionCacheUpdateCapabilities { update_enabled }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_server_without_sha256_cannot_serve_hoard_and_says_what_it_has() {
        let blake3 = re::digest_function::Value::Blake3 as i32;
        let got = capabilities_of(&caps(vec![blake3], 0, None));
        assert!(got.unusable.unwrap().contains("BLAKE3"));
        let sha256 = re::digest_function::Value::Sha256 as i32;
        assert!(
            capabilities_of(&caps(vec![blake3, sha256], 0, None))
                .unusable
                .is_none()
        );
        assert!(capabilities_of(&caps(vec![], 0, None)).unusable.is_none());
        assert!(
            capabilities_of(&re::ServerCapabilities::default())
                .unusable
                .is_some()
        );
    }

    #[test]
    fn the_batch_limit_is_the_servers_within_grpcs_message_limit() {
        assert_eq!(
            capabilities_of(&caps(vec![], 0, None)).max_batch,
            DEFAULT_MAX_BATCH
        );
        assert_eq!(capabilities_of(&caps(vec![], 1000, None)).max_batch, 1000);
        assert_eq!(
            capabilities_of(&caps(vec![], 1 << 30, None)).max_batch,
            DEFAULT_MAX_BATCH
        );
    }

    #[test]
    fn a_call_moving_more_bytes_gets_longer_and_an_operation_bounds_its_calls() {
        assert_eq!(transfer_time(0), Duration::ZERO);
        assert_eq!(transfer_time(MIN_TRANSFER_RATE * 5), Duration::from_secs(5));
        assert_eq!(
            transfer_time(u64::MAX),
            Duration::from_millis(u64::MAX / MIN_TRANSFER_RATE)
        );
        let tier = TierConfig::new(TierKind::Reapi {
            endpoint: "grpc://h:1".into(),
            instance: None,
            headers: Vec::new(),
            tls_ca: None,
            tls_client_cert: None,
            tls_client_key: None,
        });
        let reapi = Reapi::of(&tier).unwrap();
        let small = reapi.deadline(1 << 20);
        assert!(small >= tier.op_timeout * CALLS_PER_OPERATION);
        assert!(reapi.deadline(128 << 20) > small + Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_busy_server_is_asked_again_and_other_answers_are_taken_at_once() {
        use std::sync::atomic::AtomicU32;
        let calls = AtomicU32::new(0);
        let busy_twice = patiently(|| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n < 2 {
                    Err(tonic::Status::resource_exhausted("busy"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(busy_twice.unwrap(), 2);

        calls.store(0, Ordering::Relaxed);
        let down = patiently(|| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(tonic::Status::unavailable("down")) }
        })
        .await;
        assert_eq!(down.unwrap_err().code(), tonic::Code::Unavailable);
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        calls.store(0, Ordering::Relaxed);
        let always_busy = patiently(|| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(tonic::Status::resource_exhausted("busy")) }
        })
        .await;
        assert_eq!(
            always_busy.unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(calls.load(Ordering::Relaxed), BUSY_RETRIES + 1);
    }

    #[test]
    fn a_server_that_refuses_updates_makes_the_tier_read_only() {
        assert!(!capabilities_of(&caps(vec![], 0, Some(false))).updates);
        assert!(capabilities_of(&caps(vec![], 0, Some(true))).updates);
        assert!(capabilities_of(&caps(vec![], 0, None)).updates);
    }
}
