//! The parts of `hoard --help` and `--version` that clap cannot derive from the flags: the
//! protocol versions this build speaks, the variables people set most, and where this user's
//! config file is.

use std::fmt::Write as _;

/// `hoard 0.1.0 (protocol v1-v2)`'s text after the name: the version and the protocols, so
/// a fleet with old and new machines can see which meet.
pub fn version() -> String {
    let (min, max) = (hoard_protocol::MIN_PROTOCOL, hoard_protocol::MAX_PROTOCOL);
    let protocols = (min..=max)
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} (protocols {protocols})", env!("CARGO_PKG_VERSION"))
}

/// The most used variables, one line each: what ccache and sccache users reach for first.
const COMMON_VARIABLES: &[(&str, &str)] = &[
    ("HOARD_DIR", "the cache directory (default ~/.cache/hoard)"),
    (
        "HOARD_CACHE_SIZE",
        "the local cache's limit, e.g. 20G (or hoard -M 20G)",
    ),
    (
        "HOARD_JOURNAL",
        "append one JSON line per compile to this file, for reports",
    ),
    (
        "HOARD_RECACHE=1",
        "compile everything again and overwrite the cached results",
    ),
    (
        "HOARD_DISABLE=1",
        "pass every compile straight to the compiler, no cache, no server",
    ),
    (
        "HOARD_REDIS_ENDPOINT",
        "share a cache (also memcached, s3, webdav, gcs, azure, gha, reapi, shared dir)",
    ),
    (
        "HOARD_SIGNING_KEY / HOARD_TRUSTED_KEYS",
        "sign shared entries / accept only signed ones",
    ),
    (
        "HOARD_PATHS / HOARD_BASEDIRS",
        "share hits across checkouts in different directories",
    ),
    (
        "HOARD_LOG",
        "log filter for HOARD_DIR/hoard.log, e.g. debug",
    ),
];

/// The text after the options: the common variables and where the config file is.
pub fn after_help() -> String {
    let mut text = String::from(
        "Most used settings (environment, or the config file key in lower case without HOARD_):\n",
    );
    let width = COMMON_VARIABLES
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    for (name, what) in COMMON_VARIABLES {
        let _ = writeln!(text, "  {name:width$}  {what}");
    }
    let config = crate::config_file::path().map_or_else(
        || "none: set HOARD_CONFIG, XDG_CONFIG_HOME or HOME".to_owned(),
        |p| p.display().to_string(),
    );
    let _ = write!(
        text,
        "\nConfig file: {config}\nEvery setting and where its value came from: hoard --show-config\n\
         Why a compile missed: hoard --explain -- <compiler> <args>"
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_every_protocol_spoken() {
        let text = version();
        assert!(text.starts_with(env!("CARGO_PKG_VERSION")), "{text}");
        for v in hoard_protocol::MIN_PROTOCOL..=hoard_protocol::MAX_PROTOCOL {
            assert!(text.contains(&format!("v{v}")), "{text}");
        }
    }

    #[test]
    fn the_help_names_the_switches_users_reach_for_and_the_config_file() {
        let text = after_help();
        for name in [
            "HOARD_DIR",
            "HOARD_RECACHE",
            "HOARD_DISABLE",
            "Config file:",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
