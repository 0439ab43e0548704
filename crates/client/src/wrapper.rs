//! `hoard <compiler> args...`: the never-fail wrapper. The concerns are kept apart: what
//! runs a compile where (v2 pipeline here, the whole command to a v1 server, or the compiler
//! alone), the withdrawal to v1 of a server that predates v2 ([`serve_v2`]), whether a server
//! that did not answer lately is asked at all ([`Responsiveness`]), and the journal line
//! ([`Invocation`]).

use std::ffi::OsString;
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::process::CommandExt;

use hoard_compiler::{
    CacheStatus, CacheableCompile, CommandLine, CompileOutcome, CompileResult, PipelineConfig,
    cached_compile, classify,
};
use hoard_protocol::{ClientEvent, PROTOCOL_V2};

use crate::invocation::{Invocation, Route};
use crate::journal::Outcome;
use crate::v1::{ServerCompiled, compile_on_server_with_status};
use crate::wedged::{self, Recall};
use crate::{ClientConfig, ClientError, Connection, RemoteCache, record_event};

/// Runs one compiler invocation through the cache and returns the exit status the build must
/// see. Whatever fails on the cache path, the real compiler runs and its result is returned
/// unchanged; the fault is counted in the client events log.
///
/// `env` is the compile's environment: the pipeline reads some settings from there
/// (`HOARD_PATHS`, `HOARD_BASEDIRS`), so a caller that takes them from elsewhere (a config
/// file) adds them to `env`, and the same command sent to a v1 server carries them. The
/// compiler runs in `env` too (and in the process's own when the cache is bypassed): the
/// variables mean nothing to it.
pub fn run_wrapper_in(
    config: &ClientConfig,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
) -> i32 {
    let Ok(cwd) = std::env::current_dir() else {
        return exec_compiler(&program, &args);
    };
    let mut invocation = Invocation::start(config.journal.as_deref(), cwd.clone());
    let command = CommandLine {
        program,
        args,
        cwd,
        env,
    };
    if config.max_protocol < PROTOCOL_V2 && config.recache {
        // A v1 server compiles and serves as it sees fit: it cannot be told to recompile.
        invocation.uncached(Outcome::Fallback, "recache_needs_v2");
        return exec_compiler(&command.program, &command.args);
    }
    if config.max_protocol < PROTOCOL_V2 {
        // A v1 client hands every command to the server, which classifies it itself.
        return ask_server(config, &command, &invocation, |runtime| {
            runtime.block_on(async {
                let mut connection = Connection::open(config).await?;
                compile_on_server_with_status(&mut connection, &command, config.compile_timeout)
                    .await
                    .map(Served::ByServer)
            })
        });
    }
    let mut pipeline = PipelineConfig::new(config.cache_dir.clone());
    pipeline.direct_mode = config.direct_mode;
    let mut compile = match classify(&command, &pipeline) {
        Ok(compile) => compile,
        Err(reason) => {
            tracing::debug!("not cacheable: {reason}");
            record_event(
                &config.cache_dir,
                &ClientEvent::NonCacheable(reason.name().to_owned()),
            );
            invocation.uncached(Outcome::NonCacheable, reason.name());
            return exec_compiler(&command.program, &command.args);
        }
    };
    invocation.output = compile.outputs().first().map(|o| o.path.clone());
    invocation.language = Some(compile.language().name().to_owned());
    invocation.crate_name = compile.crate_name().map(str::to_owned);
    ask_server(config, &command, &invocation, |runtime| {
        // A miss copies rustc's stderr through as it is written: cargo starts dependents on
        // the metadata notification, long before the compile ends.
        compile.stream_stderr(true);
        runtime.block_on(serve_v2(config, &command, &compile))
    })
}

/// Asks the server through `serve` (unless it did not answer lately), remembers whether it
/// answered in time, and finishes the invocation with what it served, or with the compiler
/// alone when it served nothing.
fn ask_server(
    config: &ClientConfig,
    command: &CommandLine,
    invocation: &Invocation<'_>,
    serve: impl FnOnce(&tokio::runtime::Runtime) -> Result<Served, ClientError>,
) -> i32 {
    let responsiveness = match Responsiveness::recall(config, command, invocation) {
        ControlFlow::Continue(recalled) => recalled,
        ControlFlow::Break(status) => return status,
    };
    let Some(runtime) = runtime(config) else {
        invocation.uncached(Outcome::Fallback, "runtime");
        return exec_compiler(&command.program, &command.args);
    };
    let served = serve(&runtime);
    responsiveness.note(config, unanswered(&served));
    match served {
        Ok(Served::Pipeline(outcome, route)) => {
            finish_pipeline(config, &outcome, &route, invocation)
        }
        Ok(Served::ByServer(compiled)) => {
            invocation.served_by_v1(&compiled);
            emit(&compiled.result)
        }
        Err(e) => fall_back(config, &e, command, invocation),
    }
}

/// Runs the pipeline over a v2 server; when the server turns out to predate v2 the
/// pipeline withdraws and the server runs the whole command for us, on the same connection.
async fn serve_v2(
    config: &ClientConfig,
    command: &CommandLine,
    compile: &CacheableCompile,
) -> Result<Served, ClientError> {
    // The Hello leaves with the first request: one round trip fewer per compile.
    let connection = Connection::open_pipelined(config).await?;
    let cache = RemoteCache::new(connection).recaching(config.recache);
    let outcome = cached_compile(compile, &cache).await;
    if outcome.status != CacheStatus::Withdrawn {
        let route = Route {
            transfer: cache.last_transfer(),
            source: cache.last_source(),
        };
        return Ok(Served::Pipeline(Box::new(outcome), route));
    }
    let mut connection = cache.into_connection();
    compile_on_server_with_status(&mut connection, command, config.compile_timeout)
        .await
        .map(Served::ByServer)
}

