//! The inputs `hoard --explain` notes for a gcc or clang compile: the keys' fields as the
//! pipeline would hash them, without running the preprocessor or the compiler.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hoard_storage::CacheKey;

use super::candidate::Candidate;
use super::classify::CCompile;
use super::family::system_dirs;
use super::key;
use super::paths::Rebase;
use crate::compile::Compile;
use crate::digest::Digests;
use crate::manifest::Manifest;
use crate::record::Input;

/// Notes the inputs of `compile`'s keys; the headers the earlier entry read (`earlier`) are
/// noted as they are now, as a depend-mode key notes them, so a changed header shows as
/// that header's digest changing. Returns the key a lookup starts from and whether a stored
/// manifest (`manifest` looks one up) names a result for the current files.
pub(crate) fn explain_inputs(
    compile: &Compile,
    c: &CCompile,
    earlier: &[Input],
    manifest: &impl Fn(&CacheKey) -> Option<Vec<u8>>,
) -> (Option<CacheKey>, Option<CacheKey>) {
    let common = key::common(compile, c);
    let Ok(source) = std::fs::read(&c.source_path) else {
        return (None, None);
    };
    let source_digest = *blake3::hash(&source).as_bytes();
    if !compile.language.is_preprocessed() {
        let key = key::unpreprocessed_key(&common, &source_digest);
        return (Some(key), None);
    }
    let manifest_key = key::manifest_key(&common, c, &source_digest);
    let cwd = &compile.command.cwd;
    let mut digests = Digests::memo(&compile.state_dir);
    let includes = files_now(earlier, "include", cwd, &c.rebase, &mut digests);
    let listed: Vec<(&[u8], &[u8; 32])> = includes
        .iter()
        .map(|(path, digest)| (path.as_slice(), digest.as_ref().unwrap_or(&[0; 32])))
        .collect();
    if !listed.is_empty() {
        key::depend_key(&manifest_key, &listed, None, None);
    }
    let system = std::sync::OnceLock::new();
    let system = || system.get_or_init(|| system_dirs(compile, c)).as_deref();
    let hit = manifest(&manifest_key)
        .map(|bytes| Manifest::<Candidate>::decode(&bytes))
        .and_then(|m| {
            m.find(|candidate| candidate.fits(cwd, &c.rebase, &c.search, system, &mut digests))
                .map(crate::manifest::Candidate::result_key)
        });
    (Some(manifest_key), hit)
}

/// The files an earlier record lists under `name` (each followed by its digest), with the
/// digests they have now; a file that cannot be read has none.
fn files_now(
    earlier: &[Input],
    name: &str,
    cwd: &Path,
    rebase: &Rebase,
    digests: &mut Digests,
) -> Vec<(Vec<u8>, Option<[u8; 32]>)> {
    earlier
        .iter()
        .filter(|i| i.name == name)
        .map(|i| {
            let path = rebase.resolve(i.value.as_bytes());
            let path = cwd.join(OsStr::from_bytes(&path));
            (i.value.as_bytes().to_vec(), digests.digest(&path))
        })
        .collect()
}
