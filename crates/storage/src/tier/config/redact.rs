//! Keeping credentials out of what hoard shows: an endpoint such as
//! `redis://alice:hunter2@host:6379` is displayed, logged and put into errors as
//! `redis://alice:***@host:6379`, and the secret parts of every endpoint are known by value so
//! that text from elsewhere (an OpenDAL error echoing the endpoint, a log line) can be scrubbed.
//!
//! The redaction works on the text as given, not on a re-serialised URL: what is shown is
//! exactly what was configured except for the secret, and a malformed endpoint (the case where
//! an error message is most likely to quote it) is redacted as well as a valid one.

/// What replaces a secret.
pub const MASK: &str = "***";

/// Secrets shorter than this are not searched for in free text by [`scrub`]: replacing every
/// `a` of a log line would destroy it, and such a password protects nothing anyway. URL
/// redaction ([`redact_url`]) hides secrets of any length, since it knows where they are.
pub const MIN_SCRUBBED_LEN: usize = 4;

/// Which parts of a URL's userinfo (`user:password@`) are secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Userinfo {
    /// The password only; the user name stays visible (redis, WebDAV, memcached).
    Password,
    /// The user name and the password: an S3 endpoint `http://KEY:SECRET@host` carries the
    /// access key id as its user name.
    All,
}

/// `text` with the secret parts of its userinfo replaced by [`MASK`]; text without userinfo
/// comes back unchanged.
pub fn redact_url(text: &str, secret: Userinfo) -> String {
    let Some(span) = userinfo_span(text) else {
        return text.to_owned();
    };
    let userinfo = &text[span.start..span.at];
    let colon = userinfo.find(':');
    let mut out = String::with_capacity(text.len());
    match (secret, colon) {
        // A user name alone is not a secret here.
        (Userinfo::Password, None) => return text.to_owned(),
        (Userinfo::Password, Some(colon)) => {
            out.push_str(&text[..=(span.start + colon)]);
            out.push_str(MASK);
        }
        (Userinfo::All, _) => {
            out.push_str(&text[..span.start]);
            out.push_str(MASK);
            if colon.is_some() {
                out.push(':');
                out.push_str(MASK);
            }
        }
    }
    out.push_str(&text[span.at..]);
    out
}

/// `text` without its userinfo (`tcp://alice:pw@host:1` becomes `tcp://host:1`).
pub fn without_userinfo(text: &str) -> String {
    match userinfo_span(text) {
        Some(span) => format!("{}{}", &text[..span.start], &text[span.at + 1..]),
        None => text.to_owned(),
    }
}

/// The secret parts of `text`'s userinfo, as written and percent-decoded (clients are given
/// the decoded form, so that is the form an error or a log line would quote). Empty parts
/// are left out.
pub fn url_secrets(text: &str, secret: Userinfo) -> Vec<String> {
    let Some(span) = userinfo_span(text) else {
        return Vec::new();
    };
    let userinfo = &text[span.start..span.at];
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let mut parts = Vec::new();
    if secret == Userinfo::All {
        parts.push(user);
    }
    parts.extend(password);
    let mut secrets = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let decoded = percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned();
        if decoded != part {
            secrets.push(decoded);
        }
        secrets.push(part.to_owned());
    }
    secrets
}

/// `text` with every occurrence of each of `secrets` (of at least [`MIN_SCRUBBED_LEN`]
/// bytes) replaced by [`MASK`]: for text whose structure is unknown, such as a dependency's
/// error message or a log line.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut scrubber = Scrubber::default();
    for secret in secrets {
        scrubber.add_secret(secret);
    }
    scrubber.scrub(text)
}

