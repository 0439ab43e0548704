//! Cache keys: blake3 over versioned recipes. Every field is written with its name and length
//! so no two different recipes hash the same bytes, and every field is noted for
//! `hoard --explain` ([`crate::record`]). Changing what a recipe holds means changing its
//! version string, which retires the old keys instead of serving stale entries.

use hoard_storage::CacheKey;

/// A recipe being hashed: a version string, then named, length-prefixed fields, so no two
/// different recipes can hash the same bytes. Shared by every compiler family's keys.
pub(crate) struct Recipe(blake3::Hasher);

impl Recipe {
    /// A recipe of `version` with no fields yet.
    pub(crate) fn new(version: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(version.as_bytes());
        hasher.update(b"\0");
        Self(hasher)
    }

    /// Adds one named field (and notes it for `hoard --explain`).
    pub(crate) fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        crate::record::note(name, value);
        self.0.update(name.as_bytes());
        self.0.update(b"\0");
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// The digest of everything added so far.
    pub(crate) fn finish(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// Which recipe and field make a family's miss probe (see [`miss_probe_key`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MissProbe {
    /// The recipe's version string.
    pub version: &'static str,
    /// The field the manifest key goes in.
    pub field: &'static str,
}

/// A key nothing is ever stored under, derived from a manifest key: looked up after a
/// compile no lookup preceded, so the miss is counted where misses are counted (a v2 server
/// counts them on `CacheGet`).
pub(crate) fn miss_probe_key(probe: MissProbe, manifest_key: &CacheKey) -> CacheKey {
    let mut recipe = Recipe::new(probe.version);
    recipe.field(probe.field, manifest_key.as_bytes());
    CacheKey::from_bytes(recipe.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_delimited() {
        let mut a = Recipe::new("v");
        a.field("x", b"ab").field("y", b"c");
        let mut b = Recipe::new("v");
        b.field("x", b"a").field("y", b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
