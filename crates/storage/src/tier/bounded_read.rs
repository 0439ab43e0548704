//! Reading one entry through OpenDAL in one request, never more than a limit. An object
//! store (S3, WebDAV) used to be asked for the length first and then for the bytes: two
//! round trips per lookup, the largest cost of a hit from such a tier. One ranged GET for
//! `0..=limit` does both jobs: the server sends at most `limit + 1` bytes, and what arrives is
//! counted as it streams in, so a server that ignores the range cannot make hoard hold more
//! than the limit either.

use futures::TryStreamExt;
use opendal::{ErrorKind, Operator};

/// What one bounded read found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Bounded {
    /// The whole value, at most the limit.
    Found(Vec<u8>),
    /// Nothing under the path.
    Missing,
    /// More than the limit: at least this many bytes.
    TooLarge(u64),
}

/// Reads `path` whole if it holds at most `limit` bytes.
pub(super) async fn read(op: &Operator, path: &str, limit: u64) -> Result<Bounded, opendal::Error> {
    let stream = match op.reader(path).await {
        Ok(reader) => reader.into_bytes_stream(0..limit.saturating_add(1)).await,
        Err(e) => Err(e),
    };
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(e) => return absent_or(e),
    };
    let mut bytes = Vec::new();
    loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => {
                let total = bytes.len() as u64 + chunk.len() as u64;
                if total > limit {
                    return Ok(Bounded::TooLarge(total));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bounded::Found(bytes)),
            Err(e) => {
                let e = unwrap_io(e);
                if is_short_of_range(&e) {
                    return Ok(Bounded::Found(bytes));
                }
                return absent_or(e);
            }
        }
    }
}

/// OpenDAL checks that a ranged read returned the whole range, and says so only after the
/// last byte: an object shorter than `0..=limit` (every entry under the limit) ends its
/// stream with this error rather than with its end. The HTTP layer beneath has already
/// checked the response against its own `Content-Length`, so a transfer cut short is a
/// different error; and whatever arrives is verified by its digest before it is used.
/// (The tier tests against moto and WsgiDAV fail if an OpenDAL upgrade changes this.)
fn is_short_of_range(e: &opendal::Error) -> bool {
    e.kind() == ErrorKind::Unexpected && e.message() == "reader got too little data"
}

/// A missing object is a miss; an empty one (a range past its end) is found empty, for the
/// caller's verification to refuse; anything else is the tier's error.
fn absent_or(e: opendal::Error) -> Result<Bounded, opendal::Error> {
    match e.kind() {
        ErrorKind::NotFound => Ok(Bounded::Missing),
        ErrorKind::RangeNotSatisfied => Ok(Bounded::Found(Vec::new())),
        _ => Err(e),
    }
}

/// The stream reports OpenDAL's errors wrapped in `io::Error`; the original keeps its kind.
fn unwrap_io(e: std::io::Error) -> opendal::Error {
    match e.downcast::<opendal::Error>() {
        Ok(inner) => inner,
        Err(e) => {
            opendal::Error::new(ErrorKind::Unexpected, "reading a remote entry").set_source(e)
        }
    }
}
