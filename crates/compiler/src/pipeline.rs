//! The one cached-compile pipeline, for every compiler family: look the compile's manifest
//! up and fetch a fitting candidate's result (a direct hit); else follow the family's plan
//! (a result key known before compiling, or one learnt from what the compile read); compile;
//! store the result and record the candidate. A cache failure falls back to the plain
//! compile, so whatever the cache does, the caller gets exactly what the compiler gives.
//! Families plug in through [`Family`]; this module is the only one that knows them all.

use std::path::PathBuf;

use hoard_storage::CacheKey;

use crate::c::CFamily;
use crate::cache::{ArtifactCache, CacheError};
use crate::classify::{CacheableCompile, Kind, classify};
use crate::command::{CommandLine, PipelineConfig};
use crate::digest::Digests;
use crate::family::{Direct, Family, Plan};
use crate::manifest::Candidate;
use crate::outcome::{CacheStatus, CompileOutcome, PhaseTimes};
use crate::result::CompileResult;
use crate::runner::{self, Run};
use crate::rust::RustFamily;
use crate::session::Session;

/// Runs `compile` through `cache`: a hit writes the outputs and replays the compiler's output;
/// a miss compiles and stores a successful result. A cache error never fails the compile.
pub async fn cached_compile(
    compile: &CacheableCompile,
    cache: &dyn ArtifactCache,
) -> CompileOutcome {
    // Every field the keys hash is noted, so a stored entry keeps a record of its inputs
    // for `hoard --explain`.
    crate::record::recording(async {
        let session = Session::new(&compile.base, cache);
        match &compile.kind {
            Kind::C(c) => drive(session, &mut CFamily::new(c)).await,
            Kind::Rust(rust) => drive(session, &mut RustFamily::new(rust)).await,
        }
    })
    .await
}

/// Runs any command a build hands to a compiler: classified, then through [`cached_compile`]
/// when it is cacheable, else run as it is (status [`CacheStatus::NotCacheable`]). This is the
/// whole pipeline for a caller that does not classify first (the server's v1 handler, an
/// embedding build tool).
pub async fn compile_command(
    command: &CommandLine,
    config: &PipelineConfig,
    cache: &dyn ArtifactCache,
) -> CompileOutcome {
    // Classifying may run the compiler once to learn its identity: keep that off the runtime.
    let classified = {
        let (command, config) = (command.clone(), config.clone());
        tokio::task::spawn_blocking(move || classify(&command, &config)).await
    };
    let (status, cache_errors) = match classified {
        Ok(Ok(compile)) => return cached_compile(&compile, cache).await,
        Ok(Err(reason)) => (CacheStatus::NotCacheable(reason), Vec::new()),
        Err(e) => (
            CacheStatus::Fallback,
            vec![CacheError::new(format!(
                "classifying the command failed: {e}"
            ))],
        ),
    };
    CompileOutcome {
        result: run_compiler(command).await,
        status,
        cache_errors,
        language: None,
        stderr_streamed: false,
        times: PhaseTimes::default(),
        paths_kept: None,
        miss_reason: None,
    }
}

/// Runs the command as it is, capturing its output: the plain compile every fallback uses.
pub async fn run_compiler(cmd: &CommandLine) -> CompileResult {
    let program = crate::program::resolve_program(&cmd.program, &cmd.cwd, &cmd.env)
        .unwrap_or_else(|| PathBuf::from(&cmd.program));
    runner::run(Run {
        program: &program,
        args: &cmd.args,
        cmd,
        shown: &cmd.program,
        stream: false,
    })
    .await
}

/// The pipeline, for one compile of any family.
async fn drive<F: Family>(mut session: Session<'_>, family: &mut F) -> CompileOutcome {
    session.paths_kept = family.paths_kept(session.compile);
    let manifest_key = match family.manifest_key(session.compile) {
        Ok(key) => key,
        Err(why) => {
            // A missing input of the key (an `--extern` crate, a linker): the compiler
            // reports what is wrong.
            tracing::debug!(error = %why, "compile not keyed");
            return uncached(session, family).await;
        }
    };
    let mut direct = None;
    if let Some(key) = manifest_key {
        match by_manifest(&mut session, family, key).await {
            Ok(Served::Hit(result)) => {
                return session.finish(result, CacheStatus::Hit { direct: true });
            }
            Ok(Served::Miss(manifest)) => direct = Some(manifest),
            Err(e) => return fallback(session, family, e).await,
        }
    }
    match family.plan(&mut session, direct.as_ref()).await {
        Plan::Key(key) => by_key(session, family, &key, direct).await,
        Plan::AfterCompile => match direct {
            Some(direct) => after_compile(session, family, direct).await,
            None => uncached(session, family).await,
        },
        Plan::Uncached => uncached(session, family).await,
    }
}

