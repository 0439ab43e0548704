//! Frames and bodies: how a message is put on a byte stream.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::LengthDelimitedCodec;

/// Frames larger than this are refused unless configured otherwise (16 MiB).
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;

/// A message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
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

/// Decodes a message body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    rmp_serde::from_slice(body).map_err(|source| ProtocolError::Decode {
        len: body.len(),
        source,
    })
}
