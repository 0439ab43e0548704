//! The server as a process rather than a socket: its pid file and lock file beside the socket,
//! and the signals that stop it when it no longer answers on the socket (it is wedged, or its
//! socket file was deleted while it ran).
//!
//! A pid file alone proves nothing: the server may have died and its pid been reused, and
//! another user who can write to the socket's directory can plant a pid file naming any
//! process and a lock file "held" by it (a symlink to `/dev/null`, which every daemon holds
//! open). So a pid is only ever signalled when the pid file and the lock file are this user's
//! own regular files (see [`crate::trust::open_own`]), the process runs as this user, and it
//! holds that very lock file open (an entry of `/proc/<pid>/fd` is that file, by device and
//! inode). Where that cannot be shown (no `/proc`, another pid namespace), nothing is
//! signalled. The process is then addressed through a pidfd opened before the checks, so a
//! pid reused in between is never hit.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::trust::{open_own, process_is_own};

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

/// The pid the server's pid file names, whatever its state, when the pid file is this user's
/// own regular file.
pub(crate) fn recorded_pid(socket: &Path) -> Option<u32> {
    let path = pid_path(socket);
    let file = match open_own(&path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(e) => {
            if !e.is_not_found() {
                tracing::warn!("not reading the pid file: {e}");
            }
            return None;
        }
    };
    let mut text = String::new();
    // A pid is a few digits: whatever is longer is not a pid file of ours.
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse::<u32>().ok()
}

/// The server's lock file, when it is this user's own regular file.
fn own_lock(socket: &Path) -> Option<File> {
    match open_own(&lock_path(socket), OpenOptions::new().read(true)) {
        Ok(file) => Some(file),
        Err(e) => {
            if !e.is_not_found() {
                tracing::warn!("not using the server lock: {e}");
            }
            None
        }
    }
}

/// Whether some process holds the server lock of `socket` (a server is running, or starting).
/// A lock file that is not this user's own is taken as no lock at all.
pub(crate) fn lock_held(socket: &Path) -> bool {
    let Some(lock) = own_lock(socket) else {
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

/// Whether process `pid` is the server of `socket`: a process of this user that holds the
/// server's own lock file open.
fn is_server_of(pid: u32, socket: &Path) -> bool {
    let Some(lock) = own_lock(socket).and_then(|f| f.metadata().ok()) else {
        return false;
    };
    if !process_is_own(pid) {
        tracing::warn!(
            pid,
            "the pid file names a process of another user: not signalled"
        );
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        // `metadata` follows the fd's link to the open file itself, deleted or not.
        std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == lock.dev() && m.ino() == lock.ino())
    })
}

/// The pid of the server of `socket`, when the pid file names a live process that is shown to
/// be the server (see [`is_server_of`]): the only pid it is safe to signal.
pub(crate) fn verified_server_pid(socket: &Path) -> Option<u32> {
    let pid = recorded_pid(socket)?;
    (is_server_of(pid, socket) && process_alive(pid)).then_some(pid)
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

/// One process, held by a pidfd where the kernel has them: signals and the wait for its exit
/// reach that process even if its pid is reused meanwhile.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    pid: u32,
    pidfd: Option<OwnedFd>,
}

impl ServerProcess {
    /// Holds process `pid`; `None` when it is gone already.
    pub(crate) fn open(pid: u32) -> Option<Self> {
        let raw = Pid::from_raw(i32::try_from(pid).ok()?)?;
        match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => Some(Self {
                pid,
                pidfd: Some(fd),
            }),
            Err(rustix::io::Errno::SRCH) => None,
            // An old kernel (or a sandbox without the syscall): the pid alone, checked anew
            // before each signal.
            Err(e) => {
                tracing::debug!("pidfd_open({pid}): {e}; using the pid");
                Some(Self { pid, pidfd: None })
            }
        }
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it has exited (a zombie has).
    pub(crate) fn exited(&self) -> bool {
        let Some(fd) = &self.pidfd else {
            return !process_alive(self.pid);
        };
        // A pidfd becomes readable when its process exits.
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let now = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&now)) {
            Ok(ready) => ready > 0,
            Err(_) => !process_alive(self.pid),
        }
    }

    /// Sends `signal`; whether it was delivered.
    fn signal(&self, signal: Signal) -> bool {
        let sent = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            None => match i32::try_from(self.pid).ok().and_then(Pid::from_raw) {
                Some(pid) if process_is_own(self.pid) => rustix::process::kill_process(pid, signal),
                _ => return false,
            },
        };
        sent.is_ok()
    }

    /// Waits until it has exited, for at most `limit`. Whether it did.
    pub(crate) async fn wait_exit(&self, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            if self.exited() {
                return true;
            }
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends it: `SIGTERM` (with `SIGCONT`, so a stopped one gets it), then `SIGKILL` after a
    /// grace period. Returns the signal that ended it.
    pub(crate) async fn end(&self) -> Result<&'static str, StopError> {
        tracing::warn!(pid = self.pid, "stopping the hoard server with signals");
        self.signal(Signal::TERM);
        self.signal(Signal::CONT);
        if self.wait_exit(TERM_GRACE).await {
            return Ok("SIGTERM");
        }
        self.signal(Signal::KILL);
        if self.wait_exit(KILL_GRACE).await {
            return Ok("SIGKILL");
        }
        Err(StopError::Survived { pid: self.pid })
    }
}

