//! The optional TOML config file: `HOARD_CONFIG`, else `$XDG_CONFIG_HOME/hoard/config.toml`
//! (or `~/.config/hoard/config.toml`). Each key is an environment setting's name without the
//! `HOARD_` prefix, in lower case (`cache_size = "20G"`, `redis_endpoint = "redis://..."`,
//! `read_only_tiers = ["s3"]`). The environment wins over the file. A list is joined with
//! `,`, except `basedirs`, a path list joined with `:` as `HOARD_BASEDIRS` is.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Every setting the file may hold, by environment name.
pub const SETTINGS: &[&str] = &[
    "HOARD_DIR",
    "HOARD_CACHE_SIZE",
    "HOARD_SERVER_UDS",
    "HOARD_IDLE_TIMEOUT",
    "HOARD_LOG",
    "HOARD_DIRECT_MODE",
    "HOARD_CLIENT_TIMEOUT",
    "HOARD_SERVER_BIN",
    "HOARD_PROTOCOL",
    "HOARD_SERVER_MAX_PROTOCOL",
    "HOARD_SERVER_ADDR",
    "HOARD_SERVER_TOKEN",
    "HOARD_SERVER_LISTEN",
    "HOARD_MEMCACHED_ENDPOINT",
    "HOARD_MEMCACHED_MAX_ENTRY",
    "HOARD_REMOTE_MAX_ENTRY",
    "HOARD_REDIS_ENDPOINT",
    "HOARD_REAPI_ENDPOINT",
    "HOARD_REAPI_INSTANCE",
    "HOARD_REAPI_HEADERS",
    "HOARD_REAPI_TLS_CA",
    "HOARD_REAPI_TLS_CLIENT_CERT",
    "HOARD_REAPI_TLS_CLIENT_KEY",
    "HOARD_S3_BUCKET",
    "HOARD_S3_ENDPOINT",
    "HOARD_S3_REGION",
    "HOARD_S3_PREFIX",
    "HOARD_WEBDAV_ENDPOINT",
    "HOARD_SHARED_DIR",
    "HOARD_GCS_BUCKET",
    "HOARD_GCS_ENDPOINT",
    "HOARD_GCS_KEY_PATH",
    "HOARD_GCS_PREFIX",
    "HOARD_AZURE_CONTAINER",
    "HOARD_AZURE_CONNECTION_STRING",
    "HOARD_AZURE_ACCOUNT_NAME",
    "HOARD_AZURE_ACCOUNT_KEY",
    "HOARD_AZURE_ENDPOINT",
    "HOARD_AZURE_PREFIX",
    "HOARD_GHA",
    "HOARD_GHA_VERSION",
    "HOARD_TIER_ORDER",
    "HOARD_READ_ONLY_TIERS",
    "HOARD_SIGNING_KEY",
    "HOARD_TRUSTED_KEYS",
    "HOARD_VERIFY_TIERS",
    "HOARD_JOURNAL",
    "HOARD_LOCAL_COMPRESSION",
    "HOARD_HARD_LINK",
    "HOARD_PREFETCH",
    "HOARD_SINGLE_FLIGHT_WAIT",
    "HOARD_PATHS",
    "HOARD_BASEDIRS",
];

/// The separator a list value in the file is joined with for `name`.
fn list_separator(name: &str) -> &'static str {
    if name == hoard_compiler::BASEDIRS_VAR {
        ":"
    } else {
        ","
    }
}

/// The file could not be used; says which file and which key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigFileError {
    /// `HOARD_CONFIG` names a file that cannot be read.
    #[error("cannot read the config file {path}: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file is not TOML.
    #[error("{path}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key hoard does not know.
    #[error("{path}: unknown key {key:?} (known: {known})")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The keys hoard knows.
        known: String,
    },
    /// A value of a type no setting takes.
    #[error("{path}: key {key:?} wants a string, number, boolean or list of strings")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// The file's settings by environment name, and where they came from. `Debug` names the
/// settings the file holds but not their values, some of which are secrets.
#[derive(Default)]
pub struct ConfigFile {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("settings", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConfigFile {
    /// The file's value for the setting `name` (`HOARD_PATHS`), whatever the environment says.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

static LOADED: OnceLock<Result<ConfigFile, ConfigFileError>> = OnceLock::new();

/// The config file, read once per process.
pub fn loaded() -> Result<&'static ConfigFile, ConfigFileError> {
    LOADED.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The process environment.
    Environment,
    /// The config file, under the setting's key.
    File {
        /// The file.
        path: PathBuf,
        /// The key in it (`cache_size` for `HOARD_CACHE_SIZE`).
        key: String,
    },
    /// Neither: hoard's default.
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Environment => f.write_str("environment"),
            Origin::File { path, key } => write!(f, "{}, key {key}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// The file key of a setting: its environment name without `HOARD_`, in lower case.
pub fn key_of(name: &str) -> String {
    name.trim_start_matches("HOARD_").to_ascii_lowercase()
}

/// Where [`setting`] finds `name`'s value.
pub fn origin(name: &str) -> Origin {
    if std::env::var(name).is_ok_and(|v| !v.trim().is_empty()) {
        return Origin::Environment;
    }
    match loaded() {
        Ok(file) if file.values.contains_key(name) => Origin::File {
            path: file.path.clone().unwrap_or_default(),
            key: key_of(name),
        },
        _ => Origin::Default,
    }
}

/// A setting: the environment's non-empty value, else the file's.
pub fn setting(name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name)
        && !v.trim().is_empty()
    {
        return Some(v);
    }
    loaded().ok()?.values.get(name).cloned()
}

/// The config file read (or that would be read, when it does not exist): `HOARD_CONFIG`,
/// else `$XDG_CONFIG_HOME/hoard/config.toml`, else `~/.config/hoard/config.toml`; `None`
/// with neither `XDG_CONFIG_HOME` nor `HOME` set.
pub fn path() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("HOARD_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(explicit));
    }
    match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(xdg) => Some(PathBuf::from(xdg).join("hoard/config.toml")),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".config/hoard/config.toml")),
    }
}

