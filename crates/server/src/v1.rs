//! Protocol v1: the server runs the whole pipeline for clients that only send `Compile`. It is
//! the same `cached_compile` the v2 client runs, over the server's own storage through
//! `StorageCache`; nothing about hashing or compiling is written here.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use async_trait::async_trait;
use hoard_compiler::{
    ArtifactCache, CacheError, CacheKey, CacheStatus, CommandLine, CompileResult, Language,
    OutputPath, PipelineConfig, compile_command,
};
use hoard_protocol::{ByteBuf, Response};

use crate::flight::Holder;
use crate::shared::Shared;
use crate::stats::Counted;

/// The server's storage as the v1 pipeline sees it, single flight: a lookup that misses while
/// another connection's `Compile` is producing the same key waits for it (bounded), as a v2
/// `CacheGet` does; storing a key lands this connection's flight of it.
struct SingleFlight<'a> {
    shared: &'a Shared,
    holder: Holder,
}

#[async_trait]
impl ArtifactCache for SingleFlight<'_> {
    async fn get(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        language: Language,
    ) -> Result<Option<CompileResult>, CacheError> {
        let cache = &self.shared.v1_cache;
        if outputs.is_empty() {
            // The pipeline's miss probe: nothing to wait for or lead.
            return cache.get(key, outputs, language).await;
        }
        let look = || cache.get(key, outputs, language);
        let stored = || self.shared.stored_locally(key);
        self.shared
            .flights
            .look(key, self.holder, stored, look)
            .await
    }

    async fn put(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        language: Language,
    ) -> Result<(), CacheError> {
        let stored = self
            .shared
            .v1_cache
            .put(key, outputs, result, language)
            .await;
        self.shared.flights.land(key, self.holder);
        if stored.is_ok() {
            self.shared.stats.count(Counted::Write);
        }
        stored
    }

    async fn get_manifest(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        let cache = &self.shared.v1_cache;
        let look = || cache.get_manifest(key);
        let stored = || self.shared.stored_locally(key);
        self.shared
            .flights
            .look(key, self.holder, stored, look)
            .await
    }

    async fn put_manifest(&self, key: &CacheKey, manifest: Vec<u8>) -> Result<(), CacheError> {
        let stored = self.shared.v1_cache.put_manifest(key, manifest).await;
        self.shared.flights.land(key, self.holder);
        stored
    }
}

fn os(bytes: impl Into<Vec<u8>>) -> OsString {
    OsString::from_vec(bytes.into())
}

/// Variables that name file descriptors of the client's process (make's and cargo's
/// jobserver): here they would name the server's, and rustc warns that it cannot reach the
/// jobserver (with an `os error`, which also keeps a failing probe from being stored).
const CLIENT_FD_VARS: &[&[u8]] = &[b"CARGO_MAKEFLAGS", b"MAKEFLAGS", b"MFLAGS"];

/// The client's environment for a compile run here, without [`CLIENT_FD_VARS`].
fn compile_env(env: Vec<(ByteBuf, ByteBuf)>) -> Vec<(OsString, OsString)> {
    env.into_iter()
        .filter(|(k, _)| !CLIENT_FD_VARS.contains(&k.as_slice()))
        .map(|(k, v)| (os(k.into_vec()), os(v.into_vec())))
        .collect()
}

/// `Compile`: classify, look up, compile on a miss; the outputs are in place when it answers.
pub(crate) async fn compile(
    shared: &Shared,
    holder: Holder,
    exe: Vec<u8>,
    cwd: Vec<u8>,
    args: Vec<ByteBuf>,
    env: Vec<(ByteBuf, ByteBuf)>,
) -> Response {
    let command = CommandLine {
        program: os(exe),
        args: args.into_iter().map(|a| os(a.into_vec())).collect(),
        cwd: PathBuf::from(os(cwd)),
        env: compile_env(env),
    };
    let mut pipeline = PipelineConfig::new(shared.config.cache_dir.clone());
    pipeline.direct_mode = shared.config.direct_mode;
    let cache = SingleFlight { shared, holder };
    let outcome = compile_command(&command, &pipeline, &cache).await;
    // The compile is over: whatever it led and did not store, it never will.
    shared.flights.land_all(holder);
    let language = outcome.language.map(hoard_compiler::Language::name);
    for error in &outcome.cache_errors {
        tracing::warn!("v1 compile: cache fault: {error}");
        shared.stats.count(Counted::Error);
    }
    let cache = match &outcome.status {
        CacheStatus::Hit { .. } => {
            shared.stats.count(Counted::Hit {
                language,
                protocol: hoard_protocol::PROTOCOL_V1,
                saved_ms: outcome.result.compile_ms(),
            });
            "hit"
        }
        CacheStatus::Miss => {
            shared.stats.count(Counted::Miss {
                language,
                protocol: hoard_protocol::PROTOCOL_V1,
            });
            "miss"
        }
        CacheStatus::NotCacheable(reason) => {
            shared.stats.count(Counted::NonCacheable {
                reason: reason.name(),
            });
            "non_cacheable"
        }
        // `Fallback`, `Withdrawn`, and any status added later (the enum is non-exhaustive):
        // nothing the cache can be credited with.
        _ => "fallback",
    };
    Response::Compiled {
        stdout: outcome.result.stdout,
        stderr: outcome.result.stderr,
        exit_status: outcome.result.exit_status,
        cache: Some(cache.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_jobserver_variables_are_not_passed_to_a_compile_run_here() {
        let var = |k: &str, v: &str| (ByteBuf::from(k.as_bytes()), ByteBuf::from(v.as_bytes()));
        let env = compile_env(vec![
            var(
                "CARGO_MAKEFLAGS",
                "-j --jobserver-fds=8,9 --jobserver-auth=8,9",
            ),
            var("MAKEFLAGS", "-j2"),
            var("PATH", "/usr/bin"),
            var("CARGO_PKG_NAME", "x"),
        ]);
        assert_eq!(
            env,
            vec![
                (OsString::from("PATH"), OsString::from("/usr/bin")),
                (OsString::from("CARGO_PKG_NAME"), OsString::from("x")),
            ]
        );
    }
}
