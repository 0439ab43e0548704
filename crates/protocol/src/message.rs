//! The messages of protocol v2 (and the handshake every version shares).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use serde_bytes::ByteBuf;

use crate::Stats;

/// One output of a compile, named by role, at a path on the client's filesystem. Paths travel
/// as raw bytes because Unix paths need not be UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputPath {
    /// What the file is (`object`, `dep`, ...).
    pub role: String,
    /// The absolute path, as the client's OS spells it.
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    /// The identity of the path's directory as the client saw it. A server whose own view of
    /// that directory differs (another mount namespace, a container) answers `NotShared`
    /// instead of touching the path. Absent from older clients: a server then answers
    /// `NotShared` unless the connection proved that directory shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<DirIdentity>,
}

/// Which directory a path names, as `stat` reports it: device and inode together name one
/// directory on one kernel, whatever mount namespace looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// The handshake's shared-filesystem probe: a file the client wrote, and what it holds. The
/// server reads the file; only if it finds the same nonce does it see the client's files at
/// all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Absolute path of the probe file.
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    /// The random bytes the client wrote there.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
}

impl OutputPath {
    /// An output path for the wire.
    pub fn new(role: impl Into<String>, path: &Path) -> Self {
        Self {
            role: role.into(),
            path: path.as_os_str().as_bytes().to_vec(),
            dir: None,
        }
    }

    /// The same path, carrying the identity its directory had when the client looked.
    #[must_use]
    pub fn with_dir(mut self, dir: Option<DirIdentity>) -> Self {
        self.dir = dir;
        self
    }

    /// The path as the OS sees it.
    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(&self.path))
    }
}

/// What a client asks. `type` names the variant on the wire. Non-exhaustive: later versions
/// add requests, and a peer answers one it does not know `Unsupported` (see `Unknown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Request {
    /// v1: run this compiler command through the server's cache. The server detects, hashes,
    /// looks up, compiles on a miss, and answers `Compiled` with the outputs in place. Sent
    /// without a `Hello` by v1 clients.
    Compile {
        /// The compiler as the build named it.
        #[serde(with = "serde_bytes")]
        exe: Vec<u8>,
        /// The working directory of the command.
        #[serde(with = "serde_bytes")]
        cwd: Vec<u8>,
        /// The arguments after the compiler.
        args: Vec<ByteBuf>,
        /// The command's whole environment.
        env: Vec<(ByteBuf, ByteBuf)>,
    },
    /// Opens a v2 (or later) conversation: the versions and capabilities the client has.
    Hello {
        /// Oldest version the client speaks.
        min: u32,
        /// Newest version the client speaks.
        max: u32,
        /// Named capabilities the client has.
        capabilities: Vec<String>,
        /// The shared-filesystem probe (absent: the client assumes a shared filesystem).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probe: Option<Probe>,
        /// The server token; required over TCP, where nothing is served without it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// v2: look `key` up; on a hit the server writes each output to its path.
    CacheGet {
        /// Hex cache key.
        key: String,
        /// Where the outputs go.
        outputs: Vec<OutputPath>,
        /// The source language, for per-language statistics.
        #[serde(default)]
        language: Option<String>,
    },
    /// v2: read the outputs from their paths and store them under `key`.
    CachePut {
        /// Hex cache key.
        key: String,
        /// Where the outputs are.
        outputs: Vec<OutputPath>,
        /// The compiler's stdout.
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
        /// The compiler's stderr.
        #[serde(with = "serde_bytes")]
        stderr: Vec<u8>,
        /// The compiler's exit status.
        exit_status: i32,
        /// The source language, for per-language statistics.
        #[serde(default)]
        language: Option<String>,
        /// How long the compile took, in milliseconds: stored with the entry, and counted
        /// as time saved on each hit. Absent from older clients (zero: unknown).
        #[serde(default, skip_serializing_if = "crate::stats::is_zero")]
        compile_ms: u64,
    },
    /// v2 with `inline`: the inline form of `CacheGet`, for a client whose paths the server
    /// cannot see. A hit is answered `Entry` (then `Chunk`s): the stored entry's bytes, which
    /// the client verifies and extracts itself.
    CacheGetInline {
        /// Hex cache key.
        key: String,
        /// The source language, for per-language statistics.
        #[serde(default)]
        language: Option<String>,
    },
    /// v2 with `inline`: the inline form of `CachePut`. Carries the packed entry: `size`
    /// bytes in all, the first of them here and the rest in `Chunk` requests sent right after,
    /// then one answer (`Stored` or `Error`) for the whole.
    CachePutInline {
        /// Hex cache key.
        key: String,
        /// The source language, for per-language statistics.
        #[serde(default)]
        language: Option<String>,
        /// Length of the whole entry.
        size: u64,
        /// Its first bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The next piece of a `CachePutInline` entry; never answered on its own.
    Chunk {
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// v2 with `manifests`: fetch the direct-mode manifest stored under `key`.
    ManifestGet {
        /// Hex manifest key.
        key: String,
    },
    /// v2 with `manifests`: store a direct-mode manifest.
    ManifestPut {
        /// Hex manifest key.
        key: String,
        /// The encoded manifest (opaque to the server).
        #[serde(with = "serde_bytes")]
        manifest: Vec<u8>,
    },
    /// Report the counters.
    GetStats,
    /// Reset the counters.
    ZeroStats,
    /// Stop the server after answering.
    Shutdown,
    /// A request type this build does not know; answered with `Unsupported`.
    #[serde(other)]
    Unknown,
}

impl Request {
    /// The wire name of the request's type, for logs and errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Compile { .. } => "Compile",
            Self::Hello { .. } => "Hello",
            Self::CacheGet { .. } => "CacheGet",
            Self::CachePut { .. } => "CachePut",
            Self::CacheGetInline { .. } => "CacheGetInline",
            Self::CachePutInline { .. } => "CachePutInline",
            Self::Chunk { .. } => "Chunk",
            Self::ManifestGet { .. } => "ManifestGet",
            Self::ManifestPut { .. } => "ManifestPut",
            Self::GetStats => "GetStats",
            Self::ZeroStats => "ZeroStats",
            Self::Shutdown => "Shutdown",
            Self::Unknown => "Unknown",
        }
    }
}

