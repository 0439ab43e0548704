//! hoard's wire format spoken by hand, for tests that play a raw peer or a fake server: a
//! frame is a 4-byte big-endian length and a MessagePack body (`hoard_protocol::encode`).

use std::io::{Read, Write};

use hoard_protocol::{Request, Response, decode, encode};

/// `body` as one frame: its length, then itself.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut framed = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(body);
    framed
}

/// `message` encoded, as one frame.
pub fn framed(message: &impl serde::Serialize) -> Vec<u8> {
    frame(&encode(message).unwrap())
}

/// Writes `body` as one frame; the peer must take it.
pub fn send_frame(stream: &mut impl Write, body: &[u8]) {
    stream.write_all(&frame(body)).unwrap();
}

/// Writes `request` as one frame; the peer must take it.
pub fn send(stream: &mut impl Write, request: &Request) {
    stream.write_all(&framed(request)).unwrap();
}

/// The body of the next frame, or `None` when the stream closed (or timed out) first.
pub fn read_frame(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// The next response, or `None` when the connection closed (or timed out) first.
pub fn read_response(stream: &mut impl Read) -> Option<Response> {
    read_frame(stream).map(|body| decode(&body).unwrap())
}

/// Sends `request` and reads its answer.
pub fn exchange(stream: &mut (impl Read + Write), request: &Request) -> Option<Response> {
    send(stream, request);
    read_response(stream)
}
