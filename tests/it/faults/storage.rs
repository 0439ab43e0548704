//! Faults of the cache's storage, each met by a parallel build of a real C tree through
//! `hoard gcc`: the cache directory read-only, the cache on a full filesystem, a truncated
//! entry and an entry with a flipped byte, every file of the cache directory damaged, and an
//! output's directory removed between the compile and the put. Every build must succeed with
//! plain gcc's exact bytes and diagnostics, and every fault must show in the statistics.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::faults::{
    FLAGS, JOBS, Mount, count, flip_middle_byte, report, result_entries, setup, timed_build, tree,
};
use crate::support::{self, Sandbox, clean, files_under, run_parallel, text};

/// Builds `sources` through the sandbox, checks every compile succeeded, cleans `out`,
/// zeroes the statistics (which outlive the server) and stops the server so that
/// everything it was storing is on disk.
fn warm(sandbox: &Sandbox, sources: &[PathBuf], out: &Path) {
    for o in timed_build(Some(sandbox), sources, out).outputs {
        assert!(o.status.success(), "warming build: {}", text(&o.stderr));
    }
    clean(out);
    sandbox.zero_stats();
    sandbox.stop_server();
}

#[test]
fn a_read_only_cache_directory_still_serves_hits_and_the_failed_stores_are_counted() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    let half = sources.len() / 2;
    warm(&sandbox, &sources[..half], &out);
    let _read_only = Mount::read_only(&sandbox.cache_dir());

    let build = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_same(&build, &out, "build on a read-only cache", &sandbox);
    let stats = sandbox.stats();
    report("read-only cache directory", &reference, build.took, &stats);
    let n = sources.len() as u64;
    assert_eq!(count(&stats, "cache_hits"), half as u64, "{stats}");
    assert_eq!(count(&stats, "cache_misses"), n - half as u64, "{stats}");
    assert_eq!(count(&stats, "cache_writes"), 0, "{stats}");
    // Each miss's put failed on the server, and was counted there (the client's own events
    // log is in the read-only directory too).
    assert!(
        count(&stats, "cache_errors") >= n - half as u64,
        "{stats}\n{}",
        sandbox.log()
    );
    assert!(build.took < reference.bound(), "took {:?}", build.took);
}

/// A build of the tree from an empty cache on a 256 KiB tmpfs: a few entries fit, then every
/// write fails with ENOSPC (entries, manifests, logs, the client's own records). Returns the
/// mount (unmounted when dropped) and the build.
fn build_on_a_full_filesystem(
    sandbox: &Sandbox,
    sources: &[PathBuf],
    out: &Path,
) -> (Mount, crate::faults::Timed) {
    let tiny = Mount::tmpfs(&sandbox.cache_dir(), "256k");
    let build = timed_build(Some(sandbox), sources, out);
    (tiny, build)
}

#[test]
fn a_cache_on_a_filesystem_that_fills_up_leaves_a_byte_identical_build_and_counted_errors() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    let (_tiny, build) = build_on_a_full_filesystem(&sandbox, &sources, &out);
    // Diagnostics are the next test's (a known defect outside the client).
    reference.assert_built(&build, &out, "build on a full filesystem", &sandbox);
    let stats = sandbox.stats();
    report("full filesystem", &reference, build.took, &stats);
    let n = sources.len() as u64;
    assert_eq!(count(&stats, "cache_misses"), n, "{stats}");
    assert!(
        count(&stats, "cache_writes") < n,
        "not everything fit: {stats}"
    );
    assert!(
        count(&stats, "cache_errors") >= 1,
        "{stats}\n{}",
        sandbox.log()
    );
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
    assert!(build.took < reference.bound(), "took {:?}", build.took);

    // The server survived the full disk: the next build is served (hits for what fit).
    clean(&out);
    sandbox.zero_stats();
    let again = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_built(&again, &out, "second build on a full filesystem", &sandbox);
    let stats = sandbox.stats();
    assert_eq!(
        count(&stats, "cache_hits") + count(&stats, "cache_misses"),
        n,
        "{stats}"
    );
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
}

#[test]
fn on_a_full_filesystem_the_builds_diagnostics_are_exactly_gccs() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    let (_tiny, build) = build_on_a_full_filesystem(&sandbox, &sources, &out);
    reference.assert_same(&build, &out, "build on a full filesystem", &sandbox);
}

