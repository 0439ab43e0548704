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
}

impl OutputPath {
    /// An output path for the wire.
    pub fn new(role: impl Into<String>, path: &Path) -> Self {
        Self {
            role: role.into(),
            path: path.as_os_str().as_bytes().to_vec(),
        }
    }

    /// The path as the OS sees it.
    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(&self.path))
    }
}

/// What a client asks. `type` names the variant on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
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
            Self::ManifestGet { .. } => "ManifestGet",
            Self::ManifestPut { .. } => "ManifestPut",
            Self::GetStats => "GetStats",
            Self::ZeroStats => "ZeroStats",
            Self::Shutdown => "Shutdown",
            Self::Unknown => "Unknown",
        }
    }
}

/// What a server answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
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
        /// The counters.
        stats: Stats,
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