/// What a manifest lookup found.
enum Served<C> {
    Hit(CompileResult),
    Miss(Direct<C>),
}

/// Looks the manifest under `key` up and fetches the result of the newest candidate that
/// fits; a candidate whose result was evicted is a miss (it will be made again).
async fn by_manifest<F: Family>(
    session: &mut Session<'_>,
    family: &F,
    key: CacheKey,
) -> Result<Served<F::Candidate>, CacheError> {
    let manifest = session.get_manifest::<F::Candidate>(&key).await?;
    let compile = session.compile;
    let mut digests = Digests::memo(&compile.state_dir);
    let found = manifest.find(|c| family.fits(compile, c, &mut digests));
    tracing::debug!(%key, candidates = manifest.len(), found = found.is_some(), "manifest lookup");
    if let Some(candidate) = found
        && let Some(result) = family.fetch(session, candidate).await?
    {
        family.hit(compile, candidate, &result);
        return Ok(Served::Hit(result));
    }
    Ok(Served::Miss(Direct { key, manifest }))
}

/// A result key known before compiling: look it up; on a miss compile and store under it.
/// Either way the manifest, if any, learns the candidate.
async fn by_key<F: Family>(
    mut session: Session<'_>,
    family: &mut F,
    key: &CacheKey,
    direct: Option<Direct<F::Candidate>>,
) -> CompileOutcome {
    let compile = session.compile;
    let result = match session.lookup(key, &compile.outputs).await {
        Ok(Some(mut result)) => {
            if let Err(e) = family.delivered(compile, &mut result) {
                return fallback(session, family, e).await;
            }
            if let Some(direct) = direct {
                add_candidate(&mut session, family, direct, key).await;
            }
            return session.finish(result, CacheStatus::Hit { direct: false });
        }
        Ok(None) => match family.compile(&mut session).await {
            Ok(result) => result,
            Err(e) => return fallback(session, family, e).await,
        },
        Err(e) => return fallback(session, family, e).await,
    };
    if result.exit_status == 0
        && store_result(&mut session, family, key, &result).await
        && let Some(direct) = direct
    {
        add_candidate(&mut session, family, direct, key).await;
    }
    session.finish(result, CacheStatus::Miss)
}

/// Stores a successful compile's result under `key`, as the family wants it stored.
async fn store_result<F: Family>(
    session: &mut Session<'_>,
    family: &F,
    key: &CacheKey,
    result: &CompileResult,
) -> bool {
    let compile = session.compile;
    let stored = match family.stored_result(compile, result) {
        Ok(stored) => stored,
        Err(why) => {
            tracing::debug!(error = %why, "result not stored");
            return false;
        }
    };
    let done = session
        .store(key, &stored.outputs, &stored.result, true)
        .await;
    if let Some(scratch) = stored.scratch {
        // A failure only leaves a stray temporary file beside the dependency file.
        let _ = scratch.close();
    }
    done
}

/// Adds the candidate for a result already stored under `key` to the manifest.
async fn add_candidate<F: Family>(
    session: &mut Session<'_>,
    family: &mut F,
    mut direct: Direct<F::Candidate>,
    key: &CacheKey,
) {
    match family.candidate(session, &direct, Some(key)).await {
        Ok(candidate) => {
            direct.manifest.add(candidate);
            session.put_manifest(&direct.key, &direct.manifest).await;
        }
        Err(why) => tracing::debug!(error = %why, "compile not recorded in its manifest"),
    }
}

