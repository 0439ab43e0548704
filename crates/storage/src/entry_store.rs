//! [`EntryStore`]: a [`Storage`] combined with the entry format, so the server's handlers,
//! embedded mode and the compiler pipeline's adapter all get and put outputs the same way,
//! and a corrupt entry is turned into a miss (and removed) in exactly one place.

use std::sync::Arc;

use crate::entry::{
    self, EntryError, EntryFormat, EntryLimits, EntryMeta, OutputFiles, ReadLimits,
};
use crate::{CacheKey, Located, OutputPath, Storage, StorageError, run_blocking, run_sized};

/// Gets and puts whole compiles (outputs plus stdout, stderr and exit status) and blobs in a
/// [`Storage`]. Works on both current-thread and multi-thread tokio runtimes; file work runs
/// on the blocking pool.
#[derive(Clone)]
pub struct EntryStore {
    storage: Arc<dyn Storage>,
    format: EntryFormat,
    on_corrupt: Option<CorruptHook>,
    hard_links: bool,
    limits: EntryLimits,
}

/// Called with the key of every corrupt entry found (and removed), so its owner can count
/// them: a corrupt entry is a miss to the caller, and would otherwise only be logged.
pub type CorruptHook = Arc<dyn Fn(&CacheKey) + Send + Sync>;

impl std::fmt::Debug for EntryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryStore").finish_non_exhaustive()
    }
}

/// A hit whose outputs are in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputsHit {
    /// What the compile printed, returned and took.
    pub meta: EntryMeta,
    /// The tier that held the entry, when the store has tiers.
    pub tier: Option<String>,
    /// The trusted key that signed it, when it came from a verifying tier.
    pub signer: Option<String>,
    /// The blake3 of each output written, in the order asked for.
    pub digests: Vec<[u8; 32]>,
}

