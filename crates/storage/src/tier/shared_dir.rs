//! The shared-directory tier's file work, done here rather than through OpenDAL's `Fs`
//! service because whoever else can write to the directory is not trusted: every path is
//! walked one component at a time from the configured root (`openat`), never through a
//! symbolic link below it, and only regular files of bounded size are read.
//!
//! * A read opens `<root>/<2 hex>` as a directory with `O_NOFOLLOW`, then the entry with
//!   `O_NOFOLLOW | O_NONBLOCK` (a FIFO opens at once instead of waiting for a writer), then
//!   checks on the open file that it is a regular file no larger than the tier's limit,
//!   and reads at most that many bytes. A symlink, FIFO, device, socket or oversize file is
//!   [`Refusal`], never followed or waited on.
//! * A write creates a fresh temporary file (`O_CREAT | O_EXCL | O_NOFOLLOW`) in the
//!   entry's own subdirectory, opened the same way, and renames it over the entry within
//!   that directory: a planted symlink can neither receive the bytes nor redirect the
//!   rename (a rename replaces a link at its target, it does not follow it).
//!
//! Everything here blocks; the tier runs it on tokio's blocking pool under its deadline.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::CacheKey;

/// Temporary files start with this; no entry's name does.
const TEMP_PREFIX: &str = ".tmp-";

/// Permission bits of new files and directories before the umask: the directory is shared,
/// so others must be able to read what is written.
const FILE_MODE: u32 = 0o666;
const DIR_MODE: u32 = 0o777;

/// What a read found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The entry's bytes.
    Found(Vec<u8>),
    /// No entry under the key.
    Missing,
    /// Something is at the entry's path that is not an entry this tier will read.
    Refused(Refusal),
}

/// Why something at an entry's path was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// A symbolic link, at the entry or at its subdirectory.
    #[error("{path}: a symbolic link; only regular files are read from a shared directory")]
    Symlink {
        /// Where it is.
        path: PathBuf,
    },
    /// A FIFO, device, socket or directory where an entry belongs.
    #[error("{path}: a {kind}, not a regular file")]
    NotRegular {
        /// Where it is.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A regular file larger than the tier's entry limit.
    #[error("{path}: {size} bytes, over the tier's {limit}-byte entry limit")]
    TooLarge {
        /// Where it is.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// A shared-directory operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SharedDirError {
    /// A system call on a path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why not.
        #[source]
        source: io::Error,
    },
    /// A write or remove met something that is not a directory where the entry's
    /// subdirectory belongs.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> SharedDirError {
    let path = path.to_path_buf();
    move |e| SharedDirError::Io {
        op,
        path,
        source: e.into(),
    }
}

/// The subdirectory and file name of `key` (`<2 hex>/<64 hex>`), as the local disk has them.
fn names(key: &CacheKey) -> (String, String) {
    let hex = key.to_hex();
    (hex[..2].to_owned(), hex)
}

/// The configured root, followed if it is a link (that is the operator's choice).
fn open_root(root: &Path) -> Result<Option<OwnedFd>, SharedDirError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::open(root, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(io_err("open", root)(e)),
    }
}

/// `<root>/<sub>` as a directory, never through a link; `None` when it does not exist.
fn open_sub(
    root: &OwnedFd,
    root_path: &Path,
    sub: &str,
) -> Result<Option<OwnedFd>, SharedDirError> {
    let path = root_path.join(sub);
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(root, sub, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::LOOP) => Err(Refusal::Symlink { path }.into()),
        Err(Errno::NOTDIR) => Err(Refusal::NotRegular {
            path,
            kind: "file where a directory belongs",
        }
        .into()),
        Err(e) => Err(io_err("open", &path)(e)),
    }
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "FIFO",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Socket => "socket",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        _ => "special file",
    }
}

