//! What a C-family manifest candidate lists: every file the compile read (as the
//! preprocessor's line markers or the dependency file name it) and that file's digest. A
//! candidate whose files all still have those digests names the result to fetch, so a hit
//! needs no preprocessor run. This is where include paths go into a key (depend mode's).
//! A `__has_include` question the files ask ([`super::probe`]) is recorded with its answer
//! in every directory that could hold the header, and checked again like a digest.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hoard_storage::CacheKey;
use serde::{Deserialize, Serialize};

use super::paths::Rebase;
use super::probe::{self, Question};
use super::search::SearchPath;
use crate::digest::Digests;
use crate::input::{Unrecordable, read_input_with};

/// One earlier compile: the files it read and the result key it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Candidate {
    includes: Vec<Include>,
    #[serde(with = "serde_bytes")]
    result_key: [u8; 32],
    /// The working directory, when the object embeds a base directory's path (an expanded
    /// `__FILE__`): the result is only good for a compile in that directory.
    #[serde(default)]
    pinned: Option<serde_bytes::ByteBuf>,
    /// Whether a listed file uses `__has_include` in a way [`probe`] cannot read (or the
    /// compiler's own directories are unknown), so its answers cannot be checked: such a
    /// candidate never fits, and the compile is keyed by the preprocessor's output instead.
    #[serde(default)]
    probes: bool,
    /// The `__has_include` questions the listed files ask, each with its answers: the
    /// candidate fits only while every answer is the same.
    #[serde(default)]
    asks: Vec<Ask>,
}

/// One `__has_include` question and whether a file of that name is in each directory that
/// could answer it, by position (so a second checkout compares equal): for a quoted name the
/// asking file's directory first, then the compile's search path, then the compiler's own
/// directories. Those include every directory gcc or clang looks in, so equal answers mean
/// an equal verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ask {
    /// The listed file that asks (by its index in the list); `None` for the source, whose
    /// directory heads the search path anyway.
    asker: Option<u32>,
    quoted: bool,
    #[serde(with = "serde_bytes")]
    name: Vec<u8>,
    found: Vec<bool>,
}

impl Ask {
    /// Whether `self.name` is a file in each directory, `asker` being the asking file's path.
    fn answers(&self, asker: Option<&Path>, search: &SearchPath, system: &[PathBuf]) -> Vec<bool> {
        let own = asker
            .filter(|_| self.quoted)
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        let name = Path::new(OsStr::from_bytes(&self.name));
        own.iter()
            .chain(search.dirs())
            .chain(system)
            .map(|dir| dir.join(name).is_file())
            .collect()
    }
}

/// A file the preprocessor read, by the path it printed, rebased (relative paths are
/// relative to the compile's working directory) and its content's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Include {
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
    #[serde(with = "serde_bytes")]
    digest: [u8; 32],
}

/// Where a compile ran and how its paths are rebased, for building its candidate.
pub(crate) struct Site<'a> {
    /// The working directory.
    pub cwd: &'a Path,
    /// The compile's bases.
    pub rebase: &'a Rebase,
    /// When the compile started (a file modified since is not recorded).
    pub started: SystemTime,
    /// The working directory, when the object embeds a base's path.
    pub pinned: Option<&'a [u8]>,
    /// Where the preprocessor searched for headers.
    pub search: &'a SearchPath,
    /// The source's text (a macro a header defines may ask from it).
    pub source: &'a [u8],
    /// The compiler's own include directories, asked for only when a file asks
    /// `__has_include`; `None` when unknown.
    pub system: &'a (dyn Fn() -> Option<&'a [PathBuf]> + Sync),
}

/// Builds the candidate for a compile whose preprocessor read `includes`, checking each file
/// against the safety rules.
pub(crate) fn candidate(
    site: &Site<'_>,
    includes: &[Vec<u8>],
    result_key: &CacheKey,
) -> Result<Candidate, Unrecordable> {
    candidate_keyed(site, includes, |_, _| *result_key)
}

