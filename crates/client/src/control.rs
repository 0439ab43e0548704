//! The control operations behind `hoard --show-stats`, `--zero-stats`, `--start-server` and
//! `--stop-server`.

use std::time::{Duration, Instant};

use hoard_protocol::{Request, Response, Stats};

use crate::connection::unexpected;
use crate::server_process::{self, ServerProcess, StopError};
use crate::spawn::no_server_behind;
use crate::{ClientConfig, ClientError, Connection, wedged};

/// The server's counters, the client events folded in. Starts a server when none runs (so a
/// fresh machine shows zeros rather than an error).
pub async fn stats(config: &ClientConfig) -> Result<Stats, ClientError> {
    let mut connection = Connection::open(config).await?;
    match connection.request(&Request::GetStats).await? {
        Response::Stats { stats } => {
            wedged::forget(&config.cache_dir);
            Ok(*stats)
        }
        other => Err(unexpected("GetStats", &other)),
    }
}

/// Resets the counters.
pub async fn zero_stats(config: &ClientConfig) -> Result<(), ClientError> {
    let mut connection = Connection::open(config).await?;
    match connection.request(&Request::ZeroStats).await? {
        Response::Done => {
            wedged::forget(&config.cache_dir);
            Ok(())
        }
        other => Err(unexpected("ZeroStats", &other)),
    }
}

/// How long a server that took `Shutdown` is given to exit before it is sent signals: it
/// first finishes its queued uploads, which it bounds at 10 s itself.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// What [`stop_server`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// No server was running.
    NotRunning,
    /// The server took `Shutdown` and its process exited. `pid` is `None` when the process
    /// cannot be seen from here (another pid namespace): then its socket was removed.
    Exited {
        /// Its pid.
        pid: Option<u32>,
    },
    /// The server was ended with a signal: it did not exit within `waited` of taking
    /// `Shutdown`, or it did not take it (wedged, or its socket was deleted).
    Signalled {
        /// Its pid.
        pid: u32,
        /// The signal that ended it (`SIGTERM`, `SIGKILL`).
        signal: &'static str,
        /// How long it was given after `Shutdown` (zero when it never took it).
        waited: Duration,
    },
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRunning => write!(f, "no hoard server was running"),
            Self::Exited { pid: Some(pid) } => write!(f, "hoard server stopped (pid {pid})"),
            Self::Exited { pid: None } => write!(f, "hoard server stopped"),
            Self::Signalled {
                pid,
                signal,
                waited,
            } if waited.is_zero() => write!(
                f,
                "hoard server stopped: pid {pid} did not take Shutdown and was ended with {signal}"
            ),
            Self::Signalled {
                pid,
                signal,
                waited,
            } => write!(
                f,
                "hoard server stopped: pid {pid} took Shutdown but had not exited after {}s, \
                 and was ended with {signal}",
                waited.as_secs()
            ),
        }
    }
}

/// Stops the running server and returns only once its process is gone.
///
/// It is asked first (`Shutdown`: it flushes queued uploads, removes its socket and exits),
/// and then waited for: the process the kernel named as the socket's listener, held by a
/// pidfd from before the request. One that has not exited 15 s later (threads
/// blocked in the kernel) is ended with `SIGTERM`, then `SIGKILL`. A server that does not
/// answer (stopped, deadlocked), or runs with its socket file deleted, is stopped with signals
/// at once, aimed at the pid in its pid file only once that process is shown to be the server
/// (a process of this user holding the server's own lock file open, both pid and lock file
/// this user's own regular files); its socket and pid file are then removed, so the next
/// client starts a new server at once.
///
/// A server of another user on the socket is refused ([`ClientError::UntrustedServer`]):
/// nothing is sent to it and nothing is signalled.
pub async fn stop_server(config: &ClientConfig) -> Result<Stopped, ClientError> {
    let config = ClientConfig {
        launch: None,
        ..config.clone()
    };
    let socket = &config.socket_path;
    let (process, asked) = ask_to_stop(&config).await;
    let refusal = match asked {
        Ok(()) => {
            let stopped = if let Some(process) = process {
                stopped_after_shutdown(&process, socket).await?
            } else {
                // Its process cannot be seen from here: its socket going is all we see.
                let started = Instant::now();
                while socket.exists() && started.elapsed() < SHUTDOWN_GRACE {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Stopped::Exited { pid: None }
            };
            wedged::forget(&config.cache_dir);
            return Ok(stopped);
        }
        Err(e) if config.server_addr.is_some() => return Err(e),
        // Another user's server: never signalled, never asked.
        Err(e @ (ClientError::UntrustedServer { .. } | ClientError::PeerUnknown { .. })) => {
            return Err(e);
        }
        Err(ClientError::Connect { source, .. })
            if no_server_behind(&source)
                && !(server_process::lock_held(socket)
                    && server_process::verified_server_pid(socket).is_some()) =>
        {
            // No socket, or a dead server's: nothing runs.
            wedged::forget(&config.cache_dir);
            return Ok(Stopped::NotRunning);
        }
        Err(e) => e,
    };
    tracing::warn!("the hoard server did not take Shutdown ({refusal}); using signals");
    let ended = match process {
        // The listener the kernel named (our uid) did not answer: it is the one to end.
        Some(process) => process
            .end()
            .await
            .map(|signal| (process.pid(), signal))
            .inspect(|_| server_process::remove_leftovers(socket)),
        None => server_process::terminate(socket).await,
    };
    match ended {
        Ok((pid, signal)) => {
            wedged::forget(&config.cache_dir);
            Ok(Stopped::Signalled {
                pid,
                signal,
                waited: Duration::ZERO,
            })
        }
        // Nothing to signal: say why the polite way failed.
        Err(StopError::Unverified { .. }) => Err(refusal),
        Err(e) => Err(ClientError::Stop(e)),
    }
}

/// Waits for a server that took `Shutdown` to exit, and ends it if it lingers.
async fn stopped_after_shutdown(
    process: &ServerProcess,
    socket: &std::path::Path,
) -> Result<Stopped, ClientError> {
    if process.wait_exit(SHUTDOWN_GRACE).await {
        return Ok(Stopped::Exited {
            pid: Some(process.pid()),
        });
    }
    tracing::warn!(
        pid = process.pid(),
        "the hoard server took Shutdown but is still running after {SHUTDOWN_GRACE:?}"
    );
    let signal = process.end().await.map_err(ClientError::Stop)?;
    server_process::remove_leftovers(socket);
    Ok(Stopped::Signalled {
        pid: process.pid(),
        signal,
        waited: SHUTDOWN_GRACE,
    })
}

/// Connects (never starting a server) and asks for `Shutdown`. Also returns the server's
/// process, held from before the request, when the connection was made and the kernel named
/// a process of ours.
async fn ask_to_stop(config: &ClientConfig) -> (Option<ServerProcess>, Result<(), ClientError>) {
    let mut connection = match Connection::open_pipelined(config).await {
        Ok(connection) => connection,
        Err(e) => return (None, Err(e)),
    };
    // The kernel named the listener, of our uid; checked again on the process held, in case
    // the listener's creator is gone and its pid reused.
    let process = connection
        .server_pid()
        .and_then(ServerProcess::open)
        .filter(|process| crate::trust::process_is_own(process.pid()));
    let asked = async {
        connection.negotiate().await?;
        match connection.request(&Request::Shutdown).await? {
            Response::Done => Ok(()),
            other => Err(unexpected("Shutdown", &other)),
        }
    }
    .await;
    (process, asked)
}
