//! Every message survives encode → decode unchanged, and no byte string makes the decoder
//! panic.

use hoard_protocol::{
    ByteBuf, DirIdentity, OutputPath, Probe, Request, Response, Stats, TierStats, TransferStats,
    decode, encode,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

fn output_path() -> impl Strategy<Value = OutputPath> {
    (
        "[a-z]{1,8}",
        vec(any::<u8>(), 0..64),
        proptest::option::of(any::<(u64, u64)>()),
    )
        .prop_map(|(role, path, dir)| OutputPath {
            role,
            path,
            dir: dir.map(|(dev, ino)| DirIdentity { dev, ino }),
        })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..256)
}

fn byte_bufs(max: usize) -> impl Strategy<Value = Vec<ByteBuf>> {
    vec(bytes().prop_map(ByteBuf::from), 0..max)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            bytes(),
            bytes(),
            byte_bufs(6),
            vec((bytes(), bytes()), 0..4)
        )
            .prop_map(|(exe, cwd, args, env)| Request::Compile {
                exe,
                cwd,
                args,
                env: env
                    .into_iter()
                    .map(|(k, v)| (ByteBuf::from(k), ByteBuf::from(v)))
                    .collect(),
            }),
        (
            any::<u32>(),
            any::<u32>(),
            vec(".{0,12}", 0..4),
            proptest::option::of((bytes(), bytes())),
            proptest::option::of(".{0,40}"),
        )
            .prop_map(|(min, max, capabilities, probe, token)| Request::Hello {
                min,
                max,
                capabilities,
                probe: probe.map(|(path, nonce)| Probe { path, nonce }),
                token,
            }),
        ("[0-9a-f]{64}", proptest::option::of("[a-z+]{1,8}"))
            .prop_map(|(key, language)| Request::CacheGetInline { key, language }),
        (
            "[0-9a-f]{64}",
            proptest::option::of("[a-z+]{1,8}"),
            any::<u64>(),
            bytes()
        )
            .prop_map(|(key, language, size, data)| Request::CachePutInline {
                key,
                language,
                size,
                data
            }),
        bytes().prop_map(|data| Request::Chunk { data }),
        (
            "[0-9a-f]{64}",
            vec(output_path(), 0..4),
            proptest::option::of("[a-z+]{1,8}")
        )
            .prop_map(|(key, outputs, language)| Request::CacheGet {
                key,
                outputs,
                language
            }),
        (
            "[0-9a-f]{64}",
            vec(output_path(), 0..4),
            bytes(),
            bytes(),
            any::<i32>(),
            proptest::option::of("[a-z+]{1,8}"),
            any::<u64>(),
        )
            .prop_map(
                |(key, outputs, stdout, stderr, exit_status, language, compile_ms)| {
                    Request::CachePut {
                        key,
                        outputs,
                        stdout,
                        stderr,
                        exit_status,
                        language,
                        compile_ms,
                    }
                }
            ),
        "[0-9a-f]{64}".prop_map(|key| Request::ManifestGet { key }),
        ("[0-9a-f]{64}", bytes())
            .prop_map(|(key, manifest)| Request::ManifestPut { key, manifest }),
        Just(Request::GetStats),
        Just(Request::ZeroStats),
        Just(Request::Shutdown),
    ]
}

/// A per-protocol map as servers fill it: versions 1 and 2, either possibly absent.
fn reasons_by_protocol(seed: u64) -> std::collections::BTreeMap<String, u64> {
    [("1", seed % 5), ("2", seed / 5)]
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(v, n)| (v.to_owned(), n))
        .collect()
}

