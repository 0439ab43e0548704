//! Settings that are set but change nothing: an S3 region with no bucket, a memcached limit
//! with no memcached, a TLS file for a REAPI endpoint that is not configured. Each is a
//! warning naming what it needs, never an error: the configuration still works, just not as
//! its author hoped. One table says what every such setting needs ([`RULES`]).

use hoard_storage::{TierConfig, TierKind};

use crate::config_file::{Origin, key_of};

/// What a setting needs to have an effect.
#[derive(Debug, Clone, Copy)]
enum Needs {
    /// At least one of these settings.
    AnyOf(&'static [&'static str]),
    /// This setting unset.
    Unset(&'static str),
    /// This setting not at one of these values (compared without case).
    NotAt(&'static str, &'static [&'static str]),
    /// A remote tier, of any kind.
    RemoteTier,
    /// A remote tier other than memcached (whose limit has a setting of its own).
    NonMemcachedTier,
}

/// Settings that need the same thing, and what.
struct Rule {
    settings: &'static [&'static str],
    needs: Needs,
    /// Whether only an "on" value is ineffective (an "off" asks for nothing).
    only_when_on: bool,
}

const OFF: &[&str] = &["0", "false", "no", "off"];
const ON: &[&str] = &["1", "true", "yes", "on"];

/// Every setting that can be set in vain, with what it needs.
const RULES: &[Rule] = &[
    Rule {
        settings: &["HOARD_S3_ENDPOINT", "HOARD_S3_REGION", "HOARD_S3_PREFIX"],
        needs: Needs::AnyOf(&["HOARD_S3_BUCKET"]),
        only_when_on: false,
    },
    Rule {
        settings: &["HOARD_MEMCACHED_MAX_ENTRY"],
        needs: Needs::AnyOf(&["HOARD_MEMCACHED_ENDPOINT"]),
        only_when_on: false,
    },
    Rule {
        settings: &[
            "HOARD_REAPI_INSTANCE",
            "HOARD_REAPI_HEADERS",
            "HOARD_REAPI_TLS_CA",
            "HOARD_REAPI_TLS_CLIENT_CERT",
            "HOARD_REAPI_TLS_CLIENT_KEY",
        ],
        needs: Needs::AnyOf(&["HOARD_REAPI_ENDPOINT"]),
        only_when_on: false,
    },
    Rule {
        settings: &[
            "HOARD_GCS_ENDPOINT",
            "HOARD_GCS_KEY_PATH",
            "HOARD_GCS_PREFIX",
        ],
        needs: Needs::AnyOf(&["HOARD_GCS_BUCKET"]),
        only_when_on: false,
    },
    Rule {
        settings: &[
            "HOARD_AZURE_CONNECTION_STRING",
            "HOARD_AZURE_ACCOUNT_NAME",
            "HOARD_AZURE_ACCOUNT_KEY",
            "HOARD_AZURE_ENDPOINT",
            "HOARD_AZURE_PREFIX",
        ],
        needs: Needs::AnyOf(&["HOARD_AZURE_CONTAINER"]),
        only_when_on: false,
    },
    Rule {
        settings: &["HOARD_GHA_VERSION"],
        needs: Needs::NotAt("HOARD_GHA", OFF),
        only_when_on: false,
    },
    Rule {
        settings: &["HOARD_REMOTE_MAX_ENTRY"],
        needs: Needs::NonMemcachedTier,
        only_when_on: false,
    },
    Rule {
        settings: &[
            "HOARD_TIER_ORDER",
            "HOARD_READ_ONLY_TIERS",
            "HOARD_PREFETCH",
            "HOARD_SIGNING_KEY",
            "HOARD_TRUSTED_KEYS",
            "HOARD_VERIFY_TIERS",
        ],
        needs: Needs::RemoteTier,
        only_when_on: false,
    },
    // A server started with `hoard-server --listen` uses the token too; the flag is not a
    // setting, so the sentence names it.
    Rule {
        settings: &["HOARD_SERVER_TOKEN"],
        needs: Needs::AnyOf(&["HOARD_SERVER_ADDR", "HOARD_SERVER_LISTEN"]),
        only_when_on: false,
    },
    // A client with a TCP server never starts one.
    Rule {
        settings: &["HOARD_SERVER_BIN"],
        needs: Needs::Unset("HOARD_SERVER_ADDR"),
        only_when_on: false,
    },
    Rule {
        settings: &["HOARD_BASEDIRS"],
        needs: Needs::NotAt("HOARD_PATHS", &["exact"]),
        only_when_on: false,
    },
    // Compressed entries are kept whole: there is no separate large file to link.
    Rule {
        settings: &["HOARD_HARD_LINK"],
        needs: Needs::NotAt("HOARD_LOCAL_COMPRESSION", ON),
        only_when_on: true,
    },
];

/// A setting that is set but has no effect, or that is partly ignored. Shown by
/// `--show-config`, printed once per build by wrappers, and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The setting (`HOARD_S3_REGION`).
    pub setting: &'static str,
    /// Where its value came from.
    pub origin: Origin,
    /// What is wrong, after the setting's place: `is set but has no effect without ...`.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.origin.place(self.setting), self.message)
    }
}