/// As [`candidate`], for a result key that depends on the includes' digests and the digest
/// of the `__has_include` answers, if any (depend mode).
pub(crate) fn candidate_keyed(
    site: &Site<'_>,
    includes: &[Vec<u8>],
    result_key: impl FnOnce(&[(&[u8], &[u8; 32])], Option<&[u8; 32]>) -> CacheKey,
) -> Result<Candidate, Unrecordable> {
    let mut texts = Vec::with_capacity(includes.len() + 1);
    let mut absolutes = Vec::with_capacity(includes.len());
    let includes = includes
        .iter()
        .map(|path| {
            let absolute = site.cwd.join(OsStr::from_bytes(path));
            let digest = read_input_with(&absolute, site.started, |bytes| {
                texts.push(bytes.to_vec());
            })?;
            absolutes.push(absolute);
            Ok(Include {
                path: site.rebase.normalise(path),
                digest,
            })
        })
        .collect::<Result<Vec<Include>, Unrecordable>>()?;
    texts.push(site.source.to_vec());
    let asks = asks(site, &absolutes, &texts);
    let listed: Vec<(&[u8], &[u8; 32])> = includes
        .iter()
        .map(|i| (i.path.as_slice(), &i.digest))
        .collect();
    let answers = asks
        .as_ref()
        .filter(|asks| !asks.is_empty())
        .map(|asks| answers_digest(asks));
    let result_key = *result_key(&listed, answers.as_ref()).as_bytes();
    Ok(Candidate {
        includes,
        result_key,
        pinned: site.pinned.map(serde_bytes::ByteBuf::from),
        probes: asks.is_none(),
        asks: asks.unwrap_or_default(),
    })
}

/// A digest of every question and its answers, for a key: what the compile read depends on
/// them as much as on the files listed.
fn answers_digest(asks: &[Ask]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for ask in asks {
        let asker = ask.asker.map_or(u64::MAX, u64::from);
        hasher.update(&asker.to_le_bytes());
        hasher.update(&[u8::from(ask.quoted)]);
        hasher.update(&(ask.name.len() as u64).to_le_bytes());
        hasher.update(&ask.name);
        hasher.update(&(ask.found.len() as u64).to_le_bytes());
        hasher.update(&ask.found.iter().map(|&f| u8::from(f)).collect::<Vec<u8>>());
    }
    *hasher.finalize().as_bytes()
}

/// The questions the files ask (`texts`: the listed files at `absolutes`, then the source)
/// with their answers now; `None` when they cannot be read or answered.
fn asks(site: &Site<'_>, absolutes: &[PathBuf], texts: &[Vec<u8>]) -> Option<Vec<Ask>> {
    let files: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
    let questions = probe::questions(&files)?;
    if questions.is_empty() {
        return Some(Vec::new());
    }
    let system = (site.system)()?;
    questions
        .into_iter()
        .map(|(at, Question { name, quoted })| {
            let asker = absolutes.get(at);
            let mut ask = Ask {
                asker: asker.map(|_| u32::try_from(at)).transpose().ok()?,
                quoted,
                name,
                found: Vec::new(),
            };
            ask.found = ask.answers(asker.map(PathBuf::as_path), site.search, system);
            Some(ask)
        })
        .collect()
}

/// The files a compile read, from the dependency file it wrote (`-MD`), in order, without
/// the source itself (already part of the key).
pub(crate) fn includes_from_depfile(text: &[u8], source: &[u8]) -> Vec<Vec<u8>> {
    // gcc and clang wrap long rules with backslash-newline; rustc never does, and the
    // shared parser reads one rule per line.
    let mut joined = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        let after = &rest[at + 1..];
        let newline = if after.starts_with(b"\r\n") {
            Some(2)
        } else if after.starts_with(b"\n") {
            Some(1)
        } else {
            None
        };
        if let Some(n) = newline {
            joined.extend_from_slice(&rest[..at]);
            joined.push(b' ');
            rest = &after[n..];
        } else {
            joined.extend_from_slice(&rest[..=at]);
            rest = after;
        }
    }
    joined.extend_from_slice(rest);
    crate::depinfo::parse(&joined)
        .files
        .into_iter()
        .filter(|path| path.as_slice() != source)
        .collect()
}

