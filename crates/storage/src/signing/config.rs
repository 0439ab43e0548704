//! [`trust_from_env`]: `HOARD_SIGNING_KEY`, `HOARD_TRUSTED_KEYS` and `HOARD_VERIFY_TIERS`.

use super::{Signer, SigningError, Trust, TrustedKeys};
use crate::TierConfig;

/// The signing settings are wrong: what and why, naming the variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustConfigError {
    /// `HOARD_SIGNING_KEY` or `HOARD_TRUSTED_KEYS` could not be read or parsed.
    #[error("{var}: {source}")]
    Key {
        /// The variable.
        var: &'static str,
        /// What went wrong.
        #[source]
        source: SigningError,
    },
    /// `HOARD_VERIFY_TIERS` names a tier the chain does not have.
    #[error(
        "HOARD_VERIFY_TIERS names {name:?}, which is not a configured tier (configured: {configured})"
    )]
    UnknownTier {
        /// The name given.
        name: String,
        /// The remote tiers configured, comma separated.
        configured: String,
    },
    /// Tiers are to be verified, but no key is trusted: every entry would be refused.
    #[error(
        "HOARD_VERIFY_TIERS asks to verify {tiers}, but HOARD_TRUSTED_KEYS is not set: every \
         entry would be refused; set HOARD_TRUSTED_KEYS to the writers' public keys"
    )]
    NoTrustedKeys {
        /// The tiers it would verify.
        tiers: String,
    },
}

/// Reads the signing settings through `vars` and marks which of `tiers` are verified:
///
/// * `HOARD_SIGNING_KEY`: the file of this machine's signing key (an OpenSSH ed25519 private
///   key); every entry and manifest it puts into a remote tier is signed;
/// * `HOARD_TRUSTED_KEYS`: the public keys accepted (see [`TrustedKeys::parse`]);
/// * `HOARD_VERIFY_TIERS`: comma list of the tiers whose entries must be signed by a trusted
///   key, or `all` or `none`; by default every remote tier once a key is trusted, none
///   otherwise. The local disk is never verified: it is the user's own.
///
/// Empty variables are unset, as for the tiers.
pub fn trust_from_env(
    vars: impl Fn(&str) -> Option<String>,
    tiers: &mut [TierConfig],
) -> Result<Trust, TrustConfigError> {
    let var = |name: &str| {
        vars(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let signer = var("HOARD_SIGNING_KEY")
        .map(|path| Signer::from_file(std::path::Path::new(&path)))
        .transpose()
        .map_err(|source| TrustConfigError::Key {
            var: "HOARD_SIGNING_KEY",
            source,
        })?;
    let trusted = var("HOARD_TRUSTED_KEYS")
        .map(|value| TrustedKeys::parse(&value))
        .transpose()
        .map_err(|source| TrustConfigError::Key {
            var: "HOARD_TRUSTED_KEYS",
            source,
        })?
        .unwrap_or_default();
    let names: Vec<String> = match var("HOARD_VERIFY_TIERS").as_deref() {
        None if trusted.is_empty() => Vec::new(),
        None | Some("all") => tiers.iter().map(|t| t.name.clone()).collect(),
        Some("none") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase().replace('-', "_"))
            .filter(|n| !n.is_empty())
            .collect(),
    };
    for name in &names {
        if !tiers.iter().any(|t| &t.name == name) {
            return Err(TrustConfigError::UnknownTier {
                name: name.clone(),
                configured: configured(tiers),
            });
        }
    }
    if !names.is_empty() && trusted.is_empty() {
        return Err(TrustConfigError::NoTrustedKeys {
            tiers: names.join(","),
        });
    }
    for tier in tiers.iter_mut() {
        tier.verify = names.contains(&tier.name);
    }
    Ok(Trust { signer, trusted })
}

fn configured(tiers: &[TierConfig]) -> String {
    if tiers.is_empty() {
        return "none".into();
    }
    tiers
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TierKind;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn tiers() -> Vec<TierConfig> {
        vec![
            TierConfig::new(TierKind::Redis {
                endpoint: "redis://127.0.0.1:1".into(),
            }),
            TierConfig::new(TierKind::SharedDir {
                path: PathBuf::from("/tmp/x"),
            }),
        ]
    }

    fn read(vars: &[(&str, &str)], tiers: &mut [TierConfig]) -> Result<Trust, TrustConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        trust_from_env(|name| map.get(name).cloned(), tiers)
    }

    fn verified(tiers: &[TierConfig]) -> Vec<&str> {
        tiers
            .iter()
            .filter(|t| t.verify)
            .map(|t| t.name.as_str())
            .collect()
    }

    #[test]
    fn a_trusted_key_verifies_every_remote_tier_unless_told_which() {
        let dir = tempfile::tempdir().unwrap();
        let line = super::super::keygen(&dir.path().join("k"), "ci").unwrap();
        let mut all = tiers();
        let trust = read(&[("HOARD_TRUSTED_KEYS", &line)], &mut all).unwrap();
        assert_eq!(verified(&all), ["redis", "shared_dir"]);
        assert!(trust.signer.is_none());
        let mut some = tiers();
        read(
            &[
                ("HOARD_TRUSTED_KEYS", &line),
                ("HOARD_VERIFY_TIERS", "shared-dir"),
            ],
            &mut some,
        )
        .unwrap();
        assert_eq!(verified(&some), ["shared_dir"]);
        let mut none = tiers();
        read(
            &[
                ("HOARD_TRUSTED_KEYS", &line),
                ("HOARD_VERIFY_TIERS", "none"),
            ],
            &mut none,
        )
        .unwrap();
        assert!(verified(&none).is_empty());
        let mut unset = tiers();
        read(&[("HOARD_TRUSTED_KEYS", " ")], &mut unset).unwrap();
        assert!(verified(&unset).is_empty());
    }

    #[test]
    fn verifying_without_keys_or_an_unknown_tier_is_an_error_naming_it() {
        let err = read(&[("HOARD_VERIFY_TIERS", "redis")], &mut tiers()).unwrap_err();
        assert!(
            err.to_string().contains("HOARD_TRUSTED_KEYS is not set"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let line = super::super::keygen(&dir.path().join("k"), "ci").unwrap();
        let err = read(
            &[("HOARD_TRUSTED_KEYS", &line), ("HOARD_VERIFY_TIERS", "s3")],
            &mut tiers(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("\"s3\"") && err.to_string().contains("redis,shared_dir"),
            "{err}"
        );
        let err = read(&[("HOARD_SIGNING_KEY", "/nonexistent/key")], &mut tiers()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("HOARD_SIGNING_KEY: read /nonexistent/key"),
            "{err}"
        );
    }
}
