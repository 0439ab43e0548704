//! Direct mode's manifests (ccache's design). A manifest, stored under the direct-mode key,
//! lists candidate results, each with every file the preprocessor read and that file's digest.
//! A candidate whose files all still have those digests names the result to fetch, so a hit
//! needs no preprocessor run.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hoard_storage::CacheKey;

use crate::digest_table::DigestTable;
use serde::{Deserialize, Serialize};

/// Bumped whenever the encoding changes; a manifest of another version is ignored.
const MANIFEST_VERSION: u32 = 1;
/// Candidates kept per manifest, newest first: enough for a few configurations or branches of
/// one source, small enough that a lookup stays cheap.
pub(crate) const MAX_CANDIDATES: usize = 16;

/// All candidates known for one direct-mode key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    version: u32,
    candidates: Vec<Candidate>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            version: MANIFEST_VERSION,
            candidates: Vec::new(),
        }
    }
}

/// One earlier compile: the files it read and the result key it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Candidate {
    includes: Vec<Include>,
    #[serde(with = "serde_bytes")]
    result_key: [u8; 32],
}

/// A file the preprocessor read, by the path it printed (relative paths are relative to the
/// compile's working directory) and its content's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Include {
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
    #[serde(with = "serde_bytes")]
    digest: [u8; 32],
}

impl Manifest {
    /// Decodes stored bytes; garbage or another version reads as an empty manifest.
    pub(crate) fn decode(bytes: &[u8]) -> Self {
        rmp_serde::from_slice::<Self>(bytes)
            .ok()
            .filter(|m| m.version == MANIFEST_VERSION)
            .unwrap_or_default()
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec(self)
    }

    /// The result key of the newest candidate whose files all still have their recorded
    /// digests.
    pub(crate) fn find(&self, cwd: &Path, digests: &mut FileDigests) -> Option<CacheKey> {
        self.candidates
            .iter()
            .find(|c| {
                c.includes.iter().all(|include| {
                    let path = cwd.join(OsStr::from_bytes(&include.path));
                    digests.digest(&path) == Some(include.digest)
                })
            })
            .map(|c| CacheKey::from_bytes(c.result_key))
    }

    /// Puts `candidate` first, dropping an identical older one and the oldest beyond the cap.
    pub(crate) fn add(&mut self, candidate: Candidate) {
        self.candidates.retain(|c| *c != candidate);
        self.candidates.insert(0, candidate);
        self.candidates.truncate(MAX_CANDIDATES);
    }
}

/// Digests of files, each read at most once per compile (several candidates usually list the
/// same headers), and across processes not at all while the machine-wide memo knows the
/// file's stat.
#[derive(Debug, Default)]
pub(crate) struct FileDigests {
    seen: HashMap<PathBuf, Option<[u8; 32]>>,
    table: Option<DigestTable>,
}

impl FileDigests {
    /// Digests backed by the memo in `state_dir` (when it can be opened).
    pub(crate) fn with_table(state_dir: &Path) -> Self {
        Self {
            seen: HashMap::new(),
            table: DigestTable::open(state_dir),
        }
    }

    /// The digest of the file at `path`, or `None` when it cannot be read.
    pub(crate) fn digest(&mut self, path: &Path) -> Option<[u8; 32]> {
        match self.seen.entry(path.to_path_buf()) {
            Entry::Occupied(known) => *known.get(),
            Entry::Vacant(slot) => {
                let digest = match &self.table {
                    Some(table) => table.digest(path).ok(),
                    None => std::fs::read(path)
                        .ok()
                        .map(|bytes| *blake3::hash(&bytes).as_bytes()),
                };
                *slot.insert(digest)
            }
        }
    }
}

/// Why a compile cannot be recorded in a manifest.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unrecordable {
    /// An input uses a macro whose value changes from one compile to the next.
    #[error("{0} uses __DATE__, __TIME__ or __TIMESTAMP__")]
    TimeMacro(PathBuf),
    /// An input makes the assembler read files (`.incbin`) no dependency list names.
    #[error("{0} uses .incbin, whose file no key covers")]
    ReadsUntrackedFiles(PathBuf),
    /// An input changed after the compile started, so what was compiled is unknown.
    #[error("{0} was modified during the compile")]
    ModifiedDuringCompile(PathBuf),
    /// An input named by the preprocessor cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The digest of an input of the compile, checking ccache's safety rules: no time macros,
/// and not modified at or after `started`.
pub(crate) fn read_input(path: &Path, started: SystemTime) -> Result<[u8; 32], Unrecordable> {
    let unreadable = |source| Unrecordable::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(unreadable)?;
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let started = started.duration_since(UNIX_EPOCH).map_or((0, 0), |d| {
        (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i64::from(d.subsec_nanos()),
        )
    });
    if (meta.mtime(), meta.mtime_nsec()) >= started || (meta.ctime(), meta.ctime_nsec()) >= started
    {
        return Err(Unrecordable::ModifiedDuringCompile(path.to_path_buf()));
    }
    if mentions_time_macros(&bytes) {
        return Err(Unrecordable::TimeMacro(path.to_path_buf()));
    }
    if bytes.windows(7).any(|w| w == b".incbin") {
        return Err(Unrecordable::ReadsUntrackedFiles(path.to_path_buf()));
    }
    Ok(*blake3::hash(&bytes).as_bytes())
}

/// Whether the text mentions `__DATE__`, `__TIME__` or `__TIMESTAMP__`.
pub(crate) fn mentions_time_macros(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'_') {
        let tail = &rest[at..];
        if tail.starts_with(b"__DATE__")
            || tail.starts_with(b"__TIME__")
            || tail.starts_with(b"__TIMESTAMP__")
        {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}

/// Builds the candidate for a compile whose preprocessor read `includes`, checking each file
/// against the safety rules.
pub(crate) fn candidate(
    cwd: &Path,
    includes: &[Vec<u8>],
    result_key: &CacheKey,
    started: SystemTime,
) -> Result<Candidate, Unrecordable> {
    candidate_keyed(cwd, includes, started, |_| *result_key)
}

/// As [`candidate`], for a result key that depends on the includes' digests (depend mode).
pub(crate) fn candidate_keyed(
    cwd: &Path,
    includes: &[Vec<u8>],
    started: SystemTime,
    result_key: impl FnOnce(&[(&[u8], &[u8; 32])]) -> CacheKey,
) -> Result<Candidate, Unrecordable> {
    let includes = includes
        .iter()
        .map(|path| {
            Ok(Include {
                path: path.clone(),
                digest: read_input(&cwd.join(OsStr::from_bytes(path)), started)?,
            })
        })
        .collect::<Result<Vec<Include>, Unrecordable>>()?;
    let listed: Vec<(&[u8], &[u8; 32])> = includes
        .iter()
        .map(|i| (i.path.as_slice(), &i.digest))
        .collect();
    let result_key = *result_key(&listed).as_bytes();
    Ok(Candidate {
        includes,
        result_key,
    })
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
    crate::rust::depinfo::parse(&joined)
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
#[path = "manifest_tests.rs"]
mod tests;

impl Candidate {
    /// The result key this candidate leads to.
    pub(crate) fn result_key(&self) -> CacheKey {
        CacheKey::from_bytes(self.result_key)
    }
}