/// The files the preprocessor read, from the line markers in its output (`# 12 "path" 1`),
/// in order of first appearance, as printed. Pseudo-files (`<built-in>`, `<command-line>`),
/// the working-directory marker gcc writes with `-g` (`"/dir//"`) and `skip` (the source,
/// already part of the key) are left out.
pub(crate) fn includes_from_preprocessed(output: &[u8], skip: &[u8]) -> Vec<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut includes = Vec::new();
    for line in output.split(|&b| b == b'\n') {
        let Some(path) = marker_path(line) else {
            continue;
        };
        if path.is_empty()
            || path == skip
            || (path.starts_with(b"<") && path.ends_with(b">"))
            || path.ends_with(b"//")
        {
            continue;
        }
        if seen.insert(path.clone()) {
            includes.push(path);
        }
    }
    includes
}

/// The unescaped path of a line marker (`# 1 "a\\b.h"` or `#line 1 "a.h"`).
fn marker_path(line: &[u8]) -> Option<Vec<u8>> {
    let rest = line
        .strip_prefix(b"# ")
        .or_else(|| line.strip_prefix(b"#line "))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let quoted = rest[digits..].strip_prefix(b" \"")?;
    let mut path = Vec::new();
    let mut bytes = quoted.iter().copied();
    while let Some(byte) = bytes.next() {
        match byte {
            b'"' => return Some(path),
            b'\\' => {
                let escaped = bytes.next()?;
                if (b'0'..=b'7').contains(&escaped) {
                    // Octal escapes for unprintable bytes: up to three digits.
                    let mut value = u32::from(escaped - b'0');
                    let mut lookahead = bytes.clone();
                    for _ in 0..2 {
                        match lookahead.next() {
                            Some(d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                bytes.next();
                            }
                            _ => break,
                        }
                    }
                    path.push((value & 0xff) as u8);
                } else {
                    path.push(escaped);
                }
            }
            other => path.push(other),
        }
    }
    None
}

#[cfg(test)]
#[path = "candidate_tests.rs"]
mod tests;

impl crate::manifest::Candidate for Candidate {
    fn result_key(&self) -> CacheKey {
        CacheKey::from_bytes(self.result_key)
    }
}

impl Candidate {
    /// Whether every file this candidate lists still has its recorded digest (rebased
    /// paths resolved for this compile, relative paths relative to `cwd`), and a result
    /// that embeds its directory's paths is this directory's.
    /// No file of the same name may have appeared in a directory searched before, and every
    /// `__has_include` question must get the answers it got (the compiler's own directories,
    /// from `system`, are looked up only then).
    pub(crate) fn fits<'s>(
        &self,
        cwd: &Path,
        rebase: &Rebase,
        search: &SearchPath,
        system: impl FnOnce() -> Option<&'s [PathBuf]>,
        digests: &mut Digests,
    ) -> bool {
        if self.probes
            || self
                .pinned
                .as_ref()
                .is_some_and(|pinned| pinned.as_slice() != cwd.as_os_str().as_bytes())
        {
            return false;
        }
        let resolved = |include: &Include| {
            let path = rebase.resolve(&include.path);
            cwd.join(OsStr::from_bytes(&path))
        };
        let files_fit = self.includes.iter().all(|include| {
            let path = resolved(include);
            digests.digest(&path) == Some(include.digest) && !search.shadowed(&path)
        });
        if !files_fit || self.asks.is_empty() {
            return files_fit;
        }
        let Some(system) = system() else {
            return false;
        };
        self.asks.iter().all(|ask| {
            let asker = match ask.asker {
                None => None,
                Some(at) => match self.includes.get(at as usize) {
                    Some(include) => Some(resolved(include)),
                    None => return false,
                },
            };
            ask.answers(asker.as_deref(), search, system) == ask.found
        })
    }

    /// The same candidate with its result stored under `result_key` instead.
    pub(crate) fn keyed_by(self, result_key: CacheKey) -> Self {
        Self {
            result_key: *result_key.as_bytes(),
            ..self
        }
    }

    /// Whether the compile this candidate records must be keyed by the preprocessor's output
    /// (see [`Candidate::probes`]).
    pub(crate) fn needs_preprocessor(&self) -> bool {
        self.probes
    }
}
