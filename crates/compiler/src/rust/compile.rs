//! Classifying a rustc command: its arguments ([`super::args`]), its outputs named the way
//! rustc names them ([`super::outputs`]), the toolchain's identity, and the roots whose
//! paths are made relative so clones at other paths share hits ([`super::paths`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::args::{self, RustArgs};
use super::identity::{self, Rustc};
use super::outputs;
use super::paths::Roots;
use crate::command::{CommandLine, PipelineConfig, env_value};
use crate::compile::Compile;
use crate::digest::Digests;
use crate::language::Language;
use crate::program::resolve_program;
use crate::reason::NonCacheable;

/// A rustc compile the pipeline can serve from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RustCompile {
    /// The rustc binary as found (the proxy or a toolchain's).
    pub rustc_path: PathBuf,
    pub rustc: Rustc,
    /// Digest of the target: its name or spec file, and its standard library.
    pub target_digest: [u8; 32],
    pub args: RustArgs,
    pub roots: Roots,
    /// `--remap-path-prefix` options added before the command's own, so outputs do not embed
    /// this checkout's paths.
    pub remap: Vec<OsString>,
    /// What the working directory is remapped to (part of the key: it is in the outputs).
    pub cwd_name: Vec<u8>,
    /// The dependency file rustc writes, if requested.
    pub dep_info: Option<PathBuf>,
    /// The arguments with `@file`s expanded.
    pub expanded: Vec<OsString>,
}

/// The rustc a command runs, if the program is rustc: named `rustc` itself (cargo passes the
/// toolchain's rustc, or `rustc` from `PATH`, the rustup proxy).
pub(crate) fn rustc_program(
    program: &OsStr,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> Option<PathBuf> {
    let named = Path::new(program).file_name()?;
    if named != "rustc" {
        return None;
    }
    resolve_program(program, cwd, env)
}

/// Classifies a rustc command. Probes and uncacheable compiles are told apart from the
/// arguments alone, before anything is run or read.
pub(crate) fn classify(
    cmd: &CommandLine,
    config: &PipelineConfig,
    rustc_path: PathBuf,
) -> Result<(Compile, RustCompile), NonCacheable> {
    let expanded = args::expand_argfiles(&cmd.args, &cmd.cwd)?;
    let parsed = args::parse(&expanded)?;
    let outputs = outputs::outputs(&parsed, &cmd.cwd)?;
    let compile = Compile::new(
        cmd.clone(),
        outputs,
        Language::Rust,
        config.state_dir.clone(),
    )?;
    let unsupported = |e: identity::IdentityError| NonCacheable::UnsupportedCompiler {
        program: cmd.program.to_string_lossy().into_owned(),
        detail: e.to_string(),
    };
    let rustc = identity::identify(&rustc_path, &cmd.cwd, &cmd.env, &config.state_dir)
        .map_err(unsupported)?;
    let digests = Digests::persistent(&config.state_dir);
    let target_digest = identity::target_digest(
        &rustc,
        parsed.target.as_deref(),
        &cmd.cwd,
        &digests,
        &config.state_dir,
    )
    .map_err(unsupported)?;
    let profiles = profile_dirs(&parsed, cmd);
    let roots = Roots::new(&cmd.cwd, &profiles);
    let (remap, cwd_name) = remap_args(&cmd.cwd, &parsed.source, &profiles);
    let dep_info = compile.output(outputs::DEP_INFO_ROLE).map(PathBuf::from);
    let rust = RustCompile {
        rustc_path,
        rustc,
        target_digest,
        args: parsed,
        roots,
        remap,
        cwd_name,
        dep_info,
        expanded,
    };
    Ok((compile, rust))
}

/// cargo's profile directories (`<target>[/<triple>]/<profile>`) a compile writes under or
/// reads from: the parents of `-L dependency=.../deps`, and the directory `OUT_DIR` is in
/// (`<profile>/build/<unit>/out`; a build script's probe compiles have only that).
fn profile_dirs(args: &RustArgs, cmd: &CommandLine) -> Vec<PathBuf> {
    let mut profiles: Vec<PathBuf> = Vec::new();
    let from_deps = args
        .lib_dirs
        .iter()
        .filter(|(kind, _)| kind == "dependency")
        .map(|(_, dir)| cmd.cwd.join(dir))
        .filter(|dir| dir.ends_with("deps"))
        .filter_map(|dir| dir.parent().map(Path::to_path_buf));
    let from_out_dir = env_value(&cmd.env, "OUT_DIR")
        .map(|dir| cmd.cwd.join(dir))
        .filter(|dir| dir.ends_with("out"))
        .and_then(|dir| {
            let build = dir.parent()?.parent()?;
            build
                .ends_with("build")
                .then(|| build.parent().map(Path::to_path_buf))?
        });
    for profile in from_deps.chain(from_out_dir) {
        if !profiles.contains(&profile) {
            profiles.push(profile);
        }
    }
    profiles
}

/// The `--remap-path-prefix` options that keep this checkout's paths out of the outputs,
/// after cargo's `-Z trim-paths` design: a workspace member (its crate root is given relative
/// to the workspace root, which is the working directory) maps the root to `.`; any other
/// package (registry, git, a path outside the workspace; cargo runs rustc in its root) maps
/// its root to its directory name (`serde-1.0.228`). Profile directories outside the working
/// directory map to `target/<profile>`, for files generated into `OUT_DIR`.
fn remap_args(cwd: &Path, source: &OsStr, profiles: &[PathBuf]) -> (Vec<OsString>, Vec<u8>) {
    let cwd_name: Vec<u8> = if Path::new(source).is_absolute() {
        cwd.file_name()
            .map_or(b".".to_vec(), |n| n.as_bytes().to_vec())
    } else {
        b".".to_vec()
    };
    let mut remap = Vec::new();
    let mut push = |from: &Path, to: &[u8]| {
        let mut arg = OsString::from("--remap-path-prefix=");
        arg.push(from);
        arg.push("=");
        arg.push(OsStr::from_bytes(to));
        remap.push(arg);
    };
    push(cwd, &cwd_name);
    for profile in profiles.iter().filter(|p| !p.starts_with(cwd)) {
        let name = profile.file_name().map_or(&b"debug"[..], OsStr::as_bytes);
        push(profile, &[&b"target/"[..], name].concat());
    }
    (remap, cwd_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_map_to_dot_and_packages_to_their_directory() {
        let (remap, name) = remap_args(
            Path::new("/w/app"),
            OsStr::new("src/lib.rs"),
            &[PathBuf::from("/w/app/target/debug")],
        );
        assert_eq!(name, b".");
        assert_eq!(remap, vec![OsString::from("--remap-path-prefix=/w/app=.")]);
        let (remap, name) = remap_args(
            Path::new("/h/registry/src/idx/serde-1.0.1"),
            OsStr::new("/h/registry/src/idx/serde-1.0.1/src/lib.rs"),
            &[PathBuf::from("/t/debug")],
        );
        assert_eq!(name, b"serde-1.0.1");
        assert_eq!(
            remap,
            vec![
                OsString::from("--remap-path-prefix=/h/registry/src/idx/serde-1.0.1=serde-1.0.1"),
                OsString::from("--remap-path-prefix=/t/debug=target/debug"),
            ]
        );
    }
}
