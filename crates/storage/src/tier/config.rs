//! What a remote tier is and how it is reached: [`TierConfig`], its checks, and
//! [`tiers_from_env`], the `HOARD_*` environment variables that describe a chain.
//!
//! Checking happens here, before any operator is built, so a typo in an endpoint is reported
//! as "tier X, field Y" at startup instead of as a stream of per-compile errors. Nothing here
//! connects to anything: a tier that is down is not a configuration error.

use std::path::PathBuf;
use std::time::Duration;

mod cloud;
mod reapi;
pub mod redact;
mod size;

pub use reapi::{parse_headers, shown_headers};
pub use redact::{MASK, MIN_SCRUBBED_LEN, Scrubber, Userinfo, redact_url, scrub, url_secrets};
pub use size::{SIZE_UNITS, SizeError, SizeProblem, format_size, parse_size};

/// Default time allowed to establish a connection to a tier (see [`TierConfig::connect_timeout`]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Default time allowed for one operation on a tier that is answering.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest value memcached stores by default is 1 MiB *including* the item header and the
/// key, so the default limit for entries leaves a little room for those.
pub const MEMCACHED_DEFAULT_MAX_ENTRY: u64 = 1024 * 1024 - 1024;

/// The names tiers are known by in `HOARD_TIER_ORDER`, `HOARD_READ_ONLY_TIERS` and stats, in the
/// default order of the chain: the fastest (in-memory) stores first.
pub const TIER_NAMES: [&str; 9] = [
    "memcached",
    "redis",
    "reapi",
    "s3",
    "gcs",
    "azure",
    "webdav",
    "gha",
    "shared_dir",
];

/// The kind of store behind a remote tier, with what is needed to reach it. Its `Debug`
/// shows endpoints with their passwords (and S3 keys) replaced by [`MASK`], so a logged
/// configuration never carries a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum TierKind {
    /// A memcached server: `tcp://host:port` (or `host:port`), or `unix:///path`.
    Memcached {
        /// Where the server listens.
        endpoint: String,
    },
    /// A redis server: `redis://[user:password@]host:port[/db]`, `rediss://...` for TLS,
    /// `tcp://host:port` or `unix:///path`.
    Redis {
        /// Where the server listens.
        endpoint: String,
    },
    /// An S3 bucket or an S3-compatible object store. Credentials come from the usual AWS
    /// environment variables and files.
    S3 {
        /// The bucket name.
        bucket: String,
        /// The service URL (`http(s)://...`); AWS when `None`.
        endpoint: Option<String>,
        /// The signing region; the AWS default chain (`AWS_REGION`, ...) when `None`.
        region: Option<String>,
        /// Key prefix inside the bucket; `hoard` when `None`.
        prefix: Option<String>,
    },
    /// A WebDAV server, `http(s)://[user:password@]host[:port]/path`.
    Webdav {
        /// The collection entries go under.
        endpoint: String,
    },
    /// A directory shared by several machines (NFS and the like).
    SharedDir {
        /// The directory; must be absolute.
        path: PathBuf,
    },
    /// An Azure Blob Storage container (or Azurite's).
    Azure {
        /// The container.
        container: String,
        /// `DefaultEndpointsProtocol=..;AccountName=..;AccountKey=..;BlobEndpoint=..`: the
        /// account, its key and endpoint in one (secret).
        connection_string: Option<String>,
        /// The storage account, when no connection string gives it.
        account_name: Option<String>,
        /// The account's key (secret); without one (and no connection string) requests go
        /// unsigned, for a public container.
        account_key: Option<String>,
        /// The blob service URL; `https://<account>.blob.core.windows.net` when `None`.
        endpoint: Option<String>,
        /// Key prefix inside the container; `hoard` when `None`.
        prefix: Option<String>,
    },
    /// A Google Cloud Storage bucket (or an emulator's).
    Gcs {
        /// The bucket.
        bucket: String,
        /// The service URL; Google's when `None`.
        endpoint: Option<String>,
        /// A service account key file; else the usual Google variables and files, and
        /// unsigned requests when there are none.
        key_path: Option<PathBuf>,
        /// Key prefix inside the bucket; `hoard` when `None`.
        prefix: Option<String>,
    },
    /// The GitHub Actions cache (its v2 service), reachable from a workflow's steps.
    Gha {
        /// The namespace: entries written under one version are invisible under another.
        version: String,
        /// `ACTIONS_RESULTS_URL`, the cache service's URL.
        results_url: Option<String>,
        /// `ACTIONS_RUNTIME_TOKEN`, the job's token (secret).
        token: Option<String>,
    },
    /// A Bazel Remote Execution API cache (bazel-remote, Buildbarn, BuildGrid, ...): its
    /// ActionCache, CAS and ByteStream services over gRPC. Its `Debug` masks header values.
    Reapi {
        /// `grpc://host:port`, or `grpcs://host:port` for TLS.
        endpoint: String,
        /// The instance name sent with every call; empty when `None`.
        instance: Option<String>,
        /// gRPC metadata sent with every call (`authorization`, API keys): the values are
        /// secrets.
        headers: Vec<(String, String)>,
        /// A PEM bundle of the CAs that sign the server's certificate; the system's roots
        /// when `None`.
        tls_ca: Option<std::path::PathBuf>,
        /// The client certificate (PEM) for mTLS, with [`TierKind::Reapi::tls_client_key`].
        tls_client_cert: Option<std::path::PathBuf>,
        /// The client certificate's private key (PEM).
        tls_client_key: Option<std::path::PathBuf>,
    },
}

