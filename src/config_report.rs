//! `hoard --show-config`: every setting, its effective value, and where that value came from
//! (the environment, the config file and key, or hoard's default).

use std::fmt::Write;

use hoard_storage::tier::config::{Userinfo, redact_url};

use crate::config::{Settings, server_program};
use crate::config_file::{self, Origin, SETTINGS};

/// Settings whose value is a secret: shown as set or unset, never printed.
const SECRETS: &[&str] = &["HOARD_SERVER_TOKEN"];

/// Settings whose value is an address that may carry credentials (`user:password@`), and
/// which of them are secret: an S3 endpoint's user name is the access key id. The user name
/// of the others stays visible, so the report still says who connects.
pub const CREDENTIAL_URLS: &[(&str, Userinfo)] = &[
    ("HOARD_MEMCACHED_ENDPOINT", Userinfo::Password),
    ("HOARD_REDIS_ENDPOINT", Userinfo::Password),
    ("HOARD_WEBDAV_ENDPOINT", Userinfo::Password),
    ("HOARD_S3_ENDPOINT", Userinfo::All),
    ("HOARD_SERVER_ADDR", Userinfo::Password),
    ("HOARD_SERVER_LISTEN", Userinfo::Password),
];

/// `value` of `name` as the report may show it.
fn shown(name: &str, value: String) -> String {
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
    }];
    for &name in SETTINGS {
        let origin = config_file::origin(name);
        let value = match (&origin, config_file::setting(name)) {
            (_, Some(_)) if SECRETS.contains(&name) => "(set, not shown)".to_owned(),
            (Origin::Environment | Origin::File { .. }, Some(value)) => shown(name, value),
            _ => default_value(name, settings),
        };
        lines.push(ConfigLine {
            name,
            value,
            origin,
        });
    }
    lines
}

/// What hoard uses for `name` when nothing sets it.
fn default_value(name: &str, settings: &Settings) -> String {
    let seconds = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_secs()).to_string();
    let on_off = |b: bool| if b { "on" } else { "off" }.to_owned();
    match name {
        "HOARD_DIR" => settings.cache_dir.display().to_string(),
        "HOARD_CACHE_SIZE" => settings.cache_size.to_string(),
        "HOARD_SERVER_UDS" => settings.socket_path.display().to_string(),
        "HOARD_IDLE_TIMEOUT" => seconds(settings.idle_timeout),
        "HOARD_LOG" => "warn".to_owned(),
        "HOARD_DIRECT_MODE" => on_off(settings.direct_mode),
        "HOARD_LOCAL_COMPRESSION" => on_off(settings.local_compression),
        "HOARD_HARD_LINK" => on_off(settings.handover == crate::config::Handover::HardLink),
        "HOARD_CLIENT_TIMEOUT" => settings.request_timeout.as_secs().to_string(),
        "HOARD_SINGLE_FLIGHT_WAIT" => settings.single_flight_wait.as_secs().to_string(),
        "HOARD_SERVER_BIN" => server_program().display().to_string(),
        "HOARD_PROTOCOL" => settings.client_max_protocol.to_string(),
        "HOARD_SERVER_MAX_PROTOCOL" => settings.server_max_protocol.to_string(),
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
    out
}

/// The report as one JSON object: `{ "HOARD_DIR": { "value": ..., "from": ... }, ... }`.
pub fn to_json(settings: &Settings) -> serde_json::Value {
    let map = lines(settings)
        .into_iter()
        .map(|line| {
            let from = match &line.origin {
                Origin::Environment => serde_json::json!("environment"),
                Origin::Default => serde_json::json!("default"),
                Origin::File { path, key } => {
                    serde_json::json!({ "file": path.display().to_string(), "key": key })
                }
            };
            let value = (!line.value.is_empty()).then_some(line.value);
            (
                line.name.to_owned(),
                serde_json::json!({ "value": value, "from": from }),
            )
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

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
