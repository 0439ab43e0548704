//! A circuit breaker for one remote tier: after a run of failures the tier is not called for
//! a cool-down, then one probe decides whether it is back.
//!
//! Without it a dead tier would cost every compile a timeout; with it, a dead tier costs a
//! few timeouts, then one probe per cool-down (5 s doubling up to 60 s), however many
//! compiles run meanwhile.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
pub(crate) const FAILURE_THRESHOLD: u32 = 3;
/// First cool-down after the breaker opens.
pub(crate) const BASE_COOLDOWN: Duration = Duration::from_secs(5);
/// Longest cool-down, reached by doubling after each failed probe.
pub(crate) const MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// What the breaker allows right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Call the tier: it is believed healthy.
    Call,
    /// Call the tier as the one probe of a half-open breaker.
    Probe,
    /// Do not call the tier.
    Reject,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { since: Instant, cooldown: Duration },
}

/// The breaker of one tier. Thread-safe; every method takes a short lock.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    base: Duration,
    max: Duration,
    /// A probe that has not reported after this long was lost (its future dropped), so
    /// another may go; without this a cancelled probe would keep the tier shut for good.
    probe_deadline: Duration,
}

impl Breaker {
    /// A closed breaker. `probe_deadline` should exceed the longest an operation may take.
    pub(crate) fn new(probe_deadline: Duration) -> Self {
        Self::with_timing(
            FAILURE_THRESHOLD,
            BASE_COOLDOWN,
            MAX_COOLDOWN,
            probe_deadline,
        )
    }

    /// A closed breaker with explicit timings (tests use short ones).
    pub(crate) fn with_timing(
        threshold: u32,
        base: Duration,
        max: Duration,
        probe_deadline: Duration,
    ) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            base,
            max: max.max(base),
            probe_deadline,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether to call the tier now; a `Probe` must be followed by `success` or `failure`.
    pub(crate) fn admit(&self) -> Admit {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Admit::Call,
            State::Open { until, cooldown } if now >= until => {
                *state = State::HalfOpen {
                    since: now,
                    cooldown,
                };
                Admit::Probe
            }
            State::HalfOpen { since, cooldown }
                if now.duration_since(since) >= self.probe_deadline =>
            {
                *state = State::HalfOpen {
                    since: now,
                    cooldown,
                };
                Admit::Probe
            }
            State::Open { .. } | State::HalfOpen { .. } => Admit::Reject,
        }
    }

    /// The tier answered: close the breaker.
    pub(crate) fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// The tier failed or timed out. Returns true when this failure opened the breaker.
    pub(crate) fn failure(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                *state = State::Open {
                    until: now + self.base,
                    cooldown: self.base,
                };
                true
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::HalfOpen { cooldown, .. } => {
                let cooldown = (cooldown * 2).min(self.max);
                *state = State::Open {
                    until: now + cooldown,
                    cooldown,
                };
                true
            }
            // A call admitted before the breaker opened reports late: the tier is already shut.
            State::Open { .. } => false,
        }
    }

    /// How long until an open breaker lets the next probe through: `None` unless it is open
    /// and still cooling down.
    pub(crate) fn retry_in(&self) -> Option<Duration> {
        match *self.lock() {
            State::Open { until, .. } => {
                Some(until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
            }
            _ => None,
        }
    }

    /// `closed`, `open` or `half_open`, for stats.
    pub(crate) fn state_name(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { until, .. } if Instant::now() >= until => "half_open",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Breaker {
        Breaker::with_timing(
            2,
            Duration::from_millis(20),
            Duration::from_millis(50),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cooldown() {
        let b = quick();
        assert_eq!(b.admit(), Admit::Call);
        assert!(!b.failure());
        assert_eq!(b.state_name(), "closed");
        assert!(b.failure());
        assert_eq!(b.state_name(), "open");
        assert_eq!(b.admit(), Admit::Reject);
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(b.admit(), Admit::Probe);
        // One probe at a time.
        assert_eq!(b.admit(), Admit::Reject);
        b.success();
        assert_eq!(b.state_name(), "closed");
        assert_eq!(b.admit(), Admit::Call);
    }

    #[test]
    fn a_failed_probe_doubles_the_cooldown_up_to_the_cap() {
        let b = quick();
        b.failure();
        b.failure();
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(b.admit(), Admit::Probe);
        assert!(b.failure());
        // Now 40 ms: still shut after 25 ms.
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(b.admit(), Admit::Reject);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(b.admit(), Admit::Probe);
        b.failure();
        // Capped at 50 ms, not 80.
        std::thread::sleep(Duration::from_millis(55));
        assert_eq!(b.admit(), Admit::Probe);
    }

    #[test]
    fn only_an_open_breaker_has_a_time_to_retry_within_its_cooldown() {
        let b = Breaker::with_timing(
            1,
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(120),
        );
        assert_eq!(b.retry_in(), None);
        b.failure();
        let wait = b.retry_in().expect("open: a time to retry");
        assert!(
            wait <= Duration::from_secs(60) && !wait.is_zero(),
            "{wait:?}"
        );
        b.success();
        assert_eq!(b.retry_in(), None);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = quick();
        b.failure();
        b.success();
        assert!(!b.failure());
        assert_eq!(b.state_name(), "closed");
    }

    #[test]
    fn a_lost_probe_is_replaced_after_its_deadline() {
        let b = Breaker::with_timing(
            1,
            Duration::from_millis(1),
            Duration::from_millis(1),
            Duration::from_millis(10),
        );
        b.failure();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.admit(), Admit::Reject);
        std::thread::sleep(Duration::from_millis(12));
        assert_eq!(b.admit(), Admit::Probe);
    }

    #[test]
    fn only_an_open_breaker_says_when_it_retries() {
        let b = Breaker::with_timing(
            1,
            Duration::from_secs(30),
            Duration::from_secs(60),
            Duration::from_secs(10),
        );
        assert_eq!(b.retry_in(), None);
        b.failure();
        let wait = b.retry_in().expect("open for 30 s");
        assert!(wait <= Duration::from_secs(30), "{wait:?}");
        b.success();
        assert_eq!(b.retry_in(), None);
    }
}
