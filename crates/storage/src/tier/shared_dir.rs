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

use crate::{CacheKey, StorageError};

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
    /// Something other than a directory where an entry's subdirectory belongs.
    #[error("{path}: a {kind} where a directory belongs")]
    NotDirectory {
        /// Where it is.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Something a tier holds under an entry's key that hoard never wrote (a REAPI action
    /// result naming no entry, or one whose parts do not fit together).
    #[error("{path}: not a hoard entry: {why}")]
    NotAnEntry {
        /// Where it is.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
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
    /// A system call on a path failed ([`StorageError::Io`], as for the local disk).
    #[error(transparent)]
    Io(#[from] StorageError),
    /// A write or remove met something that is not a directory where the entry's
    /// subdirectory belongs.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> SharedDirError {
    let path = path.to_path_buf();
    move |e| {
        SharedDirError::Io(StorageError::Io {
            op,
            path,
            source: e.into(),
        })
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
        // A link (Linux says ELOOP or ENOTDIR, as O_DIRECTORY or O_NOFOLLOW is checked
        // first) or something else where the directory belongs: say which.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let kind = rustix::fs::statat(root, sub, AtFlags::SYMLINK_NOFOLLOW)
                .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode));
            Err(match kind {
                FileType::Symlink => Refusal::Symlink { path },
                kind => Refusal::NotDirectory {
                    path,
                    kind: kind_name(kind),
                },
            }
            .into())
        }
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
        FileType::RegularFile => "regular file",
        FileType::Unknown => "file of unknown type",
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
        .map_err(|source| StorageError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 != size {
        return Err(SharedDirError::Io(StorageError::Io {
            op: "read",
            path,
            source: io::Error::other(format!(
                "file changed size while being read (stat said {size} bytes, read {})",
                bytes.len()
            )),
        }));
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
    let root_fd = if let Some(fd) = open_root(root)? {
        fd
    } else {
        std::fs::create_dir_all(root).map_err(|source| StorageError::Io {
            op: "create directory",
            path: root.to_path_buf(),
            source,
        })?;
        open_root(root)?.ok_or_else(|| StorageError::Io {
            op: "open",
            path: root.to_path_buf(),
            source: io::ErrorKind::NotFound.into(),
        })?
    };
    match rustix::fs::mkdirat(&root_fd, sub.as_str(), Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io_err("create directory", &root.join(&sub))(e)),
    }
    let sub_path = root.join(&sub);
    let sub_fd = open_sub(&root_fd, root, &sub)?.ok_or_else(|| StorageError::Io {
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
        .map_err(|source| {
            SharedDirError::Io(StorageError::Io {
                op: "write",
                path: temp_path.clone(),
                source,
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn key() -> CacheKey {
        CacheKey::from_bytes([0xab; 32])
    }

    fn entry_path(root: &Path) -> PathBuf {
        let (sub, name) = names(&key());
        root.join(sub).join(name)
    }

    fn refused(found: Lookup) -> Refusal {
        match found {
            Lookup::Refused(why) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_written_entry_reads_back_and_a_missing_one_is_a_miss() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(root.path(), &key(), 100).unwrap(),
            Lookup::Missing
        ));
        write(root.path(), &key(), b"entry").unwrap();
        let Lookup::Found(bytes) = read(root.path(), &key(), 100).unwrap() else {
            panic!("no hit");
        };
        assert_eq!(bytes, b"entry");
        remove(root.path(), &key()).unwrap();
        remove(root.path(), &key()).unwrap();
        assert!(matches!(
            read(root.path(), &key(), 100).unwrap(),
            Lookup::Missing
        ));
        // No temporary file is left.
        let sub = entry_path(root.path()).parent().unwrap().to_path_buf();
        assert_eq!(fs_names(&sub), Vec::<String>::new());
    }

    fn fs_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_symlink_at_the_entry_is_refused_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("real");
        std::fs::write(&target, b"a valid entry elsewhere").unwrap();
        let path = entry_path(root.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(&target, &path).unwrap();
        let why = refused(read(root.path(), &key(), 1000).unwrap());
        assert!(matches!(why, Refusal::Symlink { .. }), "{why}");
        // A write replaces the link itself; the file it pointed at is untouched.
        write(root.path(), &key(), b"mine").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"a valid entry elsewhere");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        // A remove takes a planted link away, never its target.
        std::fs::remove_file(&path).unwrap();
        symlink(&target, &path).unwrap();
        remove(root.path(), &key()).unwrap();
        assert!(target.exists());
        assert!(std::fs::symlink_metadata(&path).is_err());
    }

    #[test]
    fn a_symlinked_subdirectory_is_neither_read_nor_written_through() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let path = entry_path(root.path());
        symlink(elsewhere.path(), path.parent().unwrap()).unwrap();
        std::fs::write(elsewhere.path().join(path.file_name().unwrap()), b"x").unwrap();
        let why = refused(read(root.path(), &key(), 1000).unwrap());
        assert!(matches!(why, Refusal::Symlink { .. }), "{why}");
        let err = write(root.path(), &key(), b"mine").unwrap_err();
        assert!(
            matches!(err, SharedDirError::Refused(Refusal::Symlink { .. })),
            "{err}"
        );
        assert_eq!(fs_names(elsewhere.path()), vec![key().to_hex()]);
        assert_eq!(
            std::fs::read(elsewhere.path().join(key().to_hex())).unwrap(),
            b"x"
        );
    }

    #[test]
    fn a_fifo_is_refused_at_once_and_a_directory_too() {
        let root = tempfile::tempdir().unwrap();
        let path = entry_path(root.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let fifo = rustix::fs::FileType::Fifo;
        rustix::fs::mknodat(rustix::fs::CWD, &path, fifo, rustix::fs::Mode::RUSR, 0).unwrap();
        let start = std::time::Instant::now();
        let why = refused(read(root.path(), &key(), 1000).unwrap());
        assert!(
            matches!(why, Refusal::NotRegular { kind: "FIFO", .. }),
            "{why}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let why = refused(read(root.path(), &key(), 1000).unwrap());
        assert!(matches!(why, Refusal::NotRegular { .. }), "{why}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_without_being_read() {
        let root = tempfile::tempdir().unwrap();
        let path = entry_path(root.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 40).unwrap();
        let why = refused(read(root.path(), &key(), 1 << 20).unwrap());
        assert!(
            matches!(why, Refusal::TooLarge { size, limit, .. } if size == 1 << 40 && limit == 1 << 20),
            "{why}"
        );
        file.set_len(1 << 20).unwrap();
        assert!(
            matches!(read(root.path(), &key(), 1 << 20).unwrap(), Lookup::Found(b) if b.len() == 1 << 20)
        );
    }

    #[test]
    fn a_write_creates_the_root_when_it_is_missing() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("not/yet");
        write(&root, &key(), b"entry").unwrap();
        assert_eq!(std::fs::read(entry_path(&root)).unwrap(), b"entry");
    }
}
