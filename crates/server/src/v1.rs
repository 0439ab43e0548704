//! Protocol v1: the server runs the whole pipeline for clients that only send `Compile`. It is
//! the same `cached_compile` the v2 client runs, over the server's own storage through
//! `StorageCache`; nothing about hashing or compiling is written here.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use hoard_compiler::{CacheStatus, CommandLine, PipelineConfig, compile_command};
use hoard_protocol::{ByteBuf, Response};

use crate::server::Shared;
use crate::stats::Counted;

fn os(bytes: impl Into<Vec<u8>>) -> OsString {
    OsString::from_vec(bytes.into())
}

/// `Compile`: classify, look up, compile on a miss; the outputs are in place when it answers.
pub(crate) async fn compile(
    shared: &Shared,
    exe: Vec<u8>,
    cwd: Vec<u8>,
    args: Vec<ByteBuf>,
    env: Vec<(ByteBuf, ByteBuf)>,
) -> Response {
    let command = CommandLine {
        program: os(exe),
        args: args.into_iter().map(|a| os(a.into_vec())).collect(),
        cwd: PathBuf::from(os(cwd)),
        env: env
            .into_iter()
            .map(|(k, v)| (os(k.into_vec()), os(v.into_vec())))
            .collect(),
    };
    let pipeline = PipelineConfig {
        state_dir: shared.config.cache_dir.clone(),
        direct_mode: shared.config.direct_mode,
    };
    let outcome = compile_command(&command, &pipeline, &shared.v1_cache).await;
    let language = outcome.language.map(hoard_compiler::Language::name);
    for error in &outcome.cache_errors {
        tracing::warn!("v1 compile: cache fault: {error}");
        shared.stats.count(Counted::Error);
    }
    let cache = match &outcome.status {
        CacheStatus::Hit { .. } => {
            shared.stats.count(Counted::Hit { language });
            "hit"
        }
        CacheStatus::Miss => {
            shared.stats.count(Counted::Miss { language });
            "miss"
        }
        CacheStatus::Fallback | CacheStatus::Withdrawn => "fallback",
        CacheStatus::NotCacheable(reason) => {
            shared.stats.count(Counted::NonCacheable {
                reason: reason.name(),
            });
            "non_cacheable"
        }
    };
    Response::Compiled {
        stdout: outcome.result.stdout,
        stderr: outcome.result.stderr,
        exit_status: outcome.result.exit_status,
        cache: Some(cache.to_owned()),
    }
}
