//! What the wrapper was asked to run and the settings it runs with: the command line, the
//! pipeline's configuration, and reading one variable of the command's environment.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What the wrapper was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The compiler as named (`gcc`, `/usr/bin/clang++`, `./cc`).
    pub program: OsString,
    /// The arguments after the program.
    pub args: Vec<OsString>,
    /// The working directory the command runs in.
    pub cwd: PathBuf,
    /// The whole environment the command runs with; a later pair overrides an earlier one.
    pub env: Vec<(OsString, OsString)>,
}

/// Settings of the pipeline that are not part of the command. Build it with
/// [`PipelineConfig::new`]; more settings may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineConfig {
    /// Where hoard keeps its own state, e.g. `HOARD_DIR`; compiler identities are cached under
    /// `compilers/` there.
    pub state_dir: PathBuf,
    /// Whether to use and keep manifests so a hit needs no preprocessor run.
    pub direct_mode: bool,
}

impl PipelineConfig {
    /// The default configuration (direct mode on) keeping state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            direct_mode: true,
        }
    }
}

/// The value `env` gives `name`: the last assignment wins, as for a spawned process.
pub(crate) fn env_value(env: &[(OsString, OsString)], name: impl AsRef<[u8]>) -> Option<&OsStr> {
    let name = name.as_ref();
    env.iter()
        .rev()
        .find(|(k, _)| k.as_bytes() == name)
        .map(|(_, v)| v.as_os_str())
}
