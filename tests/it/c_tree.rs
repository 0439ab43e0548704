//! End to end with real gcc (and clang where installed): a real multi-file C tree built twice
//! through `hoard` from an empty cache. The second build is all hits, and every object and
//! `.d` file is byte-identical to what the plain compiler gives for the same command.

use crate::support::{Sandbox, c_files, lua_sources, plain_build, text, tools};

const FLAGS: &[&str] = &["-O1", "-g", "-Wall"];

fn warm_build_is_all_hits_and_byte_identical(compiler: &str) {
    let sandbox = Sandbox::new();
    let sources = c_files(&lua_sources());
    let out = sandbox.dir.path().join("out");
    let plain = plain_build(compiler, &sources, &out, FLAGS, &sandbox);

    let cold = plain.again_through(&sandbox, "cold build");
    plain.assert_same_diagnostics(&cold, "on a miss");
    let stats = sandbox.stats();
    assert_eq!(stats["cache_misses"], sources.len(), "{stats}");

    sandbox.zero_stats();
    let warm = plain.again_through(&sandbox, "warm build");
    plain.assert_same_diagnostics(&warm, "on a hit");
    let stats = sandbox.stats();
    assert_eq!(stats["cache_hits"], sources.len(), "{stats}");
    assert_eq!(stats["cache_misses"], 0, "{stats}");
    assert_eq!(stats["local_fallbacks"], 0, "{stats}\n{}", sandbox.log());
    assert_eq!(stats["hits_by_language"]["c"], sources.len(), "{stats}");
    // Each hit served by the client from its own cache directory, counted as a v2 hit.
    assert_eq!(stats["hits_by_protocol"]["2"], sources.len(), "{stats}");
    assert_eq!(stats["transfers"]["local"], sources.len(), "{stats}");
}

#[test]
fn gcc_warm_build_is_all_hits_and_byte_identical_to_plain_gcc() {
    warm_build_is_all_hits_and_byte_identical("gcc");
}

#[test]
fn clang_warm_build_is_all_hits_and_byte_identical_to_plain_clang() {
    if !tools::installed(&["clang"]) {
        return;
    }
    warm_build_is_all_hits_and_byte_identical("clang");
}

#[test]
fn non_cacheable_invocations_run_the_compiler_and_are_counted_by_reason() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    std::fs::write(dir.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let link = sandbox
        .hoard()
        .current_dir(dir)
        .args(["gcc", "main.c", "-o", "main"])
        .output()
        .unwrap();
    assert!(link.status.success(), "{}", text(&link.stderr));
    assert!(dir.join("main").exists(), "the link ran");
    let pre = sandbox
        .hoard()
        .current_dir(dir)
        .args(["gcc", "-E", "main.c"])
        .output()
        .unwrap();
    assert!(pre.status.success());
    assert!(
        text(&pre.stdout).contains("int main"),
        "-E output reaches stdout"
    );
    let stats = sandbox.stats();
    assert_eq!(stats["non_cacheable"], 2, "{stats}");
    assert_eq!(stats["non_cacheable_reasons"]["linking"], 1, "{stats}");
    assert_eq!(
        stats["non_cacheable_reasons"]["preprocess_only"], 1,
        "{stats}"
    );
}

#[test]
fn a_failing_compile_gives_the_compilers_status_and_errors_every_time() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    std::fs::write(dir.join("bad.c"), "int main(void) { return nope; }\n").unwrap();
    let plain = std::process::Command::new("gcc")
        .current_dir(dir)
        .args(["-c", "bad.c", "-o", "bad.o"])
        .output()
        .unwrap();
    for _ in 0..2 {
        let out = sandbox
            .hoard()
            .current_dir(dir)
            .args(["gcc", "-c", "bad.c", "-o", "bad.o"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), plain.status.code());
        assert_eq!(text(&out.stderr), text(&plain.stderr));
    }
    assert_eq!(sandbox.stats()["cache_hits"], 0);
}