/// What a server answers. Non-exhaustive: later versions add answers, which an older peer
/// decodes as `Unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Response {
    /// v1: the answer to `Compile`, with the outputs already in place.
    Compiled {
        /// What the compiler printed (or what the cache replayed).
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
        /// The compiler's diagnostics.
        #[serde(with = "serde_bytes")]
        stderr: Vec<u8>,
        /// The compiler's exit status.
        exit_status: i32,
        /// How the cache served it (`hit`, `miss`, `non_cacheable`, `fallback`), when known.
        #[serde(default)]
        cache: Option<String>,
    },
    /// Answer to `Hello`: the version both sides will speak and the shared capabilities.
    Welcome {
        /// The agreed version.
        version: u32,
        /// Capabilities both sides have.
        capabilities: Vec<String>,
        /// What the probe showed: `Some(true)` when the server read the client's nonce, so
        /// paths may be shared (each is still checked); `Some(false)` when it did not (or
        /// over TCP), so everything goes inline. Absent from older servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared_fs: Option<bool>,
    },
    /// `CacheGet` hit: the outputs are in place; replay these.
    Hit {
        /// The stored stdout.
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
        /// The stored stderr.
        #[serde(with = "serde_bytes")]
        stderr: Vec<u8>,
        /// The stored exit status.
        exit_status: i32,
        /// The storage tier that held the entry (`local`, `redis`, ...). Absent from older
        /// servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<String>,
        /// The trusted key that signed the entry, when it came from a tier whose entries
        /// must be signed (`HOARD_TRUSTED_KEYS`). Absent from older servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<String>,
        /// The blake3 of each output written, in the order the request named them, so the
        /// client can memoise them without reading the files back. Absent from older
        /// servers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        digests: Vec<ByteBuf>,
        /// How long the compile that stored the entry took, in milliseconds: the time this
        /// hit saved (the client's journal says so). Absent from older servers and for
        /// entries that did not record it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compile_ms: Option<u64>,
    },
    /// `CacheGetInline` hit: the entry's `size` bytes, the first of them here and the rest
    /// in `Chunk` responses that follow at once.
    Entry {
        /// Length of the whole entry.
        size: u64,
        /// Its first bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// The storage tier that held the entry. Absent from older servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<String>,
        /// The trusted key that signed the entry, as in `Hit`. Absent from older servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<String>,
    },
    /// The next piece of an `Entry`.
    Chunk {
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The server's view of an output's directory is not the client's (missing, or another
    /// device and inode): nothing was touched. The client redoes the request inline.
    NotShared {
        /// The directory, as the client named it.
        #[serde(with = "serde_bytes")]
        directory: Vec<u8>,
    },
    /// Nothing stored under the key.
    Miss,
    /// `CachePut` or `ManifestPut` done.
    Stored,
    /// `ManifestGet` hit.
    Manifest {
        /// The stored manifest.
        #[serde(with = "serde_bytes")]
        manifest: Vec<u8>,
    },
    /// Answer to `GetStats`.
    Stats {
        /// The counters (boxed: they outweigh every other answer; the wire is the same).
        stats: Box<Stats>,
    },
    /// `ZeroStats` or `Shutdown` done.
    Done,
    /// The request was understood but failed; the message says what and on what.
    Error {
        /// Human-readable cause.
        message: String,
    },
    /// The request type (or version) is not one this server serves.
    Unsupported {
        /// Why, when the server can say.
        #[serde(default)]
        message: Option<String>,
    },
    /// A response type this build does not know.
    #[serde(other)]
    Unknown,
}