/// Truncates one result entry and flips a byte in another; returns them with their sound
/// bytes.
fn damage_two_entries(sandbox: &Sandbox, n: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let entries = result_entries(sandbox);
    assert_eq!(entries.len(), n, "one result entry per source");
    let damaged: Vec<(PathBuf, Vec<u8>)> = entries[..2]
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let truncated = &damaged[0];
    std::fs::write(&truncated.0, &truncated.1[..truncated.1.len() / 2]).unwrap();
    flip_middle_byte(&damaged[1].0);
    damaged
}

#[test]
fn a_truncated_entry_and_an_entry_with_a_flipped_byte_are_never_served_and_are_removed() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    warm(&sandbox, &sources, &out);
    let damaged = damage_two_entries(&sandbox, sources.len());

    let build = timed_build(Some(&sandbox), &sources, &out);
    // Byte-identical outputs: the damaged entries were not served.
    reference.assert_same(&build, &out, "build over two damaged entries", &sandbox);
    let stats = sandbox.stats();
    report(
        "truncated and flipped entries",
        &reference,
        build.took,
        &stats,
    );
    let n = sources.len() as u64;
    assert_eq!(count(&stats, "cache_hits"), n - 2, "{stats}");
    assert_eq!(count(&stats, "cache_misses"), 2, "{stats}");
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
    let log = sandbox.log();
    for (path, sound) in &damaged {
        let key = path.file_name().unwrap().to_string_lossy();
        assert!(
            log.lines()
                .any(|l| l.contains("removing corrupt cache entry") && l.contains(&*key)),
            "{key} was not removed as corrupt:\n{log}"
        );
        // In its place, a new entry the recompile stored (not byte-equal to the first: it
        // records this compile's time).
        let now = std::fs::read(path).unwrap();
        assert!(
            now.len().abs_diff(sound.len()) < 16 && now[..8] == sound[..8],
            "{key} was not replaced by a whole entry"
        );
    }
    // And the replacements are sound: the next build is all hits, identical.
    reference.rebuild_same(
        &sandbox,
        &sources,
        &out,
        "build after the damaged entries were replaced",
    );
    assert_eq!(count(&sandbox.stats(), "cache_hits"), n);
}

#[test]
fn a_corrupt_entry_is_counted_in_the_statistics() {
    let _machine = support::timed();
    let (sandbox, sources, out, _reference) = setup();
    warm(&sandbox, &sources, &out);
    damage_two_entries(&sandbox, sources.len());
    timed_build(Some(&sandbox), &sources, &out);
    let stats = sandbox.stats();
    assert_eq!(count(&stats, "corrupt_entries"), 2, "{stats}");
}

#[test]
fn every_file_of_the_cache_directory_damaged_leaves_a_correct_build_and_the_cache_heals() {
    let _machine = support::timed();
    let (sandbox, sources, out, reference) = setup();
    warm(&sandbox, &sources, &out);
    // Entries, manifests, the compiler identities, the header digest memo, the probe, the
    // events log, the logs: one byte of each flipped.
    let files: Vec<PathBuf> = files_under(&sandbox.cache_dir())
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert!(files.len() > sources.len(), "{files:?}");
    for file in &files {
        flip_middle_byte(file);
    }

    let build = timed_build(Some(&sandbox), &sources, &out);
    reference.assert_same(&build, &out, "build over a damaged cache", &sandbox);
    let stats = sandbox.stats();
    report("every cache file damaged", &reference, build.took, &stats);
    assert_eq!(
        count(&stats, "cache_hits"),
        0,
        "nothing damaged was served: {stats}"
    );

    // What the damaged build stored is sound: the next build is all hits.
    reference.rebuild_same(&sandbox, &sources, &out, "build after the cache healed");
    let stats = sandbox.stats();
    assert_eq!(
        count(&stats, "cache_hits"),
        sources.len() as u64,
        "{stats}\n{}",
        sandbox.log()
    );
}

/// A `gcc` that compiles, then moves its output's directory away (to `<dir>.moved`), so the
/// outputs are gone from their paths when the cache comes to store them, yet still there to
/// compare.
fn vanishing_gcc(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let gcc = bin.join("gcc");
    std::fs::write(
        &gcc,
        r#"#!/bin/sh
/usr/bin/gcc "$@" || exit $?
out=; prev=
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done
case " $* " in
  *" -c "*) if [ -n "$out" ]; then d=$(dirname "$out"); mv "$d" "$d.moved"; fi ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).unwrap();
    gcc
}

