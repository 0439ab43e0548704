//! The optional TOML config file: `HOARD_CONFIG`, else `$XDG_CONFIG_HOME/hoard/config.toml`
//! (or `~/.config/hoard/config.toml`). Each key is an environment setting's name without the
//! `HOARD_` prefix, in lower case (`cache_size = "20G"`, `redis_endpoint = "redis://..."`,
//! `read_only_tiers = ["s3"]`). The environment wins over the file. A list is joined with
//! `,`, except `basedirs`, a path list joined with `:` as `HOARD_BASEDIRS` is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use toml::Spanned;

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
    "HOARD_SERVER_METRICS",
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
    "HOARD_RECACHE",
    "HOARD_DISABLE",
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

/// A place in the config file: 1-based line and column (in characters), as editors count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text, and to a character
    /// boundary).
    pub fn in_text(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// `path:line:column`, or `path` alone when the position is not known: how compilers name a
/// place, so editors and terminals can jump to it.
fn located(path: &Path, position: Option<Position>) -> String {
    match position {
        Some(p) => format!("{}:{p}", path.display()),
        None => path.display().to_string(),
    }
}

/// Where the file's keys are listed, for an unknown key with no close match.
pub const KEYS_DOCUMENTED: &str = "the keys are the HOARD_* settings' names without HOARD_, \
    in lower case, listed under \"Configuration\" in hoard's README";

/// The file could not be used; says which file, where in it, and which key. Never quotes a
/// value, which may be a secret.
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
    #[error("{}: not valid TOML: {message}", located(.path, *.position))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped, when it says.
        position: Option<Position>,
        /// The parser's message, on one line.
        message: String,
    },
    /// A key hoard does not know.
    #[error(
        "{}: unknown key {key:?}; {}",
        located(.path, Some(*.position)),
        .suggestion.as_ref().map_or_else(
            || KEYS_DOCUMENTED.to_owned(),
            |known| format!("did you mean {known:?}?")
        )
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// Where the key is.
        position: Position,
        /// The key.
        key: String,
        /// The known key it is most likely a typo of, if one is close.
        suggestion: Option<String>,
    },
    /// A value of a type no setting takes.
    #[error(
        "{}: key {key:?} wants a string, number, boolean or list of strings",
        located(.path, Some(*.position))
    )]
    BadValue {
        /// The file.
        path: PathBuf,
        /// Where the value is.
        position: Position,
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
    /// Where each value is in the file, by environment name.
    positions: BTreeMap<String, Position>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("settings", &self.values.keys().collect::<Vec<_>>())
            .field("positions", &self.positions)
            .finish()
    }
}

