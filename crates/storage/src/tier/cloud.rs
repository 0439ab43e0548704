//! OpenDAL operators for the cloud tiers: Azure Blob, GCS and the GitHub Actions cache.

use opendal::{Operator, services};

use super::config::{TierConfig, TierConfigError, TierKind};
use super::operators::{http_layer, invalid};

/// Where entries go inside a bucket or container when no prefix is configured.
const DEFAULT_PREFIX: &str = "/hoard/";

/// The operator for a cloud `config` (Azure, GCS, the Actions cache).
pub(super) fn build(config: &TierConfig) -> Result<Operator, TierConfigError> {
    match &config.kind {
        TierKind::Azure { .. } => build_azure(config),
        TierKind::Gcs { .. } => build_gcs(config),
        TierKind::Gha { .. } => build_gha(config),
        other => Err(not_cloud(config, other)),
    }
}

fn build_azure(config: &TierConfig) -> Result<Operator, TierConfigError> {
    let TierKind::Azure {
        container,
        connection_string,
        account_name,
        account_key,
        endpoint,
        prefix,
    } = &config.kind
    else {
        return Err(not_cloud(config, &config.kind));
    };
    let mut builder = match connection_string {
        Some(connection) => services::Azblob::from_connection_string(connection).map_err(|e| {
            invalid(
                config,
                "HOARD_AZURE_CONNECTION_STRING",
                super::config::MASK,
                &e,
            )
        })?,
        None => services::Azblob::default(),
    };
    builder = builder
        .container(container)
        .root(prefix.as_deref().unwrap_or(DEFAULT_PREFIX));
    if let Some(name) = account_name {
        builder = builder.account_name(name);
    }
    if let Some(key) = account_key {
        builder = builder.account_key(key);
    }
    match endpoint {
        Some(endpoint) => builder = builder.endpoint(endpoint),
        None if connection_string.is_none() => {
            // The connection string carries its own endpoint; otherwise the account's.
            let name = account_name.as_deref().unwrap_or_default();
            builder = builder.endpoint(&format!("https://{name}.blob.core.windows.net"));
        }
        None => {}
    }
    if connection_string.is_none() && account_key.is_none() {
        builder = builder.skip_signature();
    }
    let op = Operator::new(builder).map_err(|e| invalid(config, "container", container, &e))?;
    Ok(op.layer(http_layer(config)?).finish())
}

fn build_gcs(config: &TierConfig) -> Result<Operator, TierConfigError> {
    let TierKind::Gcs {
        bucket,
        endpoint,
        key_path,
        prefix,
    } = &config.kind
    else {
        return Err(not_cloud(config, &config.kind));
    };
    let mut builder = services::Gcs::default()
        .bucket(bucket)
        .root(prefix.as_deref().unwrap_or(DEFAULT_PREFIX));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint(endpoint);
    }
    match key_path {
        Some(path) => builder = builder.credential_path(&path.to_string_lossy()),
        // No credentials anywhere: connect without them (a public bucket, an emulator)
        // instead of waiting on a metadata server that is not there.
        None if !google_credentials_present() => {
            builder = builder.skip_signature().disable_vm_metadata();
        }
        None => {}
    }
    let op = Operator::new(builder).map_err(|e| invalid(config, "bucket", bucket, &e))?;
    Ok(op.layer(http_layer(config)?).finish())
}

/// Whether the usual Google credentials are there: `GOOGLE_APPLICATION_CREDENTIALS`, or the
/// application-default file `gcloud auth application-default login` writes.
fn google_credentials_present() -> bool {
    if std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    let config_dir = std::env::var_os("CLOUDSDK_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config/gcloud"))
        });
    config_dir.is_some_and(|d| d.join("application_default_credentials.json").is_file())
}

fn build_gha(config: &TierConfig) -> Result<Operator, TierConfigError> {
    let TierKind::Gha {
        version,
        results_url,
        token,
    } = &config.kind
    else {
        return Err(not_cloud(config, &config.kind));
    };
    // The namespace: a new HOARD_GHA_VERSION starts a fresh cache.
    let namespace = if version.is_empty() {
        "hoard".to_owned()
    } else {
        format!("hoard-{version}")
    };
    let mut builder = services::Ghac::default()
        .root(DEFAULT_PREFIX)
        .version(&namespace);
    if let Some(url) = results_url {
        builder = builder.endpoint(url);
    }
    if let Some(token) = token {
        builder = builder.runtime_token(token);
    }
    let op = Operator::new(builder).map_err(|e| invalid(config, "ACTIONS_RESULTS_URL", "", &e))?;
    Ok(op.layer(http_layer(config)?).finish())
}

/// A builder was given a kind it does not build (never, as `build` dispatches on it).
fn not_cloud(config: &TierConfig, kind: &TierKind) -> TierConfigError {
    invalid(config, "kind", kind.name(), &"not a cloud tier")
}
