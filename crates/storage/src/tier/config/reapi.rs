//! The REAPI tier's part of the configuration: a Bazel remote-cache server (bazel-remote,
//! Buildbarn, BuildGrid, ...) reached over gRPC, its `HOARD_REAPI_*` variables, checks, and
//! what of it is secret (the header values, which carry tokens).

use std::path::PathBuf;

use super::cloud::Problem;
use super::{MASK, TierConfigError, TierKind, check_url};

/// The schemes an endpoint may have: `grpc` is HTTP/2 in the clear, `grpcs` over TLS
/// (`http`/`https` are taken as their synonyms, as Bazel's `--remote_cache` does).
pub(super) const SCHEMES: [&str; 4] = ["grpc", "grpcs", "http", "https"];

/// The REAPI tier the variables describe, read through `var` (which trims and drops empty
/// values): `HOARD_REAPI_ENDPOINT` with `HOARD_REAPI_INSTANCE`, `HOARD_REAPI_HEADERS`,
/// `HOARD_REAPI_TLS_CA`, `HOARD_REAPI_TLS_CLIENT_CERT`, `HOARD_REAPI_TLS_CLIENT_KEY`.
pub(super) fn tier_from_env(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<TierKind>, TierConfigError> {
    let Some(endpoint) = var("HOARD_REAPI_ENDPOINT") else {
        return Ok(None);
    };
    let headers = match var("HOARD_REAPI_HEADERS") {
        Some(text) => parse_headers(&text).map_err(|reason| TierConfigError::Invalid {
            tier: "reapi".into(),
            field: "HOARD_REAPI_HEADERS",
            // The values are tokens: only the names may be shown.
            value: shown_headers(&text),
            reason,
        })?,
        None => Vec::new(),
    };
    Ok(Some(TierKind::Reapi {
        endpoint,
        instance: var("HOARD_REAPI_INSTANCE"),
        headers,
        tls_ca: var("HOARD_REAPI_TLS_CA").map(PathBuf::from),
        tls_client_cert: var("HOARD_REAPI_TLS_CLIENT_CERT").map(PathBuf::from),
        tls_client_key: var("HOARD_REAPI_TLS_CLIENT_KEY").map(PathBuf::from),
    }))
}

/// Parses `Name=Value` (or `Name: Value`) pairs separated by newlines or commas into gRPC
/// metadata: names lowercased (gRPC's rule), values kept as written.
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for pair in text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let split = match (pair.find('='), pair.find(':')) {
            (Some(eq), Some(colon)) => Some(eq.min(colon)),
            (eq, colon) => eq.or(colon),
        };
        let Some(at) = split else {
            return Err(format!(
                "{:?} is not Name=Value (e.g. authorization=Bearer TOKEN)",
                name_of(pair)
            ));
        };
        let (name, value) = (pair[..at].trim(), pair[at + 1..].trim());
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_name {
            return Err(format!(
                "header name {name:?} is not a gRPC metadata name (letters, digits, '-', '_', '.')"
            ));
        }
        let name = name.to_ascii_lowercase();
        if name.ends_with("-bin") {
            return Err(format!(
                "header {name}: binary (-bin) metadata is not supported"
            ));
        }
        if value.is_empty() || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!(
                "header {name}: the value must be printable ASCII and not empty"
            ));
        }
        headers.push((name, value.to_owned()));
    }
    Ok(headers)
}

/// What of a pair may be quoted in an error: its name, not its value.
fn name_of(pair: &str) -> &str {
    pair.split(['=', ':', ' ']).next().unwrap_or_default()
}

