//! The client verifies its server (issue 16, item 2): whatever listens on the configured
//! socket path, the client reads its uid from the kernel (`SO_PEERCRED`) before it sends a
//! byte, and a server of another uid is refused. The compile then runs locally (identical
//! output), the refusal is counted (`server_untrusted`) and named in the journal, and the
//! client never "clears the way" for its own server by signalling a pid, or opening a file,
//! that another user planted beside the socket.
//!
//! The attacker is a second uid ([`ATTACKER`]) with write access to the socket's directory:
//! a sticky, world-writable directory like the README's `/var/run/hoard` recipe, or `/tmp`.
//! Its fake server is this test binary run again as that uid (see [`fake`]),
//! speaking the real protocol with `hoard_protocol`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{ATTACKER, as_user, can_switch_uid};
use crate::support::{Sandbox, alive, journal_lines, server_pids_of, tempdir_with_mode, text};

mod fake;

/// A directory anyone may create files in (sticky, mode 1777), where the victim's socket is.
struct SharedDir {
    dir: tempfile::TempDir,
}

impl SharedDir {
    fn new() -> SharedDir {
        SharedDir {
            dir: tempdir_with_mode("hoard-shared", 0o1777),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("hoard.sock")
    }

    fn beside(&self, extension: &str) -> PathBuf {
        self.dir.path().join(format!("hoard.sock.{extension}"))
    }

    fn record(&self) -> PathBuf {
        self.dir.path().join("fake-server.record")
    }
}

/// This test binary, where `uid` may run it: in place, or (when it sits under a directory
/// only root may enter, such as a home directory) a copy in a world-readable temporary
/// directory, made once.
fn exe_for(uid: u32) -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let exe = std::env::current_exe().unwrap();
    let runs = as_user(uid, Path::new("test"))
        .arg("-x")
        .arg(&exe)
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        return exe;
    }
    COPY.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("hoard-fake-server")
            .tempdir()
            .unwrap()
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("fake-server");
        std::fs::copy(&exe, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    })
    .clone()
}

/// A fake server process, killed when dropped.
struct Fake {
    child: Child,
    record: PathBuf,
}

