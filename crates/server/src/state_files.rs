//! The socket's directory and the lock and pid files beside the socket, set up so that no
//! other user can plant, redirect or hold them.
//!
//! The directory must belong to the server's effective uid and be writable by nobody else
//! (as ssh-agent, tmux and gpg-agent require): a group- or world-writable directory, sticky
//! `/tmp` included, lets another user pre-create the lock file or put a socket of theirs in
//! the server's place. It is created 0700 when missing. The lock and pid files are opened
//! relative to the directory's descriptor, never through a symlink, created exclusively when
//! absent, and accepted when present only as regular files of our own (left by an earlier
//! run), tightened to 0600.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{ServerError, Unsafe};
use crate::lock_holder::Locked;

/// The socket's directory, checked and held open, with the server's lock taken in it.
#[derive(Debug)]
pub(crate) struct StateFiles {
    dir: OwnedFd,
    socket: PathBuf,
    /// Held (and flock-ed) for as long as the server runs: dropping it releases the lock.
    _lock: File,
    pid: File,
    pid_path: PathBuf,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> ServerError {
    let path = path.to_owned();
    move |e| ServerError::Io {
        op,
        path,
        source: e.into(),
    }
}

fn sibling(socket: &Path, extension: &str) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

impl StateFiles {
    /// Checks (or creates) the socket's directory and takes the server's lock in it, then
    /// opens the pid file, empty. `Err(ServerError::AlreadyRunning)` when a server of this uid
    /// holds the lock.
    pub(crate) fn take(socket: &Path, uid: u32) -> Result<StateFiles, ServerError> {
        let dir_path = match socket.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let dir = open_private_dir(&dir_path, uid)?;
        let lock_path = sibling(socket, "lock");
        let lock = File::from(open_own_file(&dir, &lock_path, uid)?);
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let meta = rustix::fs::fstat(&lock).map_err(io("stat", &lock_path))?;
                return Err(match crate::lock_holder::holder(&meta, uid) {
                    Locked::ByUs => ServerError::AlreadyRunning(socket.to_owned()),
                    Locked::ByOther { pid, uid: owner } => ServerError::LockedByOther {
                        path: lock_path,
                        pid,
                        uid: owner,
                    },
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(ServerError::Io {
                    op: "lock",
                    path: lock_path,
                    source,
                });
            }
        }
        // Only now, with the lock ours, is the pid file ours to (re)write.
        let pid_path = sibling(socket, "pid");
        let pid = File::from(open_own_file(&dir, &pid_path, uid)?);
        pid.set_len(0).map_err(|source| ServerError::Io {
            op: "truncate",
            path: pid_path.clone(),
            source,
        })?;
        Ok(StateFiles {
            dir,
            socket: socket.to_owned(),
            _lock: lock,
            pid,
            pid_path,
        })
    }

    /// Removes whatever a dead server left at the socket's path (never following a link).
    pub(crate) fn remove_stale_socket(&self) -> Result<(), ServerError> {
        match rustix::fs::unlinkat(&self.dir, file_name(&self.socket), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io("remove stale socket", &self.socket)(e)),
        }
    }

    /// Makes the freshly bound socket 0600: whatever the umask, only our uid may connect
    /// (the server checks each peer's uid as well).
    pub(crate) fn restrict_socket(&self) -> Result<(), ServerError> {
        rustix::fs::chmodat(
            &self.dir,
            file_name(&self.socket),
            Mode::from_raw_mode(0o600),
            AtFlags::empty(),
        )
        .map_err(io("restrict", &self.socket))
    }

    /// Writes our pid, once the socket is bound: a client that finds the pid file of a live
    /// lock holder and no socket takes that server for orphaned.
    pub(crate) fn write_pid(&mut self) -> Result<(), ServerError> {
        writeln!(self.pid, "{}", std::process::id()).map_err(|source| ServerError::Io {
            op: "write pid file",
            path: self.pid_path.clone(),
            source,
        })
    }

