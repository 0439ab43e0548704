//! Whom the client believes: a server of its own effective uid, and files beside the socket
//! that are its own.
//!
//! Anything listening on the socket path could answer the protocol, and an answer decides
//! which bytes become a build's objects. So before a single byte is sent, the server's uid is
//! read from the kernel (`SO_PEERCRED`, which no process can forge) and a server of any other
//! uid is refused. Root is not trusted either: a user's server runs as that user, and a
//! root-owned listener on a user's socket path is not that user's server (a root client
//! trusts root's own server, which is its own uid). The refusal costs the compile nothing but
//! the cache: it runs locally and is counted (`server_untrusted`).
//!
//! The lock, pid and spawn files beside the socket decide whom the client signals and where
//! it creates files when it starts or stops a server. Another user who can write to the
//! socket's directory could plant them, so they are opened only when they are this user's
//! own regular files with a single link, never through a symbolic link, and never blocking
//! on a FIFO.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use tokio::net::UnixStream;

use crate::ClientError;

/// This process's effective uid: the only uid whose server it believes.
pub(crate) fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The server at the other end of a Unix socket, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Its pid as seen from here, when it is visible (not in another pid namespace).
    pub(crate) pid: Option<u32>,
}

/// Checks, before anything is sent, that the server behind `stream` (connected to `socket`)
/// runs as this process's effective uid.
pub(crate) fn verify_server(stream: &UnixStream, socket: &Path) -> Result<Peer, ClientError> {
    let credentials = stream
        .peer_cred()
        .map_err(|source| ClientError::PeerUnknown {
            socket: socket.to_owned(),
            source,
        })?;
    let own = own_uid();
    if credentials.uid() != own {
        tracing::warn!(
            socket = %socket.display(),
            uid = credentials.uid(),
            pid = ?credentials.pid(),
            "refusing a hoard server of another user"
        );
        return Err(ClientError::UntrustedServer {
            socket: socket.to_owned(),
            uid: credentials.uid(),
            own,
        });
    }
    Ok(Peer {
        // 0 means the peer's pid namespace is not ours: no pid we could name.
        pid: credentials
            .pid()
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid != 0),
    })
}

/// A file beside the socket that is not this user's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// It could not be opened or examined.
    #[error("cannot open {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// It is there, but not as this user's own regular file: another user may have planted
    /// it, and it is not used.
    #[error("refusing {path}: it is {problem}, not a regular file of uid {own} with one link")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What it is instead (`a symbolic link`, `owned by uid 40001`, ...).
        problem: String,
        /// The uid it should belong to.
        own: u32,
    },
}

impl StateFileError {
    /// Whether the file simply does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Opens `path` with `options` only when it is (or, created now, becomes) this user's own
/// regular file with a single link: never through a symbolic link (`O_NOFOLLOW`), never
/// waiting on a FIFO (`O_NONBLOCK`), and checked on the open file itself, so nothing can be
/// swapped in between the check and the use. A file it creates gets mode 0600.
pub(crate) fn open_own(path: &Path, options: &mut OpenOptions) -> Result<File, StateFileError> {
    let file = options
        .mode(0o600)
        .custom_flags(
            (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC)
                .bits()
                .cast_signed(),
        )
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            // O_NOFOLLOW on a symbolic link.
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                foreign(path, "a symbolic link".into())
            }
            // A FIFO or socket opened for writing without a reader.
            Some(code) if code == rustix::io::Errno::NXIO.raw_os_error() => {
                foreign(path, "a FIFO or device".into())
            }
            _ => StateFileError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
    let meta = file.metadata().map_err(|source| StateFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let own = own_uid();
    let problem = if !meta.file_type().is_file() {
        Some("not a regular file (a FIFO, device or directory)".to_owned())
    } else if meta.uid() != own {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.nlink() != 1 {
        Some(format!("a file with {} hard links", meta.nlink()))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(foreign(path, problem)),
        None => Ok(file),
    }
}

fn foreign(path: &Path, problem: String) -> StateFileError {
    StateFileError::Foreign {
        path: path.to_owned(),
        problem,
        own: own_uid(),
    }
}

/// Whether every uid of process `pid` (real, effective, saved, filesystem) is this
/// process's effective uid: the only processes the client ever signals.
pub(crate) fn process_is_own(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let own = own_uid();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|uids| {
            let uids: Vec<&str> = uids.split_whitespace().collect();
            !uids.is_empty() && uids.iter().all(|u| u.parse::<u32>() == Ok(own))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_regular_single_link_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("own");
        let mut create = OpenOptions::new();
        create.create(true).truncate(false).write(true);
        open_own(&file, &mut create).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().mode() & 0o777,
            0o600,
            "created private"
        );
        open_own(&file, OpenOptions::new().read(true)).unwrap();

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let error = open_own(&link, OpenOptions::new().read(true)).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        // Not created through a dangling one either.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("target"), &dangling).unwrap();
        assert!(open_own(&dangling, &mut create).is_err());
        assert!(!dir.path().join("target").exists());

        let hard = dir.path().join("hard");
        std::fs::hard_link(&file, &hard).unwrap();
        let error = open_own(&hard, OpenOptions::new().read(true)).unwrap_err();
        assert!(error.to_string().contains("hard links"), "{error}");

        let missing = open_own(&dir.path().join("missing"), OpenOptions::new().read(true));
        assert!(missing.unwrap_err().is_not_found());
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer_or_reader() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for options in [
            OpenOptions::new().read(true),
            OpenOptions::new().write(true),
        ] {
            let error = open_own(&fifo, options).unwrap_err();
            assert!(matches!(error, StateFileError::Foreign { .. }), "{error}");
        }
    }

    #[test]
    fn this_process_is_its_own() {
        assert!(process_is_own(std::process::id()));
        assert!(!process_is_own(u32::MAX));
    }
}
