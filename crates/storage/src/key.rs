//! The address of an entry: a blake3 digest, written as 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

/// A cache key: the blake3 digest of a versioned recipe of every input that can change a
/// compile's outputs. Entries and manifests are both addressed by one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// Wraps a finished digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex form used on the wire and on disk.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl From<blake3::Hash> for CacheKey {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

/// A string that is not 64 hex digits was offered as a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cache key (want 64 hex digits): {0:?}")]
pub struct InvalidKey(pub String);

impl FromStr for CacheKey {
    type Err = InvalidKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hash = blake3::Hash::from_hex(s).map_err(|_| InvalidKey(s.to_owned()))?;
        Ok(hash.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trips(bytes in any::<[u8; 32]>()) {
            let key = CacheKey::from_bytes(bytes);
            prop_assert_eq!(key.to_hex().parse::<CacheKey>().unwrap(), key);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in ".*") {
            let _ = s.parse::<CacheKey>();
        }
    }

    #[test]
    fn short_or_non_hex_strings_are_refused() {
        assert!("abc".parse::<CacheKey>().is_err());
        assert!("z".repeat(64).parse::<CacheKey>().is_err());
    }
}
