//! The inputs `hoard --explain` notes for a rustc compile, as its keys would hash them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use hoard_storage::CacheKey;

use super::candidate::Candidate;
use super::compile::RustCompile;
use super::key;
use crate::compile::Compile;
use crate::digest::Digests;
use crate::manifest::Manifest;
use crate::record::{Input, note};

/// The inputs `hoard --explain` notes for a rustc compile: the common key's fields, then the
/// files the earlier entry's dep-info listed, with the digests they have now (as the result
/// key notes them). Returns the common key (what manifests are kept under) and whether a
/// stored manifest names a result for the current files.
pub(crate) fn explain_inputs(
    compile: &Compile,
    rust: &RustCompile,
    earlier: &[Input],
    manifest: &impl Fn(&CacheKey) -> Option<Vec<u8>>,
) -> (Option<CacheKey>, Option<CacheKey>) {
    let command = &compile.command;
    let Ok(common) = key::common(rust, command, &compile.state_dir) else {
        return (None, None);
    };
    let mut digests = Digests::memo(&compile.state_dir);
    for file in earlier.iter().filter(|i| i.name == "file") {
        let resolved = rust.roots.resolve(file.value.as_bytes());
        let path = command.cwd.join(OsStr::from_bytes(&resolved));
        note("file", file.value.as_bytes());
        note("digest", &digests.digest(&path).unwrap_or([0; 32]));
    }
    let hit = manifest(&common)
        .map(|bytes| Manifest::<Candidate>::decode(&bytes))
        .and_then(|m| {
            m.find(|c| c.fits(&command.cwd, &command.env, &rust.roots, &mut digests))
                .map(crate::manifest::Candidate::result_key)
        });
    (Some(common), hit)
}
