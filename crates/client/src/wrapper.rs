//! `hoard <compiler> args...`: the never-fail wrapper.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;

use hoard_compiler::{
    CacheStatus, CommandLine, CompileResult, PipelineConfig, cached_compile, classify,
};
use hoard_protocol::{ClientEvent, PROTOCOL_V2};

use crate::v1::{ServerCompiled, compile_on_server_with_status};
use crate::wedged::{self, Recall};
use crate::{ClientConfig, ClientError, Connection, RemoteCache, journal, record_event};

/// What the journal keeps of this invocation, filled in as it goes and written at its end
/// (before an `exec`, which never returns).
struct Invocation<'a> {
    journal: Option<&'a std::path::Path>,
    started: std::time::SystemTime,
    clock: std::time::Instant,
    cwd: std::path::PathBuf,
    output: Option<std::path::PathBuf>,
    language: Option<String>,
}

impl Invocation<'_> {
    fn record(
        &self,
        result: journal::Outcome,
        reason: Option<&str>,
        outcome: Option<&hoard_compiler::CompileOutcome>,
        transfer: Option<&str>,
        tier: Option<&str>,
    ) {
        let Some(path) = self.journal else { return };
        let times = outcome.map(|o| o.times).unwrap_or_default();
        let direct = outcome.and_then(|o| match o.status {
            CacheStatus::Hit { direct } => Some(direct),
            _ => None,
        });
        journal::append(
            path,
            &journal::JournalLine {
                time: journal::unix_time(self.started),
                cwd: self.cwd.clone(),
                output: self.output.clone(),
                language: self.language.clone(),
                result,
                reason: reason.map(str::to_owned),
                direct,
                tier: tier.map(str::to_owned),
                transfer: transfer.map(str::to_owned),
                hashing_ms: journal::ms(times.hashing),
                lookup_ms: journal::ms(times.lookup),
                compile_ms: journal::ms(times.compile),
                total_ms: journal::ms(self.clock.elapsed()),
            },
        );
    }
}

/// Runs one compiler invocation through the cache and returns the exit status the build must
/// see. Whatever fails on the cache path, the real compiler runs and its result is returned
/// unchanged; the fault is counted in the client events log.
pub fn run_wrapper(config: &ClientConfig, program: OsString, args: Vec<OsString>) -> i32 {
    let Ok(cwd) = std::env::current_dir() else {
        return exec_compiler(&program, &args);
    };
    let mut invocation = Invocation {
        journal: config.journal.as_deref(),
        started: std::time::SystemTime::now(),
        clock: std::time::Instant::now(),
        cwd: cwd.clone(),
        output: None,
        language: None,
    };
    let command = CommandLine {
        program,
        args,
        cwd,
        env: std::env::vars_os().collect(),
    };
    if config.max_protocol < PROTOCOL_V2 {
        return run_v1(config, &command, &invocation);
    }
    let pipeline = PipelineConfig {
        state_dir: config.cache_dir.clone(),
        direct_mode: config.direct_mode,
    };
    let mut compile = match classify(&command, &pipeline) {
        Ok(compile) => compile,
        Err(reason) => {
            tracing::debug!("not cacheable: {reason}");
            record_event(
                &config.cache_dir,
                &ClientEvent::NonCacheable(reason.name().to_owned()),
            );
            invocation.record(
                journal::Outcome::NonCacheable,
                Some(reason.name()),
                None,
                None,
                None,
            );
            return exec_compiler(&command.program, &command.args);
        }
    };
    invocation.output = compile.outputs().first().map(|o| o.path.clone());
    invocation.language = Some(compile.language().name().to_owned());
    let recalled = wedged::recall(config);
    if recalled == Recall::Unresponsive {
        return fall_back_unasked(config, &command, &invocation);
    }
    let Some(runtime) = runtime(config) else {
        invocation.record(
            journal::Outcome::Fallback,
            Some("runtime"),
            None,
            None,
            None,
        );
        return exec_compiler(&command.program, &command.args);
    };
    // A miss copies rustc's stderr through as it is written: cargo starts dependents on
    // the metadata notification, long before the compile ends.
    compile.stream_stderr(true);
    let served = runtime.block_on(async {
        // The Hello leaves with the first request: one round trip fewer per compile.
        let connection = Connection::open_pipelined(config).await?;
        let cache = RemoteCache::new(connection);
        let outcome = cached_compile(&compile, &cache).await;
        if outcome.status != CacheStatus::Withdrawn {
            let route = Route {
                transfer: cache.last_transfer(),
                tier: cache.last_tier(),
            };
            return Ok(Served::Pipeline(outcome, route));
        }
        // The server predates v2: it runs the pipeline for us, on the same connection.
        let mut connection = cache.into_connection();
        compile_on_server_with_status(&mut connection, &command, config.compile_timeout)
            .await
            .map(Served::ByServer)
    });
    let unanswered = match &served {
        Ok(Served::Pipeline(outcome, _)) => outcome
            .cache_errors
            .iter()
            .map(fault_cause)
            .find(|cause| unresponsive(cause)),
        Ok(Served::ByServer(_)) => None,
        Err(e) => Some(e.cause()),
    };
    note_responsiveness(config, recalled, unanswered);
    let (outcome, route) = match served {
        Ok(Served::Pipeline(outcome, route)) => (outcome, route),
        Ok(Served::ByServer(compiled)) => {
            record_served_by_v1(&invocation, &compiled);
            return emit(&compiled.result);
        }
        Err(e) => return fall_back(config, &e, &command, &invocation),
    };
    record_outcome(&invocation, &outcome, &route);
    record_faults(config, &outcome);
    if outcome.stderr_streamed {
        let _ = std::io::stdout().lock().write_all(&outcome.result.stdout);
        return outcome.result.exit_status;
    }
    emit(&outcome.result)
}

