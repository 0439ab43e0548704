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

use hoard_storage::tier::config::{MIN_SCRUBBED_LEN, scrub, url_secrets};
use tracing_subscriber::filter::{LevelFilter, Targets};
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

/// Sends `tracing` events at the `HOARD_LOG` filter (environment or config file; default
/// `warn`) to `dir/file`. The file is opened per event, so a wrapper that logs nothing never
/// touches it.
pub fn init(dir: &Path, file: &str) {
    let filter = crate::config_file::setting("HOARD_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let path = dir.join(file);
    let secrets = Arc::new(configured_secrets());
    let writer = move || -> Box<dyn Write> {
        match open_private(&path) {
            Ok(file) => Box::new(Scrubbing {
                file,
                secrets: Arc::clone(&secrets),
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

/// Every secret the configuration holds, as it could appear in a log line.
fn configured_secrets() -> Vec<String> {
    let setting = crate::config_file::setting;
    let mut secrets: Vec<String> = crate::config_report::CREDENTIAL_URLS
        .iter()
        .filter_map(|&(name, secret)| setting(name).map(|v| url_secrets(&v, secret)))
        .flatten()
        .collect();
    secrets.extend(setting("HOARD_SERVER_TOKEN"));
    secrets.extend(SECRET_ENV.iter().filter_map(|v| std::env::var(v).ok()));
    secrets.retain(|s| s.len() >= MIN_SCRUBBED_LEN);
    secrets
}

/// The log file, written through [`scrub`]. `tracing`'s formatter writes each event with one
/// `write_all`, so a secret is never split across two writes.
struct Scrubbing {
    file: std::fs::File,
    secrets: Arc<Vec<String>>,
}

impl Write for Scrubbing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if self.secrets.iter().any(|s| text.contains(s.as_str())) {
            self.file
                .write_all(scrub(&text, &self.secrets).as_bytes())?;
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
    fn a_line_is_written_scrubbed_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut out = Scrubbing {
            file: open_private(&path).unwrap(),
            secrets: Arc::new(vec!["hunter2".to_owned()]),
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
