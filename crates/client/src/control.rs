//! The control operations behind `hoard --show-stats`, `--zero-stats`, `--start-server` and
//! `--stop-server`.

use std::time::{Duration, Instant};

use hoard_protocol::{Request, Response, Stats};

use crate::connection::unexpected;
use crate::{ClientConfig, ClientError, Connection};

/// The server's counters, the client events folded in. Starts a server when none runs (so a
/// fresh machine shows zeros rather than an error).
pub async fn stats(config: &ClientConfig) -> Result<Stats, ClientError> {
    let mut connection = Connection::open(config).await?;
    match connection.request(&Request::GetStats).await? {
        Response::Stats { stats } => Ok(stats),
        other => Err(unexpected("GetStats", &other)),
    }
}

/// Resets the counters.
pub async fn zero_stats(config: &ClientConfig) -> Result<(), ClientError> {
    let mut connection = Connection::open(config).await?;
    match connection.request(&Request::ZeroStats).await? {
        Response::Done => Ok(()),
        other => Err(unexpected("ZeroStats", &other)),
    }
}

/// Asks a running server to shut down and waits until its socket is gone. `Ok(false)` when
/// no server was running.
pub async fn stop_server(config: &ClientConfig) -> Result<bool, ClientError> {
    let config = ClientConfig {
        launch: None,
        ..config.clone()
    };
    let mut connection = match Connection::open(&config).await {
        Ok(c) => c,
        Err(ClientError::Connect { source, .. }) if crate::spawn::no_server_behind(&source) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    // Read before asking: the server removes its pid file on the way out.
    let mut pid_file = config.socket_path.clone().into_os_string();
    pid_file.push(".pid");
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    match connection.request(&Request::Shutdown).await? {
        Response::Done => {}
        other => return Err(unexpected("Shutdown", &other)),
    }
    // Stopped means gone: the socket removed (after queued uploads were flushed) and the
    // process exited, so a caller may start a new one or remove the directory at once.
    let started = Instant::now();
    let alive = || pid.is_some_and(process_alive);
    while (config.socket_path.exists() || alive()) && started.elapsed() < config.connect_timeout {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(true)
}

/// Whether process `pid` still runs (a zombie, exited but not yet reaped by whoever started
/// it, does not). Where there is no `/proc`, the socket's removal alone has to do.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may contain spaces.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}
