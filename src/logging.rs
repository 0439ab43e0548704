//! Logging to a file in the cache directory: never onto the compiler's stderr, which the
//! build must see unchanged.
//!
//! Nothing secret may reach the log, at any level (`HOARD_LOG=trace` included):
//! * the file is created 0600 (an older, wider one is narrowed when next written);
//! * dependencies whose debug output prints credentials are capped ([`DEPENDENCY_CAPS`]),
//!   whatever `HOARD_LOG` asks for;
//! * every line is scrubbed of the configured secrets (endpoint passwords, S3 keys, the server
//!   token, the AWS secret variables) before it is written, for whatever logs them next.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use hoard_storage::tier::config::Scrubber;
use tracing_subscriber::filter::{Directive, LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

/// Targets logged at most at the given level, whatever `HOARD_LOG` says. `reqsign_core`'s
/// credential chain logs each provider's `Debug` at debug level (and at warn when one
/// fails), and the static provider OpenDAL uses for `http://KEY:SECRET@host` S3 endpoints
/// derives `Debug` with the secret key in it. The AWS providers log credential-process
/// command lines and file paths at debug level. OpenDAL, reqwest, hyper and redis were read
/// for the same: their configurations' `Debug` leaves passwords out, and hoard gives them
/// endpoints without userinfo, so they are not capped.
pub const DEPENDENCY_CAPS: &[(&str, LevelFilter)] = &[
    ("reqsign_core", LevelFilter::ERROR),
    ("reqsign_aws_core", LevelFilter::INFO),
    ("reqsign_aws_v4", LevelFilter::INFO),
];

/// Environment variables whose values are secrets hoard does not read itself but hands on
/// (OpenDAL's S3 client reads them).
const SECRET_ENV: &[&str] = &["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// The wrapper's log, in the cache directory (the server's is `server.log`).
pub const WRAPPER_LOG: &str = "hoard.log";

/// Sends `tracing` events at the `HOARD_LOG` filter (environment or config file; default
/// `warn`) to `dir/file`. The file is opened per event, so a wrapper that logs nothing never
/// touches it. A directive the filter cannot read is left out (the configuration's warnings
/// name it: [`bad_directives`]); the rest still apply. A second call does nothing.
pub fn init(dir: &Path, file: &str) {
    let filter = filter(crate::config_file::setting("HOARD_LOG").as_deref());
    let path = dir.join(file);
    let scrubber = Arc::new(configured_scrubber());
    let writer = move || -> Box<dyn Write> {
        match open_private(&path) {
            Ok(file) => Box::new(Scrubbing {
                file,
                scrubber: Arc::clone(&scrubber),
            }),
            Err(_) => Box::new(std::io::sink()),
        }
    };
    let layer = fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        // A log write that fails (a full disk) must not say so on the build's stderr.
        .log_internal_errors(false);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(caps())
        .with(layer)
        .try_init();
}

/// The filter of the directives in `setting` that parse, `warn` when there are none. Written
/// here rather than with `EnvFilter`'s lossy parser, which prints what it drops to stderr:
/// the build's.
fn filter(setting: Option<&str>) -> EnvFilter {
    let good: Vec<&str> = setting
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.parse::<Directive>().is_ok())
        .collect();
    if good.is_empty() {
        return EnvFilter::new("warn");
    }
    EnvFilter::try_new(good.join(",")).unwrap_or_else(|_| EnvFilter::new("warn"))
}

/// The directives of a `HOARD_LOG` filter that `tracing` cannot read, each with the reason.
pub fn bad_directives(setting: &str) -> Vec<(String, String)> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| match d.parse::<Directive>() {
            Ok(_) => None,
            Err(e) => Some((d.to_owned(), e.to_string())),
        })
        .collect()
}

/// [`DEPENDENCY_CAPS`] as a filter that lets everything else through.
fn caps() -> Targets {
    DEPENDENCY_CAPS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, &(target, level)| t.with_target(target, level),
    )
}

/// Opens the log for appending, creating it 0600; a file left wider by an older hoard is
/// narrowed to 0600.
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// What takes every secret the configuration holds out of a log line.
fn configured_scrubber() -> Scrubber {
    let setting = crate::config_file::setting;
    let mut scrubber = Scrubber::default();
    for &(name, secret) in crate::config_report::CREDENTIAL_URLS {
        if let Some(endpoint) = setting(name) {
            scrubber.add_endpoint(endpoint.trim(), secret);
        }
    }
    if let Some(token) = setting("HOARD_SERVER_TOKEN") {
        scrubber.add_secret(&token);
    }
    for var in SECRET_ENV {
        if let Ok(value) = std::env::var(var) {
            scrubber.add_secret(&value);
        }
    }
    scrubber
}

/// The log file, written through a [`Scrubber`]. `tracing`'s formatter writes each event with one
/// `write_all`, so a secret is never split across two writes.
struct Scrubbing {
    file: std::fs::File,
    scrubber: Arc<Scrubber>,
}

impl Write for Scrubbing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if self.scrubber.finds_in(&text) {
            self.file.write_all(self.scrubber.scrub(&text).as_bytes())?;
        } else {
            self.file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_chain_is_silenced_below_error_whatever_hoard_log_says() {
        use tracing::Level;
        let caps = caps();
        assert!(!caps.would_enable("reqsign_core::api", &Level::WARN));
        assert!(caps.would_enable("reqsign_core::api", &Level::ERROR));
        assert!(!caps.would_enable("reqsign_aws_core::provide_credential", &Level::DEBUG));
        assert!(caps.would_enable("hoard_storage::tier::remote", &Level::TRACE));
    }

    #[test]
    fn a_bad_directive_is_named_and_the_good_ones_still_apply() {
        assert_eq!(bad_directives("debug,hoard=trace"), Vec::new());
        let bad = bad_directives("hoard=trace, foo=bar=baz,warn");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, "foo=bar=baz");
        assert!(!bad[0].1.is_empty());
        let shown = filter(Some("hoard=trace,foo=bar=baz")).to_string();
        assert!(shown.contains("hoard=trace"), "{shown}");
        assert_eq!(filter(Some("=,=")).to_string(), "warn");
        assert_eq!(filter(None).to_string(), "warn");
    }

    #[test]
    fn a_line_is_written_scrubbed_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut scrubber = Scrubber::default();
        scrubber.add_secret("hunter2");
        let mut out = Scrubbing {
            file: open_private(&path).unwrap(),
            scrubber: Arc::new(scrubber),
        };
        out.write_all(b"connecting to redis://alice:hunter2@h\n")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "connecting to redis://alice:***@h\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let fresh = dir.path().join("fresh.log");
        drop(open_private(&fresh).unwrap());
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