fn stats() -> impl Strategy<Value = Stats> {
    (
        any::<[u64; 7]>(),
        btree_map("[a-z+]{1,8}", any::<u64>(), 0..3),
        btree_map("[a-z_]{1,12}", any::<u64>(), 0..3),
        vec(("[a-z_]{1,10}", any::<[u64; 7]>(), "[a-z_]{1,10}"), 0..3),
    )
        .prop_map(|(n, by_language, reasons, tiers)| Stats {
            tiers: tiers
                .into_iter()
                .map(|(name, c, state)| TierStats {
                    name,
                    hits: c[0],
                    misses: c[1],
                    writes: c[2],
                    errors: c[3],
                    timeouts: c[4],
                    skipped: c[5],
                    prefetched: c[6],
                    untrusted: c[5] ^ c[6],
                    read_only: c[6] % 2 == 1,
                    retry_in_ms: (state == "open").then_some(c[0] % 60_000),
                    state,
                })
                .collect(),
            cache_hits: n[0],
            cache_misses: n[1],
            non_cacheable: n[2],
            local_fallbacks: n[3],
            cache_errors: n[4],
            hits_by_language: by_language.clone(),
            misses_by_language: by_language,
            non_cacheable_reasons: reasons.clone(),
            requests_by_protocol: reasons,
            transfers: TransferStats {
                shared_fs: n[5],
                inline: n[6],
                local: n[6] / 5,
            },
            corrupt_entries: n[0] / 3,
            hits_by_protocol: reasons_by_protocol(n[1]),
            misses_by_protocol: reasons_by_protocol(n[2]),
            time_saved_ms: n[3] / 7,
            ..Stats::default()
        })
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (
            bytes(),
            bytes(),
            any::<i32>(),
            proptest::option::of("[a-z_]{1,12}")
        )
            .prop_map(|(stdout, stderr, exit_status, cache)| Response::Compiled {
                stdout,
                stderr,
                exit_status,
                cache,
            }),
        (
            any::<u32>(),
            vec(".{0,12}", 0..4),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(version, capabilities, shared_fs)| {
                Response::Welcome {
                    version,
                    capabilities,
                    shared_fs,
                }
            }),
        (
            any::<u64>(),
            bytes(),
            proptest::option::of("[a-z_]{1,10}"),
            proptest::option::of("[a-z@-]{1,10}")
        )
            .prop_map(|(size, data, tier, signer)| Response::Entry {
                size,
                data,
                tier,
                signer
            }),
        bytes().prop_map(|data| Response::Chunk { data }),
        bytes().prop_map(|directory| Response::NotShared { directory }),
        (
            bytes(),
            bytes(),
            any::<i32>(),
            proptest::option::of("[a-z_]{1,10}"),
            proptest::option::of("[a-z@-]{1,10}"),
            vec(any::<[u8; 32]>(), 0..3),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(
                |(stdout, stderr, exit_status, tier, signer, digests, compile_ms)| {
                    Response::Hit {
                        stdout,
                        stderr,
                        exit_status,
                        tier,
                        signer,
                        digests: digests.iter().map(|d| ByteBuf::from(d.to_vec())).collect(),
                        compile_ms,
                    }
                }
            ),
        Just(Response::Miss),
        Just(Response::Stored),
        bytes().prop_map(|manifest| Response::Manifest { manifest }),
        stats().prop_map(|stats| Response::Stats {
            stats: Box::new(stats)
        }),
        Just(Response::Done),
        ".{0,40}".prop_map(|message| Response::Error { message }),
        proptest::option::of(".{0,40}").prop_map(|message| Response::Unsupported { message }),
    ]
}

proptest! {
    #[test]
    fn every_request_round_trips(message in request()) {
        let body = encode(&message).unwrap();
        prop_assert_eq!(decode::<Request>(&body).unwrap(), message);
    }

    #[test]
    fn every_response_round_trips(message in response()) {
        let body = encode(&message).unwrap();
        prop_assert_eq!(decode::<Response>(&body).unwrap(), message);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in vec(any::<u8>(), 0..512)) {
        let _ = decode::<Request>(&body);
        let _ = decode::<Response>(&body);
    }

    #[test]
    fn decoding_a_mangled_message_never_panics(message in request(), at in any::<usize>(), byte in any::<u8>()) {
        let mut body = encode(&message).unwrap().to_vec();
        let i = at % body.len();
        body[i] = byte;
        let _ = decode::<Request>(&body);
        body.truncate(i);
        let _ = decode::<Request>(&body);
    }
}

#[test]
fn an_unknown_request_type_decodes_as_unknown() {
    #[derive(serde::Serialize)]
    #[serde(tag = "type")]
    enum Future {
        Teleport { to: String },
    }
    let body = encode(&Future::Teleport { to: "mars".into() }).unwrap();
    assert_eq!(decode::<Request>(&body).unwrap(), Request::Unknown);
    assert_eq!(decode::<Response>(&body).unwrap(), Response::Unknown);
}

#[test]
fn a_field_added_by_a_newer_peer_is_ignored() {
    #[derive(serde::Serialize)]
    #[serde(tag = "type")]
    enum Newer {
        CacheGet {
            key: String,
            outputs: Vec<OutputPath>,
            priority: u8,
        },
    }
    let body = encode(&Newer::CacheGet {
        key: "ab".into(),
        outputs: vec![],
        priority: 3,
    })
    .unwrap();
    assert_eq!(
        decode::<Request>(&body).unwrap(),
        Request::CacheGet {
            key: "ab".into(),
            outputs: vec![],
            language: None
        }
    );
}
