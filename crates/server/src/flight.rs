//! Single flight: concurrent lookups of one key that miss compile once.
//!
//! When a lookup misses, the connection that asked becomes the key's *leader*: it is expected
//! to compile and store the key. A lookup of the same key from another connection while the
//! leader is at it becomes a *follower*: it waits until the flight lands, then looks again and
//! usually finds a hit. A flight lands when
//! * the leader stores the key (`CachePut`, `ManifestPut`, an inline put, or a v1 put); a
//!   `CachePut` is packed after its answer, so the flight passes to that background store and
//!   lands when the entry is on disk, not before;
//! * the leader's connection closes (its compile failed, was not recordable, or the wrapper
//!   died): the followers then look once more and, missing, compile themselves;
//! * or the follower's bounded wait runs out (`ServerConfig::single_flight_wait`, shorter
//!   than a client's answer timeout), after which it looks once more and answers whatever it
//!   finds.
//!
//! No cycle of connections waiting on each other can form: a holder that leads any flight
//! never waits for another's (it is told to miss and compile), so whoever waits leads nothing
//! anyone could be waiting for. (A wrapper leads at most its manifest key when it looks up a
//! result; an embedder multiplexing compiles on one connection may lead several.) No wait is
//! unbounded either. And a follower never becomes a leader after waiting, so a failing compile
//! is not retried one follower after another.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hoard_storage::CacheKey;
use tokio::sync::watch;

/// Who holds a flight: one connection, or one background store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder(u64);

/// The keys being produced right now, by whom, and how long a follower waits.
#[derive(Debug)]
pub(crate) struct Flights {
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
    next_holder: AtomicU64,
    wait: Duration,
}

#[derive(Debug)]
struct Flight {
    holder: Holder,
    /// Never sent on: dropping it (the flight landing) is what wakes the followers.
    landed: watch::Sender<()>,
}

/// What a missed lookup became.
enum Joined {
    /// Nobody else is producing the key: this holder now is.
    Leader,
    /// Someone is: wait for this to close.
    Follower(watch::Receiver<()>),
    /// Someone is, but this holder leads another flight and so must not wait: it misses.
    Bystander,
}

impl Flights {
    /// No flights yet; followers wait at most `wait`.
    pub fn new(wait: Duration) -> Self {
        Self {
            in_flight: Mutex::new(HashMap::new()),
            next_holder: AtomicU64::new(1),
            wait,
        }
    }

