//! Keys for gcc and clang compiles, as versioned recipes ([`Recipe`]): the common part
//! (compiler, language, arguments, allow-listed environment, and the working directory when
//! debug information embeds it), then the preprocessor-mode, direct-mode (manifest) and
//! depend-mode keys built on it. Every path that goes into a C key goes in here, rebased
//! ([`Rebase`](super::paths::Rebase)): a path under a base directory is hashed relative to
//! the working directory, so another checkout or build directory shares the key.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use hoard_storage::CacheKey;

use super::classify::CCompile;
use super::paths::Rebase;
use crate::command::env_value;
use crate::compile::Compile;
use crate::recipe::{MissProbe, Recipe};
use crate::text::contains;

const COMMON_RECIPE: &str = "hoard/c/common/v2";
const RESULT_RECIPE: &str = "hoard/c/result/v2";
const MANIFEST_RECIPE: &str = "hoard/c/manifest/v2";
const DEPEND_RECIPE: &str = "hoard/c/depend/v2";

/// A depend-mode miss is counted by a key nothing is stored under (see [`MissProbe`]).
pub(crate) const MISS_PROBE: MissProbe = MissProbe {
    version: DEPEND_RECIPE,
    field: "miss-probe",
};

/// Environment variables that change what gcc or clang produce (include search paths,
/// reproducible timestamps, message language, helper lookup).
pub(crate) const ENV_ALLOW_LIST: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "GCC_COMPARE_DEBUG",
    "COMPILER_PATH",
    "GCC_EXEC_PREFIX",
];

/// The part shared by both keys: what the compiler is and how it is asked to compile.
pub(crate) fn common(compile: &Compile, c: &CCompile) -> [u8; 32] {
    let mut recipe = Recipe::new(COMMON_RECIPE);
    recipe
        .field("identity", &c.compiler.identity)
        .field("driver", c.compiler.driver.as_bytes())
        .field("language", compile.language.name().as_bytes());
    let rebase = &c.rebase;
    for arg in &c.args.hashed {
        recipe.field("arg", &rebase.normalise_arg(arg.as_bytes()));
    }
    if let Some(target) = &c.dependency_target {
        // gcc writes the object path, as given, as the dependency file's target.
        recipe.field("dependency-target", &rebase.normalise(target.as_bytes()));
    }
    if let Some(why) = rebase.kept() {
        // An output embeds the paths: they stay in the key, and `--explain` says why.
        recipe.field("paths-kept", why.why().as_bytes());
    }
    if c.args.debug_info {
        // Debug information embeds the working directory; gcc and clang take it from PWD
        // when that names the same directory. Rebased only when prefix maps cover it.
        let command = &compile.command;
        let pwd = env_value(&command.env, "PWD").map_or(&[][..], OsStr::as_bytes);
        recipe.field(
            "cwd",
            &rebase.normalise_within(command.cwd.as_os_str().as_bytes()),
        );
        recipe.field("pwd", &rebase.normalise_within(pwd));
    }
    for name in ENV_ALLOW_LIST {
        if let Some(value) = env_value(&compile.command.env, name) {
            // CPATH and friends list directories, `:`-separated.
            recipe.field(name, &rebase.normalise_arg(value.as_bytes()));
        }
    }
    recipe.finish()
}

/// Preprocessor-mode key: the common part and the preprocessor's output, its line markers'
/// paths rebased (never a string literal's: an expanded `__FILE__` keeps its key). Output
/// that calls `__builtin_FILE` (C++'s `source_location`) takes the path from the markers,
/// so they are then hashed as they are.
pub(crate) fn result_key(
    common: &[u8; 32],
    rebase: &Rebase,
    preprocessed: &[u8],
    stderr: &[u8],
) -> CacheKey {
    let mut recipe = Recipe::new(RESULT_RECIPE);
    recipe.field("common", common);
    if rebase.active() && !contains(preprocessed, b"__builtin_FILE") {
        recipe.field("preprocessed", &rebase.normalise_markers(preprocessed));
    } else {
        recipe.field("preprocessed", preprocessed);
    }
    recipe.field("preprocessor-stderr", &rebase.normalise(stderr));
    CacheKey::from_bytes(recipe.finish())
}

/// Key for a source the compiler does not preprocess (`.s`, `.i`): the source text is the
/// whole input.
pub(crate) fn unpreprocessed_key(common: &[u8; 32], source_digest: &[u8; 32]) -> CacheKey {
    let mut recipe = Recipe::new(RESULT_RECIPE);
    recipe
        .field("common", common)
        .field("unpreprocessed-source", source_digest);
    CacheKey::from_bytes(recipe.finish())
}

