//! Moving blobs to and from a REAPI server's CAS: `FindMissingBlobs` first so nothing is
//! sent twice, `BatchUpdateBlobs`/`BatchReadBlobs` for blobs that fit the server's batch
//! limit, ByteStream for the rest. What comes back is checked (size, SHA-256) before it is
//! used; a blob the server lacks is a [`Fetched::Missing`], not an error.

use std::collections::HashMap;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream::{ReadRequest, WriteRequest};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, future};
use re::batch_update_blobs_request::Request as UpdateRequest;

use super::mapping::{declared, digest_of, hex, shown, wire_size};
use super::{Clients, ReapiError, patiently};

/// What one message may carry around its blobs' bytes (digests, framing), counted against the
/// batch limit per blob.
const PER_BLOB_OVERHEAD: usize = 256;

/// The bytes of one ByteStream write message. Well under gRPC's usual 4 MiB message limit.
const WRITE_CHUNK: usize = 1 << 20;

/// gRPC status code NOT_FOUND.
const NOT_FOUND: i32 = 5;

/// How a fetch of several blobs ended.
pub(super) enum Fetched {
    /// Every blob, by hash, checked.
    All(HashMap<String, Bytes>),
    /// The server lacks this one (evicted): the object it belonged to is a miss.
    Missing(re::Digest),
}

