//! The TCP gateway (`hoard-server --listen` with `HOARD_SERVER_TOKEN`) under hostile network
//! peers: idle connections cannot pin its CPU or keep token holders and local wrappers out,
//! an unauthenticated connection is closed at the handshake deadline, control requests are
//! not served over TCP, and inline puts are bounded per connection and in total.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoard_protocol::{Request, Response, decode, encode};

use crate::common::{HOARD, Sandbox, text};

const SERVER: &str = env!("CARGO_BIN_EXE_hoard-server");
const TOKEN: &str = "gateway-flood-token-0c61";

/// The handshake deadline the gateway promises (5 s), plus room for a loaded machine.
const DEADLINE_WITH_MARGIN: Duration = Duration::from_secs(8);

/// Variables of the test's own environment that would change what the binaries do.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HOARD_")) {
        cmd.env_remove(key);
    }
}

/// A gateway on 127.0.0.1 started through `sh -c '<prelude> exec hoard-server --listen'`
/// (for a `ulimit`); killed on drop.
struct Gateway {
    dir: tempfile::TempDir,
    addr: String,
    child: Child,
}

impl Gateway {
    fn start(prelude: &str) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("hoard-flood")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prelude} exec \"$0\" --listen \"$1\""))
            .arg(SERVER)
            .arg(&addr);
        clean_env(&mut cmd);
        let child = cmd
            .env("HOARD_DIR", dir.path().join("cache"))
            .env("HOARD_SERVER_UDS", dir.path().join("gateway.sock"))
            .env("HOARD_SERVER_TOKEN", TOKEN)
            .env("HOARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut gateway = Gateway { dir, addr, child };
        let started = Instant::now();
        loop {
            assert!(
                gateway.child.try_wait().unwrap().is_none(),
                "the gateway exited: {}",
                gateway.output()
            );
            if gateway.socket().exists() && TcpStream::connect(&gateway.addr).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the gateway never listened: {}",
                gateway.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        gateway
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("gateway.sock")
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn output(&self) -> String {
        let mut all = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        all += &std::fs::read_to_string(self.cache_dir().join("server.log")).unwrap_or_default();
        all
    }

    /// `hoard` on the gateway's machine, reaching it through its Unix socket.
    fn local_hoard(&self) -> Command {
        let mut cmd = Command::new(HOARD);
        clean_env(&mut cmd);
        cmd.env("HOARD_DIR", self.cache_dir())
            .env("HOARD_SERVER_UDS", self.socket())
            .env("HOARD_LOG", "debug");
        cmd
    }

    fn stats(&self) -> serde_json::Value {
        let out = self
            .local_hoard()
            .args(["--show-stats", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The gateway's CPU time so far (user + system, all threads), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let (_, rest) = stat.rsplit_once(')').unwrap();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// A TCP connection to the gateway that has shown the token.
    fn authenticated(&self) -> TcpStream {
        let mut tcp = TcpStream::connect(&self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        match exchange(&mut tcp, &hello(Some(TOKEN))) {
            Some(Response::Welcome { .. }) => tcp,
            other => panic!("Hello with the token: {other:?}\n{}", self.output()),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn send(stream: &mut impl Write, request: &Request) {
    let body = encode(request).unwrap();
    stream
        .write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
}

/// The next response, or `None` when the connection closed or timed out first.
fn receive(stream: &mut impl Read) -> Option<Response> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(decode(&body).unwrap())
}

fn exchange(stream: &mut TcpStream, request: &Request) -> Option<Response> {
    send(stream, request);
    receive(stream)
}

/// `hoard gcc -c <name>.c` in `dir` with `cmd`'s environment; must succeed.
fn compile(mut cmd: Command, dir: &Path, name: &str) {
    let out = cmd
        .current_dir(dir)
        .args([
            "gcc",
            "-c",
            &format!("{name}.c"),
            "-o",
            &format!("{name}.o"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", text(&out.stderr));
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

#[test]
fn eighty_idle_tcp_connections_under_ulimit_64_neither_pin_the_gateway_nor_keep_clients_out() {
    let gateway = Gateway::start("ulimit -n 64;");
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
    compile(remote.hoard(), work.path(), "remote");
    compile(gateway.local_hoard(), work.path(), "local");
    let stats = gateway.stats();
    assert_eq!(stats["cache_misses"], 2, "{stats}\n{}", gateway.output());

    let flood: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(&gateway.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let ticks = clock_ticks_per_second();
    let before = gateway.cpu_ticks();
    let measured = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let spent = u32::try_from(gateway.cpu_ticks() - before).unwrap();
    let used = f64::from(spent) / ticks / measured.elapsed().as_secs_f64();
    println!("gateway CPU under 80 idle connections with ulimit -n 64: {used:.3} of a core");

    // Still during the flood: both compiles hit.
    compile(remote.hoard(), work.path(), "remote");
    let local = Instant::now();
    compile(gateway.local_hoard(), work.path(), "local");
    println!(
        "a local wrapper's hit during the flood took {:?}",
        local.elapsed()
    );
    let stats = gateway.stats();
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
    let gateway = Gateway::start("");
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
    let mut tcp = gateway.authenticated();
    assert!(matches!(
        exchange(&mut tcp, &Request::GetStats),
        Some(Response::Stats { .. })
    ));
}

#[test]
fn zero_stats_and_shutdown_over_tcp_are_refused_even_with_the_token() {
    let gateway = Gateway::start("");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.c"), "int a(void) { return 1; }\n").unwrap();
    compile(gateway.local_hoard(), work.path(), "a");
    let mut tcp = gateway.authenticated();
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
    let stats = gateway.stats();
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
    let gateway = Gateway::start("");
    // One entry of 1 GiB: under the old 4 GiB limit, beyond what one TCP peer may hold.
    let mut tcp = gateway.authenticated();
    let asked = Instant::now();
    announce_put(&mut tcp, 1 << 30, 1024);
    match receive(&mut tcp) {
        Some(Response::Error { message }) => assert!(message.contains("refused"), "{message}"),
        other => panic!(
            "a 1 GiB inline put: {other:?} after {:?}\n{}",
            asked.elapsed(),
            gateway.output()
        ),
    }

    // Two of 200 MiB at once: the first holds the budget while its chunks come (slowly), the
    // second is refused instead of waiting for ever.
    let mut first = gateway.authenticated();
    announce_put(&mut first, 200 << 20, 1 << 20);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = gateway.authenticated();
    announce_put(&mut second, 200 << 20, 1 << 20);
    match receive(&mut second) {
        Some(Response::Error { message }) => assert!(message.contains("refused"), "{message}"),
        other => panic!("a second 200 MiB put: {other:?}\n{}", gateway.output()),
    }
    drop(first);
}
