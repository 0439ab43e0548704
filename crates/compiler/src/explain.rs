//! Why a compile hits or misses (`hoard --explain`). Every field a key recipe hashes is
//! also noted while a compile runs through the pipeline ([`recording`]); when a result is
//! stored, those inputs are kept as a small record beside the cache, one per output path
//! (`HOARD_DIR/explain/`). [`explain`] computes a command's inputs the same way without
//! compiling, and compares them with the record of the last entry stored for its output.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hoard_storage::{CacheKey, OutputPath};
use serde::{Deserialize, Serialize};

use crate::classify::Kind;
use crate::manifest::FileDigests;
use crate::{CommandLine, Language, NonCacheable, PipelineConfig, classify, key};

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

/// Names of fields that belong to the field before them (a file's digest, a variable's
/// value): they are shown and compared as one input.
fn attaches_to_previous(name: &str) -> bool {
    name.ends_with("digest") || matches!(name, "env-value" | "set" | "unset")
}

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
    fn new(name: &str, value: &[u8]) -> Self {
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

fn noted() -> Vec<Input> {
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

/// Keeps the inputs noted so far as the record of the entry just stored under `key` for
/// `outputs` (the first one names it). Best effort: explaining is never worth a failed
/// compile, so a write that fails is only logged.
pub(crate) fn remember(state_dir: &Path, outputs: &[OutputPath], key: &CacheKey) {
    let Some(output) = outputs.first() else {
        return;
    };
    let record = InputRecord {
        key: key.to_string(),
        output: output.path.clone(),
        stored_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        inputs: noted(),
    };
    let path = record_path(state_dir, &output.path);
    let written = serde_json::to_vec(&record)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            let dir = path.parent().unwrap_or(state_dir);
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, &bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        });
    if let Err(e) = written {
        tracing::debug!(path = %path.display(), error = %e, "input record not kept");
    }
}

fn read_record(state_dir: &Path, output: &Path) -> Option<InputRecord> {
    let bytes = std::fs::read(record_path(state_dir, output)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// How one input differs from the earlier entry's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The same input with another value (a file's digest, a variable, the compiler).
    Changed {
        /// The input (`include k.h`, `identity`, `LANG`).
        input: String,
        /// Its value then.
        was: String,
        /// Its value now.
        now: String,
    },
    /// An input only this command has.
    Added {
        /// The input.
        input: String,
    },
    /// An input only the earlier entry had.
    Removed {
        /// The input.
        input: String,
    },
}

/// The entry last stored for the same output, and how this command's inputs differ from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierEntry {
    /// Its record.
    pub record: InputRecord,
    /// Every difference; empty when the inputs are the same.
    pub differences: Vec<Difference>,
}

/// What `hoard --explain` reports about one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The command's language, or why it is not cached.
    pub cacheable: Result<Language, NonCacheable>,
    /// The key a lookup starts from: the direct-mode (manifest) key.
    pub key: Option<CacheKey>,
    /// Every input, grouped (a file with its digest).
    pub inputs: Vec<(String, String)>,
    /// Whether a stored manifest names a result for the current inputs.
    pub in_cache: bool,
    /// The entry last stored for the same output, if any.
    pub earlier: Option<EarlierEntry>,
}

/// Inputs grouped: a field with the fields attached to it become one `(input, value)`.
fn grouped(fields: &[Input]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut attachable = false;
    for field in fields {
        if attaches_to_previous(&field.name)
            && attachable
            && let Some(last) = out.last_mut()
        {
            last.0 = format!("{} {}", last.0, last.1);
            last.1.clone_from(&field.value);
            attachable = false;
            continue;
        }
        out.push((field.name.clone(), field.value.clone()));
        attachable = true;
    }
    out
}

