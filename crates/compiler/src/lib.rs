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
//!
//! Inside, three layers, checked by `tests/layering.rs`: shared vocabulary at the bottom
//! (the command, the compile, the outcome, recipes, the digest memo, the manifest codec, the
//! explain record, the cache session and the `Family` trait); the compiler
//! families `c` and `rust` above it, beside each other and never importing each other; and
//! on top the dispatch between them (`classify`), the one pipeline (`pipeline`) and
//! `hoard --explain` (`explain`). No module imports in a circle.

// The bottom layer: shared vocabulary.
mod cache;
mod clock;
mod command;
mod compile;
mod depinfo;
mod digest;
mod digest_table;
mod explain_moved;
mod family;
mod flags;
mod input;
mod input_diff;
mod language;
mod manifest;
mod outcome;
mod path_policy;
mod placeholder;
mod program;
mod reason;
mod recipe;
mod record;
mod result;
mod runner;
mod session;
mod storage_cache;
mod text;

// The families.
mod c;
mod rust;

// The top: what knows every family.
mod classify;
mod explain;
mod pipeline;

pub use cache::{ArtifactCache, CacheError};
pub use classify::{CacheableCompile, classify};
pub use command::{CommandLine, PipelineConfig};
pub use explain::{Difference, EarlierEntry, Explanation, explain};
pub use explain_moved::MovedDirectory;
pub use hoard_storage::{CacheKey, OutputPath};
pub use language::Language;
pub use outcome::{CacheStatus, CompileOutcome, PhaseTimes};
pub use path_policy::{BASEDIRS_VAR, PATHS_VAR, PathMode, PathModeError, explicit_basedirs};
pub use pipeline::{cached_compile, compile_command, run_compiler};
pub use program::CompilerKind;
pub use reason::NonCacheable;
pub use record::{Input, InputRecord};
pub use result::CompileResult;
pub use storage_cache::StorageCache;
