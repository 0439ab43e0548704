//! Remote tiers from `HOARD_*` variables, and configuration checks.

use std::collections::HashMap;
use std::path::PathBuf;

use hoard_storage::{
    DiskStore, StorageError, TierConfig, TierConfigError, TierKind, TieredStorage, tiers_from_env,
};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn no_variables_no_tiers() {
    assert_eq!(tiers_from_env(env(&[])).unwrap(), vec![]);
}

#[test]
fn an_empty_variable_means_no_tier() {
    let tiers = tiers_from_env(env(&[
        ("HOARD_MEMCACHED_ENDPOINT", ""),
        ("HOARD_REDIS_ENDPOINT", "  "),
        ("HOARD_S3_BUCKET", ""),
        ("HOARD_S3_ENDPOINT", "not even a url"),
        ("HOARD_WEBDAV_ENDPOINT", ""),
        ("HOARD_SHARED_DIR", ""),
        ("HOARD_TIER_ORDER", ""),
        ("HOARD_READ_ONLY_TIERS", ""),
    ]))
    .unwrap();
    assert_eq!(tiers, vec![]);
}

#[test]
fn every_kind_is_read_in_the_default_order() {
    let tiers = tiers_from_env(env(&[
        ("HOARD_SHARED_DIR", "/mnt/cache"),
        ("HOARD_WEBDAV_ENDPOINT", "http://dav.example:8080/cache"),
        ("HOARD_S3_BUCKET", "builds"),
        ("HOARD_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("HOARD_S3_REGION", "eu-west-1"),
        ("HOARD_S3_PREFIX", "ci/hoard"),
        ("HOARD_REDIS_ENDPOINT", "rediss://cache.example:6380/2"),
        ("HOARD_MEMCACHED_ENDPOINT", "tcp://127.0.0.1:11211"),
    ]))
    .unwrap();
    let names: Vec<_> = tiers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["memcached", "redis", "s3", "webdav", "shared_dir"]);
    assert_eq!(
        tiers[2].kind,
        TierKind::S3 {
            bucket: "builds".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
            prefix: Some("ci/hoard".into()),
        }
    );
    assert_eq!(
        tiers[4].kind,
        TierKind::SharedDir {
            path: PathBuf::from("/mnt/cache")
        }
    );
    assert!(tiers.iter().all(|t| !t.read_only));
    assert_eq!(
        tiers[0].effective_max_entry_size(),
        Some(1024 * 1024 - 1024)
    );
    assert_eq!(tiers[1].effective_max_entry_size(), None);
}

#[test]
fn order_and_read_only_lists() {
    let tiers = tiers_from_env(env(&[
        ("HOARD_MEMCACHED_ENDPOINT", "127.0.0.1:11211"),
        ("HOARD_REDIS_ENDPOINT", "redis://127.0.0.1:6379"),
        ("HOARD_SHARED_DIR", "/mnt/cache"),
        ("HOARD_TIER_ORDER", "shared_dir, redis"),
        ("HOARD_READ_ONLY_TIERS", "Shared-Dir,memcached,s3"),
    ]))
    .unwrap();
    let got: Vec<_> = tiers
        .iter()
        .map(|t| (t.name.as_str(), t.read_only))
        .collect();
    // Unlisted tiers follow the listed ones, in the default order.
    assert_eq!(
        got,
        [("shared_dir", true), ("redis", false), ("memcached", true)]
    );
}

