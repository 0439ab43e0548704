//! The path policy's settings, `HOARD_PATHS` and `HOARD_BASEDIRS`, as the binaries see them.
//! The compile pipeline reads them from each compile's own environment (not from hoard's
//! configuration), so that a v1 server running the same command decides as the client would;
//! a value from the config file must therefore be put into that environment, which
//! [`compile_env`] does. `hoard --show-config` asks [`path_mode`] whether the value is one
//! hoard knows, and [`notes`] what the effective policy means for a build.

use std::ffi::{OsStr, OsString};

use hoard_compiler::{BASEDIRS_VAR, PATHS_VAR, PathMode, PathModeError};

use crate::config_file::{self, ConfigFile};

/// The settings the pipeline reads from the compile's environment.
pub const COMPILE_ENV: &[&str] = &[PATHS_VAR, BASEDIRS_VAR];

/// `env` (the process environment, for a compile) with the config file's value of each of
/// [`COMPILE_ENV`] added where `env` does not set it (unset or blank, as
/// [`config_file::setting`] reads it). A config file that cannot be read adds nothing: the
/// wrapper never fails a build over its configuration.
pub fn compile_env(env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
    match config_file::loaded() {
        Ok(file) => with_file_values(env, file),
        Err(_) => env,
    }
}

fn with_file_values(
    mut env: Vec<(OsString, OsString)>,
    file: &ConfigFile,
) -> Vec<(OsString, OsString)> {
    for &name in COMPILE_ENV {
        let set = env
            .iter()
            .any(|(k, v)| k == name && v.to_str().is_some_and(|v| !v.trim().is_empty()));
        if set {
            continue;
        }
        if let Some(value) = file.value(name) {
            env.retain(|(k, _)| k != name);
            env.push((name.into(), value.into()));
        }
    }
    env
}

/// The path mode the settings (environment, else config file) ask for, or the error naming a
/// value hoard does not know (compiles then run as under [`PathMode::Exact`]).
pub fn path_mode() -> Result<PathMode, PathModeError> {
    PathMode::parse(config_file::setting(PATHS_VAR).as_deref().map(OsStr::new))
}

/// What [`PathMode::Shared`] means, for the notes.
const SHARED: &str = "paths under a checkout's roots are relative in keys, so other \
    checkouts and build directories hit; rustc runs with --remap-path-prefix, so debug info \
    names a workspace member's compilation directory `.`, and file!(), panic locations, \
    diagnostics and debug info of other packages (registry, git, a path dependency outside \
    the workspace) name `<package-dir>/src/...` where a plain build names the absolute path \
    (README, \"Path policy\"); HOARD_PATHS=exact turns that off";

/// What [`PathMode::Exact`] means, for the notes.
const EXACT: &str = "nothing is remapped and every path stays in the keys: outputs are \
    byte-identical to a plain build's, hits only at the same paths";

/// What the effective path policy means for a build, as `(setting, sentence)`, for the
/// report: never left for the user to find out from a debugger.
pub fn notes() -> Vec<(&'static str, String)> {
    let mode = match path_mode() {
        Ok(PathMode::Shared) => format!("HOARD_PATHS=shared: {SHARED}"),
        Ok(PathMode::Exact) => format!("HOARD_PATHS=exact: {EXACT}"),
        Err(_) => format!("as under HOARD_PATHS=exact: {EXACT}"),
    };
    let mut notes = vec![(PATHS_VAR, mode)];
    if config_file::setting(BASEDIRS_VAR).is_none() {
        notes.push((
            BASEDIRS_VAR,
            "HOARD_BASEDIRS unset: a C/C++ compile's base directories are its working \
             directory and that directory's enclosing VCS root"
                .to_owned(),
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn the_file_fills_in_what_the_environment_leaves_unset_or_blank() {
        let file = config_file::parse(
            "paths = \"exact\"\nbasedirs = [\"/src\", \"/b\"]\n",
            PathBuf::from("c.toml"),
        )
        .unwrap();
        assert_eq!(
            with_file_values(env(&[("PATH", "/bin"), ("HOARD_PATHS", " ")]), &file),
            env(&[
                ("PATH", "/bin"),
                ("HOARD_PATHS", "exact"),
                ("HOARD_BASEDIRS", "/src:/b")
            ])
        );
        let set = env(&[("HOARD_PATHS", "shared"), ("HOARD_BASEDIRS", "/x")]);
        assert_eq!(with_file_values(set.clone(), &file), set);
        assert_eq!(with_file_values(env(&[]), &ConfigFile::default()), env(&[]));
    }
}