impl std::fmt::Debug for TierKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TierKind::Memcached { endpoint } => f
                .debug_struct("Memcached")
                .field("endpoint", &self.shown(endpoint))
                .finish(),
            TierKind::Redis { endpoint } => f
                .debug_struct("Redis")
                .field("endpoint", &self.shown(endpoint))
                .finish(),
            TierKind::S3 {
                bucket,
                endpoint,
                region,
                prefix,
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("endpoint", &endpoint.as_deref().map(|e| self.shown(e)))
                .field("region", region)
                .field("prefix", prefix)
                .finish(),
            TierKind::Webdav { endpoint } => f
                .debug_struct("Webdav")
                .field("endpoint", &self.shown(endpoint))
                .finish(),
            TierKind::SharedDir { path } => {
                f.debug_struct("SharedDir").field("path", path).finish()
            }
            TierKind::Reapi { .. } => reapi::debug(self, f),
            other => cloud::debug(other, f),
        }
    }
}

impl TierKind {
    /// Which parts of this kind's endpoint userinfo are secret: an S3 endpoint's user name
    /// is the access key id; elsewhere only the password is.
    pub fn userinfo_secret(&self) -> Userinfo {
        match self {
            TierKind::S3 { .. } => Userinfo::All,
            _ => Userinfo::Password,
        }
    }

    /// `endpoint` (one of this kind's) as it may be shown: credentials replaced.
    pub fn shown(&self, endpoint: &str) -> String {
        redact_url(endpoint, self.userinfo_secret())
    }

    /// The endpoint, if the kind has one.
    fn endpoint(&self) -> Option<&str> {
        match self {
            TierKind::Memcached { endpoint }
            | TierKind::Redis { endpoint }
            | TierKind::Webdav { endpoint }
            | TierKind::Reapi { endpoint, .. } => Some(endpoint),
            TierKind::S3 { endpoint, .. }
            | TierKind::Azure { endpoint, .. }
            | TierKind::Gcs { endpoint, .. } => endpoint.as_deref(),
            TierKind::Gha { results_url, .. } => results_url.as_deref(),
            TierKind::SharedDir { .. } => None,
        }
    }

    /// The secrets the kind carries (endpoint passwords, S3 keys, Azure keys, the Actions
    /// token), as written and percent-decoded: what [`scrub`] must remove from text that may
    /// quote them.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = self
            .endpoint()
            .map(|e| url_secrets(e, self.userinfo_secret()))
            .unwrap_or_default();
        secrets.extend(cloud::secrets(self));
        secrets.extend(reapi::secrets(self));
        secrets
    }

    /// What takes this kind's credentials out of free text that may quote its endpoint.
    pub fn scrubber(&self) -> Scrubber {
        let mut scrubber = Scrubber::default();
        if let Some(endpoint) = self.endpoint() {
            scrubber.add_endpoint(endpoint, self.userinfo_secret());
        }
        for secret in cloud::secrets(self).into_iter().chain(reapi::secrets(self)) {
            scrubber.add_secret(&secret);
        }
        scrubber
    }

    /// The kind's name: `memcached`, `redis`, `reapi`, `s3`, `gcs`, `azure`, `webdav`, `gha`
    /// or `shared_dir`.
    pub fn name(&self) -> &'static str {
        match self {
            TierKind::Memcached { .. } => "memcached",
            TierKind::Redis { .. } => "redis",
            TierKind::S3 { .. } => "s3",
            TierKind::Webdav { .. } => "webdav",
            TierKind::SharedDir { .. } => "shared_dir",
            TierKind::Azure { .. } => "azure",
            TierKind::Gcs { .. } => "gcs",
            TierKind::Gha { .. } => "gha",
            TierKind::Reapi { .. } => "reapi",
        }
    }
}

