//! Stored failures: which failing rustc compiles the cache may keep (see [`candidate`]).
//! Build scripts probe the compiler with compiles meant to fail, on every build; replaying
//! those is what makes a warm build's build scripts cheap.

use std::path::PathBuf;

use hoard_storage::{CacheKey, OutputPath};

use super::candidate::Candidate;
use super::compile::RustCompile;
use super::inputs::{self, InputsError};
use super::key;
use super::outputs::DEP_INFO_ROLE;
use crate::result::CompileResult;
use crate::session::Session;
use crate::text::contains;

/// Why a failed rustc compile may not be stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotStorable {
    /// Not rustc's ordinary error status.
    #[error("exit status {0}")]
    ExitStatus(i32),
    /// What it printed reports an I/O error (a full disk must never be replayed).
    #[error("it reports an I/O error")]
    IoError,
    /// The crate type is linked, which could fail for reasons no key covers.
    #[error("its crate type is linked")]
    Linked,
    /// It may load crates no key covers.
    #[error("it may load crates from outside the sysroot")]
    OutsideSysroot,
    /// It wrote more than its dependency file.
    #[error("it wrote outputs besides its dependency file")]
    WroteOutputs,
    /// Its inputs could not be listed.
    #[error(transparent)]
    Inputs(#[from] InputsError),
    /// Its dependency file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The candidate for a compile that failed, when the failure can be stored:
/// - rustc's ordinary error status, 1 (not an internal compiler error, a signal or a
///   missing program), with no I/O error in what it printed (a full disk must never be
///   replayed);
/// - a crate type rustc builds without the system linker, which could fail for reasons
///   no key covers (a system library not yet installed);
/// - no crate it could load from outside the sysroot (`--extern`, `-L`): these are the
///   probes build scripts compile, and a failing crate of the build itself is left to
///   compile again;
/// - nothing written but, at most, the dependency file, whose list of inputs is then the
///   candidate's; with no dependency file, a root that reads nothing but itself.
pub(super) fn candidate(
    rust: &RustCompile,
    session: &Session<'_>,
    common: &CacheKey,
    result: &CompileResult,
) -> Result<Candidate, NotStorable> {
    let args = &rust.args;
    if result.exit_status != 1 {
        return Err(NotStorable::ExitStatus(result.exit_status));
    }
    if contains(&result.stderr, b"(os error") {
        return Err(NotStorable::IoError);
    }
    if args
        .crate_types
        .iter()
        .any(|t| key::LINKED.contains(&t.as_str()))
    {
        return Err(NotStorable::Linked);
    }
    if !args.externs.is_empty() || !args.lib_dirs.is_empty() {
        return Err(NotStorable::OutsideSysroot);
    }
    let compile = session.compile;
    let written: Vec<&OutputPath> = compile
        .outputs
        .iter()
        .filter(|o| {
            std::fs::metadata(&o.path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= session.started)
        })
        .collect();
    let command = &compile.command;
    let (cwd, env, roots, started) = (&command.cwd, &command.env, &rust.roots, session.started);
    let (inputs, wrote) = match (written.as_slice(), &rust.dep_info) {
        ([], _) => {
            let inputs = inputs::from_standalone_root(&args.source, cwd, env, roots, started)?;
            (inputs, Vec::new())
        }
        ([only], Some(dep_info)) if only.role == DEP_INFO_ROLE => {
            let text = std::fs::read(dep_info).map_err(|source| NotStorable::Read {
                path: dep_info.clone(),
                source,
            })?;
            let inputs = inputs::from_dep_info(&text, cwd, env, roots, started)?;
            (inputs, vec![DEP_INFO_ROLE.to_owned()])
        }
        _ => return Err(NotStorable::WroteOutputs),
    };
    let mut candidate = Candidate {
        files: inputs.files,
        env: inputs.env,
        pinned: Vec::new(),
        result_key: [0; 32],
        failed: Some(wrote),
    };
    candidate.result_key = *key::result_key(common, &candidate).as_bytes();
    Ok(candidate)
}
