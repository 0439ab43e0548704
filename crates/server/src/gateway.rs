//! What hostile network peers may hold: a TCP peer has a few seconds to show the token; the
//! peers still to show it, and TCP peers in all, are capped well under the process's file
//! descriptor limit (so the Unix socket, the store and the tiers always have descriptors);
//! and every inline put draws its bytes from one budget, so no number of connections can make
//! the server buffer more than that.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a TCP peer has, from its connection, to show the token in `Hello`.
pub const DEFAULT_HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// The bytes all inline puts in flight may hold together.
pub const DEFAULT_INLINE_BUDGET: u64 = 256 << 20;

/// How long an inline put waits for its share of the budget before it is refused.
pub const DEFAULT_INLINE_BUDGET_WAIT: Duration = Duration::from_secs(10);

/// The caps of [`GatewayLimits::for_fd_limit`] when the limit is unknown or unlimited.
const ASSUMED_FD_LIMIT: u64 = 1 << 20;

/// How a server bounds what its peers may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayLimits {
    /// A TCP peer that has not shown the token this long after connecting is disconnected.
    pub handshake_deadline: Duration,
    /// TCP connections open at once; a connection past it is closed at once.
    pub max_connections: usize,
    /// TCP connections open at once that have not shown the token yet. A new one past it
    /// pushes out the oldest: a flood of idle connections cannot keep a token holder (whose
    /// `Hello` comes with its first bytes) from being admitted.
    pub max_unauthenticated: usize,
    /// The bytes all inline puts in flight may hold together; a TCP peer's entry may not be
    /// larger. A local peer's larger entry (up to the output limit) waits for the whole
    /// budget.
    pub inline_budget: u64,
    /// How long a put waits for its share of the budget before it is refused.
    pub inline_budget_wait: Duration,
}

impl GatewayLimits {
    /// Limits for a process that may open `fd_limit` descriptors: half of them are kept for
    /// everything that is not a TCP peer (at least 32), TCP peers get the rest (4 to 4096),
    /// and a quarter of those (2 to 256) may be waiting for their handshake.
    pub fn for_fd_limit(fd_limit: u64) -> GatewayLimits {
        let reserved = (fd_limit / 2).max(32);
        let tcp = usize::try_from(fd_limit.saturating_sub(reserved))
            .unwrap_or(usize::MAX)
            .clamp(4, 4096);
        GatewayLimits {
            handshake_deadline: DEFAULT_HANDSHAKE_DEADLINE,
            max_connections: tcp,
            max_unauthenticated: (tcp / 4).clamp(2, 256),
            inline_budget: DEFAULT_INLINE_BUDGET,
            inline_budget_wait: DEFAULT_INLINE_BUDGET_WAIT,
        }
    }

    /// Limits for this process's soft `RLIMIT_NOFILE`.
    pub fn for_this_process() -> GatewayLimits {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        GatewayLimits::for_fd_limit(limit.current.unwrap_or(ASSUMED_FD_LIMIT))
    }
}

/// Admission of TCP connections under [`GatewayLimits`].
#[derive(Debug)]
pub(crate) struct Gate {
    limits: GatewayLimits,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// TCP connections whose ticket is alive.
    live: usize,
    next_id: u64,
    /// Those still to show the token, oldest first, with what disconnects each.
    waiting: VecDeque<(u64, CancellationToken)>,
}

/// One admitted TCP connection's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    id: u64,
    evicted: CancellationToken,
}

impl Gate {
    pub(crate) fn new(limits: GatewayLimits) -> Gate {
        Gate {
            limits,
            state: Mutex::new(GateState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new TCP connection, or `None` when it must be closed at once.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut state = self.state();
        if state.live >= self.limits.max_connections {
            return None;
        }
        if state.waiting.len() >= self.limits.max_unauthenticated
            && let Some((_, oldest)) = state.waiting.pop_front()
        {
            oldest.cancel();
        }
        state.live += 1;
        state.next_id += 1;
        let id = state.next_id;
        let evicted = CancellationToken::new();
        state.waiting.push_back((id, evicted.clone()));
        Some(Ticket {
            gate: self.clone(),
            id,
            evicted,
        })
    }
}

impl Ticket {
    /// The connection showed the token: it no longer counts as waiting, and is never pushed
    /// out.
    pub(crate) fn authenticated(&self) {
        let mut state = self.gate.state();
        state.waiting.retain(|(id, _)| *id != self.id);
    }

    /// How long the connection has to show the token.
    pub(crate) fn handshake_deadline(&self) -> Duration {
        self.gate.limits.handshake_deadline
    }

    /// Resolves when a newer connection pushed this one out before it showed the token.
    pub(crate) fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.evicted.clone().cancelled_owned()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.gate.state();
        state.live -= 1;
        state.waiting.retain(|(id, _)| *id != self.id);
    }
}

/// The byte budget of inline puts, counted in KiB so that a whole entry is one acquisition.
#[derive(Debug)]
pub(crate) struct InlineBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
    wait: Duration,
}