/// One remote tier of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierConfig {
    /// The tier's name in stats and logs (by default the kind's name).
    pub name: String,
    /// What the tier is and where.
    pub kind: TierKind,
    /// Never written (nor removed from): "CI writes, developers read".
    pub read_only: bool,
    /// Entries larger than this are not written to the tier (counted as skipped), and
    /// nothing larger is read from it. `None` means [`MEMCACHED_DEFAULT_MAX_ENTRY`] for
    /// memcached and [`super::DEFAULT_MAX_REMOTE_ENTRY`] for every other tier.
    pub max_entry_size: Option<u64>,
    /// Time allowed to establish a connection. HTTP tiers (S3, WebDAV) give it to their
    /// client; memcached and redis connect inside their first operation, so it bounds every
    /// operation made while the tier has no working connection (at startup, after a failure).
    pub connect_timeout: Duration,
    /// Time allowed for one operation (get, put, remove) on a tier that is answering.
    pub op_timeout: Duration,
    /// Entries from this tier are used only when signed by a trusted key
    /// (`HOARD_VERIFY_TIERS`; see [`crate::signing::trust_from_env`]).
    pub verify: bool,
}

impl TierConfig {
    /// A tier of `kind`, named after it, writable, with the default limits and timeouts.
    pub fn new(kind: TierKind) -> Self {
        Self {
            name: kind.name().to_owned(),
            kind,
            read_only: false,
            max_entry_size: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            op_timeout: DEFAULT_OP_TIMEOUT,
            verify: false,
        }
    }

    /// The same tier under another name (two tiers of one kind need distinct names).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The size limit actually applied (see [`TierConfig::max_entry_size`]).
    pub fn effective_max_entry_size(&self) -> Option<u64> {
        match (&self.kind, self.max_entry_size) {
            (_, Some(limit)) => Some(limit),
            (TierKind::Memcached { .. }, None) => Some(MEMCACHED_DEFAULT_MAX_ENTRY),
            (_, None) => None,
        }
    }

    /// Checks every field without connecting anywhere.
    pub fn validate(&self) -> Result<(), TierConfigError> {
        // Values are quoted redacted: an endpoint's password must not reach an error message.
        let invalid = |field: &'static str, value: &str, reason: &str| TierConfigError::Invalid {
            tier: self.name.clone(),
            field,
            value: self.kind.shown(value),
            reason: reason.to_owned(),
        };
        if self.name.trim().is_empty() {
            return Err(invalid("name", &self.name, "a tier needs a name"));
        }
        if self.op_timeout.is_zero() {
            return Err(invalid("op_timeout", "0", "must be more than zero"));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect_timeout", "0", "must be more than zero"));
        }
        match &self.kind {
            TierKind::Memcached { endpoint } => {
                check_url(endpoint, &["tcp", "unix"], Some("tcp"), true)
                    .map_err(|reason| invalid("endpoint", endpoint, &reason.to_string()))?;
            }
            TierKind::Redis { endpoint } => {
                check_url(
                    endpoint,
                    &["redis", "rediss", "tcp", "unix", "redis+unix"],
                    None,
                    false,
                )
                .map_err(|reason| invalid("endpoint", endpoint, &reason.to_string()))?;
            }
            TierKind::S3 {
                bucket, endpoint, ..
            } => {
                if bucket.trim().is_empty() {
                    return Err(invalid("bucket", bucket, "the bucket name is empty"));
                }
                if let Some(endpoint) = endpoint {
                    check_url(endpoint, &["http", "https"], None, false)
                        .map_err(|reason| invalid("endpoint", endpoint, &reason.to_string()))?;
                }
            }
            TierKind::Webdav { endpoint } => {
                check_url(endpoint, &["http", "https"], None, false)
                    .map_err(|reason| invalid("endpoint", endpoint, &reason.to_string()))?;
            }
            TierKind::SharedDir { path } => {
                if !path.is_absolute() {
                    return Err(invalid(
                        "path",
                        &path.display().to_string(),
                        "must be an absolute path",
                    ));
                }
            }
            TierKind::Reapi { .. } => reapi::validate(&self.kind)
                .map_err(|(field, value, reason)| invalid(field, &value, &reason))?,
            other => cloud::validate(other)
                .map_err(|(field, value, reason)| invalid(field, &value, &reason))?,
        }
        Ok(())
    }
}