/// A v1 client hands every command to the server, which classifies it itself.
fn run_v1(config: &ClientConfig, command: &CommandLine, invocation: &Invocation<'_>) -> i32 {
    let recalled = wedged::recall(config);
    if recalled == Recall::Unresponsive {
        return fall_back_unasked(config, command, invocation);
    }
    let Some(runtime) = runtime(config) else {
        invocation.record(
            journal::Outcome::Fallback,
            Some("runtime"),
            None,
            None,
            None,
        );
        return exec_compiler(&command.program, &command.args);
    };
    let served = runtime.block_on(async {
        let mut connection = Connection::open(config).await?;
        compile_on_server_with_status(&mut connection, command, config.compile_timeout).await
    });
    note_responsiveness(
        config,
        recalled,
        served.as_ref().err().map(ClientError::cause),
    );
    match served {
        Ok(compiled) => {
            record_served_by_v1(invocation, &compiled);
            emit(&compiled.result)
        }
        Err(e) => fall_back(config, &e, command, invocation),
    }
}

/// Counts every cache fault of a pipeline run in the client events log.
fn record_faults(config: &ClientConfig, outcome: &hoard_compiler::CompileOutcome) {
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

/// Writes the journal line of a compile a v1 server ran, as its answer says it was served
/// (a server too old to say is taken to have compiled).
fn record_served_by_v1(invocation: &Invocation<'_>, compiled: &ServerCompiled) {
    let (result, reason) = match compiled.cache.as_deref() {
        Some("hit") => (journal::Outcome::Hit, None),
        Some("non_cacheable") => (journal::Outcome::NonCacheable, Some("served_by_v1_server")),
        Some("fallback") => (journal::Outcome::Fallback, Some("served_by_v1_server")),
        _ => (journal::Outcome::Miss, Some("served_by_v1_server")),
    };
    invocation.record(result, reason, None, Some("v1"), None);
}

/// How the last hit or put of a pipeline run travelled, and which tier held a hit.
struct Route {
    transfer: Option<&'static str>,
    tier: Option<String>,
}

/// Writes the journal line of a compile the pipeline ran.
fn record_outcome(
    invocation: &Invocation<'_>,
    outcome: &hoard_compiler::CompileOutcome,
    route: &Route,
) {
    let transfer = route.transfer;
    let first_error = outcome.cache_errors.first().map(fault_cause);
    let (result, reason, transfer) = match &outcome.status {
        CacheStatus::Hit { .. } => (journal::Outcome::Hit, None, transfer),
        CacheStatus::Fallback => (journal::Outcome::Fallback, first_error, None),
        CacheStatus::NotCacheable(reason) => {
            (journal::Outcome::NonCacheable, Some(reason.name()), None)
        }
        CacheStatus::Miss | CacheStatus::Withdrawn => (journal::Outcome::Miss, None, transfer),
    };
    let tier = route
        .tier
        .as_deref()
        .filter(|_| result == journal::Outcome::Hit);
    invocation.record(result, reason, Some(outcome), transfer, tier);
}

/// Where a cacheable compile was served.
enum Served {
    /// The pipeline ran here, over v2 (with how the last hit or put travelled).
    Pipeline(hoard_compiler::CompileOutcome, Route),
    /// A v1 server ran it.
    ByServer(ServerCompiled),
}

/// Replays a compile's output and returns its status. The build must see the compiler's
/// output even if our own stdout is gone, so write errors are ignored.
fn emit(result: &CompileResult) -> i32 {
    let _ = std::io::stdout().lock().write_all(&result.stdout);
    let _ = std::io::stderr().lock().write_all(&result.stderr);
    result.exit_status
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
    invocation.record(
        journal::Outcome::Fallback,
        Some(error.cause()),
        None,
        None,
        None,
    );
    exec_compiler(&command.program, &command.args)
}

/// Compiles without asking a server that did not answer a moment ago (see [`crate::wedged`]),
/// and counts it.
fn fall_back_unasked(
    config: &ClientConfig,
    command: &CommandLine,
    invocation: &Invocation<'_>,
) -> i32 {
    tracing::debug!("the hoard server did not answer recently; compiling without it");
    record_event(
        &config.cache_dir,
        &ClientEvent::LocalFallback("server_wedged".into()),
    );
    invocation.record(
        journal::Outcome::Fallback,
        Some("server_wedged"),
        None,
        None,
        None,
    );
    exec_compiler(&command.program, &command.args)
}

/// Whether a fault's cause means the server could not be reached in time: later wrappers
/// should not wait for it too.
fn unresponsive(cause: &str) -> bool {
    matches!(cause, "timeout" | "server_start")
}

/// Remembers a server that did not answer in time (`fault` is the cause of the fault that
/// kept the cache out, if any), or forgets an expired record once the server served us.
fn note_responsiveness(config: &ClientConfig, recalled: Recall, fault: Option<&str>) {
    match fault {
        Some(cause) if unresponsive(cause) => wedged::remember(config),
        None if recalled == Recall::Expired => wedged::forget(&config.cache_dir),
        _ => {}
    }
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
