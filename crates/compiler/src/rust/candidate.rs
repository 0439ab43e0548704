//! What a rustc manifest candidate lists: every source file the compile read (normalised
//! path and digest), every `env!` variable it read (normalised value) and every root its
//! outputs embed, and the result key they lead to. A candidate whose files, variables and
//! roots all still match names the result, so a hit runs no rustc at all.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hoard_storage::CacheKey;
use serde::{Deserialize, Serialize};

use super::paths::Roots;
use crate::command::env_value;
use crate::digest::Digests;

/// One earlier compile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Candidate {
    /// Source files, normalised (relative paths are relative to the working directory).
    pub files: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
    /// `env!`/`option_env!` variables and their normalised values (`None`: unset).
    pub env: Vec<(serde_bytes::ByteBuf, Option<serde_bytes::ByteBuf>)>,
    /// Roots the outputs embed verbatim (`placeholder` + root): the result is only good for
    /// a compile with the same roots.
    pub pinned: Vec<serde_bytes::ByteBuf>,
    #[serde(with = "serde_bytes")]
    pub result_key: [u8; 32],
    /// Set when the result is a compile that failed (rustc's exit status 1): the roles of
    /// the outputs it wrote before it stopped (its dependency file, or none), which are all
    /// a hit writes. Left out of the encoding when unset, so manifests of successful
    /// compiles read the same to older clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,
}

impl crate::manifest::Candidate for Candidate {
    fn result_key(&self) -> CacheKey {
        CacheKey::from_bytes(self.result_key)
    }
}

impl Candidate {
    /// Whether this candidate matches the compile's files, variables and roots.
    pub(crate) fn fits(
        &self,
        cwd: &Path,
        env: &[(OsString, OsString)],
        roots: &Roots,
        digests: &mut Digests,
    ) -> bool {
        self.pinned.iter().all(|p| {
            roots
                .pairs()
                .iter()
                .any(|(placeholder, root)| *p == [placeholder.as_slice(), root].concat())
        }) && self.env.iter().all(|(name, want)| {
            let have = env_value(env, name).map(|v| roots.normalise_os(v));
            have.as_deref() == want.as_deref().map(|w| &w[..])
        }) && self.files.iter().all(|(path, digest)| {
            let path = roots.resolve(path);
            let path = cwd.join(OsStr::from_bytes(&path));
            digests.digest(&path).as_ref().map(|d| &d[..]) == Some(&digest[..])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Candidate as _;
    use serde_bytes::ByteBuf;

    type Manifest = crate::manifest::Manifest<Candidate>;

    /// The newest candidate that fits, as (result key, failed roles).
    fn find(
        manifest: &Manifest,
        cwd: &Path,
        env: &[(OsString, OsString)],
        roots: &Roots,
    ) -> Option<(CacheKey, Option<Vec<String>>)> {
        let mut digests = Digests::default();
        manifest
            .find(|c| c.fits(cwd, env, roots, &mut digests))
            .map(|c| (c.result_key(), c.failed.clone()))
    }

    #[test]
    fn finds_a_candidate_by_files_env_and_roots() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        std::fs::write(cwd.join("lib.rs"), b"fn x() {}").unwrap();
        let roots = Roots::new(&cwd, &[]);
        let digest = *blake3::hash(b"fn x() {}").as_bytes();
        let mut manifest = Manifest::default();
        manifest.add(Candidate {
            files: vec![(
                ByteBuf::from(roots.normalise(cwd.join("lib.rs").as_os_str().as_bytes())),
                ByteBuf::from(digest.to_vec()),
            )],
            env: vec![(
                ByteBuf::from(b"V".to_vec()),
                Some(ByteBuf::from(b"1".to_vec())),
            )],
            pinned: Vec::new(),
            result_key: [9; 32],
            failed: None,
        });
        let manifest = Manifest::decode(&manifest.encode().unwrap());
        let env = vec![(OsString::from("V"), OsString::from("1"))];
        assert_eq!(
            find(&manifest, &cwd, &env, &roots),
            Some((CacheKey::from_bytes([9; 32]), None))
        );
        let other = vec![(OsString::from("V"), OsString::from("2"))];
        assert_eq!(find(&manifest, &cwd, &other, &roots), None);
        std::fs::write(cwd.join("lib.rs"), b"fn y() {}").unwrap();
        assert_eq!(find(&manifest, &cwd, &env, &roots), None);
        assert_eq!(Manifest::decode(b"garbage"), Manifest::default());
    }

    #[test]
    fn a_successful_candidate_encodes_as_before_and_a_failed_one_round_trips() {
        let success = Candidate {
            files: Vec::new(),
            env: Vec::new(),
            pinned: Vec::new(),
            result_key: [1; 32],
            failed: None,
        };
        // Four fields, as clients before stored failures write and read them.
        assert_eq!(rmp_serde::to_vec(&success).unwrap()[0], 0x94);
        let failure = Candidate {
            failed: Some(vec!["dep-info".to_owned()]),
            ..success.clone()
        };
        let mut manifest = Manifest::default();
        manifest.add(success);
        manifest.add(failure);
        assert_eq!(Manifest::decode(&manifest.encode().unwrap()), manifest);
    }
}
