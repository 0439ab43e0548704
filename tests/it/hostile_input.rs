//! What a server does with hostile peers: garbage, oversized, truncated and deeply nested
//! frames are refused on that connection only, without the server's memory growing; requests
//! naming paths the peer must not touch (relative, `..`, through a symlink, a directory,
//! another user's, a device or a FIFO) are refused with a clear error, and nothing is written
//! or read there; a peer of another uid and a TCP client without the token get nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hoard_protocol::{OutputPath, Request, Response, encode};

use crate::support::gateway::{Gateway, ListenBy};
use crate::support::wire::{read_response, send_frame};
use crate::support::{HOARD, Sandbox, rss_kib, text, tools, wire};

fn started() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.start_server();
    sandbox
}

/// `request` on a new connection to the server at `socket`, and its answer.
fn request(socket: &Path, request: &Request) -> Response {
    let mut stream = UnixStream::connect(socket).unwrap();
    // A server that blocks on a request fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    send_frame(&mut stream, &encode(request).unwrap());
    read_response(&mut stream).expect("an answer")
}

fn still_serving(socket: &Path) {
    assert!(matches!(
        request(socket, &Request::GetStats),
        Response::Stats { .. }
    ));
}

#[test]
fn a_garbage_frame_gets_an_error_and_the_server_keeps_serving() {
    let sandbox = started();
    let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
    send_frame(&mut stream, b"\xc1\xff this is not msgpack");
    match read_response(&mut stream) {
        Some(Response::Error { message }) => assert!(message.contains("undecodable"), "{message}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    assert!(
        read_response(&mut stream).is_none(),
        "that connection is closed"
    );
    still_serving(&sandbox.socket());
}

#[test]
fn an_oversized_frame_is_refused_without_reading_it_and_the_server_keeps_serving() {
    let sandbox = started();
    let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    match read_response(&mut stream) {
        Some(Response::Error { message }) => assert!(message.contains("frame"), "{message}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    still_serving(&sandbox.socket());
}

#[test]
fn a_truncated_frame_closes_only_its_connection() {
    let sandbox = started();
    let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
    let body = encode(&Request::GetStats).unwrap();
    stream
        .write_all(&u32::try_from(body.len() + 100).unwrap().to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    still_serving(&sandbox.socket());
}

#[test]
fn an_unknown_request_type_is_answered_unsupported_on_a_live_connection() {
    #[derive(serde::Serialize)]
    #[serde(tag = "type")]
    enum Future {
        Teleport { to: String },
    }
    let sandbox = started();
    let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
    send_frame(
        &mut stream,
        &encode(&Future::Teleport { to: "mars".into() }).unwrap(),
    );
    assert!(matches!(
        read_response(&mut stream),
        Some(Response::Unsupported { .. })
    ));
    send_frame(&mut stream, &encode(&Request::GetStats).unwrap());
    assert!(matches!(
        read_response(&mut stream),
        Some(Response::Stats { .. })
    ));
}

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn get(path: &Path) -> Request {
    Request::CacheGet {
        key: KEY.into(),
        outputs: vec![OutputPath::new("object", path)],
        language: None,
    }
}

fn put(path: &Path) -> Request {
    Request::CachePut {
        key: KEY.into(),
        outputs: vec![OutputPath::new("object", path)],
        stdout: vec![],
        stderr: vec![],
        exit_status: 0,
        language: None,
        compile_ms: 0,
    }
}

fn assert_refused(response: &Response, needle: &str) {
    match response {
        Response::Error { message } => assert!(message.contains(needle), "{message}"),
        other => panic!("expected a refusal mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn relative_and_dotdot_paths_are_refused() {
    let sandbox = started();
    for req in [get(Path::new("out.o")), put(Path::new("out.o"))] {
        assert_refused(&request(&sandbox.socket(), &req), "not absolute");
    }
    let dotdot = sandbox.dir.path().join("a/../out.o");
    for req in [get(&dotdot), put(&dotdot)] {
        assert_refused(&request(&sandbox.socket(), &req), "not normalised");
    }
}

#[test]
fn a_path_through_a_symlink_is_refused_and_nothing_is_written_there() {
    let sandbox = started();
    let real = sandbox.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, sandbox.dir.path().join("link")).unwrap();
    let through = sandbox.dir.path().join("link/x.o");
    std::fs::write(real.join("x.o"), b"object").unwrap();
    for req in [get(&through), put(&through)] {
        assert_refused(&request(&sandbox.socket(), &req), "symlink");
    }
    // A symlink as the output file itself, pointing at a file the put would otherwise read.
    let secret = sandbox.dir.path().join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    std::os::unix::fs::symlink(&secret, real.join("leak.o")).unwrap();
    assert_refused(
        &request(&sandbox.socket(), &put(&real.join("leak.o"))),
        "symlink",
    );
    assert_eq!(std::fs::read(&secret).unwrap(), b"secret");
}

#[test]
fn paths_the_peer_does_not_own_are_refused() {
    let sandbox = started();
    // Tests run as root here; hand a directory and a file to another uid.
    let foreign_dir = sandbox.dir.path().join("foreign");
    std::fs::create_dir(&foreign_dir).unwrap();
    std::os::unix::fs::chown(&foreign_dir, Some(65534), Some(65534)).unwrap();
    assert_refused(
        &request(&sandbox.socket(), &get(&foreign_dir.join("x.o"))),
        "owned by uid 65534",
    );
    let foreign_file = sandbox.dir.path().join("theirs.o");
    std::fs::write(&foreign_file, b"not yours").unwrap();
    std::os::unix::fs::chown(&foreign_file, Some(65534), Some(65534)).unwrap();
    for req in [get(&foreign_file), put(&foreign_file)] {
        assert_refused(&request(&sandbox.socket(), &req), "owned by uid 65534");
    }
    assert_eq!(std::fs::read(&foreign_file).unwrap(), b"not yours");
}

#[test]
fn an_output_path_naming_a_directory_is_refused_and_the_directory_is_untouched() {
    let sandbox = started();
    let dir = sandbox.dir.path().join("objects");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("kept"), b"kept").unwrap();
    for req in [get(&dir), put(&dir)] {
        assert_refused(&request(&sandbox.socket(), &req), "not a regular file");
    }
    assert!(dir.is_dir());
    assert_eq!(std::fs::read(dir.join("kept")).unwrap(), b"kept");
}

#[test]
fn put_sources_that_are_fifos_or_devices_are_refused_at_once() {
    let sandbox = started();
    let fifo = sandbox.dir.path().join("pipe.o");
    let device = sandbox.dir.path().join("null.o");
    // Made with the system's tools: the tests run as root, so mknod works.
    for (tool, args) in [
        ("mkfifo", vec![fifo.display().to_string()]),
        (
            "mknod",
            vec![
                device.display().to_string(),
                "c".into(),
                "1".into(),
                "3".into(),
            ],
        ),
    ] {
        let out = Command::new(tool).args(&args).output().unwrap();
        assert!(out.status.success(), "{tool}: {}", text(&out.stderr));
    }
    // /dev/zero would never end if read, and its directory belongs to the (root) peer.
    for path in [fifo.as_path(), device.as_path(), Path::new("/dev/zero")] {
        let started = Instant::now();
        for req in [put(path), get(path)] {
            assert_refused(&request(&sandbox.socket(), &req), "not a regular file");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            path.display(),
            started.elapsed()
        );
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    still_serving(&sandbox.socket());
}

/// `depth` MessagePack one-element arrays, each holding the next, around a nil.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut body = vec![0x91; depth];
    body.push(0xc0);
    body
}

/// `depth` one-entry maps `{"a": ...}`, each holding the next, around a nil.
fn nested_maps(depth: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(depth * 3 + 1);
    for _ in 0..depth {
        body.extend_from_slice(&[0x81, 0xa1, b'a']);
    }
    body.push(0xc0);
    body
}

/// A well-tagged request whose extra field nests `depth` arrays deep: a decoder buffers
/// unknown fields of an internally tagged message before it can drop them.
fn tagged_with_a_deep_field(depth: usize) -> Vec<u8> {
    let mut body = vec![0x82, 0xa4];
    body.extend_from_slice(b"type");
    body.push(0xa8);
    body.extend_from_slice(b"GetStats");
    body.extend_from_slice(&[0xa1, b'x']);
    body.extend(nested_arrays(depth));
    body
}

#[test]
fn deeply_nested_truncated_and_oversize_frames_by_the_hundred_leave_the_server_up_and_its_memory_flat()
 {
    let sandbox = started();
    still_serving(&sandbox.socket());
    let pid = u32::try_from(sandbox.server_pid().expect("a pid file")).unwrap();
    let before = rss_kib(pid);
    let deep = [
        nested_arrays(100_000),
        nested_maps(100_000),
        tagged_with_a_deep_field(100_000),
    ];
    for _ in 0..30 {
        for body in &deep {
            let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
            send_frame(&mut stream, body);
            match read_response(&mut stream) {
                Some(Response::Error { message }) => {
                    assert!(message.contains("undecodable"), "{message}");
                }
                other => panic!("expected a refusal of a 100k-deep frame, got {other:?}"),
            }
            assert!(read_response(&mut stream).is_none(), "connection left open");
        }
        // Truncated: 8 MiB announced, 1 MiB sent, then the peer hangs up.
        let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
        stream.write_all(&(8u32 << 20).to_be_bytes()).unwrap();
        stream.write_all(&vec![0x90; 1 << 20]).unwrap();
        drop(stream);
        // Oversize: refused from the length alone.
        let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
        stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
        assert!(matches!(
            read_response(&mut stream),
            Some(Response::Error { .. })
        ));
    }
    still_serving(&sandbox.socket());
    let after = rss_kib(pid);
    println!(
        "server VmRSS before {before} KiB, after 90 deep, 30 truncated and 30 oversize frames {after} KiB"
    );
    assert!(
        after < before + 32 * 1024,
        "server VmRSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn a_peer_of_another_uid_is_refused_by_the_socket_by_its_own_client_and_by_the_server() {
    const NOBODY: u32 = 65534;
    if !tools::root("to act as another uid") || !tools::installed(&["python3"]) {
        return;
    }
    // The socket in a directory any user can reach (the default one is 0700), and a
    // workspace that belongs to the other user.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        open.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let socket = open.path().join("hoard.sock");
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_SERVER_UDS", &socket.display().to_string());
    sandbox.start_server();
    let work = open.path().join("nobody");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("a.c"), "int a(void) { return 42; }\n").unwrap();
    std::os::unix::fs::chown(&work, Some(NOBODY), Some(NOBODY)).unwrap();
    let plain = Command::new("gcc")
        .current_dir(&work)
        .args(["-c", "a.c", "-o", "plain.o"])
        .output()
        .unwrap();
    assert!(plain.status.success());
    let plain = std::fs::read(work.join("plain.o")).unwrap();
    let as_nobody = || {
        let _ = std::fs::remove_file(work.join("a.o"));
        let out = Command::new(HOARD)
            .uid(NOBODY)
            .gid(NOBODY)
            .current_dir(&work)
            .env("HOME", &work)
            .env("HOARD_DIR", work.join("hoard"))
            .env("HOARD_SERVER_UDS", &socket)
            .env("HOARD_LOG", "debug")
            .args(["gcc", "-c", "a.c", "-o", "a.o"])
            .output()
            .unwrap();
        // The build never fails because of the cache: the compile ran locally.
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
        assert_eq!(std::fs::read(work.join("a.o")).unwrap(), plain);
    };

    // Layer one: the socket file is not writable by others, so connecting fails.
    as_nobody();
    assert!(
        !sandbox.log().contains("refused: peer uid"),
        "another user reached the server through a socket it may not write"
    );
    // Layer two: with the socket opened up, the client itself refuses a server of another
    // uid before sending a byte (docs/Security.md), so the server hears nothing from it.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    as_nobody();
    assert!(
        !sandbox.log().contains("refused: peer uid"),
        "the client spoke to a server of another uid"
    );
    // Layer three: a peer that does speak (a raw connection made by a process of the other
    // uid) is refused by the server's own uid check.
    let hex = wire::framed(&Request::GetStats)
        .iter()
        .fold(String::new(), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        });
    let raw = Command::new("python3")
        .uid(NOBODY)
        .gid(NOBODY)
        .args([
            "-c",
            "import socket, sys\n\
             s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n\
             s.sendall(bytes.fromhex(sys.argv[2])); print(len(s.recv(65536)))",
        ])
        .arg(&socket)
        .arg(&hex)
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    let log = sandbox.log();
    assert!(
        log.contains(&format!(
            "refused: peer uid {NOBODY} is not the server's uid"
        )),
        "{log}"
    );
    let stats = sandbox.stats();
    assert_eq!(stats["cache_writes"], 0, "{stats}");
    assert_eq!(
        stats["cache_hits"].as_u64().unwrap() + stats["cache_misses"].as_u64().unwrap(),
        0,
        "{stats}"
    );
    assert_eq!(
        stats["cache_size_bytes"], 0,
        "the server stored something: {stats}"
    );
}

const TOKEN: &str = "hostile-input-token-51c3";

/// A new TCP connection to `gateway`, which must answer within 30 s.
fn connect(gateway: &Gateway) -> TcpStream {
    let stream = TcpStream::connect(&gateway.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn hello(token: Option<&str>) -> Request {
    Request::Hello {
        min: 1,
        max: 2,
        capabilities: vec!["manifests".into(), "inline".into()],
        probe: None,
        token: token.map(str::to_owned),
    }
}

#[test]
fn a_tcp_client_without_the_token_gets_one_refusal_and_nothing_else() {
    let gateway = Gateway::start(TOKEN, ListenBy::Env, &[]);
    let manifest_put = Request::ManifestPut {
        key: KEY.into(),
        manifest: b"only for token holders".to_vec(),
    };
    // Stored through the Unix socket, where the peer is admitted by its uid.
    assert_eq!(request(&gateway.socket(), &manifest_put), Response::Stored);
    let manifest_get = Request::ManifestGet { key: KEY.into() };
    for first in [
        manifest_get.clone(),
        Request::CacheGetInline {
            key: KEY.into(),
            language: None,
        },
        manifest_put,
        Request::GetStats,
        Request::Shutdown,
        hello(None),
        hello(Some("not-the-token")),
    ] {
        let mut tcp = connect(&gateway);
        send_frame(&mut tcp, &encode(&first).unwrap());
        match read_response(&mut tcp) {
            Some(Response::Error { message }) => assert!(message.contains("refused"), "{message}"),
            other => panic!("{} without the token got {other:?}", first.type_name()),
        }
        // Whatever comes next goes unanswered: the connection is closed.
        let _ = tcp.write_all(&encode(&manifest_get).unwrap());
        assert!(
            read_response(&mut tcp).is_none(),
            "after {}",
            first.type_name()
        );
    }
    // A frame nested 100k deep is refused before admission, and the gateway survives it.
    let mut tcp = connect(&gateway);
    send_frame(&mut tcp, &tagged_with_a_deep_field(100_000));
    assert!(matches!(
        read_response(&mut tcp),
        Some(Response::Error { .. })
    ));
    // The gateway is still up, its manifest untouched, and the token opens it.
    let mut tcp = connect(&gateway);
    send_frame(&mut tcp, &encode(&hello(Some(TOKEN))).unwrap());
    assert!(matches!(
        read_response(&mut tcp),
        Some(Response::Welcome { .. })
    ));
    send_frame(&mut tcp, &encode(&manifest_get).unwrap());
    assert_eq!(
        read_response(&mut tcp),
        Some(Response::Manifest {
            manifest: b"only for token holders".to_vec()
        })
    );
}

#[test]
fn tcp_clients_without_the_token_cannot_make_the_server_buffer_big_frames() {
    let gateway = Gateway::start(TOKEN, ListenBy::Env, &[]);
    let pid = gateway.pid();
    let before = rss_kib(pid);
    // Sixteen clients each announce a frame just under the 16 MiB limit and send 4 MiB of
    // it, holding their connections open.
    let mut held = Vec::new();
    for _ in 0..16 {
        let mut tcp = connect(&gateway);
        tcp.write_all(&((16u32 << 20) - 1).to_be_bytes()).unwrap();
        // Refused at the length: the server hangs up, so this write may fail part way.
        let _ = tcp.write_all(&vec![0x90; 4 << 20]);
        held.push(tcp);
    }
    std::thread::sleep(Duration::from_millis(300));
    let during = rss_kib(pid);
    println!(
        "gateway VmRSS before {before} KiB, with 16 unadmitted 16 MiB frames pending {during} KiB"
    );
    assert!(
        during < before + 16 * 1024,
        "the gateway buffered unadmitted frames: VmRSS {before} KiB -> {during} KiB"
    );
    for mut tcp in held {
        // A refusal naming the frame, or a reset if it came while we were still writing.
        if let Some(response) = read_response(&mut tcp) {
            assert!(matches!(response, Response::Error { .. }), "{response:?}");
        }
    }
    still_serving(&gateway.socket());
}
