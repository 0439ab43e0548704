//! Building the OpenDAL operator of a remote tier (redis, S3, WebDAV, the shared directory's
//! fallback; the cloud tiers in [`super::cloud`]), with the tier's HTTP client, every error
//! scrubbed of the endpoint's credentials.

use opendal::{Operator, services};

use super::config::{TierConfig, TierConfigError, TierKind, check_url};
use super::remote::KEY_ROOT;

/// Builds the OpenDAL operator for `config`. Every error comes back scrubbed of the
/// endpoint's credentials: the builders and OpenDAL quote the endpoint they were given, and
/// these errors end up on stderr and in `server.log`.
pub(super) fn build_operator(config: &TierConfig) -> Result<Operator, TierConfigError> {
    let invalid = |field, value: &str, e: &dyn std::fmt::Display| invalid(config, field, value, e);
    let built = match &config.kind {
        // memcached is reached through hoard's own pooled client ([`Memcached`]).
        TierKind::Memcached { endpoint } => Err(invalid(
            "endpoint",
            endpoint,
            &"memcached is not reached through OpenDAL",
        )),
        // A REAPI server is reached through hoard's gRPC client ([`super::reapi`]).
        TierKind::Reapi { endpoint, .. } => Err(invalid(
            "endpoint",
            endpoint,
            &"a REAPI server is not reached through OpenDAL",
        )),
        TierKind::Redis { endpoint } => build_redis(config, endpoint),
        TierKind::S3 {
            bucket,
            endpoint,
            region,
            prefix,
        } => build_s3(
            config,
            bucket,
            endpoint.as_deref(),
            region.as_deref(),
            prefix.as_deref(),
        ),
        TierKind::Webdav { endpoint } => build_webdav(config, endpoint),
        TierKind::Azure { .. } | TierKind::Gcs { .. } | TierKind::Gha { .. } => {
            super::cloud::build(config)
        }
        TierKind::SharedDir { path } => {
            let root = path.to_string_lossy();
            // Writes go to a unique temporary file in `.tmp` (same file system) and are
            // renamed into place, so concurrent writers and readers never see half an entry.
            let tmp = path.join(".tmp");
            let builder = services::Fs::default()
                .root(&root)
                .atomic_write_dir(&tmp.to_string_lossy());
            Operator::new(builder)
                .map(opendal::OperatorBuilder::finish)
                .map_err(|e| invalid("path", &root, &e))
        }
    };
    built.map_err(|e| e.scrubbed(&config.kind))
}

/// A configuration error on `field` of `config`'s tier.
pub(super) fn invalid(
    config: &TierConfig,
    field: &'static str,
    value: &str,
    e: &dyn std::fmt::Display,
) -> TierConfigError {
    TierConfigError::Invalid {
        tier: config.name.clone(),
        field,
        value: value.to_owned(),
        reason: e.to_string(),
    }
}

/// A redis operator; the URL's user, password and database number are passed apart.
fn build_redis(config: &TierConfig, endpoint: &str) -> Result<Operator, TierConfigError> {
    let invalid = |field, value: &str, e: &dyn std::fmt::Display| invalid(config, field, value, e);
    let url = check_url(
        endpoint,
        &["redis", "rediss", "tcp", "unix", "redis+unix"],
        None,
        false,
    )
    .map_err(|e| invalid("endpoint", endpoint, &e))?;
    let mut builder = services::Redis::default().root(KEY_ROOT);
    // OpenDAL takes the address alone; credentials and the database number that a
    // redis URL carries are passed separately.
    if url.scheme().contains("unix") {
        builder = builder.endpoint(&format!("unix://{}", url.path()));
    } else {
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port().unwrap_or(6379);
        builder = builder.endpoint(&format!("{}://{host}:{port}", url.scheme()));
        let db = url.path().trim_matches('/');
        if !db.is_empty() {
            let db: i64 = db
                .parse()
                .map_err(|e| invalid("endpoint (database number)", endpoint, &e))?;
            builder = builder.db(db);
        }
    }
    if !url.username().is_empty() {
        builder = builder.username(&decode(url.username()));
    }
    if let Some(password) = url.password() {
        builder = builder.password(&decode(password));
    }
    Ok(Operator::new(builder)
        .map_err(|e| invalid("endpoint", endpoint, &e))?
        .finish())
}

/// An S3 operator with the tier's HTTP client.
fn build_s3(
    config: &TierConfig,
    bucket: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
    prefix: Option<&str>,
) -> Result<Operator, TierConfigError> {
    let invalid = |field, value: &str, e: &dyn std::fmt::Display| invalid(config, field, value, e);
    let mut builder = services::S3::default()
        .bucket(bucket)
        .root(prefix.unwrap_or(KEY_ROOT));
    if let Some(endpoint) = endpoint {
        let mut url = check_url(endpoint, &["http", "https"], None, false)
            .map_err(|e| invalid("endpoint", endpoint, &e))?;
        // Credentials in the URL (`http://KEY:SECRET@host`) are used as given, and
        // nothing else is looked for: no environment, no instance metadata service.
        if !url.username().is_empty() {
            builder = builder
                .access_key_id(&decode(url.username()))
                .secret_access_key(&decode(url.password().unwrap_or("")))
                .disable_config_load();
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        builder = builder.endpoint(url.as_str().trim_end_matches('/'));
        // S3-compatible servers rarely care about the region but the signer needs
        // one; AWS's variables still win when set.
        if region.is_none()
            && std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.region("us-east-1");
        }
    }
    if let Some(region) = region {
        builder = builder.region(region);
    }
    let op = Operator::new(builder).map_err(|e| invalid("bucket/region", bucket, &e))?;
    Ok(op.layer(http_layer(config)?).finish())
}

/// A WebDAV operator with the tier's HTTP client; URL credentials are passed apart.
fn build_webdav(config: &TierConfig, endpoint: &str) -> Result<Operator, TierConfigError> {
    let invalid = |field, value: &str, e: &dyn std::fmt::Display| invalid(config, field, value, e);
    let mut url = check_url(endpoint, &["http", "https"], None, false)
        .map_err(|e| invalid("endpoint", endpoint, &e))?;
    let mut builder = services::Webdav::default();
    if !url.username().is_empty() {
        builder = builder.username(&decode(url.username()));
        if let Some(password) = url.password() {
            builder = builder.password(&decode(password));
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    builder = builder.endpoint(url.as_str().trim_end_matches('/'));
    let op = Operator::new(builder).map_err(|e| invalid("endpoint", endpoint, &e))?;
    Ok(op.layer(http_layer(config)?).finish())
}

/// An HTTP client with the tier's connect timeout, for S3 and WebDAV.
pub(super) fn http_layer(
    config: &TierConfig,
) -> Result<opendal::layers::HttpClientLayer, TierConfigError> {
    let client = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .build()
        .map_err(|e| TierConfigError::Invalid {
            tier: config.name.clone(),
            field: "connect_timeout",
            value: format!("{:?}", config.connect_timeout),
            reason: format!("cannot build an HTTP client: {e}"),
        })?;
    Ok(opendal::layers::HttpClientLayer::new(
        opendal::raw::HttpClient::with(client),
    ))
}

/// Percent-decodes a URL user or password.
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
