//! The explain record: every field a key recipe hashes is noted while a compile runs
//! ([`recording`], [`note`]); when a result is stored, those inputs are kept as a small record
//! beside the cache, one per output path (`HOARD_DIR/explain/`), for `hoard --explain` to
//! compare a later command with ([`crate::explain`]).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hoard_storage::{CacheKey, OutputPath};
use serde::{Deserialize, Serialize};

tokio::task_local! {
    /// The fields hashed so far by the compile this task runs, as raw bytes: each is a
    /// length-prefixed name then a length-prefixed value. Every compile records, hits too,
    /// and most never need the record, so noting a field is one append to one buffer; the
    /// fields become [`Input`]s only when they are kept or shown.
    static RECORDED: RefCell<Vec<u8>>;
}

/// Fields that are not inputs of their own: digests of other noted fields, and the key a
/// depend-mode miss looks up only to be counted.
const NOT_INPUTS: &[&str] = &["common", "manifest", "miss-probe"];

/// One input that went into a key: the recipe's field name and its value as text (digests
/// and long or binary values as hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// The field (`arg`, `identity`, `include`, `include-digest`, `LANG`, ...).
    pub name: String,
    /// Its value.
    pub value: String,
}

impl Input {
    pub(crate) fn new(name: &str, value: &[u8]) -> Self {
        let printable = value.len() <= 512
            && std::str::from_utf8(value).is_ok_and(|s| !s.chars().any(char::is_control));
        let value = if printable {
            String::from_utf8_lossy(value).into_owned()
        } else if value.len() == blake3::OUT_LEN {
            hex(value)
        } else {
            format!(
                "{} bytes, blake3 {}",
                value.len(),
                blake3::hash(value).to_hex()
            )
        };
        Self {
            name: name.to_owned(),
            value,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Notes a field a recipe hashes, if the running task records (see [`recording`]).
pub(crate) fn note(name: &str, value: &[u8]) {
    if NOT_INPUTS.contains(&name) {
        return;
    }
    let _ = RECORDED.try_with(|fields| {
        let mut fields = fields.borrow_mut();
        for part in [name.as_bytes(), value] {
            fields.extend_from_slice(&(part.len() as u64).to_le_bytes());
            fields.extend_from_slice(part);
        }
    });
}

/// Runs `fut` with every hashed field noted, for [`remember`] to keep.
pub(crate) async fn recording<F: std::future::Future>(fut: F) -> F::Output {
    RECORDED
        .scope(RefCell::new(Vec::with_capacity(4096)), fut)
        .await
}

/// The fields noted so far by the running task, as inputs.
pub(crate) fn noted() -> Vec<Input> {
    RECORDED
        .try_with(|fields| decode_noted(&fields.borrow()))
        .unwrap_or_default()
}

/// The fields of a record [`note`] wrote, in order.
fn decode_noted(mut raw: &[u8]) -> Vec<Input> {
    let mut take = || -> Option<&[u8]> {
        let (len, rest) = raw.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        let part = rest.get(..len)?;
        raw = &rest[len..];
        Some(part)
    };
    let mut inputs = Vec::new();
    while let (Some(name), Some(value)) = (take(), take()) {
        inputs.push(Input::new(&String::from_utf8_lossy(name), value));
    }
    inputs
}

/// What is kept of a stored entry: its key, when, for which output, and its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The key the entry was stored under, in hex.
    pub key: String,
    /// The output it was stored for.
    pub output: PathBuf,
    /// When, in seconds since the Unix epoch.
    pub stored_at: u64,
    /// Every input, in the order the recipes hashed them.
    pub inputs: Vec<Input>,
}

fn record_path(state_dir: &Path, output: &Path) -> PathBuf {
    let name = blake3::hash(output.as_os_str().as_bytes()).to_hex();
    state_dir
        .join("explain")
        .join(format!("{}.json", &name[..32]))
}

/// Where the record of an output is also kept by its path relative to the compile's working
/// directory, so the same compile in another checkout or build directory finds it (its own
/// output path differs). `None` for an output outside the working directory.
fn relative_record_path(state_dir: &Path, cwd: &Path, output: &Path) -> Option<PathBuf> {
    let relative = output.strip_prefix(cwd).ok()?;
    let name = blake3::hash(relative.as_os_str().as_bytes()).to_hex();
    Some(
        state_dir
            .join("explain")
            .join(format!("relative-{}.json", &name[..32])),
    )
}

/// Keeps the inputs noted so far as the record of the entry just stored under `key` for
/// `outputs` (the first one names it), and returns that record (`None` with no outputs).
/// Best effort: explaining is never worth a failed compile, so a write that fails is only
/// logged.
pub(crate) fn remember(
    state_dir: &Path,
    cwd: &Path,
    outputs: &[OutputPath],
    key: &CacheKey,
) -> Option<InputRecord> {
    let output = outputs.first()?;
    let record = InputRecord {
        key: key.to_string(),
        output: output.path.clone(),
        stored_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        inputs: noted(),
    };
    let Ok(bytes) = serde_json::to_vec(&record) else {
        return Some(record);
    };
    let paths = std::iter::once(record_path(state_dir, &output.path)).chain(relative_record_path(
        state_dir,
        cwd,
        &output.path,
    ));
    for path in paths {
        let written = (|| {
            let dir = path.parent().unwrap_or(state_dir);
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, &bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok::<(), std::io::Error>(())
        })();
        if let Err(e) = written {
            tracing::debug!(path = %path.display(), error = %e, "input record not kept");
        }
    }
    Some(record)
}

/// The record last kept for `output`, if any; else the record last kept for the output at
/// the same place relative to the working directory `cwd` (the same compile in another
/// checkout or build directory).
pub(crate) fn read_record(state_dir: &Path, cwd: &Path, output: &Path) -> Option<InputRecord> {
    let read = |path: PathBuf| -> Option<InputRecord> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    read(record_path(state_dir, output))
        .or_else(|| read(relative_record_path(state_dir, cwd, output)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn noted_fields_come_back_in_order_as_inputs() {
        let digest = [0xabu8; 32];
        let fields = recording(async {
            note("arg", b"-O2");
            note("common", b"not an input");
            note("include-digest", &digest);
            note("LANG", b"");
            noted()
        })
        .await;
        let got: Vec<(String, String)> = fields.into_iter().map(|i| (i.name, i.value)).collect();
        let want: Vec<(String, String)> = [
            ("arg", "-O2".to_owned()),
            ("include-digest", "ab".repeat(32)),
            ("LANG", String::new()),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b))
        .collect();
        assert_eq!(got, want);
        assert!(noted().is_empty(), "nothing is noted outside a recording");
    }

    #[test]
    fn binary_values_are_shown_as_digests_and_text_as_text() {
        assert_eq!(Input::new("arg", b"-DX").value, "-DX");
        assert_eq!(Input::new("d", &[0xab; 32]).value, "ab".repeat(32));
        assert!(
            Input::new("p", &[0; 40])
                .value
                .starts_with("40 bytes, blake3 ")
        );
    }
}
