//! [`Remotes`]: what a background task (the prefetcher, a hit's backfill) holds to read the
//! remote tiers into the local disk, and the one place remote bytes are verified and written
//! locally.

use std::sync::Arc;

use bytes::Bytes;

use super::chain::Shared;
use super::remote::Counters;
use crate::entry::EntryLimits;
use crate::{CacheKey, DiskStore, EntryError, run_blocking};

/// A remote entry that passed every check its tier asks for.
#[derive(Clone)]
pub(crate) struct Verified {
    /// The entry's bytes.
    pub(crate) entry: Bytes,
    /// The trusted key that signed it, on a verifying tier.
    pub(crate) signer: Option<Arc<str>>,
}

/// What a background task (the prefetcher) needs to read remote tiers into the local disk.
#[derive(Clone)]
pub(crate) struct Remotes {
    pub(crate) shared: Arc<Shared>,
    pub(crate) local: DiskStore,
    pub(crate) local_counters: Arc<Counters>,
    pub(crate) limits: EntryLimits,
}

impl Remotes {
    /// The entry under `key` in tier `tier`, verified whole (and, on a verifying tier, its
    /// signature); `None` on a miss, a failure or an entry refused (counted as the tier's
    /// error, or as untrusted). A miss is counted when `count_miss`. A hit is the caller's to
    /// count.
    pub(crate) async fn fetch_verified(
        &self,
        index: usize,
        key: &CacheKey,
        count_miss: bool,
    ) -> Option<Verified> {
        let tier = &self.shared.tiers[index];
        let entry = if count_miss {
            tier.get(key).await?
        } else {
            tier.get_uncounted(key).await?
        };
        // Whoever else writes to the tier is not trusted: its bytes are verified whole
        // (checksums, declared sizes against the limits, every file's blake3) before they
        // are delivered or copied into any other tier. A bad entry is a miss here; it stays
        // where it is, for the put that follows the compile to replace.
        self.verify_one(index, key, Bytes::from(entry)).await
    }

    /// `entry`, from tier `tier` under `key`, if it verifies whole (as
    /// [`Remotes::fetch_verified`] checks one) and, where the tier is verified, carries a
    /// trusted key's signature as the entry under `key`; if not, counted as the tier's error
    /// (damage) or as untrusted.
    pub(crate) async fn verify_one(
        &self,
        tier: usize,
        key: &CacheKey,
        entry: Bytes,
    ) -> Option<Verified> {
        let limits = self.limits;
        let remote = &self.shared.tiers[tier];
        let trust = remote.config.verify.then(|| self.shared.trust());
        let owned_key = *key;
        let checked = run_blocking("verify a remote entry", move || {
            let verdict = match &trust {
                None => crate::entry::verify(&entry, &limits).map(|()| None),
                Some(trust) => {
                    crate::entry::verify_signed(&entry, &limits, &owned_key, &trust.trusted)
                        .map(|name| Some(Arc::<str>::from(name)))
                }
            };
            Ok((verdict, entry))
        })
        .await;
        match checked {
            Ok((Ok(signer), entry)) => Some(Verified { entry, signer }),
            Ok((Err(EntryError::Untrusted { why }), _)) => {
                remote.untrusted(key, &why);
                None
            }
            Ok((Err(why), _)) => {
                remote.refused("get", key, &why);
                None
            }
            Err(why) => {
                remote.refused("get", key, &why);
                None
            }
        }
    }

    /// Writes a verified remote entry to the local disk; whether it was written.
    pub(crate) async fn write_local(&self, key: &CacheKey, entry: Bytes) -> bool {
        match self.local.put_shared(key, entry).await {
            Ok(()) => {
                Counters::bump(&self.local_counters.writes);
                true
            }
            Err(e) => {
                Counters::bump(&self.local_counters.errors);
                tracing::warn!(%key, error = %e, "cannot write a remote entry to the local cache");
                false
            }
        }
    }
}
