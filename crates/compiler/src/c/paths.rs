//! Where a C/C++ compile's paths are made independent of where the checkout and the build
//! directory are ([`Rebase`]). A path under a base directory is written, in everything that
//! goes into a key and in what is stored (the dependency file, the compiler's messages), as a
//! placeholder naming which base it is (the working directory, the checkout's root, or the
//! n-th `HOARD_BASEDIRS` entry), then the rest of the path. On a hit the placeholder is
//! resolved to this compile's base, so each build gets its own paths back. Unlike ccache's
//! `base_dir`, which makes paths relative to the working directory, a placeholder does not
//! encode where the build directory stands relative to the checkout: an out-of-tree build
//! directory shares with an in-tree one. That is sound because whatever embeds a path in an
//! output keeps it in the key (see `classify::rebase` and the pinned candidates). Paths
//! outside every base (system headers, the compiler) stay absolute.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use crate::placeholder::{CLOSE, OPEN, replace_placeholders, replace_prefixes};
use crate::text::contains;

/// Why a compile's paths stay in its key as they are (no sharing across directories): an
/// output embeds them, or the user asked for exact paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathsKept {
    /// `HOARD_PATHS=exact`.
    Exact,
    /// Debug information whose paths no prefix map covers names the build directory.
    DebugInfo,
    /// LTO objects hold compressed code that may embed the paths.
    Lto,
}

impl PathsKept {
    /// The short name the journal counts misses under.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PathsKept::Exact => "paths_exact",
            PathsKept::DebugInfo => "paths_in_debug_info",
            PathsKept::Lto => "paths_in_lto_object",
        }
    }

    /// What `--explain` and the key say.
    pub(crate) fn why(self) -> &'static str {
        match self {
            PathsKept::Exact => "HOARD_PATHS=exact keeps every path",
            PathsKept::DebugInfo => "debug info embeds the build directory",
            PathsKept::Lto => "LTO objects hold compressed code that may embed the paths",
        }
    }
}

/// The bases of one compile, as placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rebase {
    /// `(placeholder, base)`, longest base first.
    bases: Vec<(Vec<u8>, Vec<u8>)>,
    /// Why paths are kept as they are for this compile, when they are.
    kept: Option<PathsKept>,
}

/// Whether `path` is absolute and normal (no `.`, `..`, `//` or trailing `/`), and holds no
/// byte a dependency file, a message or JSON would escape: only such a base can be found
/// verbatim and resolved back byte for byte.
fn replaceable(path: &[u8]) -> bool {
    path.len() > 1
        && path.first() == Some(&b'/')
        && !path.ends_with(b"/")
        && std::str::from_utf8(path).is_ok()
        && !path.windows(2).any(|w| w == b"//")
        && Path::new(std::ffi::OsStr::from_bytes(path))
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path.iter().any(|&b| {
            matches!(
                b,
                b'"' | b'\\' | b' ' | b'\t' | b'\n' | b'\r' | b':' | b'$' | b'#' | OPEN | CLOSE
            )
        })
}

impl Rebase {
    /// The bases `bases` of a compile, in the order [`crate::path_policy::basedirs`] gives
    /// them (the n-th base's placeholder names n). A base that cannot be replaced safely
    /// leaves the paths under it as they are.
    pub(crate) fn new(bases: &[std::path::PathBuf]) -> Self {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (n, base) in bases.iter().enumerate() {
            let base = base.as_os_str().as_bytes();
            let base = base.strip_suffix(b"/").unwrap_or(base);
            if !replaceable(base) || pairs.iter().any(|(_, b)| b == base) {
                continue;
            }
            let mut placeholder = vec![OPEN];
            placeholder.extend(n.to_string().into_bytes());
            placeholder.push(CLOSE);
            pairs.push((placeholder, base.to_vec()));
        }
        pairs.sort_by_key(|(_, base)| std::cmp::Reverse(base.len()));
        Self {
            bases: pairs,
            kept: None,
        }
    }

