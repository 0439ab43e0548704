//! The bytes of every shipped message are pinned by a fixture file. A change to the wire fails
//! here until a new protocol version is declared. Regenerate only for a new message, with
//! `HOARD_BLESS=1 cargo test -p hoard-protocol --test golden`.

use std::path::PathBuf;

use hoard_protocol::{
    ByteBuf, DirIdentity, OutputPath, Probe, Request, Response, Stats, TransferStats, decode,
    encode,
};

#[allow(clippy::too_many_lines)] // one table of every shipped message
fn fixtures() -> Vec<(&'static str, Vec<u8>, Result<Request, Response>)> {
    let key = "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592".to_owned();
    let outputs = vec![
        OutputPath::new("object", "/build/out/main.o".as_ref()),
        OutputPath::new("dep", "/build/out/main.d".as_ref()),
    ];
    let mut stats = Stats {
        cache_hits: 7,
        cache_misses: 3,
        non_cacheable: 1,
        ..Stats::default()
    };
    stats.hits_by_language.insert("c".into(), 7);
    stats.requests_by_protocol.insert("2".into(), 12);
    let stats_with_transfers = Stats {
        transfers: TransferStats {
            shared_fs: 5,
            inline: 2,
            // Zero is left off the wire: the fixture's bytes are those of before `local`.
            local: 0,
        },
        ..stats.clone()
    };
    let mut stats_with_saved_time = Stats {
        corrupt_entries: 2,
        time_saved_ms: 61_000,
        ..stats.clone()
    };
    stats_with_saved_time.hits_by_protocol.insert("2".into(), 7);
    stats_with_saved_time
        .misses_by_protocol
        .insert("1".into(), 3);
    let stats_with_untrusted = Stats {
        tiers: vec![hoard_protocol::TierStats {
            name: "shared_dir".into(),
            hits: 4,
            misses: 1,
            untrusted: 3,
            state: "closed".into(),
            ..hoard_protocol::TierStats::default()
        }],
        ..stats.clone()
    };
    let identified = vec![
        OutputPath::new("object", "/build/out/main.o".as_ref())
            .with_dir(Some(DirIdentity { dev: 2049, ino: 77 })),
    ];
    let all: Vec<(&str, Result<Request, Response>)> = vec![
        (
            "v1/request_compile",
            Ok(Request::Compile {
                exe: b"gcc".to_vec(),
                cwd: b"/build".to_vec(),
                args: ["-c", "main.c", "-o", "out/main.o"]
                    .iter()
                    .map(|a| ByteBuf::from(a.as_bytes()))
                    .collect(),
                env: vec![(ByteBuf::from(&b"PATH"[..]), ByteBuf::from(&b"/usr/bin"[..]))],
            }),
        ),
        (
            "v1/response_compiled",
            Err(Response::Compiled {
                stdout: vec![],
                stderr: b"main.c:1: warning\n".to_vec(),
                exit_status: 0,
                cache: Some("hit".into()),
            }),
        ),
        (
            "v2/request_hello",
            Ok(Request::Hello {
                min: 1,
                max: 2,
                capabilities: vec!["manifests".into()],
                probe: None,
                token: None,
            }),
        ),
        (
            "v2/request_hello_probe_token",
            Ok(Request::Hello {
                min: 1,
                max: 2,
                capabilities: vec!["manifests".into(), "inline".into()],
                probe: Some(Probe {
                    path: b"/home/u/.cache/hoard/probe".to_vec(),
                    nonce: vec![0xab; 16],
                }),
                token: Some("s3cret".into()),
            }),
        ),
        (
            "v2/request_cache_get_dir_identity",
            Ok(Request::CacheGet {
                key: key.clone(),
                outputs: identified,
                language: Some("c".into()),
            }),
        ),
        (
            "v2/request_cache_get_inline",
            Ok(Request::CacheGetInline {
                key: key.clone(),
                language: Some("c".into()),
            }),
        ),
        (
            "v2/request_cache_put_inline",
            Ok(Request::CachePutInline {
                key: key.clone(),
                language: Some("c".into()),
                size: 6,
                data: vec![1, 2, 3],
            }),
        ),
        (
            "v2/request_chunk",
            Ok(Request::Chunk {
                data: vec![4, 5, 6],
            }),
        ),
        (
            "v2/request_cache_get",
            Ok(Request::CacheGet {
                key: key.clone(),
                outputs: outputs.clone(),
                language: Some("c".into()),
            }),
        ),
        (
            "v2/request_cache_put",
            Ok(Request::CachePut {
                key: key.clone(),
                outputs: outputs.clone(),
                stdout: vec![],
                stderr: b"warning: unused variable\n".to_vec(),
                exit_status: 0,
                language: Some("c".into()),
                compile_ms: 0,
            }),
        ),
        (
            "v2/request_cache_put_timed",
            Ok(Request::CachePut {
                key: key.clone(),
                outputs,
                stdout: vec![],
                stderr: vec![],
                exit_status: 0,
                language: Some("c".into()),
                compile_ms: 412,
            }),
        ),
        (
            "v2/request_manifest_get",
            Ok(Request::ManifestGet { key: key.clone() }),
        ),
        (
            "v2/request_manifest_put",
            Ok(Request::ManifestPut {
                key,
                manifest: vec![1, 2, 3],
            }),
        ),
        ("v2/request_get_stats", Ok(Request::GetStats)),
        ("v2/request_zero_stats", Ok(Request::ZeroStats)),
        ("v2/request_shutdown", Ok(Request::Shutdown)),
        (
            "v2/response_welcome",
            Err(Response::Welcome {
                version: 2,
                capabilities: vec!["manifests".into()],
                shared_fs: None,
            }),
        ),
        (
            "v2/response_welcome_shared_fs",
            Err(Response::Welcome {
                version: 2,
                capabilities: vec!["manifests".into(), "inline".into()],
                shared_fs: Some(false),
            }),
        ),
        (
            "v2/response_entry",
            Err(Response::Entry {
                size: 6,
                data: vec![1, 2, 3],
                tier: None,
                signer: None,
            }),
        ),
        (
            "v2/response_entry_signer",
            Err(Response::Entry {
                size: 3,
                data: vec![1, 2, 3],
                tier: Some("s3".into()),
                signer: Some("ci-2026".into()),
            }),
        ),
        (
            "v2/response_chunk",
            Err(Response::Chunk {
                data: vec![4, 5, 6],
            }),
        ),
        (
            "v2/response_not_shared",
            Err(Response::NotShared {
                directory: b"/mnt/out".to_vec(),
            }),
        ),
        (
            "v2/response_stats_transfers",
            Err(Response::Stats {
                stats: Box::new(stats_with_transfers),
            }),
        ),
        (
            "v2/response_hit",
            Err(Response::Hit {
                stdout: vec![],
                stderr: b"warning\n".to_vec(),
                exit_status: 0,
                tier: None,
                signer: None,
                digests: vec![],
                compile_ms: None,
            }),
        ),
        (
            "v2/response_hit_tier",
            Err(Response::Hit {
                stdout: vec![],
                stderr: vec![],
                exit_status: 0,
                tier: Some("redis".into()),
                signer: None,
                digests: vec![],
                compile_ms: None,
            }),
        ),
        (
            "v2/response_hit_signer",
            Err(Response::Hit {
                stdout: vec![],
                stderr: vec![],
                exit_status: 0,
                tier: Some("redis".into()),
                signer: Some("ci-2026".into()),
                digests: vec![],
                compile_ms: None,
            }),
        ),
        (
            "v2/response_hit_digests",
            Err(Response::Hit {
                stdout: vec![],
                stderr: vec![],
                exit_status: 0,
                tier: Some("local".into()),
                signer: None,
                digests: vec![ByteBuf::from(vec![7; 32]), ByteBuf::from(vec![9; 32])],
                compile_ms: None,
            }),
        ),
        (
            "v2/response_hit_compile_ms",
            Err(Response::Hit {
                stdout: vec![],
                stderr: vec![],
                exit_status: 0,
                tier: Some("local".into()),
                signer: None,
                digests: vec![],
                compile_ms: Some(1234),
            }),
        ),
        (
            "v2/response_stats_untrusted",
            Err(Response::Stats {
                stats: Box::new(stats_with_untrusted),
            }),
        ),
        (
            "v2/response_stats_saved_time",
            Err(Response::Stats {
                stats: Box::new(stats_with_saved_time),
            }),
        ),
        ("v2/response_miss", Err(Response::Miss)),
        ("v2/response_stored", Err(Response::Stored)),
        (
            "v2/response_manifest",
            Err(Response::Manifest {
                manifest: vec![9, 8, 7],
            }),
        ),
        (
            "v2/response_stats",
            Err(Response::Stats {
                stats: Box::new(stats),
            }),
        ),
        ("v2/response_done", Err(Response::Done)),
        (
            "v2/response_error",
            Err(Response::Error {
                message: "output path is relative: out.o".into(),
            }),
        ),
        (
            "v2/response_unsupported",
            Err(Response::Unsupported { message: None }),
        ),
    ];
    all.into_iter()
        .map(|(name, message)| {
            let bytes = match &message {
                Ok(request) => encode(request),
                Err(response) => encode(response),
            }
            .unwrap()
            .to_vec();
            (name, bytes, message)
        })
        .collect()
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.msgpack"))
}

#[test]
fn shipped_messages_encode_to_their_golden_bytes() {
    let bless = std::env::var_os("HOARD_BLESS").is_some();
    for (name, bytes, _) in fixtures() {
        let path = fixture_path(name);
        if bless && !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("missing fixture {}: {e}", path.display()));
        assert_eq!(bytes, golden, "wire bytes of {name} changed");
    }
}

#[test]
fn golden_bytes_decode_to_the_same_messages() {
    for (name, _, message) in fixtures() {
        let golden = std::fs::read(fixture_path(name)).unwrap();
        match message {
            Ok(request) => assert_eq!(decode::<Request>(&golden).unwrap(), request, "{name}"),
            Err(response) => assert_eq!(decode::<Response>(&golden).unwrap(), response, "{name}"),
        }
    }
}
