//! The TCP gateway (`hoard-server --listen` with `HOARD_SERVER_TOKEN`) under hostile network
//! peers: idle connections cannot pin its CPU or keep token holders and local wrappers out,
//! an unauthenticated connection is closed at the handshake deadline, control requests are
//! not served over TCP, and inline puts are bounded per connection and in total.

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use hoard_protocol::{Request, Response};

use crate::support::gateway::{Gateway, Launch, ListenBy, loopback_addr};
use crate::support::wire::{exchange, read_response, send};
use crate::support::{self, Sandbox, compile_c, text};

const TOKEN: &str = "gateway-flood-token-0c61";

/// The handshake deadline the gateway promises (5 s), plus room for a loaded machine.
const DEADLINE_WITH_MARGIN: Duration = Duration::from_secs(8);

/// A gateway on 127.0.0.1 started through `sh -c '<prelude> exec hoard-server --listen'`
/// (for a `ulimit`), logging at `info`; killed on drop.
fn start(prelude: &str) -> Gateway {
    Gateway::start_at(
        Launch::AfterShell(prelude),
        &loopback_addr(),
        TOKEN,
        ListenBy::Flag,
        &[("HOARD_LOG", "info")],
    )
}

/// The gateway's CPU time so far (user + system, all threads), in clock ticks.
fn cpu_ticks(gateway: &Gateway) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", gateway.pid())).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A TCP connection to the gateway that has shown the token.
fn authenticated(gateway: &Gateway) -> TcpStream {
    let mut tcp = TcpStream::connect(&gateway.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    match exchange(&mut tcp, &hello(Some(TOKEN))) {
        Some(Response::Welcome { .. }) => tcp,
        other => panic!("Hello with the token: {other:?}\n{}", gateway.output()),
    }
}

fn hello(token: Option<&str>) -> Request {
    Request::Hello {
        min: 2,
        max: 2,
        capabilities: vec!["manifests".into(), "inline".into()],
        probe: None,
        token: token.map(str::to_owned),
    }
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

#[test]
fn eighty_idle_tcp_connections_under_ulimit_64_neither_pin_the_gateway_nor_keep_clients_out() {
    let gateway = start("ulimit -n 64;");
    let work = tempfile::tempdir().unwrap();
    for name in ["remote", "local"] {
        std::fs::write(
            work.path().join(format!("{name}.c")),
            format!("int {name}(int x) {{ return x * 7; }}\n"),
        )
        .unwrap();
    }
    // A token holder on another machine, and a wrapper on the gateway's own: each stores its
    // compile before the flood.
    let mut remote = Sandbox::new();
    remote.set_env("HOARD_SERVER_ADDR", &gateway.addr);
    remote.set_env("HOARD_SERVER_TOKEN", TOKEN);
    remote.set_env("HOARD_CLIENT_TIMEOUT", "20");
    compile_c(remote.hoard(), work.path(), "remote");
    compile_c(gateway.hoard_over_uds(), work.path(), "local");
    let stats = gateway.stats_over_uds();
    assert_eq!(stats["cache_misses"], 2, "{stats}\n{}", gateway.output());

    let flood: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(&gateway.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let ticks = clock_ticks_per_second();
    let before = cpu_ticks(&gateway);
    let measured = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let spent = u32::try_from(cpu_ticks(&gateway) - before).unwrap();
    let used = f64::from(spent) / ticks / measured.elapsed().as_secs_f64();
    println!("gateway CPU under 80 idle connections with ulimit -n 64: {used:.3} of a core");

    // Still during the flood: both compiles hit.
    compile_c(remote.hoard(), work.path(), "remote");
    let local = Instant::now();
    compile_c(gateway.hoard_over_uds(), work.path(), "local");
    println!(
        "a local wrapper's hit during the flood took {:?}",
        local.elapsed()
    );
    let stats = gateway.stats_over_uds();
    drop(flood);
    assert!(
        used < 0.5,
        "the gateway used {used:.2} of a core under the flood\n{}",
        gateway.output()
    );
    assert_eq!(
        stats["cache_hits"],
        2,
        "a token holder and a local wrapper hit during the flood: {stats}\n{}\n{}",
        remote.log(),
        gateway.output()
    );
}

#[test]
fn an_unauthenticated_idle_tcp_connection_is_closed_at_the_handshake_deadline() {
    let _machine = support::timed();
    let gateway = start("");
    let mut idle = TcpStream::connect(&gateway.addr).unwrap();
    idle.set_read_timeout(Some(DEADLINE_WITH_MARGIN * 2))
        .unwrap();
    let opened = Instant::now();
    let mut byte = [0u8; 1];
    let read = idle.read(&mut byte);
    let waited = opened.elapsed();
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected the gateway to close the connection, got {read:?} after {waited:?}"
    );
    assert!(
        waited < DEADLINE_WITH_MARGIN,
        "closed only after {waited:?}"
    );
    // A peer that shows the token in time is served as before.
    let mut tcp = authenticated(&gateway);
    assert!(matches!(
        exchange(&mut tcp, &Request::GetStats),
        Some(Response::Stats { .. })
    ));
}

#[test]
fn zero_stats_and_shutdown_over_tcp_are_refused_even_with_the_token() {
    let gateway = start("");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.c"), "int a(void) { return 1; }\n").unwrap();
    compile_c(gateway.hoard_over_uds(), work.path(), "a");
    let mut tcp = authenticated(&gateway);
    // Statistics stay readable over TCP (`hoard --show-stats` against a gateway).
    assert!(matches!(
        exchange(&mut tcp, &Request::GetStats),
        Some(Response::Stats { .. })
    ));
    for control in [Request::ZeroStats, Request::Shutdown] {
        match exchange(&mut tcp, &control) {
            Some(Response::Error { message }) => {
                assert!(message.contains("TCP"), "{message}");
            }
            other => panic!("{control:?} over TCP: {other:?}"),
        }
    }
    let stats = gateway.stats_over_uds();
    assert_eq!(
        stats["cache_misses"], 1,
        "the statistics were zeroed: {stats}"
    );
    assert!(gateway.socket().exists(), "the gateway stopped");
}

const KEY: &str = "f100d00112233445566778899aabbccddeeff00112233445566778899aabbccd";

/// Announces an inline put of `size` bytes and sends its first `first` bytes.
fn announce_put(tcp: &mut TcpStream, size: u64, first: usize) {
    send(
        tcp,
        &Request::CachePutInline {
            key: KEY.into(),
            language: None,
            size,
            data: vec![0; first],
        },
    );
}

#[test]
fn inline_puts_beyond_the_per_connection_bound_or_the_total_budget_are_refused() {
    let gateway = start("");
    // One entry of 1 GiB: under the old 4 GiB limit, beyond what one TCP peer may hold.
    let mut tcp = authenticated(&gateway);
    let asked = Instant::now();
    announce_put(&mut tcp, 1 << 30, 1024);
    match read_response(&mut tcp) {
        Some(Response::Error { message }) => assert!(message.contains("refused"), "{message}"),
        other => panic!(
            "a 1 GiB inline put: {other:?} after {:?}\n{}",
            asked.elapsed(),
            gateway.output()
        ),
    }

    // Two of 200 MiB at once: the first holds the budget while its chunks come (slowly), the
    // second is refused instead of waiting for ever.
    let mut first = authenticated(&gateway);
    announce_put(&mut first, 200 << 20, 1 << 20);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = authenticated(&gateway);
    announce_put(&mut second, 200 << 20, 1 << 20);
    match read_response(&mut second) {
        Some(Response::Error { message }) => assert!(message.contains("refused"), "{message}"),
        other => panic!("a second 200 MiB put: {other:?}\n{}", gateway.output()),
    }
    drop(first);
}
