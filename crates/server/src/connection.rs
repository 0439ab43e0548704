//! One client connection: peer check, framing, negotiation and dispatch.

use futures::{SinkExt, StreamExt};
use hoard_protocol::{
    MAX_PROTOCOL, MIN_PROTOCOL, PROTOCOL_V1, PROTOCOL_V2, Request, Response, capability, codec,
    common_capabilities, decode, encode, negotiate_version,
};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

use crate::server::Shared;
use crate::stats::Counted;

/// Serves requests on `stream` until the client hangs up or sends something unreadable.
pub(crate) async fn serve_connection(stream: UnixStream, shared: &Shared) {
    let peer_uid = stream.peer_cred().ok().map(|c| c.uid());
    let mut framed = Framed::new(stream, codec(shared.config.max_frame_length));
    while let Some(frame) = framed.next().await {
        let (reply, close) = match frame {
            // Oversize frames and I/O errors leave the stream out of step: say why, then close.
            Err(e) => (error(format!("unreadable frame: {e}")), true),
            Ok(body) => match decode::<Request>(&body) {
                Err(e) => (error(format!("undecodable request: {e}")), true),
                Ok(request) => {
                    let shutdown = matches!(request, Request::Shutdown);
                    let reply = match peer_uid {
                        Some(uid) if uid == shared.own_uid => handle(request, uid, shared).await,
                        Some(uid) => error(format!(
                            "refused: peer uid {uid} is not the server's uid {}",
                            shared.own_uid
                        )),
                        None => error("refused: the peer's credentials are unknown".into()),
                    };
                    if shutdown && matches!(reply, Response::Done) {
                        let _ = send(&mut framed, &reply).await;
                        shared.shutdown.notify_one();
                        return;
                    }
                    (reply, false)
                }
            },
        };
        if send(&mut framed, &reply).await.is_err() || close {
            return;
        }
    }
}

async fn send(
    framed: &mut Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec>,
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

async fn handle(request: Request, peer_uid: u32, shared: &Shared) -> Response {
    let max_protocol = shared.config.max_protocol.clamp(MIN_PROTOCOL, MAX_PROTOCOL);
    if max_protocol < PROTOCOL_V2 && is_v2_only(&request) {
        // Exactly what a server from before v2 does with a message it has never heard of.
        return Response::Unsupported {
            message: Some(format!("unknown request type {}", request.type_name())),
        };
    }
    match request {
        Request::Compile {
            exe,
            cwd,
            args,
            env,
        } => {
            shared.stats.count(Counted::Request {
                version: PROTOCOL_V1,
            });
            crate::v1::compile(shared, exe, cwd, args, env).await
        }
        Request::Hello {
            min,
            max,
            capabilities,
        } => match negotiate_version((MIN_PROTOCOL, max_protocol), (min, max)) {
            Some(version) => Response::Welcome {
                version,
                capabilities: common_capabilities(capability::ALL, &capabilities),
            },
            None => Response::Unsupported {
                message: Some(format!(
                    "client speaks v{min}..v{max}, server v{MIN_PROTOCOL}..v{max_protocol}"
                )),
            },
        },
        Request::CacheGet {
            key,
            outputs,
            language,
        } => {
            shared.stats.count(Counted::Request {
                version: PROTOCOL_V2,
            });
            crate::v2::cache_get(shared, peer_uid, &key, &outputs, language.as_deref()).await
        }
        Request::CachePut {
            key,
            outputs,
            stdout,
            stderr,
            exit_status,
            language: _,
        } => {
            shared.stats.count(Counted::Request {
                version: PROTOCOL_V2,
            });
            let meta = hoard_storage::EntryMeta {
                stdout,
                stderr,
                exit_status,
            };
            crate::v2::cache_put(shared, peer_uid, &key, &outputs, &meta).await
        }
        Request::ManifestGet { key } => crate::v2::manifest_get(shared, &key).await,
        Request::ManifestPut { key, manifest } => {
            crate::v2::manifest_put(shared, &key, manifest).await
        }
        Request::GetStats => stats(shared),
        Request::ZeroStats => match shared.stats.zero() {
            Ok(()) => {
                shared.tiers.zero_tier_stats();
                Response::Done
            }
            Err(e) => error(format!("cannot zero the client events log: {e}")),
        },
        Request::Shutdown => Response::Done,
        Request::Unknown => Response::Unsupported {
            message: Some("unknown request type".into()),
        },
    }
}

/// Requests a server from before v2 never knew.
fn is_v2_only(request: &Request) -> bool {
    matches!(
        request,
        Request::Hello { .. }
            | Request::CacheGet { .. }
            | Request::CachePut { .. }
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
    stats.tiers = shared
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
        .collect();
    Response::Stats { stats }
}