    /// A fresh holder identity, for a connection.
    pub fn holder(&self) -> Holder {
        Holder(self.next_holder.fetch_add(1, Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Flight>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn join(&self, key: &CacheKey, holder: Holder) -> Joined {
        let mut flights = self.lock();
        match flights.get(key) {
            Some(flight) if flight.holder != holder => {
                let receiver = flight.landed.subscribe();
                if flights.values().any(|f| f.holder == holder) {
                    Joined::Bystander
                } else {
                    Joined::Follower(receiver)
                }
            }
            Some(_) => Joined::Leader,
            None => {
                let (landed, _) = watch::channel(());
                flights.insert(*key, Flight { holder, landed });
                Joined::Leader
            }
        }
    }

    /// `holder` has stored `key` (or given up on it): its followers look again.
    pub fn land(&self, key: &CacheKey, holder: Holder) {
        let mut flights = self.lock();
        if flights.get(key).is_some_and(|f| f.holder == holder) {
            flights.remove(key);
        }
    }

    /// Lands every flight `holder` leads: its connection is gone, or its compile is over.
    pub fn land_all(&self, holder: Holder) {
        self.lock().retain(|_, flight| flight.holder != holder);
    }

    /// The flight of `key` passes to a store that finishes after its answer went out (or
    /// starts now, if nobody led it): followers keep waiting until the returned guard drops,
    /// that is until the entry is on disk, instead of missing in between.
    pub fn storing(self: &Arc<Self>, key: &CacheKey) -> Storing {
        let holder = self.holder();
        let mut flights = self.lock();
        if let Some(flight) = flights.get_mut(key) {
            flight.holder = holder;
        } else {
            let (landed, _) = watch::channel(());
            flights.insert(*key, Flight { holder, landed });
        }
        Storing {
            flights: Arc::clone(self),
            key: *key,
            holder,
        }
    }

    /// Looks `key` up with `look`, single flight. A hit is returned at once. On a miss, the
    /// first holder to miss leads and gets the miss (it will compile); any other waits for
    /// the flight to land (bounded by the wait given to [`Flights::new`]) and then looks once
    /// more. `stored_locally` tells cheaply (one failed `open` when absent) whether the key
    /// is now in the local store: it closes the gap between a miss and becoming leader, in
    /// which another holder may have stored the key and landed its flight.
    pub async fn look<T, E, F, Fut>(
        &self,
        key: &CacheKey,
        holder: Holder,
        stored_locally: impl FnOnce() -> bool,
        mut look: F,
    ) -> Result<Option<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        if let Some(found) = look().await? {
            return Ok(Some(found));
        }
        match self.join(key, holder) {
            Joined::Leader if stored_locally() => {
                self.land(key, holder);
                look().await
            }
            Joined::Leader | Joined::Bystander => Ok(None),
            Joined::Follower(mut landed) => {
                let started = std::time::Instant::now();
                // Err from `changed` is the flight landing (its sender dropped); Err from the
                // timeout is the leader taking too long. Either way: look once more.
                let waited = tokio::time::timeout(self.wait, landed.changed()).await;
                tracing::debug!(
                    %key,
                    waited_ms = started.elapsed().as_millis(),
                    timed_out = waited.is_err(),
                    "single flight: followed another connection's compile"
                );
                look().await
            }
        }
    }
}

/// A store in progress that holds its key's flight; dropping it lands the flight. Owns its
/// handle on the flights so it can move into a background task.
pub(crate) struct Storing {
    flights: Arc<Flights>,
    key: CacheKey,
    holder: Holder,
}

impl Drop for Storing {
    fn drop(&mut self) {
        self.flights.land(&self.key, self.holder);
    }
}

/// Lands every flight of one connection when the connection ends, however it ends.
pub(crate) struct ConnectionFlights<'a> {
    flights: &'a Flights,
    /// The connection's holder identity.
    pub holder: Holder,
}

impl<'a> ConnectionFlights<'a> {
    /// A new connection's flights.
    pub fn new(flights: &'a Flights) -> Self {
        Self {
            flights,
            holder: flights.holder(),
        }
    }
}

impl Drop for ConnectionFlights<'_> {
    fn drop(&mut self) {
        self.flights.land_all(self.holder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    const KEY: CacheKey = CacheKey::from_bytes([7; 32]);

    /// A store of one value, counting its lookups.
    #[derive(Default)]
    struct Store {
        value: Mutex<Option<u32>>,
        lookups: AtomicUsize,
    }

    impl Store {
        fn get(&self) -> std::future::Ready<Result<Option<u32>, ()>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(*self.value.lock().unwrap()))
        }

        fn set(&self, v: u32) {
            *self.value.lock().unwrap() = Some(v);
        }
    }

