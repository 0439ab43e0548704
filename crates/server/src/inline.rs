//! Entries that travel over the socket instead of the shared filesystem: sent as one `Entry`
//! and `Chunk`s, received as one `CachePutInline` and `Chunk`s within the inline budget. How
//! an entry is cut and put back together is `hoard-protocol`'s ([`InlinePieces`],
//! [`InlineAssembly`]), the same as the client's; this module moves the frames.

use std::time::Duration;

use futures::StreamExt;
use hoard_protocol::{
    InlineAssembly, InlineError, InlinePieces, ProtocolError, Request, Response, decode,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::gateway::{BudgetRefused, Reserved};
use crate::reply::{Frames, send};
use crate::shared::Shared;

/// Sends an entry as one `Entry` and as many `Chunk`s as it takes, each well under the frame
/// limit.
pub(crate) async fn send_entry<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Frames<S>,
    found: hoard_storage::Located,
) -> Result<(), ()> {
    let pieces = InlinePieces::new(&found.entry);
    let entry = Response::Entry {
        size: pieces.size(),
        data: pieces.first().to_vec(),
        tier: found.tier,
        signer: found.signer,
    };
    send(framed, &entry).await?;
    for piece in pieces.rest() {
        let chunk = Response::Chunk {
            data: piece.to_vec(),
        };
        send(framed, &chunk).await?;
    }
    Ok(())
}

/// How long the next `Chunk` of an inline entry may take to come: a peer that stops sending
/// in the middle of an entry gives its share of the budget back.
const CHUNK_WAIT: Duration = Duration::from_secs(30);

/// Why an inline put was not received; the connection is closed after saying so.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiveRefused {
    /// The sizes do not add up, or the entry is too large.
    #[error(transparent)]
    Entry(#[from] InlineError),
    /// No room in the inline budget.
    #[error(transparent)]
    Budget(#[from] BudgetRefused),
    /// The peer stopped sending in the middle of the entry.
    #[error("no Chunk for {0:?} in the middle of an entry")]
    Stalled(Duration),
    /// The next frame could not be read.
    #[error("unreadable chunk: {0}")]
    Unreadable(#[source] std::io::Error),
    /// The peer hung up in the middle of the entry.
    #[error("client went away in the middle of an entry")]
    Gone,
    /// The next frame is not a message.
    #[error("undecodable chunk: {0}")]
    Undecodable(#[source] ProtocolError),
    /// The next message is not a `Chunk`.
    #[error("expected Chunk in the middle of an entry, got {0}")]
    NotChunk(&'static str),
}

/// Reads the `Chunk`s that complete a `CachePutInline` of `size` bytes starting with `data`,
/// once the entry's room in the inline budget is reserved (returned with the bytes: keep it
/// until they are stored). `remote`: the peer is a TCP client, whose entries must fit in the
/// budget.
pub(crate) async fn receive_entry<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Frames<S>,
    size: u64,
    data: Vec<u8>,
    shared: &Shared,
    remote: bool,
) -> Result<(Vec<u8>, Reserved), ReceiveRefused> {
    // The entry holds the outputs compressed: anything past the output limit is not ours.
    let limit = shared.config.max_output_size.saturating_add(64 << 20);
    InlineAssembly::check_size(size, limit)?;
    let reserved = shared.inline_budget.reserve(size, remote).await?;
    let mut assembly = InlineAssembly::begin(size, data, limit)?;
    while !assembly.is_complete() {
        let body = match tokio::time::timeout(CHUNK_WAIT, framed.next()).await {
            Err(_) => return Err(ReceiveRefused::Stalled(CHUNK_WAIT)),
            Ok(Some(Ok(body))) => body,
            Ok(Some(Err(e))) => return Err(ReceiveRefused::Unreadable(e)),
            Ok(None) => return Err(ReceiveRefused::Gone),
        };
        match decode::<Request>(&body).map_err(ReceiveRefused::Undecodable)? {
            Request::Chunk { data: piece } => assembly.push(&piece)?,
            other => return Err(ReceiveRefused::NotChunk(other.type_name())),
        }
    }
    Ok((assembly.finish()?, reserved))
}