/// Compares grouped inputs: an input whose name occurs once on each side is compared by
/// value; the rest (repeated fields such as `arg`) as multisets.
fn differences(earlier: &[(String, String)], now: &[(String, String)]) -> Vec<Difference> {
    let count = |list: &[(String, String)], name: &str| list.iter().filter(|i| i.0 == name).count();
    let mut out = Vec::new();
    let mut unmatched_now: Vec<&(String, String)> = now.iter().collect();
    for was in earlier {
        if let Some(i) = unmatched_now.iter().position(|n| *n == was) {
            unmatched_now.remove(i);
            continue;
        }
        let single = count(earlier, &was.0) == 1 && count(now, &was.0) == 1;
        match unmatched_now
            .iter()
            .position(|n| n.0 == was.0)
            .filter(|_| single)
        {
            Some(i) => {
                let now = unmatched_now.remove(i);
                out.push(Difference::Changed {
                    input: was.0.clone(),
                    was: was.1.clone(),
                    now: now.1.clone(),
                });
            }
            None => out.push(Difference::Removed {
                input: format!("{} {}", was.0, was.1),
            }),
        }
    }
    out.extend(unmatched_now.into_iter().map(|n| Difference::Added {
        input: format!("{} {}", n.0, n.1),
    }));
    out
}

/// Explains `command` without running it: whether it is cacheable, its key and inputs,
/// whether the cache can serve it, and how it differs from the entry last stored for the
/// same output. `manifest` looks a manifest up by key (the wrapper reads its local store).
pub async fn explain(
    command: &CommandLine,
    config: &PipelineConfig,
    manifest: impl Fn(&CacheKey) -> Option<Vec<u8>>,
) -> Explanation {
    let compile = match classify(command, config) {
        Ok(compile) => compile,
        Err(reason) => {
            return Explanation {
                cacheable: Err(reason),
                key: None,
                inputs: Vec::new(),
                in_cache: false,
                earlier: None,
            };
        }
    };
    let output = compile.outputs().first().map(|o| o.path.clone());
    let earlier = output
        .as_deref()
        .and_then(|o| read_record(&config.state_dir, o));
    let earlier_fields = earlier
        .as_ref()
        .map(|r| r.inputs.clone())
        .unwrap_or_default();
    let (key, in_cache, fields) = recording(async {
        let (key, in_cache) = match &compile.kind {
            Kind::C(c) => explain_c(&compile, c, config, &earlier_fields, &manifest),
            Kind::Rust(rust) => {
                crate::rust::explain_inputs(&compile, rust, &earlier_fields, &manifest)
            }
        };
        (key, in_cache, noted())
    })
    .await;
    let inputs = grouped(&fields);
    let earlier = earlier.map(|record| {
        let differences = differences(&grouped(&record.inputs), &inputs);
        EarlierEntry {
            record,
            differences,
        }
    });
    Explanation {
        cacheable: Ok(compile.language()),
        key,
        inputs,
        in_cache,
        earlier,
    }
}

/// The files an earlier record lists under `name` (each followed by its digest), with the
/// digests they have now; a file that cannot be read has none.
pub(crate) fn files_now(
    earlier: &[Input],
    name: &str,
    cwd: &Path,
    digests: &mut FileDigests,
) -> Vec<(Vec<u8>, Option<[u8; 32]>)> {
    earlier
        .iter()
        .filter(|i| i.name == name)
        .map(|i| {
            let path = cwd.join(OsStr::new(&i.value));
            (i.value.as_bytes().to_vec(), digests.digest(&path))
        })
        .collect()
}

