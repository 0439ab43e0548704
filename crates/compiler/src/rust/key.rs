//! Keys for rustc compiles. The common key (under which the manifest is kept) covers
//! everything but the source files and `env!` variables: the toolchain and target, the
//! arguments with paths normalised, the `--extern` crates' and static native libraries'
//! contents, the linker for crate types that link, and the environment cargo gives rustc.
//! The result key adds one manifest candidate's files and variables.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hoard_storage::CacheKey;

use super::args::RustArgs;
use super::candidate::Candidate;
use super::compile::RustCompile;
use crate::command::CommandLine;
use crate::digest::{DigestError, Digests};
use crate::path_policy::PathMode;
use crate::program::resolve_program;
use crate::recipe::{MissProbe, Recipe};

const COMMON_RECIPE: &str = "hoard/rust/common/v1";
const RESULT_RECIPE: &str = "hoard/rust/result/v1";
const UNKNOWN_RECIPE: &str = "hoard/rust/unknown-sources/v1";

/// A miss no candidate named is counted by a key nothing is stored under (see
/// [`MissProbe`]).
pub(crate) const MISS_PROBE: MissProbe = MissProbe {
    version: UNKNOWN_RECIPE,
    field: "common",
};

/// Variables cargo sets for rustc, which a proc-macro or build-time code can read without
/// the dependency file saying so.
const ENV_NAMES: &[&str] = &[
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
    "RUSTC_BOOTSTRAP",
];
const ENV_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_"];

/// Crate types whose output is linked by the system linker.
pub(crate) const LINKED: &[&str] = &["bin", "dylib", "cdylib", "proc-macro"];

/// An input of the common key could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// An `--extern` crate, native library or linker could not be digested.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// The common key: what the manifest is kept under.
pub(crate) fn common(
    rust: &RustCompile,
    command: &CommandLine,
    state_dir: &Path,
) -> Result<CacheKey, KeyError> {
    let roots = &rust.roots;
    let cwd = &command.cwd;
    let digests = Digests::persistent(state_dir);
    let args = &rust.args;
    let mut recipe = Recipe::new(COMMON_RECIPE);
    recipe
        .field("rustc", &rust.rustc.identity)
        .field("target", &rust.target_digest)
        .field("source", &roots.normalise_os(&args.source))
        .field("cwd-name", &rust.cwd_name);
    // Only under exact, so the keys of shared compiles are those older clients compute.
    if rust.mode == PathMode::Exact {
        recipe.field("paths", b"exact");
    }
    for pinned in roots.pinned() {
        recipe.field("pinned-root", pinned);
    }
    for arg in &rust.remap {
        recipe.field("remap", &roots.normalise_os(arg));
    }
    for arg in &args.hashed {
        recipe.field("arg", &roots.normalise_os(arg));
    }
    if let Some(dir) = &args.out_dir {
        recipe.field("out-dir", &roots.normalise_os(cwd.join(dir).as_os_str()));
    }
    if let Some(output) = &args.output {
        recipe.field("output", &roots.normalise_os(cwd.join(output).as_os_str()));
    }
    for ext in &args.externs {
        recipe.field("extern", ext.name.as_bytes());
        if let Some(path) = &ext.path {
            let path = cwd.join(path);
            recipe
                .field("extern-path", &roots.normalise_os(path.as_os_str()))
                .field("extern-digest", &digests.digest_file(&path)?);
        }
    }
    for (kind, dir) in &args.lib_dirs {
        recipe
            .field("lib-dir-kind", kind.as_bytes())
            .field("lib-dir", &roots.normalise_os(cwd.join(dir).as_os_str()));
    }
    let links = args
        .crate_types
        .iter()
        .any(|t| LINKED.contains(&t.as_str()));
    for (kind, name) in &args.libs {
        // `-l static=` is bundled into rlibs and staticlibs; every library is read by a link.
        let wanted = kind.starts_with("static") || links;
        if let Some(found) = wanted.then(|| find_native(args, cwd, kind, name)).flatten() {
            recipe
                .field("native-lib", &roots.normalise_os(found.as_os_str()))
                .field("native-digest", &digests.digest_file(&found)?);
        }
    }
    if links {
        let linker = args.linker.as_deref().unwrap_or(OsStr::new("cc"));
        recipe.field("linker", linker.as_bytes());
        if let Some(found) = resolve_program(linker, cwd, &command.env)
            && let Ok(canonical) = found.canonicalize()
        {
            recipe.field("linker-digest", &digests.digest_file(&canonical)?);
        }
    }
    for (name, value) in &command.env {
        let Some(text) = name.to_str() else { continue };
        if ENV_NAMES.contains(&text) || ENV_PREFIXES.iter().any(|p| text.starts_with(p)) {
            recipe
                .field("env", name.as_bytes())
                .field("env-value", &roots.normalise_os(value));
        }
    }
    Ok(CacheKey::from_bytes(recipe.finish()))
}

/// The file a `-l kind=name` resolves to in the `-L` directories, if any: `lib<name>.a` for
/// static libraries, else `lib<name>.so` or `lib<name>.a`.
fn find_native(args: &RustArgs, cwd: &Path, kind: &str, name: &str) -> Option<PathBuf> {
    let name = name.split(':').next().unwrap_or(name);
    let files: Vec<String> = if kind.starts_with("static") {
        vec![format!("lib{name}.a"), format!("{name}.lib")]
    } else {
        vec![format!("lib{name}.so"), format!("lib{name}.a")]
    };
    args.lib_dirs
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "native" | "all"))
        .flat_map(|(_, dir)| files.iter().map(move |f| cwd.join(dir).join(f)))
        .find(|p| p.is_file())
}

/// The result key of a candidate found under `common`.
pub(crate) fn result_key(common: &CacheKey, candidate: &Candidate) -> CacheKey {
    let mut recipe = Recipe::new(RESULT_RECIPE);
    recipe.field("common", common.as_bytes());
    for (path, digest) in &candidate.files {
        recipe.field("file", path).field("digest", digest);
    }
    for (name, value) in &candidate.env {
        recipe.field("env", name);
        match value {
            Some(value) => recipe.field("set", value),
            None => recipe.field("unset", b""),
        };
    }
    for pinned in &candidate.pinned {
        recipe.field("pinned", pinned);
    }
    // Only when set, so the keys of successful compiles are those older clients compute.
    if let Some(roles) = &candidate.failed {
        recipe.field("failed", b"");
        for role in roles {
            recipe.field("wrote", role.as_bytes());
        }
    }
    CacheKey::from_bytes(recipe.finish())
}
