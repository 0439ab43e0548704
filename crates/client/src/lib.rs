//! hoard's client, and the API a build tool embeds to keep its outputs in hoard's cache.
//!
//! # Embedding hoard
//!
//! A build tool embeds hoard through [`Hoard`]: keyed [`Hoard::get`] and [`Hoard::put`] of
//! its own actions' outputs, under keys it computes ([`CacheKey`]), and [`Hoard::compile`]
//! for compiler commands, which runs hoard's whole cached-compile pipeline. A handle works
//! in-process over a cache directory ([`Hoard::embedded`], no server) or through a
//! `hoard-server` ([`Hoard::connect`]); both address the same entries, so the two modes, and
//! the `hoard` wrapper, share hits.
//!
//! ## The cache the `hoard` wrapper uses
//!
//! To share a machine's cache with `hoard` itself (the same directory, the same server, the
//! same remote tiers and signing keys), read the configuration the way `hoard` does. That
//! logic is the library of hoard's root package (package `hoard-cache`, library `hoard`):
//! `hoard::config::Settings::from_env()` reads the `HOARD_*` environment variables, then the
//! config file (`HOARD_CONFIG`, else `$XDG_CONFIG_HOME/hoard/config.toml`), then the
//! defaults; it creates the cache directory and names the default socket from the storage
//! configuration exactly as `hoard` does. `Settings::client()` is the [`ClientConfig`] the
//! wrapper connects with, down to how it starts a server when none runs (`HOARD_SERVER_BIN`,
//! else `hoard-server` beside the running executable, else on `PATH`):
//!
//! ```ignore
//! use std::sync::Arc;
//! use hoard::config::Settings;
//! use hoard_client::Hoard;
//!
//! let settings = Settings::from_env()?;
//! let hoard = match Hoard::connect(&settings.client()).await {
//!     Ok(hoard) => hoard,
//!     // No server, and none could be started: the same cache, in this process.
//!     Err(_) => Hoard::embedded_with_trust(
//!         settings.cache_dir.clone(),
//!         settings.cache_size,
//!         settings.tiers.clone(),
//!         Arc::clone(&settings.trust),
//!     )?,
//! };
//! ```
//!
//! hoard's repository builds this as `examples/embed_from_env.rs` (`cargo run --example
//! embed_from_env`). For [`Hoard::compile`], give the command the environment
//! `hoard::path_settings::compile_env(std::env::vars_os().collect())`, so the config file's
//! path policy (`HOARD_PATHS`, `HOARD_BASEDIRS`) applies as it does to the wrapper.
//!
//! ## A configuration of your own
//!
//! Build a [`ClientConfig`] by hand ([`ClientConfig::new`] with a cache directory and a
//! socket, then set the fields you need) when the tool owns its cache rather than sharing the
//! user's: its settings come from its own configuration and not from `HOARD_*`, it must not
//! read the user's hoard configuration (hermetic builds, tests), or it should not depend on
//! the root package (which brings the binaries' dependencies). Such a configuration names
//! its socket itself; [`ClientConfig::launch`] says how to start a server there, and `None`
//! never starts one. [`Hoard::embedded`] needs no configuration at all: a directory and a
//! size limit.
//!
//! Everything the cache returns is an accelerator's answer: treat an error as a miss, do the
//! work, and the build goes on.
//!
//! # Inside
//!
//! The rest of this crate is what runs inside every `hoard gcc ...` process. It classifies
//! the command (through `hoard-compiler`), connects to the server — starting exactly one when
//! none is running — negotiates the protocol, and serves the compiler pipeline's
//! `ArtifactCache` over protocol v2, so the one `cached_compile` pipeline runs here with the
//! server as its store. It keeps the never-fail promise: whatever goes wrong on the cache
//! path, the real compiler runs and the build sees exactly its result, and the fault is
//! counted. It knows the protocol, not the server's internals. Those parts are public only
//! for hoard's own binaries, are left out of this documentation, and may change in any
//! release.

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