    /// The same compile with every path kept as it is, because an output embeds them.
    pub(crate) fn keep(why: PathsKept) -> Self {
        Self {
            kept: Some(why),
            ..Self::default()
        }
    }

    /// Why this compile's paths are kept, when they are.
    pub(crate) fn kept(&self) -> Option<PathsKept> {
        self.kept
    }

    /// Whether any path is rewritten at all.
    pub(crate) fn active(&self) -> bool {
        !self.bases.is_empty()
    }

    /// Replaces every base in `text` by its placeholder, where it is a whole path prefix.
    pub(crate) fn normalise(&self, text: &[u8]) -> Vec<u8> {
        if self.bases.is_empty() {
            return text.to_vec();
        }
        replace_prefixes(text, &self.bases)
    }

    /// Normalises a directory by the longest base strictly above it, so a working directory
    /// keeps its place within the checkout (`<root>/build`) where debug information names it.
    pub(crate) fn normalise_within(&self, dir: &[u8]) -> Vec<u8> {
        for (placeholder, base) in &self.bases {
            if let Some(rest) = dir.strip_prefix(base.as_slice())
                && rest.starts_with(b"/")
            {
                return [placeholder.as_slice(), rest].concat();
            }
        }
        dir.to_vec()
    }

    /// Normalises one argument: a path given whole (`/p/inc`), joined to a flag (`-I/p/inc`,
    /// `-include/p/x.h`) or after `=` (`--sysroot=/p`, `-ffile-prefix-map=/p=.`).
    pub(crate) fn normalise_arg(&self, arg: &[u8]) -> Vec<u8> {
        if self.bases.is_empty() {
            return arg.to_vec();
        }
        if arg.starts_with(b"-")
            && let Some(slash) = arg.iter().position(|&b| b == b'/')
            && arg[..slash]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'='))
        {
            let mut out = arg[..slash].to_vec();
            out.extend(self.normalise(&arg[slash..]));
            return out;
        }
        self.normalise(arg)
    }

    /// Normalises the paths of the preprocessor's line markers (`# 12 "/p/a.h" 2`) and only
    /// those: a string literal (an expanded `__FILE__`) keeps its path, and so its key.
    pub(crate) fn normalise_markers(&self, preprocessed: &[u8]) -> Vec<u8> {
        if self.bases.is_empty() {
            return preprocessed.to_vec();
        }
        let mut out = Vec::with_capacity(preprocessed.len());
        for line in preprocessed.split_inclusive(|&b| b == b'\n') {
            match marker_path_span(line) {
                Some((start, end)) => {
                    out.extend_from_slice(&line[..start]);
                    out.extend(self.normalise(&line[start..end]));
                    out.extend_from_slice(&line[end..]);
                }
                None => out.extend_from_slice(line),
            }
        }
        out
    }

    /// Replaces placeholders by this compile's bases (the inverse of [`Self::normalise`]); a
    /// placeholder this compile has no base for is left as it is.
    pub(crate) fn resolve(&self, text: &[u8]) -> Vec<u8> {
        replace_placeholders(text, &self.bases)
    }

    /// The bases that `data` holds verbatim: an output that embeds one is only good at this
    /// path.
    pub(crate) fn leaked_in(&self, data: &[u8]) -> bool {
        self.bases.iter().any(|(_, base)| contains(data, base))
    }
}

/// Where the quoted path of a line marker is, when it has no escapes (`# 1 "a\\b.h"` is left
/// as it is: its bytes are not the path's).
fn marker_path_span(line: &[u8]) -> Option<(usize, usize)> {
    let after = if line.starts_with(b"# ") {
        2
    } else if line.starts_with(b"#line ") {
        6
    } else {
        return None;
    };
    let digits = line[after..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || !line[after + digits..].starts_with(b" \"") {
        return None;
    }
    let start = after + digits + 2;
    let len = line[start..].iter().position(|&b| b == b'"')?;
    let path = &line[start..start + len];
    (!path.contains(&b'\\')).then_some((start, start + len))
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
