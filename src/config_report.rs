//! `hoard --show-config`: every setting, its effective value, and where that value came from
//! (the environment, the config file and key, or hoard's default); a value hoard reads only
//! where it is used (`HOARD_PATHS`, read by each compile) carries its error here, and the
//! report ends with what the path policy means for a build ([`crate::path_settings::notes`]).

use std::fmt::Write;

use hoard_storage::tier::config::{Userinfo, redact_url, shown_headers};

use crate::config::{Settings, server_program};
use crate::config_file::{self, Origin, SETTINGS};
use crate::path_settings;

/// Settings whose value is a secret: shown as set or unset, never printed.
const SECRETS: &[&str] = &[
    "HOARD_SERVER_TOKEN",
    "HOARD_AZURE_CONNECTION_STRING",
    "HOARD_AZURE_ACCOUNT_KEY",
];

/// Settings whose value is an address that may carry credentials (`user:password@`), and
/// which of them are secret: an S3 endpoint's user name is the access key id. The user name
/// of the others stays visible, so the report still says who connects.
pub const CREDENTIAL_URLS: &[(&str, Userinfo)] = &[
    ("HOARD_MEMCACHED_ENDPOINT", Userinfo::Password),
    ("HOARD_REDIS_ENDPOINT", Userinfo::Password),
    ("HOARD_WEBDAV_ENDPOINT", Userinfo::Password),
    ("HOARD_S3_ENDPOINT", Userinfo::All),
    ("HOARD_REAPI_ENDPOINT", Userinfo::Password),
    ("HOARD_SERVER_ADDR", Userinfo::Password),
    ("HOARD_SERVER_LISTEN", Userinfo::Password),
];

