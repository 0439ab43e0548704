//! How hoard's objects become native REAPI objects, and back.
//!
//! * A hoard key becomes an `Action` digest: `Command { arguments: ["hoard", "entry", <key
//!   hex>] }`, `Action { command_digest, input_root_digest: <the empty Directory> }`, and the
//!   ActionCache key is the SHA-256 digest of the serialized `Action`. Every server accepts
//!   SHA-256, and an honest `Action` lets tools that browse actions show what it is.
//! * An entry becomes an `ActionResult`: one output file per file of the entry (path: its
//!   role; SHA-256 digest; mode in `node_properties`), the entry's header as the output file
//!   [`HEADER_PATH`], stdout and stderr as CAS blobs, the exit status as `exit_code`.
//! * An object that is not an entry (prefetch's index) is one output file, [`OBJECT_PATH`].
//! * REAPI has no delete: a removed key holds an `ActionResult` without outputs.
//!
//! Nothing here talks to a server.

use std::collections::HashMap;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::protobuf::UInt32Value;
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::CacheKey;
use crate::entry::parts::EntryParts;

/// The output file holding an entry's header (hoard's msgpack): roles, modes, sizes, blake3
/// digests, stdout, stderr, exit status, compile time, signature.
pub(super) const HEADER_PATH: &str = ".hoard/header";

/// The output file holding an object that is not an entry.
pub(super) const OBJECT_PATH: &str = ".hoard/object";

/// `execution_metadata.worker` of what hoard stores.
const WORKER: &str = "hoard";

/// What a role must escape to be one path component that cannot clash with [`HEADER_PATH`]
/// or [`OBJECT_PATH`]: `/`, `%`, and a leading `.` (see [`role_path`]).
const ROLE_ESCAPES: &AsciiSet = &CONTROLS.add(b'/').add(b'%').add(b'\\').add(b' ');

/// The SHA-256 digest of `bytes`, as REAPI names a blob.
pub(super) fn digest_of(bytes: &[u8]) -> re::Digest {
    re::Digest {
        hash: hex(&Sha256::digest(bytes)),
        size_bytes: wire_size(bytes.len()),
    }
}

