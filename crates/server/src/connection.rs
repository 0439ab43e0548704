//! One client connection: who the peer is, framing, negotiation and dispatch.
//!
//! A peer on the Unix socket is admitted by its uid. A peer on TCP is admitted by nothing but
//! the token in its `Hello`, which it must show within the handshake deadline: before that,
//! every request is refused and the connection closed, and afterwards only inline transfers,
//! manifests and stats are served (the server never acts on a remote client's paths, never
//! compiles for it, and takes no control request from it: no `ZeroStats`, no `Shutdown`). A
//! local peer of another uid gets one refusal and the connection closed. Until a peer is
//! admitted, its frames may be 64 KiB at most, so an unadmitted peer cannot make the server
//! buffer big frames.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use hoard_protocol::{
    MAX_PROTOCOL, MIN_PROTOCOL, PROTOCOL_V1, PROTOCOL_V2, Probe, Request, Response, capability,
    codec, common_capabilities, decode, encode, negotiate_version,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::flight::{ConnectionFlights, Holder};
use crate::gateway::Ticket;
use crate::inline::{receive_entry, send_entry};
use crate::probe::{self, ProvenDir};
use crate::server::Shared;
use crate::stats::Counted;

/// Who is on the other end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    /// A process on this machine, on the Unix socket, with its uid when the kernel told us.
    Local { uid: Option<u32> },
    /// A client over TCP.
    Remote { addr: SocketAddr },
}

/// What to do after a request.
enum Reply {
    /// Send this and go on.
    One(Response),
    /// Send this entry as `Entry` and `Chunk`s, and go on.
    Entry(hoard_storage::Located),
    /// Send this and close: the stream is out of step or the peer is not admitted.
    Close(Response),
}

/// What one connection has established so far.
struct ConnState {
    /// A TCP peer showed the token.
    authenticated: bool,
    /// A TCP peer's place under the gateway's caps, and when its handshake time runs out.
    ticket: Option<(Ticket, tokio::time::Instant)>,
    /// The directory this peer's `Hello` probe proved the server sees as the client does.
    proven: Option<ProvenDir>,
}

