//! A cargo build whose build script compiles C with the `cc` crate (issue 18), through
//! `CC="hoard gcc" RUSTC_WRAPPER=hoard`: a second clone at another path, with its own target
//! directory, hits its C compiles as well as its Rust ones, and every C object equals a plain
//! build's. A debug build's C objects carry debug information naming the clone, so there the
//! second clone misses, and its journal counts each miss under `paths_in_debug_info`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{HOARD, Sandbox, cargo, files_under, journal_lines, text, tools};

/// The fixture's C files: `csrc/part0.c` to `csrc/part5.c`.
const C_PARTS: usize = 6;

/// The fixture cloned to `at`, a git checkout (a `.git` directory marks its root).
fn clone(at: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cc-crate");
    for file in files_under(&from) {
        let rel = file.strip_prefix(&from).unwrap();
        if rel.starts_with("target") {
            continue;
        }
        std::fs::create_dir_all(at.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&file, at.join(rel)).unwrap();
    }
    std::fs::create_dir_all(at.join(".git")).unwrap();
}

/// `cargo build --offline` of the clone at `at` (target directory `at/target`), through
/// hoard when `journal` is given (recording there), plainly into `target` otherwise.
fn cargo_build(sandbox: &Sandbox, at: &Path, profile: &[&str], journal: Option<&Path>) {
    let mut cmd = if let Some(journal) = journal {
        let mut cmd = cargo::cargo_build(sandbox, at, &at.join("target"), true);
        cmd.env("CC", format!("{HOARD} gcc"))
            .env("HOARD_JOURNAL", journal);
        cmd
    } else {
        let mut cmd = cargo::cargo_build(sandbox, at, &at.join("plain"), false);
        cmd.env("CC", "gcc");
        cmd
    };
    cmd.args(profile);
    cargo::succeeded(&mut cmd, sandbox);
}

/// The journal's C lines (outputs ending in `.o`): their results, and the reasons misses gave.
fn c_results(journal: &Path) -> Vec<(String, Option<String>)> {
    journal_lines(journal)
        .into_iter()
        .filter(|l| {
            l["output"]
                .as_str()
                .is_some_and(|o| Path::new(o).extension().is_some_and(|e| e == "o"))
        })
        .map(|l| {
            (
                l["result"].as_str().unwrap().to_owned(),
                l["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Every object the `cc` crate wrote under `target`, by file name.
fn c_objects(target: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(target)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "o") && p.to_string_lossy().contains("/out/")
        })
        .map(|p: PathBuf| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_second_clone_hits_its_cc_crate_compiles_and_debug_misses_name_why() {
    if !tools::installed(&["gcc"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let first = sandbox.dir.path().join("work/first");
    let second = sandbox.dir.path().join("elsewhere/second");
    clone(&first);
    clone(&second);
    let journal = |name: &str| sandbox.dir.path().join(format!("{name}.jsonl"));

    cargo_build(&sandbox, &first, &["--release"], Some(&journal("first")));
    cargo_build(&sandbox, &second, &["--release"], Some(&journal("second")));
    let results = c_results(&journal("second"));
    assert_eq!(results.len(), C_PARTS, "{results:?}");
    assert!(
        results.iter().all(|(r, _)| r == "hit"),
        "the second clone's C compiles: {results:?}\n{}",
        sandbox.log()
    );
    cargo_build(&sandbox, &second, &["--release"], None);
    let through = c_objects(&second.join("target/release"));
    let plain = c_objects(&second.join("plain/release"));
    assert_eq!(through.len(), C_PARTS);
    assert!(
        through == plain,
        "the hits' objects differ from a plain build's"
    );

    // Debug builds: the `cc` crate passes `-gdwarf-4`, so the objects name the clone.
    cargo_build(&sandbox, &first, &[], Some(&journal("first-debug")));
    cargo_build(&sandbox, &second, &[], Some(&journal("second-debug")));
    let results = c_results(&journal("second-debug"));
    assert_eq!(results.len(), C_PARTS, "{results:?}");
    for (result, reason) in &results {
        assert_eq!(result, "miss");
        assert_eq!(reason.as_deref(), Some("paths_in_debug_info"));
    }
    let summary = sandbox
        .hoard()
        .args(["--show-stats", "--since-journal"])
        .arg(journal("second-debug"))
        .output()
        .unwrap();
    let summary = text(&summary.stdout);
    assert!(
        summary.contains("paths_in_debug_info"),
        "the summary names why: {summary}"
    );
}