/// Journals and counts a compile the pipeline ran, and replays its output.
fn finish_pipeline(
    config: &ClientConfig,
    outcome: &CompileOutcome,
    route: &Route,
    invocation: &Invocation<'_>,
) -> i32 {
    invocation.pipeline(
        outcome,
        route,
        outcome.cache_errors.first().map(fault_cause),
    );
    record_faults(config, outcome);
    if outcome.stderr_streamed {
        let _ = std::io::stdout().lock().write_all(&outcome.result.stdout);
        return outcome.result.exit_status;
    }
    emit(&outcome.result)
}

/// The cause of the fault that shows the server did not answer in time, if one does.
fn unanswered(served: &Result<Served, ClientError>) -> Option<&'static str> {
    match served {
        Ok(Served::Pipeline(outcome, _)) => outcome
            .cache_errors
            .iter()
            .map(fault_cause)
            .find(|cause| unresponsive(cause)),
        Ok(Served::ByServer(_)) => None,
        Err(e) => Some(e.cause()),
    }
}

/// Counts every cache fault of a pipeline run in the client events log.
fn record_faults(config: &ClientConfig, outcome: &CompileOutcome) {
    for (i, error) in outcome.cache_errors.iter().enumerate() {
        tracing::warn!("cache fault: {error}");
        // The first error of a fallback is what made the pipeline compile locally.
        let event = if i == 0 && matches!(outcome.status, CacheStatus::Fallback) {
            ClientEvent::LocalFallback(fault_cause(error).into())
        } else {
            ClientEvent::CacheError(fault_cause(error).into())
        };
        record_event(&config.cache_dir, &event);
    }
}

/// Where a cacheable compile was served.
enum Served {
    /// The pipeline ran here, over v2 (with how the last hit or put travelled).
    Pipeline(Box<CompileOutcome>, Route),
    /// A v1 server ran it.
    ByServer(ServerCompiled),
}

/// What this wrapper knows of the server's answering: recalled before asking (see
/// [`crate::wedged`]), noted after.
struct Responsiveness {
    recalled: Recall,
}

impl Responsiveness {
    /// The server's record; a server that did not answer a moment ago is not asked: the
    /// compiler runs alone, counted, and `Break` carries its status.
    fn recall(
        config: &ClientConfig,
        command: &CommandLine,
        invocation: &Invocation<'_>,
    ) -> ControlFlow<i32, Self> {
        let recalled = wedged::recall(config);
        if recalled != Recall::Unresponsive {
            return ControlFlow::Continue(Self { recalled });
        }
        tracing::debug!("the hoard server did not answer recently; compiling without it");
        record_event(
            &config.cache_dir,
            &ClientEvent::LocalFallback("server_wedged".into()),
        );
        invocation.uncached(Outcome::Fallback, "server_wedged");
        ControlFlow::Break(exec_compiler(&command.program, &command.args))
    }

    /// Remembers a server that did not answer in time (`fault` is the cause of the fault
    /// that kept the cache out, if any), or forgets an expired record once the server served
    /// us.
    fn note(&self, config: &ClientConfig, fault: Option<&str>) {
        match fault {
            Some(cause) if unresponsive(cause) => wedged::remember(config),
            None if self.recalled == Recall::Expired => wedged::forget(&config.cache_dir),
            _ => {}
        }
    }
}

/// Counts a fault that kept the cache out of this compile, then runs the compiler itself.
fn fall_back(
    config: &ClientConfig,
    error: &ClientError,
    command: &CommandLine,
    invocation: &Invocation<'_>,
) -> i32 {
    tracing::warn!("compiling without the cache: {error}");
    record_event(
        &config.cache_dir,
        &ClientEvent::LocalFallback(error.cause().into()),
    );
    invocation.uncached(Outcome::Fallback, error.cause());
    exec_compiler(&command.program, &command.args)
}

/// Replays a compile's output and returns its status. The build must see the compiler's
/// output even if our own stdout is gone, so write errors are ignored.
fn emit(result: &CompileResult) -> i32 {
    let _ = std::io::stdout().lock().write_all(&result.stdout);
    let _ = std::io::stderr().lock().write_all(&result.stderr);
    result.exit_status
}

/// Whether a fault's cause means the server could not be reached in time: later wrappers
/// should not wait for it too.
fn unresponsive(cause: &str) -> bool {
    matches!(cause, "timeout" | "server_start")
}

/// A single-threaded runtime: a wrapper does one thing at a time.
fn runtime(config: &ClientConfig) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            tracing::warn!("cannot start the async runtime: {e}");
            record_event(
                &config.cache_dir,
                &ClientEvent::LocalFallback("runtime".into()),
            );
            None
        }
    }
}

/// The counted cause of a pipeline cache fault: the client error inside it, if there is one.
fn fault_cause(error: &hoard_compiler::CacheError) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(client) = e.downcast_ref::<ClientError>() {
            return client.cause();
        }
        source = e.source();
    }
    "cache"
}

/// Replaces this process with the real compiler, so the build sees it exactly as if hoard
/// were not there. Returns only if it cannot be run.
fn exec_compiler(program: &std::ffi::OsStr, args: &[OsString]) -> i32 {
    let error = std::process::Command::new(program).args(args).exec();
    let _ = writeln!(
        std::io::stderr(),
        "hoard: cannot run {}: {error}",
        program.to_string_lossy()
    );
    127
}

/// Runs the compiler with no cache at all (for when hoard cannot even read its
/// configuration). Returns only if the compiler cannot be run.
pub fn run_wrapper_uncached(program: &std::ffi::OsStr, args: &[OsString]) -> i32 {
    exec_compiler(program, args)
}
