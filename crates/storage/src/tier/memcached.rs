//! The memcached tier's client: connections of the `async-memcached` crate, which sets
//! `TCP_NODELAY` and sends each request in one write, kept in a small pool so that a hit
//! costs one round trip on a warm connection.
//!
//! OpenDAL's memcached service (0.57, and still 0.59.5) is not used for this tier: it
//! connects without `TCP_NODELAY` and writes a request's header, key and value as separate
//! small writes, so Nagle's algorithm holds the second write until the server's delayed ACK
//! releases it (~40 ms), and its pool sends a `version` request before every reuse. Every
//! memcached request cost about 44 ms on loopback (issue 19).

use std::sync::{Mutex, PoisonError};

use async_memcached::{AsciiProtocol, Client, Status};

use super::config::{UrlError, check_url};

/// Idle connections kept for reuse. More may be open while requests overlap (one per
/// concurrent request); those past this many are closed when their request ends.
const MAX_IDLE: usize = 16;

/// A memcached request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemcachedError {
    /// Connecting, the request or its answer failed.
    #[error("memcached {op}: {source}")]
    Request {
        /// `get`, `set` or `delete`.
        op: &'static str,
        /// What the client reported (it never quotes the endpoint).
        #[source]
        source: async_memcached::Error,
    },
}

/// A memcached endpoint this client cannot use. The endpoint is not quoted: the caller
/// names it, redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EndpointError {
    /// Not a `tcp` or `unix` URL with a host and port (or a socket path).
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A `tcp` URL whose host or port the URL parser did not give back.
    #[error("no host or no port")]
    NoHostOrPort,
    /// An IPv6 address, which the client cannot connect to.
    #[error("an IPv6 address is not supported for memcached: use an IPv4 address or a host name")]
    Ipv6,
}

/// One memcached server and the connections open to it. Connects on first use, so building
/// one touches no network.
pub(crate) struct Memcached {
    /// `tcp://host:port` or `unix:///path`, without credentials: the client resolves the
    /// host itself at each connect.
    dsn: String,
    /// Connections that finished their last request cleanly.
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Memcached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memcached").finish_non_exhaustive()
    }
}

impl Memcached {
    /// A client for `endpoint` (`tcp://host:port`, `host:port` or `unix:///path`). Any
    /// userinfo is dropped: memcached's text protocol has no authentication.
    pub(crate) fn new(endpoint: &str) -> Result<Self, EndpointError> {
        let url = check_url(endpoint, &["tcp", "unix"], Some("tcp"), true)?;
        let dsn = if url.scheme() == "unix" {
            format!("unix://{}", url.path())
        } else {
            let (Some(host), Some(port)) = (url.host(), url.port()) else {
                return Err(EndpointError::NoHostOrPort);
            };
            if matches!(host, url::Host::Ipv6(_)) {
                // The client opens IPv4 sockets only; a host name is resolved at each
                // connect and its IPv4 addresses are tried.
                return Err(EndpointError::Ipv6);
            }
            format!("tcp://{host}:{port}")
        };
        Ok(Self {
            dsn,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The value under `key`, `None` when memcached has none.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, MemcachedError> {
        self.call(Request::Get(key)).await
    }

    /// Stores `value` under `key`, without expiry (memcached evicts by LRU).
    pub(crate) async fn set(&self, key: &str, value: &[u8]) -> Result<(), MemcachedError> {
        self.call(Request::Set(key, value)).await.map(drop)
    }

    /// Removes `key`; a key that is not there is not an error.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), MemcachedError> {
        self.call(Request::Delete(key)).await.map(drop)
    }

    /// Sends `request` on an idle connection, or a new one. A connection goes back to the
    /// pool only after a complete, successful request: one dropped mid-request (the tier's
    /// deadline) or failed is closed, so no stale answer is ever read by the next request.
    async fn call(&self, request: Request<'_>) -> Result<Option<Vec<u8>>, MemcachedError> {
        let op = request.name();
        let failed = |source| MemcachedError::Request { op, source };
        let pooled = self.take_idle();
        let reused = pooled.is_some();
        let mut client = match pooled {
            Some(client) => client,
            None => Client::new(&self.dsn).await.map_err(failed)?,
        };
        let mut result = request.send(&mut client).await;
        if reused && matches!(&result, Err(e) if is_broken_connection(e)) {
            // An idle connection the server closed meanwhile (a restart, its idle
            // timeout): one new connection, once. Every request here is idempotent.
            client = Client::new(&self.dsn).await.map_err(failed)?;
            result = request.send(&mut client).await;
        }
        let value = result.map_err(failed)?;
        self.give_back(client);
        Ok(value)
    }

    fn take_idle(&self) -> Option<Client> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(client);
        }
    }
}

