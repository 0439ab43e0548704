//! The effective configuration, read from `HOARD_*` environment variables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hoard_client::{ClientConfig, ServerLaunch};
use hoard_server::ServerConfig;
#[cfg(test)]
use hoard_storage::TierKind;
use hoard_storage::signing::{Trust, trust_from_env};
use hoard_storage::{TierConfig, parse_size, tiers_from_env};

mod duration;
mod ineffective;

pub use duration::{DURATION_FORMS, DurationError, DurationProblem, parse_duration};
pub use ineffective::ConfigWarning;

/// A setting that could not be read; names the variable (or the file, line and column) and
/// the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse: `HOARD_CACHE_SIZE="x": ...` from the environment,
    /// `file:line:column: cache_size = "x": ...` from the config file.
    #[error("{}: {why}", .origin.quote(.var, .value))]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Where the value came from: the environment, or the config file and key (boxed: a
        /// `Result` carrying this error stays small).
        origin: Box<crate::config_file::Origin>,
        /// What is wrong with it.
        why: String,
    },
    /// No cache directory could be determined.
    #[error("cannot find a cache directory: set HOARD_DIR (or HOME / XDG_CACHE_HOME)")]
    NoCacheDir,
    /// The default socket directory is not private to this user, so a server found there
    /// could belong to someone else.
    #[error(
        "the socket directory {path} must be owned by uid {uid} with mode 0700 \
         (found uid {owner}, mode {mode:o}); remove it or set HOARD_SERVER_UDS"
    )]
    SocketDirNotPrivate {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// Our uid.
        uid: u32,
    },
    /// The config file is unreadable or has a bad key or value.
    #[error(transparent)]
    File(crate::config_file::ConfigFileError),
    /// A remote tier is misconfigured; `at` is the config file's place of the setting at
    /// fault, when the file sets it.
    #[error("{}{source}", .at.as_ref().map(|at| format!("{at}: ")).unwrap_or_default())]
    Tiers {
        /// What is wrong.
        source: hoard_storage::TierConfigError,
        /// `file:line:column: key` of the setting, when it comes from the file.
        at: Option<String>,
    },
    /// A signing setting is wrong (`HOARD_SIGNING_KEY`, `HOARD_TRUSTED_KEYS`,
    /// `HOARD_VERIFY_TIERS`).
    #[error(transparent)]
    Trust(hoard_storage::signing::TrustConfigError),
    /// The cache directory could not be created.
    #[error("cannot create the cache directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// Whether what is wrong is in the config file (as opposed to the environment or the
    /// machine): the fix is an edit of the file.
    pub fn in_file(&self) -> bool {
        match self {
            ConfigError::File(_) | ConfigError::Tiers { at: Some(_), .. } => true,
            ConfigError::Invalid { origin, .. } => {
                matches!(**origin, crate::config_file::Origin::File { .. })
            }
            _ => false,
        }
    }
}

/// How a hit hands a large output over from the local store (`HOARD_HARD_LINK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// A copy made by the kernel (a reflink where the filesystem shares extents).
    Copy,
    /// A hard link to the store's file: no copy at all, but the output shares its inode
    /// with the cache.
    HardLink,
}

