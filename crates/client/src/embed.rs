//! The embedding API: [`Hoard`], for a build tool that keeps its own actions in hoard's cache
//! under keys it computes itself, or hands compiler commands to hoard's pipeline. It runs
//! in-process over the local disk store ([`Hoard::embedded`]) or through a running server
//! ([`Hoard::connect`]); both address the same entries, so the two modes share hits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoard_compiler::{
    ArtifactCache, CacheError, CommandLine, CompileOutcome, CompileResult, PipelineConfig,
    StorageCache, compile_command,
};
use hoard_protocol::PROTOCOL_V2;
use hoard_storage::{
    CacheKey, DiskStore, EntryStore, OutputPath, ReadLimits, StorageError, TierConfig,
    TieredStorage,
};

use crate::{ClientConfig, ClientError, Connection, RemoteCache};

/// A handle on hoard's cache for a build tool.
///
/// It offers two levels. [`Hoard::get`] and [`Hoard::put`] store and restore the output files
/// of any action under a [`CacheKey`] the caller computes: a blake3 digest over everything
/// that can change the action's outputs, e.g. `blake3::hash(recipe).into()` or
/// [`CacheKey::from_bytes`]. [`Hoard::compile`] runs a C/C++ compiler command through hoard's
/// own pipeline, which computes the key itself.
///
/// A handle is either embedded (the cache lives in this process, no server) or connected to a
/// `hoard-server` over protocol v2. Either way, entries are written in the same format to the
/// same layout, so an embedded tool and the `hoard` wrapper pointed at one cache directory get
/// hits on each other's entries.
///
/// Every method is `async` and works on a current-thread or multi-thread tokio runtime (file
/// work runs on the blocking pool, so the runtime must allow `spawn_blocking`, which both
/// flavours do).
#[derive(Debug)]
pub struct Hoard {
    backend: Backend,
    pipeline: PipelineConfig,
}

/// Where entries are kept.
#[derive(Debug)]
enum Backend {
    /// In this process: `store` for keyed gets and puts, `cache` for the pipeline.
    Embedded {
        store: EntryStore,
        cache: StorageCache,
        /// For flushing queued remote writes.
        tiers: Arc<TieredStorage>,
    },
    /// Through a v2 server, which extracts and packs outputs on their paths itself. Boxed:
    /// the connection's buffers would make every handle that large.
    Connected(Box<RemoteCache>),
}

/// [`Hoard::embedded`] could not open the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The cache directory could not be made absolute (the working directory is gone, or the
    /// path is empty).
    #[error("cannot resolve the cache directory {path}: {source}")]
    CacheDir {
        /// The directory as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The disk store could not be created or scanned.
    #[error("cannot open the cache in {path}: {source}")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: StorageError,
    },
}

