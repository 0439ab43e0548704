//! The server's life as the wrapper sees it: started on demand exactly once, killed with -9 in
//! the middle of a parallel build without the build noticing, and stopped cleanly.

use std::process::Command;

use crate::support::{Sandbox, build, clean, lua_sources, snapshot, text};

#[test]
fn sixteen_wrappers_starting_at_once_start_exactly_one_server() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    for i in 0..16 {
        std::fs::write(
            dir.join(format!("f{i}.c")),
            format!("int f{i}(void) {{ return {i}; }}\n"),
        )
        .unwrap();
    }
    let children: Vec<_> = (0..16)
        .map(|i| {
            sandbox
                .hoard()
                .current_dir(dir)
                .args(["gcc", "-c", &format!("f{i}.c"), "-o", &format!("f{i}.o")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(sandbox.server_pids().len(), 1, "{}", sandbox.log());
    let stats = sandbox.stats();
    assert_eq!(stats["cache_misses"], 16, "{stats}");
    assert_eq!(stats["local_fallbacks"], 0, "{stats}\n{}", sandbox.log());
}

#[test]
fn killing_the_server_mid_build_leaves_a_correct_build_and_the_next_compile_starts_a_new_one() {
    let sandbox = Sandbox::new();
    let sources = crate::support::c_files(&lua_sources());
    let out = sandbox.dir.path().join("out");
    let flags = ["-O2", "-g"];
    assert!(
        build(None, "gcc", &sources, &out, &flags, 2)
            .iter()
            .all(|o| o.status.success())
    );
    let expected = snapshot(&out);
    clean(&out);

    sandbox.start_server();
    let first = sandbox.server_pid().expect("a server pid file");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(400));
        Command::new("kill")
            .args(["-9", &first.to_string()])
            .status()
            .unwrap();
    });
    let outputs = build(Some(&sandbox), "gcc", &sources, &out, &flags, 2);
    killer.join().unwrap();
    for o in &outputs {
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    assert_eq!(
        snapshot(&out),
        expected,
        "outputs differ from plain gcc after kill -9"
    );

    // The next compile starts a fresh server.
    clean(&out);
    let again = build(Some(&sandbox), "gcc", &sources[..1], &out, &flags, 1);
    assert!(again[0].status.success());
    let second = sandbox.server_pid().expect("a new server pid file");
    assert_ne!(second, first, "a new server was started");
    assert_eq!(sandbox.server_pids(), vec![second]);
}

#[test]
fn stop_server_stops_it_and_removes_its_socket() {
    let sandbox = Sandbox::new();
    sandbox.start_server();
    assert!(sandbox.socket().exists());
    sandbox.stop_server();
    assert!(!sandbox.socket().exists());
    assert!(sandbox.server_pids().is_empty());
}

#[test]
fn an_idle_server_exits_on_its_own() {
    let sandbox = Sandbox::new();
    let started = sandbox
        .hoard()
        .env("HOARD_IDLE_TIMEOUT", "1")
        .arg("--start-server")
        .status()
        .unwrap();
    assert!(started.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sandbox.server_pids().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        sandbox.server_pids().is_empty(),
        "server still running after its idle timeout"
    );
}
