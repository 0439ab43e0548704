//! ccache's and sccache's management commands, as their users type them: `-M`, `-C`, `-c`,
//! `--evict-older-than`, `HOARD_RECACHE` and `HOARD_DISABLE`, each driven through the real
//! binaries and a real gcc.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::{Sandbox, compile_c, counter, files_under, text};

/// A sandbox with two compiled sources (`a.c`, `b.c`) in `src`, their entries stored.
fn with_two_entries() -> (Sandbox, std::path::PathBuf) {
    let sandbox = Sandbox::new();
    let src = sandbox.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.c"), "int a(void) { return 1; }\n").unwrap();
    std::fs::write(src.join("b.c"), "int b(void) { return 2; }\n").unwrap();
    compile_c(sandbox.hoard(), &src, "a");
    compile_c(sandbox.hoard(), &src, "b");
    sandbox.wait_for_stats("two writes", |s| counter(s, "cache_writes") >= 2);
    (sandbox, src)
}

/// The entry files of the sandbox's local store (two hex digits, then 64).
fn entries(sandbox: &Sandbox) -> Vec<std::path::PathBuf> {
    files_under(&sandbox.cache_dir().join("cache"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.len() == 64))
        .collect()
}

fn hoard_ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = sandbox.hoard().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "hoard {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn clear_empties_the_local_cache_and_the_next_build_misses() {
    let (sandbox, src) = with_two_entries();
    assert!(entries(&sandbox).len() >= 2);
    let said = hoard_ok(&sandbox, &["-C"]);
    assert!(
        said.contains("cleared") && said.contains("removed"),
        "{said}"
    );
    assert!(entries(&sandbox).is_empty(), "{:?}", entries(&sandbox));
    sandbox.zero_stats();
    compile_c(sandbox.hoard(), &src, "a");
    let stats = sandbox.stats();
    assert_eq!(counter(&stats, "cache_hits"), 0, "{stats}");
    assert_eq!(counter(&stats, "cache_misses"), 1, "{stats}");
}

#[test]
fn evict_older_than_removes_only_entries_unused_for_that_long() {
    let (sandbox, _src) = with_two_entries();
    let all = entries(&sandbox);
    // Age every entry by three days but one, as if it had not been hit since.
    let old = SystemTime::now() - Duration::from_secs(3 * 86400);
    for path in &all[1..] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let said = hoard_ok(&sandbox, &["--evict-older-than", "2d"]);
    assert!(
        said.contains(&format!("removed {} ", all.len() - 1)),
        "{said}"
    );
    assert_eq!(entries(&sandbox), all[..1]);
    // An age that is not one is refused by name, and nothing is removed.
    let out = sandbox
        .hoard()
        .args(["--evict-older-than", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"soon\""),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(entries(&sandbox), all[..1]);
}

#[test]
fn max_size_is_kept_in_the_config_file_and_cleanup_applies_it() {
    let (mut sandbox, _src) = with_two_entries();
    let config = sandbox.dir.path().join("config.toml");
    std::fs::write(&config, "# mine\ndirect_mode = true\n").unwrap();
    sandbox.set_env("HOARD_CONFIG", config.to_str().unwrap());
    let said = hoard_ok(&sandbox, &["-M", "1.5G"]);
    assert!(said.contains("maximum cache size set to"), "{said}");
    let kept = std::fs::read_to_string(&config).unwrap();
    assert!(
        kept.contains("# mine") && kept.contains("direct_mode = true"),
        "{kept}"
    );
    assert!(kept.contains("cache_size = \"1.5G\""), "{kept}");
    let shown = hoard_ok(&sandbox, &["--show-config", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["HOARD_CACHE_SIZE"]["value"], "1.5G", "{shown}");
    assert_eq!(
        shown["HOARD_CACHE_SIZE"]["from"]["key"], "cache_size",
        "the size is not read from the file: {shown}"
    );
    // A limit below what is stored, then --cleanup, as a ccache user shrinks a cache.
    hoard_ok(&sandbox, &["--max-size", "1K"]);
    let said = hoard_ok(&sandbox, &["-c"]);
    assert!(said.contains("cleaned up"), "{said}");
    let left: u64 = entries(&sandbox)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(left <= 1024, "{left} bytes left over a 1K limit: {said}");
    // A size that is not one changes nothing.
    let out = sandbox.hoard().args(["-M", "lots"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"lots\""),
        "{}",
        text(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("cache_size = \"1K\"")
    );
}

/// A compiler named `gcc` (so hoard takes it for one) that runs the real gcc, then appends
/// the text of `dir/stamp` to its object, so each run's output can be told apart.
fn stamping_compiler(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v gcc"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let real = real.trim();
    let bin = dir.join("stampbin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("gcc");
    std::fs::write(
        &script,
        "#!/bin/sh\nREAL \"$@\" || exit $?\nout=\nprev=\n\
         for a in \"$@\"; do [ \"$prev\" = -o ] && out=$a; prev=$a; done\n\
         if [ -n \"$out\" ]; then cat \"$(dirname \"$0\")/../stamp\" >> \"$out\"; fi\n"
            .replace("REAL", real),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn recache_compiles_again_and_overwrites_what_the_cache_held() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("src");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.c"), "int a(void) { return 1; }\n").unwrap();
    let cc = stamping_compiler(&dir);
    let compile = |recache: bool, stamp: &str| {
        std::fs::write(dir.join("stamp"), stamp).unwrap();
        let mut cmd = sandbox.hoard();
        if recache {
            cmd.env("HOARD_RECACHE", "1");
        }
        let out = cmd
            .current_dir(&dir)
            .args([cc.to_str().unwrap(), "-c", "a.c", "-o", "a.o"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read(dir.join("a.o")).unwrap()
    };
    let first = compile(false, "one");
    assert!(first.ends_with(b"one"));
    sandbox.wait_for_stats("first stored", |s| counter(s, "cache_writes") >= 1);
    // A hit serves the stored object, whatever the stamp says now.
    assert!(compile(false, "two").ends_with(b"one"));
    let recached = compile(true, "three");
    assert!(recached.ends_with(b"three"), "HOARD_RECACHE served a hit");
    sandbox.wait_for_stats("recache stored", |s| counter(s, "cache_writes") >= 2);
    // The recompiled result replaced the old one.
    assert!(compile(false, "four").ends_with(b"three"));
    let stats = sandbox.stats();
    assert_eq!(counter(&stats, "cache_hits"), 2, "{stats}");
    assert_eq!(counter(&stats, "cache_misses"), 2, "{stats}");
}

#[test]
fn disable_runs_the_compiler_alone_without_a_server() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("src");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.c"), "int a(void) { return 1; }\n").unwrap();
    // A broken configuration is not even read.
    let out = sandbox
        .hoard()
        .env("HOARD_DISABLE", "1")
        .env("HOARD_CACHE_SIZE", "not a size")
        .current_dir(&dir)
        .args(["gcc", "-c", "a.c", "-o", "a.o"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    assert!(dir.join("a.o").exists());
    assert!(!sandbox.socket().exists(), "HOARD_DISABLE started a server");
    assert!(sandbox.server_pids().is_empty());
    // `HOARD_DISABLE=0` is off, as ccache reads it.
    let mut enabled = sandbox.hoard();
    enabled.env("HOARD_DISABLE", "0");
    compile_c(enabled, &dir, "a");
    assert_eq!(counter(&sandbox.stats(), "cache_misses"), 1);
}
