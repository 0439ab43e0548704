//! The frame decoder: any byte stream cut into frames by the codec, and each frame decoded as
//! a request and as a response, must never panic, hang or allocate without bound; whatever
//! decodes must survive a re-encode unchanged.

#![no_main]

use bytes::BytesMut;
use hoard_protocol::{Request, Response, codec, decode, encode};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn round_trips<T>(body: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(message) = decode::<T>(body) {
        let again = encode(&message).expect("a decoded message encodes");
        let back = decode::<T>(&again).expect("an encoded message decodes");
        assert_eq!(back, message, "a message changed on its way round");
    }
}

fuzz_target!(|data: &[u8]| {
    // The bodies as they are, without framing.
    round_trips::<Request>(data);
    round_trips::<Response>(data);
    // The bytes as a stream, framed with a small limit so oversize lengths are exercised.
    let mut codec = codec(64 * 1024);
    let mut buffer = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buffer) {
        round_trips::<Request>(&frame);
        round_trips::<Response>(&frame);
    }
});
