//! The server as a process rather than a socket: its pid file and lock file beside the socket,
//! and the signals that stop it when it no longer answers on the socket (it is wedged, or its
//! socket file was deleted while it ran).
//!
//! A pid file alone proves nothing: the server may have died and its pid been reused. So a pid
//! is only ever signalled once it is shown to hold the server's lock file open (an entry of
//! `/proc/<pid>/fd` is that very file, by device and inode). Where that cannot be shown (no
//! `/proc`, another pid namespace), nothing is signalled.

use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server is given to exit after `SIGTERM` before it is sent `SIGKILL`.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// How long a `SIGKILL`ed server may take to be gone.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// `<socket>.<extension>`: the server's files beside its socket.
pub(crate) fn sibling(socket: &Path, extension: &str) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// The lock file a live server holds for as long as it runs.
pub(crate) fn lock_path(socket: &Path) -> PathBuf {
    sibling(socket, "lock")
}

/// Where the server writes its pid.
pub(crate) fn pid_path(socket: &Path) -> PathBuf {
    sibling(socket, "pid")
}

/// The pid the server's pid file names, whatever its state.
pub(crate) fn recorded_pid(socket: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_path(socket))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
}

/// Whether some process holds the server lock of `socket` (a server is running, or starting).
pub(crate) fn lock_held(socket: &Path) -> bool {
    let Ok(lock) = File::options().write(true).open(lock_path(socket)) else {
        return false;
    };
    match lock.try_lock() {
        // Taken only to look: released when `lock` is dropped.
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(e)) => {
            tracing::debug!("cannot test the server lock: {e}");
            false
        }
    }
}

/// The pid of the server of `socket`, when the pid file names a live process that is shown to
/// hold the server's lock file open: the only pid it is safe to signal.
pub(crate) fn verified_server_pid(socket: &Path) -> Option<u32> {
    let pid = recorded_pid(socket)?;
    let lock = std::fs::metadata(lock_path(socket)).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let holds_lock = fds.flatten().any(|fd| {
        // `metadata` follows the fd's link to the open file itself, deleted or not.
        std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == lock.dev() && m.ino() == lock.ino())
    });
    (holds_lock && process_alive(pid)).then_some(pid)
}

/// Whether process `pid` still runs (a zombie, exited but not yet reaped by whoever started
/// it, does not; a stopped one does).
pub(crate) fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may contain spaces.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Sends signal `name` (`TERM`, `CONT`, `KILL`) to `pid` with the system's `kill`: this crate
/// has no unsafe code to call kill(2) with.
fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until `pid` has exited and no process holds the lock of `socket`, for at most
/// `limit`. Whether it did.
async fn wait_gone(pid: u32, socket: &Path, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if !process_alive(pid) && !lock_held(socket) {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Why a server process could not be stopped.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    /// Nothing shows which process the server is: no pid file, or its pid does not hold the
    /// server's lock (or that cannot be seen from here).
    #[error("no pid of a running server could be verified from {pid_file}")]
    Unverified {
        /// The pid file.
        pid_file: PathBuf,
    },
    /// The process outlived `SIGKILL`.
    #[error("the hoard server (pid {pid}) is still running after SIGKILL")]
    Survived {
        /// Its pid.
        pid: u32,
    },
}

/// Stops the server of `socket` with signals: `SIGTERM` (with `SIGCONT`, so a stopped one
/// gets it), then `SIGKILL` after a grace period; then removes the socket and pid file it
/// left, holding its lock meanwhile so that no new server's files are touched. Returns the
/// pid it stopped.
pub(crate) async fn terminate(socket: &Path) -> Result<u32, StopError> {
    let pid = verified_server_pid(socket).ok_or_else(|| StopError::Unverified {
        pid_file: pid_path(socket),
    })?;
    tracing::warn!(pid, "stopping the hoard server with signals");
    signal(pid, "TERM");
    signal(pid, "CONT");
    if !wait_gone(pid, socket, TERM_GRACE).await {
        signal(pid, "KILL");
        if !wait_gone(pid, socket, KILL_GRACE).await {
            return Err(StopError::Survived { pid });
        }
    }
    remove_leftovers(socket);
    Ok(pid)
}

/// Removes the socket and pid file a dead server left, under its lock: a server starting at
/// this moment either holds the lock first (and its files are left alone) or finds it taken
/// and exits, and the next client starts it again.
pub(crate) fn remove_leftovers(socket: &Path) {
    let Ok(lock) = File::options().write(true).open(lock_path(socket)) else {
        return;
    };
    if lock.try_lock().is_ok() {
        for path in [socket.to_path_buf(), pid_path(socket)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}