/// One request of the tier.
#[derive(Clone, Copy)]
enum Request<'a> {
    Get(&'a str),
    Set(&'a str, &'a [u8]),
    Delete(&'a str),
}

impl Request<'_> {
    fn name(self) -> &'static str {
        match self {
            Request::Get(_) => "get",
            Request::Set(..) => "set",
            Request::Delete(_) => "delete",
        }
    }

    /// Sends the request on `client` and reads its answer: a get's value (`None` on a
    /// miss), nothing for the others.
    async fn send(self, client: &mut Client) -> Result<Option<Vec<u8>>, async_memcached::Error> {
        match self {
            Request::Get(key) => Ok(client.get(key).await?.map(|v| v.data.unwrap_or_default())),
            Request::Set(key, value) => client.set(key, value, None, None).await.map(|()| None),
            Request::Delete(key) => match client.delete(key).await {
                Ok(()) | Err(async_memcached::Error::Protocol(Status::NotFound)) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}

/// Whether `e` says the connection is unusable (rather than that the server refused the
/// request), so that a retry on a new connection can succeed.
fn is_broken_connection(e: &async_memcached::Error) -> bool {
    matches!(
        e,
        async_memcached::Error::Io(_) | async_memcached::Error::ConnectionClosed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_client_addresses_without_credentials() {
        let dsn = |e: &str| Memcached::new(e).map(|m| m.dsn);
        assert_eq!(
            dsn("127.0.0.1:11211").as_deref(),
            Ok("tcp://127.0.0.1:11211")
        );
        assert_eq!(
            dsn("tcp://user:secret@cache.example:11211").as_deref(),
            Ok("tcp://cache.example:11211")
        );
        assert_eq!(
            dsn("unix:///run/memcached.sock").as_deref(),
            Ok("unix:///run/memcached.sock")
        );
        assert!(dsn("tcp://[::1]:11211").is_err());
        assert!(dsn("tcp://127.0.0.1").is_err());
        assert!(dsn("http://127.0.0.1:11211").is_err());
    }

    /// A memcached on a free loopback port, killed on drop; `None` when memcached is not
    /// installed (the root tests/it/remote_tiers.rs require it; these only add detail).
    struct Server {
        child: std::process::Child,
        port: u16,
    }

    impl Server {
        fn start() -> Option<Self> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            Self::start_on(port)
        }

        fn start_on(port: u16) -> Option<Self> {
            let child = std::process::Command::new("memcached")
                .args(["-u", "root", "-l", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let server = Self { child, port };
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(server);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            None
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    async fn a_value_round_trips_and_a_missing_key_is_none() {
        let Some(server) = Server::start() else {
            eprintln!("memcached is not installed: skipped");
            return;
        };
        let mc = Memcached::new(&format!("tcp://127.0.0.1:{}", server.port)).unwrap();
        let value: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        mc.set("hoard/ab/one", &value).await.unwrap();
        assert_eq!(mc.get("hoard/ab/one").await.unwrap(), Some(value));
        assert_eq!(mc.get("hoard/ab/two").await.unwrap(), None);
        mc.delete("hoard/ab/one").await.unwrap();
        mc.delete("hoard/ab/one").await.unwrap();
        assert_eq!(mc.get("hoard/ab/one").await.unwrap(), None);
    }

    /// Issue 19: without TCP_NODELAY and with a round trip per reuse, each request cost
    /// ~44 ms on loopback (200 gets: ~9 s). On a warm pooled connection they take well
    /// under a millisecond; the bound leaves room for a loaded machine.
    #[tokio::test]
    async fn hits_on_a_warm_connection_cost_no_nagle_delay() {
        let Some(server) = Server::start() else {
            eprintln!("memcached is not installed: skipped");
            return;
        };
        let mc = Memcached::new(&format!("tcp://127.0.0.1:{}", server.port)).unwrap();
        mc.set("hoard/cd/hit", &[7u8; 3000]).await.unwrap();
        let start = std::time::Instant::now();
        for _ in 0..200 {
            assert!(mc.get("hoard/cd/hit").await.unwrap().is_some());
        }
        let took = start.elapsed();
        assert!(
            took < std::time::Duration::from_secs(3),
            "200 gets took {took:?}"
        );
        assert_eq!(mc.idle.lock().unwrap().len(), 1, "one connection, reused");
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_dropped_is_replaced() {
        let Some(mut server) = Server::start() else {
            eprintln!("memcached is not installed: skipped");
            return;
        };
        let port = server.port;
        let mc = Memcached::new(&format!("tcp://127.0.0.1:{port}")).unwrap();
        mc.set("hoard/ef/k", b"v").await.unwrap();
        assert_eq!(mc.idle.lock().unwrap().len(), 1);
        // A restart on the same port: the pooled connection is now closed by its peer.
        let _ = server.child.kill();
        let _ = server.child.wait();
        let Some(restarted) = Server::start_on(port) else {
            eprintln!("memcached did not restart on port {port}: skipped");
            return;
        };
        server = restarted;
        // The request still succeeds, on a new connection (the restarted server is empty).
        assert_eq!(mc.get("hoard/ef/k").await.unwrap(), None);
        assert_eq!(mc.idle.lock().unwrap().len(), 1);
        drop(server);
    }
}
