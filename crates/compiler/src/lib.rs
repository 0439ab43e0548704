//! hoard's knowledge of compilers, and the one cached-compile pipeline. Given a command the
//! wrapper was asked to run, this crate finds and identifies the compiler (gcc, clang or
//! rustc), parses its arguments into a cacheable compile or a named reason why not
//! ([`classify`]), hashes every input into a key, and runs [`cached_compile`]. For C-family
//! compiles: direct mode (a manifest of include digests, so a hit runs no preprocessor), then
//! preprocessor mode, then the real compiler. For rustc (under cargo): a manifest built from
//! the dependency file each compile writes anyway, keyed by the toolchain, target, arguments,
//! `--extern` crates, native libraries, linker and cargo's environment, with paths made
//! relative so clones and `CARGO_HOME`s share hits; no rustc runs on a hit. It talks to a
//! cache only through the [`ArtifactCache`] trait, so the same pipeline runs in the client
//! over protocol v2, in the server for v1 clients and in-process over local storage
//! ([`StorageCache`]). It never knows about the protocol, sockets or servers.

mod args;
mod cache;
mod classify;
mod detect;
mod digest_table;
mod explain;
mod key;
mod language;
mod manifest;
mod pipeline;
mod reason;
mod response_file;
mod rust;
mod storage_cache;

use std::ffi::OsString;
use std::path::PathBuf;

pub use cache::{ArtifactCache, CacheError};
pub use classify::{CacheableCompile, classify};
pub use detect::CompilerKind;
pub use explain::{Difference, EarlierEntry, Explanation, Input, InputRecord, explain};
pub use hoard_storage::{CacheKey, OutputPath};
pub use language::Language;
pub use pipeline::{
    CacheStatus, CompileOutcome, CompileResult, PhaseTimes, cached_compile, compile_command,
    run_compiler,
};
pub use reason::NonCacheable;
pub use storage_cache::StorageCache;

/// What the wrapper was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The compiler as named (`gcc`, `/usr/bin/clang++`, `./cc`).
    pub program: OsString,
    /// The arguments after the program.
    pub args: Vec<OsString>,
    /// The working directory the command runs in.
    pub cwd: PathBuf,
    /// The whole environment the command runs with; a later pair overrides an earlier one.
    pub env: Vec<(OsString, OsString)>,
}

/// Settings of the pipeline that are not part of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Where hoard keeps its own state, e.g. `HOARD_DIR`; compiler identities are cached under
    /// `compilers/` there.
    pub state_dir: PathBuf,
    /// Whether to use and keep manifests so a hit needs no preprocessor run.
    pub direct_mode: bool,
}

impl PipelineConfig {
    /// The default configuration (direct mode on) keeping state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            direct_mode: true,
        }
    }
}
