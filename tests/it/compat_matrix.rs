//! Mixed rollouts: client {v1-only, v2} × server {v1-only, v2}, each pinned with
//! `HOARD_PROTOCOL` / `HOARD_SERVER_MAX_PROTOCOL`, on a real multi-file C tree with real gcc.
//! Every cell gets a cold and a warm build; the warm build is all hits, byte-identical to plain
//! gcc, and `requests_by_protocol` shows which version carried the traffic. Entries written by
//! one generation are hits for the other.

use crate::support::{
    Sandbox, assert_all_succeeded, build, c_files, clean, lua_sources, plain_build,
};

const FLAGS: &[&str] = &["-O0", "-g", "-Wall"];

/// Stops the sandbox's server and empties its cache, as a fresh machine.
fn reset(sandbox: &Sandbox) {
    let _ = sandbox.hoard().arg("--stop-server").output();
    std::fs::remove_dir_all(sandbox.cache_dir()).ok();
}

fn cell(client: u32, server: u32) {
    let mut sandbox = Sandbox::new();
    let sources = c_files(&lua_sources());
    let out = sandbox.dir.path().join("out");
    let plain = plain_build("gcc", &sources, &out, FLAGS, &sandbox);

    sandbox.set_env("HOARD_PROTOCOL", &client.to_string());
    sandbox.set_env("HOARD_SERVER_MAX_PROTOCOL", &server.to_string());
    let cell = format!("client v{client} / server v{server}");
    for pass in ["cold", "warm"] {
        if pass == "warm" {
            sandbox.zero_stats();
        }
        plain.again_through(&sandbox, &format!("{cell}: {pass}"));
    }
    let stats = sandbox.stats();
    assert_eq!(stats["cache_hits"], sources.len(), "{cell}: {stats}");
    assert_eq!(
        stats["local_fallbacks"],
        0,
        "{cell}: {stats}\n{}",
        sandbox.log()
    );
    let carried = client.min(server).to_string();
    let other = if carried == "1" { "2" } else { "1" };
    // A v2 client of a v2 server serves warm hits from its own cache directory (no request
    // at all), counted as v2 hits; anything else carries each hit in a request.
    let carried_hits = if carried == "2" {
        stats["hits_by_protocol"][&carried].as_u64().unwrap_or(0)
    } else {
        stats["requests_by_protocol"][&carried]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(carried_hits >= sources.len() as u64, "{cell}: {stats}");
    assert!(
        stats["requests_by_protocol"][other].is_null(),
        "{cell}: v{other} carried traffic: {stats}"
    );
}

#[test]
fn v1_client_on_v1_server_is_all_hits_when_warm() {
    cell(1, 1);
}

#[test]
fn v1_client_on_v2_server_is_all_hits_when_warm() {
    cell(1, 2);
}

#[test]
fn v2_client_on_v1_server_falls_back_to_v1_and_is_all_hits_when_warm() {
    cell(2, 1);
}

#[test]
fn v2_client_on_v2_server_is_all_hits_when_warm() {
    cell(2, 2);
}

#[test]
fn v1_and_v2_clients_hit_each_others_entries() {
    let mut sandbox = Sandbox::new();
    let sources = c_files(&lua_sources());
    let out = sandbox.dir.path().join("out");
    let plain = plain_build("gcc", &sources, &out, FLAGS, &sandbox);
    for (writer, reader) in [(1, 2), (2, 1)] {
        reset(&sandbox);
        sandbox.set_env("HOARD_PROTOCOL", &writer.to_string());
        clean(&out);
        assert_all_succeeded(
            &build(Some(&sandbox), "gcc", &sources, &out, FLAGS, 2),
            "writer",
            &sandbox,
        );
        sandbox.set_env("HOARD_PROTOCOL", &reader.to_string());
        sandbox.zero_stats();
        plain.again_through(&sandbox, &format!("v{reader} reading v{writer}'s entries"));
        let stats = sandbox.stats();
        assert_eq!(
            stats["cache_hits"],
            sources.len(),
            "v{reader} client on entries a v{writer} client wrote: {stats}"
        );
    }
}

/// Signed entries across the matrix: a signing v2 writer fills a shared tier; a verifying
/// reader of either protocol version hits all of it (a v1 client's compiles run in the
/// server, over the same verifying tiers), and names no untrusted entry. An unsigned writer's
/// entries (a writer from before signatures, or without a key) are refused by the same
/// readers, counted, and compiled correctly instead.
#[test]
fn verifying_readers_of_either_version_hit_a_signing_writer_s_entries_and_refuse_unsigned_ones() {
    let work = tempfile::tempdir().unwrap();
    let sources = c_files(&lua_sources());
    let key = work.path().join("ci.key");
    let public = hoard_storage::signing::keygen(&key, "ci").unwrap();
    for signed in [true, false] {
        let shared = work.path().join(format!("shared-{signed}"));
        let mut writer = Sandbox::new();
        writer.set_env("HOARD_SHARED_DIR", shared.to_str().unwrap());
        if signed {
            writer.set_env("HOARD_SIGNING_KEY", key.to_str().unwrap());
        }
        let out = writer.dir.path().join("out");
        let plain = plain_build("gcc", &sources, &out, FLAGS, &writer);
        plain.again_through(&writer, "writer");
        writer.stop_server();
        for protocol in [1, 2] {
            let mut reader = Sandbox::new();
            reader.set_env("HOARD_SHARED_DIR", shared.to_str().unwrap());
            reader.set_env("HOARD_TRUSTED_KEYS", &public);
            reader.set_env("HOARD_PROTOCOL", &protocol.to_string());
            reader.set_env("HOARD_PREFETCH", "off");
            reader.set_env("HOARD_READ_ONLY_TIERS", "shared_dir");
            let cell = format!("v{protocol} reader, signed writer: {signed}");
            plain.again_through(&reader, &cell);
            let stats = reader.stats();
            let untrusted = crate::support::tier(&stats, "shared_dir")["untrusted"]
                .as_u64()
                .unwrap();
            if signed {
                assert_eq!(stats["cache_hits"], sources.len(), "{cell}: {stats}");
                assert_eq!(untrusted, 0, "{cell}: {stats}");
            } else {
                assert_eq!(stats["cache_hits"], 0, "{cell}: {stats}");
                assert!(untrusted >= sources.len() as u64, "{cell}: {stats}");
            }
        }
    }
}
