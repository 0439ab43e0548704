//! How long a remote tier's operations take, as a histogram of fixed buckets kept in
//! atomics: recording is a few relaxed additions, nothing locks, and a watcher (the server's
//! metrics endpoint) reads a [`LatencySnapshot`] when it is asked. The buckets are fixed so
//! that no exposition format is known here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The buckets' upper bounds, in seconds: from a memcached round trip on a LAN (a
/// millisecond) to an object store's slow write (the default operation timeout is well
/// under the last one). A last, unbounded bucket follows.
pub const LATENCY_BOUNDS_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One operation's durations, counted per bucket.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    /// Per bucket of [`LATENCY_BOUNDS_SECONDS`], then the unbounded one; not cumulative.
    buckets: [AtomicU64; LATENCY_BOUNDS_SECONDS.len() + 1],
    /// The sum of every duration recorded, in microseconds.
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one operation that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BOUNDS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS_SECONDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The figures now. The count is the buckets' sum, so the two always agree even while
    /// operations are being recorded.
    pub(crate) fn snapshot(&self) -> LatencySnapshot {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, count) in self.buckets.iter().enumerate() {
            let bound = LATENCY_BOUNDS_SECONDS
                .get(i)
                .copied()
                .unwrap_or(f64::INFINITY);
            buckets.push((bound, count.load(Ordering::Relaxed)));
        }
        LatencySnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            sum_seconds: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
                .as_secs_f64(),
            buckets,
        }
    }
}

/// A histogram's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// Each bucket's upper bound in seconds (the last is infinite) with the operations that
    /// fell into it and into no lower bucket (not cumulative).
    pub buckets: Vec<(f64, u64)>,
    /// Operations recorded.
    pub count: u64,
    /// Their durations added up, in seconds.
    pub sum_seconds: f64,
}

/// One remote tier's latency for one kind of operation, since the chain was built.
#[derive(Debug, Clone, PartialEq)]
pub struct TierLatency {
    /// The tier's configured name.
    pub tier: String,
    /// `get` (lookups, prefetch and index reads included) or `put` (entries and index
    /// objects).
    pub op: &'static str,
    /// The durations, a timed-out operation counted at its deadline.
    pub latency: LatencySnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_duration_lands_in_the_first_bucket_that_holds_it() {
        let histogram = LatencyHistogram::default();
        histogram.record(Duration::from_micros(500));
        histogram.record(Duration::from_millis(1));
        histogram.record(Duration::from_millis(7));
        histogram.record(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.buckets.len(), LATENCY_BOUNDS_SECONDS.len() + 1);
        assert_eq!(snapshot.buckets[0], (0.001, 2), "500 µs and exactly 1 ms");
        assert_eq!(snapshot.buckets[3], (0.01, 1));
        assert_eq!(snapshot.buckets.last(), Some(&(f64::INFINITY, 1)));
        let expected = 0.0005 + 0.001 + 0.007 + 60.0;
        assert!(
            (snapshot.sum_seconds - expected).abs() < 1e-9,
            "{snapshot:?}"
        );
    }
}
