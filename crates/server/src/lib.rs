//! hoard's server: a storage-only process that clients reach over a Unix socket. It accepts
//! connections, checks each peer's uid, negotiates the protocol version, and serves protocol
//! v2: on `CacheGet` it extracts a stored entry straight onto the client's output paths, on
//! `CachePut` it packs the outputs from those paths into an entry. Entries, packing and
//! extraction belong to `hoard-storage`; this crate adds the path rules that make it safe to
//! act on a client's paths, the counters behind `GetStats`, idle shutdown and a clean
//! `Shutdown`. For clients that only speak protocol v1 it runs the compiler pipeline of
//! `hoard-compiler` itself, over the same storage. Lookups are single flight: concurrent
//! misses of one key wait (bounded) for the first to be compiled and stored, so a key is
//! compiled once per server. It knows nothing of the client's internals.
//!
//! Its identity is its effective uid, and its socket's directory, lock and pid files must be
//! that uid's alone: nothing another user plants beside the socket changes whom it serves. A
//! TCP gateway holds under hostile peers: a handshake deadline, connection caps under the
//! descriptor limit, accept back-off, and one byte budget for all inline puts
//! ([`GatewayLimits`]). SIGTERM and SIGINT stop it as `Shutdown` does. With
//! [`ServerConfig::metrics`] it also serves Prometheus metrics and a JSON status page over
//! HTTP, gathered from its counters when asked (module `metrics`).
//!
//! Inside, each layer imports only the ones below it: `server` (lock, listeners, stop) →
//! `accept` → `connection` (framing, `admission`, inline receipt) → `dispatch` (the one place
//! a request is counted and routed; `inline` beside it moves entry frames) → `v1`, `v2` (the
//! handlers) → `shared` (what every connection shares), with `peer`, `reply`, `flight`,
//! `gateway`, `stats`, `probe`, `output_paths`, `state_files` and `error` below. No handler
//! imports the connection or the server. `metrics`, started by `server` beside `accept`,
//! only reads `shared`.

mod accept;
mod admission;
mod config;
mod connection;
mod dispatch;
mod error;
mod flight;
mod gateway;
mod inline;
mod lock_holder;
mod metrics;
mod output_paths;
mod peer;
mod probe;
mod reply;
mod server;
mod shared;
mod state_files;
mod stats;
mod v1;
mod v2;

pub use config::{DEFAULT_SINGLE_FLIGHT_WAIT, ServerConfig};
pub use error::{ServerError, Unsafe};
pub use gateway::{
    DEFAULT_HANDSHAKE_DEADLINE, DEFAULT_INLINE_BUDGET, DEFAULT_INLINE_BUDGET_WAIT, GatewayLimits,
};
pub use output_paths::PathRefused;
pub use server::serve;
