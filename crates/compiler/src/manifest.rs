//! The manifest codec (ccache's design), one for every compiler family. A manifest, stored
//! under a family's manifest key, lists candidate results, newest first, each with what that
//! family needs to tell whether the candidate still fits the compile at hand (for C the
//! include files and their digests, for rustc the sources, variables and roots). A candidate
//! that fits names the result to fetch, so a hit runs no compiler and no preprocessor.

use hoard_storage::CacheKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bumped whenever the encoding changes; a manifest of another version is ignored.
pub(crate) const MANIFEST_VERSION: u32 = 1;
/// Candidates kept per manifest, newest first: enough for a few configurations or branches of
/// one source, small enough that a lookup stays cheap.
pub(crate) const MAX_CANDIDATES: usize = 16;

/// One earlier compile, as a family records it in a manifest.
pub(crate) trait Candidate: Serialize + DeserializeOwned + PartialEq {
    /// The result key this candidate leads to.
    fn result_key(&self) -> CacheKey;
}

/// All candidates known for one manifest key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest<C> {
    version: u32,
    candidates: Vec<C>,
}

impl<C> Default for Manifest<C> {
    fn default() -> Self {
        Self {
            version: MANIFEST_VERSION,
            candidates: Vec::new(),
        }
    }
}

impl<C: Candidate> Manifest<C> {
    /// Decodes stored bytes; garbage or another version reads as an empty manifest.
    pub(crate) fn decode(bytes: &[u8]) -> Self {
        rmp_serde::from_slice::<Self>(bytes)
            .ok()
            .filter(|m| m.version == MANIFEST_VERSION)
            .unwrap_or_default()
    }

    /// The bytes to store.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec(self)
    }

    /// The newest candidate that `fits`.
    pub(crate) fn find(&self, fits: impl FnMut(&&C) -> bool) -> Option<&C> {
        self.candidates.iter().find(fits)
    }

    /// How many candidates the manifest holds.
    pub(crate) fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Puts `candidate` first, dropping an identical older one and the oldest beyond the cap.
    pub(crate) fn add(&mut self, candidate: C) {
        self.candidates.retain(|c| *c != candidate);
        self.candidates.insert(0, candidate);
        self.candidates.truncate(MAX_CANDIDATES);
    }
}

#[cfg(test)]
impl<C: Clone> Manifest<C> {
    /// The candidates, newest first.
    pub(crate) fn candidates(&self) -> &[C] {
        &self.candidates
    }

    /// A manifest claiming encoding `version`.
    pub(crate) fn of_version(version: u32, candidates: Vec<C>) -> Self {
        Self {
            version,
            candidates,
        }
    }
}
