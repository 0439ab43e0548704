//! `hoard --explain`: after a compile is stored, explaining the same command with one input
//! changed names exactly that input (a header, a define, an environment variable, the
//! compiler, a Rust `--cfg`), and an unchanged command is a hit with no differences.

use std::path::Path;

use crate::support::{Sandbox, text};

fn run(sandbox: &Sandbox, dir: &Path, env: &[(&str, &str)], command: &[&str]) {
    let out = sandbox
        .hoard()
        .current_dir(dir)
        .envs(env.iter().copied())
        .args(command)
        .output()
        .unwrap();
    assert!(out.status.success(), "{command:?}: {}", text(&out.stderr));
}

fn explain(sandbox: &Sandbox, dir: &Path, env: &[(&str, &str)], command: &[&str]) -> String {
    let out = sandbox
        .hoard()
        .current_dir(dir)
        .envs(env.iter().copied())
        .arg("--explain")
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The lines after "differs from it in:".
fn differences(report: &str) -> Vec<String> {
    report
        .lines()
        .skip_while(|l| !l.starts_with("differs from it in:"))
        .skip(1)
        .map(|l| l.trim().to_owned())
        .collect()
}

fn c_project(sandbox: &Sandbox) -> std::path::PathBuf {
    let dir = sandbox.dir.path().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("k.h"), "#define K 1\n").unwrap();
    std::fs::write(
        dir.join("a.c"),
        "#include \"k.h\"\nint f(void) { return K + V; }\n",
    )
    .unwrap();
    dir
}

const COMPILE: &[&str] = &["gcc", "-O2", "-DV=1", "-c", "a.c", "-o", "a.o"];

#[test]
fn an_unchanged_command_is_in_the_cache_and_differs_in_nothing() {
    let sandbox = Sandbox::new();
    let dir = c_project(&sandbox);
    run(&sandbox, &dir, &[], COMPILE);
    let report = explain(&sandbox, &dir, &[], COMPILE);
    assert!(report.contains("cacheable: yes (c)"), "{report}");
    assert!(report.contains("in the cache: yes"), "{report}");
    assert!(report.contains("include k.h"), "{report}");
    assert!(report.contains("inputs are the same"), "{report}");
    assert!(
        !sandbox.dir.path().join("p/a.o.tmp").exists(),
        "explaining runs nothing"
    );
}

#[test]
fn a_changed_header_is_named() {
    let sandbox = Sandbox::new();
    let dir = c_project(&sandbox);
    run(&sandbox, &dir, &[], COMPILE);
    std::fs::write(dir.join("k.h"), "#define K 2\n").unwrap();
    let report = explain(&sandbox, &dir, &[], COMPILE);
    assert!(report.contains("in the cache: no"), "{report}");
    let diffs = differences(&report);
    assert_eq!(diffs.len(), 1, "{report}");
    assert!(diffs[0].starts_with("changed  include k.h:"), "{report}");
}

#[test]
fn a_changed_define_is_named() {
    let sandbox = Sandbox::new();
    let dir = c_project(&sandbox);
    run(&sandbox, &dir, &[], COMPILE);
    let changed = ["gcc", "-O2", "-DV=2", "-c", "a.c", "-o", "a.o"];
    let diffs = differences(&explain(&sandbox, &dir, &[], &changed));
    assert_eq!(diffs, ["changed  preprocessor-arg: -DV=1 -> -DV=2"]);
}

#[test]
fn a_changed_environment_variable_is_named() {
    let sandbox = Sandbox::new();
    let dir = c_project(&sandbox);
    let before = [("SOURCE_DATE_EPOCH", "1000")];
    run(&sandbox, &dir, &before, COMPILE);
    let after = [("SOURCE_DATE_EPOCH", "2000")];
    let diffs = differences(&explain(&sandbox, &dir, &after, COMPILE));
    assert_eq!(diffs, ["changed  SOURCE_DATE_EPOCH: 1000 -> 2000"]);
}

