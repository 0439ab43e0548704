//! Who holds the server's lock when it cannot be taken: a server (or a wrapper looking) of our
//! own uid, which is the ordinary race of wrappers starting servers, or a process of another
//! user, which is an attack on this user's cache and an error.
//!
//! The kernel says in `/proc/locks` which process holds a lock on which inode, and
//! `/proc/<pid>/status` whose that process is. A holder the kernel does not show us (a
//! process in another pid namespace appears as pid 0) is taken to be ours: the lock file is
//! ours and 0600, so another user could only hold it through a descriptor opened before it
//! was ours, and a same-uid container sharing the socket directory is the common case.

use rustix::fs::Stat;

/// Why the lock could not be taken.
pub(crate) enum Locked {
    /// Another process of our own uid holds it: a server is running or starting.
    ByUs,
    /// A process of another uid holds it.
    ByOther {
        /// That process.
        pid: u32,
        /// Its effective uid.
        uid: u32,
    },
}

/// Who holds the lock on the file `lock` describes, as far as the kernel shows.
pub(crate) fn holder(lock: &Stat, own_uid: u32) -> Locked {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Locked::ByUs;
    };
    let dev = (
        rustix::fs::major(lock.st_dev),
        rustix::fs::minor(lock.st_dev),
    );
    holders(&locks, dev, lock.st_ino)
        .filter_map(|pid| Some((pid, effective_uid(pid)?)))
        .find(|&(_, uid)| uid != own_uid)
        .map_or(Locked::ByUs, |(pid, uid)| Locked::ByOther { pid, uid })
}

/// The pids `/proc/locks` shows holding (not waiting for) a lock on inode `ino` of device
/// `dev` (major, minor).
fn holders(locks: &str, dev: (u32, u32), ino: u64) -> impl Iterator<Item = u32> + '_ {
    locks.lines().filter_map(move |line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; waiters have `->` after the id.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"->") {
            return None;
        }
        let pid = fields.get(4)?.parse::<u32>().ok().filter(|&p| p > 0)?;
        let mut id = fields.get(5)?.split(':');
        let major = u32::from_str_radix(id.next()?, 16).ok()?;
        let minor = u32::from_str_radix(id.next()?, 16).ok()?;
        let inode = id.next()?.parse::<u64>().ok()?;
        ((major, minor) == dev && inode == ino).then_some(pid)
    })
}

/// The effective uid of process `pid`, if it is visible.
fn effective_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "\
1: POSIX  ADVISORY  WRITE 700 08:01:99 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1234567 0 EOF
3: FLOCK  ADVISORY  READ 0 fd:01:1234567 0 EOF
4: OFDLCK ADVISORY  READ -1 fd:01:1234567 0 EOF
";

    #[test]
    fn only_visible_holders_of_that_inode_count() {
        let found: Vec<u32> = holders(LOCKS, (0xfd, 0x01), 1_234_567).collect();
        assert_eq!(found, vec![4242]);
        assert_eq!(holders(LOCKS, (8, 1), 99).collect::<Vec<_>>(), vec![700]);
        assert_eq!(holders(LOCKS, (8, 2), 99).count(), 0);
    }

    #[test]
    fn our_own_lock_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("lock")).unwrap();
        file.lock().unwrap();
        let meta = rustix::fs::fstat(&file).unwrap();
        let uid = rustix::process::geteuid().as_raw();
        assert!(matches!(holder(&meta, uid), Locked::ByUs));
        // Seen from another uid, this process is the other user.
        match holder(&meta, uid + 1) {
            Locked::ByOther { pid, uid: theirs } => {
                assert_eq!(pid, std::process::id());
                assert_eq!(theirs, uid);
            }
            Locked::ByUs => panic!("this process's lock was not found in /proc/locks"),
        }
    }
}