/// A length as REAPI's digests carry it.
pub(super) fn wire_size(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// The size a digest declares; a negative one (never accepted from a server: see
/// [`stored`]) as the largest, so any limit refuses it.
pub(super) fn declared(digest: &re::Digest) -> u64 {
    u64::try_from(digest.size_bytes).unwrap_or(u64::MAX)
}

/// `hash/size`, as logs and REAPI's own tools write a digest.
pub(super) fn shown(digest: &re::Digest) -> String {
    format!("{}/{}", digest.hash, digest.size_bytes)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A key's `Action`, its `Command`, and the digest the ActionCache knows it by.
pub(super) struct ActionOf {
    /// The ActionCache key.
    pub(super) digest: re::Digest,
    /// The serialized `Action` and `Command`, uploaded beside the result so tools can show
    /// them.
    pub(super) blobs: [(re::Digest, Bytes); 2],
}

/// The `Action` that stands for `key` (see the module's documentation).
pub(super) fn action_of(key: &CacheKey) -> ActionOf {
    let command = re::Command {
        arguments: vec!["hoard".into(), "entry".into(), key.to_hex()],
        ..Default::default()
    }
    .encode_to_vec();
    let command_digest = digest_of(&command);
    let action = re::Action {
        command_digest: Some(command_digest.clone()),
        input_root_digest: Some(digest_of(&[])),
        ..Default::default()
    }
    .encode_to_vec();
    let digest = digest_of(&action);
    ActionOf {
        blobs: [
            (digest.clone(), Bytes::from(action)),
            (command_digest, Bytes::from(command)),
        ],
        digest,
    }
}

/// The output path of a file with `role`: the role itself when it is a plain name, else
/// percent-encoded. A role never becomes a path under `.hoard/`.
pub(super) fn role_path(role: &str) -> String {
    let escaped = utf8_percent_encode(role, ROLE_ESCAPES).to_string();
    match escaped.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None if escaped.is_empty() => "%".into(),
        None => escaped,
    }
}

/// What a write sends: the blobs, then the `ActionResult` that names them.
pub(super) struct Upload {
    /// Every blob the result names (and the action's own), unique by digest.
    pub(super) blobs: Vec<(re::Digest, Bytes)>,
    /// What goes to the ActionCache once every blob is stored.
    pub(super) result: re::ActionResult,
}

impl Upload {
    fn new(result: re::ActionResult, blobs: Vec<(re::Digest, Bytes)>, action: &ActionOf) -> Self {
        let mut unique: HashMap<String, (re::Digest, Bytes)> = HashMap::new();
        for (digest, bytes) in blobs.into_iter().chain(action.blobs.iter().cloned()) {
            unique.entry(digest.hash.clone()).or_insert((digest, bytes));
        }
        Upload {
            blobs: unique.into_values().collect(),
            result,
        }
    }
}

/// The upload of an entry taken apart.
pub(super) fn entry_upload(parts: EntryParts, action: &ActionOf) -> Upload {
    let mut blobs = Vec::with_capacity(parts.files.len() + 3);
    let mut output_files = Vec::with_capacity(parts.files.len() + 1);
    for file in parts.files {
        let digest = digest_of(&file.data);
        output_files.push(re::OutputFile {
            path: role_path(&file.role),
            digest: Some(digest.clone()),
            is_executable: file.mode & 0o100 != 0,
            node_properties: Some(re::NodeProperties {
                unix_mode: Some(UInt32Value { value: file.mode }),
                ..Default::default()
            }),
            ..Default::default()
        });
        blobs.push((digest, Bytes::from(file.data)));
    }
    let header = digest_of(&parts.header);
    output_files.push(re::OutputFile {
        path: HEADER_PATH.into(),
        digest: Some(header.clone()),
        ..Default::default()
    });
    blobs.push((header, Bytes::from(parts.header)));
    let mut printed = |bytes: Vec<u8>| {
        (!bytes.is_empty()).then(|| {
            let digest = digest_of(&bytes);
            blobs.push((digest.clone(), Bytes::from(bytes)));
            digest
        })
    };
    let stdout_digest = printed(parts.stdout);
    let stderr_digest = printed(parts.stderr);
    let result = re::ActionResult {
        output_files,
        exit_code: parts.exit_status,
        stdout_digest,
        stderr_digest,
        execution_metadata: Some(metadata()),
        ..Default::default()
    };
    Upload::new(result, blobs, action)
}

/// The upload of an object that is not an entry.
pub(super) fn object_upload(object: Bytes, action: &ActionOf) -> Upload {
    let digest = digest_of(&object);
    let result = re::ActionResult {
        output_files: vec![re::OutputFile {
            path: OBJECT_PATH.into(),
            digest: Some(digest.clone()),
            ..Default::default()
        }],
        execution_metadata: Some(metadata()),
        ..Default::default()
    };
    Upload::new(result, vec![(digest, object)], action)
}

/// What stands for a removed key: a result without outputs, which a reader takes for a miss.
pub(super) fn removed() -> re::ActionResult {
    re::ActionResult {
        execution_metadata: Some(metadata()),
        ..Default::default()
    }
}

fn metadata() -> re::ExecutedActionMetadata {
    re::ExecutedActionMetadata {
        worker: WORKER.into(),
        ..Default::default()
    }
}

/// What an `ActionResult` under a hoard key names: what to fetch to rebuild the object.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// An entry: its header, and its files by output path.
    Entry {
        header: re::Digest,
        files: HashMap<String, re::Digest>,
    },
    /// An object that is not an entry.
    Object(re::Digest),
    /// Nothing (a removed key).
    Removed,
}

impl Stored {
    /// Every blob to fetch, unique by digest.
    pub(super) fn blobs(&self) -> Vec<re::Digest> {
        let mut all: Vec<re::Digest> = match self {
            Stored::Entry { header, files } => std::iter::once(header)
                .chain(files.values())
                .cloned()
                .collect(),
            Stored::Object(digest) => vec![digest.clone()],
            Stored::Removed => Vec::new(),
        };
        all.sort_by(|a, b| a.hash.cmp(&b.hash));
        all.dedup_by(|a, b| a.hash == b.hash);
        all
    }
}

/// Why an `ActionResult` under a hoard key is not one hoard wrote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum NotHoards {
    /// An output file has no digest, or one that is not SHA-256.
    #[error("output {path:?}: {why}")]
    BadDigest { path: String, why: &'static str },
    /// Two output files share a path.
    #[error("output {0:?} listed twice")]
    Twice(String),
    /// Outputs, but neither a header nor an object.
    #[error("outputs without {HEADER_PATH}")]
    NoHeader,
}

