//! The TCP gateway: `hoard-server --listen ADDR` (or `HOARD_SERVER_LISTEN`) guarded by
//! `HOARD_SERVER_TOKEN`, and clients that reach it with `HOARD_SERVER_ADDR`. Such clients
//! always transfer entries inline; without the right token they are refused and build
//! locally with exactly the compiler's results, and nothing is stored.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use hoard_client::{CacheKey, ClientConfig, Hoard, OutputPath};

use crate::support::gateway::{Gateway, Launch, ListenBy, loopback_addr};
use crate::support::namespaces::NetNs;
use crate::support::{
    Sandbox, c_files, counter, free_port, lua_sources, plain_build, text, tools, transfers,
    wait_exit,
};

const FLAGS: &[&str] = &["-O1", "-g", "-Wall"];
const TOKEN: &str = "e2e-gateway-token-7d0c9b";

/// A client sandbox that reaches the gateway at `addr` over TCP with `token` (an empty value,
/// which counts as unset, for none).
fn tcp_client(addr: &str, token: Option<&str>) -> Sandbox {
    let mut client = Sandbox::new();
    client.set_env("HOARD_SERVER_ADDR", addr);
    client.set_env("HOARD_SERVER_TOKEN", token.unwrap_or(""));
    client
}

/// Builds the Lua tree plain, then cold and warm through `client`, asserting every build
/// succeeds with plain gcc's outputs and diagnostics. Returns the number of sources.
fn build_cold_and_warm(client: &Sandbox, out: &std::path::Path) -> u64 {
    let sources = c_files(&lua_sources());
    let plain = plain_build("gcc", &sources, out, FLAGS, client);
    for pass in ["cold", "warm"] {
        let outputs = plain.again_through(client, pass);
        plain.assert_same_diagnostics(&outputs, pass);
    }
    sources.len() as u64
}

/// After a cold and a warm build through the gateway: every source missed once, was stored
/// once and hit once, and all of it travelled inline.
fn assert_cold_then_warm_all_hits_inline(stats: &serde_json::Value, n: u64, logs: &str) {
    assert_eq!(counter(stats, "cache_hits"), n, "{stats}\n{logs}");
    assert_eq!(counter(stats, "cache_misses"), n, "{stats}\n{logs}");
    assert_eq!(counter(stats, "cache_writes"), n, "{stats}\n{logs}");
    assert_eq!(
        transfers(stats),
        (0, 2 * n),
        "every hit and put inline: {stats}\n{logs}"
    );
}

/// A TCP client never starts a server of its own.
fn assert_started_no_server(client: &Sandbox) {
    assert_eq!(
        client.server_pids(),
        Vec::<i32>::new(),
        "a TCP client started a server of its own"
    );
}

/// The gateway served nothing: no hits, misses or writes, no transfers, no entry on disk.
fn assert_gateway_served_and_stored_nothing(gateway: &Gateway) {
    let stats = gateway.stats_over_uds();
    for name in ["cache_hits", "cache_misses", "cache_writes"] {
        assert_eq!(counter(&stats, name), 0, "{name}: {stats}");
    }
    assert_eq!(transfers(&stats), (0, 0), "{stats}");
    assert_eq!(
        gateway.stored_files(),
        Vec::<PathBuf>::new(),
        "the gateway stored entries for a refused client"
    );
}

#[test]
fn a_tcp_client_with_the_right_token_builds_byte_identical_warm_all_hits_transferred_inline() {
    let gateway = Gateway::start(TOKEN, ListenBy::Flag, &[]);
    let client = tcp_client(&gateway.addr, Some(TOKEN));
    let out = client.dir.path().join("out");
    let n = build_cold_and_warm(&client, &out);

    let logs = format!("client log:\n{}\n{}", client.log(), gateway.output());
    // The same counters over TCP (as the client sees them) and over the gateway's socket.
    assert_cold_then_warm_all_hits_inline(&client.stats(), n, &logs);
    assert_cold_then_warm_all_hits_inline(&gateway.stats_over_uds(), n, &logs);
    assert!(
        !gateway.stored_files().is_empty(),
        "entries are in the gateway's cache directory"
    );
    assert_started_no_server(&client);
}

#[test]
fn a_tcp_client_without_a_token_builds_locally_byte_identical_and_the_gateway_stores_nothing() {
    let gateway = Gateway::start(TOKEN, ListenBy::Flag, &[]);
    let client = tcp_client(&gateway.addr, None);
    build_cold_and_warm(&client, &client.dir.path().join("out"));
    assert_gateway_served_and_stored_nothing(&gateway);
    assert_started_no_server(&client);
}

