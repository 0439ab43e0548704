//! The cloud tiers' part of the configuration: Azure Blob, GCS and the GitHub Actions cache,
//! their `HOARD_*` variables, checks, and what of them is secret.

use std::path::PathBuf;

use super::{MASK, TierConfigError, TierKind, check_url};

/// A field's problem: (field, value as it may be shown, reason).
pub(super) type Problem = (&'static str, String, String);

/// The cloud tiers the variables describe (read through `var`, which trims and drops empty
/// values):
///
/// * `HOARD_AZURE_CONTAINER` with `HOARD_AZURE_CONNECTION_STRING` (else
///   `AZURE_STORAGE_CONNECTION_STRING`), or `HOARD_AZURE_ACCOUNT_NAME` (else
///   `AZURE_STORAGE_ACCOUNT`) and `HOARD_AZURE_ACCOUNT_KEY` (else `AZURE_STORAGE_KEY`);
///   `HOARD_AZURE_ENDPOINT`, `HOARD_AZURE_PREFIX`;
/// * `HOARD_GCS_BUCKET` with `HOARD_GCS_ENDPOINT`, `HOARD_GCS_KEY_PATH`, `HOARD_GCS_PREFIX`;
/// * `HOARD_GHA=on` or `HOARD_GHA_VERSION=<namespace>`, reaching the service through the
///   `ACTIONS_RESULTS_URL` and `ACTIONS_RUNTIME_TOKEN` a workflow step exports.
pub(super) fn tiers_from_env(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<TierKind>, TierConfigError> {
    let either = |ours: &str, theirs: &str| var(ours).or_else(|| var(theirs));
    let mut kinds = Vec::new();
    if let Some(container) = var("HOARD_AZURE_CONTAINER") {
        kinds.push(TierKind::Azure {
            container,
            connection_string: either(
                "HOARD_AZURE_CONNECTION_STRING",
                "AZURE_STORAGE_CONNECTION_STRING",
            ),
            account_name: either("HOARD_AZURE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"),
            account_key: either("HOARD_AZURE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"),
            endpoint: var("HOARD_AZURE_ENDPOINT"),
            prefix: var("HOARD_AZURE_PREFIX"),
        });
    }
    if let Some(bucket) = var("HOARD_GCS_BUCKET") {
        kinds.push(TierKind::Gcs {
            bucket,
            endpoint: var("HOARD_GCS_ENDPOINT"),
            key_path: var("HOARD_GCS_KEY_PATH").map(PathBuf::from),
            prefix: var("HOARD_GCS_PREFIX"),
        });
    }
    let version = var("HOARD_GHA_VERSION");
    let enabled = match var("HOARD_GHA") {
        None => version.is_some(),
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(TierConfigError::Invalid {
                    tier: "gha".into(),
                    field: "HOARD_GHA",
                    value,
                    reason: "want 1/0, true/false, yes/no or on/off".into(),
                });
            }
        },
    };
    if enabled {
        kinds.push(TierKind::Gha {
            version: version.unwrap_or_default(),
            results_url: var("ACTIONS_RESULTS_URL"),
            token: var("ACTIONS_RUNTIME_TOKEN"),
        });
    }
    Ok(kinds)
}

/// Checks a cloud kind's fields; other kinds are the caller's.
pub(super) fn validate(kind: &TierKind) -> Result<(), Problem> {
    let url = |field, endpoint: &Option<String>| match endpoint {
        Some(e) => check_url(e, &["http", "https"], None, false)
            .map(|_| ())
            .map_err(|why| (field, kind.shown(e), why.to_string())),
        None => Ok(()),
    };
    match kind {
        TierKind::Azure {
            container,
            connection_string,
            account_name,
            endpoint,
            ..
        } => {
            if container.trim().is_empty() {
                return Err((
                    "container",
                    container.clone(),
                    "the container is empty".into(),
                ));
            }
            if connection_string.is_none() && account_name.is_none() {
                return Err((
                    "HOARD_AZURE_CONNECTION_STRING",
                    String::new(),
                    "set a connection string, or HOARD_AZURE_ACCOUNT_NAME (and its key)".into(),
                ));
            }
            if let Some(connection) = connection_string
                && !connection.contains('=')
            {
                return Err((
                    "HOARD_AZURE_CONNECTION_STRING",
                    MASK.into(),
                    "not a connection string (Key=Value;Key=Value)".into(),
                ));
            }
            url("endpoint", endpoint)
        }
        TierKind::Gcs {
            bucket, endpoint, ..
        } => {
            if bucket.trim().is_empty() {
                return Err(("bucket", bucket.clone(), "the bucket name is empty".into()));
            }
            url("endpoint", endpoint)
        }
        TierKind::Gha {
            results_url, token, ..
        } => {
            let outside = "not set: the GitHub Actions cache is reachable only from a \
                workflow step that exports ACTIONS_RESULTS_URL and ACTIONS_RUNTIME_TOKEN \
                (see docs/ci)";
            if results_url.is_none() {
                return Err(("ACTIONS_RESULTS_URL", String::new(), outside.into()));
            }
            if token.is_none() {
                return Err(("ACTIONS_RUNTIME_TOKEN", String::new(), outside.into()));
            }
            url("ACTIONS_RESULTS_URL", results_url)
        }
        _ => Ok(()),
    }
}

/// The secrets a cloud kind holds outside its endpoint URL.
pub(super) fn secrets(kind: &TierKind) -> Vec<String> {
    match kind {
        TierKind::Azure {
            connection_string,
            account_key,
            ..
        } => {
            let mut secrets: Vec<String> = account_key.iter().cloned().collect();
            if let Some(connection) = connection_string {
                // The key and a SAS token are the secret parts; the whole string too, as it
                // may be quoted whole.
                for part in connection.split(';') {
                    if let Some((name, value)) = part.split_once('=')
                        && matches!(
                            name.trim().to_ascii_lowercase().as_str(),
                            "accountkey" | "sharedaccesssignature"
                        )
                    {
                        secrets.push(value.trim().to_owned());
                    }
                }
                secrets.push(connection.clone());
            }
            secrets
        }
        TierKind::Gha { token, .. } => token.iter().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `Debug` for a cloud kind, its secrets masked.
pub(super) fn debug(kind: &TierKind, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let masked = |secret: &Option<String>| secret.as_ref().map(|_| MASK);
    match kind {
        TierKind::Azure {
            container,
            connection_string,
            account_name,
            account_key,
            endpoint,
            prefix,
        } => f
            .debug_struct("Azure")
            .field("container", container)
            .field("connection_string", &masked(connection_string))
            .field("account_name", account_name)
            .field("account_key", &masked(account_key))
            .field("endpoint", endpoint)
            .field("prefix", prefix)
            .finish(),
        TierKind::Gcs {
            bucket,
            endpoint,
            key_path,
            prefix,
        } => f
            .debug_struct("Gcs")
            .field("bucket", bucket)
            .field("endpoint", endpoint)
            .field("key_path", key_path)
            .field("prefix", prefix)
            .finish(),
        TierKind::Gha {
            version,
            results_url,
            token,
        } => f
            .debug_struct("Gha")
            .field("version", version)
            .field("results_url", results_url)
            .field("token", &masked(token))
            .finish(),
        _ => f.write_str("?"),
    }
}