/// The next frame, or `None` when the connection is over: the peer hung up, or (a TCP peer
/// that has not shown the token) its handshake time ran out or a newer connection pushed it
/// out.
async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    state: &ConnState,
) -> Option<std::io::Result<bytes::BytesMut>> {
    match &state.ticket {
        Some((ticket, deadline)) if !state.authenticated => tokio::select! {
            () = ticket.evicted() => {
                tracing::debug!("unauthenticated TCP connection pushed out by a newer one");
                None
            }
            next = tokio::time::timeout_at(*deadline, framed.next()) => next.unwrap_or_else(|_| {
                tracing::debug!("TCP peer did not show the token in time; disconnected");
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
    // Until a peer is admitted its frames are small: a TCP client without the token, or a
    // local process of another uid, must not make the server buffer 16 MiB per connection.
    let max_frame = if admitted_locally(peer, shared) {
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
    while let Some(frame) = next_frame(&mut framed, &state).await {
        let request = match frame {
            // Oversize frames and I/O errors leave the stream out of step: say why, then close.
            Err(e) => Err(format!("unreadable frame: {e}")),
            Ok(body) => decode::<Request>(&body).map_err(|e| format!("undecodable request: {e}")),
        };
        let reply = match request {
            Err(message) => Reply::Close(error(message)),
            Ok(request) => {
                let conn = Conn {
                    peer,
                    holder: flights.holder,
                };
                match dispatch(request, &mut framed, conn, &mut state, shared).await {
                    Some(reply) => reply,
                    None => return,
                }
            }
        };
        let (sent, close) = match reply {
            Reply::One(response) => (send(&mut framed, &response).await, false),
            Reply::Entry(found) => (send_entry(&mut framed, found).await, false),
            Reply::Close(response) => (send(&mut framed, &response).await, true),
        };
        if sent.is_err() || close {
            return;
        }
    }
}

/// The largest frame read from a peer not yet admitted (a TCP client before its `Hello` with
/// the token, a local peer of another uid): a `Hello` is a few hundred bytes.
const PRE_ADMISSION_MAX_FRAME: usize = 64 * 1024;

/// Whether `peer` is a local process of the server's own uid, admitted without a token.
fn admitted_locally(peer: Peer, shared: &Shared) -> bool {
    matches!(peer, Peer::Local { uid: Some(uid) } if uid == shared.own_uid)
}

/// Who a request came from: the peer, and the connection's identity in single flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub peer: Peer,
    pub holder: Holder,
}

/// Serves one admitted request, or refuses it. `None`: the connection is over.
async fn dispatch<S: AsyncRead + AsyncWrite + Unpin>(
    request: Request,
    framed: &mut Framed<S, LengthDelimitedCodec>,
    conn: Conn,
    state: &mut ConnState,
    shared: &Shared,
) -> Option<Reply> {
    let peer = conn.peer;
    if let Some(refusal) = refusal(&request, peer, state.authenticated, shared) {
        return Some(refusal);
    }
    if let Request::Hello { token, .. } = &request
        && matches!(peer, Peer::Remote { .. })
    {
        if !token_matches(shared.config.token.as_deref(), token.as_deref()) {
            let reply = error(format!(
                "refused: a TCP client must show the server's token \
                 (HOARD_SERVER_TOKEN); {} did not",
                peer_name(peer)
            ));
            let _ = send(framed, &reply).await;
            return None;
        }
        state.authenticated = true;
        if let Some((ticket, _)) = &state.ticket {
            ticket.authenticated();
        }
        framed
            .codec_mut()
            .set_max_frame_length(shared.config.max_frame_length);
    }
    Some(match request {
        Request::CachePutInline {
            key,
            language,
            size,
            data,
        } if shared.config.max_protocol >= PROTOCOL_V2 => {
            let remote = matches!(peer, Peer::Remote { .. });
            match receive_entry(framed, size, data, shared, remote).await {
                Ok((bytes, reserved)) => {
                    let stored = crate::v2::cache_put_inline(
                        shared,
                        conn.holder,
                        &key,
                        language.as_deref(),
                        bytes,
                    )
                    .await;
                    // The bytes are stored and gone: their share of the budget is free.
                    drop(reserved);
                    Reply::One(stored)
                }
                Err(message) => Reply::Close(error(message)),
            }
        }
        Request::Shutdown => {
            let _ = send(framed, &Response::Done).await;
            shared.shutdown.notify_one();
            return None;
        }
        request => handle(request, conn, &mut state.proven, shared).await,
    })
}

/// Why `peer` may not make `request` now, if it may not.
fn refusal(request: &Request, peer: Peer, authenticated: bool, shared: &Shared) -> Option<Reply> {
    let refused = match peer {
        Peer::Local { uid: Some(uid) } if uid == shared.own_uid => return None,
        // Nothing it could send would be served: say why once, and hang up.
        Peer::Local { uid: Some(uid) } => Reply::Close(error(format!(
            "refused: peer uid {uid} is not the server's uid {}",
            shared.own_uid
        ))),
        Peer::Local { uid: None } => {
            Reply::Close(error("refused: the peer's credentials are unknown".into()))
        }
        Peer::Remote { .. } if !authenticated && !matches!(request, Request::Hello { .. }) => {
            Reply::Close(error(format!(
                "refused: {} must open with Hello and the server token",
                peer_name(peer)
            )))
        }
        Peer::Remote { .. } => match request {
            Request::Compile { .. } => Reply::One(Response::Unsupported {
                message: Some("v1 Compile is not served over TCP".into()),
            }),
            Request::CacheGet { .. } | Request::CachePut { .. } => Reply::One(error(
                "refused: over TCP the server never touches the client's paths; \
                 use CacheGetInline/CachePutInline"
                    .into(),
            )),
            // Control requests are local: a token lets a machine use the cache, not run it.
            Request::ZeroStats | Request::Shutdown => Reply::One(error(format!(
                "refused: {} is not served over TCP (control requests are local only)",
                request.type_name()
            ))),
            _ => return None,
        },
    };
    Some(refused)
}

fn peer_name(peer: Peer) -> String {
    match peer {
        Peer::Local { uid } => format!("local peer (uid {uid:?})"),
        Peer::Remote { addr } => format!("TCP peer {addr}"),
    }
}

/// Compares the shown token with ours in time that does not depend on where they differ:
/// blake3 digests compare in constant time, and hashing first hides the length too.
fn token_matches(ours: Option<&str>, shown: Option<&str>) -> bool {
    match (ours, shown) {
        (Some(ours), Some(shown)) => {
            blake3::hash(ours.as_bytes()) == blake3::hash(shown.as_bytes())
        }
        _ => false,
    }
}

/// Sends one response; `Err` when the peer is gone.
pub(crate) async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    reply: &Response,
) -> Result<(), ()> {
    let body = encode(reply).map_err(|e| tracing::warn!("cannot encode reply: {e}"))?;
    framed
        .send(body)
        .await
        .map_err(|e| tracing::debug!("client went away: {e}"))
}

fn error(message: String) -> Response {
    tracing::debug!("{message}");
    Response::Error { message }
}

/// Serves `request`. `proven` is what this connection's `Hello` probe proved (set here when
/// the request is the `Hello`).
async fn handle(
    request: Request,
    conn: Conn,
    proven: &mut Option<ProvenDir>,
    shared: &Shared,
) -> Reply {
    let peer = conn.peer;
    let max_protocol = shared.config.max_protocol.clamp(MIN_PROTOCOL, MAX_PROTOCOL);
    if max_protocol < PROTOCOL_V2 && is_v2_only(&request) {
        // Exactly what a server from before v2 does with a message it has never heard of.
        return Reply::One(Response::Unsupported {
            message: Some(format!("unknown request type {}", request.type_name())),
        });
    }
    let peer_uid = match peer {
        Peer::Local { uid } => uid.unwrap_or(shared.own_uid),
        Peer::Remote { .. } => shared.own_uid,
    };
    if matches!(
        request,
        Request::CacheGet { .. } | Request::CachePut { .. } | Request::CacheGetInline { .. }
    ) {
        shared.stats.count(Counted::Request {
            version: PROTOCOL_V2,
        });
    }
    let response = match request {
        Request::Compile {
            exe,
            cwd,
            args,
            env,
        } => {
            shared.stats.count(Counted::Request {
                version: PROTOCOL_V1,
            });
            crate::v1::compile(shared, conn.holder, exe, cwd, args, env).await
        }
        Request::Hello {
            min,
            max,
            capabilities,
            probe,
            token: _,
        } => hello(
            (peer, probe.as_ref(), proven),
            (min, max),
            &capabilities,
            max_protocol,
        ),
        Request::CacheGet {
            key,
            outputs,
            language,
        } => {
            crate::v2::cache_get(
                shared,
                (conn.holder, peer_uid, proven.as_ref()),
                &key,
                &outputs,
                language.as_deref(),
            )
            .await
        }
        Request::CachePut {
            key,
            outputs,
            stdout,
            stderr,
            exit_status,
            language: _,
            compile_ms,
        } => {
            let meta = hoard_storage::EntryMeta {
                stdout,
                stderr,
                exit_status,
                compile_ms,
            };
            let who = (conn.holder, peer_uid, proven.as_ref());
            crate::v2::cache_put(shared, who, &key, &outputs, &meta).await
        }
        Request::CacheGetInline { key, language } => {
            let found =
                crate::v2::cache_get_inline(shared, conn.holder, &key, language.as_deref()).await;
            return match found {
                Ok(bytes) => Reply::Entry(bytes),
                Err(response) => Reply::One(response),
            };
        }
        Request::ManifestGet { key } => crate::v2::manifest_get(shared, conn.holder, &key).await,
        Request::ManifestPut { key, manifest } => {
            crate::v2::manifest_put(shared, conn.holder, &key, manifest).await
        }
        Request::GetStats => stats(shared),
        Request::ZeroStats => zero_stats(shared),
        // Handled by the connection loop, which owns the stream they need.
        Request::Shutdown | Request::CachePutInline { .. } => Response::Done,
        Request::Chunk { .. } => {
            return Reply::Close(error("Chunk outside an inline entry".into()));
        }
        Request::Unknown => Response::Unsupported {
            message: Some("unknown request type".into()),
        },
    };
    Reply::One(response)
}

fn zero_stats(shared: &Shared) -> Response {
    match shared.stats.zero() {
        Ok(()) => {
            shared.tiers.zero_tier_stats();
            Response::Done
        }
        Err(e) => error(format!("cannot zero the client events log: {e}")),
    }
}

/// Negotiation, plus the shared-filesystem probe for local peers (a TCP peer never shares; a
/// local peer that sent no probe is not told). What the probe proved is kept in `proven`.
fn hello(
    (peer, probe, proven): (Peer, Option<&Probe>, &mut Option<ProvenDir>),
    (min, max): (u32, u32),
    capabilities: &[String],
    max_protocol: u32,
) -> Response {
    let Some(version) = negotiate_version((MIN_PROTOCOL, max_protocol), (min, max)) else {
        return Response::Unsupported {
            message: Some(format!(
                "client speaks v{min}..v{max}, server v{MIN_PROTOCOL}..v{max_protocol}"
            )),
        };
    };
    let shared_fs = match (peer, probe) {
        (Peer::Remote { .. }, _) => Some(false),
        (Peer::Local { uid }, Some(probe)) => {
            *proven = probe::seen(probe, uid);
            Some(proven.is_some())
        }
        (Peer::Local { .. }, None) => None,
    };
    Response::Welcome {
        version,
        capabilities: common_capabilities(capability::ALL, capabilities),
        shared_fs,
    }
}

/// Requests a server from before v2 never knew.
fn is_v2_only(request: &Request) -> bool {
    matches!(
        request,
        Request::Hello { .. }
            | Request::CacheGet { .. }
            | Request::CachePut { .. }
            | Request::CacheGetInline { .. }
            | Request::CachePutInline { .. }
            | Request::Chunk { .. }
            | Request::ManifestGet { .. }
            | Request::ManifestPut { .. }
    )
}

/// The counters, the client events and the tiers' figures in one answer.
fn stats(shared: &Shared) -> Response {
    let mut stats = shared.stats.snapshot();
    let local = shared.tiers.local();
    stats.cache_size_bytes = local.size_bytes();
    stats.cache_max_bytes = local.max_size();
    stats.tiers = shared.stats.with_saved_tiers(live_tiers(shared));
    Response::Stats {
        stats: Box::new(stats),
    }
}

/// This server's own tier counters, as they travel.
pub(crate) fn live_tiers(shared: &Shared) -> Vec<hoard_protocol::TierStats> {
    shared
        .tiers
        .tier_stats()
        .into_iter()
        .map(|t| hoard_protocol::TierStats {
            name: t.name,
            hits: t.hits,
            misses: t.misses,
            writes: t.writes,
            errors: t.errors,
            timeouts: t.timeouts,
            skipped: t.skipped,
            state: t.state,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches(Some("s3cret"), Some("s3cret")));
        assert!(!token_matches(Some("s3cret"), Some("s3cre")));
        assert!(!token_matches(Some("s3cret"), Some("s3cret ")));
        assert!(!token_matches(Some("s3cret"), None));
        // A server without a token serves no TCP client, whatever it shows.
        assert!(!token_matches(None, Some("")));
        assert!(!token_matches(None, None));
    }
}