/// Why an endpoint is not a URL a tier can use. The endpoint itself is not quoted: the
/// caller names it, redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// It does not parse as a URL.
    #[error("not a URL: {0}")]
    NotAUrl(#[source] url::ParseError),
    /// Its scheme is not one the tier speaks.
    #[error("scheme {scheme:?} is not one of {allowed}")]
    Scheme {
        /// The scheme given.
        scheme: String,
        /// The schemes the tier takes, comma-separated.
        allowed: String,
    },
    /// A `unix` URL with no socket path.
    #[error("a unix socket endpoint needs a path")]
    NoSocketPath,
    /// A network URL with no host.
    #[error("no host")]
    NoHost,
    /// A port is required and missing.
    #[error("no port")]
    NoPort,
}

/// Parses `endpoint` as a URL with one of `schemes`. `bare` is the scheme assumed when the
/// string has none (`host:port`); `port_required` is for clients that have no default port.
pub(crate) fn check_url(
    endpoint: &str,
    schemes: &[&str],
    bare: Option<&str>,
    port_required: bool,
) -> Result<url::Url, UrlError> {
    let text = match bare {
        Some(scheme) if !endpoint.contains("://") => format!("{scheme}://{endpoint}"),
        _ => endpoint.to_owned(),
    };
    let url = url::Url::parse(&text).map_err(UrlError::NotAUrl)?;
    if !schemes.contains(&url.scheme()) {
        return Err(UrlError::Scheme {
            scheme: url.scheme().to_owned(),
            allowed: schemes.join(", "),
        });
    }
    if url.scheme().contains("unix") {
        if url.path().is_empty() || url.path() == "/" {
            return Err(UrlError::NoSocketPath);
        }
        return Ok(url);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost);
    }
    if port_required && url.port().is_none() {
        return Err(UrlError::NoPort);
    }
    Ok(url)
}

/// A tier's configuration is wrong. Each variant names the tier (or variable) and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TierConfigError {
    /// A field has a value that cannot work.
    #[error("remote tier {tier}: {field} {value:?}: {reason}")]
    Invalid {
        /// The tier's name.
        tier: String,
        /// The field (`endpoint`, `bucket`, ...).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A list variable names a tier that does not exist.
    #[error("{var}: unknown tier {name:?} (known: {known})", known = TIER_NAMES.join(", "))]
    UnknownTier {
        /// The variable (`HOARD_TIER_ORDER`, `HOARD_READ_ONLY_TIERS`).
        var: &'static str,
        /// The name it gave.
        name: String,
    },
    /// Two tiers have the same name, so stats and lists could not tell them apart.
    #[error("remote tier {0}: configured twice")]
    Duplicate(String),
}

impl TierConfigError {
    /// The error with the secrets of `kind`'s endpoint removed from the value and the reason,
    /// and the value's URL credentials masked: for errors built from text hoard does not
    /// control (an OpenDAL error may quote the endpoint it was given).
    #[must_use]
    pub fn scrubbed(self, kind: &TierKind) -> Self {
        let scrubber = kind.scrubber();
        match self {
            TierConfigError::Invalid {
                tier,
                field,
                value,
                reason,
            } => TierConfigError::Invalid {
                tier,
                field,
                value: scrubber.scrub(&kind.shown(&value)),
                reason: scrubber.scrub(&reason),
            },
            other => other,
        }
    }
}