/// `value` of `name` as the report may show it.
fn shown(name: &str, value: String) -> String {
    // Header values are tokens; their names say what is sent.
    if name == "HOARD_REAPI_HEADERS" {
        return shown_headers(&value);
    }
    match CREDENTIAL_URLS.iter().find(|(n, _)| *n == name) {
        Some((_, secret)) => redact_url(&value, *secret),
        None => value,
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLine {
    /// The environment name (`HOARD_CACHE_SIZE`).
    pub name: &'static str,
    /// The effective value as text; empty when the setting is unset and has no default.
    pub value: String,
    /// Where the value came from.
    pub origin: Origin,
    /// What is wrong with the value, for one no compile refuses but that does not mean what
    /// its user hoped (an unknown `HOARD_PATHS`).
    pub error: Option<String>,
}

/// The effective configuration, one line per setting, in [`SETTINGS`] order with
/// `HOARD_CONFIG` (the file itself) first.
pub fn lines(settings: &Settings) -> Vec<ConfigLine> {
    let file = config_file::loaded().ok().and_then(|f| f.path.clone());
    let mut lines = vec![ConfigLine {
        name: "HOARD_CONFIG",
        value: file.map(|p| p.display().to_string()).unwrap_or_default(),
        origin: if std::env::var_os("HOARD_CONFIG").is_some_and(|v| !v.is_empty()) {
            Origin::Environment
        } else {
            Origin::Default
        },
        error: None,
    }];
    for &name in SETTINGS {
        let origin = config_file::origin(name);
        let value = match (&origin, config_file::setting(name)) {
            (_, Some(_)) if SECRETS.contains(&name) => "(set, not shown)".to_owned(),
            (Origin::Environment | Origin::File { .. }, Some(value)) => {
                signing_value(name, &value, settings).unwrap_or_else(|| shown(name, value))
            }
            _ => default_value(name, settings),
        };
        let error = match name {
            hoard_compiler::PATHS_VAR => path_settings::path_mode()
                .err()
                .map(|e| format!("{e}; compiles run as under `exact`")),
            _ => None,
        };
        lines.push(ConfigLine {
            name,
            value,
            origin,
            error,
        });
    }
    lines
}

/// What a signing setting that is set means, in words: the keys by name and fingerprint
/// rather than a line of base64 (the secret key is never read into the report).
fn signing_value(name: &str, value: &str, settings: &Settings) -> Option<String> {
    use hoard_storage::signing::fingerprint;
    match name {
        "HOARD_SIGNING_KEY" => settings.trust.signer.as_ref().map(|signer| {
            format!(
                "{value} (signs as {}, {})",
                signer.name(),
                fingerprint(&signer.public_bytes())
            )
        }),
        "HOARD_TRUSTED_KEYS" => {
            let keys: Vec<String> = settings
                .trust
                .trusted
                .iter()
                .map(|k| format!("{} ({})", k.name, fingerprint(&k.public_bytes())))
                .collect();
            Some(format!("{} trusted: {}", keys.len(), keys.join(", ")))
        }
        _ => None,
    }
}

/// What hoard uses for `name` when nothing sets it.
fn default_value(name: &str, settings: &Settings) -> String {
    let seconds = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_secs()).to_string();
    let on_off = |b: bool| if b { "on" } else { "off" }.to_owned();
    match name {
        "HOARD_DIR" => settings.cache_dir.display().to_string(),
        "HOARD_CACHE_SIZE" => hoard_storage::tier::config::format_size(settings.cache_size),
        "HOARD_SERVER_UDS" => settings.socket_path.display().to_string(),
        "HOARD_IDLE_TIMEOUT" => seconds(settings.idle_timeout),
        "HOARD_LOG" => "warn".to_owned(),
        "HOARD_DIRECT_MODE" => on_off(settings.direct_mode),
        "HOARD_LOCAL_COMPRESSION" => on_off(settings.local_compression),
        "HOARD_HARD_LINK" => on_off(settings.handover == crate::config::Handover::HardLink),
        "HOARD_PREFETCH" => on_off(settings.prefetch),
        "HOARD_RECACHE" | "HOARD_DISABLE" => on_off(false),
        "HOARD_CLIENT_TIMEOUT" => settings.request_timeout.as_secs().to_string(),
        "HOARD_SINGLE_FLIGHT_WAIT" => settings.single_flight_wait.as_secs().to_string(),
        "HOARD_SERVER_BIN" => server_program().display().to_string(),
        "HOARD_PROTOCOL" => settings.client_max_protocol.to_string(),
        "HOARD_SERVER_MAX_PROTOCOL" => settings.server_max_protocol.to_string(),
        "HOARD_PATHS" => "shared".to_owned(),
        "HOARD_VERIFY_TIERS" => {
            let verified: Vec<&str> = settings
                .tiers
                .iter()
                .filter(|t| t.verify)
                .map(|t| t.name.as_str())
                .collect();
            if verified.is_empty() {
                "none".to_owned()
            } else {
                verified.join(",")
            }
        }
        _ => String::new(),
    }
}

/// The report as aligned text: name, value (`-` when unset), origin.
pub fn render(settings: &Settings) -> String {
    let lines = lines(settings);
    let width = lines
        .iter()
        .map(|l| l.value.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(out, "{:<26} {:<width$}  from", "setting", "value");
    for line in &lines {
        let value = if line.value.is_empty() {
            "-"
        } else {
            &line.value
        };
        let _ = writeln!(out, "{:<26} {value:<width$}  {}", line.name, line.origin);
    }
    // An error goes to stderr with `--show-config`'s failure; a warning names a setting that
    // is set in vain; a note says what a setting means for a build.
    let warnings = settings.warnings();
    if !warnings.is_empty() {
        out.push('\n');
    }
    for warning in warnings {
        let _ = write!(out, "{}", wrapped(&format!("warning: {warning}"), 92));
    }
    for (_, note) in path_settings::notes() {
        let _ = write!(out, "\n{}", wrapped(&format!("note: {note}"), 92));
    }
    out
}

/// `text` broken at spaces into lines of at most `width` columns (a longer word stays whole),
/// continuation lines indented by two.
fn wrapped(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut column = 0;
    for word in text.split(' ') {
        if column > 0 && column + 1 + word.len() > width {
            out.push_str("\n  ");
            column = 2;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
    out
}

/// The report as one JSON object: `{ "HOARD_DIR": { "value": ..., "from": ... }, ... }`,
/// with `"error"` beside a value that has one and `"note"` beside one the path policy's
/// notes are about, and `"warnings"`: an array of `{ "setting", "message" }` for settings
/// set in vain (`message` is the whole sentence, place included).
pub fn to_json(settings: &Settings) -> serde_json::Value {
    let notes = path_settings::notes();
    let warnings: Vec<serde_json::Value> = settings
        .warnings()
        .iter()
        .map(|w| serde_json::json!({ "setting": w.setting, "message": w.to_string() }))
        .collect();
    let mut map: serde_json::Map<String, serde_json::Value> = lines(settings)
        .into_iter()
        .map(|line| {
            let from = match &line.origin {
                Origin::Environment => serde_json::json!("environment"),
                Origin::Default => serde_json::json!("default"),
                Origin::File {
                    path,
                    key,
                    position,
                } => serde_json::json!({
                    "file": path.display().to_string(),
                    "key": key,
                    "line": position.line,
                    "column": position.column,
                }),
            };
            let value = (!line.value.is_empty()).then_some(line.value);
            let mut entry = serde_json::json!({ "value": value, "from": from });
            if let Some(error) = line.error {
                entry["error"] = serde_json::json!(error);
            }
            if let Some((_, note)) = notes.iter().find(|(name, _)| *name == line.name) {
                entry["note"] = serde_json::json!(note);
            }
            (line.name.to_owned(), entry)
        })
        .collect();
    map.insert("warnings".to_owned(), serde_json::Value::Array(warnings));
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_wrap_at_spaces() {
        assert_eq!(wrapped("aa bb cc dd", 5), "aa bb\n  cc\n  dd\n");
        assert_eq!(wrapped("abcdefgh x", 4), "abcdefgh\n  x\n");
    }

    #[test]
    fn credential_bearing_values_are_shown_redacted() {
        assert_eq!(
            shown(
                "HOARD_REDIS_ENDPOINT",
                "redis://alice:hunter2@h:6379".into()
            ),
            "redis://alice:***@h:6379"
        );
        assert_eq!(
            shown("HOARD_S3_ENDPOINT", "http://AKIA:secret@h:9000".into()),
            "http://***:***@h:9000"
        );
        assert_eq!(
            shown("HOARD_WEBDAV_ENDPOINT", "https://dav:pw@h/c".into()),
            "https://dav:***@h/c"
        );
        assert_eq!(
            shown("HOARD_MEMCACHED_ENDPOINT", "mc:pw@h:11211".into()),
            "mc:***@h:11211"
        );
        assert_eq!(shown("HOARD_DIR", "/x/a:b@c".into()), "/x/a:b@c");
    }
}