fn load() -> Result<ConfigFile, ConfigFileError> {
    let explicit = std::env::var_os("HOARD_CONFIG").filter(|v| !v.is_empty());
    let Some(path) = path() else {
        return Ok(ConfigFile::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // Only a file someone named must exist.
        Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ConfigFile::default());
        }
        Err(e) => {
            return Err(ConfigFileError::Unreadable {
                path,
                message: e.to_string(),
            });
        }
    };
    parse(&text, path)
}

/// Parses the file's text; `path` is for messages.
pub fn parse(text: &str, path: PathBuf) -> Result<ConfigFile, ConfigFileError> {
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigFileError::Syntax {
                path: path.clone(),
                message: e.message().to_owned(),
            })?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let name = format!("HOARD_{}", key.to_ascii_uppercase());
        if !SETTINGS.contains(&name.as_str()) {
            let known: Vec<String> = SETTINGS.iter().map(|s| key_of(s)).collect();
            return Err(ConfigFileError::UnknownKey {
                path,
                key,
                known: known.join(", "),
            });
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .into_iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect();
                strings
                    .ok_or_else(|| ConfigFileError::BadValue {
                        path: path.clone(),
                        key: key.clone(),
                    })?
                    .join(list_separator(&name))
            }
            _ => return Err(ConfigFileError::BadValue { path, key }),
        };
        values.insert(name, text);
    }
    Ok(ConfigFile {
        path: Some(path),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_map_to_environment_names_and_lists_join() {
        let file = parse(
            "cache_size = \"20G\"\nidle_timeout = 30\ndirect_mode = false\nread_only_tiers = [\"s3\", \"redis\"]\n",
            PathBuf::from("c.toml"),
        )
        .unwrap();
        assert_eq!(file.values["HOARD_CACHE_SIZE"], "20G");
        assert_eq!(file.values["HOARD_IDLE_TIMEOUT"], "30");
        assert_eq!(file.values["HOARD_DIRECT_MODE"], "false");
        assert_eq!(file.values["HOARD_READ_ONLY_TIERS"], "s3,redis");
    }

    #[test]
    fn the_path_policy_keys_are_known_and_basedirs_join_as_a_path_list() {
        let file = parse(
            "paths = \"exact\"\nbasedirs = [\"/src/a\", \"/build\"]\n",
            PathBuf::from("c.toml"),
        )
        .unwrap();
        assert_eq!(file.value("HOARD_PATHS"), Some("exact"));
        assert_eq!(file.value("HOARD_BASEDIRS"), Some("/src/a:/build"));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
        let err = parse("cache_sise = \"1G\"\n", PathBuf::from("/etc/h.toml")).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("cache_sise") && message.contains("/etc/h.toml"),
            "{message}"
        );
    }

    #[test]
    fn a_table_value_and_broken_toml_are_errors() {
        assert!(matches!(
            parse("dir = { a = 1 }\n", PathBuf::from("c.toml")),
            Err(ConfigFileError::BadValue { .. })
        ));
        assert!(matches!(
            parse("dir = \n", PathBuf::from("c.toml")),
            Err(ConfigFileError::Syntax { .. })
        ));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".*") {
            let _ = parse(&text, PathBuf::from("c.toml"));
        }
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn a_broken_file_is_reported_without_quoting_its_values() {
        for text in [
            "redis_endpoint = \"redis://alice:hunter2@h\n",
            "redis_endpoint = redis://alice:hunter2@h\n",
            "server_token = \"hunter2\"\nserver_token = \"hunter2\"\n",
            "redis_endpoint = { x = \"redis://alice:hunter2@h\" }\n",
            "redis_endpointt = \"redis://alice:hunter2@h\"\n",
            "redis_endpoint = \"redis://alice:hunter2@h\" x\n",
        ] {
            let err = parse(text, PathBuf::from("c.toml")).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let file = parse(
            "redis_endpoint = \"redis://alice:hunter2@h\"\n",
            PathBuf::from("c.toml"),
        )
        .unwrap();
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("HOARD_REDIS_ENDPOINT"),
            "{shown}"
        );
    }
}