/// Getting or putting an entry failed. A corrupt entry or one with other roles is not an
/// error (it is a miss); what is left is the store failing or output files that cannot be
/// read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The underlying store failed.
    #[error("cache storage: {0}")]
    Storage(#[from] StorageError),
    /// Packing outputs from, or extracting them onto, their paths failed.
    #[error("cache entry: {0}")]
    Entry(#[from] EntryError),
}

impl EntryStore {
    /// Serves entries from `storage`, packing outputs as raw entries ([`EntryFormat::Raw`]:
    /// a local hit is then a verified copy; remote tiers compress what they are sent).
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            format: EntryFormat::Raw,
            on_corrupt: None,
            hard_links: false,
            limits: EntryLimits::default(),
        }
    }

    /// Packs outputs in `format` instead: [`EntryFormat::Zstd`] trades hit speed for a local
    /// cache a third to a quarter the size.
    #[must_use]
    pub fn with_format(mut self, format: EntryFormat) -> Self {
        self.format = format;
        self
    }

    /// Hands a hit's large outputs over as hard links to the local store's files instead of
    /// copies, where the filesystem allows (ccache's `hard_link`). Faster, and the cache
    /// grows no copies in build trees; but a tool that writes into an output in place writes
    /// into the cache too. Such an entry is then found changed on its next hit, and is
    /// removed as corrupt rather than served.
    #[must_use]
    pub fn with_hard_links(mut self, hard_links: bool) -> Self {
        self.hard_links = hard_links;
        self
    }

    /// Refuses entries declaring more than `limits` before any of their files is
    /// decompressed (by default [`EntryLimits::default`], the server's default output
    /// limit).
    #[must_use]
    pub fn with_limits(mut self, limits: EntryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Calls `hook` for every corrupt entry found.
    #[must_use]
    pub fn on_corrupt(mut self, hook: CorruptHook) -> Self {
        self.on_corrupt = Some(hook);
        self
    }

    /// The underlying store.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// On a hit, writes every output to its path (all verified first) and returns what the
    /// compile printed and returned. A corrupt entry is removed and is a miss, as is an entry
    /// whose roles differ from `outputs` or one written in another format version.
    pub async fn get_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
    ) -> Result<Option<EntryMeta>, StoreError> {
        Ok(self.find_outputs(key, outputs).await?.map(|hit| hit.meta))
    }

    /// [`EntryStore::get_outputs`], also saying which tier held the entry.
    pub async fn find_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
    ) -> Result<Option<OutputsHit>, StoreError> {
        match self
            .judge(key, self.try_outputs(key, outputs).await?)
            .await?
        {
            Verdict::Done(found) => Ok(found),
            Verdict::Again => self.last(key, self.try_outputs(key, outputs).await?).await,
        }
    }

    /// Judges what a lookup found: a hit or a miss as they are; an unusable entry a miss,
    /// removed when corrupt (where it was found only). A corrupt local copy is removed and
    /// the lookup is to be made once more ([`Verdict::Again`]), so that a good copy in a
    /// remote tier still serves.
    async fn judge<T>(&self, key: &CacheKey, found: Lookup<T>) -> Result<Verdict<T>, StoreError> {
        match found {
            Lookup::Unusable(e, tier) if e.is_corrupt() && is_local(tier.as_deref()) => {
                self.miss_or_error::<()>(key, tier.as_deref(), e).await?;
                Ok(Verdict::Again)
            }
            found => self.last(key, found).await.map(Verdict::Done),
        }
    }

    /// Judges what the last lookup found (see [`EntryStore::judge`]), with no lookup after.
    async fn last<T>(&self, key: &CacheKey, found: Lookup<T>) -> Result<Option<T>, StoreError> {
        match found {
            Lookup::Hit(hit) => Ok(Some(hit)),
            Lookup::Miss => Ok(None),
            Lookup::Unusable(e, tier) => self.miss_or_error(key, tier.as_deref(), e).await,
        }
    }

    /// One lookup of outputs, its verdict left for the caller to judge.
    async fn try_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
    ) -> Result<Lookup<OutputsHit>, StoreError> {
        if let Some(delivery) = self.storage.deliver(key, outputs, self.hard_links).await? {
            return Ok(match delivery.result {
                Ok(extracted) => Lookup::Hit(OutputsHit {
                    meta: extracted.meta,
                    tier: delivery.tier,
                    signer: None,
                    digests: extracted.digests,
                }),
                Err(e) => Lookup::Unusable(e, delivery.tier),
            });
        }
        let Some(Located {
            entry: bytes,
            tier,
            signer,
        }) = self.storage.get_located(key).await?
        else {
            return Ok(Lookup::Miss);
        };
        let outputs = outputs.to_vec();
        let limits = self.limits;
        let extracted = run_sized("extract entry", bytes.len() as u64, move || {
            Ok(entry::extract_with_limits(&bytes, &outputs, &limits))
        })
        .await?;
        Ok(match extracted {
            Ok(extracted) => Lookup::Hit(OutputsHit {
                meta: extracted.meta,
                tier,
                signer,
                digests: extracted.digests,
            }),
            Err(e) => Lookup::Unusable(e, tier),
        })
    }

    /// Packs the outputs from their paths, each checked against `limits`, with `meta`, and
    /// stores the entry under `key`.
    pub async fn put_outputs(
        &self,
        key: &CacheKey,
        outputs: &[OutputPath],
        meta: &EntryMeta,
        limits: &ReadLimits,
    ) -> Result<(), StoreError> {
        let files = self.read_outputs(outputs, limits).await?;
        self.put_files(key, files, meta.clone()).await
    }

    /// Reads the outputs from their paths (under `limits`), the first half of
    /// [`EntryStore::put_outputs`]: once it returns, the files may change.
    pub async fn read_outputs(
        &self,
        outputs: &[OutputPath],
        limits: &ReadLimits,
    ) -> Result<OutputFiles, StoreError> {
        let outputs = outputs.to_vec();
        let limits = *limits;
        Ok(run_blocking("read outputs", move || {
            Ok(entry::read_outputs(&outputs, &limits))
        })
        .await??)
    }

    /// Packs files already read and stores the entry, the second half of
    /// [`EntryStore::put_outputs`].
    pub async fn put_files(
        &self,
        key: &CacheKey,
        files: OutputFiles,
        meta: EntryMeta,
    ) -> Result<(), StoreError> {
        let format = self.format;
        let packed = run_blocking("pack entry", move || Ok(files.pack_as(&meta, format))).await?;
        self.storage.put(key, packed?).await?;
        Ok(())
    }

    /// The entry under `key`, its checksum verified, as a compressed entry: for a client
    /// that extracts it itself (inline transfer), whatever its age (raw entries are newer
    /// than some clients) and however far away. A damaged entry is removed and is a miss.
    pub async fn get_entry(&self, key: &CacheKey) -> Result<Option<Located>, StoreError> {
        match self.judge(key, self.try_entry(key).await?).await? {
            Verdict::Done(found) => Ok(found),
            Verdict::Again => self.last(key, self.try_entry(key).await?).await,
        }
    }

    async fn try_entry(&self, key: &CacheKey) -> Result<Lookup<Located>, StoreError> {
        let Some(Located {
            entry: bytes,
            tier,
            signer,
        }) = self.storage.get_located(key).await?
        else {
            return Ok(Lookup::Miss);
        };
        let checked = run_sized("verify entry", bytes.len() as u64, move || {
            let recompressed = entry::compressed(&bytes).map(|c| match c {
                std::borrow::Cow::Owned(compressed) => Some(compressed),
                std::borrow::Cow::Borrowed(_) => None,
            });
            Ok(recompressed.map(|c| c.unwrap_or(bytes)))
        })
        .await?;
        Ok(match checked {
            Ok(entry) => Lookup::Hit(Located {
                entry,
                tier,
                signer,
            }),
            Err(e) => Lookup::Unusable(e, tier),
        })
    }

    /// Stores an entry packed elsewhere (inline transfer) after checking its checksum, so
    /// damaged bytes are refused rather than kept.
    pub async fn put_entry(&self, key: &CacheKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        let bytes = run_blocking("verify entry", move || {
            Ok(entry::verify_checksum(&bytes).map(|()| bytes))
        })
        .await??;
        self.storage.put(key, bytes).await?;
        Ok(())
    }

    /// The payload of the blob under `key`. A corrupt blob is removed and is a miss.
    pub async fn get_blob(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StoreError> {
        match self.judge(key, self.try_blob(key).await?).await? {
            Verdict::Done(found) => Ok(found),
            Verdict::Again => self.last(key, self.try_blob(key).await?).await,
        }
    }

    async fn try_blob(&self, key: &CacheKey) -> Result<Lookup<Vec<u8>>, StoreError> {
        let Some(Located {
            entry: bytes, tier, ..
        }) = self.storage.get_located(key).await?
        else {
            return Ok(Lookup::Miss);
        };
        // Blobs are manifests of a few kilobytes: decoding inline costs less than a hop to
        // the blocking pool.
        Ok(match entry::unpack_blob(&bytes) {
            Ok(payload) => Lookup::Hit(payload),
            Err(e) => Lookup::Unusable(e, tier),
        })
    }

    /// Stores `payload` as a blob under `key`.
    pub async fn put_blob(&self, key: &CacheKey, payload: Vec<u8>) -> Result<(), StoreError> {
        let packed = entry::pack_blob(&payload);
        self.storage.put(key, packed).await?;
        Ok(())
    }

    async fn miss_or_error<T>(
        &self,
        key: &CacheKey,
        tier: Option<&str>,
        e: EntryError,
    ) -> Result<Option<T>, StoreError> {
        match e {
            e if e.is_corrupt() => {
                tracing::warn!(%key, tier = tier.unwrap_or("-"), error = %e,
                    "removing corrupt cache entry");
                if let Some(hook) = &self.on_corrupt {
                    hook(key);
                }
                if let Err(remove) = self.storage.remove_corrupt(key, tier).await {
                    tracing::warn!(%key, error = %remove, "cannot remove corrupt cache entry");
                }
                Ok(None)
            }
            EntryError::RoleMismatch { .. } | EntryError::UnsupportedVersion { .. } => {
                tracing::debug!(%key, error = %e, "cache entry not usable here, a miss");
                Ok(None)
            }
            e => Err(e.into()),
        }
    }
}

/// What one lookup found.
enum Lookup<T> {
    /// What was looked for (outputs in place, an entry's bytes, a blob's payload).
    Hit(T),
    /// No entry anywhere.
    Miss,
    /// An entry that could not be used, and the tier that held it.
    Unusable(EntryError, Option<String>),
}

/// What to do after one lookup.
enum Verdict<T> {
    /// This is the answer.
    Done(Option<T>),
    /// A corrupt local copy was removed: look once more.
    Again,
}

/// Whether a corrupt entry from `tier` was the local disk's own copy (or a single store's).
fn is_local(tier: Option<&str>) -> bool {
    tier.is_none_or(|t| t == crate::LOCAL_TIER)
}
