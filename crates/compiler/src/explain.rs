//! Why a compile hits or misses (`hoard --explain`). [`explain`] classifies a command,
//! computes its inputs the way its family's keys do without compiling (the fields are noted
//! through [`crate::record`]), and compares them with the record of the last entry stored for
//! its output.

use hoard_storage::CacheKey;

use crate::classify::{Kind, classify};
use crate::command::{CommandLine, PipelineConfig};
use crate::explain_moved::{MovedDirectory, moved_directory};
use crate::language::Language;
use crate::reason::NonCacheable;
use crate::record::{Input, InputRecord, noted, read_record, recording};

/// Names of fields that belong to the field before them (a file's digest, a variable's
/// value): they are shown and compared as one input.
fn attaches_to_previous(name: &str) -> bool {
    name.ends_with("digest") || matches!(name, "env-value" | "set" | "unset")
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

/// A noted value as a user reads it: a C base directory's placeholder (a path under the
/// n-th base, hashed so another checkout shares the key) shows as `<base n>`.
fn shown(value: &str) -> String {
    value.replace('\u{1}', "<base ").replace('\u{2}', ">")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
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
}
