//! Path normalisation, so two clones of a project at different absolute paths (and two target
//! directories, and two `CARGO_HOME`s) share hits. A compile has a few roots: its working
//! directory (the workspace root for a member, the package root for a registry crate) and
//! cargo's profile directories (`<target>/debug`, found from `-L dependency=<dir>/deps` and
//! from `OUT_DIR=<dir>/build/<unit>/out`).
//! Before hashing and storing, each root is replaced by a placeholder; on a hit placeholders
//! are replaced by the invoking build's roots. Under `HOARD_PATHS=exact` the same roots are
//! kept as they are ([`Roots::kept`]): hashed into the key, never replaced, so a hit happens
//! only at the same paths.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

// Placeholders are delimited by bytes that never occur in paths or in rustc's output.
use crate::placeholder::{CLOSE, OPEN, replace_placeholders, replace_prefixes};
use crate::text::contains;

/// The roots of one compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Roots {
    /// `(placeholder, root)`, longest root first.
    roots: Vec<(Vec<u8>, Vec<u8>)>,
    /// Roots that cannot be replaced safely (they hold bytes that JSON or a dependency file
    /// would escape): they are hashed as they are, so keys stay correct but path-specific.
    pinned: Vec<Vec<u8>>,
}

/// Whether a root can be found verbatim wherever it is written (JSON, `.d` rules, args).
fn replaceable(root: &[u8]) -> bool {
    root.len() > 1
        && root.first() == Some(&b'/')
        && std::str::from_utf8(root).is_ok()
        && !root.iter().any(|&b| {
            matches!(
                b,
                b'"' | b'\\' | b' ' | b'\t' | b'\n' | b'\r' | b':' | OPEN | CLOSE
            )
        })
}

impl Roots {
    /// The roots of a compile run in `cwd` with cargo's profile directories `profiles`.
    pub(crate) fn new(cwd: &Path, profiles: &[PathBuf]) -> Self {
        Self::build(cwd, profiles, true)
    }

    /// The same roots, none replaced: every one is hashed as it is (as [`Self::pinned`]),
    /// and normalising or resolving changes nothing. For `HOARD_PATHS=exact`, where outputs
    /// keep this build's paths and so must the keys.
    pub(crate) fn kept(cwd: &Path, profiles: &[PathBuf]) -> Self {
        Self::build(cwd, profiles, false)
    }

    /// [`Self::new`] when `replace`, else [`Self::kept`].
    fn build(cwd: &Path, profiles: &[PathBuf], replace: bool) -> Self {
        let mut roots = Vec::new();
        let mut pinned = Vec::new();
        let mut add = |name: String, root: &Path| {
            let bytes = root.as_os_str().as_bytes();
            let bytes = bytes.strip_suffix(b"/").unwrap_or(bytes).to_vec();
            if roots.iter().any(|(_, r)| *r == bytes) || pinned.contains(&bytes) {
                return;
            }
            if replace && replaceable(&bytes) {
                let mut placeholder = vec![OPEN];
                placeholder.extend_from_slice(name.as_bytes());
                placeholder.push(CLOSE);
                roots.push((placeholder, bytes));
            } else {
                pinned.push(bytes);
            }
        };
        add("cwd".to_owned(), cwd);
        for (i, profile) in profiles.iter().enumerate() {
            add(format!("profile{i}"), profile);
        }
        roots.sort_by_key(|(_, root)| std::cmp::Reverse(root.len()));
        Self { roots, pinned }
    }

    /// Roots hashed as they are.
    pub(crate) fn pinned(&self) -> &[Vec<u8>] {
        &self.pinned
    }

    /// `(placeholder, root)` pairs, for checking a candidate recorded elsewhere.
    pub(crate) fn pairs(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.roots
    }

    /// Replaces every root in `text` by its placeholder. A root counts only where it is a
    /// whole path prefix: not preceded or followed by more of a file name.
    pub(crate) fn normalise(&self, text: &[u8]) -> Vec<u8> {
        replace_prefixes(text, &self.roots)
    }

    /// Replaces placeholders by this compile's roots (the inverse of [`Self::normalise`]).
    pub(crate) fn resolve(&self, text: &[u8]) -> Vec<u8> {
        replace_placeholders(text, &self.roots)
    }

    /// Normalises an OS string (an argument or path).
    pub(crate) fn normalise_os(&self, text: &OsStr) -> Vec<u8> {
        self.normalise(text.as_bytes())
    }

    /// Whether `data` contains any root verbatim: an output that embeds the checkout's path
    /// cannot be shared with another checkout.
    pub(crate) fn leaked_in(&self, data: &[u8]) -> Vec<Vec<u8>> {
        self.roots
            .iter()
            .filter(|(_, root)| contains(data, root))
            .map(|(placeholder, root)| [placeholder.as_slice(), root.as_slice()].concat())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roots() -> Roots {
        Roots::new(
            Path::new("/w/app"),
            &[
                PathBuf::from("/w/app/target/debug"),
                PathBuf::from("/t/x/debug"),
            ],
        )
    }

    #[test]
    fn replaces_whole_prefixes_longest_first() {
        let r = roots();
        let text = b"{\"artifact\":\"/w/app/target/debug/deps/libx.rmeta\"} /w/app/src/a.rs /w/apple /t/x/debug/build/o /q/w/app";
        let n = r.normalise(text);
        let shown = String::from_utf8_lossy(&n)
            .replace('\u{1}', "<")
            .replace('\u{2}', ">");
        assert_eq!(
            shown,
            "{\"artifact\":\"<profile0>/deps/libx.rmeta\"} <cwd>/src/a.rs /w/apple <profile1>/build/o /q/w/app"
        );
        assert_eq!(r.resolve(&n), text.to_vec());
    }

    #[test]
    fn odd_roots_are_pinned() {
        let r = Roots::new(Path::new("/w/my app"), &[]);
        assert_eq!(r.pinned(), &[b"/w/my app".to_vec()]);
        assert_eq!(r.normalise(b"/w/my app/x"), b"/w/my app/x".to_vec());
    }

    #[test]
    fn kept_roots_are_all_pinned_and_never_replaced() {
        let r = Roots::kept(
            Path::new("/w/app"),
            &[
                PathBuf::from("/w/app/target/debug"),
                PathBuf::from("/w/app"),
            ],
        );
        assert_eq!(
            r.pinned(),
            &[b"/w/app".to_vec(), b"/w/app/target/debug".to_vec()]
        );
        assert!(r.pairs().is_empty());
        let text = b"/w/app/src/a.rs /w/app/target/debug/deps/x.rmeta";
        assert_eq!(r.normalise(text), text.to_vec());
        assert!(r.leaked_in(text).is_empty());
    }

    #[test]
    fn finds_leaks() {
        assert_eq!(roots().leaked_in(b"xx/w/app/src").len(), 1);
        assert!(roots().leaked_in(b"/w/ap").is_empty());
    }

    proptest! {
        #[test]
        fn resolve_inverts_normalise(text in "[a-z/ .\"{}:]{0,80}") {
            let r = roots();
            prop_assert_eq!(r.resolve(&r.normalise(text.as_bytes())), text.as_bytes().to_vec());
        }
    }
}
