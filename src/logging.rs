//! Logging to a file in the cache directory: never onto the compiler's stderr, which the
//! build must see unchanged.

use std::path::Path;

use tracing_subscriber::EnvFilter;

/// Sends `tracing` events at the `HOARD_LOG` filter (environment or config file; default
/// `warn`) to `dir/file`. The file
/// is opened per event, so a wrapper that logs nothing never touches it.
pub fn init(dir: &Path, file: &str) {
    let filter = crate::config_file::setting("HOARD_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let path = dir.join(file);
    let writer = move || -> Box<dyn std::io::Write> {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(f) => Box::new(f),
            Err(_) => Box::new(std::io::sink()),
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        // A log write that fails (a full disk) must not say so on the build's stderr.
        .log_internal_errors(false)
        .try_init();
}