/// The warnings for the settings `vars` reads (non-empty values only), given the remote
/// `tiers` they configure; `origin` says where each value came from.
pub fn warnings(
    vars: &dyn Fn(&str) -> Option<String>,
    tiers: &[TierConfig],
    origin: &dyn Fn(&str) -> Origin,
) -> Vec<ConfigWarning> {
    let set = |name: &str| {
        vars(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut found = Vec::new();
    for rule in RULES {
        for &setting in rule.settings {
            let Some(value) = set(setting) else { continue };
            if rule.only_when_on && !ON.contains(&value.to_ascii_lowercase().as_str()) {
                continue;
            }
            let origin = origin(setting);
            let name = |n: &str| match origin {
                Origin::File { .. } => key_of(n),
                Origin::Environment | Origin::Default => n.to_owned(),
            };
            let missing = match rule.needs {
                Needs::AnyOf(names) => (!names.iter().any(|n| set(n).is_some())).then(|| {
                    let names: Vec<String> = names.iter().map(|n| name(n)).collect();
                    format!("without {}", names.join(" or "))
                }),
                Needs::Unset(other) => set(other).map(|_| format!("while {} is set", name(other))),
                Needs::NotAt(other, values) => set(other)
                    .filter(|v| values.contains(&v.to_ascii_lowercase().as_str()))
                    .map(|v| format!("while {} is {v}", name(other))),
                Needs::RemoteTier => tiers.is_empty().then(|| "without a remote tier".to_owned()),
                Needs::NonMemcachedTier => tiers
                    .iter()
                    .all(|t| matches!(t.kind, TierKind::Memcached { .. }))
                    .then(|| "without a remote tier other than memcached".to_owned()),
            };
            if let Some(missing) = missing {
                let also = if setting == "HOARD_SERVER_TOKEN" {
                    " (or a server started with --listen)"
                } else {
                    ""
                };
                found.push(ConfigWarning {
                    setting,
                    origin,
                    message: format!("is set but has no effect {missing}{also}"),
                });
            }
        }
    }
    found.extend(unconfigured_tiers(&set, tiers, origin));
    found
}

/// Tier lists that name a tier of a kind hoard knows but that is not configured: that name
/// changes nothing (an unknown name is an error, reported by the tiers' own check).
fn unconfigured_tiers(
    set: &dyn Fn(&str) -> Option<String>,
    tiers: &[TierConfig],
    origin: &dyn Fn(&str) -> Origin,
) -> Vec<ConfigWarning> {
    let mut found = Vec::new();
    if tiers.is_empty() {
        // The rule for lists without any tier said it already.
        return found;
    }
    for setting in ["HOARD_TIER_ORDER", "HOARD_READ_ONLY_TIERS"] {
        let Some(list) = set(setting) else { continue };
        let absent: Vec<String> = list
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase().replace('-', "_"))
            .filter(|n| !n.is_empty() && !tiers.iter().any(|t| &t.name == n))
            .collect();
        if !absent.is_empty() {
            let configured: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
            found.push(ConfigWarning {
                setting,
                origin: origin(setting),
                message: format!(
                    "names {}, which {} not configured (configured: {})",
                    absent.join(", "),
                    if absent.len() == 1 { "is" } else { "are" },
                    configured.join(", ")
                ),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn check(vars: &[(&str, &str)], tiers: &[TierConfig]) -> Vec<String> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        warnings(&lookup, tiers, &|_| Origin::Environment)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn tier(kind: TierKind) -> TierConfig {
        TierConfig::new(kind)
    }

    fn memcached() -> TierConfig {
        tier(TierKind::Memcached {
            endpoint: "tcp://h:1".into(),
        })
    }

    #[test]
    fn every_rule_names_settings_the_file_knows() {
        for rule in RULES {
            for name in rule.settings {
                assert!(crate::config_file::SETTINGS.contains(name), "{name}");
            }
            if let Needs::AnyOf(names) = rule.needs {
                for name in names {
                    assert!(crate::config_file::SETTINGS.contains(name), "{name}");
                }
            }
        }
    }

    #[test]
    fn a_tier_extra_without_its_tier_names_what_it_needs() {
        assert_eq!(
            check(&[("HOARD_S3_REGION", "eu-west-1")], &[]),
            ["HOARD_S3_REGION is set but has no effect without HOARD_S3_BUCKET"]
        );
        assert_eq!(
            check(&[("HOARD_MEMCACHED_MAX_ENTRY", "16M")], &[]),
            ["HOARD_MEMCACHED_MAX_ENTRY is set but has no effect without HOARD_MEMCACHED_ENDPOINT"]
        );
        assert_eq!(
            check(
                &[
                    ("HOARD_REAPI_TLS_CA", "/ca.pem"),
                    ("HOARD_AZURE_PREFIX", "p")
                ],
                &[]
            )
            .len(),
            2
        );
        assert!(
            check(
                &[
                    ("HOARD_S3_REGION", "eu-west-1"),
                    ("HOARD_S3_BUCKET", "b"),
                    ("HOARD_MEMCACHED_MAX_ENTRY", "16M"),
                    ("HOARD_MEMCACHED_ENDPOINT", "tcp://h:1"),
                ],
                &[memcached()]
            )
            .is_empty()
        );
    }

    #[test]
    fn empty_values_are_unset_and_never_warned_about() {
        assert!(check(&[("HOARD_S3_REGION", " ")], &[]).is_empty());
        assert_eq!(
            check(
                &[("HOARD_SERVER_TOKEN", "t"), ("HOARD_SERVER_ADDR", "")],
                &[]
            ),
            [
                "HOARD_SERVER_TOKEN is set but has no effect without HOARD_SERVER_ADDR or \
                 HOARD_SERVER_LISTEN (or a server started with --listen)"
            ]
        );
    }

    #[test]
    fn value_conditions_name_the_value_that_cancels_the_setting() {
        assert_eq!(
            check(&[("HOARD_BASEDIRS", "/src"), ("HOARD_PATHS", "Exact")], &[]),
            ["HOARD_BASEDIRS is set but has no effect while HOARD_PATHS is Exact"]
        );
        assert!(check(&[("HOARD_BASEDIRS", "/src")], &[]).is_empty());
        assert_eq!(
            check(
                &[
                    ("HOARD_HARD_LINK", "on"),
                    ("HOARD_LOCAL_COMPRESSION", "yes")
                ],
                &[]
            )
            .len(),
            1
        );
        assert!(
            check(
                &[
                    ("HOARD_HARD_LINK", "off"),
                    ("HOARD_LOCAL_COMPRESSION", "on")
                ],
                &[]
            )
            .is_empty()
        );
        assert_eq!(
            check(&[("HOARD_GHA_VERSION", "v2"), ("HOARD_GHA", "off")], &[]),
            ["HOARD_GHA_VERSION is set but has no effect while HOARD_GHA is off"]
        );
    }

    #[test]
    fn tier_wide_settings_need_a_tier_and_lists_name_configured_ones() {
        assert_eq!(
            check(&[("HOARD_READ_ONLY_TIERS", "s3")], &[]),
            ["HOARD_READ_ONLY_TIERS is set but has no effect without a remote tier"]
        );
        assert_eq!(
            check(&[("HOARD_REMOTE_MAX_ENTRY", "64M")], &[memcached()]),
            [
                "HOARD_REMOTE_MAX_ENTRY is set but has no effect without a remote tier other \
                 than memcached"
            ]
        );
        assert_eq!(
            check(
                &[("HOARD_TIER_ORDER", "redis,memcached,s3")],
                &[memcached()]
            ),
            ["HOARD_TIER_ORDER names redis, s3, which are not configured (configured: memcached)"]
        );
        assert!(check(&[("HOARD_TIER_ORDER", "Memcached")], &[memcached()]).is_empty());
    }

    #[test]
    fn a_warning_about_the_file_names_its_place_and_keys() {
        let lookup = |name: &str| (name == "HOARD_S3_PREFIX").then(|| "p".to_owned());
        let origin = |name: &str| Origin::File {
            path: PathBuf::from("/h/c.toml"),
            key: key_of(name),
            position: crate::config_file::Position {
                line: 4,
                column: 13,
            },
        };
        let found = warnings(&lookup, &[], &origin);
        assert_eq!(
            found[0].to_string(),
            "/h/c.toml:4:13: s3_prefix is set but has no effect without s3_bucket"
        );
    }
}
