//! One admitted request to its handler: the one place a request is counted and routed. The
//! connection has already admitted the peer and, for an inline put, received the whole
//! entry; the handlers (`v1`, `v2`, and the control requests here) see only the shared
//! state.

use hoard_protocol::{
    MAX_PROTOCOL, MIN_PROTOCOL, PROTOCOL_V1, PROTOCOL_V2, Probe, Request, Response, capability,
    common_capabilities, negotiate_version,
};

use crate::peer::{Conn, Peer};
use crate::probe::{self, ProvenDir};
use crate::reply::{Reply, error};
use crate::shared::Shared;
use crate::stats::Counted;
use crate::{v1, v2};

/// Serves `request`, counting it once. `proven` is what this connection's `Hello` probe
/// proved (set here when the request is the `Hello`). A `CachePutInline` comes with all of
/// its entry's bytes in `data`.
pub(crate) async fn handle(
    request: Request,
    conn: Conn,
    proven: &mut Option<ProvenDir>,
    shared: &Shared,
) -> Reply {
    let max_protocol = shared.config.max_protocol.clamp(MIN_PROTOCOL, MAX_PROTOCOL);
    if max_protocol < PROTOCOL_V2 && is_v2_only(&request) {
        // Exactly what a server from before v2 does with a message it has never heard of.
        return Reply::One(Response::Unsupported {
            message: Some(format!("unknown request type {}", request.type_name())),
        });
    }
    if let Some(version) = counted_version(&request) {
        shared.stats.count(Counted::Request { version });
    }
    let who = (
        conn.holder,
        conn.peer.uid_or(shared.own_uid),
        proven.as_ref(),
    );
    let answered = match request {
        Request::Compile {
            exe,
            cwd,
            args,
            env,
        } => Ok(v1::compile(shared, conn.holder, exe, cwd, args, env).await),
        Request::CacheGet {
            key,
            outputs,
            language,
        } => v2::cache_get(shared, who, &key, &outputs, language.as_deref()).await,
        Request::CachePut {
            key,
            outputs,
            stdout,
            stderr,
            exit_status,
            compile_ms,
            ..
        } => {
            let meta = hoard_storage::EntryMeta {
                stdout,
                stderr,
                exit_status,
                compile_ms,
            };
            v2::cache_put(shared, who, &key, &outputs, &meta).await
        }
        Request::CacheGetInline { key, language } => {
            return match v2::cache_get_inline(shared, conn.holder, &key, language.as_deref()).await
            {
                Ok(found) => Reply::Entry(found),
                Err(response) => Reply::One(response),
            };
        }
        Request::CachePutInline { key, data, .. } => {
            v2::cache_put_inline(shared, conn.holder, &key, data).await
        }
        Request::ManifestGet { key } => v2::manifest_get(shared, conn.holder, &key).await,
        Request::ManifestPut { key, manifest } => {
            v2::manifest_put(shared, conn.holder, &key, manifest).await
        }
        request => return control(request, conn.peer, proven, shared, max_protocol),
    };
    Reply::One(answered.unwrap_or_else(|refusal| refusal))
}

/// The requests about the conversation and the server rather than the cache: negotiation,
/// statistics, shutdown, and what is out of place.
fn control(
    request: Request,
    peer: Peer,
    proven: &mut Option<ProvenDir>,
    shared: &Shared,
    max_protocol: u32,
) -> Reply {
    Reply::One(match request {
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
        Request::GetStats => stats(shared),
        Request::ZeroStats => zero_stats(shared),
        Request::Shutdown => return Reply::Shutdown,
        Request::Chunk { .. } => {
            return Reply::Close(error("Chunk outside an inline entry".into()));
        }
        // The cache's requests are `handle`'s; whatever else there is, this server does not
        // know.
        _ => Response::Unsupported {
            message: Some("unknown request type".into()),
        },
    })
}

/// The protocol version a request is counted under, for the ones the statistics count.
fn counted_version(request: &Request) -> Option<u32> {
    match request {
        Request::Compile { .. } => Some(PROTOCOL_V1),
        Request::CacheGet { .. }
        | Request::CachePut { .. }
        | Request::CacheGetInline { .. }
        | Request::CachePutInline { .. } => Some(PROTOCOL_V2),
        _ => None,
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

/// The counters, the client events and the tiers' figures in one answer.
fn stats(shared: &Shared) -> Response {
    let tiers = shared.stats.with_saved_tiers(shared.live_tiers());
    let mut stats = shared.stats.snapshot(tiers);
    let local = shared.tiers.local();
    stats.cache_size_bytes = local.size_bytes();
    stats.cache_max_bytes = local.max_size();
    Response::Stats {
        stats: Box::new(stats),
    }
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
