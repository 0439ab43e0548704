//! Appending client-side events to the log the server folds into its stats.

use std::io::Write;
use std::path::Path;

use hoard_protocol::{CLIENT_EVENTS_FILE, ClientEvent};

/// Appends `event` to the client events log in `cache_dir`. One `write` of one short line on
/// an `O_APPEND` file, so concurrent wrappers never interleave. Failure to count is logged and
/// otherwise ignored: counting must never fail a build.
pub fn record_event(cache_dir: &Path, event: &ClientEvent) {
    let path = cache_dir.join(CLIENT_EVENTS_FILE);
    let result = std::fs::create_dir_all(cache_dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?
            .write_all(event.to_line().as_bytes())
    });
    if let Err(e) = result {
        tracing::warn!("cannot record {event:?} in {}: {e}", path.display());
    }
}
