//! Classifying a rustc command: its arguments ([`super::args`]), its outputs named the way
//! rustc names them ([`super::outputs`]), the toolchain's identity, and the roots whose
//! paths are made relative so clones at other paths share hits ([`super::paths`]), with the
//! remapping that keeps those paths out of the outputs; or, under `HOARD_PATHS=exact`
//! ([`PathMode`]), neither: the paths stay in the key and rustc runs as cargo asked.

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
use crate::path_policy::PathMode;
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
    /// The path policy the compile's environment asks for (`HOARD_PATHS`).
    pub mode: PathMode,
    pub roots: Roots,
    /// `--remap-path-prefix` options added before the command's own, so outputs do not embed
    /// this checkout's paths; none under [`PathMode::Exact`].
    pub remap: Vec<OsString>,
    /// What the working directory is called in the outputs (part of the key): its remapped
    /// name, or under [`PathMode::Exact`] the directory itself.
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
    let mode = path_mode(&cmd.env);
    let (roots, remap, cwd_name) = path_policy(mode, &cmd.cwd, &parsed.source, &profiles);
    let dep_info = compile.output(outputs::DEP_INFO_ROLE).map(PathBuf::from);
    let rust = RustCompile {
        rustc_path,
        rustc,
        target_digest,
        args: parsed,
        mode,
        roots,
        remap,
        cwd_name,
        dep_info,
        expanded,
    };
    Ok((compile, rust))
}

/// The [`PathMode`] `env` asks for. A value hoard does not know is logged (the build goes on
/// under [`PathMode::Exact`], which costs hits but never an output byte).
fn path_mode(env: &[(OsString, OsString)]) -> PathMode {
    if let Err(e) = PathMode::parse(env_value(env, crate::path_policy::PATHS_VAR)) {
        tracing::warn!("{e}; compiling as under HOARD_PATHS=exact");
    }
    PathMode::from_env(env)
}

/// The roots, remapping options and working directory name of a compile under `mode`:
/// [`PathMode::Shared`] replaces the roots by placeholders in keys and remaps them in the
/// outputs ([`remap_args`]); [`PathMode::Exact`] keeps them in the key and remaps nothing, so
/// every output is what a plain `cargo build` writes.
fn path_policy(
    mode: PathMode,
    cwd: &Path,
    source: &OsStr,
    profiles: &[PathBuf],
) -> (Roots, Vec<OsString>, Vec<u8>) {
    match mode {
        PathMode::Shared => {
            let (remap, cwd_name) = remap_args(cwd, source, profiles);
            (Roots::new(cwd, profiles), remap, cwd_name)
        }
        PathMode::Exact => (
            Roots::kept(cwd, profiles),
            Vec::new(),
            cwd.as_os_str().as_bytes().to_vec(),
        ),
    }
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
    fn exact_mode_remaps_nothing_and_keeps_every_root_in_the_key() {
        let cwd = Path::new("/h/registry/src/idx/serde-1.0.1");
        let source = OsStr::new("/h/registry/src/idx/serde-1.0.1/src/lib.rs");
        let profiles = [PathBuf::from("/t/debug")];
        let (roots, remap, name) = path_policy(PathMode::Exact, cwd, source, &profiles);
        assert!(remap.is_empty(), "{remap:?}");
        assert_eq!(name, cwd.as_os_str().as_bytes());
        assert!(roots.pairs().is_empty());
        assert_eq!(
            roots.pinned(),
            &[cwd.as_os_str().as_bytes().to_vec(), b"/t/debug".to_vec()]
        );
        assert_eq!(roots.normalise_os(source), source.as_bytes());

        let (roots, remap, name) = path_policy(PathMode::Shared, cwd, source, &profiles);
        assert_eq!(remap.len(), 2);
        assert_eq!(name, b"serde-1.0.1");
        assert!(roots.pinned().is_empty());
        assert!(!roots.normalise_os(source).starts_with(b"/h/"));
    }

    /// The common key of a cargo-like compile of a path dependency checked out at `root`
    /// (run in `root/lib`, writing to `root/target/debug`) under `mode`.
    fn key_at(mode: PathMode, root: &Path, state_dir: &Path) -> hoard_storage::CacheKey {
        let cwd = root.join("lib");
        let deps = root.join("target/debug/deps");
        let text = |p: &Path| p.display().to_string();
        let args: Vec<OsString> = [
            "--crate-name",
            "lib",
            "--edition=2021",
            &text(&cwd.join("src/lib.rs")),
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "-C",
            "debuginfo=2",
            "--out-dir",
            &text(&deps),
            "-L",
            &format!("dependency={}", text(&deps)),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let parsed = args::parse(&args).unwrap();
        let profiles = [root.join("target/debug")];
        let (roots, remap, cwd_name) = path_policy(mode, &cwd, &parsed.source, &profiles);
        let rust = RustCompile {
            rustc_path: PathBuf::from("/usr/bin/rustc"),
            rustc: Rustc {
                identity: [7; 32],
                host: "x86_64-unknown-linux-gnu".to_owned(),
                sysroot: PathBuf::from("/sysroot"),
            },
            target_digest: [8; 32],
            args: parsed,
            mode,
            roots,
            remap,
            cwd_name,
            dep_info: None,
            expanded: args.clone(),
        };
        let command = CommandLine {
            program: "rustc".into(),
            args,
            cwd,
            env: Vec::new(),
        };
        super::super::key::common(&rust, &command, state_dir).unwrap()
    }

    #[test]
    fn exact_keys_differ_by_checkout_and_from_shared_ones() {
        let state = tempfile::tempdir().unwrap();
        let (a, b) = (Path::new("/one/co"), Path::new("/two/elsewhere"));
        let shared = key_at(PathMode::Shared, a, state.path());
        assert_eq!(shared, key_at(PathMode::Shared, b, state.path()));
        let exact = key_at(PathMode::Exact, a, state.path());
        assert_eq!(exact, key_at(PathMode::Exact, a, state.path()));
        assert_ne!(exact, key_at(PathMode::Exact, b, state.path()));
        assert_ne!(exact, shared);
    }

    #[test]
    fn an_unknown_mode_compiles_exact() {
        let env = [(OsString::from("HOARD_PATHS"), OsString::from("relative"))];
        assert_eq!(path_mode(&env), PathMode::Exact);
        assert_eq!(path_mode(&[]), PathMode::Shared);
    }

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
