//! Reading an input of a compile for a manifest candidate, under ccache's safety rules: a
//! file that uses a time macro, makes the assembler read files no list names, or changed
//! after the compile started is not recorded, so a candidate never names a result that was
//! built from something else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::text::contains;

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
    /// An input named by the compiler cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The input.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The digest of an input of the compile, checking ccache's safety rules: no time macros,
/// and not modified at or after `started`.
pub(crate) fn read_input(path: &Path, started: SystemTime) -> Result<[u8; 32], Unrecordable> {
    read_input_with(path, started, |_| {})
}

/// As [`read_input`], showing the bytes read to `inspect` (to look for what else makes a
/// file matter, without reading it twice).
pub(crate) fn read_input_with(
    path: &Path,
    started: SystemTime,
    inspect: impl FnOnce(&[u8]),
) -> Result<[u8; 32], Unrecordable> {
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
    if contains(&bytes, b".incbin") {
        return Err(Unrecordable::ReadsUntrackedFiles(path.to_path_buf()));
    }
    inspect(&bytes);
    Ok(*blake3::hash(&bytes).as_bytes())
}

/// Whether the text mentions `__DATE__`, `__TIME__` or `__TIMESTAMP__`.
pub(crate) fn mentions_time_macros(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'_', bytes).any(|at| {
        let tail = &bytes[at..];
        tail.starts_with(b"__DATE__")
            || tail.starts_with(b"__TIME__")
            || tail.starts_with(b"__TIMESTAMP__")
    })
}
