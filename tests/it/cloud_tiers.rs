//! The cloud tiers end to end, against real local servers the test starts: Azure Blob on
//! Azurite, GCS on fake-gcs-server, and the GitHub Actions cache through a STAND-IN for
//! GitHub's service (`tests/fixtures/gha-cache-standin.py`, its v2 twirp API with the bytes
//! on Azurite, as GitHub keeps them). For each: machine B with an empty disk builds a real C
//! tree all from the tier (the cargo workspace is in `rust::cargo`); the tier's server killed
//! mid-build leaves a correct build and counted faults. A read-only Actions cache token (a
//! pull request from a fork) fails no compile, prints no error, and shows a read-only tier.

use crate::remote_tiers::two_machines_share_a_tree;
use crate::support::tiers::Daemon;
use crate::support::tiers::cloud::{self, NO_AZURITE, NO_FAKE_GCS};
use crate::support::{Sandbox, build, c_files, lua_sources, plain_build, text, tier, tools};

/// A cloud tier's server(s), kept running while the value lives, and the variables that
/// point a machine at it.
pub(crate) struct CloudTier {
    pub name: &'static str,
    pub env: Vec<(&'static str, String)>,
    /// The process a test kills to take the tier down (for the Actions cache, its service).
    pub server: Daemon,
    _others: Vec<Daemon>,
    _data: tempfile::TempDir,
}

impl CloudTier {
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// Azure Blob on Azurite, container `hoard`; `None` (said loudly) when Azurite is missing.
pub(crate) fn azure() -> Option<CloudTier> {
    let data = tempfile::tempdir().unwrap();
    let Some(azurite) = cloud::azurite(data.path()) else {
        tools::unavailable(NO_AZURITE);
        return None;
    };
    cloud::create_container(azurite.port, "hoard");
    let connection = cloud::AZURITE_CONNECTION.replace("{port}", &azurite.port.to_string());
    Some(CloudTier {
        name: "azure",
        env: vec![
            ("HOARD_AZURE_CONTAINER", "hoard".into()),
            ("HOARD_AZURE_CONNECTION_STRING", connection),
        ],
        server: azurite,
        _others: Vec::new(),
        _data: data,
    })
}

/// GCS on fake-gcs-server, bucket `hoard`, no credentials.
pub(crate) fn gcs() -> Option<CloudTier> {
    let data = tempfile::tempdir().unwrap();
    let Some(server) = cloud::fake_gcs(data.path(), "hoard") else {
        tools::unavailable(NO_FAKE_GCS);
        return None;
    };
    Some(CloudTier {
        name: "gcs",
        env: vec![
            ("HOARD_GCS_BUCKET", "hoard".into()),
            (
                "HOARD_GCS_ENDPOINT",
                format!("http://127.0.0.1:{}", server.port),
            ),
        ],
        server,
        _others: Vec::new(),
        _data: data,
    })
}

/// The Actions cache stand-in on Azurite, for a job whose token is `token` (the stand-in
/// refuses writes to `fork-token`).
pub(crate) fn actions_cache(token: &str) -> Option<CloudTier> {
    let data = tempfile::tempdir().unwrap();
    let Some(azurite) = cloud::azurite(data.path()) else {
        tools::unavailable(NO_AZURITE);
        return None;
    };
    let standin = cloud::gha_standin(azurite.port, "fork-token");
    Some(CloudTier {
        name: "gha",
        env: actions_env(&standin, token),
        server: standin,
        _others: vec![azurite],
        _data: data,
    })
}

fn actions_env(standin: &Daemon, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOARD_GHA", "on".into()),
        ("HOARD_GHA_VERSION", "e2e".into()),
        (
            "ACTIONS_RESULTS_URL",
            format!("http://127.0.0.1:{}/", standin.port),
        ),
        ("ACTIONS_RUNTIME_TOKEN", token.into()),
    ]
}

#[test]
fn a_second_machine_gets_every_hit_from_azure_blob_with_prefetch() {
    let Some(tier) = azure() else { return };
    two_machines_share_a_tree(&tier.env(), tier.name, true);
}

#[test]
fn a_second_machine_gets_every_hit_from_gcs_with_prefetch() {
    let Some(tier) = gcs() else { return };
    two_machines_share_a_tree(&tier.env(), tier.name, true);
}

#[test]
fn a_second_machine_gets_every_hit_from_the_actions_cache_with_prefetch() {
    let Some(tier) = actions_cache("job-token") else {
        return;
    };
    two_machines_share_a_tree(&tier.env(), tier.name, true);
}

/// [`killed_mid_build`] with `cloud`'s server.
fn killed_mid_build(mut cloud: CloudTier) {
    let env: Vec<(&str, String)> = cloud.env.clone();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::remote_tiers::killed_mid_build(&env, cloud.name, &mut cloud.server);
}

#[test]
fn azure_blob_dying_mid_build_leaves_a_correct_build_and_counted_faults() {
    if let Some(tier) = azure() {
        killed_mid_build(tier);
    }
}

#[test]
fn gcs_dying_mid_build_leaves_a_correct_build_and_counted_faults() {
    if let Some(tier) = gcs() {
        killed_mid_build(tier);
    }
}

#[test]
fn the_actions_cache_dying_mid_build_leaves_a_correct_build_and_counted_faults() {
    if let Some(tier) = actions_cache("job-token") {
        killed_mid_build(tier);
    }
}

#[test]
fn a_read_only_actions_cache_token_fails_nothing_prints_nothing_and_shows_a_read_only_tier() {
    let Some(writer) = actions_cache("job-token") else {
        return;
    };
    let sources = c_files(&lua_sources());
    let mut a = Sandbox::new();
    for (var, value) in &writer.env {
        a.set_env(var, value);
    }
    let out = a.dir.path().join("out");
    let half = &sources[..sources.len() / 2];
    let plain = plain_build("gcc", half, &out, &["-O1"], &a);
    plain.again_through(&a, "machine A, writing");
    a.stop_server();

    // B is a pull request from a fork: same cache, a token that may not write. It builds
    // the whole tree: the half A stored are hits, the rest misses whose puts are refused.
    let mut b = Sandbox::new();
    for (var, value) in actions_env(&writer.server, "fork-token") {
        b.set_env(var, &value);
    }
    b.set_env("HOARD_PREFETCH", "off");
    let outputs = build(Some(&b), "gcc", &sources, &out, &["-O1"], 2);
    for (source, output) in sources.iter().zip(&outputs) {
        assert!(
            output.status.success(),
            "{}: {}",
            source.display(),
            text(&output.stderr)
        );
        let printed = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(
            !printed.to_lowercase().contains("error") && !printed.contains("hoard"),
            "{}: printed {printed:?}",
            source.display()
        );
    }
    let stats = b.stats();
    assert_eq!(stats["cache_hits"], half.len(), "{stats}");
    let gha = tier(&stats, "gha");
    assert_eq!(gha["read_only"], true, "{stats}");
    assert_eq!(
        (gha["errors"].as_u64(), gha["writes"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    assert_eq!(stats["local_fallbacks"], 0, "{stats}");
    let shown = b.hoard().args(["--show-stats"]).output().unwrap();
    assert!(
        text(&shown.stdout).contains("read-only"),
        "{}",
        text(&shown.stdout)
    );
}

#[test]
fn a_read_only_cloud_tier_is_never_written() {
    let tiers = [azure(), gcs(), actions_cache("job-token")];
    for cloud in tiers.into_iter().flatten() {
        let sources = &c_files(&lua_sources())[..6];
        let on_the_tier = |read_only: bool| {
            let mut sandbox = Sandbox::new();
            for (var, value) in &cloud.env {
                sandbox.set_env(var, value);
            }
            if read_only {
                sandbox.set_env("HOARD_READ_ONLY_TIERS", cloud.name);
            }
            sandbox
        };
        let a = on_the_tier(true);
        let out = a.dir.path().join("out");
        let plain = plain_build("gcc", sources, &out, &["-O1"], &a);
        plain.again_through(&a, "machine A, read-only");
        let stats = a.stats();
        let written = tier(&stats, cloud.name);
        assert_eq!(
            (written["writes"].as_u64(), written["read_only"].as_bool()),
            (Some(0), Some(true)),
            "{}: {stats}",
            cloud.name
        );
        a.stop_server();
        // Nothing reached the tier: a second machine finds none of it.
        let b = on_the_tier(false);
        plain.again_through(&b, "machine B");
        let stats = b.stats();
        assert_eq!(
            (
                stats["cache_hits"].as_u64(),
                tier(&stats, cloud.name)["hits"].as_u64()
            ),
            (Some(0), Some(0)),
            "{}: {stats}",
            cloud.name
        );
    }
}
