//! The seam between the one cached-compile pipeline and a compiler family: the [`Family`]
//! trait, and the few types its steps exchange with the pipeline.

use std::borrow::Cow;

use hoard_storage::{CacheKey, OutputPath};

use crate::cache::CacheError;
use crate::compile::Compile;
use crate::digest::Digests;
use crate::manifest::{Candidate, Manifest};
use crate::recipe::MissProbe;
use crate::result::CompileResult;
use crate::session::Session;

/// A manifest looked up for a compile, and the key it is kept under.
pub(crate) struct Direct<C> {
    /// The manifest key.
    pub key: CacheKey,
    /// What was found under it (empty when nothing was).
    pub manifest: Manifest<C>,
}

/// What to do when no manifest candidate served the compile.
pub(crate) enum Plan {
    /// Look this result key up; on a miss compile, and store under it when the compile
    /// succeeds (C's preprocessor mode, and sources the compiler does not preprocess).
    Key(CacheKey),
    /// Compile; the result key comes from what the compile read (rustc's dependency file,
    /// C's depend mode). Needs a manifest to record the candidate in.
    AfterCompile,
    /// Compile and store nothing.
    Uncached,
}

/// What is stored for a candidate: the outputs to read and the result to keep, which a
/// family may rewrite (rustc stores paths made placeholders, its dependency file beside).
pub(crate) struct Stored<'a> {
    /// The outputs to read, by role.
    pub outputs: Cow<'a, [OutputPath]>,
    /// The result as stored.
    pub result: Cow<'a, CompileResult>,
    /// A scratch file the outputs name, removed once the entry is stored.
    pub scratch: Option<tempfile::TempPath>,
}

/// One compiler family's part of the cached-compile pipeline: how to key a compile, find
/// the inputs an earlier compile read and check them, run the compiler, and what a result
/// (or a failure) may be stored as. The pipeline ([`crate::pipeline`]) owns everything
/// else, for every family alike: manifest lookup and put, result lookup and store, the miss
/// probe, fallback and withdrawal when the cache fails, phase timing and the explain record.
///
/// Adding a third compiler family (nvcc, clang-cl) means writing one impl of this trait,
/// not a third pipeline.
pub(crate) trait Family: Send {
    /// What the family's manifests list for one earlier compile.
    type Candidate: Candidate + Send + Sync;
    /// Why a compile could not be keyed or recorded (costs a hit, never the build).
    type NotRecorded: std::error::Error;

    /// The recipe of the key looked up to count a miss no lookup preceded.
    const MISS_PROBE: MissProbe;

    /// The key this compile's manifest is kept under; `None` when it is not looked up
    /// through a manifest. An error means it cannot be keyed: it is compiled uncached.
    fn manifest_key(&mut self, compile: &Compile) -> Result<Option<CacheKey>, Self::NotRecorded>;

    /// Whether an earlier compile's candidate fits this compile: its inputs are unchanged.
    fn fits(&self, compile: &Compile, candidate: &Self::Candidate, digests: &mut Digests) -> bool;

    /// Fetches a fitting candidate's result, writing its outputs.
    async fn fetch(
        &self,
        session: &mut Session<'_>,
        candidate: &Self::Candidate,
    ) -> Result<Option<CompileResult>, CacheError> {
        let compile = session.compile;
        let found = session
            .lookup(&candidate.result_key(), &compile.outputs)
            .await?;
        match found {
            Some(mut result) => {
                self.delivered(compile, &mut result)?;
                Ok(Some(result))
            }
            None => Ok(None),
        }
    }

    /// Why this compile's key keeps its paths (see [`CompileOutcome::paths_kept`]).
    ///
    /// [`CompileOutcome::paths_kept`]: crate::CompileOutcome::paths_kept
    fn paths_kept(&self, _compile: &Compile) -> Option<&'static str> {
        None
    }

    /// Makes a result just fetched this compile's: what [`Family::stored_result`] made
    /// path-independent (the dependency file's paths, the compiler's messages) is resolved
    /// for this build. An error falls back to the plain compile.
    fn delivered(&self, _compile: &Compile, _result: &mut CompileResult) -> Result<(), CacheError> {
        Ok(())
    }

    /// Called after a manifest hit delivered `result`.
    fn hit(&self, _compile: &Compile, _candidate: &Self::Candidate, _result: &CompileResult) {}

    /// What to do when no candidate served the compile (`direct` holds the manifest, when
    /// the compile has one).
    async fn plan(
        &mut self,
        session: &mut Session<'_>,
        direct: Option<&Direct<Self::Candidate>>,
    ) -> Plan;

    /// The command as given, by the detected compiler: for a fallback and uncached compiles.
    async fn compile_plain(&self, session: &mut Session<'_>) -> CompileResult;

    /// The compile the plan runs; an error falls back to [`Family::compile_plain`].
    async fn compile(&mut self, session: &mut Session<'_>) -> Result<CompileResult, CacheError> {
        Ok(self.compile_plain(session).await)
    }

    /// The candidate for the compile just served or run: `result_key` is the key the
    /// result is under when a [`Plan::Key`] named it, `None` after [`Plan::AfterCompile`].
    async fn candidate(
        &mut self,
        session: &mut Session<'_>,
        direct: &Direct<Self::Candidate>,
        result_key: Option<&CacheKey>,
    ) -> Result<Self::Candidate, Self::NotRecorded>;

    /// The candidate a failed compile may be stored as, if any (by default none is).
    fn failure_candidate(
        &self,
        _session: &Session<'_>,
        _direct: &Direct<Self::Candidate>,
        _result: &CompileResult,
    ) -> Result<Option<Self::Candidate>, Self::NotRecorded> {
        Ok(None)
    }

    /// What to store for `candidate` (by default what [`Family::stored_result`] gives).
    fn stored<'a>(
        &self,
        compile: &'a Compile,
        _candidate: &Self::Candidate,
        result: &'a CompileResult,
    ) -> Result<Stored<'a>, Self::NotRecorded> {
        self.stored_result(compile, result)
    }

    /// What to store for a successful compile under a key known before it ran (by default
    /// the outputs and the result as they are).
    fn stored_result<'a>(
        &self,
        compile: &'a Compile,
        result: &'a CompileResult,
    ) -> Result<Stored<'a>, Self::NotRecorded> {
        Ok(Stored {
            outputs: Cow::Borrowed(&compile.outputs),
            result: Cow::Borrowed(result),
            scratch: None,
        })
    }

    /// Called once `candidate`'s result is stored.
    fn after_store(&self, _compile: &Compile, _candidate: &Self::Candidate) {}
}