/// Blobs split by how they travel: batches within `max_batch` bytes, and the rest alone.
fn plan<T>(items: Vec<T>, size: impl Fn(&T) -> usize, max_batch: usize) -> (Vec<Vec<T>>, Vec<T>) {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut alone = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for item in items {
        let cost = size(&item) + PER_BLOB_OVERHEAD;
        if cost > max_batch {
            alone.push(item);
            continue;
        }
        if used + cost > max_batch {
            batches.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, alone)
}

/// Stores every blob of `blobs` the server lacks.
pub(super) async fn upload(
    clients: &Clients,
    max_batch: usize,
    blobs: Vec<(re::Digest, Bytes)>,
) -> Result<(), ReapiError> {
    let request = re::FindMissingBlobsRequest {
        instance_name: clients.instance.clone(),
        blob_digests: blobs.iter().map(|(d, _)| d.clone()).collect(),
        digest_function: re::digest_function::Value::Sha256 as i32,
    };
    let missing = patiently(|| {
        let (mut cas, request) = (clients.cas(), clients.request(request.clone()));
        async move { cas.find_missing_blobs(request).await }
    })
    .await
    .map_err(|status| ReapiError::status("FindMissingBlobs", &status))?
    .into_inner()
    .missing_blob_digests;
    let wanted: std::collections::HashSet<String> = missing.into_iter().map(|d| d.hash).collect();
    let blobs: Vec<_> = blobs
        .into_iter()
        .filter(|(d, _)| wanted.contains(&d.hash))
        .collect();
    let (batches, alone) = plan(blobs, |(_, b)| b.len(), max_batch);
    let batch_calls = batches
        .into_iter()
        .map(|batch| update_batch(clients, batch));
    let stream_calls = alone.into_iter().map(|(d, b)| write_stream(clients, d, b));
    future::try_join(
        future::try_join_all(batch_calls),
        future::try_join_all(stream_calls),
    )
    .await?;
    Ok(())
}

async fn update_batch(
    clients: &Clients,
    batch: Vec<(re::Digest, Bytes)>,
) -> Result<(), ReapiError> {
    let bytes = batch.iter().map(|(_, b)| b.len() as u64).sum();
    let request = re::BatchUpdateBlobsRequest {
        instance_name: clients.instance.clone(),
        requests: batch
            .into_iter()
            .map(|(digest, data)| UpdateRequest {
                digest: Some(digest),
                data: data.to_vec(),
                ..Default::default()
            })
            .collect(),
        digest_function: re::digest_function::Value::Sha256 as i32,
    };
    let responses = patiently(|| {
        let (mut cas, request) = (clients.cas(), clients.transfer(request.clone(), bytes));
        async move { cas.batch_update_blobs(request).await }
    })
    .await
    .map_err(|status| ReapiError::status("BatchUpdateBlobs", &status))?
    .into_inner()
    .responses;
    for response in responses {
        if let Some(status) = response.status.filter(|s| s.code != 0) {
            let digest = response.digest.as_ref().map(shown).unwrap_or_default();
            return Err(ReapiError::Blob {
                digest,
                why: format!("not stored: code {}: {}", status.code, status.message),
            });
        }
    }
    Ok(())
}

async fn write_stream(
    clients: &Clients,
    digest: re::Digest,
    data: Bytes,
) -> Result<(), ReapiError> {
    let resource = clients.resource(&format!(
        "uploads/{}/blobs/{}/{}",
        upload_id(),
        digest.hash,
        digest.size_bytes
    ));
    let size = data.len();
    let mut offset = 0;
    let mut requests = Vec::with_capacity(size / WRITE_CHUNK + 1);
    loop {
        let end = (offset + WRITE_CHUNK).min(size);
        requests.push(WriteRequest {
            // Only the first message must name the resource; naming it in each is allowed.
            resource_name: if offset == 0 {
                resource.clone()
            } else {
                String::new()
            },
            write_offset: wire_size(offset),
            finish_write: end == size,
            data: data.slice(offset..end).to_vec(),
        });
        offset = end;
        if offset == size {
            break;
        }
    }
    let committed = patiently(|| {
        let stream = clients.transfer(futures::stream::iter(requests.clone()), size as u64);
        let mut bytestream = clients.bytestream();
        async move { bytestream.write(stream).await }
    })
    .await
    .map_err(|status| ReapiError::status("ByteStream.Write", &status))?
    .into_inner()
    .committed_size;
    // A server that has the blob already may answer early with its size (or -1).
    if committed != wire_size(size) && committed != -1 {
        return Err(ReapiError::Blob {
            digest: shown(&digest),
            why: format!("server committed {committed} of {size} bytes"),
        });
    }
    Ok(())
}

/// A fresh upload id: ByteStream wants a UUID in each upload's resource name.
fn upload_id() -> String {
    let mut bytes = [0u8; 16];
    // Only uniqueness matters: a failure leaves zeros, and a clash only makes one upload
    // of two identical blobs redundant.
    let _ = getrandom::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Fetches `digests`, checking each blob's size and SHA-256. The caller has bounded their
/// declared sizes already.
pub(super) async fn download(
    clients: &Clients,
    max_batch: usize,
    digests: Vec<re::Digest>,
) -> Result<Fetched, ReapiError> {
    let (batches, alone) = plan(digests, |d| declared(d) as usize, max_batch);
    let batch_calls = batches.into_iter().map(|batch| read_batch(clients, batch));
    let stream_calls = alone.into_iter().map(|d| read_stream(clients, d));
    let (from_batches, from_streams) = future::try_join(
        future::try_join_all(batch_calls),
        future::try_join_all(stream_calls),
    )
    .await?;
    let mut all = HashMap::new();
    for got in from_batches.into_iter().flatten().chain(from_streams) {
        match got {
            Got::Blob(digest, bytes) => {
                all.insert(digest.hash, bytes);
            }
            Got::Missing(digest) => return Ok(Fetched::Missing(digest)),
        }
    }
    Ok(Fetched::All(all))
}

enum Got {
    Blob(re::Digest, Bytes),
    Missing(re::Digest),
}

async fn read_batch(clients: &Clients, batch: Vec<re::Digest>) -> Result<Vec<Got>, ReapiError> {
    let bytes = batch.iter().map(declared).sum();
    let request = re::BatchReadBlobsRequest {
        instance_name: clients.instance.clone(),
        digests: batch.clone(),
        digest_function: re::digest_function::Value::Sha256 as i32,
        ..Default::default()
    };
    let responses = patiently(|| {
        let (mut cas, request) = (clients.cas(), clients.transfer(request.clone(), bytes));
        async move { cas.batch_read_blobs(request).await }
    })
    .await
    .map_err(|status| ReapiError::status("BatchReadBlobs", &status))?
    .into_inner()
    .responses;
    let mut by_hash: HashMap<String, re::batch_read_blobs_response::Response> = responses
        .into_iter()
        .filter_map(|r| Some((r.digest.as_ref()?.hash.clone(), r)))
        .collect();
    let mut got = Vec::with_capacity(batch.len());
    for digest in batch {
        let Some(response) = by_hash.remove(&digest.hash) else {
            return Err(ReapiError::Blob {
                digest: shown(&digest),
                why: "not in the batch's answer".into(),
            });
        };
        match response.status.as_ref().map_or(0, |s| s.code) {
            0 => {}
            NOT_FOUND => {
                got.push(Got::Missing(digest));
                continue;
            }
            code => {
                return Err(ReapiError::Blob {
                    digest: shown(&digest),
                    why: format!(
                        "not read: code {code}: {}",
                        response.status.map(|s| s.message).unwrap_or_default()
                    ),
                });
            }
        }
        let bytes = Bytes::from(response.data);
        checked(&digest, &bytes)?;
        got.push(Got::Blob(digest, bytes));
    }
    Ok(got)
}

async fn read_stream(clients: &Clients, digest: re::Digest) -> Result<Got, ReapiError> {
    let resource = clients.resource(&format!("blobs/{}/{}", digest.hash, digest.size_bytes));
    let request = ReadRequest {
        resource_name: resource,
        read_offset: 0,
        read_limit: 0,
    };
    let read = patiently(|| {
        let (mut bytestream, request) = (clients.bytestream(), clients.request(request.clone()));
        async move { bytestream.read(request).await }
    });
    let mut stream = match read.await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => return Ok(Got::Missing(digest)),
        Err(status) => return Err(ReapiError::status("ByteStream.Read", &status)),
    };
    let expected = declared(&digest) as usize;
    let mut bytes = BytesMut::with_capacity(expected.min(64 << 20));
    // tonic bounds a call until its first answer; each further chunk gets a call's deadline
    // of its own, so a server that stalls mid-stream is given up on.
    loop {
        let message = match tokio::time::timeout(clients.op_timeout, stream.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(_) => {
                return Err(ReapiError::Blob {
                    digest: shown(&digest),
                    why: format!("the server sent nothing for {:?}", clients.op_timeout),
                });
            }
        };
        let chunk = match message {
            Ok(m) => m.data,
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Ok(Got::Missing(digest));
            }
            Err(status) => return Err(ReapiError::status("ByteStream.Read", &status)),
        };
        if bytes.len() + chunk.len() > expected {
            return Err(ReapiError::Blob {
                digest: shown(&digest),
                why: "the server sent more bytes than the digest's size".into(),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    let bytes = bytes.freeze();
    checked(&digest, &bytes)?;
    Ok(Got::Blob(digest, bytes))
}

/// Refuses bytes whose size or SHA-256 is not the digest's: a CAS is addressed by content,
/// so anything else is damage or a lie.
fn checked(digest: &re::Digest, bytes: &[u8]) -> Result<(), ReapiError> {
    if wire_size(bytes.len()) != digest.size_bytes {
        return Err(ReapiError::Blob {
            digest: shown(digest),
            why: format!("{} bytes came back", bytes.len()),
        });
    }
    if digest_of(bytes).hash != digest.hash {
        return Err(ReapiError::Blob {
            digest: shown(digest),
            why: "the bytes that came back have another SHA-256".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn upload_ids_are_version_4_uuids_and_differ() {
        let (a, b) = (upload_id(), upload_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn a_blob_over_the_batch_limit_travels_alone() {
        let (batches, alone) = plan(vec![10, 5000, 20], |n| *n, 1000);
        assert_eq!(batches, vec![vec![10, 20]]);
        assert_eq!(alone, vec![5000]);
    }

    #[test]
    fn bytes_are_checked_against_size_and_sha256() {
        let digest = digest_of(b"abc");
        assert!(checked(&digest, b"abc").is_ok());
        assert!(checked(&digest, b"abd").is_err());
        assert!(checked(&digest, b"ab").is_err());
    }

    proptest! {
        #[test]
        fn batches_stay_within_the_limit_and_lose_nothing(
            sizes in proptest::collection::vec(0usize..5000, 0..40),
            max in 300usize..6000,
        ) {
            let (batches, alone) = plan(sizes.clone(), |n| *n, max);
            for batch in &batches {
                prop_assert!(!batch.is_empty());
                prop_assert!(batch.iter().map(|n| n + PER_BLOB_OVERHEAD).sum::<usize>() <= max);
            }
            let mut all: Vec<usize> = batches.into_iter().flatten().chain(alone).collect();
            let mut want = sizes;
            all.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }
    }
}