    async fn look(flights: &Flights, holder: Holder, store: &Store) -> Option<u32> {
        flights
            .look(&KEY, holder, || false, || store.get())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_first_miss_leads_at_once_and_a_hit_never_waits() {
        let flights = Flights::new(Duration::from_secs(30));
        let store = Store::default();
        let started = Instant::now();
        assert_eq!(look(&flights, flights.holder(), &store).await, None);
        store.set(1);
        // Another holder finds the hit straight away although the flight has not landed.
        assert_eq!(look(&flights, flights.holder(), &store).await, Some(1));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn followers_wait_for_the_leader_to_store_and_then_all_hit() {
        let flights = Arc::new(Flights::new(Duration::from_secs(30)));
        let store = Arc::new(Store::default());
        let leader = flights.holder();
        assert_eq!(look(&flights, leader, &store).await, None);
        let followers: Vec<_> = (0..16)
            .map(|_| {
                let (flights, store) = (flights.clone(), store.clone());
                tokio::spawn(async move { look(&flights, flights.holder(), &store).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // All 16 looked once and are waiting.
        assert_eq!(store.lookups.load(Ordering::SeqCst), 1 + 16);
        store.set(42);
        flights.land(&KEY, leader);
        for follower in followers {
            assert_eq!(follower.await.unwrap(), Some(42));
        }
    }

    #[tokio::test]
    async fn a_followers_wait_ends_when_the_leaders_connection_closes() {
        let flights = Arc::new(Flights::new(Duration::from_secs(30)));
        let store = Arc::new(Store::default());
        let connection = ConnectionFlights::new(&flights);
        assert_eq!(look(&flights, connection.holder, &store).await, None);
        let follower = {
            let (flights, store) = (flights.clone(), store.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                (
                    look(&flights, flights.holder(), &store).await,
                    started.elapsed(),
                )
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(connection);
        let (found, waited) = follower.await.unwrap();
        assert_eq!(
            found, None,
            "the leader stored nothing: the follower compiles"
        );
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    #[tokio::test]
    async fn a_followers_wait_is_bounded_when_the_leader_never_finishes() {
        let flights = Flights::new(Duration::from_millis(300));
        let store = Store::default();
        assert_eq!(look(&flights, flights.holder(), &store).await, None);
        let started = Instant::now();
        assert_eq!(look(&flights, flights.holder(), &store).await, None);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "waited {waited:?}"
        );
    }

    #[tokio::test]
    async fn a_store_in_progress_keeps_followers_waiting_until_it_is_done() {
        let flights = Arc::new(Flights::new(Duration::from_secs(30)));
        let store = Arc::new(Store::default());
        let connection = ConnectionFlights::new(&flights);
        assert_eq!(look(&flights, connection.holder, &store).await, None);
        // The put was answered and the client hung up; the entry is still being packed.
        let storing = flights.storing(&KEY);
        flights.land(&KEY, connection.holder);
        drop(connection);
        let follower = {
            let (flights, store) = (flights.clone(), store.clone());
            tokio::spawn(async move { look(&flights, flights.holder(), &store).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !follower.is_finished(),
            "the follower stopped waiting too early"
        );
        store.set(9);
        drop(storing);
        assert_eq!(follower.await.unwrap(), Some(9));
    }

    #[tokio::test]
    async fn a_store_with_no_leader_still_holds_lookups_until_it_is_done() {
        let flights = Arc::new(Flights::new(Duration::from_secs(30)));
        let store = Arc::new(Store::default());
        let storing = flights.storing(&KEY);
        let follower = {
            let (flights, store) = (flights.clone(), store.clone());
            tokio::spawn(async move { look(&flights, flights.holder(), &store).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.set(3);
        drop(storing);
        assert_eq!(follower.await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn a_leader_that_finds_the_key_stored_in_the_gap_hits_and_leads_nothing() {
        let flights = Flights::new(Duration::from_secs(30));
        let store = Store::default();
        let holder = flights.holder();
        // The first lookup misses; by the time it joins, another holder has stored the key.
        let found = flights
            .look(
                &KEY,
                holder,
                || {
                    store.set(5);
                    true
                },
                || store.get(),
            )
            .await
            .unwrap();
        assert_eq!(found, Some(5));
        assert!(flights.lock().is_empty(), "a flight was left behind");
    }

    #[tokio::test]
    async fn a_lookup_error_is_returned_and_leads_nothing() {
        let flights = Flights::new(Duration::from_secs(30));
        let failed: Result<Option<u32>, &str> = flights
            .look(&KEY, flights.holder(), || false, || async { Err("disk") })
            .await;
        assert_eq!(failed, Err("disk"));
        assert!(flights.lock().is_empty());
    }

    #[tokio::test]
    async fn a_holder_that_leads_a_flight_never_waits_for_another() {
        let flights = Flights::new(Duration::from_secs(30));
        let (a, b) = (flights.holder(), flights.holder());
        let other = CacheKey::from_bytes([8; 32]);
        let miss = || std::future::ready(Ok::<Option<u32>, ()>(None));
        assert_eq!(flights.look(&KEY, a, || false, miss).await, Ok(None));
        assert_eq!(flights.look(&other, b, || false, miss).await, Ok(None));
        // Each now looks up the other's key: waiting could deadlock them, so both miss.
        let started = Instant::now();
        assert_eq!(flights.look(&other, a, || false, miss).await, Ok(None));
        assert_eq!(flights.look(&KEY, b, || false, miss).await, Ok(None));
        assert!(started.elapsed() < Duration::from_secs(5));
        // And neither took the other's lead.
        assert!(matches!(flights.join(&KEY, b), Joined::Bystander));
    }

    #[test]
    fn landing_is_only_for_the_holder() {
        let flights = Flights::new(Duration::from_secs(30));
        let (a, b) = (flights.holder(), flights.holder());
        assert!(matches!(flights.join(&KEY, a), Joined::Leader));
        flights.land(&KEY, b);
        assert!(matches!(flights.join(&KEY, b), Joined::Follower(_)));
        assert!(matches!(flights.join(&KEY, a), Joined::Leader));
        flights.land_all(a);
        assert!(flights.lock().is_empty());
    }
}