/// Compiles each source with `gcc` (through the sandbox when given) into `out/<stem>/`, which
/// the compiler moves to `out/<stem>.moved/`. The objects by stem, and each command's output.
fn build_vanishing(
    sandbox: Option<&Sandbox>,
    gcc: &Path,
    sources: &[PathBuf],
    out: &Path,
) -> (Vec<(String, blake3::Hash)>, Vec<std::process::Output>) {
    let _ = std::fs::remove_dir_all(out);
    let stems: Vec<String> = sources
        .iter()
        .map(|s| s.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for stem in &stems {
        std::fs::create_dir_all(out.join(stem)).unwrap();
    }
    let outputs = run_parallel(sources.len(), JOBS, |i| {
        let source = &sources[i];
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.extend([
            "-I".into(),
            source.parent().unwrap().display().to_string(),
            "-c".into(),
            source.display().to_string(),
            "-o".into(),
            out.join(&stems[i])
                .join(format!("{}.o", stems[i]))
                .display()
                .to_string(),
        ]);
        match sandbox {
            Some(sandbox) => sandbox.hoard().arg(gcc).args(&args).output(),
            None => Command::new(gcc).args(&args).output(),
        }
        .unwrap()
    });
    let objects = stems
        .iter()
        .map(|stem| {
            let object = out.join(format!("{stem}.moved")).join(format!("{stem}.o"));
            let bytes =
                std::fs::read(&object).unwrap_or_else(|e| panic!("{}: {e}", object.display()));
            (stem.clone(), blake3::hash(&bytes))
        })
        .collect();
    (objects, outputs)
}

#[test]
fn an_output_directory_removed_between_compile_and_put_gives_the_compilers_result_and_a_counted_error()
 {
    let _machine = support::timed();
    let sandbox = Sandbox::new();
    let sources = tree();
    let out = sandbox.dir.path().join("out");
    let gcc = vanishing_gcc(sandbox.dir.path());
    let (expected, plain) = build_vanishing(None, &gcc, &sources, &out);
    for o in &plain {
        assert!(o.status.success(), "plain: {}", text(&o.stderr));
    }

    let started = std::time::Instant::now();
    let (objects, outputs) = build_vanishing(Some(&sandbox), &gcc, &sources, &out);
    let took = started.elapsed();
    for (o, p) in outputs.iter().zip(&plain) {
        assert!(o.status.success(), "{}\n{}", text(&o.stderr), sandbox.log());
        assert_eq!(text(&o.stderr), text(&p.stderr), "diagnostics differ");
    }
    assert_eq!(objects, expected, "objects differ from the plain compiles");
    let stats = sandbox.stats();
    eprintln!(
        "FAULT output directory removed before the put: build {:.2}s; misses {} writes {} \
         cache_errors {} local_fallbacks {}",
        took.as_secs_f64(),
        count(&stats, "cache_misses"),
        count(&stats, "cache_writes"),
        count(&stats, "cache_errors"),
        count(&stats, "local_fallbacks"),
    );
    let n = sources.len() as u64;
    assert_eq!(count(&stats, "cache_misses"), n, "{stats}");
    assert_eq!(
        count(&stats, "cache_writes"),
        0,
        "nothing was stored: {stats}"
    );
    assert!(
        count(&stats, "cache_errors") >= n,
        "each failed put counted: {stats}"
    );
    assert_eq!(count(&stats, "local_fallbacks"), 0, "{stats}");
}

/// A cache directory with not one byte free when the build starts: the dependency file depend
/// mode adds there (for commands without `-MD`) cannot be written, and the compile is rerun as
/// the build gave it.
#[test]
fn a_cache_filesystem_already_full_leaves_every_compile_as_gcc_gives_it() {
    let _machine = support::timed();
    let (sandbox, sources, out, _reference) = setup();
    let tiny = Mount::tmpfs(&sandbox.cache_dir(), "256k");
    sandbox.start_server();
    let filler = sandbox.cache_dir().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);
    std::fs::create_dir_all(&out).unwrap();
    for source in sources.iter().take(4) {
        let plain = out.join("plain.o");
        let cached = out.join("cached.o");
        let args = |o: &Path| {
            vec![
                "-O1".to_owned(),
                "-c".into(),
                source.display().to_string(),
                "-o".into(),
                o.display().to_string(),
            ]
        };
        let gcc = std::process::Command::new("gcc")
            .args(args(&plain))
            .output()
            .unwrap();
        let hoard = sandbox
            .hoard()
            .arg("gcc")
            .args(args(&cached))
            .output()
            .unwrap();
        assert!(hoard.status.success(), "{}", text(&hoard.stderr));
        assert_eq!(text(&hoard.stderr), text(&gcc.stderr));
        assert_eq!(
            std::fs::read(&cached).unwrap(),
            std::fs::read(&plain).unwrap()
        );
    }
    drop(tiny);
}
