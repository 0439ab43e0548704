//! One client connection: framing, admission, the bytes of inline puts, and sending what
//! each request earns. What a request does is `dispatch`'s.
//!
//! Until a peer is admitted (see `admission`), its frames may be 64 KiB at most, so an
//! unadmitted peer cannot make the server buffer big frames. A TCP peer must show the token
//! within the handshake deadline.

use futures::StreamExt;
use hoard_protocol::{PROTOCOL_V2, ProtocolError, Request, Response, codec, decode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::admission::{self, PRE_ADMISSION_MAX_FRAME};
use crate::flight::ConnectionFlights;
use crate::gateway::Ticket;
use crate::inline::{receive_entry, send_entry};
use crate::peer::{Conn, Peer};
use crate::probe::ProvenDir;
use crate::reply::{Frames, Reply, error, send};
use crate::shared::Shared;
use crate::stats::{Listener, PeerRefusal};

/// What one connection has established so far.
struct ConnState {
    /// A TCP peer showed the token.
    authenticated: bool,
    /// A TCP peer's place under the gateway's caps, and when its handshake time runs out.
    ticket: Option<(Ticket, tokio::time::Instant)>,
    /// The directory this peer's `Hello` probe proved the server sees as the client does.
    proven: Option<ProvenDir>,
}

/// Why a frame is not a request; the stream is out of step, so the connection is closed.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    /// Too large, or an I/O error.
    #[error("unreadable frame: {0}")]
    Frame(#[source] std::io::Error),
    /// Not a message.
    #[error("undecodable request: {0}")]
    Request(#[source] ProtocolError),
}

/// The next frame, or `None` when the connection is over: the peer hung up, or (a TCP peer
/// that has not shown the token) its handshake time ran out or a newer connection pushed it
/// out.
async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Frames<S>,
    state: &ConnState,
    shared: &Shared,
) -> Option<std::io::Result<bytes::BytesMut>> {
    let refused = |why| shared.stats.connections.refused(why);
    match &state.ticket {
        Some((ticket, deadline)) if !state.authenticated => tokio::select! {
            () = ticket.evicted() => {
                tracing::debug!("unauthenticated TCP connection pushed out by a newer one");
                refused(PeerRefusal::PushedOut);
                None
            }
            next = tokio::time::timeout_at(*deadline, framed.next()) => next.unwrap_or_else(|_| {
                tracing::debug!("TCP peer did not show the token in time; disconnected");
                refused(PeerRefusal::HandshakeTimeout);
                None
            }),
        },
        _ => framed.next().await,
    }
}

/// Serves requests on `stream` until the client hangs up or sends something unreadable. A
/// TCP peer comes with its `ticket` from the gateway.
pub(crate) async fn serve_connection<S>(
    stream: S,
    peer: Peer,
    ticket: Option<Ticket>,
    shared: &Shared,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let listener = if peer.is_remote() {
        Listener::Tcp
    } else {
        Listener::Unix
    };
    let _open = shared.stats.connections.opened(listener);
    // Until a peer is admitted its frames are small: a TCP client without the token, or a
    // local process of another uid, must not make the server buffer 16 MiB per connection.
    let max_frame = if peer.is_local_with_uid(shared.own_uid) {
        shared.config.max_frame_length
    } else {
        PRE_ADMISSION_MAX_FRAME.min(shared.config.max_frame_length)
    };
    let mut framed = Framed::new(stream, codec(max_frame));
    let mut state = ConnState {
        authenticated: false,
        ticket: ticket.map(|t| {
            let deadline = tokio::time::Instant::now() + t.handshake_deadline();
            (t, deadline)
        }),
        proven: None,
    };
    // Every flight this connection leads lands when it ends, however it ends, so followers
    // never wait on a connection that is gone.
    let flights = ConnectionFlights::new(&shared.flights);
    let conn = Conn {
        peer,
        holder: flights.holder,
    };
    while let Some(frame) = next_frame(&mut framed, &state, shared).await {
        let reply = match request(frame) {
            // Oversize frames and I/O errors leave the stream out of step: say why, then close.
            Err(e) => Reply::Close(error(e.to_string())),
            Ok(request) => serve_request(request, &mut framed, conn, &mut state, shared).await,
        };
        if !send_reply(&mut framed, reply, shared).await {
            return;
        }
    }
}

/// The request a frame holds.
fn request(frame: std::io::Result<bytes::BytesMut>) -> Result<Request, Unreadable> {
    let body = frame.map_err(Unreadable::Frame)?;
    decode::<Request>(&body).map_err(Unreadable::Request)
}

/// Admits one request (refusing it, or taking a TCP peer's token), receives the rest of an
/// inline put's entry, and has it handled.
async fn serve_request<S: AsyncRead + AsyncWrite + Unpin>(
    request: Request,
    framed: &mut Frames<S>,
    conn: Conn,
    state: &mut ConnState,
    shared: &Shared,
) -> Reply {
    let peer = conn.peer;
    if let Some(refusal) = admission::refusal(&request, peer, state.authenticated, shared.own_uid) {
        if matches!(refusal, Reply::Close(_)) {
            shared.stats.connections.refused(refused_peer(peer));
        }
        return refusal;
    }
    if let Request::Hello { token, .. } = &request
        && peer.is_remote()
    {
        let ours = shared.config.token.as_deref();
        if let Some(refusal) = admission::wrong_token(peer, ours, token.as_deref()) {
            shared.stats.connections.refused(PeerRefusal::WrongToken);
            return refusal;
        }
        state.authenticated = true;
        if let Some((ticket, _)) = &state.ticket {
            ticket.authenticated();
        }
        framed
            .codec_mut()
            .set_max_frame_length(shared.config.max_frame_length);
    }
    // An inline put's entry comes in the frames that follow: all of it is read before the
    // put is handled, and its room in the budget is held until it is stored.
    let (request, reserved) = match request {
        Request::CachePutInline {
            key,
            language,
            size,
            data,
        } if shared.config.max_protocol >= PROTOCOL_V2 => {
            match receive_entry(framed, size, data, shared, peer.is_remote()).await {
                Ok((data, reserved)) => {
                    let whole = Request::CachePutInline {
                        key,
                        language,
                        size,
                        data,
                    };
                    (whole, Some(reserved))
                }
                Err(e) => return Reply::Close(error(e.to_string())),
            }
        }
        request => (request, None),
    };
    let reply = crate::dispatch::handle(request, conn, &mut state.proven, shared).await;
    // The bytes are stored and gone: their share of the budget is free.
    drop(reserved);
    reply
}

/// Why `admission` closes the door on `peer`: a local peer is refused for who it is, a
/// TCP peer (when refused outright) for speaking before its `Hello`.
fn refused_peer(peer: Peer) -> PeerRefusal {
    match peer {
        Peer::Local { uid: Some(_) } => PeerRefusal::ForeignUid,
        Peer::Local { uid: None } => PeerRefusal::UnknownCredentials,
        Peer::Remote { .. } => PeerRefusal::NoHello,
    }
}

/// Sends what a request earned; `false` when the connection is over.
async fn send_reply<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Frames<S>,
    reply: Reply,
    shared: &Shared,
) -> bool {
    match reply {
        Reply::One(response) => send(framed, &response).await.is_ok(),
        Reply::Entry(found) => send_entry(framed, found).await.is_ok(),
        Reply::Close(response) => {
            let _ = send(framed, &response).await;
            false
        }
        Reply::Shutdown => {
            let _ = send(framed, &Response::Done).await;
            shared.shutdown.notify_one();
            false
        }
    }
}