#[test]
fn a_changed_compiler_is_named() {
    let sandbox = Sandbox::new();
    let dir = c_project(&sandbox);
    // A compiler of our own at a fixed path, then another build of "it": a script that
    // runs gcc, rewritten with one more line (its identity covers the program's bytes).
    let cc = dir.join("cc");
    let write_cc = |body: &str| {
        let _ = std::fs::remove_file(&cc);
        std::fs::write(&cc, body).unwrap();
        std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    write_cc("#!/bin/sh\nexec gcc \"$@\"\n");
    let own = ["./cc", "-O2", "-DV=1", "-c", "a.c", "-o", "a.o"];
    run(&sandbox, &dir, &[], &own);
    write_cc("#!/bin/sh\n# rebuilt\nexec gcc \"$@\"\n");
    let diffs = differences(&explain(&sandbox, &dir, &[], &own));
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(diffs[0].starts_with("changed  identity:"), "{diffs:?}");
}

#[test]
fn a_changed_rust_cfg_is_named() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("r");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        "#[cfg(feature = \"loud\")]\npub fn f() -> u32 { 2 }\n#[cfg(not(feature = \"loud\"))]\npub fn f() -> u32 { 1 }\n",
    )
    .unwrap();
    let rustc = |feature: &'static str| -> Vec<&'static str> {
        vec![
            "rustc",
            "--crate-name",
            "demo",
            "--edition=2021",
            "src/lib.rs",
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "-C",
            "debuginfo=2",
            "--cfg",
            feature,
            "-C",
            "metadata=0123abcd",
            "--out-dir",
            "out",
        ]
    };
    run(&sandbox, &dir, &[], &rustc("feature=\"quiet\""));
    let report = explain(&sandbox, &dir, &[], &rustc("feature=\"quiet\""));
    assert!(report.contains("in the cache: yes"), "{report}");
    assert!(report.contains("file src/lib.rs"), "{report}");
    let report = explain(&sandbox, &dir, &[], &rustc("feature=\"loud\""));
    let diffs = differences(&report);
    assert_eq!(diffs.len(), 2, "{report}");
    assert_eq!(diffs[0], "removed  arg --cfg=feature=\"quiet\"", "{report}");
    assert_eq!(diffs[1], "added    arg --cfg=feature=\"loud\"", "{report}");
}

#[test]
fn a_linking_command_is_explained_as_not_cacheable_with_its_reason() {
    let sandbox = Sandbox::new();
    let dir = c_project(&sandbox);
    let report = explain(&sandbox, &dir, &[], &["gcc", "a.c", "-o", "a"]);
    assert!(
        report.starts_with("not cacheable: the command links"),
        "{report}"
    );
}

fn as_str(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_second_checkout_apart_only_by_a_directory_under_no_base_is_told_how_to_share() {
    let sandbox = Sandbox::new();
    let top = sandbox.dir.path().canonicalize().unwrap();
    // Two checkouts, each beside its own copy of a dependency's headers (outside both).
    for (checkout, deps) in [("one/app", "one/deps"), ("two/app", "two/deps")] {
        std::fs::create_dir_all(top.join(checkout).join(".git")).unwrap();
        std::fs::create_dir_all(top.join(deps).join("inc")).unwrap();
        std::fs::write(top.join(deps).join("inc/d.h"), "#define D 4\n").unwrap();
        std::fs::write(
            top.join(checkout).join("a.c"),
            "#include <d.h>\nint f(void) { return D; }\n",
        )
        .unwrap();
    }
    let compile = |n: &str| {
        [
            "gcc".to_owned(),
            "-O2".to_owned(),
            format!("-I{}/{n}/deps/inc", top.display()),
            "-c".to_owned(),
            "a.c".to_owned(),
            "-o".to_owned(),
            "a.o".to_owned(),
        ]
    };
    let args = compile;
    let (one, two) = (top.join("one/app"), top.join("two/app"));
    run(&sandbox, &one, &[], &as_str(&args("one")));
    let report = explain(&sandbox, &two, &[], &as_str(&args("two")));
    assert!(report.contains("in the cache: no"), "{report}");
    let advice = report
        .lines()
        .find(|l| l.starts_with("differs only in the directory"))
        .unwrap_or_else(|| panic!("no advice: {report}"));
    let (was, now) = (top.join("one"), top.join("two"));
    assert!(
        advice.contains(&format!("{} (now {})", was.display(), now.display())),
        "{advice}"
    );
    // The advice, followed in both checkouts, shares the entry.
    let bases = advice
        .split("HOARD_BASEDIRS=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let there = bases.replace(&now.display().to_string(), &was.display().to_string());
    let there = there.replace(&two.display().to_string(), &one.display().to_string());
    run(
        &sandbox,
        &one,
        &[("HOARD_BASEDIRS", &there)],
        &as_str(&args("one")),
    );
    let report = explain(
        &sandbox,
        &two,
        &[("HOARD_BASEDIRS", &bases)],
        &as_str(&args("two")),
    );
    assert!(report.contains("in the cache: yes"), "{bases}: {report}");
}