/// Reads what `result` names, refusing what hoard would never have written. Sizes are not
/// bounded here: the caller checks them against its limit before fetching anything.
pub(super) fn stored(result: &re::ActionResult) -> Result<Stored, NotHoards> {
    let mut files = HashMap::new();
    for file in &result.output_files {
        let digest = file.digest.clone().ok_or_else(|| NotHoards::BadDigest {
            path: file.path.clone(),
            why: "no digest",
        })?;
        let sha256 = digest.hash.len() == 64
            && digest
                .hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !sha256 || digest.size_bytes < 0 {
            return Err(NotHoards::BadDigest {
                path: file.path.clone(),
                why: "not a SHA-256 digest with a size",
            });
        }
        if files.insert(file.path.clone(), digest).is_some() {
            return Err(NotHoards::Twice(file.path.clone()));
        }
    }
    if files.is_empty() {
        return Ok(Stored::Removed);
    }
    if let Some(object) = files.remove(OBJECT_PATH) {
        return Ok(Stored::Object(object));
    }
    let header = files.remove(HEADER_PATH).ok_or(NotHoards::NoHeader)?;
    Ok(Stored::Entry { header, files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::parts::PartFile;
    use proptest::prelude::*;

    fn key(n: u8) -> CacheKey {
        CacheKey::from_bytes([n; 32])
    }

    #[test]
    fn the_empty_blob_has_the_digest_every_server_knows() {
        assert_eq!(
            shown(&digest_of(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0"
        );
    }

    #[test]
    fn a_key_maps_to_the_digest_of_an_action_naming_it_and_nothing_else() {
        let action = action_of(&key(7));
        let (action_digest, action_bytes) = &action.blobs[0];
        assert_eq!(action_digest, &action.digest);
        assert_eq!(digest_of(action_bytes), action.digest);
        let decoded = re::Action::decode(action_bytes.clone()).unwrap();
        let command = re::Command::decode(action.blobs[1].1.clone()).unwrap();
        assert_eq!(decoded.command_digest.unwrap(), action.blobs[1].0);
        assert_eq!(command.arguments, ["hoard", "entry", &key(7).to_hex()]);
        assert_ne!(action_of(&key(8)).digest, action.digest);
        // The mapping is a contract with every entry already stored: it never changes.
        assert_eq!(
            action_of(&key(0)).digest,
            action_of(&CacheKey::from_bytes([0; 32])).digest
        );
    }

    #[test]
    fn roles_become_one_plain_path_component_that_cannot_be_hoards_own() {
        assert_eq!(role_path("object"), "object");
        assert_eq!(role_path("dep-info"), "dep-info");
        assert_eq!(role_path("a/b"), "a%2Fb");
        assert_eq!(role_path(".hoard/header"), "%2Ehoard%2Fheader");
        assert_eq!(role_path(".."), "%2E.");
        assert_eq!(role_path(""), "%");
    }

    #[test]
    fn an_entry_upload_names_every_file_the_header_and_what_was_printed() {
        let parts = EntryParts {
            header: b"header".to_vec(),
            kind: crate::EntryKind::Outputs,
            files: vec![
                PartFile {
                    role: "object".into(),
                    mode: 0o755,
                    data: b"obj".to_vec(),
                },
                PartFile {
                    role: "dep".into(),
                    mode: 0o644,
                    data: b"obj".to_vec(),
                },
            ],
            stdout: Vec::new(),
            stderr: b"warning".to_vec(),
            exit_status: 0,
        };
        let upload = entry_upload(parts, &action_of(&key(1)));
        let result = &upload.result;
        assert_eq!(result.output_files.len(), 3);
        assert!(result.output_files[0].is_executable);
        assert!(!result.output_files[1].is_executable);
        assert_eq!(result.stdout_digest, None);
        assert_eq!(result.stderr_digest, Some(digest_of(b"warning")));
        // Two identical files are one blob; with the header, stderr, Action and Command: 5.
        assert_eq!(upload.blobs.len(), 5);
        let Stored::Entry { header, files } = stored(result).unwrap() else {
            panic!("not an entry")
        };
        assert_eq!(header, digest_of(b"header"));
        assert_eq!(files["object"], digest_of(b"obj"));
    }

    #[test]
    fn objects_and_removed_keys_read_back_as_such() {
        let upload = object_upload(Bytes::from_static(b"index"), &action_of(&key(2)));
        assert_eq!(
            stored(&upload.result).unwrap(),
            Stored::Object(digest_of(b"index"))
        );
        assert_eq!(stored(&removed()).unwrap(), Stored::Removed);
    }

    #[test]
    fn results_hoard_never_writes_are_refused() {
        let file = |path: &str, hash: &str| re::OutputFile {
            path: path.into(),
            digest: Some(re::Digest {
                hash: hash.into(),
                size_bytes: 1,
            }),
            ..Default::default()
        };
        let good = "a".repeat(64);
        let with = |files| re::ActionResult {
            output_files: files,
            ..Default::default()
        };
        assert_eq!(
            stored(&with(vec![file("object", &good)])),
            Err(NotHoards::NoHeader)
        );
        assert!(stored(&with(vec![file("object", "ab")])).is_err());
        assert!(stored(&with(vec![file("object", &"A".repeat(64))])).is_err());
        assert_eq!(
            stored(&with(vec![file("x", &good), file("x", &good)])),
            Err(NotHoards::Twice("x".into()))
        );
    }

    proptest! {
        #[test]
        fn distinct_roles_never_share_a_path_nor_take_hoards(a in ".{0,12}", b in ".{0,12}") {
            let (pa, pb) = (role_path(&a), role_path(&b));
            prop_assert!(a == b || pa != pb);
            prop_assert!(!pa.contains('/'));
            prop_assert!(!pa.starts_with('.'));
        }

        #[test]
        fn any_action_result_reads_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(result) = re::ActionResult::decode(&bytes[..]) {
                let _ = stored(&result);
            }
        }
    }
}