/// What to take out of free text (an error from a dependency, a log line) that may quote a
/// configuration: each known endpoint, wherever it appears whole, becomes its redacted form
/// (a short password included); then each known secret of at least [`MIN_SCRUBBED_LEN`]
/// bytes, wherever it appears, becomes [`MASK`]. Its `Debug` shows only counts.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Endpoint as given, and as shown; the longest first.
    endpoints: Vec<(String, String)>,
    /// Secrets; the longest first, so one that contains another is replaced whole.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("endpoints", &self.endpoints.len())
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Scrubber {
    /// Takes out `endpoint`'s credentials: the endpoint whole, and its secret parts.
    pub fn add_endpoint(&mut self, endpoint: &str, secret: Userinfo) {
        let shown = redact_url(endpoint, secret);
        if shown == endpoint {
            return;
        }
        self.endpoints.push((endpoint.to_owned(), shown));
        self.endpoints
            .sort_by_key(|(given, _)| std::cmp::Reverse(given.len()));
        for part in url_secrets(endpoint, secret) {
            self.add_secret(&part);
        }
    }

    /// Takes out `secret` (ignored when shorter than [`MIN_SCRUBBED_LEN`]).
    pub fn add_secret(&mut self, secret: &str) {
        if secret.len() >= MIN_SCRUBBED_LEN && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Whether `text` holds anything to take out.
    pub fn finds_in(&self, text: &str) -> bool {
        self.endpoints
            .iter()
            .any(|(given, _)| text.contains(given.as_str()))
            || self.secrets.iter().any(|s| text.contains(s.as_str()))
    }

    /// `text` with everything known taken out.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (given, shown) in &self.endpoints {
            if out.contains(given.as_str()) {
                out = out.replace(given.as_str(), shown);
            }
        }
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }
}

/// Where the userinfo of `text` is: `text[start..at]`, with `text[at] == '@'`.
struct Span {
    start: usize,
    at: usize,
}