fn explain_c(
    compile: &crate::CacheableCompile,
    c: &crate::classify::CCompile,
    config: &PipelineConfig,
    earlier: &[Input],
    manifest: &impl Fn(&CacheKey) -> Option<Vec<u8>>,
) -> (Option<CacheKey>, bool) {
    let common = key::common(compile, c);
    let Ok(source) = std::fs::read(&c.source_path) else {
        return (None, false);
    };
    let source_digest = *blake3::hash(&source).as_bytes();
    if !compile.language().is_preprocessed() {
        let key = key::unpreprocessed_key(&common, &source_digest);
        return (Some(key), false);
    }
    let manifest_key = key::manifest_key(&common, c, &source_digest);
    let cwd = &compile.command().cwd;
    let mut digests = FileDigests::with_table(&config.state_dir);
    // The headers the earlier entry read, as they are now: noted as a depend-mode key
    // notes them, so a changed header shows as that header's digest changing.
    let includes = files_now(earlier, "include", cwd, &mut digests);
    let listed: Vec<(&[u8], &[u8; 32])> = includes
        .iter()
        .map(|(path, digest)| (path.as_slice(), digest.as_ref().unwrap_or(&[0; 32])))
        .collect();
    if !listed.is_empty() {
        key::depend_key(&manifest_key, &listed);
    }
    let in_cache = manifest(&manifest_key)
        .map(|bytes| crate::manifest::Manifest::decode(&bytes))
        .and_then(|m| m.find(cwd, &mut digests))
        .is_some();
    (Some(manifest_key), in_cache)
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cacheable {
            Err(reason) => return writeln!(f, "not cacheable: {reason}"),
            Ok(language) => writeln!(f, "cacheable: yes ({})", language.name())?,
        }
        if let Some(key) = &self.key {
            writeln!(f, "key: {key}")?;
        }
        writeln!(f, "inputs:")?;
        for (input, value) in &self.inputs {
            writeln!(f, "  {input:<28} {value}")?;
        }
        let verdict = if self.in_cache {
            "yes (a hit)"
        } else {
            "no (a miss)"
        };
        writeln!(f, "in the cache: {verdict}")?;
        let Some(earlier) = &self.earlier else {
            return writeln!(f, "no earlier entry for this output");
        };
        writeln!(
            f,
            "earlier entry for {}: key {}, stored at {} (unix seconds)",
            earlier.record.output.display(),
            earlier.record.key,
            earlier.record.stored_at
        )?;
        if earlier.differences.is_empty() {
            return writeln!(f, "  inputs are the same as that entry's");
        }
        writeln!(f, "differs from it in:")?;
        for difference in &earlier.differences {
            match difference {
                Difference::Changed { input, was, now } => {
                    writeln!(f, "  changed  {input}: {was} -> {now}")?;
                }
                Difference::Added { input } => writeln!(f, "  added    {input}")?,
                Difference::Removed { input } => writeln!(f, "  removed  {input}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

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
        assert_eq!(
            got,
            inputs(&[
                ("arg", "-O2"),
                ("include-digest", &"ab".repeat(32)),
                ("LANG", "")
            ])
        );
        assert!(noted().is_empty(), "nothing is noted outside a recording");
    }

    #[test]
    fn a_file_and_its_digest_group_into_one_input() {
        let fields = vec![
            Input::new("arg", b"-O2"),
            Input::new("include", b"k.h"),
            Input::new("include-digest", &[1; 32]),
            Input::new("env", b"CARGO_PKG_NAME"),
            Input::new("env-value", b"app"),
        ];
        let grouped = grouped(&fields);
        assert_eq!(grouped[0], ("arg".to_owned(), "-O2".to_owned()));
        assert_eq!(grouped[1], ("include k.h".to_owned(), "01".repeat(32)));
        assert_eq!(
            grouped[2],
            ("env CARGO_PKG_NAME".to_owned(), "app".to_owned())
        );
    }

    #[test]
    fn a_changed_define_is_one_removed_and_one_added_argument() {
        let was = inputs(&[("arg", "-O2"), ("arg", "-DV=1"), ("identity", "aa")]);
        let now = inputs(&[("arg", "-O2"), ("arg", "-DV=2"), ("identity", "aa")]);
        assert_eq!(
            differences(&was, &now),
            vec![
                Difference::Removed {
                    input: "arg -DV=1".into()
                },
                Difference::Added {
                    input: "arg -DV=2".into()
                }
            ]
        );
    }

    #[test]
    fn a_single_input_with_another_value_is_changed() {
        let was = inputs(&[("include k.h", "aa"), ("identity", "x")]);
        let now = inputs(&[("include k.h", "bb"), ("identity", "x")]);
        assert_eq!(
            differences(&was, &now),
            vec![Difference::Changed {
                input: "include k.h".into(),
                was: "aa".into(),
                now: "bb".into()
            }]
        );
        assert!(differences(&now, &now).is_empty());
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
