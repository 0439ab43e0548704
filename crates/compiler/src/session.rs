//! One compile's session with the cache: every cache call the pipeline makes goes through
//! it, timed as lookup, its failures kept for the outcome, and whether a lookup was made
//! remembered so a miss is counted exactly once. It also runs the compiler, timed as compile.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::SystemTime;

use hoard_storage::{CacheKey, OutputPath};

use crate::cache::{ArtifactCache, CacheError};
use crate::clock::PhaseClock;
use crate::compile::Compile;
use crate::manifest::{Candidate, Manifest};
use crate::outcome::{CacheStatus, CompileOutcome};
use crate::recipe::{MissProbe, miss_probe_key};
use crate::result::CompileResult;
use crate::runner::{self, Run};

/// One run of the pipeline for one compile.
pub(crate) struct Session<'a> {
    /// The compile.
    pub compile: &'a Compile,
    cache: &'a dyn ArtifactCache,
    /// When the session began: an input modified since may not be what the compiler read.
    pub started: SystemTime,
    errors: Vec<CacheError>,
    /// Whether the cache has seen a result lookup for this compile (and so counted its miss).
    looked_up: bool,
    streamed: bool,
    clock: PhaseClock,
    /// Why the compile's key keeps its paths, as the family says.
    pub paths_kept: Option<&'static str>,
    /// Why it missed, once a miss has stored its entry (see [`CompileOutcome::miss_reason`]).
    miss_reason: Option<String>,
}

impl<'a> Session<'a> {
    /// A session for `compile` over `cache`, starting now.
    pub(crate) fn new(compile: &'a Compile, cache: &'a dyn ArtifactCache) -> Self {
        Self {
            compile,
            cache,
            started: SystemTime::now(),
            errors: Vec::new(),
            looked_up: false,
            streamed: false,
            clock: PhaseClock::start(),
            paths_kept: None,
            miss_reason: None,
        }
    }

    /// The manifest under `key`; an empty one when none is stored or it cannot be read.
    pub(crate) async fn get_manifest<C: Candidate>(
        &mut self,
        key: &CacheKey,
    ) -> Result<Manifest<C>, CacheError> {
        Ok(
            match self.clock.lookup(self.cache.get_manifest(key)).await? {
                Some(bytes) => Manifest::decode(&bytes),
                None => Manifest::default(),
            },
        )
    }

    /// Looks a result up, writing `outputs` on a hit.
    pub(crate) async fn lookup(
        &mut self,
        key: &CacheKey,
        outputs: &[OutputPath],
    ) -> Result<Option<CompileResult>, CacheError> {
        self.looked_up = true;
        let language = self.compile.language;
        self.clock
            .lookup(self.cache.get(key, outputs, language))
            .await
    }

    /// Stores `result` with `outputs` under `key`; false (with the error kept) when the
    /// cache refused it. With `remember`, the inputs noted so far become the entry's
    /// explain record.
    pub(crate) async fn store(
        &mut self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
        remember: bool,
    ) -> bool {
        let language = self.compile.language;
        let stored = self
            .clock
            .lookup(self.cache.put(key, outputs, result, language))
            .await;
        match stored {
            Ok(()) => {
                if remember {
                    self.remember(key);
                }
                true
            }
            Err(e) => {
                self.errors.push(e);
                false
            }
        }
    }

    /// Keeps the inputs noted so far as the explain record of the entry just stored under
    /// `key`, and the miss reason: how they differ from the record it replaces. Only a miss
    /// stores, so a hit never reads a record.
    fn remember(&mut self, key: &CacheKey) {
        let compile = self.compile;
        let (dir, cwd) = (&compile.state_dir, &compile.command.cwd);
        let earlier = compile
            .outputs
            .first()
            .and_then(|output| crate::record::read_record(dir, cwd, &output.path));
        if let Some(kept) = crate::record::remember(dir, cwd, &compile.outputs, key) {
            self.miss_reason = Some(crate::input_diff::miss_reason(
                earlier.as_ref(),
                &kept.inputs,
            ));
        }
    }

    /// Stores `manifest` under `key`; a failure is kept and only costs a later hit.
    pub(crate) async fn put_manifest<C: Candidate>(
        &mut self,
        key: &CacheKey,
        manifest: &Manifest<C>,
    ) {
        match manifest.encode() {
            Ok(bytes) => {
                let put = self.clock.lookup(self.cache.put_manifest(key, bytes)).await;
                if let Err(e) = put {
                    self.errors.push(e);
                }
            }
            Err(e) => self
                .errors
                .push(CacheError::new(format!("encoding manifest {key}: {e}"))),
        }
    }

    /// When no result lookup preceded the compile, has its miss counted where misses are
    /// counted (a v2 server on `CacheGet`) by looking up a key nothing is stored under. No
    /// outputs are named, so nothing is written over what was just compiled.
    pub(crate) async fn count_miss(&mut self, probe: MissProbe, manifest_key: &CacheKey) {
        if self.looked_up {
            return;
        }
        let key = miss_probe_key(probe, manifest_key);
        let language = self.compile.language;
        let probed = self
            .clock
            .lookup(self.cache.count_miss(&key, language))
            .await;
        if let Err(e) = probed {
            self.errors.push(e);
        }
    }

    /// Runs the compiler (`shown` names it if it cannot start), timed as the compile; with
    /// `stream`, its stderr is copied through as it runs.
    pub(crate) async fn run(
        &mut self,
        program: &Path,
        args: &[OsString],
        shown: &OsStr,
        stream: bool,
    ) -> CompileResult {
        self.streamed |= stream;
        let run = runner::run(Run {
            program,
            args,
            cmd: &self.compile.command,
            shown,
            stream,
        });
        self.clock.compile(run).await
    }

    /// Keeps a cache failure for the outcome.
    pub(crate) fn keep_error(&mut self, error: CacheError) {
        self.errors.push(error);
    }

    /// Whether the cache withdrew (see [`ArtifactCache::withdrawn`]).
    pub(crate) fn withdrawn(&self) -> bool {
        self.cache.withdrawn()
    }

    /// The outcome: `result`, served as `status`.
    pub(crate) fn finish(self, result: CompileResult, status: CacheStatus) -> CompileOutcome {
        let miss_reason = match status {
            CacheStatus::Miss => self.miss_reason,
            _ => None,
        };
        CompileOutcome {
            result,
            status,
            cache_errors: self.errors,
            language: Some(self.compile.language),
            stderr_streamed: self.streamed,
            times: self.clock.times(),
            paths_kept: self.paths_kept,
            miss_reason,
        }
    }
}
