//! The accept loops, one task per listener, so that a TCP listener in trouble (out of
//! descriptors, a flood) never delays the Unix socket's wrappers. Accept errors back off
//! (10 ms, doubling to 1 s) instead of being retried at once: an `EMFILE` retried in a loop
//! spins the CPU and, logging each failure, the disk.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};

use crate::gateway::{Gate, Ticket};
use crate::peer::Peer;
use crate::shared::Shared;

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The pause after each accept error in a row.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    failures: u64,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
            failures: 0,
        }
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting again");
        }
        *self = Backoff::new();
    }

    /// Counts a failure; how long to wait before the next try.
    fn pause(&mut self) -> Duration {
        self.failures += 1;
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        pause
    }

    /// Logs the error (at warn level once per streak) and waits before the next try.
    async fn failed(&mut self, what: &str, e: &std::io::Error) {
        let pause = self.pause();
        if self.failures == 1 {
            tracing::warn!("{what} accept failed: {e}; backing off");
        } else {
            tracing::debug!("{what} accept failed again: {e}");
        }
        tokio::time::sleep(pause).await;
    }
}

/// Serves local clients from `listener` until the task is aborted.
pub(crate) async fn unix(listener: UnixListener, shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff.succeeded();
                let uid = stream.peer_cred().ok().map(|c| c.uid());
                spawn_connection(&shared, stream, Peer::Local { uid }, None);
            }
            Err(e) => backoff.failed("Unix socket", &e).await,
        }
    }
}

/// Serves TCP clients from `listener`, within `gate`'s caps, until the task is aborted.
pub(crate) async fn tcp(listener: TcpListener, shared: Arc<Shared>, gate: Arc<Gate>) {
    let mut backoff = Backoff::new();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                backoff.succeeded();
                let Some(ticket) = gate.admit() else {
                    // Closed at once: the connection cap is reached.
                    tracing::debug!(%addr, "TCP connection refused: too many connections");
                    drop(stream);
                    let refused = crate::stats::PeerRefusal::ConnectionCap;
                    shared.stats.connections.refused(refused);
                    continue;
                };
                // Requests are small and latency-bound: never wait to fill a packet.
                let _ = stream.set_nodelay(true);
                spawn_connection(&shared, stream, Peer::Remote { addr }, Some(ticket));
            }
            Err(e) => backoff.failed("TCP", &e).await,
        }
    }
}

fn spawn_connection<S>(shared: &Arc<Shared>, stream: S, peer: Peer, ticket: Option<Ticket>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = shared.clone();
    shared.active.fetch_add(1, Ordering::SeqCst);
    shared.touch();
    tokio::spawn(async move {
        crate::connection::serve_connection(stream, peer, ticket, &shared).await;
        shared.touch();
        shared.active.fetch_sub(1, Ordering::SeqCst);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_to_a_second_and_reset_on_success() {
        let mut backoff = Backoff::new();
        let waits: Vec<u128> = (0..9).map(|_| backoff.pause().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.next, FIRST_BACKOFF);
    }
}