/// Finds the userinfo. The authority starts after `://` (or at the start of a bare
/// `user:pw@host:port`). When the URL parser accepts the text, the authority ends where it
/// says (at the first `/`, `?`, `#` or, for special schemes, `\`) and the userinfo at the last
/// `@` in it, so an `@` in a path is left alone. When the text is malformed, the userinfo is
/// taken to end at the last `@` anywhere after the scheme: that may hide more than the
/// secret, never less.
fn userinfo_span(text: &str) -> Option<Span> {
    let start = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[start..];
    let well_formed = url::Url::parse(text).is_ok() && start > 0;
    let authority = if well_formed {
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        &rest[..end]
    } else {
        rest
    };
    let at = authority.rfind('@')?;
    Some(Span {
        start,
        at: start + at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwords_are_hidden_and_user_names_kept() {
        let cases = [
            (
                "redis://alice:hunter2@127.0.0.1:6379",
                "redis://alice:***@127.0.0.1:6379",
            ),
            ("rediss://:pw@h:1/2", "rediss://:***@h:1/2"),
            ("tcp://bob:pw@mc:11211", "tcp://bob:***@mc:11211"),
            ("bob:pw@mc:11211", "bob:***@mc:11211"),
            (
                "https://dav:p%40ss@dav.example/me@corp/",
                "https://dav:***@dav.example/me@corp/",
            ),
            ("redis://alice:hunter2@[bad", "redis://alice:***@[bad"),
            ("redis://alice:pa/ss@host", "redis://alice:***@host"),
            ("redis://alice@host", "redis://alice@host"),
            ("http://host/a@b", "http://host/a@b"),
            ("/tmp/a@b", "/tmp/a@b"),
            ("tcp://127.0.0.1:11211", "tcp://127.0.0.1:11211"),
        ];
        for (given, shown) in cases {
            assert_eq!(redact_url(given, Userinfo::Password), shown, "{given}");
        }
    }

    #[test]
    fn s3_keys_are_hidden_both() {
        assert_eq!(
            redact_url("http://AKIA1:s3cr3t@minio:9000", Userinfo::All),
            "http://***:***@minio:9000"
        );
        assert_eq!(
            url_secrets("http://AKIA1:s3%2Fcr3t@minio:9000", Userinfo::All),
            ["AKIA1", "s3/cr3t", "s3%2Fcr3t"]
        );
        assert_eq!(
            without_userinfo("tcp://a:b@mc:1"),
            "tcp://mc:1",
            "the address alone"
        );
    }

    #[test]
    fn a_quoted_endpoint_loses_even_a_short_password() {
        let mut scrubber = Scrubber::default();
        scrubber.add_endpoint("redis://al:pw@h:1", Userinfo::Password);
        scrubber.add_endpoint("tcp://127.0.0.1:1", Userinfo::Password);
        scrubber.add_secret("tok-1234");
        let text = "endpoint is invalid, context: { endpoint: redis://al:pw@h:1 } tok-1234";
        assert!(scrubber.finds_in(text));
        assert_eq!(
            scrubber.scrub(text),
            "endpoint is invalid, context: { endpoint: redis://al:***@h:1 } ***"
        );
        assert!(!scrubber.finds_in("nothing here"));
        assert_eq!(
            format!("{scrubber:?}"),
            "Scrubber { endpoints: 1, secrets: 1 }"
        );
    }

    #[test]
    fn scrubbing_replaces_long_enough_secrets_anywhere() {
        let secrets = vec!["hunter2".to_owned(), "x".to_owned()];
        assert_eq!(
            scrub("endpoint: redis://a:hunter2@x, again hunter2", &secrets),
            "endpoint: redis://a:***@x, again ***"
        );
    }

    #[test]
    fn a_tier_configuration_debugs_and_errs_without_its_secrets() {
        use crate::tier::config::{TierConfig, TierKind, tiers_from_env};
        let tiers = [
            TierKind::Redis {
                endpoint: "redis://alice:hunter2@h:1".into(),
            },
            TierKind::Webdav {
                endpoint: "http://dav:davpass1@h/".into(),
            },
            TierKind::Memcached {
                endpoint: "tcp://mc:mcpass1@h:1".into(),
            },
            TierKind::S3 {
                bucket: "b".into(),
                endpoint: Some("http://AKIAKEY:s3secret@h:1".into()),
                region: None,
                prefix: None,
            },
        ];
        for kind in tiers {
            let shown = format!("{:?}", TierConfig::new(kind.clone()));
            for secret in kind.secrets() {
                assert!(!shown.contains(&secret), "{shown}");
            }
        }
        let err = tiers_from_env(|name| {
            (name == "HOARD_REDIS_ENDPOINT").then(|| "redis://alice:hunter2@[bad".to_owned())
        })
        .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("hunter2") && text.contains("alice"),
            "{text}"
        );
    }

    fn encoded(s: &str) -> String {
        const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        percent_encoding::utf8_percent_encode(s, USERINFO).to_string()
    }

    proptest! {
        /// Any well-formed URL with a password comes back as the same URL with the password
        /// replaced: same scheme, user, host, port and path, and no trace of the password.
        #[test]
        fn a_url_with_userinfo_round_trips_without_its_password(
            scheme in prop::sample::select(vec!["redis", "rediss", "tcp", "http", "https", "memcached"]),
            user in "[a-z0-9]{0,8}",
            password in "Zq[ -~]{1,16}",
            host in "[a-z]{1,10}(\\.[a-z]{1,6})?",
            port in prop::option::of(1u16..),
            path in "(/[a-z@]{0,6}){0,3}",
        ) {
            let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
            let given = format!("{scheme}://{user}:{}@{host}{port_text}{path}", encoded(&password));
            let shown = redact_url(&given, Userinfo::Password);
            prop_assert!(!shown.contains(&password) && !shown.contains(&encoded(&password)), "{shown}");
            prop_assert_eq!(&shown, &format!("{scheme}://{user}:***@{host}{port_text}{path}"));
            let parsed = url::Url::parse(&shown).expect("still a URL");
            prop_assert_eq!(parsed.username(), user.as_str());
            prop_assert_eq!(parsed.password(), Some(MASK));
            prop_assert!(url_secrets(&given, Userinfo::Password).contains(&password));
            let all = redact_url(&given, Userinfo::All);
            prop_assert!(!all.contains(&password), "{all}");
        }

        /// Whatever the text, well-formed or not, what redaction leaves in the userinfo's
        /// secret places is the mask and nothing else.
        #[test]
        fn no_text_keeps_its_secrets(text in "[a-zZ:/@%\\[\\]?#0-9.]{0,40}") {
            for mode in [Userinfo::Password, Userinfo::All] {
                let shown = redact_url(&text, mode);
                for left in url_secrets(&shown, mode) {
                    prop_assert_eq!(left.as_str(), MASK, "{} -> {}", text, shown);
                }
            }
        }

        /// Text without an `@` has no userinfo and is never changed.
        #[test]
        fn text_without_userinfo_is_unchanged(text in "[^@]{0,40}") {
            prop_assert_eq!(redact_url(&text, Userinfo::All), text.clone());
            prop_assert!(url_secrets(&text, Userinfo::All).is_empty());
        }
    }
}
