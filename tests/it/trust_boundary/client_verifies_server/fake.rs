//! The fake servers of [`super`]: this test binary, run again with [`ROLE`] set (as the
//! attacker's uid, or as the user's), speaking the real protocol with `hoard_protocol`. Each
//! records in its record file what it saw: `ready` once it listens, `accepted` for each
//! connection, `request <type>` for each request it read, and `closed <bytes>` with the bytes
//! a connection carried.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that turns this test binary into a fake server.
pub const ROLE: &str = "HOARD_TEST_FAKE_SERVER";

/// The test that is the fake server, as libtest names it.
pub const TEST_NAME: &str = "trust_boundary::client_verifies_server::fake::fake_server_process";

/// Not a test: the fake servers the tests of [`super`] start, as the attacker or as the user,
/// by running this binary again with [`ROLE`] set. Without it, does nothing.
#[test]
#[ignore = "a fake server process, started by the tests of this module"]
fn fake_server_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let socket = PathBuf::from(std::env::var_os("FAKE_SOCKET").unwrap());
    let record = PathBuf::from(std::env::var_os("FAKE_RECORD").unwrap());
    match role.as_str() {
        "forge" => {
            let entry = std::fs::read(std::env::var_os("FAKE_ENTRY").unwrap()).unwrap();
            let listener = UnixListener::bind(&socket).unwrap();
            note(&record, "ready");
            serve(&listener, &record, move || {
                let entry = entry.clone();
                let mut outputs = Vec::new();
                Box::new(move |request| Some(forge(request, &entry, &mut outputs)))
            });
        }
        "plant" => plant_as_attacker(&socket, &record),
        "linger" => linger(&socket, &record),
        other => panic!("no fake server role {other}"),
    }
}

/// Appends one line to the record.
fn note(record: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(record)
        .unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// How one connection of a fake server answers a request (`None`: not at all, it closes).
type Answer = Box<dyn FnMut(hoard_protocol::Request) -> Option<hoard_protocol::Response> + Send>;

/// Accepts connections forever, answering each request with an answer from `answerer` (one
/// per connection), and records the bytes each connection carried.
fn serve(listener: &UnixListener, record: &Path, answerer: impl Fn() -> Answer) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        note(record, "accepted");
        let (record, mut answer) = (record.to_owned(), answerer());
        std::thread::spawn(move || {
            let mut received = 0u64;
            loop {
                let mut len = [0u8; 4];
                let Ok(()) = stream.read_exact(&mut len) else {
                    break;
                };
                received += 4;
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                let Ok(()) = stream.read_exact(&mut body) else {
                    break;
                };
                received += body.len() as u64;
                let Ok(request) = hoard_protocol::decode::<hoard_protocol::Request>(&body) else {
                    continue;
                };
                note(&record, &format!("request {}", request.type_name()));
                let Some(response) = answer(request) else {
                    break;
                };
                if send(&mut stream, &response).is_err() {
                    break;
                }
            }
            // Anything left unread counts too.
            let mut rest = Vec::new();
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = stream.read_to_end(&mut rest);
            note(&record, &format!("closed {}", received + rest.len() as u64));
        });
    }
}

fn send(stream: &mut UnixStream, response: &hoard_protocol::Response) -> std::io::Result<()> {
    let body = hoard_protocol::encode(response).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame)
}

/// The attacker's answers: it welcomes, says the build directory is not shared (so the
/// entry comes inline), and serves another program's object for the outputs last asked
/// about (`outputs`, this connection's memory).
fn forge(
    request: hoard_protocol::Request,
    entry: &[u8],
    outputs: &mut Vec<hoard_protocol::OutputPath>,
) -> hoard_protocol::Response {
    use hoard_protocol::{Request, Response};
    match request {
        Request::Hello { capabilities, .. } => Response::Welcome {
            version: 2,
            capabilities,
            shared_fs: Some(true),
        },
        Request::CacheGet { outputs: asked, .. } => {
            *outputs = asked;
            match outputs.first() {
                Some(first) => Response::NotShared {
                    directory: first
                        .to_path_buf()
                        .parent()
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes()
                        .to_vec(),
                },
                None => Response::Miss,
            }
        }
        Request::CacheGetInline { .. } if !outputs.is_empty() => Response::Entry {
            size: entry.len() as u64,
            data: entry.to_vec(),
            tier: Some("local".into()),
            signer: None,
        },
        Request::Compile { .. } => Response::Compiled {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_status: 0,
            cache: Some("hit".into()),
        },
        Request::ManifestGet { .. } | Request::CacheGetInline { .. } => Response::Miss,
        Request::CachePut { .. } | Request::CachePutInline { .. } | Request::ManifestPut { .. } => {
            Response::Stored
        }
        Request::GetStats => Response::Stats {
            stats: Box::default(),
        },
        Request::ZeroStats | Request::Shutdown => Response::Done,
        _ => Response::Unsupported { message: None },
    }
}

/// As the attacker: a pid file naming the decoy, a lock file that is a symlink to
/// /dev/null (which the decoy holds open as its stdin) and a flock on /dev/null, so the lock
/// looks held; with `FAKE_LISTEN`, also a socket that closes every connection unanswered.
fn plant_as_attacker(socket: &Path, record: &Path) {
    let decoy = std::env::var("FAKE_DECOY").unwrap();
    let beside = |extension: &str| {
        let mut path = socket.as_os_str().to_owned();
        path.push(format!(".{extension}"));
        PathBuf::from(path)
    };
    std::os::unix::fs::symlink("/dev/null", beside("lock")).unwrap();
    std::fs::write(beside("pid"), format!("{decoy}\n")).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    null.lock().unwrap();
    if std::env::var_os("FAKE_LISTEN").is_some() {
        let listener = UnixListener::bind(socket).unwrap();
        note(record, "ready");
        serve(&listener, record, || Box::new(|_| None));
    } else {
        note(record, "ready");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

/// As the user: a server that holds its lock, writes its pid file, answers `Hello` and
/// `Shutdown`, and after `Shutdown` removes its socket and pid file, releases its lock and
/// lingers instead of exiting.
fn linger(socket: &Path, record: &Path) {
    use hoard_protocol::{Request, Response};
    let beside = |extension: &str| {
        let mut path = socket.as_os_str().to_owned();
        path.push(format!(".{extension}"));
        PathBuf::from(path)
    };
    let lock = std::fs::File::create(beside("lock")).unwrap();
    lock.lock().unwrap();
    let listener = UnixListener::bind(socket).unwrap();
    std::fs::write(beside("pid"), format!("{}\n", std::process::id())).unwrap();
    note(record, "ready");
    let (mut stream, _) = listener.accept().unwrap();
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).is_err() {
            break;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).unwrap();
        let response = match hoard_protocol::decode::<Request>(&body) {
            Ok(Request::Hello { capabilities, .. }) => Response::Welcome {
                version: 2,
                capabilities,
                shared_fs: Some(true),
            },
            Ok(Request::Shutdown) => {
                send(&mut stream, &Response::Done).unwrap();
                let _ = std::fs::remove_file(socket);
                let _ = std::fs::remove_file(beside("pid"));
                drop(lock);
                break;
            }
            _ => Response::Unsupported { message: None },
        };
        send(&mut stream, &response).unwrap();
    }
    drop(listener);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