/// Why a server process could not be stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// Nothing shows which process the server is: no pid file, or its pid does not hold the
    /// server's lock (or that cannot be seen from here), or the pid file or lock file is not
    /// this user's own.
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

/// Stops the server of `socket` with signals (see [`ServerProcess::end`]), aimed at the pid
/// in its pid file only once that process is shown to be the server; then removes the socket
/// and pid file it left, holding its lock meanwhile so that no new server's files are
/// touched. Returns the pid it stopped and the signal that ended it.
pub(crate) async fn terminate(socket: &Path) -> Result<(u32, &'static str), StopError> {
    let unverified = || StopError::Unverified {
        pid_file: pid_path(socket),
    };
    let pid = recorded_pid(socket).ok_or_else(unverified)?;
    // Held first, checked second: a pid reused after the check is never the one signalled.
    let process = ServerProcess::open(pid).ok_or_else(unverified)?;
    if !is_server_of(pid, socket) || process.exited() {
        return Err(unverified());
    }
    let signal = process.end().await?;
    // Its lock is released with its last descriptor: wait for that too (bounded), so that the
    // leftovers are removed under the lock.
    let started = Instant::now();
    while lock_held(socket) && started.elapsed() < KILL_GRACE {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    remove_leftovers(socket);
    Ok((pid, signal))
}

/// Removes the socket and pid file a dead server left, under its lock: a server starting at
/// this moment either holds the lock first (and its files are left alone) or finds it taken
/// and exits, and the next client starts it again. Only with a lock file of this user's own.
pub(crate) fn remove_leftovers(socket: &Path) {
    let Some(lock) = own_lock(socket) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_holding_its_own_lock_file_is_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let lock = File::create(lock_path(&socket)).unwrap();
        lock.lock().unwrap();
        std::fs::write(pid_path(&socket), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(verified_server_pid(&socket), Some(std::process::id()));
        drop(lock);
    }

    #[test]
    fn a_planted_lock_symlink_never_verifies_the_pid_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        // A process that holds /dev/null open (its stdin), as every daemon does.
        let mut decoy = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::os::unix::fs::symlink("/dev/null", lock_path(&socket)).unwrap();
        std::fs::write(pid_path(&socket), format!("{}\n", decoy.id())).unwrap();
        let null = File::open("/dev/null").unwrap();
        null.lock().unwrap();
        assert!(!lock_held(&socket), "a symlinked lock is no lock");
        assert_eq!(verified_server_pid(&socket), None);
        drop(null);
        decoy.kill().unwrap();
        decoy.wait().unwrap();
    }

    #[test]
    fn a_pid_file_that_is_not_a_regular_file_of_ours_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        std::fs::write(dir.path().join("elsewhere"), "1\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), pid_path(&socket)).unwrap();
        assert_eq!(recorded_pid(&socket), None);
        std::fs::remove_file(pid_path(&socket)).unwrap();
        std::fs::write(pid_path(&socket), "1\n").unwrap();
        assert_eq!(recorded_pid(&socket), Some(1));
    }

    #[tokio::test]
    async fn a_held_process_is_signalled_and_seen_to_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let process = ServerProcess::open(child.id()).unwrap();
        assert!(!process.exited());
        assert!(!process.wait_exit(Duration::from_millis(50)).await);
        assert_eq!(process.end().await.unwrap(), "SIGTERM");
        assert!(process.exited(), "a zombie has exited");
        child.wait().unwrap();
    }
}
