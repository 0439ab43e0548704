//! Starting a server on demand, exactly once however many wrappers arrive together.

use std::fs::{File, TryLockError};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;

use hoard_protocol::ClientEvent;

use crate::{ClientConfig, ClientError, record_event, server_process, trust};

/// Whether a connect error means nobody is listening (as opposed to, say, a permission
/// problem that starting a server would not fix).
pub(crate) fn no_server_behind(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

/// Starts a server and connects to it. Wrappers serialise on a lock file beside the socket:
/// the first one in starts the server, the rest find it listening when their turn comes. The
/// server itself also refuses to run twice (it holds its own lock), so even a wrapper that
/// gives up waiting cannot cause a second one.
pub(crate) async fn start_and_connect(config: &ClientConfig) -> Result<UnixStream, ClientError> {
    let started = Instant::now();
    let socket = &config.socket_path;
    let io_error = |source| ClientError::Connect {
        socket: socket.clone(),
        source,
    };
    if let Some(dir) = socket.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    // Never created or opened through a symlink, nor one another user owns: in a directory
    // others can write, that would let them have this user create or lock any file.
    let lock = trust::open_own(
        &server_process::sibling(socket, "spawn"),
        File::options().create(true).truncate(false).write(true),
    )?;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        if started.elapsed() > config.connect_timeout {
            return Err(timeout(config, started));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Someone may have started it while we waited for the lock.
    match UnixStream::connect(socket).await {
        Ok(stream) => return Ok(stream),
        Err(e) => clear_the_way(config, &e).await,
    }
    let Some(launch) = &config.launch else {
        return Err(timeout(config, started));
    };
    let mut child = std::process::Command::new(&launch.program)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C aimed at the build does not kill the server.
        .process_group(0)
        .spawn()
        .map_err(|source| ClientError::Spawn {
            program: launch.program.clone(),
            source,
        })?;
    tracing::debug!(pid = child.id(), "started hoard-server");
    let mut pause = Duration::from_micros(500);
    let mut exited_at: Option<Instant> = None;
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => return Ok(stream),
            Err(e) if !no_server_behind(&e) => return Err(io_error(e)),
            Err(_) => {}
        }
        if exited_at.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            // Either another server won the race (its socket appears shortly), or this one
            // failed to start: wait a little, not the whole connect timeout.
            tracing::debug!("hoard-server exited early: {status}");
            exited_at = Some(Instant::now());
        }
        let gave_up = exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500));
        if gave_up || started.elapsed() > config.connect_timeout {
            return Err(timeout(config, started));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Before starting a server: deals with what is in the way of a new one, and counts it.
///
/// * A socket that refuses connections was left by a server that died (a crash, `kill -9`):
///   the new server replaces it. Counted once, by the one wrapper that starts the server.
/// * No socket, but a live server holding the lock (its pid file names a process of this
///   user that holds the lock file open, so it got as far as binding and writing its pid): its
///   socket file was deleted while it ran (a `/tmp` cleaner, a careless `rm`). No client can
///   ever reach it again and no new server can start while it holds the lock, so it is
///   stopped (`SIGTERM`, then `SIGKILL`) and a new one started in its place. Pid and lock
///   files that are not this user's own are never believed (see [`crate::server_process`]).
///
/// Nothing here removes a socket: a listening one of another user is refused by the caller,
/// and the new server replaces a dead one itself, under its lock.
async fn clear_the_way(config: &ClientConfig, connect_error: &std::io::Error) {
    let socket = &config.socket_path;
    match connect_error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(
                "stale socket {} (its server died); replacing it",
                socket.display()
            );
            record_event(
                &config.cache_dir,
                &ClientEvent::CacheError("stale_socket".into()),
            );
        }
        std::io::ErrorKind::NotFound if server_process::lock_held(socket) => {
            let Some(pid) = server_process::verified_server_pid(socket) else {
                // Starting (not yet bound), or not ours to see: wait for it as for any other.
                return;
            };
            tracing::warn!(
                pid,
                "the hoard server runs but its socket {} is gone; replacing it",
                socket.display()
            );
            record_event(
                &config.cache_dir,
                &ClientEvent::CacheError("orphaned_server".into()),
            );
            if let Err(e) = server_process::terminate(socket).await {
                tracing::warn!("cannot stop the orphaned server: {e}");
            }
        }
        _ => {}
    }
}

fn timeout(config: &ClientConfig, started: Instant) -> ClientError {
    ClientError::StartTimeout {
        socket: config.socket_path.clone(),
        waited: started.elapsed(),
    }
}
