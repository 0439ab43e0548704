//! What a server does with hostile peers: garbage, oversized and truncated frames are refused
//! on that connection only; requests naming paths the peer must not touch are refused with a
//! clear error, and nothing is written or read there.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::Sandbox;
use hoard_protocol::{OutputPath, Request, Response, decode, encode};

fn started() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.start_server();
    sandbox
}

fn send_frame(stream: &mut UnixStream, body: &[u8]) {
    stream
        .write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())
        .unwrap();
    stream.write_all(body).unwrap();
}

/// The next response, or `None` if the server closed the connection.
fn read_response(stream: &mut UnixStream) -> Option<Response> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(decode(&body).unwrap())
}

fn request(sandbox: &Sandbox, request: &Request) -> Response {
    let mut stream = UnixStream::connect(sandbox.socket()).unwrap();
    send_frame(&mut stream, &encode(request).unwrap());
    read_response(&mut stream).expect("an answer")
}

fn still_serving(sandbox: &Sandbox) {
    assert!(matches!(
        request(sandbox, &Request::GetStats),
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
    still_serving(&sandbox);
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
    still_serving(&sandbox);
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
    still_serving(&sandbox);
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
        assert_refused(&request(&sandbox, &req), "not absolute");
    }
    let dotdot = sandbox.dir.path().join("a/../out.o");
    for req in [get(&dotdot), put(&dotdot)] {
        assert_refused(&request(&sandbox, &req), "not normalised");
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
        assert_refused(&request(&sandbox, &req), "symlink");
    }
    // A symlink as the output file itself, pointing at a file the put would otherwise read.
    let secret = sandbox.dir.path().join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    std::os::unix::fs::symlink(&secret, real.join("leak.o")).unwrap();
    assert_refused(&request(&sandbox, &put(&real.join("leak.o"))), "symlink");
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
        &request(&sandbox, &get(&foreign_dir.join("x.o"))),
        "owned by uid 65534",
    );
    let foreign_file = sandbox.dir.path().join("theirs.o");
    std::fs::write(&foreign_file, b"not yours").unwrap();
    std::os::unix::fs::chown(&foreign_file, Some(65534), Some(65534)).unwrap();
    for req in [get(&foreign_file), put(&foreign_file)] {
        assert_refused(&request(&sandbox, &req), "owned by uid 65534");
    }
    assert_eq!(std::fs::read(&foreign_file).unwrap(), b"not yours");
}