/// Settings shared by the wrapper and the server. `Debug` never shows the token (a
/// [`Secret`]), and the tiers' `Debug` hides endpoint credentials, so a logged `?settings`
/// carries no secret.
#[derive(Debug, Clone)]
// Each bool is an independent on/off setting a user sets by name (`HOARD_*`).
#[allow(clippy::struct_excessive_bools)]
pub struct Settings {
    /// `HOARD_DIR`, absolute.
    pub cache_dir: PathBuf,
    /// `HOARD_CACHE_SIZE` in bytes.
    pub cache_size: u64,
    /// `HOARD_SERVER_UDS`, or the default derived from the storage configuration.
    pub socket_path: PathBuf,
    /// `HOARD_IDLE_TIMEOUT`; `None` when 0.
    pub idle_timeout: Option<Duration>,
    /// `HOARD_DIRECT_MODE` (default on).
    pub direct_mode: bool,
    /// `HOARD_PREFETCH` (default on): the server leaves a prefetch index in the remote tiers
    /// and reads ahead along other machines'.
    pub prefetch: bool,
    /// `HOARD_CLIENT_TIMEOUT`: how long a wrapper waits for one answer.
    pub request_timeout: Duration,
    /// `HOARD_PROTOCOL`: the newest protocol version the client speaks (1 = a v1-only client).
    pub client_max_protocol: u32,
    /// `HOARD_SERVER_MAX_PROTOCOL`: the newest version the server serves (1 = a v1-only server).
    pub server_max_protocol: u32,
    /// Remote tiers (`HOARD_MEMCACHED_ENDPOINT`, `HOARD_REDIS_ENDPOINT`, `HOARD_S3_*`,
    /// `HOARD_WEBDAV_ENDPOINT`, `HOARD_SHARED_DIR`, `HOARD_TIER_ORDER`, `HOARD_READ_ONLY_TIERS`).
    pub tiers: Vec<TierConfig>,
    /// `HOARD_SIGNING_KEY` and `HOARD_TRUSTED_KEYS` (which tiers are verified,
    /// `HOARD_VERIFY_TIERS`, is each tier's `verify`); empty in a wrapper
    /// ([`Settings::for_wrapper`]). Its `Debug` shows no secret.
    pub trust: Arc<Trust>,
    /// `HOARD_SERVER_ADDR`: a server to reach over TCP (`host:port`) instead of the socket.
    pub server_addr: Option<String>,
    /// `HOARD_SERVER_TOKEN`: what TCP clients show and a TCP server admits them by.
    pub token: Option<Secret>,
    /// `HOARD_SERVER_LISTEN` (or `hoard-server --listen`): the TCP address a server serves.
    pub listen: Option<String>,
    /// `HOARD_SINGLE_FLIGHT_WAIT`: how long a lookup waits for another wrapper's identical
    /// compile before compiling itself.
    pub single_flight_wait: Duration,
    /// `HOARD_LOCAL_COMPRESSION` (default off): the local disk tier keeps compressed entries
    /// (smaller, slower hits) instead of raw ones (a hit is a verified copy).
    pub local_compression: bool,
    /// `HOARD_HARD_LINK` (default off): how a hit hands its large outputs over.
    pub handover: Handover,
    /// Whether `HOARD_IDLE_TIMEOUT` was set at all (a TCP gateway never idles out by default).
    idle_timeout_set: bool,
}

/// A value whose `Debug` is hoard_storage's `MASK`: a secret field of
/// [`Settings`] has this type, so the derived `Debug` of the whole never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(hoard_storage::tier::config::MASK, f)
    }
}

const DEFAULT_CACHE_SIZE: u64 = 10 * 1024 * 1024 * 1024;

fn var(name: &str) -> Option<String> {
    crate::config_file::setting(name)
}

