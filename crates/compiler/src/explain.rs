//! Why a compile hits or misses (`hoard --explain`). [`explain`] classifies a command,
//! computes its inputs the way its family's keys do without compiling (the fields are noted
//! through [`crate::record`]), and compares them with the record of the last entry stored for
//! its output.

use hoard_storage::CacheKey;

use crate::classify::{Kind, classify};
use crate::command::{CommandLine, PipelineConfig};
use crate::explain_moved::{MovedDirectory, moved_directory};
pub use crate::input_diff::Difference;
use crate::input_diff::{differences, grouped, shown};
use crate::language::Language;
use crate::reason::NonCacheable;
use crate::record::{InputRecord, noted, read_record, recording};

/// The entry last stored for the same output, and how this command's inputs differ from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierEntry {
    /// Its record.
    pub record: InputRecord,
    /// Every difference; empty when the inputs are the same.
    pub differences: Vec<Difference>,
    /// The directory under no base that alone makes the differences, if one does.
    pub moved: Option<MovedDirectory>,
    /// The base directories of this compile (C and C++), for the `HOARD_BASEDIRS` to suggest.
    pub bases: Vec<std::path::PathBuf>,
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
    /// The key of that result, when one is named.
    pub result_key: Option<CacheKey>,
    /// The entry last stored for the same output, if any.
    pub earlier: Option<EarlierEntry>,
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
                result_key: None,
                earlier: None,
            };
        }
    };
    let output = compile.outputs().first().map(|o| o.path.clone());
    let earlier = output
        .as_deref()
        .and_then(|o| read_record(&config.state_dir, &command.cwd, o));
    let earlier_fields = earlier
        .as_ref()
        .map(|r| r.inputs.clone())
        .unwrap_or_default();
    let (key, result_key, fields) = recording(async {
        let (key, result_key) = match &compile.kind {
            Kind::C(c) => crate::c::explain_inputs(&compile.base, c, &earlier_fields, &manifest),
            Kind::Rust(rust) => {
                crate::rust::explain_inputs(&compile.base, rust, &earlier_fields, &manifest)
            }
        };
        (key, result_key, noted())
    })
    .await;
    let inputs = grouped(&fields);
    let bases = match &compile.kind {
        Kind::C(c) => crate::path_policy::basedirs(&command.env, &command.cwd, &c.source_path),
        Kind::Rust(_) => Vec::new(),
    };
    let earlier = earlier.map(|record| {
        let was = grouped(&record.inputs);
        EarlierEntry {
            differences: differences(&was, &inputs),
            moved: moved_directory(&was, &inputs),
            bases,
            record,
        }
    });
    Explanation {
        cacheable: Ok(compile.language()),
        key,
        inputs,
        in_cache: result_key.is_some(),
        result_key,
        earlier,
    }
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
            writeln!(f, "  {input:<28} {}", shown(value))?;
        }
        let verdict = if self.in_cache {
            "yes (a hit)"
        } else {
            "no (a miss)"
        };
        writeln!(f, "in the cache: {verdict}")?;
        if let Some(result) = &self.result_key {
            writeln!(f, "result key: {result}")?;
        }
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
                    writeln!(f, "  changed  {input}: {} -> {}", shown(was), shown(now))?;
                }
                Difference::Added { input } => writeln!(f, "  added    {}", shown(input))?,
                Difference::Removed { input } => writeln!(f, "  removed  {}", shown(input))?,
            }
        }
        if let Some(moved) = &earlier.moved {
            let mut bases: Vec<String> = earlier
                .bases
                .iter()
                .map(|b| b.display().to_string())
                .collect();
            bases.push(moved.now.clone());
            writeln!(
                f,
                "differs only in the directory {} (now {}), which is under no base directory; \
                 set HOARD_BASEDIRS={} here (and its counterpart where the earlier entry was \
                 built) to share",
                moved.was,
                moved.now,
                bases.join(":")
            )?;
        }
        Ok(())
    }
}