impl Fake {
    /// Starts this binary as a fake server of `role` (as `uid`, or as this process when
    /// `None`) and waits until it is ready.
    fn start(uid: Option<u32>, role: &str, shared: &SharedDir, env: &[(&str, String)]) -> Fake {
        let mut cmd = match uid {
            Some(uid) => as_user(uid, &exe_for(uid)),
            None => Command::new(std::env::current_exe().unwrap()),
        };
        cmd.args([
            "--ignored",
            "--exact",
            fake::TEST_NAME,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(fake::ROLE, role)
        .env("FAKE_SOCKET", shared.socket())
        .env("FAKE_RECORD", shared.record())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        let fake = Fake {
            child: cmd.spawn().unwrap(),
            record: shared.record(),
        };
        let started = Instant::now();
        while !fake.lines().iter().any(|l| l == "ready") {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the fake server ({role}) did not come up"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        fake
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The bytes received on each connection, once at least `connections` were accepted and
    /// every accepted one is closed (or after 10 s).
    fn received(&self, connections: usize) -> Vec<u64> {
        let started = Instant::now();
        loop {
            let lines = self.lines();
            let accepted = lines.iter().filter(|l| *l == "accepted").count();
            let closed: Vec<u64> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("closed ")?.parse().ok())
                .collect();
            let settled = accepted >= connections && closed.len() == accepted;
            if settled || started.elapsed() > Duration::from_secs(10) {
                return closed;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process of the victim's own uid (root here) whose pid the attacker names in a planted
/// pid file: it must never be signalled. Killed when dropped.
struct Decoy(Child);

impl Decoy {
    fn start() -> Decoy {
        // Its stdin is /dev/null, the file the attacker's planted lock file points at.
        Decoy(
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn survived(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `x.c` and what plain gcc makes of it, in `dir`.
fn source_and_reference(dir: &Path) -> Vec<u8> {
    std::fs::write(dir.join("x.c"), "int answer(void) { return 42; }\n").unwrap();
    let plain = Command::new("gcc")
        .current_dir(dir)
        .args(["-c", "x.c", "-o", "plain.o"])
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    std::fs::read(dir.join("plain.o")).unwrap()
}

/// The victim and the attacker's directory, as most tests start.
struct Scene {
    /// The victim's own hoard.
    sandbox: Sandbox,
    /// The victim's work directory, holding `x.c`.
    work: PathBuf,
    /// Plain gcc's object for `x.c`.
    plain: Vec<u8>,
    /// Where the victim's socket is, and the attacker can write.
    shared: SharedDir,
}

/// A new [`Scene`], or `None` (the test is skipped) when this process cannot act as the
/// attacker.
fn scene() -> Option<Scene> {
    if !can_switch_uid() {
        return None;
    }
    let sandbox = Sandbox::new();
    let work = sandbox.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let plain = source_and_reference(&work);
    Some(Scene {
        sandbox,
        work,
        plain,
        shared: SharedDir::new(),
    })
}

/// The attacker's fake server in `shared`, serving a forged entry (see [`forged_entry`]).
fn forger(shared: &SharedDir) -> Fake {
    let entry = forged_entry(shared);
    Fake::start(
        Some(ATTACKER),
        "forge",
        shared,
        &[("FAKE_ENTRY", entry.display().to_string())],
    )
}

/// A well-formed entry whose object is another program's: what the attacker serves.
fn forged_entry(shared: &SharedDir) -> PathBuf {
    let dir = shared.dir.path();
    std::fs::write(dir.join("evil.c"), "int answer(void) { return 666; }\n").unwrap();
    let gcc = Command::new("gcc")
        .current_dir(dir)
        .args(["-c", "evil.c", "-o", "evil.o"])
        .status()
        .unwrap();
    assert!(gcc.success());
    let entry = hoard_storage::entry::pack(
        &[hoard_storage::OutputPath::new("object", dir.join("evil.o"))],
        &hoard_storage::entry::EntryMeta {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_status: 0,
            compile_ms: 1000,
        },
        &hoard_storage::ReadLimits::default(),
    )
    .unwrap();
    let path = dir.join("forged.entry");
    std::fs::write(&path, entry).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// `hoard args...` of the victim, with its socket at `socket`; never waits more than a
/// minute (a hang is a failure, not a stuck test).
fn victim(sandbox: &Sandbox, socket: &Path, cwd: &Path, args: &[&str]) -> Output {
    let mut child = sandbox
        .hoard()
        .env("HOARD_SERVER_UDS", socket)
        .current_dir(cwd)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("hoard {args:?} hung on {}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The victim's `hoard gcc -c x.c -o x.o` with its socket at `socket`, which must succeed
/// with plain gcc's object (`what` says otherwise).
fn victim_builds_plain(
    sandbox: &Sandbox,
    socket: &Path,
    work: &Path,
    plain: &[u8],
    what: &str,
) -> Output {
    let out = victim(sandbox, socket, work, &["gcc", "-c", "x.c", "-o", "x.o"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(work.join("x.o")).unwrap() == plain, "{what}");
    out
}

#[test]
fn a_fake_server_of_another_uid_cannot_plant_an_object_in_the_build() {
    let Some(Scene {
        mut sandbox,
        work,
        plain,
        shared,
    }) = scene()
    else {
        return;
    };
    let journal = sandbox.dir.path().join("journal.jsonl");
    sandbox.set_env("HOARD_JOURNAL", &journal.display().to_string());
    // Preprocessor mode: the lookup names the object, so the forged entry fits it.
    sandbox.set_env("HOARD_DIRECT_MODE", "0");
    let fake = forger(&shared);

    let out = victim_builds_plain(
        &sandbox,
        &shared.socket(),
        &work,
        &plain,
        "the object is not plain gcc's: the attacker's server was believed",
    );
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "as plain gcc"
    );

    // The journal names the refusal.
    let lines = journal_lines(&journal);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0]["result"],
        "fallback",
        "{}\n{}\n{:?}",
        lines[0],
        sandbox.log(),
        fake.lines()
    );
    assert_eq!(lines[0]["reason"], "server_untrusted", "{}", lines[0]);

    // Control commands refuse the attacker's server, naming the socket and the uid found.
    let socket = shared.socket().display().to_string();
    for flag in [
        &["--show-stats"][..],
        &["--show-stats", "--json"],
        &["--zero-stats"],
    ] {
        let out = victim(&sandbox, &shared.socket(), &work, flag);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{flag:?} believed the attacker");
        assert!(
            stderr.contains(&socket) && stderr.contains(&format!("uid {ATTACKER}")),
            "{flag:?}: {stderr}"
        );
    }
    drop(fake);

    // The refusal is kept in HOARD_DIR and counted by the user's own server when it next
    // reports: here, the one on the user's private socket.
    let stats = sandbox.stats();
    assert_eq!(
        stats["local_fallback_causes"]["server_untrusted"], 1,
        "{stats}"
    );
    let table = sandbox.hoard().arg("--show-stats").output().unwrap();
    assert!(
        text(&table.stdout).contains("server_untrusted"),
        "{}",
        text(&table.stdout)
    );
}

#[test]
fn a_fake_server_of_another_uid_receives_not_one_byte() {
    let Some(Scene {
        sandbox,
        work,
        shared,
        ..
    }) = scene()
    else {
        return;
    };
    let fake = forger(&shared);
    let socket = shared.socket();

    // A compile in v2 and one pinned to v1, every control command, and the embedding API.
    let compile = victim(&sandbox, &socket, &work, &["gcc", "-c", "x.c", "-o", "x.o"]);
    assert!(compile.status.success(), "{}", text(&compile.stderr));
    let v1 = sandbox
        .hoard()
        .env("HOARD_SERVER_UDS", &socket)
        .env("HOARD_PROTOCOL", "1")
        .current_dir(&work)
        .args(["gcc", "-c", "x.c", "-o", "x1.o"])
        .output()
        .unwrap();
    assert!(v1.status.success(), "{}", text(&v1.stderr));
    for flag in [
        "--show-stats",
        "--zero-stats",
        "--stop-server",
        "--start-server",
    ] {
        let out = victim(&sandbox, &socket, &work, &[flag]);
        assert!(!out.status.success(), "{flag} believed the attacker");
    }
    let config = hoard_client::ClientConfig::new(sandbox.cache_dir(), socket.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let embedded = runtime.block_on(hoard_client::Hoard::connect(&config));
    let error = embedded.expect_err("the embedding API believed the attacker");
    assert_eq!(error.cause(), "server_untrusted", "{error}");

    // Two compiles, four control commands, one embedded connect.
    let received = fake.received(7);
    assert!(
        received.len() >= 7,
        "every client connected and was refused: {received:?}"
    );
    assert!(
        received.iter().all(|bytes| *bytes == 0),
        "the attacker's server read bytes from the victim: {received:?}"
    );
}

/// Plants, as the attacker, a pid file naming the decoy and a lock file that the decoy
/// "holds" (a symlink to /dev/null, its stdin, flocked by the attacker), with (`listen`) or
/// without a socket that accepts and closes every connection unanswered.
fn plant(shared: &SharedDir, decoy: &Decoy, listen: bool) -> Fake {
    let mut env = vec![("FAKE_DECOY", decoy.0.id().to_string())];
    if listen {
        env.push(("FAKE_LISTEN", "1".into()));
    }
    Fake::start(Some(ATTACKER), "plant", shared, &env)
}

#[test]
fn stop_server_never_signals_a_pid_another_user_planted() {
    if !can_switch_uid() {
        return;
    }
    let sandbox = Sandbox::new();
    let work = sandbox.dir.path().to_owned();
    for listen in [true, false] {
        let shared = SharedDir::new();
        let mut decoy = Decoy::start();
        let fake = plant(&shared, &decoy, listen);
        let out = victim(&sandbox, &shared.socket(), &work, &["--stop-server"]);
        let stderr = text(&out.stderr);
        assert!(
            decoy.survived(),
            "--stop-server killed pid {} that another user's pid file named (socket: \
             {listen}): {}{stderr}",
            decoy.0.id(),
            text(&out.stdout)
        );
        if listen {
            assert!(!out.status.success(), "believed the attacker");
            assert!(
                stderr.contains(&shared.socket().display().to_string())
                    && stderr.contains(&format!("uid {ATTACKER}")),
                "{stderr}"
            );
            let received = fake.received(1);
            assert!(received.iter().all(|b| *b == 0), "{received:?}");
        } else {
            assert!(out.status.success(), "{stderr}");
            assert!(
                text(&out.stdout).contains("no hoard server was running"),
                "{}",
                text(&out.stdout)
            );
        }
    }
}

#[test]
fn a_compile_never_signals_a_pid_or_opens_a_file_another_user_planted() {
    let Some(Scene {
        sandbox,
        work,
        plain,
        shared,
    }) = scene()
    else {
        return;
    };
    let mut decoy = Decoy::start();
    let _fake = plant(&shared, &decoy, false);

    // No socket, but a "running server" (lock held, pid file): today's client would stop it
    // to start its own.
    victim_builds_plain(
        &sandbox,
        &shared.socket(),
        &work,
        &plain,
        "not plain gcc's object",
    );
    assert!(
        decoy.survived(),
        "a compile killed pid {} that another user's pid file named",
        decoy.0.id()
    );

    kill_servers_of(&shared.socket());

    // The wrapper's own spawn lock, planted (before the victim ever made one) as a symlink to
    // a file the victim may create and the attacker may not: it must not be created.
    let shared = SharedDir::new();
    let target = sandbox.dir.path().join("created-through-a-symlink");
    std::os::unix::fs::symlink(&target, shared.beside("spawn")).unwrap();
    std::os::unix::fs::lchown(shared.beside("spawn"), Some(ATTACKER), Some(ATTACKER)).unwrap();
    victim_builds_plain(
        &sandbox,
        &shared.socket(),
        &work,
        &plain,
        "not plain gcc's object",
    );
    kill_servers_of(&shared.socket());
    assert!(
        !target.exists(),
        "the wrapper created {} through another user's symlink",
        target.display()
    );
}

#[test]
fn a_fifo_planted_beside_the_socket_does_not_hang_a_compile() {
    let Some(Scene {
        sandbox,
        work,
        plain,
        shared,
    }) = scene()
    else {
        return;
    };
    for extension in ["lock", "pid"] {
        let fifo = shared.beside(extension);
        let made = as_user(ATTACKER, Path::new("mkfifo"))
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let started = Instant::now();
    victim_builds_plain(
        &sandbox,
        &shared.socket(),
        &work,
        &plain,
        "not plain gcc's object",
    );
    victim(&sandbox, &shared.socket(), &work, &["--stop-server"]);
    kill_servers_of(&shared.socket());
    // Generous: a compile that falls back, and a stop that finds nothing, take well under it.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn stop_server_returns_only_when_the_server_process_is_gone() {
    let sandbox = Sandbox::new();
    // The real server first: stopped means its process is gone when the command returns.
    sandbox.start_server();
    let pid = sandbox.server_pid().expect("the server's pid file");
    sandbox.stop_server();
    assert!(!alive(pid), "--stop-server returned while pid {pid} runs");

    // A server of the user's own uid that acknowledges Shutdown, removes its socket and pid
    // file, and then lingers (as one whose threads are blocked would).
    let shared = SharedDir::new();
    std::fs::set_permissions(shared.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut fake = Fake::start(None, "linger", &shared, &[]);
    let fake_pid = fake.pid();
    let started = Instant::now();
    let out = sandbox
        .hoard()
        .env("HOARD_SERVER_UDS", shared.socket())
        .arg("--stop-server")
        .output()
        .unwrap();
    let took = started.elapsed();
    let exited = fake.child.try_wait().unwrap();
    assert!(
        exited.is_some(),
        "--stop-server returned after {took:?} saying {:?} while the server (pid {fake_pid}) \
         still runs",
        text(&out.stdout)
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Honest: it says the server had to be ended with a signal.
    let said = text(&out.stdout);
    assert!(
        said.contains("SIGTERM") && said.contains(&fake_pid.to_string()),
        "{said}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// Kills every `hoard-server` the victim started on `socket` (one that the attacker's planted
/// files keep from ever serving), by pid.
fn kill_servers_of(socket: &Path) {
    for pid in server_pids_of(socket) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}