    /// Removes the socket and the pid file at exit. The lock is still held, so they are
    /// ours, not a successor's.
    pub(crate) fn remove_served(&self) {
        for path in [&self.socket, &self.pid_path] {
            if let Err(e) = rustix::fs::unlinkat(&self.dir, file_name(path), AtFlags::empty())
                && e != Errno::NOENT
            {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

fn file_name(path: &Path) -> OsString {
    path.file_name().unwrap_or(path.as_os_str()).to_owned()
}

/// Opens the socket's directory, creating it 0700 when missing, and checks it is ours and
/// writable by no one else.
fn open_private_dir(dir: &Path, uid: u32) -> Result<OwnedFd, ServerError> {
    let created = match std::fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| ServerError::Io {
                    op: "create socket directory",
                    path: dir.to_owned(),
                    source,
                })?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(source) => {
            return Err(ServerError::Io {
                op: "create socket directory",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let problem = if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_symlink()) {
                Unsafe::Symlink
            } else {
                Unsafe::NotDirectory
            };
            return Err(unsafe_dir(dir, problem));
        }
        Err(e) => return Err(io("open socket directory", dir)(e)),
    };
    if created {
        // Created under whatever umask: 0700 exactly.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
            .map_err(io("restrict socket directory", dir))?;
    }
    let meta = rustix::fs::fstat(&fd).map_err(io("stat socket directory", dir))?;
    // Writability first: for a shared directory like /tmp it is what matters.
    let mode = meta.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(dir, Unsafe::Writable { mode }));
    }
    if meta.st_uid != uid {
        return Err(unsafe_dir(
            dir,
            Unsafe::OwnedBy {
                owner: meta.st_uid,
                uid,
            },
        ));
    }
    Ok(fd)
}

fn unsafe_dir(path: &Path, problem: Unsafe) -> ServerError {
    ServerError::UnsafeDirectory {
        path: path.to_owned(),
        problem,
    }
}

fn unsafe_file(path: &Path, problem: Unsafe) -> ServerError {
    ServerError::UnsafeFile {
        path: path.to_owned(),
        problem,
    }
}

/// Opens `path` (in `dir`) read-write: created exclusively 0600 when absent; when present,
/// accepted only as a regular file of `uid`'s, reached without a symlink, and made 0600.
fn open_own_file(dir: &OwnedFd, path: &Path, uid: u32) -> Result<OwnedFd, ServerError> {
    let name = file_name(path);
    // Non-blocking, so a FIFO planted there cannot hang the open.
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::openat(
        dir,
        name.as_bytes(),
        flags | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => fd,
        Err(Errno::EXIST) => match rustix::fs::openat(dir, name.as_bytes(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(unsafe_file(path, Unsafe::Symlink)),
            Err(Errno::ACCESS) => {
                // Not even openable by us: whose it is says why.
                let problem = rustix::fs::statat(dir, name.as_bytes(), AtFlags::SYMLINK_NOFOLLOW)
                    .ok()
                    .filter(|m| m.st_uid != uid)
                    .map(|m| Unsafe::OwnedBy {
                        owner: m.st_uid,
                        uid,
                    });
                return Err(match problem {
                    Some(problem) => unsafe_file(path, problem),
                    None => io("open", path)(Errno::ACCESS),
                });
            }
            Err(e) => return Err(io("open", path)(e)),
        },
        Err(e) => return Err(io("create", path)(e)),
    };
    let meta = rustix::fs::fstat(&fd).map_err(io("stat", path))?;
    if FileType::from_raw_mode(meta.st_mode) != FileType::RegularFile {
        return Err(unsafe_file(path, Unsafe::NotRegular));
    }
    if meta.st_uid != uid {
        return Err(unsafe_file(
            path,
            Unsafe::OwnedBy {
                owner: meta.st_uid,
                uid,
            },
        ));
    }
    if meta.st_mode & 0o7777 != 0o600 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(io("restrict", path))?;
    }
    // Back to blocking: it is a regular file.
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(io("open", path))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn uid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_missing_directory_is_created_0700_and_the_files_0600() {
        let base = tempfile::tempdir().unwrap();
        let socket = base.path().join("a/b/hoard.sock");
        let mut files = StateFiles::take(&socket, uid()).unwrap();
        files.write_pid().unwrap();
        assert_eq!(mode(socket.parent().unwrap()), 0o700);
        assert_eq!(mode(&sibling(&socket, "lock")), 0o600);
        assert_eq!(mode(&sibling(&socket, "pid")), 0o600);
        let pid = std::fs::read_to_string(sibling(&socket, "pid")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        files.remove_served();
        assert!(!sibling(&socket, "pid").exists());
    }

    #[test]
    fn a_second_taker_of_the_same_uid_is_told_a_server_runs() {
        let base = tempfile::tempdir().unwrap();
        let socket = base.path().join("hoard.sock");
        let _first = StateFiles::take(&socket, uid()).unwrap();
        assert!(matches!(
            StateFiles::take(&socket, uid()),
            Err(ServerError::AlreadyRunning(_))
        ));
    }

    #[test]
    fn a_writable_directory_is_refused_naming_it() {
        let base = tempfile::tempdir().unwrap();
        for bits in [0o777, 0o1777, 0o770, 0o720] {
            std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(bits)).unwrap();
            let err = StateFiles::take(&base.path().join("hoard.sock"), uid()).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(&base.path().display().to_string())
                    && message.contains("writable"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_directory_of_another_uid_is_refused() {
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = StateFiles::take(&base.path().join("hoard.sock"), uid() + 1).unwrap_err();
        assert!(
            matches!(
                err,
                ServerError::UnsafeDirectory {
                    problem: Unsafe::OwnedBy { .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    /// `err` refuses a lock or pid file for being a symlink.
    fn assert_symlink_refused(err: &ServerError) {
        assert!(
            matches!(
                err,
                ServerError::UnsafeFile {
                    problem: Unsafe::Symlink,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn symlinks_fifos_and_directories_in_place_of_the_files_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let socket = base.path().join("hoard.sock");
        let target = base.path().join("target");
        std::fs::write(&target, b"kept").unwrap();
        std::os::unix::fs::symlink(&target, sibling(&socket, "lock")).unwrap();
        assert_symlink_refused(&StateFiles::take(&socket, uid()).unwrap_err());
        std::fs::remove_file(sibling(&socket, "lock")).unwrap();
        std::fs::create_dir(sibling(&socket, "lock")).unwrap();
        let err = StateFiles::take(&socket, uid()).unwrap_err();
        assert!(
            matches!(err, ServerError::UnsafeFile { .. } | ServerError::Io { .. }),
            "{err}"
        );
        std::fs::remove_dir(sibling(&socket, "lock")).unwrap();
        std::os::unix::fs::symlink(&target, sibling(&socket, "pid")).unwrap();
        assert_symlink_refused(&StateFiles::take(&socket, uid()).unwrap_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"kept");
    }

    #[test]
    fn a_lock_file_left_by_our_earlier_run_is_reused_and_tightened() {
        let base = tempfile::tempdir().unwrap();
        let socket = base.path().join("hoard.sock");
        std::fs::write(sibling(&socket, "lock"), b"").unwrap();
        std::fs::set_permissions(
            sibling(&socket, "lock"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(sibling(&socket, "pid"), b"123456\n").unwrap();
        let _files = StateFiles::take(&socket, uid()).unwrap();
        assert_eq!(mode(&sibling(&socket, "lock")), 0o600);
        assert_eq!(std::fs::read(sibling(&socket, "pid")).unwrap(), b"");
        assert_eq!(
            std::fs::metadata(sibling(&socket, "lock")).unwrap().uid(),
            uid()
        );
    }
}
