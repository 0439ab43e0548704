//! The GitHub Actions cache tier through its v2 protocol, against
//! `tests/fixtures/gha-cache-standin.py`: a STAND-IN for GitHub's cache service (which cannot
//! run outside GitHub) that speaks the twirp API OpenDAL's `ghac` service calls and hands out
//! signed URLs on Azurite (npm `azurite`), where GitHub's own service keeps the bytes.
//!
//! One test function: OpenDAL picks the v2 protocol from `ACTIONS_CACHE_SERVICE_V2` in the
//! environment (as `hoard-server` sets it), which this binary sets before any thread of its
//! own reads the environment; the cases then run one after the other.

mod require;
mod tiers_support;

use hoard_storage::Storage;
use tiers_support::cloud::*;
use tiers_support::*;

#[test]
fn the_actions_cache_shares_entries_a_read_only_token_reads_and_rate_limits_are_skipped() {
    // SAFETY: the only test in this binary, before its runtime or any server starts.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("ACTIONS_CACHE_SERVICE_V2", "1");
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        the_actions_cache_through_its_v2_protocol_shares_entries_between_machines().await;
        a_read_only_actions_cache_token_makes_a_read_only_tier_without_errors().await;
        rate_limited_writes_are_skipped_and_counted_never_retried().await;
    });
}

async fn the_actions_cache_through_its_v2_protocol_shares_entries_between_machines() {
    let data = tempfile::tempdir().unwrap();
    let Some(azurite) = azurite(data.path()) else {
        return require::unavailable("the_actions_cache_shares_entries", NO_AZURITE);
    };
    let standin = gha_standin(azurite.port, "fork-token");
    shared_between_two_machines(gha_tier(&standin, "job-token")).await;
}

async fn a_read_only_actions_cache_token_makes_a_read_only_tier_without_errors() {
    let data = tempfile::tempdir().unwrap();
    let Some(azurite) = azurite(data.path()) else {
        return require::unavailable("a_read_only_actions_cache_token", NO_AZURITE);
    };
    // A job whose token may write fills the cache; one whose token may not (a pull request
    // from a fork) still gets its entries, and stops writing at the first refusal, with no
    // error counted.
    let standin = gha_standin(azurite.port, "fork-token");
    let dir = tempfile::tempdir().unwrap();
    let a = machine(&dir.path().join("a"), vec![gha_tier(&standin, "job-token")]);
    a.put(&key(1), entry(1, 5000)).await.unwrap();
    assert!(a.flush(FLUSH).await);

    let b = machine(
        &dir.path().join("b"),
        vec![gha_tier(&standin, "fork-token")],
    );
    assert_eq!(b.get(&key(1)).await.unwrap(), Some(entry(1, 5000)));
    for n in 2..6 {
        b.put(&key(n), entry(n, 5000)).await.unwrap();
        assert!(b.flush(FLUSH).await);
    }
    let stats = stats_of(&b, "gha");
    assert_eq!(
        (stats.hits, stats.writes, stats.errors),
        (1, 0, 0),
        "{stats:?}"
    );
    assert!(stats.read_only, "{stats:?}");
    assert_eq!(
        stats.skipped, 1,
        "one refusal, then no more attempts: {stats:?}"
    );
    let c = machine(&dir.path().join("c"), vec![gha_tier(&standin, "job-token")]);
    assert!(c.get(&key(2)).await.unwrap().is_none(), "B wrote nothing");
}

async fn rate_limited_writes_are_skipped_and_counted_never_retried() {
    let data = tempfile::tempdir().unwrap();
    let Some(azurite) = azurite(data.path()) else {
        return require::unavailable("rate_limited_writes", NO_AZURITE);
    };
    let standin = gha_standin(azurite.port, "fork-token");
    let dir = tempfile::tempdir().unwrap();
    let busy = machine(dir.path(), vec![gha_tier(&standin, "busy-token")]);
    for n in 0..3 {
        busy.put(&key(n), entry(n, 3000)).await.unwrap();
    }
    assert!(busy.flush(FLUSH).await);
    let stats = stats_of(&busy, "gha");
    // Each put asked once and was dropped; the tier stays writable and closed.
    assert_eq!(
        (stats.skipped, stats.writes, stats.errors, stats.read_only),
        (3, 0, 0, false),
        "{stats:?}"
    );
    assert_eq!(stats.state, "closed", "{stats:?}");
}
