//! The metrics endpoint: `hoard-server --metrics ADDR` (or `HOARD_SERVER_METRICS`) serves
//! Prometheus text at `/metrics` and JSON at `/status`, both showing what `--show-stats`
//! shows; a scrape during a build sees the build's hits; the endpoint goes away with the
//! server (SIGTERM, idle shutdown), and an address it cannot bind stops the server naming it.
//! Requests are plain HTTP/1.1 over a `std` socket: what a scraper sends, nothing more.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::{Gateway, ListenBy, clean_env, loopback_addr};
use crate::support::{
    HOARD, HOARD_SERVER, Sandbox, assert_all_succeeded, build, c_files, clean, compile_c, counter,
    free_port, lua_sources, signal, text, wait_exit,
};

const FLAGS: &[&str] = &["-O1", "-Wall"];

/// How long a server may take to come up or go away before the test gives up (a limit for
/// a stuck process, not a bound on speed).
const PROCESS_LIMIT: Duration = Duration::from_secs(60);

/// One HTTP answer.
#[derive(Debug)]
struct Page {
    status: u16,
    content_type: String,
    body: String,
}

/// `GET path` from `addr` with `accept` as the `Accept` header, read to the end (the server
/// closes after one answer).
fn get(addr: &str, path: &str, accept: Option<&str>) -> Page {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(PROCESS_LIMIT)).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = text(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Page {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// `/metrics`, which must answer 200.
fn scrape(addr: &str) -> String {
    let page = get(addr, "/metrics", None);
    assert_eq!(page.status, 200, "{page:?}");
    page.body
}

/// `/status`, which must answer 200 with JSON.
fn status(addr: &str) -> serde_json::Value {
    let page = get(addr, "/status", None);
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.content_type, "application/json");
    serde_json::from_str(&page.body).unwrap_or_else(|e| panic!("{e}: {}", page.body))
}

/// The sum of every sample of `name` (all its label sets, whole numbers) in a Prometheus
/// text exposition.
fn metric(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .map(|l| {
            let value = l.rsplit_once(' ').expect("name value").1;
            value.parse::<u64>().unwrap_or_else(|_| panic!("{l}"))
        })
        .sum()
}

/// The one sample of `name` whose labels contain `label` (`key="value"`).
fn labelled(exposition: &str, name: &str, label: &str) -> u64 {
    let line = exposition
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .unwrap_or_else(|| panic!("no {name} with {label} in:\n{exposition}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// Whether something accepts connections at `addr`.
fn listening(addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// A `hoard-server` for `sandbox`'s socket and cache, started by hand with `--metrics`;
/// killed when dropped if it is still running.
struct MetricsServer {
    child: Child,
    addr: String,
}

impl MetricsServer {
    fn start(sandbox: &Sandbox, env: &[(&str, &str)]) -> MetricsServer {
        let addr = loopback_addr();
        let mut cmd = server_command(sandbox);
        let child = cmd
            .args(["--metrics", &addr])
            .envs(env.iter().copied())
            .spawn()
            .expect("hoard-server starts");
        let mut server = MetricsServer { child, addr };
        let started = Instant::now();
        while !(sandbox.socket().exists() && listening(&server.addr)) {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "the server exited before serving ({status}):\n{}",
                    sandbox.log()
                );
            }
            assert!(
                started.elapsed() < PROCESS_LIMIT,
                "never served:\n{}",
                sandbox.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hoard-server` with `sandbox`'s cache directory and socket and nothing else of the test's
/// environment.
fn server_command(sandbox: &Sandbox) -> Command {
    let mut cmd = Command::new(HOARD_SERVER);
    clean_env(&mut cmd);
    cmd.env("HOARD_DIR", sandbox.cache_dir())
        .env("HOARD_SERVER_UDS", sandbox.socket())
        .env("HOARD_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Builds `sources` into `out` through `sandbox`, two at a time; every compile must succeed.
fn build_through(sandbox: &Sandbox, sources: &[std::path::PathBuf], out: &Path, what: &str) {
    clean_if_present(out);
    let outputs = build(Some(sandbox), "gcc", sources, out, FLAGS, 2);
    assert_all_succeeded(&outputs, what, sandbox);
}

fn clean_if_present(out: &Path) {
    if out.exists() {
        clean(out);
    }
}

#[test]
fn a_scrape_during_a_build_sees_its_hits_and_after_it_shows_what_show_stats_and_status_do() {
    let sandbox = Sandbox::new();
    let mut server = MetricsServer::start(&sandbox, &[]);
    let addr = server.addr.clone();
    let sources = &c_files(&lua_sources())[..8];
    let n = sources.len() as u64;
    let out = sandbox.dir.path().join("out");

    let before = scrape(&addr);
    assert_eq!(metric(&before, "hoard_cache_hits_total"), 0, "{before}");
    build_through(&sandbox, sources, &out, "cold build");
    let cold = scrape(&addr);
    assert_eq!(metric(&cold, "hoard_cache_hits_total"), 0, "{cold}");
    assert_eq!(metric(&cold, "hoard_cache_misses_total"), n, "{cold}");

    // The warm build runs while a scraper keeps asking: every scrape answers, and the hits
    // it sees only grow, up to the build's.
    let seen = std::thread::scope(|scope| {
        let warm = scope.spawn(|| build_through(&sandbox, sources, &out, "warm build"));
        let mut seen = Vec::new();
        while !warm.is_finished() {
            seen.push(metric(&scrape(&addr), "hoard_cache_hits_total"));
        }
        warm.join().unwrap();
        seen
    });
    assert!(!seen.is_empty());
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]) && seen.iter().all(|h| *h <= n),
        "hits seen during the build: {seen:?}"
    );

    let warm = scrape(&addr);
    assert_eq!(metric(&warm, "hoard_cache_hits_total"), n, "{warm}");
    assert_eq!(metric(&warm, "hoard_cache_misses_total"), n, "{warm}");
    let shown = sandbox.stats();
    assert_eq!(counter(&shown, "cache_hits"), n, "{shown}");
    assert_eq!(
        labelled(&warm, "hoard_tier_lookups_total", "result=\"hit\""),
        n,
        "the local tier answered every hit: {warm}"
    );
    assert!(metric(&warm, "hoard_cache_entries") >= n, "{warm}");
    assert!(metric(&warm, "hoard_cache_size_bytes") > 0, "{warm}");
    assert!(
        labelled(
            &warm,
            "hoard_connections_accepted_total",
            "listener=\"unix\""
        ) > 0,
        "{warm}"
    );

    let status = status(&addr);
    assert_eq!(status["hits"], n, "{status}");
    assert_eq!(status["misses"], n, "{status}");
    assert_eq!(status["protocols"], serde_json::json!([1, 2]), "{status}");
    assert_eq!(status["tiers"][0]["name"], "local", "{status}");
    assert_eq!(status["tiers"][0]["state"], "healthy", "{status}");
    assert_eq!(status["tiers"][0]["hits"], n, "{status}");
    assert_eq!(
        status["cache"]["entries"].as_u64(),
        Some(metric(&warm, "hoard_cache_entries")),
        "{status}"
    );
    assert!(status["version"].is_string(), "{status}");

    let open = get(
        &addr,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert!(
        open.content_type
            .starts_with("application/openmetrics-text"),
        "{open:?}"
    );
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
    assert_eq!(
        metric(&open.body, "hoard_cache_hits_total"),
        n,
        "{}",
        open.body
    );
    let classic = get(&addr, "/metrics", None);
    assert!(
        classic
            .content_type
            .starts_with("text/plain; version=0.0.4"),
        "{classic:?}"
    );
    for path in ["/", "/nope", "/metrics/extra", "/cache/00"] {
        assert_eq!(get(&addr, path, None).status, 404, "{path}");
    }

    // SIGTERM stops the server, and its metrics with it.
    signal(i32::try_from(server.child.id()).unwrap(), "TERM");
    let exited = wait_exit(&mut server.child, PROCESS_LIMIT);
    assert!(exited.success(), "{exited}:\n{}", sandbox.log());
    assert!(!listening(&addr), "metrics still served after SIGTERM");
}

#[test]
fn scrapes_do_not_keep_an_idle_server_alive_and_its_metrics_stop_with_it() {
    let sandbox = Sandbox::new();
    let mut server = MetricsServer::start(&sandbox, &[("HOARD_IDLE_TIMEOUT", "2")]);
    let started = Instant::now();
    let exited = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < PROCESS_LIMIT,
            "scraped every 200 ms, the server never went idle:\n{}",
            sandbox.log()
        );
        // A scrape may meet the server as it stops; only the end is asserted.
        let _ = TcpStream::connect(&server.addr).map(|mut s| {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        });
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(exited.success(), "{exited}:\n{}", sandbox.log());
    assert!(
        !listening(&server.addr),
        "metrics still served after idle shutdown"
    );
    assert!(sandbox.log().contains("idle for"), "{}", sandbox.log());
}

#[test]
fn a_metrics_address_that_cannot_be_bound_stops_the_server_naming_it() {
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = server_command(&sandbox)
        .env("HOARD_SERVER_METRICS", &addr)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_exit(&mut child, PROCESS_LIMIT);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!exited.success(), "started with {addr} taken");
    assert!(
        stderr.contains(&addr) && stderr.contains("metrics"),
        "the error does not name the metrics address {addr}: {stderr:?}"
    );
    assert!(!sandbox.socket().exists(), "a socket was left behind");
}

#[test]
fn a_gateways_metrics_count_its_tcp_clients_and_the_peers_it_refused() {
    const TOKEN: &str = "e2e-metrics-token-41f3";
    let metrics_addr = loopback_addr();
    let gateway = Gateway::start(
        TOKEN,
        ListenBy::Flag,
        &[("HOARD_SERVER_METRICS", &metrics_addr)],
    );
    let client = |token: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(HOARD);
        clean_env(&mut cmd);
        let out = cmd
            .env("HOARD_DIR", dir.path())
            .env("HOARD_SERVER_ADDR", &gateway.addr)
            .env("HOARD_SERVER_TOKEN", token)
            .args(["--show-stats", "--json"])
            .output()
            .unwrap();
        out.status.success()
    };
    assert!(!client("not-the-token"), "a wrong token was served");
    assert!(client(TOKEN), "the right token was refused");

    let scraped = scrape(&metrics_addr);
    assert!(
        labelled(
            &scraped,
            "hoard_peers_refused_total",
            "reason=\"wrong_token\""
        ) >= 1,
        "{scraped}\n{}",
        gateway.output()
    );
    assert_eq!(
        labelled(
            &scraped,
            "hoard_peers_refused_total",
            "reason=\"foreign_uid\""
        ),
        0,
        "{scraped}"
    );
    assert!(
        labelled(
            &scraped,
            "hoard_connections_accepted_total",
            "listener=\"tcp\""
        ) >= 2,
        "{scraped}"
    );
    let status = status(&metrics_addr);
    assert!(
        status["connections"]["refused"]["wrong_token"].as_u64() >= Some(1),
        "{status}"
    );
    // The token never leaves the server.
    assert!(!scraped.contains(TOKEN) && !status.to_string().contains(TOKEN));
}

#[test]
fn a_failing_remote_tier_shows_as_failing_in_words_with_its_latency_and_no_credentials() {
    let sandbox = Sandbox::new();
    // Nothing listens there: every call is refused at once.
    let endpoint = format!("redis://alice:pw-kept-secret@127.0.0.1:{}", free_port());
    let server = MetricsServer::start(
        &sandbox,
        &[
            ("HOARD_REDIS_ENDPOINT", &endpoint),
            ("HOARD_READ_ONLY_TIERS", "redis"),
        ],
    );
    let dir = sandbox.dir.path().join("src");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..4 {
        std::fs::write(
            dir.join(format!("f{i}.c")),
            format!("int f{i}(void) {{ return {i}; }}\n"),
        )
        .unwrap();
        compile_c(sandbox.hoard(), &dir, &format!("f{i}"));
    }

    let status = status(&server.addr);
    let redis = &status["tiers"][1];
    assert_eq!(redis["name"], "redis", "{status}");
    assert_eq!(redis["kind"], "redis", "{status}");
    let words = redis["state"].as_str().unwrap();
    assert!(
        words.starts_with("failing, ") && words.ends_with(", read-only"),
        "{status}\n{}",
        sandbox.log()
    );
    let scraped = scrape(&server.addr);
    assert_eq!(
        labelled(&scraped, "hoard_tier_healthy", "tier=\"redis\""),
        0,
        "{scraped}"
    );
    assert_eq!(
        labelled(&scraped, "hoard_tier_read_only", "tier=\"redis\""),
        1,
        "{scraped}"
    );
    assert!(
        labelled(&scraped, "hoard_tier_errors_total", "tier=\"redis\"")
            + labelled(&scraped, "hoard_tier_timeouts_total", "tier=\"redis\"")
            >= 3,
        "{scraped}"
    );
    let timed_gets = scraped
        .lines()
        .find(|l| {
            l.starts_with("hoard_tier_operation_duration_seconds_count{")
                && l.contains("tier=\"redis\"")
                && l.contains("op=\"get\"")
        })
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, n)| n.parse::<u64>().unwrap());
    assert!(timed_gets >= Some(3), "{scraped}");
    for page in [scraped, status.to_string()] {
        assert!(
            !page.contains("pw-kept-secret") && !page.contains("alice"),
            "{page}"
        );
    }
}
