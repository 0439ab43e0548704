//! The control operations behind `hoard --show-stats`, `--zero-stats`, `--start-server` and
//! `--stop-server`.

use std::time::{Duration, Instant};

use hoard_protocol::{Request, Response, Stats};

use crate::connection::unexpected;
use crate::server_process::{self, StopError, process_alive, recorded_pid};
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

/// Stops the running server and waits until it is gone. `Ok(false)` when no server was
/// running.
///
/// It is asked first (`Shutdown`: it flushes queued uploads and removes its socket). A server
/// that does not answer within the answer timeout (stopped, deadlocked), or that runs with its
/// socket file deleted, is stopped with signals instead: `SIGTERM`, then `SIGKILL`, aimed at
/// the pid in its pid file only once that process is shown to hold the server's lock. Its
/// socket and pid file are then removed, so the next client starts a new server at once.
pub async fn stop_server(config: &ClientConfig) -> Result<bool, ClientError> {
    let config = ClientConfig {
        launch: None,
        ..config.clone()
    };
    let socket = &config.socket_path;
    // Read before asking: the server removes its pid file on the way out.
    let pid = recorded_pid(socket);
    let refusal = match ask_to_stop(&config).await {
        Ok(()) => {
            // Stopped means gone: the socket removed (after queued uploads were flushed) and
            // the process exited, so a caller may start a new one or remove the directory.
            let started = Instant::now();
            let alive = || pid.is_some_and(process_alive);
            while (socket.exists() || alive()) && started.elapsed() < config.connect_timeout {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            wedged::forget(&config.cache_dir);
            return Ok(true);
        }
        Err(e) if config.server_addr.is_some() => return Err(e),
        Err(ClientError::Connect { source, .. })
            if no_server_behind(&source)
                && !(server_process::lock_held(socket)
                    && server_process::verified_server_pid(socket).is_some()) =>
        {
            // No socket, or a dead server's: nothing runs.
            wedged::forget(&config.cache_dir);
            return Ok(false);
        }
        Err(e) => e,
    };
    tracing::warn!("the hoard server did not take Shutdown ({refusal}); using signals");
    match server_process::terminate(socket).await {
        Ok(_) => {
            wedged::forget(&config.cache_dir);
            Ok(true)
        }
        // Nothing to signal: say why the polite way failed.
        Err(StopError::Unverified { .. }) => Err(refusal),
        Err(e) => Err(ClientError::Stop(e)),
    }
}

/// Connects (never starting a server) and asks for `Shutdown`.
async fn ask_to_stop(config: &ClientConfig) -> Result<(), ClientError> {
    let mut connection = Connection::open(config).await?;
    match connection.request(&Request::Shutdown).await? {
        Response::Done => Ok(()),
        other => Err(unexpected("Shutdown", &other)),
    }
}
