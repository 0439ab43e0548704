//! What a rustc compile read, as a manifest candidate lists it: from the dependency file
//! rustc wrote, or, for a failed compile that wrote none, from the text of a standalone root
//! ([`super::standalone`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_bytes::ByteBuf;

use super::paths::Roots;
use super::standalone;
use crate::command::env_value;
use crate::depinfo;
use crate::input::{Unrecordable, read_input};

/// Why a compile's inputs could not be listed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputsError {
    /// An input breaks one of ccache's safety rules.
    #[error(transparent)]
    Input(#[from] Unrecordable),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A root that may read other files, which no dependency file lists.
    #[error("{0} may read other files")]
    NotStandalone(PathBuf),
}

/// Source files as (normalised path, digest), and variables as (name, normalised value).
pub(crate) struct Inputs {
    pub files: Vec<(ByteBuf, ByteBuf)>,
    pub env: Vec<(ByteBuf, Option<ByteBuf>)>,
}

/// Every file and variable a dependency file names, digested now; a file changed since
/// `started` (the compile began) is an error, as its digest may not be what rustc read.
pub(crate) fn from_dep_info(
    dep_info: &[u8],
    cwd: &Path,
    env: &[(OsString, OsString)],
    roots: &Roots,
    started: SystemTime,
) -> Result<Inputs, InputsError> {
    let info = depinfo::parse(dep_info);
    let mut files = Vec::with_capacity(info.files.len());
    for file in &info.files {
        let path = cwd.join(OsStr::from_bytes(file));
        let digest = read_input(&path, started)?;
        files.push((
            ByteBuf::from(roots.normalise(file)),
            ByteBuf::from(digest.to_vec()),
        ));
    }
    let names = info.env.into_iter().map(|(name, _)| name);
    Ok(Inputs {
        files,
        env: variables(names, env, roots),
    })
}

/// The root itself and the variables it names, when the root reads nothing else.
pub(crate) fn from_standalone_root(
    source: &OsStr,
    cwd: &Path,
    env: &[(OsString, OsString)],
    roots: &Roots,
    started: SystemTime,
) -> Result<Inputs, InputsError> {
    let path = cwd.join(source);
    let text = std::fs::read(&path).map_err(|source| InputsError::Read {
        path: path.clone(),
        source,
    })?;
    let names =
        standalone::env_reads(&text).ok_or_else(|| InputsError::NotStandalone(path.clone()))?;
    let digest = read_input(&path, started)?;
    Ok(Inputs {
        files: vec![(
            ByteBuf::from(roots.normalise(source.as_bytes())),
            ByteBuf::from(digest.to_vec()),
        )],
        env: variables(names.into_iter(), env, roots),
    })
}

fn variables(
    names: impl Iterator<Item = Vec<u8>>,
    env: &[(OsString, OsString)],
    roots: &Roots,
) -> Vec<(ByteBuf, Option<ByteBuf>)> {
    names
        .map(|name| {
            let value = env_value(env, &name).map(|v| ByteBuf::from(roots.normalise_os(v)));
            (ByteBuf::from(name), value)
        })
        .collect()
}
