//! How a compile's inputs differ from the record of the entry last stored for its output:
//! inputs grouped as a user reads them (a file with its digest), compared, and put in a few
//! words for the journal's miss reason. `hoard --explain` shows the whole comparison; a miss
//! that stores a new entry is described by the same comparison, so the two never disagree.

use std::fmt::Write as _;

use crate::record::{Input, InputRecord};

/// How many distinct differing inputs a miss reason names before it only counts the rest.
const NAMED_IN_REASON: usize = 3;
/// The longest value a changed input is shown with in a miss reason, in characters.
const SHORT_VALUE: usize = 24;
/// The longest a differing input is shown in a miss reason, in characters.
const SHOWN_IN_REASON: usize = 80;

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

/// Inputs grouped: a field with the fields attached to it become one `(input, value)`.
pub(crate) fn grouped(fields: &[Input]) -> Vec<(String, String)> {
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
pub(crate) fn differences(
    earlier: &[(String, String)],
    now: &[(String, String)],
) -> Vec<Difference> {
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

/// A noted value as a user reads it: a C base directory's placeholder (a path under the
/// n-th base, hashed so another checkout shares the key) shows as `<base n>`.
pub(crate) fn shown(value: &str) -> String {
    value.replace('\u{1}', "<base ").replace('\u{2}', ">")
}

/// Why a compile that just stored an entry missed, in a few words for the journal: the first
/// compile of its output (no `earlier` record), or which inputs differ from `earlier`, the
/// record of the entry last stored for the same output (`now` are this compile's inputs).
pub(crate) fn miss_reason(earlier: Option<&InputRecord>, now: &[Input]) -> String {
    let Some(earlier) = earlier else {
        return "first compile of this output".to_owned();
    };
    let found = differences(&grouped(&earlier.inputs), &grouped(now));
    if found.is_empty() {
        return "same inputs as the entry last stored for this output (evicted or removed since)"
            .to_owned();
    }
    // Per kind of difference, each input named once with how often it differs.
    let mut parts: [(&str, Vec<(String, usize)>); 3] = [
        ("changed", Vec::new()),
        ("added", Vec::new()),
        ("removed", Vec::new()),
    ];
    let mut named = 0;
    for difference in &found {
        let (slot, label) = match difference {
            // A short value (an argument, a variable) says more than its name; a digest
            // does not.
            Difference::Changed { input, was, now }
                if was.chars().count() <= SHORT_VALUE && now.chars().count() <= SHORT_VALUE =>
            {
                (
                    0,
                    format!("{} ({} -> {})", label(input), shown(was), shown(now)),
                )
            }
            Difference::Changed { input, .. } => (0, label(input)),
            Difference::Added { input } => (1, label(input)),
            Difference::Removed { input } => (2, label(input)),
        };
        let labels = &mut parts[slot].1;
        if let Some(seen) = labels.iter_mut().find(|(l, _)| *l == label) {
            seen.1 += 1;
        } else if named < NAMED_IN_REASON {
            labels.push((label, 1));
            named += 1;
        }
    }
    let shown_count: usize = parts
        .iter()
        .flat_map(|(_, l)| l.iter().map(|(_, n)| n))
        .sum();
    let mut reason = parts
        .iter()
        .filter(|(_, labels)| !labels.is_empty())
        .map(|(what, labels)| {
            let labels: Vec<String> = labels
                .iter()
                .map(|(label, n)| match n {
                    1 => label.clone(),
                    n => format!("{label} \u{d7}{n}"),
                })
                .collect();
            format!("{what}: {}", labels.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    if found.len() > shown_count {
        let _ = write!(reason, " (and {} more)", found.len() - shown_count);
    }
    reason
}

/// An input as a miss reason names it: as shown, clipped; an input named by an opaque value
/// (`extern-path 49 bytes, blake3 ...`, a path with placeholders) only by its field.
fn label(input: &str) -> String {
    match input.split_once(' ') {
        Some((field, value)) if value.contains(" bytes, blake3 ") => field.to_owned(),
        _ => clipped(&shown(input)),
    }
}

/// `text` cut to [`SHOWN_IN_REASON`] characters, with an ellipsis when it was longer.
fn clipped(text: &str) -> String {
    if text.chars().count() <= SHOWN_IN_REASON {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(SHOWN_IN_REASON - 1).collect();
    cut.push('…');
    cut
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

    fn record(fields: &[(&str, &[u8])]) -> InputRecord {
        InputRecord {
            key: "00".into(),
            output: "/w/a.o".into(),
            stored_at: 0,
            inputs: fields.iter().map(|(n, v)| Input::new(n, v)).collect(),
        }
    }

    #[test]
    fn a_miss_reason_names_a_first_compile_or_what_changed() {
        let was = record(&[
            ("arg", b"-O2"),
            ("include", b"k.h"),
            ("include-digest", &[1; 32]),
        ]);
        let now = record(&[
            ("arg", b"-O3"),
            ("include", b"k.h"),
            ("include-digest", &[2; 32]),
        ]);
        assert_eq!(
            miss_reason(None, &now.inputs),
            "first compile of this output"
        );
        assert_eq!(
            miss_reason(Some(&was), &now.inputs),
            "changed: arg (-O2 -> -O3), include k.h"
        );
        assert!(miss_reason(Some(&was), &was.inputs).starts_with("same inputs"));
        let was = record(&[("arg", b"-c"), ("arg", b"-DV=1")]);
        let now = record(&[("arg", b"-c"), ("arg", b"-DV=2")]);
        assert_eq!(
            miss_reason(Some(&was), &now.inputs),
            "added: arg -DV=2; removed: arg -DV=1"
        );
    }

    #[test]
    fn a_miss_reason_names_a_few_inputs_and_counts_the_rest() {
        let many: Vec<(String, Vec<u8>)> = (0..10)
            .map(|i| (format!("env V{i}"), vec![b'a'; 200]))
            .collect();
        let fields: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let now = record(&fields);
        let reason = miss_reason(Some(&record(&[])), &now.inputs);
        assert!(reason.starts_with("added: "), "{reason}");
        assert!(reason.ends_with(" (and 7 more)"), "{reason}");
        assert!(reason.contains('…'), "long inputs are clipped: {reason}");
    }

    #[test]
    fn a_miss_reason_names_opaque_inputs_by_their_field_and_counts_them() {
        let was = record(&[
            ("extern-path", b"\x01cwd\x02/a"),
            ("extern-path", b"\x01cwd\x02/b"),
        ]);
        let now = record(&[
            ("extern-path", b"\x01cwd\x02/c"),
            ("extern-path", b"\x01cwd\x02/d"),
        ]);
        assert_eq!(
            miss_reason(Some(&was), &now.inputs),
            "added: extern-path \u{d7}2; removed: extern-path \u{d7}2"
        );
    }
}
