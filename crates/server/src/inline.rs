//! Entries that travel over the socket instead of the shared filesystem: sent as one `Entry`
//! and `Chunk`s, received as one `CachePutInline` and `Chunk`s within the inline budget.

use std::time::Duration;

use futures::StreamExt;
use hoard_protocol::{INLINE_CHUNK_SIZE, Request, Response, decode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::connection::send;
use crate::gateway::Reserved;
use crate::server::Shared;

/// Sends an entry as one `Entry` and as many `Chunk`s as it takes, each well under the frame
/// limit.
pub(crate) async fn send_entry<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    found: hoard_storage::Located,
) -> Result<(), ()> {
    let mut pieces = found.entry.chunks(INLINE_CHUNK_SIZE);
    let first = pieces.next().unwrap_or_default();
    send(
        framed,
        &Response::Entry {
            size: found.entry.len() as u64,
            data: first.to_vec(),
            tier: found.tier,
        },
    )
    .await?;
    for piece in pieces {
        send(
            framed,
            &Response::Chunk {
                data: piece.to_vec(),
            },
        )
        .await?;
    }
    Ok(())
}

/// How long the next `Chunk` of an inline entry may take to come: a peer that stops sending
/// in the middle of an entry gives its share of the budget back.
const CHUNK_WAIT: Duration = Duration::from_secs(30);

/// Reads the `Chunk`s that complete a `CachePutInline` of `size` bytes starting with `data`,
/// once the entry's room in the inline budget is reserved (returned with the bytes: keep it
/// until they are stored). `remote`: the peer is a TCP client, whose entries must fit in the
/// budget.
pub(crate) async fn receive_entry<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    size: u64,
    mut data: Vec<u8>,
    shared: &Shared,
    remote: bool,
) -> Result<(Vec<u8>, Reserved), String> {
    // The entry holds the outputs compressed: anything past the output limit is not ours.
    let limit = shared.config.max_output_size.saturating_add(64 << 20);
    if size > limit {
        return Err(format!(
            "refused: inline entry of {size} bytes exceeds the {limit}-byte limit"
        ));
    }
    let reserved = shared.inline_budget.reserve(size, remote).await?;
    data.reserve(
        usize::try_from(size)
            .unwrap_or(0)
            .saturating_sub(data.len())
            .min(64 << 20),
    );
    while (data.len() as u64) < size {
        let body = match tokio::time::timeout(CHUNK_WAIT, framed.next()).await {
            Err(_) => {
                return Err(format!(
                    "no Chunk for {CHUNK_WAIT:?} in the middle of an entry"
                ));
            }
            Ok(Some(Ok(body))) => body,
            Ok(Some(Err(e))) => return Err(format!("unreadable chunk: {e}")),
            Ok(None) => return Err("client went away in the middle of an entry".into()),
        };
        match decode::<Request>(&body) {
            Ok(Request::Chunk { data: piece }) => data.extend_from_slice(&piece),
            Ok(other) => {
                return Err(format!(
                    "expected Chunk in the middle of an entry, got {}",
                    other.type_name()
                ));
            }
            Err(e) => return Err(format!("undecodable chunk: {e}")),
        }
    }
    if data.len() as u64 != size {
        return Err(format!(
            "inline entry: {} bytes arrived, {size} announced",
            data.len()
        ));
    }
    Ok((data, reserved))
}
