//! Who may ask what. A peer on the Unix socket is admitted by its uid. A peer on TCP is
//! admitted by nothing but the token in its `Hello`: before that, every request is refused
//! and the connection closed, and afterwards only inline transfers, manifests and stats are
//! served (the server never acts on a remote client's paths, never compiles for it, and
//! takes no control request from it: no `ZeroStats`, no `Shutdown`). A local peer of another
//! uid gets one refusal and the connection closed.

use hoard_protocol::{Request, Response};

use crate::peer::Peer;
use crate::reply::{Reply, error};

/// The largest frame read from a peer not yet admitted (a TCP client before its `Hello` with
/// the token, a local peer of another uid): a `Hello` is a few hundred bytes.
pub(crate) const PRE_ADMISSION_MAX_FRAME: usize = 64 * 1024;

/// Why `peer` may not make `request` now, if it may not. `authenticated`: a TCP peer showed
/// the token.
pub(crate) fn refusal(
    request: &Request,
    peer: Peer,
    authenticated: bool,
    own_uid: u32,
) -> Option<Reply> {
    let refused = match peer {
        Peer::Local { uid: Some(uid) } if uid == own_uid => return None,
        // Nothing it could send would be served: say why once, and hang up.
        Peer::Local { uid: Some(uid) } => Reply::Close(error(format!(
            "refused: peer uid {uid} is not the server's uid {own_uid}"
        ))),
        Peer::Local { uid: None } => {
            Reply::Close(error("refused: the peer's credentials are unknown".into()))
        }
        Peer::Remote { .. } if !authenticated && !matches!(request, Request::Hello { .. }) => {
            Reply::Close(error(format!(
                "refused: {} must open with Hello and the server token",
                peer.name()
            )))
        }
        Peer::Remote { .. } => return remote_refusal(request),
    };
    Some(refused)
}

/// What an authenticated TCP peer may not ask.
fn remote_refusal(request: &Request) -> Option<Reply> {
    Some(match request {
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
    })
}

/// The refusal of a TCP peer's `Hello` that does not show our token, if it does not.
pub(crate) fn wrong_token(peer: Peer, ours: Option<&str>, shown: Option<&str>) -> Option<Reply> {
    (!token_matches(ours, shown)).then(|| {
        Reply::Close(error(format!(
            "refused: a TCP client must show the server's token \
             (HOARD_SERVER_TOKEN); {} did not",
            peer.name()
        )))
    })
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