/// Depend-mode key (ccache's depend mode): the manifest key, which covers the compiler, the
/// options and the source, and every file the compile read, by path and content, as its
/// dependency file listed them. No preprocessor output is involved.
/// `pinned` is the working directory when the object embeds a base's path; `answers` the
/// digest of the `__has_include` answers when a file asked (the same files can make another
/// object when a header appears that none of them includes).
pub(crate) fn depend_key(
    manifest_key: &CacheKey,
    includes: &[(&[u8], &[u8; 32])],
    pinned: Option<&[u8]>,
    answers: Option<&[u8; 32]>,
) -> CacheKey {
    let mut recipe = Recipe::new(DEPEND_RECIPE);
    recipe.field("manifest", manifest_key.as_bytes());
    if let Some(cwd) = pinned {
        recipe.field("object-embeds-paths-of", cwd);
    }
    if let Some(answers) = answers {
        recipe.field("has-include-answers", answers);
    }
    for (path, digest) in includes {
        recipe
            .field("include", path)
            .field("include-digest", *digest);
    }
    CacheKey::from_bytes(recipe.finish())
}

/// Direct-mode key, under which the manifest is kept: the common part, the options that
/// steer the preprocessor, and the source by path and content.
pub(crate) fn manifest_key(common: &[u8; 32], c: &CCompile, source_digest: &[u8; 32]) -> CacheKey {
    let mut recipe = Recipe::new(MANIFEST_RECIPE);
    recipe.field("common", common);
    for arg in &c.args.preprocessor {
        recipe.field("preprocessor-arg", &c.rebase.normalise_arg(arg.as_bytes()));
    }
    recipe
        .field("source", &c.rebase.normalise(c.args.source.as_bytes()))
        .field("source-digest", source_digest);
    CacheKey::from_bytes(recipe.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandLine, PipelineConfig};
    use std::ffi::OsString;

    /// The common key of `gcc args` run in `cwd` with `env`, for a source that exists.
    fn common_of(state: &std::path::Path, cwd: &str, args: &str, env: &[(&str, &str)]) -> [u8; 32] {
        let cwd = state.join(cwd);
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::write(cwd.join("a.c"), "int x;\n").unwrap();
        let mut env: Vec<(OsString, OsString)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        env.push(("PATH".into(), "/usr/bin:/bin".into()));
        let cmd = CommandLine {
            program: "gcc".into(),
            args: args.split_whitespace().map(OsString::from).collect(),
            cwd,
            env,
        };
        let (compile, c) =
            super::super::classify::classify(&cmd, &PipelineConfig::new(state)).unwrap();
        common(&compile, &c)
    }

    #[test]
    fn the_object_path_counts_only_when_a_dependency_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            common_of(d, "w", "-c a.c -o x.o", &[]),
            common_of(d, "w", "-c a.c -o y.o", &[])
        );
        assert_ne!(
            common_of(d, "w", "-MD -c a.c -o x.o", &[]),
            common_of(d, "w", "-MD -c a.c -o y.o", &[])
        );
        assert_eq!(
            common_of(d, "w", "-MD -MT t -c a.c -o x.o", &[]),
            common_of(d, "w", "-MD -MT t -c a.c -o y.o", &[])
        );
        assert_eq!(
            common_of(d, "w", "-MD -MF 1.d -c a.c", &[]),
            common_of(d, "w", "-MD -MF 2.d -c a.c", &[])
        );
    }

    #[test]
    fn debug_info_brings_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            common_of(d, "p", "-c a.c", &[]),
            common_of(d, "q", "-c a.c", &[])
        );
        assert_ne!(
            common_of(d, "p", "-g -c a.c", &[]),
            common_of(d, "q", "-g -c a.c", &[])
        );
    }

    #[test]
    fn paths_under_the_working_directory_are_shared_unless_exact() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        let args = |w: &str| format!("-B{}/{w}/inc -c {}/{w}/a.c", d.display(), d.display());
        assert_eq!(
            common_of(&d, "p", &args("p"), &[]),
            common_of(&d, "q", &args("q"), &[])
        );
        let exact = [("HOARD_PATHS", "exact")];
        assert_ne!(
            common_of(&d, "p", &args("p"), &exact),
            common_of(&d, "q", &args("q"), &exact)
        );
    }

    #[test]
    fn only_allow_listed_environment_counts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let base = common_of(d, "w", "-c a.c", &[]);
        assert_eq!(base, common_of(d, "w", "-c a.c", &[("HOME", "/x")]));
        assert_ne!(base, common_of(d, "w", "-c a.c", &[("CPATH", "/x")]));
        assert_ne!(
            base,
            common_of(d, "w", "-c a.c", &[("SOURCE_DATE_EPOCH", "1")])
        );
    }

    #[test]
    fn preprocessor_options_stay_out_of_the_common_part() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            common_of(d, "w", "-DA -c a.c", &[]),
            common_of(d, "w", "-DB -c a.c", &[])
        );
        assert_ne!(
            common_of(d, "w", "-O1 -c a.c", &[]),
            common_of(d, "w", "-O2 -c a.c", &[])
        );
    }

    #[test]
    fn the_version_string_separates_recipes() {
        let common = [1; 32];
        assert_ne!(
            result_key(&common, &Rebase::default(), b"", b""),
            unpreprocessed_key(&common, &[0; 32])
        );
        assert_eq!(
            result_key(&common, &Rebase::default(), b"x", b""),
            result_key(&common, &Rebase::default(), b"x", b"")
        );
        assert_ne!(
            result_key(&common, &Rebase::default(), b"x", b""),
            result_key(&common, &Rebase::default(), b"x", b"w")
        );
    }
}
