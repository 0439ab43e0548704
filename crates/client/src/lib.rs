//! hoard's client: what runs inside every `hoard gcc ...` process, and the API a build tool
//! embeds. It classifies the command (through `hoard-compiler`), connects to the server —
//! starting exactly one when none is running — negotiates the protocol, and serves the
//! compiler pipeline's `ArtifactCache` over protocol v2, so the one `cached_compile` pipeline
//! runs here with the server as its store. It keeps the never-fail promise: whatever goes
//! wrong on the cache path, the real compiler runs and the build sees exactly its result, and
//! the fault is counted. It knows the protocol, not the server's internals.
//!
//! A build tool embeds hoard through [`Hoard`]: keyed [`Hoard::get`] and [`Hoard::put`] of its
//! own actions' outputs, and [`Hoard::compile`] for compiler commands, in-process or through a
//! server.

mod config;
mod connection;
mod control;
mod embed;
mod error;
mod events;
mod invocation;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub mod journal;
mod not_shared;
mod probe;
mod remote_cache;
mod server_process;
mod spawn;
mod trust;
mod v1;
mod wedged;
mod wrapper;

pub use config::{ClientConfig, ServerLaunch};
pub use embed::{EmbedError, Hoard};
pub use error::ClientError;
pub use hoard_compiler::{
    CacheError, CacheStatus, CommandLine, CompileOutcome, CompileResult, Language, NonCacheable,
};
pub use hoard_storage::{CacheKey, OutputPath};
pub use server_process::StopError;
pub use trust::StateFileError;

// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use connection::Connection;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use control::{Stopped, stats, stop_server, zero_stats};
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use not_shared::NOT_SHARED_FILE;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use probe::PROBE_FILE;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use wedged::UNRESPONSIVE_FILE;
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use wrapper::{run_wrapper_in, run_wrapper_uncached};

pub(crate) use events::record_event;
pub(crate) use remote_cache::RemoteCache;
