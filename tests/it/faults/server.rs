//! Faults of the server, each met by a parallel build of a real C tree through `hoard gcc`:
//! killed with -9 mid-request, stopped (hung) with short and with default timeouts, its socket
//! deleted while it runs, a stale socket with nothing behind it, a wedged server that
//! `--stop-server` must still stop, and a server of a protocol generation this client does not
//! speak. Every build must succeed with plain gcc's exact bytes and diagnostics, and every
//! fault must show in the statistics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::faults::{
    FutureHello, FutureServer, Reference, backdate, count, fallbacks, report, setup, timed_build,
    wait_dead, wait_for_backlog,
};
use crate::support::{self, Sandbox, alive, clean, signal, text};

/// Builds the tree through the sandbox once, so that the cache holds it.
fn warm(sandbox: &Sandbox, sources: &[PathBuf], out: &Path, r: &Reference) {
    let cold = timed_build(Some(sandbox), sources, out);
    r.assert_same(&cold, out, "warming build", sandbox);
    clean(out);
}

#[test]
fn a_server_killed_with_sigkill_mid_request_leaves_a_byte_identical_build_and_counted_fallbacks() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    sandbox.start_server();
    let first = sandbox.server_pid().expect("a server pid file");
    // Held still so that a request is certainly in flight when it dies: the build's first
    // wrappers connect and send, and the server is killed with their requests unanswered.
    signal(first, "STOP");
    let build = std::thread::scope(|scope| {
        let build = scope.spawn(|| timed_build(Some(&sandbox), &sources, &out));
        wait_for_backlog(&sandbox.socket(), Duration::from_secs(30));
        signal(first, "KILL");
        build.join().unwrap()
    });
    reference.assert_same(&build, &out, "build across kill -9", &sandbox);
    wait_dead(first);

    let stats = sandbox.stats();
    report("kill -9 mid-request", &reference, build.took, &stats);
    assert!(
        fallbacks(&stats, "server_closed") >= 1,
        "the request cut off counted: {stats}\n{}",
        sandbox.log()
    );
    // The next wrapper found the dead server's socket and started a new server (counted).
    assert!(count(&stats, "cache_errors") >= 1, "{stats}");
    let second = sandbox.server_pid().expect("a new server");
    assert_ne!(second, first);
    assert_eq!(sandbox.server_pids(), vec![second]);
    assert!(build.took < reference.bound(), "took {:?}", build.took);
}

/// The statistics, asked until a server answers: right after a SIGKILL the dead server's
/// listening socket may still take (and then reset) a connection for a moment.
fn stats_once_answered(sandbox: &Sandbox) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let out = sandbox
            .hoard()
            .args(["--show-stats", "--json"])
            .output()
            .unwrap();
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no server answered --show-stats: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes the server's local-hits marker, so wrappers ask it for every hit.
fn without_local_hits(sandbox: &Sandbox) {
    std::fs::remove_file(sandbox.cache_dir().join(hoard_protocol::LOCAL_HITS_FILE)).unwrap();
}

/// Stops the server, builds the warm tree, and checks the build: byte-identical, within the
/// acceptance bound, each compile done locally and counted. Then kills the hung server and
/// shows that the next build is served from the cache again.
fn hung_server(client_timeout: Option<&str>, fault: &str) {
    let (mut sandbox, sources, out, reference) = setup();
    warm(&sandbox, &sources, &out, &reference);
    let hung = sandbox.server_pid().expect("a server pid file");
    // Warm hits in the local store need no server at all: as with a server from before local
    // hits, every compile asks the hung server here.
    without_local_hits(&sandbox);
    if let Some(seconds) = client_timeout {
        sandbox.set_env("HOARD_CLIENT_TIMEOUT", seconds);
        // Started a minute ago, as far as clients can tell (the pid file's age): past the
        // grace a server still opening its cache gets, so the short timeout is what applies.
        // With default timeouts the server is young, and that grace is what applies.
        let mut pid_file = sandbox.socket().into_os_string();
        pid_file.push(".pid");
        backdate(Path::new(&pid_file), Duration::from_secs(60));
    }
    signal(hung, "STOP");
    let build = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_same(&build, &out, "build against a hung server", &sandbox);
    let remembered = sandbox.cache_dir().join(hoard_client::UNRESPONSIVE_FILE);
    assert!(
        remembered.exists(),
        "the unresponsive server was remembered"
    );
    // Killed, not continued: the requests still queued on it must not be served late.
    signal(hung, "KILL");
    wait_dead(hung);

    let stats = stats_once_answered(&sandbox);
    report(fault, &reference, build.took, &stats);
    let n = sources.len() as u64;
    assert_eq!(count(&stats, "local_fallbacks"), n, "{stats}");
    assert!(fallbacks(&stats, "timeout") >= 1, "{stats}");
    assert_eq!(
        fallbacks(&stats, "timeout") + fallbacks(&stats, "server_wedged"),
        n,
        "after the first timeouts, no wrapper waited: {stats}"
    );
    assert!(
        build.took <= reference.bound(),
        "a build against a hung server took {:?}, plain {:?}",
        build.took,
        reference.took
    );

    // The killed server's record no longer applies: a new server serves every hit.
    reference.rebuild_same(
        &sandbox,
        &sources,
        &out,
        "build after the hung server was killed",
    );
    let stats = sandbox.stats();
    assert_eq!(count(&stats, "cache_hits"), n, "{stats}\n{}", sandbox.log());
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
}