#[test]
fn malformed_values_are_errors_naming_the_tier_and_the_field() {
    let cases = [
        (
            "HOARD_MEMCACHED_ENDPOINT",
            "http://127.0.0.1:11211",
            "memcached",
            "endpoint",
        ),
        (
            "HOARD_MEMCACHED_ENDPOINT",
            "tcp://127.0.0.1",
            "memcached",
            "endpoint",
        ),
        (
            "HOARD_REDIS_ENDPOINT",
            "mysql://db:3306",
            "redis",
            "endpoint",
        ),
        ("HOARD_REDIS_ENDPOINT", "redis://", "redis", "endpoint"),
        (
            "HOARD_WEBDAV_ENDPOINT",
            "dav.example/cache",
            "webdav",
            "endpoint",
        ),
        ("HOARD_SHARED_DIR", "relative/dir", "shared_dir", "path"),
    ];
    for (var, value, tier, field) in cases {
        let err = tiers_from_env(env(&[(var, value)])).unwrap_err();
        match &err {
            TierConfigError::Invalid {
                tier: t, field: f, ..
            } => assert_eq!((t.as_str(), *f), (tier, field), "{var}={value}: {err}"),
            other => panic!("{var}={value}: {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(tier) && text.contains(field) && text.contains(value),
            "{text}"
        );
    }
    let err = tiers_from_env(env(&[
        ("HOARD_S3_BUCKET", "b"),
        ("HOARD_S3_ENDPOINT", "ftp://x"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("s3: endpoint"), "{err}");
}

#[test]
fn unknown_names_in_lists_are_errors() {
    let err = tiers_from_env(env(&[("HOARD_TIER_ORDER", "memcached,ramdisk")])).unwrap_err();
    assert_eq!(
        err,
        TierConfigError::UnknownTier {
            var: "HOARD_TIER_ORDER",
            name: "ramdisk".into()
        }
    );
    assert!(err.to_string().contains("ramdisk"));
    let err = tiers_from_env(env(&[("HOARD_READ_ONLY_TIERS", "nfs")])).unwrap_err();
    assert!(err.to_string().contains("HOARD_READ_ONLY_TIERS"), "{err}");
}

#[test]
fn construction_checks_configs_but_connects_to_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let local = || DiskStore::open(dir.path(), 1 << 20).unwrap();
    // Nothing listens on these; construction must still succeed, without a runtime even.
    let tiers = vec![
        TierConfig::new(TierKind::Memcached {
            endpoint: "tcp://127.0.0.1:1".into(),
        }),
        TierConfig::new(TierKind::Memcached {
            endpoint: "tcp://memcached.invalid:11211".into(),
        })
        .named("memcached2"),
        TierConfig::new(TierKind::Redis {
            endpoint: "redis://:secret@127.0.0.1:1/3".into(),
        }),
        TierConfig::new(TierKind::S3 {
            bucket: "b".into(),
            endpoint: Some("http://KEY:SECRET@127.0.0.1:1".into()),
            region: None,
            prefix: None,
        }),
        TierConfig::new(TierKind::Webdav {
            endpoint: "http://127.0.0.1:1/dav".into(),
        }),
        TierConfig::new(TierKind::SharedDir {
            path: "/nonexistent/hoard/shared".into(),
        }),
    ];
    let storage = TieredStorage::new(local(), tiers).unwrap();
    let states: Vec<_> = storage.tier_stats().into_iter().map(|s| s.state).collect();
    assert!(states.iter().all(|s| s == "closed"), "{states:?}");

    let empty_bucket = TierConfig::new(TierKind::S3 {
        bucket: " ".into(),
        endpoint: None,
        region: None,
        prefix: None,
    });
    let err = TieredStorage::new(local(), vec![empty_bucket]).unwrap_err();
    assert!(matches!(err, StorageError::TierConfig(_)), "{err}");
    assert!(err.to_string().contains("s3: bucket"), "{err}");

    let twice = vec![
        TierConfig::new(TierKind::SharedDir { path: "/a".into() }),
        TierConfig::new(TierKind::SharedDir { path: "/b".into() }),
    ];
    let err = TieredStorage::new(local(), twice).unwrap_err();
    assert!(err.to_string().contains("shared_dir"), "{err}");
}

#[test]
fn the_remote_entry_limit_applies_to_every_tier_but_memcached() {
    let tiers = tiers_from_env(env(&[
        ("HOARD_MEMCACHED_ENDPOINT", "tcp://127.0.0.1:11211"),
        ("HOARD_REDIS_ENDPOINT", "redis://127.0.0.1:6379"),
        ("HOARD_SHARED_DIR", "/mnt/cache"),
        ("HOARD_REMOTE_MAX_ENTRY", "512M"),
    ]))
    .unwrap();
    let limits: Vec<_> = tiers
        .iter()
        .map(|t| (t.name.as_str(), t.effective_max_entry_size()))
        .collect();
    assert_eq!(
        limits,
        [
            (
                "memcached",
                Some(hoard_storage::tier::config::MEMCACHED_DEFAULT_MAX_ENTRY)
            ),
            ("redis", Some(512 << 20)),
            ("shared_dir", Some(512 << 20)),
        ]
    );
    let bad = tiers_from_env(env(&[
        ("HOARD_REDIS_ENDPOINT", "redis://127.0.0.1:6379"),
        ("HOARD_REMOTE_MAX_ENTRY", "lots"),
    ]))
    .unwrap_err();
    assert!(bad.to_string().contains("HOARD_REMOTE_MAX_ENTRY"), "{bad}");
}