/// `HOARD_REAPI_HEADERS` as it may be shown: names kept, every value masked.
pub fn shown_headers(text: &str) -> String {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("{}={MASK}", name_of(p)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks the REAPI kind's fields; other kinds are the caller's.
pub(super) fn validate(kind: &TierKind) -> Result<(), Problem> {
    let TierKind::Reapi {
        endpoint,
        tls_ca,
        tls_client_cert,
        tls_client_key,
        ..
    } = kind
    else {
        return Ok(());
    };
    let url = check_url(endpoint, &SCHEMES, None, false)
        .map_err(|why| ("endpoint", kind.shown(endpoint), why.to_string()))?;
    let tls = matches!(url.scheme(), "grpcs" | "https");
    let given = [
        ("HOARD_REAPI_TLS_CA", tls_ca),
        ("HOARD_REAPI_TLS_CLIENT_CERT", tls_client_cert),
        ("HOARD_REAPI_TLS_CLIENT_KEY", tls_client_key),
    ];
    for (field, path) in given {
        if let Some(path) = path {
            if !tls {
                return Err((
                    field,
                    path.display().to_string(),
                    "TLS files need a grpcs:// endpoint".into(),
                ));
            }
            if !path.is_absolute() {
                return Err((
                    field,
                    path.display().to_string(),
                    "must be an absolute path".into(),
                ));
            }
        }
    }
    if tls_client_cert.is_some() != tls_client_key.is_some() {
        return Err((
            "HOARD_REAPI_TLS_CLIENT_CERT",
            String::new(),
            "mTLS needs both HOARD_REAPI_TLS_CLIENT_CERT and HOARD_REAPI_TLS_CLIENT_KEY".into(),
        ));
    }
    Ok(())
}

/// The header values: the tokens [`super::scrub`] must remove from text that may quote them.
pub(super) fn secrets(kind: &TierKind) -> Vec<String> {
    match kind {
        TierKind::Reapi { headers, .. } => headers.iter().map(|(_, v)| v.clone()).collect(),
        _ => Vec::new(),
    }
}

/// `Debug` for the REAPI kind, its header values masked.
pub(super) fn debug(kind: &TierKind, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let TierKind::Reapi {
        endpoint,
        instance,
        headers,
        tls_ca,
        tls_client_cert,
        tls_client_key,
    } = kind
    else {
        return f.write_str("?");
    };
    let headers: Vec<String> = headers.iter().map(|(n, _)| format!("{n}={MASK}")).collect();
    f.debug_struct("Reapi")
        .field("endpoint", &kind.shown(endpoint))
        .field("instance", instance)
        .field("headers", &headers)
        .field("tls_ca", tls_ca)
        .field("tls_client_cert", tls_client_cert)
        .field("tls_client_key", tls_client_key)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_take_equals_or_colon_separated_by_commas_or_newlines() {
        let parsed =
            parse_headers("Authorization=Bearer a.b.c, x-api-key: k1\nX-Other = v").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("authorization".to_owned(), "Bearer a.b.c".to_owned()),
                ("x-api-key".to_owned(), "k1".to_owned()),
                ("x-other".to_owned(), "v".to_owned()),
            ]
        );
    }

    #[test]
    fn a_header_without_a_value_is_refused_and_the_error_quotes_no_value() {
        let err = parse_headers("authorization Bearer sekrit").unwrap_err();
        assert!(!err.contains("sekrit"), "{err}");
        assert!(parse_headers("authorization=").is_err());
        assert!(parse_headers("bad name=v").is_err());
        assert!(parse_headers("x-bin=v").is_err());
    }

    #[test]
    fn a_bad_headers_variable_names_the_variable_and_masks_values() {
        let vars = |name: &str| match name {
            "HOARD_REAPI_ENDPOINT" => Some("grpc://h:1".to_owned()),
            "HOARD_REAPI_HEADERS" => Some("authorization=sekrit,oops".to_owned()),
            _ => None,
        };
        let err = tier_from_env(&vars).unwrap_err().to_string();
        assert!(err.contains("HOARD_REAPI_HEADERS"), "{err}");
        assert!(!err.contains("sekrit"), "{err}");
    }

    #[test]
    fn the_debug_form_shows_header_names_not_values() {
        let kind = TierKind::Reapi {
            endpoint: "grpcs://h:1".into(),
            instance: Some("main".into()),
            headers: vec![("authorization".into(), "Bearer sekrit".into())],
            tls_ca: None,
            tls_client_cert: None,
            tls_client_key: None,
        };
        let shown = format!("{kind:?}");
        assert!(shown.contains("authorization"), "{shown}");
        assert!(!shown.contains("sekrit"), "{shown}");
    }

    #[test]
    fn tls_files_need_a_tls_endpoint_and_client_cert_and_key_go_together() {
        let kind = |endpoint: &str, ca: Option<&str>, cert: Option<&str>, key: Option<&str>| {
            TierKind::Reapi {
                endpoint: endpoint.into(),
                instance: None,
                headers: Vec::new(),
                tls_ca: ca.map(PathBuf::from),
                tls_client_cert: cert.map(PathBuf::from),
                tls_client_key: key.map(PathBuf::from),
            }
        };
        assert!(validate(&kind("grpc://h:1", None, None, None)).is_ok());
        assert!(validate(&kind("grpcs://h:1", Some("/ca.pem"), None, None)).is_ok());
        assert!(validate(&kind("grpc://h:1", Some("/ca.pem"), None, None)).is_err());
        assert!(validate(&kind("grpcs://h:1", None, Some("/c.pem"), None)).is_err());
        assert!(validate(&kind("grpcs://h:1", None, Some("/c"), Some("/k"))).is_ok());
        assert!(validate(&kind("grpcs://h:1", Some("ca.pem"), None, None)).is_err());
        assert!(validate(&kind("redis://h:1", None, None, None)).is_err());
    }

    proptest! {
        #[test]
        fn parsed_headers_round_trip_through_their_written_form(
            pairs in proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[!-+--~][ -+--~]{0,20}[!-+--~]"), 0..5)
        ) {
            let text = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("\n");
            let parsed = parse_headers(&text).unwrap();
            let expected: Vec<(String, String)> = pairs.iter().map(|(n, v)| (n.clone(), v.trim().to_owned())).collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn header_parsing_never_panics(text in ".{0,200}") {
            let _ = parse_headers(&text);
        }
    }
}
