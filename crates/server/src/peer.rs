//! Who is on the other end of a connection, as every layer from accepting to the request
//! handlers needs to know it.

use std::net::SocketAddr;

use crate::flight::Holder;

/// Who is on the other end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    /// A process on this machine, on the Unix socket, with its uid when the kernel told us.
    Local { uid: Option<u32> },
    /// A client over TCP.
    Remote { addr: SocketAddr },
}

impl Peer {
    /// Whether the peer is a TCP client.
    pub fn is_remote(self) -> bool {
        matches!(self, Peer::Remote { .. })
    }

    /// Whether the peer is a local process of uid `own_uid`, admitted without a token.
    pub fn is_local_with_uid(self, own_uid: u32) -> bool {
        matches!(self, Peer::Local { uid: Some(uid) } if uid == own_uid)
    }

    /// The uid whose files a request may touch: the peer's own when the kernel said, else
    /// (and for a TCP peer, which never gets file operations) the server's.
    pub fn uid_or(self, own_uid: u32) -> u32 {
        match self {
            Peer::Local { uid } => uid.unwrap_or(own_uid),
            Peer::Remote { .. } => own_uid,
        }
    }

    /// The peer as a refusal names it.
    pub fn name(self) -> String {
        match self {
            Peer::Local { uid } => format!("local peer (uid {uid:?})"),
            Peer::Remote { addr } => format!("TCP peer {addr}"),
        }
    }
}

/// Who a request came from: the peer, and the connection's identity in single flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub peer: Peer,
    pub holder: Holder,
}
