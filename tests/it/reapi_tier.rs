//! The reapi tier end to end (`HOARD_REAPI_ENDPOINT`: a Bazel Remote Execution API action
//! cache and CAS), against a real BuildGrid server the test starts (PyPI `buildgrid`;
//! `scripts/test` installs it). Machine B with an empty disk builds a real C tree and the
//! cargo workspace all from BuildGrid; BuildGrid killed mid-build leaves a correct build and
//! counted faults; a named instance (`HOARD_REAPI_INSTANCE`) keeps a team's entries apart; and
//! the objects a build stored are what BuildGrid's own client (`bgd`) downloads, byte for
//! byte, from the ActionResult under the compile's key.

use std::path::Path;

use crate::remote_tiers::{killed_mid_build, two_machines_share_a_tree};
use crate::support::tiers::reapi::{BuildGrid, NO_BGD, Options, output_file, output_files, pki};
use crate::support::{
    Sandbox, assert_all_succeeded, build, c_files, compile_args, lua_sources, plain_build, text,
    tier, tools,
};

/// BuildGrid serving `instances` (`""` is the default one); `None` (said loudly) when `bgd`
/// is not installed.
fn buildgrid(instances: &[&str]) -> Option<BuildGrid> {
    let server = BuildGrid::with_instances(instances);
    if server.is_none() {
        tools::unavailable(NO_BGD);
    }
    server
}

#[test]
fn a_second_machine_gets_every_hit_from_buildgrid_with_prefetch() {
    let Some(server) = buildgrid(&[""]) else {
        return;
    };
    let endpoint = server.endpoint();
    two_machines_share_a_tree(&[("HOARD_REAPI_ENDPOINT", &endpoint)], "reapi", true);
}

#[test]
fn a_second_machine_without_prefetch_gets_every_hit_from_buildgrid_and_keeps_them_locally() {
    let Some(server) = buildgrid(&[""]) else {
        return;
    };
    let endpoint = server.endpoint();
    two_machines_share_a_tree(&[("HOARD_REAPI_ENDPOINT", &endpoint)], "reapi", false);
}

#[test]
fn a_second_machine_builds_the_cargo_workspace_all_from_buildgrid() {
    let Some(server) = buildgrid(&[""]) else {
        return;
    };
    let endpoint = server.endpoint();
    // Linked outputs (the bin, the build script, the proc-macro) are megabytes: over
    // BuildGrid's 4 MiB message limit some travel by ByteStream.
    crate::rust::cargo::second_machine_builds_from_as(
        "reapi",
        &[("HOARD_REAPI_ENDPOINT", &endpoint)],
        &[("HOARD_REAPI_ENDPOINT", &endpoint)],
    );
}

#[test]
fn buildgrid_dying_mid_build_leaves_a_correct_build_and_counted_faults() {
    let Some(mut server) = buildgrid(&[""]) else {
        return;
    };
    let endpoint = server.endpoint();
    killed_mid_build(
        &[("HOARD_REAPI_ENDPOINT", &endpoint)],
        "reapi",
        &mut server.daemon,
    );
}