/// Reserved budget, given back when dropped.
pub(crate) type Reserved = OwnedSemaphorePermit;

impl InlineBudget {
    pub(crate) fn new(limits: &GatewayLimits) -> InlineBudget {
        let total_kib = u32::try_from(limits.inline_budget.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        InlineBudget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            wait: limits.inline_budget_wait,
        }
    }

    /// Reserves room for an entry of `size` bytes. A remote peer's entry must fit the budget;
    /// a local peer's larger one takes all of it. Refused (with the reason) when the room
    /// does not come free within the wait.
    pub(crate) async fn reserve(&self, size: u64, remote: bool) -> Result<Reserved, BudgetRefused> {
        let budget = u64::from(self.total_kib) * 1024;
        if remote && size > budget {
            return Err(BudgetRefused::OverTcpLimit { size, budget });
        }
        let kib = u32::try_from(size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(BudgetRefused::ShuttingDown),
            Err(_) => Err(BudgetRefused::Busy {
                budget,
                size,
                waited: self.wait,
            }),
        }
    }
}

/// Why an inline put got no room in the budget.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BudgetRefused {
    /// A TCP peer's entry is larger than the whole budget.
    #[error(
        "refused: an inline entry of {size} bytes exceeds the {budget}-byte limit of a TCP peer"
    )]
    OverTcpLimit {
        /// The entry's announced size.
        size: u64,
        /// The whole budget.
        budget: u64,
    },
    /// The budget is closed: the server is stopping.
    #[error("refused: the server is shutting down")]
    ShuttingDown,
    /// Other puts held the room for longer than a put may wait.
    #[error(
        "refused: other inline puts hold the server's {budget}-byte budget; \
         {size} bytes did not fit within {waited:?}"
    )]
    Busy {
        /// The whole budget.
        budget: u64,
        /// The entry's announced size.
        size: u64,
        /// How long the put waited.
        waited: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_stay_well_under_the_descriptor_limit() {
        let small = GatewayLimits::for_fd_limit(64);
        assert_eq!((small.max_connections, small.max_unauthenticated), (32, 8));
        let usual = GatewayLimits::for_fd_limit(1024);
        assert_eq!(
            (usual.max_connections, usual.max_unauthenticated),
            (512, 128)
        );
        let tiny = GatewayLimits::for_fd_limit(16);
        assert_eq!((tiny.max_connections, tiny.max_unauthenticated), (4, 2));
        let huge = GatewayLimits::for_fd_limit(1 << 20);
        assert_eq!(
            (huge.max_connections, huge.max_unauthenticated),
            (4096, 256)
        );
    }

    #[test]
    fn a_full_waiting_room_pushes_out_the_oldest_and_a_full_house_refuses() {
        let gate = Arc::new(Gate::new(GatewayLimits {
            max_connections: 4,
            max_unauthenticated: 2,
            ..GatewayLimits::for_fd_limit(1024)
        }));
        let first = gate.admit().unwrap();
        let second = gate.admit().unwrap();
        second.authenticated();
        let third = gate.admit().unwrap();
        assert!(!first.evicted.is_cancelled());
        let fourth = gate.admit().unwrap();
        assert!(first.evicted.is_cancelled(), "the oldest waiting one goes");
        assert!(
            !second.evicted.is_cancelled(),
            "an authenticated one never does"
        );
        assert!(
            gate.admit().is_none(),
            "four live connections: the fifth is refused"
        );
        drop(first);
        let fifth = gate.admit().unwrap();
        assert!(third.evicted.is_cancelled());
        assert!(!fourth.evicted.is_cancelled());
        drop((second, third, fourth, fifth));
        assert_eq!(gate.state().live, 0);
        assert!(gate.state().waiting.is_empty());
    }

    #[tokio::test]
    async fn the_inline_budget_bounds_remote_entries_and_refuses_after_the_wait() {
        let budget = InlineBudget::new(&GatewayLimits {
            inline_budget: 1 << 20,
            inline_budget_wait: Duration::from_millis(50),
            ..GatewayLimits::for_fd_limit(1024)
        });
        assert!(budget.reserve(2 << 20, true).await.is_err());
        let held = budget.reserve(768 << 10, true).await.unwrap();
        let refused = budget
            .reserve(512 << 10, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("budget"), "{refused}");
        drop(held);
        // A local entry larger than the budget takes all of it.
        let all = budget.reserve(3 << 20, false).await.unwrap();
        assert!(budget.reserve(1, false).await.is_err());
        drop(all);
        assert!(budget.reserve(1, true).await.is_ok());
    }
}