#[test]
fn a_tcp_client_with_a_wrong_token_gets_exact_compiler_results_and_the_gateway_stores_nothing() {
    let gateway = Gateway::start(TOKEN, ListenBy::Env, &[]);
    let client = tcp_client(&gateway.addr, Some("not-the-token"));
    build_cold_and_warm(&client, &client.dir.path().join("out"));

    // A failing compile: the compiler's own status and errors.
    let dir = client.dir.path();
    std::fs::write(dir.join("bad.c"), "int main(void) { return nope; }\n").unwrap();
    let args = ["-c", "bad.c", "-o", "bad.o"];
    let plain = Command::new("gcc")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let wrapped = client
        .hoard()
        .current_dir(dir)
        .arg("gcc")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(wrapped.status.code(), plain.status.code());
    assert_eq!(text(&wrapped.stdout), text(&plain.stdout));
    assert_eq!(text(&wrapped.stderr), text(&plain.stderr));

    let stats = client.hoard().arg("--show-stats").output().unwrap();
    assert!(
        !stats.status.success(),
        "show-stats with a wrong token succeeded: {}",
        text(&stats.stdout)
    );
    assert!(
        !text(&stats.stderr).trim().is_empty(),
        "show-stats with a wrong token failed without a message"
    );

    assert_gateway_served_and_stored_nothing(&gateway);
    assert_started_no_server(&client);
}

#[test]
fn a_gateway_refuses_to_start_without_a_token_naming_hoard_server_token() {
    for by in [ListenBy::Flag, ListenBy::Env] {
        // Unset, and empty (which counts as unset).
        for token in [None, Some("")] {
            let dir = tempfile::tempdir().unwrap();
            let addr = loopback_addr();
            let stderr = dir.path().join("stderr");
            let mut child = Gateway::command(dir.path(), &addr, token, by)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).unwrap())
                .spawn()
                .unwrap();
            let status = wait_exit(&mut child, Duration::from_secs(60));
            let message = std::fs::read_to_string(&stderr).unwrap();
            assert!(
                !status.success(),
                "{by:?}, token {token:?}: a gateway started without a token"
            );
            assert!(
                message.contains("HOARD_SERVER_TOKEN"),
                "{by:?}, token {token:?}: the refusal does not name HOARD_SERVER_TOKEN: {message:?}"
            );
        }
    }
}

#[test]
fn a_server_reachable_only_over_tcp_from_another_network_namespace_serves_a_warm_build_all_hits() {
    if !tools::root("to make a network namespace") || !tools::installed(&["ip"]) {
        return;
    }
    let ns = NetNs::create();
    let addr = format!("{}:{}", ns.inner_ip, free_port());
    let gateway = Gateway::start_at(Launch::InNetns(&ns.name), &addr, TOKEN, ListenBy::Flag, &[]);
    let identify = Command::new("ip")
        .args(["netns", "identify", &gateway.pid().to_string()])
        .output()
        .unwrap();
    assert_eq!(
        text(&identify.stdout).trim(),
        ns.name,
        "the gateway runs in the network namespace"
    );

    let client = tcp_client(&addr, Some(TOKEN));
    let n = build_cold_and_warm(&client, &client.dir.path().join("out"));
    let logs = format!("client log:\n{}\n{}", client.log(), gateway.output());
    assert_cold_then_warm_all_hits_inline(&client.stats(), n, &logs);
    assert_started_no_server(&client);
}

/// `len` bytes from splitmix64: incompressible, and the same for every run.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_incompressible_artifact_round_trips_inline_through_the_embedding_api() {
    const SIZE: usize = 200 << 20;
    let gateway = Gateway::start(TOKEN, ListenBy::Flag, &[]);
    let dir = tempfile::tempdir().unwrap();
    // No server listens on this socket: everything goes to the gateway over TCP.
    let mut config = ClientConfig::new(dir.path().join("client"), dir.path().join("none.sock"));
    config.server_addr = Some(gateway.addr.clone());
    config.token = Some(TOKEN.to_owned());
    // A debug build moving 200 MiB: give the one request room, this is not a speed test.
    config.request_timeout = Duration::from_secs(900);
    let hoard = Hoard::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", gateway.output()));

    let artifact = OutputPath::new("artifact", dir.path().join("artifact.bin"));
    let data = pseudo_random(SIZE);
    let digest = blake3::hash(&data);
    std::fs::write(&artifact.path, &data).unwrap();
    drop(data);
    let key = CacheKey::from_bytes(*blake3::hash(b"hoard e2e: a 200 MiB artifact").as_bytes());
    hoard
        .put(&key, std::slice::from_ref(&artifact), b"", b"", 0)
        .await
        .unwrap_or_else(|e| panic!("put: {e}\n{}", gateway.output()));
    std::fs::remove_file(&artifact.path).unwrap();

    let hit = hoard
        .get(&key, std::slice::from_ref(&artifact))
        .await
        .unwrap_or_else(|e| panic!("get: {e}\n{}", gateway.output()))
        .expect("the artifact is a hit");
    assert_eq!(hit.exit_status, 0);
    let back = std::fs::read(&artifact.path).unwrap();
    assert_eq!(back.len(), SIZE);
    assert!(
        blake3::hash(&back) == digest,
        "the artifact came back with other bytes"
    );

    let stats = gateway.stats_over_uds();
    assert_eq!(counter(&stats, "cache_writes"), 1, "{stats}");
    assert_eq!(counter(&stats, "cache_hits"), 1, "{stats}");
    assert_eq!(transfers(&stats), (0, 2), "{stats}\n{}", gateway.output());
    // Stored whole: incompressible bytes do not shrink.
    let stored: u64 = gateway
        .stored_files()
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(stored >= SIZE as u64, "{stored} bytes stored");
}
