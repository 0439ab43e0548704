//! Appending client-side events to the log the server folds into its stats.

use std::io::Write;
use std::path::Path;

use hoard_protocol::{CLIENT_EVENTS_FILE, ClientEvent};

/// Appends `event` to the client events log in `cache_dir`. One `write` of one short line on
/// an `O_APPEND` file, so concurrent wrappers never interleave. Failure to count is logged and
/// otherwise ignored: counting must never fail a build.
pub fn record_event(cache_dir: &Path, event: &ClientEvent) {
    if let Err(e) = try_record_event(cache_dir, event) {
        tracing::warn!(
            "cannot record {event:?} in {}: {e}",
            cache_dir.join(CLIENT_EVENTS_FILE).display()
        );
    }
}

/// [`record_event`], saying whether the line was written, for a caller with another way to
/// have the event counted.
pub fn try_record_event(cache_dir: &Path, event: &ClientEvent) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = cache_dir.join(CLIENT_EVENTS_FILE);
    // Private to this user: a 0700 directory when hoard makes it, a 0600 log.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?
                .write_all(event.to_line().as_bytes())
        })
}
