//! Where a C/C++ compile's paths are made independent of where the checkout and the build
//! directory are ([`Rebase`]). A path under a base directory is written, in everything that
//! goes into a key and in what is stored (the dependency file, the compiler's messages), as a
//! placeholder naming the base relative to the working directory (ccache's `base_dir` makes
//! such paths relative to the working directory too), then the rest of the path. On a hit
//! the placeholder is resolved against this compile's working directory, so two builds whose
//! source and build directories stand in the same relation share keys, and each gets its own
//! paths back. Paths outside every base (system headers, the compiler) stay absolute.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use crate::text::contains;

/// Placeholders are delimited by bytes that never occur in paths or in compiler messages.
const OPEN: u8 = 0x01;
const CLOSE: u8 = 0x02;

/// The bases of one compile, as placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rebase {
    /// The working directory, absolute and normal.
    cwd: Vec<u8>,
    /// `(placeholder, base)`, longest base first.
    bases: Vec<(Vec<u8>, Vec<u8>)>,
    /// Why paths are kept as they are for this compile, when they are.
    kept: Option<&'static str>,
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

/// Bytes that continue a path component: a base followed by one of these is a longer name.
fn continues_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@' | b'~')
}

/// `to` relative to `from`, both absolute and normal: `.` when they are equal.
fn relative(from: &[u8], to: &[u8]) -> Vec<u8> {
    let parts = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let (from, to) = (parts(from), parts(to));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&[u8]> = vec![b".."; from.len() - common];
    out.extend(to[common..].iter().map(Vec::as_slice));
    if out.is_empty() {
        return b".".to_vec();
    }
    out.join(&b'/')
}

/// `relative` resolved lexically against `cwd` (the inverse of [`relative`]).
fn join(cwd: &[u8], relative: &[u8]) -> Vec<u8> {
    let mut out = cwd.to_vec();
    for part in relative.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut.max(1));
                if out == b"/" {
                    out.clear();
                }
            }
            name => {
                out.push(b'/');
                out.extend_from_slice(name);
            }
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

impl Rebase {
    /// The bases `bases` of a compile run in `cwd`. A base or a working directory that cannot
    /// be replaced safely leaves the paths as they are.
    pub(crate) fn new(cwd: &Path, bases: &[std::path::PathBuf]) -> Self {
        let cwd = cwd.as_os_str().as_bytes();
        if !replaceable(cwd) {
            return Self::default();
        }
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for base in bases {
            let base = base.as_os_str().as_bytes();
            let base = base.strip_suffix(b"/").unwrap_or(base);
            if !replaceable(base) || pairs.iter().any(|(_, b)| b == base) {
                continue;
            }
            let mut placeholder = vec![OPEN];
            placeholder.extend(relative(cwd, base));
            placeholder.push(CLOSE);
            pairs.push((placeholder, base.to_vec()));
        }
        pairs.sort_by_key(|(_, base)| std::cmp::Reverse(base.len()));
        Self {
            cwd: cwd.to_vec(),
            bases: pairs,
            kept: None,
        }
    }

    /// The same compile with every path kept as it is, because an output embeds them.
    pub(crate) fn keep(why: &'static str) -> Self {
        Self {
            kept: Some(why),
            ..Self::default()
        }
    }

    /// Why this compile's paths are kept, when they are.
    pub(crate) fn kept(&self) -> Option<&'static str> {
        self.kept
    }

    /// Whether any path is rewritten at all.
    pub(crate) fn active(&self) -> bool {
        !self.bases.is_empty()
    }

    /// Replaces every base in `text` by its placeholder, where it is a whole path prefix
    /// (at the start or after a byte that ends a name, and not followed by more of a name).
    pub(crate) fn normalise(&self, text: &[u8]) -> Vec<u8> {
        if self.bases.is_empty() {
            return text.to_vec();
        }
        let mut out = Vec::with_capacity(text.len());
        let mut i = 0;
        'scan: while i < text.len() {
            if text[i] == b'/' && (i == 0 || !(continues_name(text[i - 1]) || text[i - 1] == b'/'))
            {
                for (placeholder, base) in &self.bases {
                    if text[i..].starts_with(base)
                        && text
                            .get(i + base.len())
                            .is_none_or(|&next| !continues_name(next))
                    {
                        out.extend_from_slice(placeholder);
                        i += base.len();
                        continue 'scan;
                    }
                }
            }
            out.push(text[i]);
            i += 1;
        }
        out
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

    /// Replaces placeholders by this compile's bases (the inverse of [`Self::normalise`]): a
    /// placeholder names its base relative to the working directory.
    pub(crate) fn resolve(&self, text: &[u8]) -> Vec<u8> {
        if !text.contains(&OPEN) || self.cwd.is_empty() {
            return text.to_vec();
        }
        let mut out = Vec::with_capacity(text.len() + 64);
        let mut rest = text;
        while let Some(open) = rest.iter().position(|&b| b == OPEN) {
            let Some(close) = rest[open..].iter().position(|&b| b == CLOSE) else {
                break;
            };
            out.extend_from_slice(&rest[..open]);
            out.extend(join(&self.cwd, &rest[open + 1..open + close]));
            rest = &rest[open + close + 1..];
        }
        out.extend_from_slice(rest);
        out
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