#[test]
fn a_hung_server_times_out_and_the_build_compiles_locally_byte_identical() {
    let _machine = support::timed();
    hung_server(Some("1"), "hung server (HOARD_CLIENT_TIMEOUT=1)");
}

#[test]
fn with_default_timeouts_a_build_against_a_hung_server_takes_at_most_twice_plain_plus_10s() {
    let _machine = support::timed();
    hung_server(None, "hung server (default timeouts)");
}

#[test]
fn a_server_whose_socket_file_was_deleted_is_replaced_and_the_build_is_all_hits() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    warm(&sandbox, &sources, &out, &reference);
    let orphan = sandbox.server_pid().expect("a server pid file");
    std::fs::remove_file(sandbox.socket()).unwrap();

    let build = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_same(&build, &out, "build after the socket was deleted", &sandbox);
    wait_dead(orphan);
    let stats = sandbox.stats();
    report("socket file deleted", &reference, build.took, &stats);
    let n = sources.len() as u64;
    // The replacement serves the same cache: no compile was lost to the fault.
    assert_eq!(count(&stats, "cache_hits"), n, "{stats}\n{}", sandbox.log());
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
    assert_eq!(
        count(&stats, "cache_errors"),
        1,
        "the orphan counted once: {stats}"
    );
    let server = sandbox.server_pid().expect("a new server");
    assert_ne!(server, orphan);
    assert_eq!(sandbox.server_pids(), vec![server]);
    assert!(build.took < reference.bound(), "took {:?}", build.took);
}

#[test]
fn a_stale_socket_with_no_server_behind_it_is_replaced_and_counted_once() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    // A socket file whose listener is gone, as a crashed server leaves it.
    drop(std::os::unix::net::UnixListener::bind(sandbox.socket()).unwrap());
    assert!(sandbox.socket().exists());

    let build = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_same(&build, &out, "build over a stale socket", &sandbox);
    let stats = sandbox.stats();
    report("stale socket", &reference, build.took, &stats);
    assert_eq!(
        count(&stats, "cache_misses"),
        sources.len() as u64,
        "{stats}"
    );
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
    assert_eq!(
        count(&stats, "cache_errors"),
        1,
        "{stats}\n{}",
        sandbox.log()
    );
    assert_eq!(sandbox.server_pids().len(), 1);
    assert!(build.took < reference.bound(), "took {:?}", build.took);
}

#[test]
fn stop_server_stops_a_wedged_server_by_its_pid_and_a_new_one_starts_cleanly() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    warm(&sandbox, &sources, &out, &reference);
    let wedged = sandbox.server_pid().expect("a server pid file");
    // Stopped, its socket still accepts connections into the backlog; nothing answers.
    signal(wedged, "STOP");

    let started = Instant::now();
    let stop = sandbox.hoard().arg("--stop-server").output().unwrap();
    let took = started.elapsed();
    eprintln!("FAULT wedged server: --stop-server took {took:?}");
    assert!(
        stop.status.success(),
        "--stop-server failed: {}\n{}",
        text(&stop.stderr),
        sandbox.log()
    );
    assert!(
        took < Duration::from_secs(15),
        "--stop-server took {took:?}"
    );
    wait_dead(wedged);
    assert!(
        !sandbox.socket().exists(),
        "the dead server's socket was removed"
    );

    let build = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_same(
        &build,
        &out,
        "build after stopping a wedged server",
        &sandbox,
    );
    let stats = sandbox.stats();
    report("wedged server stopped", &reference, build.took, &stats);
    assert_eq!(count(&stats, "cache_hits"), sources.len() as u64, "{stats}");
    assert_eq!(count(&stats, "cache_errors"), 0, "a clean start: {stats}");
    let server = sandbox.server_pid().expect("a new server");
    assert!(alive(server) && server != wedged);
    assert_eq!(sandbox.server_pids(), vec![server]);
}

