//! Phase timing for one compile: how much of it went to cache calls and how much to the
//! compiler, the rest being hashing ([`PhaseTimes`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::outcome::PhaseTimes;

/// Accumulates [`PhaseTimes`] for one attempt. Atomic counters, so an attempt's future
/// stays `Send` (the server runs v1 pipelines on spawned tasks).
#[derive(Debug)]
pub(crate) struct PhaseClock {
    begun: Instant,
    lookup_ns: AtomicU64,
    compile_ns: AtomicU64,
}

impl PhaseClock {
    /// A clock started now.
    pub(crate) fn start() -> Self {
        Self {
            begun: Instant::now(),
            lookup_ns: AtomicU64::new(0),
            compile_ns: AtomicU64::new(0),
        }
    }

    fn add(counter: &AtomicU64, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(ns, Ordering::Relaxed);
    }

    /// Runs a cache call, counting its time as lookup.
    pub(crate) async fn lookup<T>(&self, call: impl Future<Output = T>) -> T {
        let begun = Instant::now();
        let out = call.await;
        Self::add(&self.lookup_ns, begun);
        out
    }

    /// Runs the compiler, counting its time as compile.
    pub(crate) async fn compile<T>(&self, run: impl Future<Output = T>) -> T {
        let begun = Instant::now();
        let out = run.await;
        Self::add(&self.compile_ns, begun);
        out
    }

    /// The times so far; hashing is whatever is neither lookup nor compile.
    pub(crate) fn times(&self) -> PhaseTimes {
        let lookup = Duration::from_nanos(self.lookup_ns.load(Ordering::Relaxed));
        let compile = Duration::from_nanos(self.compile_ns.load(Ordering::Relaxed));
        PhaseTimes {
            hashing: self.begun.elapsed().saturating_sub(lookup + compile),
            lookup,
            compile,
        }
    }
}
