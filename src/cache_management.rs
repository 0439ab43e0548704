//! ccache's and sccache's cache-management commands over the local store: `-M/--max-size`
//! (kept in the config file, as ccache keeps it in `ccache.conf`), `-C/--clear`,
//! `-c/--cleanup` and `--evict-older-than`. They work on `HOARD_DIR/cache` directly, as
//! ccache works on its directory: the store is made to be shared by processes, a running
//! server included, so nothing has to stop first. Remote tiers are never touched: they are
//! shared, and their own systems expire what they hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hoard_storage::disk::Removed;
use hoard_storage::{DiskStore, StorageError, parse_size};

use crate::config::Settings;

/// The config-file key `-M` writes (`HOARD_CACHE_SIZE`).
const MAX_SIZE_KEY: &str = "cache_size";

/// A cache-management command failed; says on what.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The local store could not be opened or worked on.
    #[error("the local cache {}: {source}", dir.display())]
    Store {
        /// `HOARD_DIR/cache`.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: StorageError,
    },
    /// `-M` was given a size that is not one.
    #[error("--max-size {value:?}: {message}")]
    BadSize {
        /// What was given.
        value: String,
        /// Why it is not a size.
        message: String,
    },
    /// No config file can be named (neither `HOARD_CONFIG`, `XDG_CONFIG_HOME` nor `HOME`).
    #[error(
        "--max-size needs a config file to keep the size in: set HOARD_CONFIG (or HOME), or \
         set HOARD_CACHE_SIZE instead"
    )]
    NoConfigFile,
    /// The config file could not be read, parsed or written; it is left as it was.
    #[error("{}: {message}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// The local store of `settings`, at its configured limit.
fn store(settings: &Settings, max_size: u64) -> Result<DiskStore, ManagementError> {
    let dir = settings.cache_dir.join("cache");
    DiskStore::open(&dir, max_size).map_err(|source| ManagementError::Store { dir, source })
}

fn store_error(settings: &Settings) -> impl FnOnce(StorageError) -> ManagementError {
    let dir = settings.cache_dir.join("cache");
    move |source| ManagementError::Store { dir, source }
}

/// `-C/--clear`: removes every entry of the local store.
pub async fn clear(settings: &Settings) -> Result<Removed, ManagementError> {
    store(settings, settings.cache_size)?
        .clear()
        .await
        .map_err(store_error(settings))
}

/// `-c/--cleanup`: brings the local store within `max_size` now.
pub async fn cleanup(settings: &Settings, max_size: u64) -> Result<Removed, ManagementError> {
    store(settings, max_size)?
        .cleanup()
        .await
        .map_err(store_error(settings))
}

/// `--evict-older-than AGE`: removes the entries not used for `age`.
pub async fn evict_older_than(
    settings: &Settings,
    age: Duration,
) -> Result<Removed, ManagementError> {
    store(settings, settings.cache_size)?
        .evict_older_than(age)
        .await
        .map_err(store_error(settings))
}

/// A `-M` value: a size the store can hold something in. ccache's `-M 0` means "no limit";
/// hoard has no unlimited store, so 0 is refused rather than taken as "keep nothing".
pub fn parse_max_size(value: &str) -> Result<u64, ManagementError> {
    let bad = |message: String| ManagementError::BadSize {
        value: value.to_owned(),
        message,
    };
    match parse_size(value) {
        Ok(0) => Err(bad(
            "hoard's cache needs a limit (ccache's 0 for \"unlimited\" has no equivalent)".into(),
        )),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// `-M/--max-size SIZE`: writes `cache_size = "SIZE"` into the config file at `path`,
/// creating it (and its directory) when missing, keeping every other line and comment.
/// Written to a temporary file renamed over the old one, so a failure leaves it whole.
pub fn persist_max_size(path: &Path, value: &str) -> Result<(), ManagementError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let failed = |message: String| ManagementError::ConfigFile {
        path: path.to_path_buf(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(failed(format!("cannot read it: {e}"))),
    };
    let mut document: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| {
            failed(format!(
                "not valid TOML, so --max-size leaves it alone: {}",
                e.message()
            ))
        })?;
    document[MAX_SIZE_KEY] = toml_edit::value(value.trim());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| failed(format!("cannot create its directory: {e}")))?;
    let temp = dir.join(format!(
        ".{}.hoard-tmp-{}",
        path.file_name()
            .map_or_else(|| "config".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    // The file may hold secrets (tokens, keys): private unless it already had a mode.
    let mode = std::fs::metadata(path).map_or(0o600, |m| {
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
    });
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(document.to_string().as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        failed(format!("cannot write it: {e}"))
    })
}

/// What a removal did, in words: `removed 12 entries (3.4 MiB); 5 entries (1.0 MiB) left`.
pub fn describe(removed: &Removed) -> String {
    format!(
        "removed {} {} ({}); {} {} ({}) left",
        removed.entries,
        plural(removed.entries),
        crate::stats_table::human(removed.bytes),
        removed.entries_left,
        plural(removed.entries_left),
        crate::stats_table::human(removed.bytes_left),
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "entry" } else { "entries" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_size_is_written_beside_the_other_settings_and_their_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "# my settings\nredis_endpoint = \"redis://h\" # shared\ncache_size = \"1G\"\n",
        )
        .unwrap();
        persist_max_size(&path, "20G").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# my settings"), "{text}");
        assert!(
            text.contains("redis_endpoint = \"redis://h\" # shared"),
            "{text}"
        );
        assert!(text.contains("cache_size = \"20G\""), "{text}");
        assert!(!text.contains("1G"), "{text}");
    }

    #[test]
    fn max_size_creates_a_private_file_where_none_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hoard/config.toml");
        persist_max_size(&path, "1.5G").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), "cache_size = \"1.5G\"");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_broken_config_file_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "cache_size = \n[[[").unwrap();
        let err = persist_max_size(&path, "2G").unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "cache_size = \n[[["
        );
    }

    #[test]
    fn a_max_size_of_zero_or_nonsense_is_refused_by_name() {
        assert!(
            parse_max_size("0")
                .unwrap_err()
                .to_string()
                .contains("\"0\"")
        );
        assert!(parse_max_size("lots").is_err());
        assert_eq!(parse_max_size("2G").unwrap(), 2 << 30);
    }
}
