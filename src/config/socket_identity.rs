//! What names a configuration's socket: the tiers as their derived `Debug` printed them before
//! that `Debug` hid credentials, byte for byte, so socket names (and with them the servers
//! already running) stay what they were. Hashed, never shown.

// The mirrors' fields are read only by their derived `Debug`, which the lint does not count.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

/// Mirrors `hoard_storage::TierConfig`, secrets included; the type's name is part of
/// the text.
#[derive(Debug)]
struct TierConfig<'a> {
    name: &'a String,
    kind: TierKind<'a>,
    read_only: bool,
    max_entry_size: Option<u64>,
    connect_timeout: Duration,
    op_timeout: Duration,
}

/// Mirrors `hoard_storage::TierKind`.
#[derive(Debug)]
enum TierKind<'a> {
    Memcached {
        endpoint: &'a String,
    },
    Redis {
        endpoint: &'a String,
    },
    S3 {
        bucket: &'a String,
        endpoint: Option<&'a String>,
        region: Option<&'a String>,
        prefix: Option<&'a String>,
    },
    Webdav {
        endpoint: &'a String,
    },
    SharedDir {
        path: &'a PathBuf,
    },
    Azure {
        container: &'a String,
        connection_string: Option<&'a String>,
        account_name: Option<&'a String>,
        account_key: Option<&'a String>,
        endpoint: Option<&'a String>,
        prefix: Option<&'a String>,
    },
    Gcs {
        bucket: &'a String,
        endpoint: Option<&'a String>,
        key_path: Option<&'a PathBuf>,
        prefix: Option<&'a String>,
    },
    /// Headers included (hashed, never shown): a new token is a new configuration.
    Reapi {
        endpoint: &'a String,
        instance: Option<&'a String>,
        headers: &'a [(String, String)],
        tls_ca: Option<&'a PathBuf>,
        tls_client_cert: Option<&'a PathBuf>,
        tls_client_key: Option<&'a PathBuf>,
    },
    /// The job's token is left out: it changes with every job, the cache it reaches does not.
    Gha {
        version: &'a String,
        results_url: Option<&'a String>,
    },
}

/// The identity text of the signing settings, from their raw values, so that a wrapper can
/// name its server's socket without parsing a key: each set variable's value, and for a
/// key file, its identity (device, inode, size, modification time: a rewritten key file is a
/// new configuration) rather than its bytes, which are secret. Empty when none is set.
pub(super) fn trust(vars: impl Fn(&str) -> Option<String>) -> String {
    use std::fmt::Write as _;
    use std::os::unix::fs::MetadataExt;
    let mut text = String::new();
    for name in [
        "HOARD_SIGNING_KEY",
        "HOARD_TRUSTED_KEYS",
        "HOARD_VERIFY_TIERS",
    ] {
        let Some(value) = vars(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let _ = write!(text, "{name}={value}");
        // A key file (or a trusted-keys file) that changes in place is a new configuration.
        if let Ok(meta) = std::fs::metadata(&value) {
            let _ = write!(
                text,
                " file {}:{}:{}:{}.{}",
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec()
            );
        }
        text.push('\n');
    }
    text
}

/// The identity text of `tiers`.
pub(super) fn tiers(tiers: &[hoard_storage::TierConfig]) -> String {
    use hoard_storage::TierKind as Kind;
    let mirrored: Vec<TierConfig<'_>> = tiers
        .iter()
        .map(|t| {
            // Destructured so a field added to the tier configuration cannot be left out
            // of the identity unnoticed.
            let hoard_storage::TierConfig {
                name,
                kind,
                read_only,
                max_entry_size,
                connect_timeout,
                op_timeout,
                // In `trust`: not part of what names a socket without signing settings.
                verify: _,
            } = t;
            TierConfig {
                name,
                kind: match kind {
                    Kind::Memcached { endpoint } => TierKind::Memcached { endpoint },
                    Kind::Redis { endpoint } => TierKind::Redis { endpoint },
                    Kind::S3 {
                        bucket,
                        endpoint,
                        region,
                        prefix,
                    } => TierKind::S3 {
                        bucket,
                        endpoint: endpoint.as_ref(),
                        region: region.as_ref(),
                        prefix: prefix.as_ref(),
                    },
                    Kind::Webdav { endpoint } => TierKind::Webdav { endpoint },
                    Kind::SharedDir { path } => TierKind::SharedDir { path },
                    Kind::Azure {
                        container,
                        connection_string,
                        account_name,
                        account_key,
                        endpoint,
                        prefix,
                    } => TierKind::Azure {
                        container,
                        connection_string: connection_string.as_ref(),
                        account_name: account_name.as_ref(),
                        account_key: account_key.as_ref(),
                        endpoint: endpoint.as_ref(),
                        prefix: prefix.as_ref(),
                    },
                    Kind::Gcs {
                        bucket,
                        endpoint,
                        key_path,
                        prefix,
                    } => TierKind::Gcs {
                        bucket,
                        endpoint: endpoint.as_ref(),
                        key_path: key_path.as_ref(),
                        prefix: prefix.as_ref(),
                    },
                    Kind::Reapi {
                        endpoint,
                        instance,
                        headers,
                        tls_ca,
                        tls_client_cert,
                        tls_client_key,
                    } => TierKind::Reapi {
                        endpoint,
                        instance: instance.as_ref(),
                        headers,
                        tls_ca: tls_ca.as_ref(),
                        tls_client_cert: tls_client_cert.as_ref(),
                        tls_client_key: tls_client_key.as_ref(),
                    },
                    Kind::Gha {
                        version,
                        results_url,
                        token: _,
                    } => TierKind::Gha {
                        version,
                        results_url: results_url.as_ref(),
                    },
                },
                read_only: *read_only,
                max_entry_size: *max_entry_size,
                connect_timeout: *connect_timeout,
                op_timeout: *op_timeout,
            }
        })
        .collect();
    format!("{mirrored:?}")
}

#[cfg(test)]
mod tests {
    use hoard_storage::{TierConfig, TierKind};

    fn redis(endpoint: &str) -> TierConfig {
        TierConfig::new(TierKind::Redis {
            endpoint: endpoint.to_owned(),
        })
    }

    #[test]
    fn the_socket_identity_is_the_text_the_derived_debug_printed() {
        // What `format!("{tiers:?}")` gave before `TierKind`'s `Debug` hid credentials: the
        // same bytes keep the same socket names across the upgrade.
        let s3 = TierConfig::new(TierKind::S3 {
            bucket: "b".into(),
            endpoint: Some("http://K:S@h".into()),
            region: None,
            prefix: Some("p".into()),
        });
        assert_eq!(
            super::tiers(&[redis("redis://alice:pw@h:1"), s3]),
            "[TierConfig { name: \"redis\", kind: Redis { endpoint: \"redis://alice:pw@h:1\" }, \
             read_only: false, max_entry_size: None, connect_timeout: 200ms, op_timeout: 1s }, \
             TierConfig { name: \"s3\", kind: S3 { bucket: \"b\", endpoint: Some(\"http://K:S@h\"), \
             region: None, prefix: Some(\"p\") }, read_only: false, max_entry_size: None, \
             connect_timeout: 200ms, op_timeout: 1s }]"
        );
    }
}