#[test]
fn a_named_instance_shares_a_tree_and_keeps_it_from_the_default_instance() {
    let Some(server) = buildgrid(&["", "team-a"]) else {
        return;
    };
    let endpoint = server.endpoint();
    // The team's machines share through their instance (headers are sent too; this server
    // asks for none and ignores them).
    let team = [
        ("HOARD_REAPI_ENDPOINT", endpoint.as_str()),
        ("HOARD_REAPI_INSTANCE", "team-a"),
        ("HOARD_REAPI_HEADERS", "x-team=a,x-build=e2e"),
    ];
    let default = [("HOARD_REAPI_ENDPOINT", endpoint.as_str())];
    let machine = |env: &[(&str, &str)]| {
        let mut sandbox = Sandbox::new();
        for (var, value) in env {
            sandbox.set_env(var, value);
        }
        sandbox.set_env("HOARD_PREFETCH", "off");
        sandbox
    };
    let sources = &c_files(&lua_sources())[..6];
    let a = machine(&team);
    let out = a.dir.path().join("out");
    let plain = plain_build("gcc", sources, &out, &["-O0", "-g"], &a);
    plain.again_through(&a, "team machine A");
    a.stop_server();

    // A machine on the default instance of the same server finds none of it...
    let other = machine(&default);
    plain.again_through(&other, "a machine on the default instance");
    let stats = other.stats();
    let reapi = tier(&stats, "reapi");
    assert_eq!(
        (stats["cache_hits"].as_u64(), reapi["hits"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    assert_eq!(reapi["errors"], 0, "{stats}");
    other.stop_server();

    // ...where another machine of the team, building the very same commands, finds all.
    let c = machine(&team);
    plain.again_through(&c, "team machine C");
    let stats = c.stats();
    assert_eq!(stats["cache_hits"], sources.len() as u64, "{stats}");
    assert!(
        tier(&stats, "reapi")["hits"].as_u64() >= Some(sources.len() as u64),
        "{stats}"
    );
}

#[test]
fn every_setting_from_the_environment_shares_a_tree_over_mtls_with_a_token_and_leaks_no_secret() {
    if !tools::installed(&["openssl"]) {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let pki = pki(certs.path()).unwrap();
    let secret = "hoard-e2e-secret";
    let Some(server) = BuildGrid::with(Options {
        instances: vec!["team-a".into()],
        jwt_secret: Some(secret.into()),
        tls: Some(pki.clone()),
        client_certs: true,
        ..Options::default()
    }) else {
        return tools::unavailable(NO_BGD);
    };
    let token = server.token(secret, 3600);
    let endpoint = server.endpoint();
    let headers = format!("x-hoard-test=e2e\nauthorization=Bearer {token}");
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let env = [
        ("HOARD_REAPI_ENDPOINT", endpoint.as_str()),
        ("HOARD_REAPI_INSTANCE", "team-a"),
        ("HOARD_REAPI_HEADERS", headers.as_str()),
        ("HOARD_REAPI_TLS_CA", ca.as_str()),
        ("HOARD_REAPI_TLS_CLIENT_CERT", cert.as_str()),
        ("HOARD_REAPI_TLS_CLIENT_KEY", key.as_str()),
    ];
    two_machines_share_a_tree(&env, "reapi", true);

    // The token is a secret: no report and no log shows it.
    let mut sandbox = Sandbox::new();
    for (var, value) in env {
        sandbox.set_env(var, value);
    }
    let sources = &c_files(&lua_sources())[..2];
    let out = sandbox.dir.path().join("out");
    assert_all_succeeded(
        &build(Some(&sandbox), "gcc", sources, &out, &["-O1"], 2),
        "a build",
        &sandbox,
    );
    let mut shown = String::new();
    for args in [
        &["--show-config"][..],
        &["--show-config", "--json"],
        &["--show-stats"],
        &["--show-stats", "--json"],
    ] {
        let report = sandbox.hoard().args(args).output().unwrap();
        shown += &text(&report.stdout);
        shown += &text(&report.stderr);
    }
    sandbox.stop_server();
    shown += &sandbox.log();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!shown.contains(signature), "the token is shown: {shown}");
    assert!(shown.contains("reapi"), "{shown}");
}

#[test]
fn a_read_only_reapi_tier_is_never_written() {
    let Some(server) = buildgrid(&[""]) else {
        return;
    };
    let sources = &c_files(&lua_sources())[..6];
    let on_the_tier = |read_only: bool| {
        let mut sandbox = Sandbox::new();
        sandbox.set_env("HOARD_REAPI_ENDPOINT", &server.endpoint());
        if read_only {
            sandbox.set_env("HOARD_READ_ONLY_TIERS", "reapi");
        }
        sandbox
    };
    let a = on_the_tier(true);
    let out = a.dir.path().join("out");
    let plain = plain_build("gcc", sources, &out, &["-O1"], &a);
    plain.again_through(&a, "machine A, read-only");
    let stats = a.stats();
    let written = tier(&stats, "reapi");
    assert_eq!(
        (written["writes"].as_u64(), written["read_only"].as_bool()),
        (Some(0), Some(true)),
        "{stats}"
    );
    a.stop_server();
    // Nothing reached BuildGrid: a second machine finds none of it.
    let b = on_the_tier(false);
    plain.again_through(&b, "machine B");
    let stats = b.stats();
    assert_eq!(
        (
            stats["cache_hits"].as_u64(),
            tier(&stats, "reapi")["hits"].as_u64()
        ),
        (Some(0), Some(0)),
        "{stats}"
    );
}

/// The result key of compiling `source` into `out` with `flags`, as `hoard --explain` on the
/// machine that built it reports it.
fn result_key(sandbox: &Sandbox, source: &Path, out: &Path, flags: &[&str]) -> String {
    let output = sandbox
        .hoard()
        .args(["--explain", "--", "gcc"])
        .args(compile_args(source, out, flags))
        .output()
        .unwrap();
    let report = text(&output.stdout);
    let key = report
        .lines()
        .find_map(|l| l.strip_prefix("result key:"))
        .unwrap_or_else(|| panic!("no result key in: {report}{}", text(&output.stderr)))
        .trim()
        .to_owned();
    assert_eq!(key.len(), 64, "{report}");
    key
}

#[test]
fn the_objects_a_build_stored_are_what_bgd_downloads_from_their_action_results() {
    let Some(server) = buildgrid(&[""]) else {
        return;
    };
    let flags = ["-O2"];
    let sources = &c_files(&lua_sources())[..2];
    let mut a = Sandbox::new();
    a.set_env("HOARD_REAPI_ENDPOINT", &server.endpoint());
    let out = a.dir.path().join("out");
    assert_all_succeeded(
        &build(Some(&a), "gcc", sources, &out, &flags, 2),
        "machine A",
        &a,
    );
    let keys: Vec<String> = sources
        .iter()
        .map(|source| result_key(&a, source, &out, &flags))
        .collect();
    // Stopping the server flushes its queued writes.
    a.stop_server();

    let actions = server.action_digests(&keys);
    for ((source, key), action) in sources.iter().zip(&keys).zip(&actions) {
        let stem = source.file_stem().unwrap().to_string_lossy();
        let result = server.action_result("", action).unwrap_or_else(|| {
            panic!(
                "{stem}: no ActionResult under {action} (key {key})\nserver log:\n{}",
                server.log()
            )
        });
        let paths: Vec<String> = output_files(&result).into_iter().map(|(p, _)| p).collect();
        assert!(
            paths.iter().any(|p| p == "dep") && paths.iter().any(|p| p == ".hoard/header"),
            "{stem}: {result}"
        );
        let object = std::fs::read(out.join(format!("{stem}.o"))).unwrap();
        let blob = server.download("", &output_file(&result, "object"));
        assert!(
            blob == object,
            "{stem}: the object bgd downloads ({} bytes) is not the one the build left ({} bytes)",
            blob.len(),
            object.len()
        );
    }
}