#[test]
fn a_server_of_a_later_protocol_generation_leaves_a_byte_identical_local_build_counted() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    let n = sources.len() as u64;
    let mut took = Vec::new();
    // Two ways a later server can turn this client down: no version in common (the answer
    // today's server gives such a client), and a Welcome naming a version never offered.
    for hello in [FutureHello::Unsupported, FutureHello::Welcome(3)] {
        let future = FutureServer::start(&sandbox.socket(), hello);
        let build = timed_build(Some(&sandbox), &sources, &out);
        reference.assert_same(&build, &out, &format!("{hello:?}"), &sandbox);
        assert!(build.took < reference.bound(), "took {:?}", build.took);
        took.push(build.took);
        clean(&out);
        drop(future);
    }
    // A real server now, which folds in what the wrappers counted.
    let stats = sandbox.stats();
    report(
        "later protocol generation",
        &reference,
        took[0] + took[1],
        &stats,
    );
    assert_eq!(count(&stats, "local_fallbacks"), 2 * n, "{stats}");
    assert_eq!(fallbacks(&stats, "unsupported"), 2 * n, "{stats}");
    assert_eq!(
        sandbox.server_pids().len(),
        1,
        "the stand-in's socket was replaced by a real server"
    );
}

/// The requests a wrapper leaves in a hung server's backlog when it gives up are never acted
/// on later: the server answers `Hello` before it reads the request sent with it, finds the
/// wrapper gone (EPIPE) and drops the connection. Were it otherwise, a resumed server would
/// write a hit onto a path the build has moved on from.
#[test]
fn a_request_its_client_gave_up_on_is_not_acted_on_when_the_server_resumes() {
    let _machine = support::timed();
    let (mut sandbox, sources, out, reference) = setup();
    warm(&sandbox, &sources, &out, &reference);
    let server = sandbox.server_pid().expect("a server pid file");
    sandbox.set_env("HOARD_CLIENT_TIMEOUT", "1");
    without_local_hits(&sandbox);
    signal(server, "STOP");
    let one = &sources[..1];
    let build = timed_build(Some(&sandbox), one, &out);
    assert!(build.outputs[0].status.success());
    // The build goes on and changes its object (as `objcopy` or a rebuild would) while the
    // abandoned CacheGet still waits in the stopped server's backlog.
    let object = out.join(format!(
        "{}.o",
        one[0].file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(&object, b"written by a later build step").unwrap();
    signal(server, "CONT");
    // Once it answers a new client it has accepted the queued connection (the backlog is
    // first in, first out); its task gets a moment to finish.
    sandbox.stats();
    std::thread::sleep(Duration::from_millis(500));
    let stats = sandbox.stats();
    assert_eq!(
        std::fs::read(&object).unwrap(),
        b"written by a later build step",
        "the resumed server wrote onto a path its client had given up on: {stats}\n{}",
        sandbox.log()
    );
    assert_eq!(count(&stats, "cache_hits"), 0, "{stats}");
}

/// A warm build needs no server for hits in the local store: against a hung server every
/// compile is still a hit, byte-identical, no wrapper waits on it, and the resumed server
/// counts every hit.
#[test]
fn a_warm_build_against_a_hung_server_hits_from_the_local_store_without_waiting_on_it() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    warm(&sandbox, &sources, &out, &reference);
    sandbox.zero_stats();
    let server = sandbox.server_pid().expect("a server pid file");
    signal(server, "STOP");
    let build = timed_build(Some(&sandbox), &sources, &out);
    signal(server, "CONT");
    reference.assert_same(&build, &out, "warm build against a hung server", &sandbox);
    assert!(
        !sandbox
            .cache_dir()
            .join(hoard_client::UNRESPONSIVE_FILE)
            .exists(),
        "a wrapper waited on the hung server"
    );
    let stats = stats_once_answered(&sandbox);
    let n = sources.len() as u64;
    assert_eq!(count(&stats, "cache_hits"), n, "{stats}");
    assert_eq!(stats["transfers"]["local"], n, "{stats}");
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
}
