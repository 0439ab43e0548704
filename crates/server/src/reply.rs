//! What the server sends back: the reply a request earns, and how one response is framed
//! and sent.

use futures::SinkExt;
use hoard_protocol::{Response, encode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// A connection's stream of frames.
pub(crate) type Frames<S> = Framed<S, LengthDelimitedCodec>;

/// What to do after a request.
pub(crate) enum Reply {
    /// Send this and go on.
    One(Response),
    /// Send this entry as `Entry` and `Chunk`s, and go on.
    Entry(hoard_storage::Located),
    /// Send this and close: the stream is out of step or the peer is not admitted.
    Close(Response),
    /// Send `Done`, close, and stop the server.
    Shutdown,
}

/// Sends one response; `Err` when the peer is gone.
pub(crate) async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Frames<S>,
    reply: &Response,
) -> Result<(), ()> {
    let body = encode(reply).map_err(|e| tracing::warn!("cannot encode reply: {e}"))?;
    framed
        .send(body)
        .await
        .map_err(|e| tracing::debug!("client went away: {e}"))
}

/// An `Error` answer, logged.
pub(crate) fn error(message: String) -> Response {
    tracing::debug!("{message}");
    Response::Error { message }
}
