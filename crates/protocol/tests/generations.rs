//! Decoders of each protocol generation read what the other writes. The v1-era decoder below
//! is the message set a v1-only peer was built with; it must turn everything newer into
//! `Unknown` (answered `Unsupported`), never into an error that drops the connection.

use hoard_protocol::{ByteBuf, Request, Response, decode, encode};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// The requests a v1-only build knows.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum V1Request {
    Compile {
        #[serde(with = "serde_bytes")]
        exe: Vec<u8>,
        #[serde(with = "serde_bytes")]
        cwd: Vec<u8>,
        args: Vec<ByteBuf>,
        env: Vec<(ByteBuf, ByteBuf)>,
    },
    GetStats,
    ZeroStats,
    Shutdown,
    #[serde(other)]
    Unknown,
}

/// The responses a v1-only build knows.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum V1Response {
    Compiled {
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
        #[serde(with = "serde_bytes")]
        stderr: Vec<u8>,
        exit_status: i32,
    },
    Error {
        message: String,
    },
    Unsupported {
        #[serde(default)]
        message: Option<String>,
    },
    #[serde(other)]
    Unknown,
}

/// A `Compile` as a later generation might send it, with a field nobody has yet.
#[derive(Serialize)]
#[serde(tag = "type")]
enum FutureRequest {
    Compile {
        #[serde(with = "serde_bytes")]
        exe: Vec<u8>,
        #[serde(with = "serde_bytes")]
        cwd: Vec<u8>,
        args: Vec<ByteBuf>,
        env: Vec<(ByteBuf, ByteBuf)>,
        priority: u8,
    },
}

#[test]
fn a_v1_decoder_reads_every_v2_only_request_as_unknown() {
    let v2_only = [
        Request::Hello {
            min: 1,
            max: 2,
            capabilities: vec!["manifests".into()],
            probe: None,
            token: None,
        },
        Request::CacheGetInline {
            key: "00".into(),
            language: None,
        },
        Request::CacheGet {
            key: "00".into(),
            outputs: vec![],
            language: None,
        },
        Request::ManifestGet { key: "00".into() },
    ];
    for request in v2_only {
        let body = encode(&request).unwrap();
        assert_eq!(
            decode::<V1Request>(&body).unwrap(),
            V1Request::Unknown,
            "{request:?}"
        );
    }
}

#[test]
fn a_v1_decoder_reads_a_v2_builds_compile_and_its_compiled_answer() {
    let request = Request::Compile {
        exe: b"gcc".to_vec(),
        cwd: b"/src".to_vec(),
        args: vec![ByteBuf::from(&b"-c"[..])],
        env: vec![],
    };
    let V1Request::Compile { exe, args, .. } = decode(&encode(&request).unwrap()).unwrap() else {
        panic!("not a Compile");
    };
    assert_eq!((exe.as_slice(), args.len()), (&b"gcc"[..], 1));
    let answer = Response::Compiled {
        stdout: vec![],
        stderr: b"warning".to_vec(),
        exit_status: 0,
        cache: Some("hit".into()),
    };
    assert_eq!(
        decode::<V1Response>(&encode(&answer).unwrap()).unwrap(),
        V1Response::Compiled {
            stdout: vec![],
            stderr: b"warning".to_vec(),
            exit_status: 0
        }
    );
}

#[test]
fn the_current_decoder_reads_a_v1_builds_messages() {
    let body = encode(&V1Request::Compile {
        exe: b"cc".to_vec(),
        cwd: b"/".to_vec(),
        args: vec![],
        env: vec![],
    })
    .unwrap();
    assert!(matches!(
        decode::<Request>(&body).unwrap(),
        Request::Compile { .. }
    ));
    let body = encode(&V1Response::Compiled {
        stdout: vec![],
        stderr: vec![],
        exit_status: 1,
    })
    .unwrap();
    assert_eq!(
        decode::<Response>(&body).unwrap(),
        Response::Compiled {
            stdout: vec![],
            stderr: vec![],
            exit_status: 1,
            cache: None
        }
    );
}

#[test]
fn both_decoders_read_a_compile_with_a_field_added_later() {
    let body = encode(&FutureRequest::Compile {
        exe: b"gcc".to_vec(),
        cwd: b"/".to_vec(),
        args: vec![],
        env: vec![],
        priority: 9,
    })
    .unwrap();
    assert!(matches!(
        decode::<Request>(&body).unwrap(),
        Request::Compile { .. }
    ));
    assert!(matches!(
        decode::<V1Request>(&body).unwrap(),
        V1Request::Compile { .. }
    ));
}

proptest! {
    #[test]
    fn any_unknown_message_type_is_unknown_to_every_generation(
        name in "[A-Za-z][A-Za-z0-9]{0,30}",
        field in "[a-z]{1,8}",
        value in any::<u64>(),
    ) {
        let known = [
            "Compile", "Compiled", "Hello", "Welcome", "CacheGet", "CachePut", "ManifestGet",
            "ManifestPut", "GetStats", "ZeroStats", "Shutdown", "Hit", "Miss", "Stored",
            "Manifest", "Stats", "Done", "Error", "Unsupported", "Unknown", "CacheGetInline",
            "CachePutInline", "Chunk", "Entry", "NotShared",
        ];
        prop_assume!(!known.contains(&name.as_str()) && field != "type");
        let mut message = std::collections::BTreeMap::new();
        message.insert("type".to_owned(), Field::Text(name.clone()));
        message.insert(field, Field::Number(value));
        let body = rmp_serde::to_vec_named(&message).unwrap();
        prop_assert_eq!(decode::<Request>(&body).unwrap(), Request::Unknown);
        prop_assert_eq!(decode::<Response>(&body).unwrap(), Response::Unknown);
        prop_assert_eq!(decode::<V1Request>(&body).unwrap(), V1Request::Unknown);
        prop_assert_eq!(decode::<V1Response>(&body).unwrap(), V1Response::Unknown);
    }
}

/// A message field of either kind, so one map can hold the tag and an arbitrary field.
#[derive(Serialize)]
#[serde(untagged)]
enum Field {
    Text(String),
    Number(u64),
}
