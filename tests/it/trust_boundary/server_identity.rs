//! Who the server is, and the state files beside its socket: a server's uid comes from the
//! kernel, not from a file another user could plant; a socket directory another user owns or
//! can write is refused; the lock and pid files are never followed through a symlink; a lock
//! another user holds is an error, not a silent exit 0; SIGTERM and SIGINT clean up; and an
//! output path that comes without a directory identity is not written unless the server has
//! proof it sees the client's directory.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hoard_protocol::{DirIdentity, OutputPath, Probe, Request, Response};

use super::{ATTACKER, VICTIM, as_user, can_switch_uid};
use crate::support::wire::{framed, read_response};
use crate::support::{self, HOARD_SERVER, Sandbox, alive, compile_c, tempdir_with_mode, text};

/// How long a server may take to start or to refuse to (not a speed assertion).
const START_LIMIT: Duration = Duration::from_secs(30);

/// A directory tree two users share: a root-owned 0755 base that both can traverse, with
/// directories handed to one user or the other inside it.
struct Place {
    base: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        Place {
            base: tempdir_with_mode("hoard-identity", 0o755),
        }
    }

    /// `name` under the base, created with `mode` and handed to `owner`.
    fn dir(&self, name: &str, owner: u32, mode: u32) -> PathBuf {
        let dir = self.base.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        chown(&dir, Some(owner), Some(owner)).unwrap();
        set_mode(&dir, mode);
        dir
    }

    /// The victim's private home: its `HOARD_DIR` and config live there.
    fn home(&self, uid: u32) -> PathBuf {
        let name = format!("home-{uid}");
        let home = self.base.path().join(&name);
        if !home.exists() {
            self.dir(&name, uid, 0o700);
        }
        home
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `hoard-server` run as `uid` through `sh -c '<prelude> exec hoard-server'` (for a umask or
/// a ulimit), serving `socket`, with a private home and cache directory.
fn server_as(place: &Place, uid: u32, socket: &Path, prelude: &str) -> Command {
    let home = place.home(uid);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{prelude} exec \"$0\""))
        .arg(HOARD_SERVER);
    for (key, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("HOARD_") || k.starts_with("XDG_"))
    {
        cmd.env_remove(key);
    }
    cmd.uid(uid)
        .gid(uid)
        .current_dir(&home)
        .env("HOME", &home)
        .env("HOARD_DIR", home.join("cache"))
        .env("HOARD_SERVER_UDS", socket)
        .env("HOARD_LOG", "debug")
        .env("HOARD_IDLE_TIMEOUT", "120")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// What became of a server that was started.
enum Started {
    /// It exited (refused, or lost a race) with this status and stderr.
    Exited(ExitStatus, String),
    /// It is serving on its socket; killed on drop.
    Serving(#[allow(dead_code, reason = "held only to be killed on drop")] Running),
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits until it exits or `socket` accepts connections.
fn start(mut cmd: Command, socket: &Path) -> Started {
    let mut child = cmd.spawn().expect("hoard-server starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Started::Exited(status, stderr);
        }
        if UnixStream::connect(socket).is_ok() {
            return Started::Serving(Running(child));
        }
        assert!(
            started.elapsed() < START_LIMIT,
            "the server neither served nor exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server must have refused to start: a non-zero exit whose message contains each of
/// `needles`.
fn assert_refused_to_start(started: Started, needles: &[&str]) {
    match started {
        Started::Exited(status, stderr) => {
            assert!(!status.success(), "exit {status}, stderr: {stderr}");
            for needle in needles {
                assert!(
                    stderr.contains(needle),
                    "the refusal does not say {needle:?}: {stderr}"
                );
            }
        }
        Started::Serving(_) => panic!("the server started; it should have refused"),
    }
}

/// Sends `request` on `socket` as `uid` (a raw client, by python3 under setpriv), and returns
/// the answer, or `None` when the connection failed or closed without one.
fn exchange_as(uid: u32, socket: &Path, request: &Request) -> Option<Response> {
    const CLIENT: &str = r"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
try:
    s.connect(sys.argv[1])
    s.sendall(sys.stdin.buffer.read())
    out = b''
    while len(out) < 4 or len(out) < 4 + struct.unpack('>I', out[:4])[0]:
        d = s.recv(65536)
        if not d:
            break
        out += d
    sys.stdout.buffer.write(out)
except OSError as e:
    sys.stderr.write(str(e))
";
    let mut child = as_user(uid, Path::new("/usr/bin/python3"))
        .args(["-c", CLIENT])
        .arg(socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&framed(request))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    read_response(&mut out.stdout.as_slice())
}

/// A v1 `Compile` that runs `id`: whoever it runs as is who the server believes.
fn compile_id() -> Request {
    Request::Compile {
        exe: b"/bin/sh".to_vec(),
        cwd: b"/".to_vec(),
        args: ["/bin/sh", "-c", "id"]
            .iter()
            .map(|a| a.as_bytes().to_vec().into())
            .collect(),
        env: vec![],
    }
}

/// The attacker's `Compile` must not be run by `started` (when it serves at all).
fn assert_attacker_not_served(started: &Started, socket: &Path) {
    if let Started::Serving(_) = started {
        let answer = exchange_as(ATTACKER, socket, &compile_id());
        if let Some(Response::Compiled { stdout, .. }) = &answer {
            panic!(
                "the victim's server ran the attacker's command: {}",
                text(stdout)
            );
        }
    }
}

#[test]
fn a_lock_file_planted_by_another_user_does_not_make_the_server_adopt_their_uid() {
    if !can_switch_uid() {
        return;
    }
    let place = Place::new();
    // A shared socket directory (the README's /var/run/hoard): the attacker gets there first.
    let shared = place.dir("shared", 0, 0o1777);
    let socket = shared.join("victim.sock");
    let lock = shared.join("victim.sock.lock");
    // 0666, so that the victim's server can open it too.
    let planted = as_user(ATTACKER, Path::new("/bin/sh"))
        .args(["-c", "umask 000; : > \"$0\""])
        .arg(&lock)
        .status()
        .unwrap();
    assert!(planted.success());
    // The victim starts under umask 000: on the old code its socket was then open to all and
    // the attacker, taken for the server's own uid, ran commands as the victim.
    let started = start(server_as(&place, VICTIM, &socket, "umask 000;"), &socket);
    assert_attacker_not_served(&started, &socket);
    assert_refused_to_start(started, &[&shared.display().to_string(), "writable"]);

    // The directory made private again, the planted lock file still there.
    chown(&shared, Some(VICTIM), Some(VICTIM)).unwrap();
    set_mode(&shared, 0o755);
    let started = start(server_as(&place, VICTIM, &socket, "umask 000;"), &socket);
    assert_attacker_not_served(&started, &socket);
    assert_refused_to_start(
        started,
        &[&lock.display().to_string(), &ATTACKER.to_string()],
    );
}

#[test]
fn a_socket_directory_another_user_owns_or_can_write_is_refused_naming_it() {
    if !can_switch_uid() {
        return;
    }
    let place = Place::new();
    for (name, owner, mode, what) in [
        ("theirs", ATTACKER, 0o755, ATTACKER.to_string()),
        ("world", VICTIM, 0o777, "writable".to_owned()),
        ("group", VICTIM, 0o770, "writable".to_owned()),
        ("tmp-like", 0, 0o1777, "writable".to_owned()),
    ] {
        let dir = place.dir(name, owner, mode);
        let socket = dir.join("hoard.sock");
        let started = start(server_as(&place, VICTIM, &socket, ""), &socket);
        assert_refused_to_start(started, &[&dir.display().to_string(), &what]);
        assert!(
            !socket.exists(),
            "{name}: a socket was created in a refused directory"
        );
    }
    // A missing directory is created private, and served.
    let mine = place.dir("mine", VICTIM, 0o755);
    let socket = mine.join("made/by/server/hoard.sock");
    let started = start(server_as(&place, VICTIM, &socket, "umask 000;"), &socket);
    assert!(
        matches!(started, Started::Serving(_)),
        "a missing socket directory is created and served"
    );
    let meta = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(meta.uid(), VICTIM);
    assert_eq!(meta.mode() & 0o777, 0o700, "made 0700 even under umask 000");
}

#[test]
fn a_lock_held_by_another_user_is_an_error_not_a_silent_exit_0() {
    if !can_switch_uid() {
        return;
    }
    let place = Place::new();
    let run = place.dir("run", VICTIM, 0o755);
    let socket = run.join("hoard.sock");
    // A lock file an older hoard left 0644: the attacker can open it to hold its lock.
    let lock = run.join("hoard.sock.lock");
    std::fs::write(&lock, b"").unwrap();
    chown(&lock, Some(VICTIM), Some(VICTIM)).unwrap();
    set_mode(&lock, 0o644);
    let hold = |uid: u32| {
        let mut holder = as_user(uid, Path::new("/usr/bin/flock"))
            .args(["--shared", "--no-fork"])
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .unwrap();
        // Wait until the lock shows in /proc/locks as held by this holder.
        let started = Instant::now();
        while !std::fs::read_to_string("/proc/locks")
            .unwrap()
            .contains(&format!(" {} ", holder.id()))
        {
            assert!(started.elapsed() < START_LIMIT, "flock never took the lock");
            assert!(holder.try_wait().unwrap().is_none(), "flock exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        Running(holder)
    };

    let attacker = hold(ATTACKER);
    let started = start(server_as(&place, VICTIM, &socket, ""), &socket);
    assert_refused_to_start(
        started,
        &[&lock.display().to_string(), &ATTACKER.to_string()],
    );
    drop(attacker);

    // Held by a process of the victim's own uid (another server starting, a wrapper looking):
    // that one serves, and losing the race stays a quiet success.
    let own = hold(VICTIM);
    match start(server_as(&place, VICTIM, &socket, ""), &socket) {
        Started::Exited(status, stderr) => {
            assert!(status.success(), "exit {status}: {stderr}");
            assert!(stderr.is_empty(), "{stderr}");
        }
        Started::Serving(_) => panic!("a second server ran beside the lock holder"),
    }
    drop(own);
}

#[test]
fn symlinked_lock_and_pid_files_are_not_followed() {
    if !can_switch_uid() {
        return;
    }
    for which in ["lock", "pid"] {
        let place = Place::new();
        let run = place.dir("run", VICTIM, 0o700);
        let socket = run.join("hoard.sock");
        // A file of the victim's that following the link would open (and, for the pid file,
        // overwrite).
        let target = place.home(VICTIM).join("precious");
        std::fs::write(&target, b"precious").unwrap();
        chown(&target, Some(VICTIM), Some(VICTIM)).unwrap();
        let link = run.join(format!("hoard.sock.{which}"));
        symlink(&target, &link).unwrap();
        let started = start(server_as(&place, VICTIM, &socket, ""), &socket);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"precious",
            "{which}: the link's target was written"
        );
        assert_refused_to_start(started, &[&link.display().to_string(), "symlink"]);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

#[test]
fn sigterm_and_sigint_stop_the_server_and_remove_its_socket_and_pid_file() {
    for signal in ["TERM", "INT"] {
        let sandbox = Sandbox::new();
        sandbox.start_server();
        // Something to count, so that there are statistics to save.
        let work = sandbox.dir.path();
        std::fs::write(work.join("a.c"), "int a(void) { return 1; }\n").unwrap();
        compile_c(sandbox.hoard(), work, "a");
        let pid = sandbox.server_pid().expect("a pid file");
        let mut pid_file = sandbox.socket().into_os_string();
        pid_file.push(".pid");
        support::signal(pid, signal);
        let started = Instant::now();
        // Gone: exited, or a zombie waiting for its reaper.
        while alive(pid) {
            assert!(
                started.elapsed() < START_LIMIT,
                "SIG{signal}: the server is still running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !sandbox.socket().exists(),
            "SIG{signal}: the socket was left behind"
        );
        assert!(
            !Path::new(&pid_file).exists(),
            "SIG{signal}: the pid file was left behind"
        );
        let saved =
            std::fs::read_to_string(sandbox.cache_dir().join("stats.json")).unwrap_or_default();
        let saved: serde_json::Value = serde_json::from_str(&saved).unwrap_or_default();
        // The put is the server's own count (the miss is in the client events log, which
        // outlives the server by itself).
        assert_eq!(
            saved["cache_writes"], 1,
            "SIG{signal}: the statistics were not saved: {saved}"
        );
    }
}

const KEY: &str = "5e1f00112233445566778899aabbccddeeff00112233445566778899aabbccdd";

fn identity(dir: &Path) -> DirIdentity {
    let meta = std::fs::metadata(dir).unwrap();
    DirIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// `requests` on one connection to the sandbox's server; one answer each.
fn conversation(sandbox: &Sandbox, requests: &[Request]) -> Vec<Response> {
    let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    requests
        .iter()
        .map(|r| {
            stream.write_all(&framed(r)).unwrap();
            read_response(&mut stream).expect("an answer")
        })
        .collect()
}

fn cache_get(output: OutputPath) -> Request {
    Request::CacheGet {
        key: KEY.into(),
        outputs: vec![output],
        language: None,
    }
}

fn hello(probe: Option<Probe>) -> Request {
    Request::Hello {
        min: 1,
        max: 2,
        capabilities: vec!["manifests".into(), "inline".into()],
        probe,
        token: None,
    }
}

#[test]
fn an_output_path_without_a_directory_identity_is_not_written_unless_proven_shared() {
    let sandbox = Sandbox::new();
    sandbox.start_server();
    let work = sandbox.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // An entry under KEY, put with the directory's identity as a current client sends it.
    let source = work.join("made.o");
    std::fs::write(&source, b"an object").unwrap();
    let put = Request::CachePut {
        key: KEY.into(),
        outputs: vec![OutputPath::new("object", &source).with_dir(Some(identity(&work)))],
        stdout: vec![],
        stderr: vec![],
        exit_status: 0,
        language: None,
        compile_ms: 1,
    };
    assert_eq!(conversation(&sandbox, &[put]), vec![Response::Stored]);

    // A container sharing the socket (same uid) names a host path and no identity: with no
    // probe at all, and with a probe the server did see (which proves a shared directory, not
    // this one).
    let victim_dir = sandbox.dir.path().join("host-build");
    std::fs::create_dir(&victim_dir).unwrap();
    let target = victim_dir.join("main.o");
    let probe_file = sandbox.dir.path().join("probe");
    std::fs::write(&probe_file, b"nonce-5e1f").unwrap();
    let probe = Probe {
        path: probe_file.as_os_str().as_encoded_bytes().to_vec(),
        nonce: b"nonce-5e1f".to_vec(),
    };
    let bare = || cache_get(OutputPath::new("object", &target));
    for (what, requests) in [
        ("no Hello", vec![bare()]),
        ("Hello without a probe", vec![hello(None), bare()]),
        (
            "Hello with a seen probe",
            vec![hello(Some(probe.clone())), bare()],
        ),
    ] {
        let answers = conversation(&sandbox, &requests);
        if let [.., Response::Welcome { shared_fs, .. }, _] = answers.as_slice()
            && what.ends_with("seen probe")
        {
            assert_eq!(*shared_fs, Some(true), "the probe was seen");
        }
        match answers.last().unwrap() {
            Response::NotShared { directory } => {
                assert_eq!(
                    directory,
                    victim_dir.as_os_str().as_encoded_bytes(),
                    "{what}"
                );
            }
            other => panic!("{what}: expected NotShared, got {other:?}"),
        }
        assert!(
            !target.exists(),
            "{what}: the server wrote {}",
            target.display()
        );
    }

    // With the directory's identity the same request is served: the refusal above was about
    // proof, not about the path.
    let with_identity =
        cache_get(OutputPath::new("object", &target).with_dir(Some(identity(&victim_dir))));
    let started = Instant::now();
    loop {
        // The put is stored after its answer: wait for it to land.
        match conversation(&sandbox, std::slice::from_ref(&with_identity))
            .pop()
            .unwrap()
        {
            Response::Hit { .. } => break,
            Response::Miss if started.elapsed() < START_LIMIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("with the identity: {other:?}"),
        }
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"an object");
}