impl ConfigFile {
    /// The file's value for the setting `name` (`HOARD_PATHS`), whatever the environment says.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Where the file sets `name`, if it does.
    pub fn position(&self, name: &str) -> Option<Position> {
        self.positions.get(name).copied()
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
        /// Where its value is.
        position: Position,
    },
    /// Neither: hoard's default.
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Environment => f.write_str("environment"),
            Origin::File { path, key, .. } => write!(f, "{}, key {key}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

impl Origin {
    /// Where `name`'s value is, for a message: `file:line:column: key` when the file sets it,
    /// else the variable's name.
    pub fn place(&self, name: &str) -> String {
        match self {
            Origin::File {
                path,
                key,
                position,
            } => format!("{}: {key}", located(path, Some(*position))),
            Origin::Environment | Origin::Default => name.to_owned(),
        }
    }

    /// `name` and its `value` (already fit to show) as a message names them: `file:line:column:
    /// key = "value"` for the file, `NAME="value"` for the environment.
    pub fn quote(&self, name: &str, value: &str) -> String {
        match self {
            Origin::File { .. } => format!("{} = {value:?}", self.place(name)),
            Origin::Environment | Origin::Default => format!("{name}={value:?}"),
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
            position: file
                .position(name)
                .unwrap_or(Position { line: 1, column: 1 }),
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

/// The file as the parser gives it: each key and value with where it is.
type SpannedTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// Parses the file's text; `path` is for messages. Of several mistakes, the first in the file
/// is reported.
pub fn parse(text: &str, path: PathBuf) -> Result<ConfigFile, ConfigFileError> {
    let table: SpannedTable =
        toml::from_str(text).map_err(|e: toml::de::Error| ConfigFileError::Syntax {
            position: e.span().map(|span| Position::in_text(text, span.start)),
            // The parser's own message may run over lines; the report is one line.
            message: e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            path: path.clone(),
        })?;
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut file = ConfigFile {
        path: Some(path.clone()),
        ..ConfigFile::default()
    };
    for (key, value) in entries {
        let key_at = Position::in_text(text, key.span().start);
        let value_at = Position::in_text(text, value.span().start);
        let key = key.into_inner();
        let name = format!("HOARD_{}", key.to_ascii_uppercase());
        if !SETTINGS.contains(&name.as_str()) {
            return Err(ConfigFileError::UnknownKey {
                suggestion: closest_key(&key),
                path,
                position: key_at,
                key,
            });
        }
        let bad_value = || ConfigFileError::BadValue {
            path: path.clone(),
            position: value_at,
            key: key.clone(),
        };
        let text = match value.into_inner() {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(bad_value)?
                .join(list_separator(&name)),
            _ => return Err(bad_value()),
        };
        file.values.insert(name.clone(), text);
        file.positions.insert(name, value_at);
    }
    Ok(file)
}

/// The known key `key` is most likely a typo of: the same with `hoard_` taken off, or one
/// a few edits away (at most one edit per three characters, so short words do not match
/// everything).
fn closest_key(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    let known = || SETTINGS.iter().map(|s| key_of(s));
    if let Some(bare) = key.strip_prefix("hoard_")
        && known().any(|k| k == bare)
    {
        return Some(bare.to_owned());
    }
    known()
        .map(|k| (strsim::damerau_levenshtein(&key, &k), k))
        .filter(|(distance, _)| distance * 3 <= key.chars().count())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
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
    fn an_unknown_key_names_file_line_column_and_the_key_it_is_a_typo_of() {
        let err = parse(
            "cache_size = \"1G\"\n\n  cache_szie = \"1G\"\n",
            PathBuf::from("/etc/h.toml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/h.toml:3:3: unknown key \"cache_szie\"; did you mean \"cache_size\"?"
        );
    }

    #[test]
    fn a_key_written_as_its_variable_is_pointed_to_the_key() {
        let err = parse("HOARD_CACHE_SIZE = \"1G\"\n", PathBuf::from("c.toml")).unwrap_err();
        assert!(
            err.to_string().ends_with("did you mean \"cache_size\"?"),
            "{err}"
        );
        let err = parse("memcache_endpoint = \"x\"\n", PathBuf::from("c.toml")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("did you mean \"memcached_endpoint\"?"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_with_no_close_match_says_where_the_keys_are_listed() {
        let err = parse("frobnicate = 1\n", PathBuf::from("c.toml")).unwrap_err();
        let message = err.to_string();
        assert_eq!(
            message,
            format!("c.toml:1:1: unknown key \"frobnicate\"; {KEYS_DOCUMENTED}")
        );
        assert!(
            !message.contains("cache_size"),
            "no list of every key: {message}"
        );
        // Short words are not a typo of every short key.
        assert_eq!(closest_key("foo"), None);
        assert_eq!(closest_key("dri"), Some("dir".to_owned()));
    }

    #[test]
    fn the_first_mistake_in_the_file_is_the_one_reported() {
        let err = parse("zzz = 1\naaa = 2\n", PathBuf::from("c.toml")).unwrap_err();
        assert!(err.to_string().contains("\"zzz\""), "{err}");
    }

    #[test]
    fn a_syntax_error_is_one_line_with_the_parser_position() {
        let err = parse(
            "cache_size = \"1G\"\nidle_timeout = \n",
            PathBuf::from("/h/c.toml"),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("/h/c.toml:2:"), "{message}");
        assert!(message.contains("not valid TOML"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn values_remember_where_they_are() {
        let file = parse(
            "# hoard\ncache_size = \"20G\"\n  idle_timeout =   30\n",
            PathBuf::from("c.toml"),
        )
        .unwrap();
        assert_eq!(
            file.position("HOARD_CACHE_SIZE"),
            Some(Position {
                line: 2,
                column: 14
            })
        );
        assert_eq!(
            file.position("HOARD_IDLE_TIMEOUT"),
            Some(Position {
                line: 3,
                column: 20
            })
        );
        let err = parse("\ndir = { a = 1 }\n", PathBuf::from("c.toml")).unwrap_err();
        assert!(
            err.to_string().starts_with("c.toml:2:7: key \"dir\""),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".*") {
            let _ = parse(&text, PathBuf::from("c.toml"));
        }

        #[test]
        fn an_unknown_key_is_placed_on_its_own_line_and_column(
            before in prop::collection::vec(
                prop::sample::select(vec!["# note", "", "  # indented note", "\t"]),
                0..6,
            ),
            indent in 0usize..4,
        ) {
            let text: String = before.iter().flat_map(|l| [*l, "\n"]).collect();
            let text = format!("{text}{}bogus_key = 1\n", " ".repeat(indent));
            let Err(ConfigFileError::UnknownKey { position, .. }) =
                parse(&text, PathBuf::from("c.toml"))
            else {
                panic!("not an unknown key: {text}");
            };
            prop_assert_eq!(position, Position { line: before.len() + 1, column: indent + 1 });
        }

        #[test]
        fn positions_count_lines_and_characters(
            lines in prop::collection::vec("[a-zé ]{0,8}", 1..6),
            pick in any::<prop::sample::Index>(),
            column in 0usize..8,
        ) {
            let text = lines.join("\n");
            let line = pick.index(lines.len());
            let column = column.min(lines[line].chars().count());
            let offset = lines[..line].iter().map(|l| l.len() + 1).sum::<usize>()
                + lines[line].chars().take(column).map(char::len_utf8).sum::<usize>();
            prop_assert_eq!(
                Position::in_text(&text, offset),
                Position { line: line + 1, column: column + 1 }
            );
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
