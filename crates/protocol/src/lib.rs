//! hoard's wire protocol, shared by every client and server generation. It defines the
//! messages of each protocol version, the capabilities peers negotiate, how a message
//! becomes a frame (a 4-byte big-endian length and a MessagePack body), and how an entry
//! travelling inline is cut into `Chunk`s and put back together, so client and server
//! follow one rule. It knows nothing of sockets beyond the codec, nothing of storage and
//! nothing of compilers; the client and the server crates drive it over their own
//! connections.
//!
//! # What an embedder uses
//!
//! A build tool embeds hoard through `hoard-client`'s `Hoard` and never speaks this protocol
//! itself. It meets only [`ProtocolError`] (inside a client error), the version numbers
//! ([`PROTOCOL_V1`], [`PROTOCOL_V2`], [`MIN_PROTOCOL`], [`MAX_PROTOCOL`]: a client
//! configuration's `max_protocol`) and [`DEFAULT_MAX_FRAME_LENGTH`] (its `max_frame_length`).
//! The messages, the codec and the inline transfer are public only for hoard's own client
//! and server, are left out of this documentation, and may change in any release; what
//! stays fixed is their bytes on the wire.
//!
//! Compatibility rules, which every change here must keep:
//! * Requests and responses are internally tagged (`"type"`) and end in an `Unknown`
//!   catch-all, so a peer decodes a message type it does not know and answers
//!   `Unsupported` instead of dropping the connection.
//! * Fields added later are `Option` (or defaulted) so older encoders stay readable.
//! * Wire names never change once shipped; the golden fixtures under `tests/fixtures` fail a
//!   test when the bytes of a shipped message change.

mod client_events;
mod frame;
mod inline;
mod message;
mod stats;

pub use frame::{DEFAULT_MAX_FRAME_LENGTH, ProtocolError};

// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use client_events::{
    CLIENT_EVENTS_FILE, ClientEvent, LOCAL_HITS_FILE, local_hits_marker, mount_namespace,
};
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use frame::{MAX_NESTING, codec, decode, encode};
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use inline::{InlineAssembly, InlineError, InlinePieces};
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use message::{ByteBuf, DirIdentity, OutputPath, Probe, Request, Response};
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub use stats::{Stats, TierStats, TransferStats};

/// Protocol v1: the server runs the whole compile pipeline (`Compile` requests).
pub const PROTOCOL_V1: u32 = 1;
/// Protocol v2: the client compiles and hashes; the server only stores (`CacheGet`/`CachePut`).
pub const PROTOCOL_V2: u32 = 2;
/// The oldest version this build speaks.
pub const MIN_PROTOCOL: u32 = PROTOCOL_V1;
/// The newest version this build speaks.
pub const MAX_PROTOCOL: u32 = PROTOCOL_V2;

/// Named capabilities, negotiated in `Hello`/`Welcome`: a feature is used only when both
/// sides list it.
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub mod capability {
    /// Direct-mode manifests travel as `ManifestGet`/`ManifestPut`.
    pub const MANIFESTS: &str = "manifests";
    /// Entries travel as bytes over the connection (`CacheFetch`, `CacheStore`, `Chunk`), for
    /// clients whose paths the server cannot see.
    pub const INLINE: &str = "inline";
    /// Every capability this build has.
    pub const ALL: &[&str] = &[MANIFESTS, INLINE];
}

/// Inline entries travel in `Chunk` frames of at most this many bytes, well under the
/// default frame limit so a peer with a smaller limit still reads them (see
/// `InlinePieces`).
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub const INLINE_CHUNK_SIZE: usize = 4 * 1024 * 1024;

/// The highest version inside both `[min, max]` ranges, if the ranges meet.
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub fn negotiate_version(ours: (u32, u32), theirs: (u32, u32)) -> Option<u32> {
    let low = ours.0.max(theirs.0);
    let high = ours.1.min(theirs.1);
    (low <= high).then_some(high)
}

/// The capabilities both sides list, in our order.
// Used by hoard's own binaries/crates; not part of the supported API.
#[doc(hidden)]
pub fn common_capabilities(ours: &[&str], theirs: &[String]) -> Vec<String> {
    ours.iter()
        .filter(|c| theirs.iter().any(|t| t == *c))
        .map(|c| (*c).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate_version((1, 2), (1, 3)), Some(2));
        assert_eq!(negotiate_version((2, 2), (1, 2)), Some(2));
        assert_eq!(negotiate_version((2, 2), (1, 1)), None);
    }

    #[test]
    fn only_shared_capabilities_survive() {
        let theirs = vec!["manifests".to_owned(), "future".to_owned()];
        assert_eq!(
            common_capabilities(capability::ALL, &theirs),
            vec!["manifests"]
        );
        assert!(common_capabilities(capability::ALL, &[]).is_empty());
    }
}
