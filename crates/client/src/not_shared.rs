//! Directories the server has said it cannot see (`NotShared`), remembered in
//! `HOARD_DIR/not-shared-dirs` so that every later compile of the build sends their entries
//! inline at once instead of asking first. A directory is remembered by its path together
//! with its device and inode: a directory made anew (a fresh build tree) is asked about again.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hoard_protocol::DirIdentity;

/// The file's name in the state directory.
pub const NOT_SHARED_FILE: &str = "not-shared-dirs";

/// The identity of `dir` as this process sees it.
pub(crate) fn identity(dir: &Path) -> Option<DirIdentity> {
    let meta = std::fs::metadata(dir).ok()?;
    Some(DirIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The remembered directories: one line per directory, `dev ino hex(path)`.
#[derive(Debug, Default)]
pub(crate) struct NotSharedDirs {
    file: PathBuf,
    known: HashSet<(DirIdentity, Vec<u8>)>,
}

impl NotSharedDirs {
    /// What `state_dir` remembers; nothing when the file is missing or unreadable.
    pub(crate) fn load(state_dir: &Path) -> Self {
        let file = state_dir.join(NOT_SHARED_FILE);
        let known = std::fs::read_to_string(&file)
            .map(|text| text.lines().filter_map(parse_line).collect())
            .unwrap_or_default();
        Self { file, known }
    }

    /// Whether `dir`, with this identity, is known not to be shared.
    pub(crate) fn contains(&self, dir: &Path, identity: DirIdentity) -> bool {
        !self.known.is_empty()
            && self
                .known
                .contains(&(identity, dir.as_os_str().as_bytes().to_vec()))
    }

    /// Remembers `dir` for this process and every later one. A failure to write only costs a
    /// later compile one extra question.
    pub(crate) fn remember(&mut self, dir: &Path, identity: DirIdentity) {
        let path = dir.as_os_str().as_bytes().to_vec();
        let line = format!("{} {} {}\n", identity.dev, identity.ino, hex(&path));
        if self.known.insert((identity, path)) {
            // One short O_APPEND write per line: concurrent wrappers never interleave.
            use std::os::unix::fs::OpenOptionsExt;
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.file)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                tracing::debug!("cannot remember {}: {e}", dir.display());
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn parse_line(line: &str) -> Option<(DirIdentity, Vec<u8>)> {
    let mut fields = line.split(' ');
    let dev = fields.next()?.parse().ok()?;
    let ino = fields.next()?.parse().ok()?;
    let hex = fields.next()?;
    if fields.next().is_some() || hex.len() % 2 != 0 {
        return None;
    }
    let path = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((DirIdentity { dev, ino }, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_remembered_directory_is_known_to_the_next_process() {
        let state = tempfile::tempdir().unwrap();
        let dir = Path::new("/mnt/out dir\nwith newline");
        let id = DirIdentity { dev: 41, ino: 7 };
        let mut dirs = NotSharedDirs::load(state.path());
        assert!(!dirs.contains(dir, id));
        dirs.remember(dir, id);
        let again = NotSharedDirs::load(state.path());
        assert!(again.contains(dir, id));
        // The same path made anew is another directory.
        assert!(!again.contains(dir, DirIdentity { dev: 41, ino: 8 }));
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(
            state.path().join(NOT_SHARED_FILE),
            "garbage\n1 2 zz\n1 2 2f\n3 x 2f\n",
        )
        .unwrap();
        let dirs = NotSharedDirs::load(state.path());
        assert!(dirs.contains(Path::new("/"), DirIdentity { dev: 1, ino: 2 }));
        assert_eq!(dirs.known.len(), 1);
    }

    proptest! {
        #[test]
        fn any_line_parses_or_is_skipped_and_written_lines_round_trip(
            dev in any::<u64>(), ino in any::<u64>(),
            path in proptest::collection::vec(any::<u8>(), 0..64),
            junk in ".{0,64}",
        ) {
            let _ = parse_line(&junk);
            let line = format!("{dev} {ino} {}", hex(&path));
            prop_assert_eq!(parse_line(&line), Some((DirIdentity { dev, ino }, path)));
        }
    }
}
