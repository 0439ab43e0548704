//! The journal line of one wrapper invocation: what it was (where, which output, which
//! language) filled in as it becomes known, and how it was served, written once at its end
//! (before an `exec`, which never returns).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use hoard_compiler::{CacheStatus, CompileOutcome};

use crate::connection::HitSource;
use crate::journal::{self, Outcome};
use crate::v1::ServerCompiled;

/// What the journal keeps of this invocation.
pub(crate) struct Invocation<'a> {
    journal: Option<&'a Path>,
    started: SystemTime,
    clock: Instant,
    cwd: PathBuf,
    /// The compile's first output, once classified.
    pub output: Option<PathBuf>,
    /// The crate a rustc compile builds, once classified.
    pub crate_name: Option<String>,
    /// The compile's language, once classified.
    pub language: Option<String>,
}

/// How the last hit or put of a pipeline run travelled, and which tier held a hit.
pub(crate) struct Route {
    pub transfer: Option<&'static str>,
    pub source: HitSource,
}

impl<'a> Invocation<'a> {
    /// An invocation starting now in `cwd`, journaled to `journal` if there is one.
    pub fn start(journal: Option<&'a Path>, cwd: PathBuf) -> Self {
        Self {
            journal,
            started: SystemTime::now(),
            clock: Instant::now(),
            cwd,
            output: None,
            crate_name: None,
            language: None,
        }
    }

    /// Writes the journal line of a compile the cache had no part in (`reason` says why).
    pub fn uncached(&self, result: Outcome, reason: &str) {
        self.record(result, Some(reason), None, None, &HitSource::default());
    }

    /// Writes the journal line of a compile a v1 server ran, as its answer says it was
    /// served (a server too old to say is taken to have compiled).
    pub fn served_by_v1(&self, compiled: &ServerCompiled) {
        let (result, reason) = match compiled.cache.as_deref() {
            Some("hit") => (Outcome::Hit, None),
            Some("non_cacheable") => (Outcome::NonCacheable, Some("served_by_v1_server")),
            Some("fallback") => (Outcome::Fallback, Some("served_by_v1_server")),
            _ => (Outcome::Miss, Some("served_by_v1_server")),
        };
        self.record(result, reason, None, Some("v1"), &HitSource::default());
    }

    /// Writes the journal line of a compile the pipeline ran. `first_fault` is the cause of
    /// its first cache fault, if any.
    pub fn pipeline(&self, outcome: &CompileOutcome, route: &Route, first_fault: Option<&str>) {
        let transfer = route.transfer;
        let (result, reason, transfer) = match &outcome.status {
            CacheStatus::Hit { .. } => (Outcome::Hit, None, transfer),
            CacheStatus::NotCacheable(reason) => (Outcome::NonCacheable, Some(reason.name()), None),
            // A miss whose key keeps its paths says why: another checkout cannot share it.
            CacheStatus::Miss | CacheStatus::Withdrawn => {
                (Outcome::Miss, outcome.paths_kept, transfer)
            }
            // `Fallback`, and any status added later (the enum is non-exhaustive): the one
            // outcome that claims nothing of the cache.
            _ => (Outcome::Fallback, first_fault, None),
        };
        let none = HitSource::default();
        let source = if result == Outcome::Hit {
            &route.source
        } else {
            &none
        };
        self.record(result, reason, Some(outcome), transfer, source);
    }

    fn record(
        &self,
        result: Outcome,
        reason: Option<&str>,
        outcome: Option<&CompileOutcome>,
        transfer: Option<&str>,
        source: &HitSource,
    ) {
        let Some(path) = self.journal else { return };
        let times = outcome.map(|o| o.times).unwrap_or_default();
        let direct = outcome.and_then(|o| match o.status {
            CacheStatus::Hit { direct } => Some(direct),
            _ => None,
        });
        let miss_reason = outcome
            .filter(|_| result == Outcome::Miss)
            .and_then(|o| o.miss_reason.clone());
        // A hit's result carries the compile time its entry recorded (zero when unknown).
        let saved_ms = outcome
            .filter(|o| result == Outcome::Hit && !o.result.compile_time.is_zero())
            .map(|o| journal::ms(o.result.compile_time));
        journal::append(
            path,
            &journal::JournalLine {
                time: journal::unix_time(self.started),
                cwd: self.cwd.clone(),
                output: self.output.clone(),
                crate_name: self.crate_name.clone(),
                language: self.language.clone(),
                result,
                reason: reason.map(str::to_owned),
                miss_reason,
                saved_ms,
                direct,
                tier: source.tier.clone(),
                signer: source.signer.clone(),
                transfer: transfer.map(str::to_owned),
                hashing_ms: journal::ms(times.hashing),
                lookup_ms: journal::ms(times.lookup),
                compile_ms: journal::ms(times.compile),
                total_ms: journal::ms(self.clock.elapsed()),
            },
        );
    }
}
