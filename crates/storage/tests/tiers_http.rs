//! S3 and WebDAV tiers against real local servers: moto's S3 server and WsgiDAV, both from
//! PyPI. Each test runs when its server program is found (`HOARD_TEST_MOTO_SERVER` /
//! `HOARD_TEST_WSGIDAV`, else `moto_server` / `wsgidav` on PATH) and says so when it is not;
//! under `HOARD_TEST_REQUIRE=all` a missing server fails the test.

mod require;
mod tiers_support;

use std::time::Duration;

use hoard_storage::{TierConfig, TierKind};
use tiers_support::*;

#[tokio::test]
async fn s3_shares_entries_between_machines_and_backfills() {
    let Some(program) = find_program("HOARD_TEST_MOTO_SERVER", "moto_server") else {
        require::unavailable(
            "s3_shares_entries_between_machines_and_backfills",
            "no moto_server (pip install 'moto[server]')",
        );
        return;
    };
    let port = free_port();
    let _server = Daemon::spawn(
        program.to_str().unwrap(),
        &["-H", "127.0.0.1", "-p", &port.to_string()],
        port,
    );
    let base = format!("http://127.0.0.1:{port}");
    let created = reqwest::Client::new()
        .put(format!("{base}/hoard-test"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let tier = TierConfig::new(TierKind::S3 {
        bucket: "hoard-test".into(),
        endpoint: Some(format!("http://testing:testing@127.0.0.1:{port}")),
        region: None,
        prefix: Some("ci".into()),
    });
    shared_between_two_machines(tier).await;
    // The object is where the layout says, under the prefix (moto's own inventory, since
    // its objects are private to signed requests).
    let hex = key(1).to_hex();
    let inventory = reqwest::get(format!("{base}/moto-api/data.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        inventory.contains(&format!("ci/{}/{hex}", &hex[..2])),
        "{inventory}"
    );
}

#[tokio::test]
async fn webdav_shares_entries_between_machines_and_backfills() {
    let Some(program) = find_program("HOARD_TEST_WSGIDAV", "wsgidav") else {
        require::unavailable(
            "webdav_shares_entries_between_machines_and_backfills",
            "no wsgidav (pip install wsgidav cheroot)",
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let server = wsgidav(&program, root.path());
    let tier = webdav_tier(&server);
    shared_between_two_machines(tier).await;
    let hex = key(1).to_hex();
    let on_disk = std::fs::read(root.path().join(&hex[..2]).join(&hex)).unwrap();
    assert_eq!(on_disk, entry(1, 200_000));
}

#[tokio::test]
async fn a_dead_http_tier_costs_little_and_is_counted() {
    // Nothing listens here: connections are refused at once.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let storage = machine(
        dir.path(),
        vec![TierConfig::new(TierKind::Webdav {
            endpoint: format!("http://127.0.0.1:{port}/"),
        })],
    );
    let start = std::time::Instant::now();
    for n in 0..10 {
        assert_eq!(
            hoard_storage::Storage::get(&storage, &key(n))
                .await
                .unwrap(),
            None
        );
    }
    let per_get = start.elapsed() / 10;
    let s = stats_of(&storage, "webdav");
    assert_eq!(
        (s.errors + s.timeouts, s.state.as_str()),
        (3, "open"),
        "{s:?}"
    );
    assert!(per_get < Duration::from_millis(100), "{per_get:?}");
}