/// Reads the chain's remote tiers from `HOARD_*` variables through `vars` (so callers can
/// pass `std::env::var(..).ok()`, a config file overlay, or a test map):
///
/// * `HOARD_MEMCACHED_ENDPOINT`, `HOARD_REDIS_ENDPOINT`, `HOARD_WEBDAV_ENDPOINT`,
///   `HOARD_SHARED_DIR`, and `HOARD_S3_BUCKET` with `HOARD_S3_ENDPOINT`, `HOARD_S3_REGION`,
///   `HOARD_S3_PREFIX`, each making a tier named after its kind;
/// * `HOARD_REAPI_ENDPOINT` (`grpc://` or `grpcs://`) with `HOARD_REAPI_INSTANCE`,
///   `HOARD_REAPI_HEADERS` (`Name=Value` pairs) and `HOARD_REAPI_TLS_CA`,
///   `HOARD_REAPI_TLS_CLIENT_CERT`, `HOARD_REAPI_TLS_CLIENT_KEY`: a Bazel remote cache;
/// * `HOARD_MEMCACHED_MAX_ENTRY`: memcached's item size limit (`-I`), e.g. `16M`
///   (default 1 MiB);
/// * `HOARD_REMOTE_MAX_ENTRY`: the largest compressed entry sent to or read from every other
///   tier (default [`super::DEFAULT_MAX_REMOTE_ENTRY`], 128 MiB): what a tier returns beyond
///   it is refused unread;
/// * `HOARD_TIER_ORDER`: comma list of those names, the order of the chain after the local
///   disk (default `memcached,redis,reapi,s3,gcs,azure,webdav,gha,shared_dir`); configured
///   tiers it leaves out follow in the default order;
/// * `HOARD_READ_ONLY_TIERS`: comma list of names never written.
///
/// A variable that is set but empty (CI systems export those) means "no such tier", never an
/// error; a malformed endpoint or an unknown name is.
pub fn tiers_from_env(
    vars: impl Fn(&str) -> Option<String>,
) -> Result<Vec<TierConfig>, TierConfigError> {
    let var = |name: &str| {
        vars(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut tiers = Vec::new();
    if let Some(endpoint) = var("HOARD_MEMCACHED_ENDPOINT") {
        let mut tier = TierConfig::new(TierKind::Memcached { endpoint });
        // A server started with `-I 16m` takes bigger items than the 1 MiB default.
        if let Some(size) = var("HOARD_MEMCACHED_MAX_ENTRY") {
            let limit = size_var("memcached", "HOARD_MEMCACHED_MAX_ENTRY", &size)?;
            // Leave room for memcached's item header and the key, as the default does.
            tier.max_entry_size = Some(limit.saturating_sub(1024));
        }
        tiers.push(tier);
    }
    if let Some(endpoint) = var("HOARD_REDIS_ENDPOINT") {
        tiers.push(TierConfig::new(TierKind::Redis { endpoint }));
    }
    if let Some(bucket) = var("HOARD_S3_BUCKET") {
        tiers.push(TierConfig::new(TierKind::S3 {
            bucket,
            endpoint: var("HOARD_S3_ENDPOINT"),
            region: var("HOARD_S3_REGION"),
            prefix: var("HOARD_S3_PREFIX"),
        }));
    }
    if let Some(endpoint) = var("HOARD_WEBDAV_ENDPOINT") {
        tiers.push(TierConfig::new(TierKind::Webdav { endpoint }));
    }
    if let Some(path) = var("HOARD_SHARED_DIR") {
        tiers.push(TierConfig::new(TierKind::SharedDir {
            path: PathBuf::from(path),
        }));
    }
    tiers.extend(reapi::tier_from_env(&var)?.map(TierConfig::new));
    tiers.extend(
        cloud::tiers_from_env(&var)?
            .into_iter()
            .map(TierConfig::new),
    );

    if let Some(size) = var("HOARD_REMOTE_MAX_ENTRY") {
        let limit = size_var("remote", "HOARD_REMOTE_MAX_ENTRY", &size)?;
        for tier in tiers
            .iter_mut()
            .filter(|t| !matches!(t.kind, TierKind::Memcached { .. }))
        {
            tier.max_entry_size = Some(limit);
        }
    }

    let order = name_list("HOARD_TIER_ORDER", var("HOARD_TIER_ORDER"))?;
    let rank = |name: &str| {
        order
            .iter()
            .position(|n| n == name)
            .unwrap_or(order.len() + TIER_NAMES.iter().position(|n| *n == name).unwrap_or(0))
    };
    tiers.sort_by_key(|t| rank(&t.name));

    let read_only = name_list("HOARD_READ_ONLY_TIERS", var("HOARD_READ_ONLY_TIERS"))?;
    for tier in &mut tiers {
        tier.read_only = read_only.contains(&tier.name);
    }
    for tier in &tiers {
        tier.validate()?;
    }
    Ok(tiers)
}

/// The size in `var`, which sets a limit of `tier` (`remote`: every tier but memcached).
fn size_var(tier: &str, var: &'static str, value: &str) -> Result<u64, TierConfigError> {
    parse_size(value).map_err(|reason| TierConfigError::Invalid {
        tier: tier.into(),
        field: var,
        value: value.to_owned(),
        reason: reason.problem.to_string(),
    })
}

/// Splits a comma list of tier names, refusing names that are not tiers.
fn name_list(var: &'static str, value: Option<String>) -> Result<Vec<String>, TierConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let name = name.to_ascii_lowercase().replace('-', "_");
            if TIER_NAMES.contains(&name.as_str()) {
                Ok(name)
            } else {
                Err(TierConfigError::UnknownTier { var, name })
            }
        })
        .collect()
}