/// Compiles, then keys the result by what the compile read: the miss is counted if no
/// lookup preceded, and the result (or a failure the family may store) is recorded.
async fn after_compile<F: Family>(
    mut session: Session<'_>,
    family: &mut F,
    mut direct: Direct<F::Candidate>,
) -> CompileOutcome {
    let result = match family.compile(&mut session).await {
        Ok(result) => result,
        Err(e) => return fallback(session, family, e).await,
    };
    let candidate = if result.exit_status == 0 {
        session.count_miss(F::MISS_PROBE, &direct.key).await;
        family
            .candidate(&mut session, &direct, None)
            .await
            .map(Some)
    } else {
        // A failed compile is not a miss: no cache could have served it unless its family
        // stores failures, and then its own lookup counted.
        family.failure_candidate(&session, &direct, &result)
    };
    match candidate {
        Ok(Some(candidate)) => record(&mut session, family, &mut direct, candidate, &result).await,
        Ok(None) => {}
        Err(why) => tracing::debug!(error = %why, "compile not recorded"),
    }
    session.finish(result, CacheStatus::Miss)
}

/// Stores `result` as `candidate`'s and adds the candidate to the manifest. Anything that
/// keeps it from being recorded safely only costs a future hit.
async fn record<F: Family>(
    session: &mut Session<'_>,
    family: &F,
    direct: &mut Direct<F::Candidate>,
    candidate: F::Candidate,
    result: &CompileResult,
) {
    let compile = session.compile;
    let stored = match family.stored(compile, &candidate, result) {
        Ok(stored) => stored,
        Err(why) => {
            tracing::debug!(error = %why, "compile not recorded");
            return;
        }
    };
    let key = candidate.result_key();
    // Only a successful compile's inputs become the output's explain record.
    let remember = result.exit_status == 0;
    if !session
        .store(&key, &stored.outputs, &stored.result, remember)
        .await
    {
        return;
    }
    if let Some(scratch) = stored.scratch {
        // A failure only leaves a stray temporary file beside the dependency file.
        let _ = scratch.close();
    }
    family.after_store(compile, &candidate);
    direct.manifest.add(candidate);
    session.put_manifest(&direct.key, &direct.manifest).await;
}

/// Compiles as the command says and stores nothing.
async fn uncached<F: Family>(mut session: Session<'_>, family: &F) -> CompileOutcome {
    let result = family.compile_plain(&mut session).await;
    session.finish(result, CacheStatus::Miss)
}

/// A cache call failed: compile without the cache, unless the cache withdrew.
async fn fallback<F: Family>(
    mut session: Session<'_>,
    family: &F,
    error: CacheError,
) -> CompileOutcome {
    if session.withdrawn() {
        return session.finish(CompileResult::default(), CacheStatus::Withdrawn);
    }
    tracing::warn!(%error, "cache lookup failed; compiling without the cache");
    session.keep_error(error);
    let result = family.compile_plain(&mut session).await;
    session.finish(result, CacheStatus::Fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The server runs pipelines on spawned tasks: the future must stay `Send` (this fails
    /// to compile otherwise).
    #[allow(dead_code)]
    fn the_pipeline_future_is_send<'a>(
        compile: &'a CacheableCompile,
        cache: &'a dyn ArtifactCache,
    ) -> impl Future<Output = CompileOutcome> + Send + 'a {
        cached_compile(compile, cache)
    }

    #[tokio::test]
    async fn a_missing_program_exits_127_and_says_so() {
        let cmd = CommandLine {
            program: "no-such-compiler-anywhere".into(),
            args: vec!["-c".into()],
            cwd: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin".into())],
        };
        let result = run_compiler(&cmd).await;
        assert_eq!(result.exit_status, 127);
        let stderr = String::from_utf8(result.stderr).unwrap();
        assert!(stderr.contains("no-such-compiler-anywhere"), "{stderr}");
    }

    #[tokio::test]
    async fn the_plain_compile_keeps_status_and_output() {
        let cmd = CommandLine {
            program: "sh".into(),
            args: vec!["-c".into(), "echo out; echo err >&2; exit 3".into()],
            cwd: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        };
        let result = run_compiler(&cmd).await;
        assert_eq!(
            result,
            CompileResult {
                stdout: b"out\n".to_vec(),
                stderr: b"err\n".to_vec(),
                exit_status: 3,
                compile_time: Duration::ZERO,
                output_digests: Vec::new(),
            }
        );
        assert!(result.compile_time > Duration::ZERO);
    }
}
