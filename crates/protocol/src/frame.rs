//! Frames and bodies: how a message is put on a byte stream.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::LengthDelimitedCodec;

/// Frames larger than this are refused unless configured otherwise (16 MiB).
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;

/// The deepest a message body may nest (arrays, maps, extensions). The deepest message of any
/// version nests four levels (a `CacheGet`'s output directory identity); a body nested deeper
/// than this is hostile. The limit keeps decoding far from the stack's end: an internally
/// tagged message buffers its fields recursively before it knows its type, so a thousand
/// levels were enough to overflow a 2 MiB thread stack and abort the whole process.
pub const MAX_NESTING: usize = 32;

/// A message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The message could not be serialised.
    #[error("cannot encode message: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The frame's body is not a message this version understands.
    #[error("cannot decode message ({len} bytes): {source}")]
    Decode {
        /// Length of the offending body.
        len: usize,
        /// What the decoder said.
        #[source]
        source: rmp_serde::decode::Error,
    },
}

/// The frame codec: a 4-byte big-endian length prefix and at most `max_frame_length` bytes of
/// body. An oversize frame is an error on the reading side; the connection is then closed.
pub fn codec(max_frame_length: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_length)
        .new_codec()
}

/// Encodes a message body (MessagePack with field names, so peers can add fields).
pub fn encode<T: Serialize>(message: &T) -> Result<Bytes, ProtocolError> {
    Ok(rmp_serde::to_vec_named(message)?.into())
}

/// Decodes a message body. A body nested deeper than [`MAX_NESTING`] is refused.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(body);
    deserializer.set_max_depth(MAX_NESTING);
    T::deserialize(&mut deserializer).map_err(|source| ProtocolError::Decode {
        len: body.len(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, Response};

    /// `depth` one-element arrays, each holding the next, around a nil.
    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut body = vec![0x91; depth];
        body.push(0xc0);
        body
    }

    /// `{"type": "GetStats", "x": <depth arrays>}`: a known message whose unknown field the
    /// decoder must buffer before it can drop it.
    fn tagged_with_a_deep_field(type_name: &str, depth: usize) -> Vec<u8> {
        let mut body = vec![0x82, 0xa4];
        body.extend_from_slice(b"type");
        body.push(0xa0 | u8::try_from(type_name.len()).unwrap());
        body.extend_from_slice(type_name.as_bytes());
        body.extend_from_slice(&[0xa1, b'x']);
        body.extend(nested_arrays(depth));
        body
    }

    /// Decodes on a thread with a tokio worker's default 2 MiB stack, where the server
    /// decodes: a stack overflow aborts the test binary, which fails the test.
    fn decode_on_a_worker_stack<T: DeserializeOwned + Send + 'static>(
        body: Vec<u8>,
    ) -> Result<T, String> {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || decode::<T>(&body).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_request_with_a_field_nested_100k_deep_is_refused_not_a_stack_overflow() {
        // Found by the hostile-input suite: 1,000 levels aborted the server.
        for depth in [1_000, 100_000] {
            let refused =
                decode_on_a_worker_stack::<Request>(tagged_with_a_deep_field("GetStats", depth))
                    .unwrap_err();
            assert!(refused.contains("depth limit"), "{refused}");
            let refused =
                decode_on_a_worker_stack::<Response>(tagged_with_a_deep_field("Done", depth))
                    .unwrap_err();
            assert!(refused.contains("depth limit"), "{refused}");
            assert!(decode_on_a_worker_stack::<Request>(nested_arrays(depth)).is_err());
        }
    }

    #[test]
    fn nesting_up_to_the_limit_is_still_read() {
        // Unknown fields nested as deep as allowed are skipped, as a newer peer's would be.
        let within = tagged_with_a_deep_field("GetStats", MAX_NESTING - 2);
        assert_eq!(
            decode_on_a_worker_stack::<Request>(within),
            Ok(Request::GetStats)
        );
        let beyond = tagged_with_a_deep_field("GetStats", MAX_NESTING);
        assert!(decode_on_a_worker_stack::<Request>(beyond).is_err());
    }
}
