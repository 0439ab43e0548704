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
    match connection.request(&Request::Shutdown).await? {
        Response::Done => {}
        other => return Err(unexpected("Shutdown", &other)),
    }
    let started = Instant::now();
    while config.socket_path.exists() && started.elapsed() < config.connect_timeout {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(true)
}
