//! Encoding and decoding of the messages a wrapper and a server exchange on every compile:
//! the `Hello` handshake, a `CacheGet` with two outputs (object and dependency file) and its
//! `Hit`, a `CachePut`, a `ManifestGet` and its `Manifest`, a v1 `Compile` with a realistic
//! environment, and a `Stats` answer. Run with `cargo bench -p hoard-protocol --bench codec`.

use std::path::Path;

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use hoard_protocol::{
    ByteBuf, DirIdentity, OutputPath, Request, Response, Stats, TierStats, TransferStats,
    capability, decode, encode,
};

fn main() {
    divan::main();
}

const REQUESTS: &[&str] = &["Hello", "CacheGet", "CachePut", "ManifestGet", "Compile"];
const RESPONSES: &[&str] = &["Welcome", "Hit", "Miss", "Manifest", "Stats"];

const KEY: &str = "5f0c8e0b6a3d2c1f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3";

fn outputs() -> Vec<OutputPath> {
    let dir = Some(DirIdentity {
        dev: 64_769,
        ino: 9_437_313,
    });
    vec![
        OutputPath::new(
            "object",
            Path::new("/home/dev/src/project/build/src/net/http_client.c.o"),
        )
        .with_dir(dir),
        OutputPath::new(
            "dep",
            Path::new("/home/dev/src/project/build/src/net/http_client.c.o.d"),
        )
        .with_dir(dir),
    ]
}

fn request(name: &str) -> Request {
    match name {
        "Hello" => Request::Hello {
            min: 1,
            max: 2,
            capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
            probe: Some(hoard_protocol::Probe {
                path: b"/home/dev/.cache/hoard/probe".to_vec(),
                nonce: vec![0x5a; 16],
            }),
            token: None,
        },
        "CacheGet" => Request::CacheGet {
            key: KEY.to_owned(),
            outputs: outputs(),
            language: Some("c".to_owned()),
        },
        "CachePut" => Request::CachePut {
            key: KEY.to_owned(),
            outputs: outputs(),
            stdout: Vec::new(),
            stderr: b"src/net/http_client.c:120:9: warning: unused variable 'n' [-Wunused-variable]\n"
                .to_vec(),
            exit_status: 0,
            language: Some("c".to_owned()),
            compile_ms: 412,
        },
        "ManifestGet" => Request::ManifestGet {
            key: KEY.to_owned(),
        },
        "Compile" => Request::Compile {
            exe: b"gcc".to_vec(),
            cwd: b"/home/dev/src/project/build".to_vec(),
            args: "-DNDEBUG -DHAVE_CONFIG_H -I/home/dev/src/project/include -I/home/dev/src/project/build \
                   -O2 -g -Wall -Wextra -fPIC -std=gnu11 -MD -MT src/net/http_client.c.o \
                   -MF src/net/http_client.c.o.d -o src/net/http_client.c.o \
                   -c /home/dev/src/project/src/net/http_client.c"
                .split_whitespace()
                .map(|a| ByteBuf::from(a.as_bytes().to_vec()))
                .collect(),
            env: (0..40)
                .map(|i| {
                    (
                        ByteBuf::from(format!("VARIABLE_NUMBER_{i}").into_bytes()),
                        ByteBuf::from(format!("/usr/local/share/some/value/{i}:/usr/bin").into_bytes()),
                    )
                })
                .collect(),
        },
        _ => unreachable!("unknown request {name}"),
    }
}

fn stats() -> Stats {
    let counts = |names: &[&str]| names.iter().map(|n| ((*n).to_owned(), 1234)).collect();
    Stats {
        cache_hits: 182_734,
        cache_misses: 12_001,
        non_cacheable: 3_210,
        local_fallbacks: 3,
        cache_errors: 1,
        cache_writes: 12_000,
        hits_by_language: counts(&["c", "c++", "rust"]),
        misses_by_language: counts(&["c", "c++", "rust"]),
        non_cacheable_reasons: counts(&[
            "linking",
            "preprocess_only",
            "rustc_probe",
            "incremental",
        ]),
        local_fallback_causes: counts(&["server_unreachable"]),
        requests_by_protocol: counts(&["1", "2"]),
        cache_size_bytes: 7_516_192_768,
        cache_max_bytes: 10_737_418_240,
        tiers: ["local", "redis", "s3"]
            .iter()
            .map(|name| TierStats {
                name: (*name).to_owned(),
                hits: 1000,
                misses: 100,
                writes: 100,
                errors: 0,
                timeouts: 0,
                skipped: 0,
                prefetched: 0,
                untrusted: 0,
                read_only: false,
                state: "closed".to_owned(),
                retry_in_ms: None,
            })
            .collect(),
        transfers: TransferStats {
            shared_fs: 190_000,
            inline: 12,
            local: 0,
        },
        corrupt_entries: 2,
        hits_by_protocol: counts(&["1", "2"]),
        misses_by_protocol: counts(&["1", "2"]),
        time_saved_ms: 38_400_000,
    }
}

fn response(name: &str) -> Response {
    match name {
        "Welcome" => Response::Welcome {
            version: 2,
            capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
            shared_fs: Some(true),
        },
        "Hit" => Response::Hit {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_status: 0,
            tier: Some("local".to_owned()),
            signer: None,
            digests: vec![hoard_protocol::ByteBuf::from(vec![0x5a; 32]); 3],
            compile_ms: Some(2_500),
        },
        "Miss" => Response::Miss,
        // A direct-mode manifest of a source with a few dozen headers.
        "Manifest" => Response::Manifest {
            manifest: vec![0xa5; 4096],
        },
        "Stats" => Response::Stats {
            stats: Box::new(stats()),
        },
        _ => unreachable!("unknown response {name}"),
    }
}

#[divan::bench(args = REQUESTS)]
fn encode_request(bencher: Bencher, name: &str) {
    let message = request(name);
    let len = encode(&message).unwrap().len();
    bencher
        .counter(BytesCount::new(len))
        .bench(|| encode(black_box(&message)).unwrap());
}

#[divan::bench(args = REQUESTS)]
fn decode_request(bencher: Bencher, name: &str) {
    let body = encode(&request(name)).unwrap();
    bencher
        .counter(BytesCount::new(body.len()))
        .bench(|| decode::<Request>(black_box(&body)).unwrap());
}

#[divan::bench(args = RESPONSES)]
fn encode_response(bencher: Bencher, name: &str) {
    let message = response(name);
    let len = encode(&message).unwrap().len();
    bencher
        .counter(BytesCount::new(len))
        .bench(|| encode(black_box(&message)).unwrap());
}

#[divan::bench(args = RESPONSES)]
fn decode_response(bencher: Bencher, name: &str) {
    let body = encode(&response(name)).unwrap();
    bencher
        .counter(BytesCount::new(body.len()))
        .bench(|| decode::<Response>(black_box(&body)).unwrap());
}