impl Hoard {
    /// Connects to a `hoard-server`, starting one first when none listens and
    /// `config.launch` says how.
    ///
    /// Gets and puts then travel as protocol v2 `CacheGet` and `CachePut` requests: the server
    /// writes a hit's outputs to their paths and reads a put's outputs from them, so no
    /// artifact bytes cross the socket and the server must see the caller's filesystem (it
    /// does when both run on one machine). [`Hoard::compile`] runs the pipeline here, keeping
    /// compiler identities under `config.cache_dir`, with the server as its store and
    /// `config.direct_mode` deciding whether manifests are used.
    ///
    /// To reach the server the `hoard` wrapper of this environment uses, pass the configuration
    /// `hoard` itself builds, `hoard::config::Settings::from_env()?.client()` (see [the crate
    /// documentation](crate#the-cache-the-hoard-wrapper-uses)); the example below names a
    /// socket by hand.
    ///
    /// # Errors
    ///
    /// Whatever connecting meets: no server at `config.socket_path` and none could
    /// be started ([`ClientError::Connect`], [`ClientError::Spawn`],
    /// [`ClientError::StartTimeout`]), or a failed handshake. A server that runs as another
    /// uid than this process's effective uid is refused before anything is sent to it
    /// ([`ClientError::UntrustedServer`]): whoever can write to the socket's directory could
    /// be listening there. A server that speaks only
    /// protocol v1, or a `config.max_protocol` below 2, gives [`ClientError::Unsupported`]:
    /// a v1 server runs whole compiles, it cannot store an action under a caller's key.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use hoard_client::{ClientConfig, Hoard};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let config = ClientConfig::new(
    ///     "/home/me/.cache/hoard".into(),
    ///     std::env::var_os("HOARD_SERVER_UDS").ok_or("HOARD_SERVER_UDS is not set")?.into(),
    /// );
    /// let hoard = runtime.block_on(Hoard::connect(&config))?;
    /// # let _ = hoard;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: &ClientConfig) -> Result<Hoard, ClientError> {
        let connection = Connection::open(config).await?;
        if connection.version() < PROTOCOL_V2 {
            return Err(ClientError::Unsupported {
                request: "Hello",
                message: format!(
                    "the connection speaks protocol v{}; the embedding API needs v{PROTOCOL_V2} \
                     (the server predates it, or the client is pinned with HOARD_PROTOCOL)",
                    connection.version()
                ),
            });
        }
        let mut pipeline = PipelineConfig::new(config.cache_dir.clone());
        pipeline.direct_mode = config.direct_mode;
        Ok(Hoard {
            backend: Backend::Connected(Box::new(
                RemoteCache::new(connection).recaching(config.recache),
            )),
            pipeline,
        })
    }

    /// Opens the cache in `cache_dir` inside this process, with no server, holding at most
    /// `max_size` bytes of entries.
    ///
    /// Entries live in `cache_dir/cache`, where a `hoard-server` with `HOARD_DIR=cache_dir`
    /// keeps its own, so an embedded tool and servers or other embedded processes on the same
    /// directory share entries; each process writes entries atomically and evicts the least
    /// recently used ones when the directory grows past `max_size`. Compiler identities for
    /// [`Hoard::compile`] are cached in `cache_dir` too. The directory is created if needed;
    /// a relative path is taken from the current directory, now.
    ///
    /// # Errors
    ///
    /// [`EmbedError::CacheDir`] when `cache_dir` cannot be made absolute, and
    /// [`EmbedError::Open`] when the store cannot be created or scanned (permissions, a file
    /// where a directory should be).
    ///
    /// # Examples
    ///
    /// ```
    /// use hoard_client::Hoard;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let hoard = Hoard::embedded(dir.path(), 1 << 30)?;
    /// assert!(dir.path().join("cache").is_dir());
    /// # let _ = hoard;
    /// # Ok(())
    /// # }
    /// ```
    pub fn embedded(cache_dir: impl Into<PathBuf>, max_size: u64) -> Result<Hoard, EmbedError> {
        Self::embedded_with_tiers(cache_dir, max_size, Vec::new())
    }

    /// As [`Hoard::embedded`], with remote tiers behind the local disk (the same tiers a
    /// server can have: memcached, redis, S3, WebDAV, a shared directory; see
    /// `hoard_storage::tiers_from_env`). Remote writes are queued in the background on the
    /// runtime the first put runs on; call [`Hoard::flush`] before that runtime ends.
    ///
    /// # Errors
    ///
    /// As [`Hoard::embedded`], and [`EmbedError::Open`] when a tier's configuration is
    /// invalid. A tier that is down is not an error: it is skipped and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use hoard_client::Hoard;
    /// use hoard_storage::{TierConfig, TierKind};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (dir, shared) = (tempfile::tempdir()?, tempfile::tempdir()?);
    /// let tier = TierConfig::new(TierKind::SharedDir { path: shared.path().to_owned() });
    /// let hoard = Hoard::embedded_with_tiers(dir.path(), 1 << 30, vec![tier])?;
    /// # let _ = hoard;
    /// # Ok(())
    /// # }
    /// ```
    pub fn embedded_with_tiers(
        cache_dir: impl Into<PathBuf>,
        max_size: u64,
        tiers: Vec<TierConfig>,
    ) -> Result<Hoard, EmbedError> {
        Self::embedded_with_trust(cache_dir, max_size, tiers, Arc::default())
    }

    /// As [`Hoard::embedded_with_tiers`], signing what it puts into remote tiers with
    /// `trust.signer` and accepting from each tier whose `verify` is set only what one of
    /// `trust.trusted` signed (see `hoard_storage::signing`; `trust_from_env` reads
    /// `HOARD_SIGNING_KEY`, `HOARD_TRUSTED_KEYS` and `HOARD_VERIFY_TIERS` and marks the tiers).
    ///
    /// # Errors
    ///
    /// As [`Hoard::embedded_with_tiers`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hoard_client::Hoard;
    /// use hoard_storage::signing::{Signer, Trust, TrustedKeys};
    /// use hoard_storage::{TierConfig, TierKind};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (dir, shared) = (tempfile::tempdir()?, tempfile::tempdir()?);
    /// let ci = Signer::from_secret_bytes(&[7; 32], "ci");
    /// let mut tier = TierConfig::new(TierKind::SharedDir { path: shared.path().to_owned() });
    /// tier.verify = true;
    /// let trust = Trust::new(None, TrustedKeys::parse(&ci.public_line())?);
    /// let hoard = Hoard::embedded_with_trust(dir.path(), 1 << 30, vec![tier], Arc::new(trust))?;
    /// # let _ = hoard;
    /// # Ok(())
    /// # }
    /// ```
    pub fn embedded_with_trust(
        cache_dir: impl Into<PathBuf>,
        max_size: u64,
        tiers: Vec<TierConfig>,
        trust: Arc<hoard_storage::signing::Trust>,
    ) -> Result<Hoard, EmbedError> {
        let given = cache_dir.into();
        // The pipeline and the store would otherwise each resolve a relative path against
        // whatever the working directory is when they use it.
        let cache_dir = std::path::absolute(&given).map_err(|source| EmbedError::CacheDir {
            path: given.clone(),
            source,
        })?;
        let store_dir = cache_dir.join("cache");
        let disk = DiskStore::open(&store_dir, max_size).map_err(|source| EmbedError::Open {
            path: store_dir.clone(),
            source,
        })?;
        let tiered = Arc::new(
            TieredStorage::new(disk, tiers)
                .map_err(|source| EmbedError::Open {
                    path: store_dir.clone(),
                    source,
                })?
                .with_trust(trust),
        );
        let store = EntryStore::new(tiered.clone());
        Ok(Hoard {
            backend: Backend::Embedded {
                cache: StorageCache::new(store.clone()),
                store,
                tiers: tiered,
            },
            pipeline: PipelineConfig::new(cache_dir),
        })
    }

    /// Looks up the action stored under `key` and, on a hit, writes its output files to
    /// `outputs`' paths.
    ///
    /// Outputs are matched by role: each [`OutputPath`] names a role the entry was stored
    /// with and where to write that file now, which need not be where it was read from. Every
    /// file is verified against its checksum before any is written, and each is written
    /// through a temporary file and renamed, so a reader never sees half a file. An entry
    /// stored with other roles is a miss, and so is a corrupt entry, which is also removed.
    /// Paths should be absolute; a server refuses relative ones.
    ///
    /// Returns what was stored with the outputs (stdout, stderr, exit status), or `None` on a
    /// miss.
    ///
    /// # Errors
    ///
    /// A [`CacheError`] when the store cannot be read, an output cannot be written, or (when
    /// connected) the server fails or refuses; its source is the storage error or a
    /// [`ClientError`]. The cache is an accelerator: treat an error as a miss and do the work.
    ///
    /// # Examples
    ///
    /// ```
    /// use hoard_client::{CacheKey, Hoard, OutputPath};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let dir = tempfile::tempdir()?;
    /// let hoard = Hoard::embedded(dir.path().join("hoard"), 1 << 30)?;
    /// // A real tool hashes its recipe: `let key: CacheKey = blake3::hash(&recipe).into();`
    /// let key = CacheKey::from_bytes([7; 32]);
    /// let out = OutputPath::new("out", dir.path().join("hello.txt"));
    ///
    /// assert!(runtime.block_on(hoard.get(&key, std::slice::from_ref(&out)))?.is_none());
    ///
    /// std::fs::write(&out.path, "HELLO")?;
    /// runtime.block_on(hoard.put(&key, std::slice::from_ref(&out), b"", b"", 0))?;
    /// std::fs::remove_file(&out.path)?;
    ///
    /// let hit = runtime.block_on(hoard.get(&key, std::slice::from_ref(&out)))?;
    /// assert_eq!(hit.map(|result| result.exit_status), Some(0));
    /// assert_eq!(std::fs::read(&out.path)?, b"HELLO");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
    ) -> Result<Option<CompileResult>, CacheError> {
        match &self.backend {
            Backend::Embedded { store, .. } => {
                let hit = store
                    .find_outputs(key, outputs)
                    .await
                    .map_err(CacheError::new)?;
                Ok(hit.map(|hit| CompileResult::from_stored(hit.meta, hit.digests)))
            }
            Backend::Connected(remote) => remote
                .get_outputs(key, outputs, None)
                .await
                .map_err(CacheError::new),
        }
    }

    /// Stores the files at `outputs`' paths, with what the action printed and returned, as
    /// one entry under `key`, replacing any entry there.
    ///
    /// Each file is read now and kept under its role, which must be unique among `outputs`;
    /// [`Hoard::get`] later writes each role to whatever path it is then given. The entry is
    /// checksummed and compressed, and it is stored whole or not at all. The exit status is
    /// stored as given: a build tool normally stores only actions that succeeded.
    ///
    /// # Errors
    ///
    /// A [`CacheError`] when an output cannot be read (missing, not a regular file, too large),
    /// the store cannot be written, or (when connected) the server fails or refuses; its
    /// source is the storage error or a [`ClientError`]. Nothing is stored then, and the
    /// build can go on: the next run misses and does the work again.
    ///
    /// # Examples
    ///
    /// ```
    /// use hoard_client::{CacheKey, Hoard, OutputPath};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let dir = tempfile::tempdir()?;
    /// let hoard = Hoard::embedded(dir.path().join("hoard"), 1 << 30)?;
    /// // In a real tool: a blake3 digest over the action's recipe.
    /// let key = CacheKey::from_bytes([42; 32]);
    /// let report = OutputPath::new("report", dir.path().join("report.txt"));
    /// std::fs::write(&report.path, "all good\n")?;
    ///
    /// runtime.block_on(hoard.put(&key, &[report], b"checked 3 files\n", b"", 0))?;
    ///
    /// // Another checkout restores the same entry to its own path.
    /// let elsewhere = OutputPath::new("report", dir.path().join("copy.txt"));
    /// let hit = runtime.block_on(hoard.get(&key, std::slice::from_ref(&elsewhere)))?;
    /// assert_eq!(hit.map(|result| result.stdout), Some(b"checked 3 files\n".to_vec()));
    /// assert_eq!(std::fs::read(&elsewhere.path)?, b"all good\n");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        stdout: &[u8],
        stderr: &[u8],
        exit_status: i32,
    ) -> Result<(), CacheError> {
        let result = CompileResult::new(stdout.to_vec(), stderr.to_vec(), exit_status);
        match &self.backend {
            Backend::Embedded { store, .. } => store
                .put_outputs(key, outputs, &result.entry_meta(), &ReadLimits::default())
                .await
                .map_err(CacheError::new),
            Backend::Connected(remote) => remote
                .put_outputs(key, outputs, &result, None)
                .await
                .map_err(CacheError::new),
        }
    }

    /// Waits up to `timeout` for queued remote-tier writes of an embedded cache; `true` when
    /// none are left. A connected cache has nothing queued here: its server uploads.
    pub async fn flush(&self, timeout: std::time::Duration) -> bool {
        match &self.backend {
            Backend::Embedded { tiers, .. } => tiers.flush(timeout).await,
            Backend::Connected(_) => true,
        }
    }

    /// Runs a compiler command through hoard's cached-compile pipeline, exactly as the `hoard`
    /// wrapper would.
    ///
    /// The command is classified first. A cacheable compile is looked up by a key
    /// hoard computes (in direct mode through a manifest, so a hit runs no preprocessor, else
    /// from the preprocessed source); a hit writes the outputs, a miss compiles and stores a
    /// successful result. A command that cannot be cached (linking, `-E`, several sources,
    /// ...) runs as it is and reports why in [`CacheStatus::NotCacheable`](crate::CacheStatus).
    /// The command runs in `command.cwd` with exactly `command.env` as its environment, so
    /// pass the variables the compiler needs (`PATH` at least).
    ///
    /// # Errors
    ///
    /// None: the cache never fails a compile. [`CompileOutcome::result`] is what the plain
    /// compiler gives (exit status, stdout, stderr; a compiler that cannot be started exits
    /// 127), whatever the cache did. A cache failure on the way is kept in
    /// [`CompileOutcome::cache_errors`], and when it kept the cache out of the compile the
    /// status is [`CacheStatus::Fallback`](crate::CacheStatus).
    ///
    /// # Examples
    ///
    /// ```
    /// use hoard_client::{CacheStatus, CommandLine, Hoard};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let dir = tempfile::tempdir()?;
    /// let hoard = Hoard::embedded(dir.path().join("hoard"), 1 << 30)?;
    /// std::fs::write(dir.path().join("answer.c"), "int answer(void) { return 42; }\n")?;
    /// let gcc = CommandLine {
    ///     program: "gcc".into(),
    ///     args: ["-c", "answer.c", "-o", "answer.o"].map(Into::into).to_vec(),
    ///     cwd: dir.path().to_path_buf(),
    ///     env: std::env::vars_os().collect(),
    /// };
    ///
    /// let first = runtime.block_on(hoard.compile(&gcc));
    /// assert_eq!(first.result.exit_status, 0);
    /// assert_eq!(first.status, CacheStatus::Miss);
    /// let object = std::fs::read(dir.path().join("answer.o"))?;
    ///
    /// std::fs::remove_file(dir.path().join("answer.o"))?;
    /// let second = runtime.block_on(hoard.compile(&gcc));
    /// assert!(matches!(second.status, CacheStatus::Hit { .. }), "{:?}", second.status);
    /// assert_eq!(std::fs::read(dir.path().join("answer.o"))?, object);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn compile(&self, command: &CommandLine) -> CompileOutcome {
        compile_command(command, &self.pipeline, self.artifact_cache()).await
    }

    /// Where [`Hoard::compile`] keeps compiler identities: the embedded cache directory, or
    /// the connected configuration's `cache_dir`.
    pub fn state_dir(&self) -> &Path {
        &self.pipeline.state_dir
    }

    /// Whether this handle works in-process ([`Hoard::embedded`]) rather than through a
    /// server.
    pub fn is_embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded { .. })
    }

    fn artifact_cache(&self) -> &dyn ArtifactCache {
        match &self.backend {
            Backend::Embedded { cache, .. } => cache,
            Backend::Connected(remote) => remote.as_ref(),
        }
    }
}