/// Reads the entry under `key` below `root`, if it is a regular file of at most `limit`
/// bytes; see the module's description for what is refused.
pub(crate) fn read(root: &Path, key: &CacheKey, limit: u64) -> Result<Lookup, SharedDirError> {
    let (sub, name) = names(key);
    let Some(root_fd) = open_root(root)? else {
        return Ok(Lookup::Missing);
    };
    let sub_fd = match open_sub(&root_fd, root, &sub) {
        Ok(Some(fd)) => fd,
        Ok(None) => return Ok(Lookup::Missing),
        Err(SharedDirError::Refused(refusal)) => return Ok(Lookup::Refused(refusal)),
        Err(e) => return Err(e),
    };
    let path = root.join(&sub).join(&name);
    // O_NONBLOCK: a FIFO opens at once (and is refused below) instead of blocking until a
    // writer comes; it changes nothing for a regular file. O_NOCTTY: a terminal planted
    // here never becomes ours.
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(&sub_fd, name.as_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Lookup::Missing),
        Err(Errno::LOOP) => return Ok(Lookup::Refused(Refusal::Symlink { path })),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(io_err("stat", &path))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Ok(Lookup::Refused(Refusal::NotRegular {
            path,
            kind: kind_name(kind),
        }));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > limit {
        return Ok(Lookup::Refused(Refusal::TooLarge { path, size, limit }));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // One byte past what fstat said shows a file still growing; never more than that.
    File::from(fd)
        .take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SharedDirError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 != size {
        return Err(SharedDirError::Io {
            op: "read",
            path,
            source: io::Error::other(format!(
                "file changed size while being read (stat said {size} bytes, read {})",
                bytes.len()
            )),
        });
    }
    Ok(Lookup::Found(bytes))
}

/// A name no other writer (here or on another machine) will pick at the same time.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{}:{nanos}:{n}", std::process::id());
    let digest = blake3::hash(seed.as_bytes()).to_hex();
    format!("{TEMP_PREFIX}{}", &digest[..24])
}

/// Writes `entry` under `key` below `root`: a new temporary file in the entry's own
/// subdirectory, synced, then renamed over the entry, so readers on any machine see the
/// old entry, the new one or none.
pub(crate) fn write(root: &Path, key: &CacheKey, entry: &[u8]) -> Result<(), SharedDirError> {
    let (sub, name) = names(key);
    let root_fd = match open_root(root)? {
        Some(fd) => fd,
        None => {
            std::fs::create_dir_all(root).map_err(|source| SharedDirError::Io {
                op: "create directory",
                path: root.to_path_buf(),
                source,
            })?;
            open_root(root)?.ok_or_else(|| SharedDirError::Io {
                op: "open",
                path: root.to_path_buf(),
                source: io::ErrorKind::NotFound.into(),
            })?
        }
    };
    match rustix::fs::mkdirat(&root_fd, sub.as_str(), Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io_err("create directory", &root.join(&sub))(e)),
    }
    let sub_path = root.join(&sub);
    let sub_fd = open_sub(&root_fd, root, &sub)?.ok_or_else(|| SharedDirError::Io {
        op: "open",
        path: sub_path.clone(),
        source: io::ErrorKind::NotFound.into(),
    })?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let temp = temp_name();
    let temp_path = sub_path.join(&temp);
    let fd = rustix::fs::openat(
        &sub_fd,
        temp.as_str(),
        flags,
        Mode::from_raw_mode(FILE_MODE),
    )
    .map_err(io_err("create", &temp_path))?;
    let mut file = File::from(fd);
    let written = file
        .write_all(entry)
        .and_then(|()| file.sync_all())
        .map_err(|source| SharedDirError::Io {
            op: "write",
            path: temp_path.clone(),
            source,
        })
        .and_then(|()| {
            rustix::fs::renameat(&sub_fd, temp.as_str(), &sub_fd, name.as_str())
                .map_err(io_err("rename", &temp_path))
        });
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&sub_fd, temp.as_str(), AtFlags::empty());
    }
    written
}

/// Removes the entry under `key` below `root`, if any. The link itself is removed when
/// something planted one there; nothing is followed.
pub(crate) fn remove(root: &Path, key: &CacheKey) -> Result<(), SharedDirError> {
    let (sub, name) = names(key);
    let Some(root_fd) = open_root(root)? else {
        return Ok(());
    };
    let Some(sub_fd) = open_sub(&root_fd, root, &sub)? else {
        return Ok(());
    };
    match rustix::fs::unlinkat(&sub_fd, name.as_str(), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err("remove", &root.join(&sub).join(&name))(e)),
    }
}