impl Settings {
    /// Reads the settings from the process environment and creates the cache directory.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(true)
    }

    /// [`Settings::from_env`] for a compile's wrapper, which never signs or verifies: the
    /// signing settings name the server's socket but their keys are not read (the server
    /// reads them, and refuses to start on a bad one), since parsing a key costs a hit
    /// a noticeable part of its time. [`Settings::trust`] is empty.
    ///
    /// Settings that are set in vain ([`Settings::warnings`]) are told on stderr, at most
    /// once per build ([`crate::config_notice`]), and logged.
    pub fn for_wrapper() -> Result<Self, ConfigError> {
        let settings = Self::read(false)?;
        let warnings = settings.warnings();
        if !warnings.is_empty() {
            crate::config_notice::warnings(&settings.cache_dir, &warnings);
        }
        Ok(settings)
    }

    /// The settings that are set but have no effect, or are partly ignored (a `HOARD_LOG`
    /// directive that does not parse): warnings, never errors.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let origin = crate::config_file::origin;
        let mut found = ineffective::warnings(&var, &self.tiers, &origin);
        if let Some(filter) = var("HOARD_LOG") {
            for (directive, why) in crate::logging::bad_directives(&filter) {
                found.push(ConfigWarning {
                    setting: "HOARD_LOG",
                    origin: origin("HOARD_LOG"),
                    message: format!(
                        "has a directive tracing cannot read, {directive:?} ({why}); it is \
                         left out"
                    ),
                });
            }
        }
        found
    }

    fn read(keys: bool) -> Result<Self, ConfigError> {
        crate::config_file::loaded().map_err(ConfigError::File)?;
        let cache_dir = match var("HOARD_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => default_cache_dir().ok_or(ConfigError::NoCacheDir)?,
        };
        create_private_dir(&cache_dir)?;
        let cache_dir =
            std::fs::canonicalize(&cache_dir).map_err(|source| ConfigError::CreateDir {
                path: cache_dir.clone(),
                source,
            })?;
        let cache_size = match var("HOARD_CACHE_SIZE") {
            Some(v) => parse_size(&v)
                .map_err(|e| invalid("HOARD_CACHE_SIZE", &v, e.problem.to_string()))?,
            None => DEFAULT_CACHE_SIZE,
        };
        let idle = duration("HOARD_IDLE_TIMEOUT", 600)?;
        let request_timeout = duration("HOARD_CLIENT_TIMEOUT", 60)?;
        let single_flight_wait = duration("HOARD_SINGLE_FLIGHT_WAIT", 30)?;
        let mut tiers = tiers_from_env(var).map_err(tier_error)?;
        let trust = if keys {
            Arc::new(trust_from_env(var, &mut tiers).map_err(ConfigError::Trust)?)
        } else {
            Arc::default()
        };
        let client_max_protocol = protocol("HOARD_PROTOCOL")?;
        let server_max_protocol = protocol("HOARD_SERVER_MAX_PROTOCOL")?;
        let direct_mode = switch("HOARD_DIRECT_MODE", true)?;
        let prefetch = switch("HOARD_PREFETCH", true)?;
        let local_compression = switch("HOARD_LOCAL_COMPRESSION", false)?;
        let handover = if switch("HOARD_HARD_LINK", false)? {
            Handover::HardLink
        } else {
            Handover::Copy
        };
        let server_addr = non_empty("HOARD_SERVER_ADDR");
        if let Some(addr) = &server_addr
            && !addr.contains(':')
        {
            return Err(invalid("HOARD_SERVER_ADDR", addr, "want host:port"));
        }
        let socket_path = if let Some(path) = var("HOARD_SERVER_UDS") {
            PathBuf::from(path)
        } else {
            let socket =
                default_socket(&cache_dir, cache_size, &tiers, &socket_identity::trust(var));
            private_socket_dir(&socket)?;
            socket
        };
        Ok(Self {
            cache_dir,
            cache_size,
            socket_path,
            idle_timeout: (!idle.is_zero()).then_some(idle),
            direct_mode,
            prefetch,
            request_timeout,
            client_max_protocol,
            server_max_protocol,
            tiers,
            trust,
            server_addr,
            token: non_empty("HOARD_SERVER_TOKEN").map(Secret),
            listen: non_empty("HOARD_SERVER_LISTEN"),
            local_compression,
            handover,
            single_flight_wait,
            idle_timeout_set: var("HOARD_IDLE_TIMEOUT").is_some(),
        })
    }

    /// Serves TCP clients at `addr` too (`hoard-server --listen`).
    pub fn listen_on(&mut self, addr: String) {
        self.listen = Some(addr);
    }

    /// The client's view, able to start a server from the `hoard-server` beside this binary.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.cache_dir.clone(), self.socket_path.clone());
        config.direct_mode = self.direct_mode;
        config.request_timeout = self.request_timeout;
        config.max_protocol = self.client_max_protocol;
        config.server_addr.clone_from(&self.server_addr);
        config.token = self.token.as_ref().map(|t| t.expose().to_owned());
        config.journal = non_empty("HOARD_JOURNAL").map(PathBuf::from);
        config.launch = Some(
            ServerLaunch::new(server_program())
                .with_env("HOARD_DIR", &self.cache_dir)
                .with_env("HOARD_SERVER_UDS", &self.socket_path)
                .with_env("HOARD_CACHE_SIZE", self.cache_size.to_string()),
        );
        config
    }

    /// The server's view.
    pub fn server(&self) -> ServerConfig {
        let mut config = ServerConfig::new(self.socket_path.clone(), self.cache_dir.clone());
        config.cache_size = self.cache_size;
        config.idle_timeout = self.idle_timeout;
        config.max_protocol = self.server_max_protocol;
        config.direct_mode = self.direct_mode;
        config.local_compression = self.local_compression;
        config.hard_links = self.handover == Handover::HardLink;
        config.prefetch = self.prefetch;
        config.single_flight_wait = self.single_flight_wait;
        config.tiers.clone_from(&self.tiers);
        config.trust = Arc::clone(&self.trust);
        config.listen.clone_from(&self.listen);
        config.token = self.token.as_ref().map(|t| t.expose().to_owned());
        // A gateway serves other machines: it must not go away because this one is quiet.
        if self.listen.is_some() && !self.idle_timeout_set {
            config.idle_timeout = None;
        }
        config
    }
}

/// An invalid setting. Its value is quoted with any URL password masked: whatever the
/// setting, an error must not carry a credential to the terminal or the log.
fn invalid(var: &'static str, value: &str, why: impl Into<String>) -> ConfigError {
    use hoard_storage::tier::config::{Userinfo, redact_url};
    ConfigError::Invalid {
        var,
        value: redact_url(value, Userinfo::Password),
        origin: Box::new(crate::config_file::origin(var)),
        why: why.into(),
    }
}

fn non_empty(var_name: &str) -> Option<String> {
    var(var_name).filter(|v| !v.trim().is_empty())
}

