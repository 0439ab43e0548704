//! The frame codec and the body decoder under arbitrary input: frames split anywhere on the
//! stream arrive whole and in order, no byte stream makes the codec panic, a length over the
//! limit is an error, and no nesting, however deep, overflows a worker's stack.

use bytes::{BufMut, BytesMut};
use hoard_protocol::{MAX_NESTING, Request, codec, decode, encode};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const LIMIT: usize = 64 * 1024;

/// A few kinds of request, enough to tell frames apart.
fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::GetStats),
        Just(Request::ZeroStats),
        "[0-9a-f]{64}".prop_map(|key| Request::ManifestGet { key }),
        vec(any::<u8>(), 0..2048).prop_map(|data| Request::Chunk { data }),
    ]
}

/// Every frame the codec can cut from `stream`, fed in pieces of the given sizes.
fn frames_fed_in_pieces(stream: &[u8], pieces: &[usize]) -> Result<Vec<BytesMut>, String> {
    let mut codec = codec(LIMIT);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        buffer.put_slice(&rest[..size]);
        rest = &rest[size..];
        while let Some(frame) = codec.decode(&mut buffer).map_err(|e| e.to_string())? {
            frames.push(frame);
        }
    }
    Ok(frames)
}

/// A body of `shape.len()` nested containers (`true`: a one-element array, `false`: a
/// one-entry map) around a nil, tagged as a `GetStats` so the decoder buffers it.
fn nested(shape: &[bool]) -> Vec<u8> {
    let mut body = vec![0x82, 0xa4];
    body.extend_from_slice(b"type");
    body.push(0xa8);
    body.extend_from_slice(b"GetStats");
    body.extend_from_slice(&[0xa1, b'x']);
    for &array in shape {
        if array {
            body.push(0x91);
        } else {
            body.extend_from_slice(&[0x81, 0xa1, b'k']);
        }
    }
    body.push(0xc0);
    body
}

/// Decodes on a thread with a tokio worker's default 2 MiB stack: an overflow aborts the
/// test binary instead of passing.
fn decode_on_a_worker_stack(body: Vec<u8>) -> Result<Request, String> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || decode::<Request>(&body).map_err(|e| e.to_string()))
        .unwrap()
        .join()
        .unwrap()
}

proptest! {
    #[test]
    fn frames_split_anywhere_on_the_stream_arrive_whole_and_in_order(
        messages in vec(request(), 1..8),
        pieces in vec(1usize..700, 1..16),
    ) {
        let mut stream = Vec::new();
        for message in &messages {
            let body = encode(message).unwrap();
            stream.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            stream.extend_from_slice(&body);
        }
        let frames = frames_fed_in_pieces(&stream, &pieces).unwrap();
        let decoded: Vec<Request> = frames.iter().map(|f| decode(f).unwrap()).collect();
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn arbitrary_streams_never_panic_the_codec_or_the_decoder(
        stream in vec(any::<u8>(), 0..4096),
        pieces in vec(1usize..512, 1..8),
    ) {
        if let Ok(frames) = frames_fed_in_pieces(&stream, &pieces) {
            for frame in frames {
                let _ = decode::<Request>(&frame);
            }
        }
    }

    #[test]
    fn a_length_over_the_limit_is_an_error_before_any_body_arrives(
        length in (LIMIT as u32 + 1)..=u32::MAX,
    ) {
        let mut buffer = BytesMut::from(&length.to_be_bytes()[..]);
        prop_assert!(codec(LIMIT).decode(&mut buffer).is_err());
    }

    #[test]
    fn any_nesting_is_decoded_or_refused_and_never_overflows_the_stack(
        shape in vec(any::<bool>(), 0..5000),
    ) {
        let depth = shape.len();
        let decoded = decode_on_a_worker_stack(nested(&shape));
        // The tagged map is one level; the field's containers are the rest.
        if depth + 1 < MAX_NESTING {
            prop_assert_eq!(decoded, Ok(Request::GetStats));
        } else {
            prop_assert!(decoded.is_err(), "{} levels were accepted", depth + 1);
        }
    }
}