/// A duration setting ([`parse_duration`]: seconds, or `30s`, `10m`, `2h`, `7d`, `1h30m`);
/// `default` seconds when unset.
fn duration(var_name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match var(var_name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => parse_duration(&v).map_err(|e| invalid(var_name, &v, e.problem.to_string())),
    }
}

/// A tier's error, placed in the config file when the setting at fault comes from there.
fn tier_error(source: hoard_storage::TierConfigError) -> ConfigError {
    use hoard_storage::TierConfigError;
    let name = match &source {
        TierConfigError::Invalid { field, .. } if field.starts_with("HOARD_") => {
            Some((*field).to_owned())
        }
        TierConfigError::Invalid { tier, field, .. } => {
            Some(format!("HOARD_{tier}_{field}").to_ascii_uppercase())
        }
        TierConfigError::UnknownTier { var, .. } => Some((*var).to_owned()),
        // `Duplicate`, and any error added later (the enum is non-exhaustive): no one setting.
        _ => None,
    };
    let at = name.and_then(|name| match crate::config_file::origin(&name) {
        origin @ crate::config_file::Origin::File { .. } => Some(origin.place(&name)),
        _ => None,
    });
    ConfigError::Tiers { source, at }
}

fn protocol(var_name: &'static str) -> Result<u32, ConfigError> {
    use hoard_protocol::{MAX_PROTOCOL, MIN_PROTOCOL};
    match var(var_name) {
        None => Ok(MAX_PROTOCOL),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if (MIN_PROTOCOL..=MAX_PROTOCOL).contains(&n) => Ok(n),
            _ => Err(invalid(
                var_name,
                &v,
                format!("want a protocol version from {MIN_PROTOCOL} to {MAX_PROTOCOL}"),
            )),
        },
    }
}

/// An on/off setting, `default` when unset.
fn switch(var_name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match var(var_name) {
        None => Ok(default),
        Some(v) => parse_bool(&v)
            .ok_or_else(|| invalid(var_name, &v, "want 1/0, true/false, yes/no or on/off")),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(xdg).join("hoard"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(".cache/hoard"))
}

/// Creates `dir` (and any missing parents) with mode 0700: the cache directory holds logs,
/// statistics and cache entries whose modes are the outputs' (a hard-linked hit shares the
/// inode), so it is what keeps them from other users. An existing directory is left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ConfigError::CreateDir {
            path: dir.to_owned(),
            source,
        })
}

mod default_socket;
mod socket_identity;

use default_socket::{default_socket, private_socket_dir};

/// `hoard-server` beside the running `hoard`, else whatever `PATH` finds.
pub fn server_program() -> PathBuf {
    if let Some(path) = var("HOARD_SERVER_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("hoard-server")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("hoard-server"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_in_the_usual_spellings() {
        assert_eq!(parse_bool("ON"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }

    fn settings(listen: Option<&str>, idle_timeout_set: bool) -> Settings {
        Settings {
            cache_dir: PathBuf::from("/c"),
            cache_size: 1,
            socket_path: PathBuf::from("/c/s.sock"),
            idle_timeout: Some(Duration::from_secs(600)),
            direct_mode: true,
            prefetch: true,
            request_timeout: Duration::from_secs(60),
            client_max_protocol: 2,
            server_max_protocol: 2,
            tiers: Vec::new(),
            trust: Arc::default(),
            server_addr: None,
            token: Some("t".into()),
            listen: listen.map(str::to_owned),
            local_compression: false,
            handover: Handover::Copy,
            single_flight_wait: Duration::from_secs(30),
            idle_timeout_set,
        }
    }

    #[test]
    fn a_tcp_gateway_never_idles_out_unless_a_timeout_is_set_explicitly() {
        assert_eq!(
            settings(Some("0.0.0.0:1"), false).server().idle_timeout,
            None
        );
        assert_eq!(
            settings(Some("0.0.0.0:1"), true).server().idle_timeout,
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            settings(None, false).server().idle_timeout,
            Some(Duration::from_secs(600))
        );
    }

    fn redis(endpoint: &str) -> TierConfig {
        TierConfig::new(TierKind::Redis {
            endpoint: endpoint.to_owned(),
        })
    }

    #[test]
    fn settings_debug_shows_neither_token_nor_password() {
        let mut s = settings(None, false);
        s.token = Some("tok-secret-1".into());
        s.tiers = vec![redis("redis://alice:hunter2@h:1")];
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("tok-secret-1") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn an_invalid_value_is_quoted_without_its_password() {
        let err = invalid("HOARD_SERVER_ADDR", "x://u:hunter2@h", "no");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
}
