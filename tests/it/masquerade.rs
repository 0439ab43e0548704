//! The symlink install: `ln -s $(which hoard) ~/bin/gcc` first on `PATH`, as ccache users
//! set it up. The link wraps the real gcc further down `PATH`, make builds through it, and a
//! `PATH` of nothing but links is an error that names them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{HOARD, Sandbox, c_files, counter, lua_sources, text};

/// `dir/bin` holding links named `names`, each to the hoard under test.
fn links(dir: &Path, names: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in names {
        std::os::unix::fs::symlink(HOARD, bin.join(name)).unwrap();
    }
    bin
}

/// `PATH` with `first` before the process's own.
fn path_with(first: &Path) -> String {
    format!(
        "{}:{}",
        first.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `program` run with the sandbox's hoard environment (`HOARD_DIR`, the socket, ...).
fn with_sandbox_env(sandbox: &Sandbox, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let template = sandbox.hoard();
    let mut cmd = Command::new(program);
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

#[test]
fn make_through_a_gcc_link_builds_the_c_corpus_with_hits_the_second_time() {
    let sandbox = Sandbox::new();
    let bin = links(sandbox.dir.path(), &["gcc", "cc"]);
    let src = lua_sources();
    let sources: Vec<String> = c_files(&src)
        .iter()
        .filter(|p| !p.ends_with("lua.c") && !p.ends_with("luac.c"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let out_dir = sandbox.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let objects: Vec<String> = sources.iter().map(|s| format!("{s}.o")).collect();
    std::fs::write(
        out_dir.join("Makefile"),
        format!(
            "CC = gcc\nCFLAGS = -O1 -DLUA_USE_LINUX\nVPATH = {src}\nall: {objects}\n\
             %.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\nclean:\n\trm -f *.o\n",
            src = src.display(),
            objects = objects.join(" ")
        ),
    )
    .unwrap();
    let make = |what: &str| {
        let out = with_sandbox_env(&sandbox, "make")
            .args(["-j2", "-C"])
            .arg(&out_dir)
            .arg(what)
            .env("PATH", path_with(&bin))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make {what}: {}\n{}\nlog:\n{}",
            text(&out.stdout),
            text(&out.stderr),
            sandbox.log()
        );
    };
    make("all");
    let first = sandbox.wait_for_stats("first build stored", |s| {
        counter(s, "cache_writes") >= sources.len() as u64
    });
    assert_eq!(counter(&first, "cache_hits"), 0, "{first}");
    let plain: Vec<Vec<u8>> = objects
        .iter()
        .map(|o| std::fs::read(out_dir.join(o)).unwrap())
        .collect();
    make("clean");
    make("all");
    let second = sandbox.stats();
    assert_eq!(
        counter(&second, "cache_hits"),
        sources.len() as u64,
        "{second}"
    );
    for (object, before) in objects.iter().zip(&plain) {
        assert_eq!(
            &std::fs::read(out_dir.join(object)).unwrap(),
            before,
            "{object} differs on a hit"
        );
    }
}

#[test]
fn a_link_called_by_its_path_wraps_the_real_compiler_and_hoard_gcc_skips_the_link() {
    let sandbox = Sandbox::new();
    let bin = links(sandbox.dir.path(), &["gcc"]);
    let dir = sandbox.dir.path().join("src");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("x.c"), "int x(void) { return 3; }\n").unwrap();
    // The report: `./gcc -c x.c` gave clap's "unexpected argument '-c'".
    let out = with_sandbox_env(&sandbox, bin.join("gcc"))
        .current_dir(&dir)
        .args(["-c", "x.c", "-o", "x.o"])
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("x.o").exists());
    // The compiler's own flags are its own: `gcc --version` is gcc's.
    let out = with_sandbox_env(&sandbox, bin.join("gcc"))
        .arg("--version")
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Free Software Foundation"),
        "{}",
        text(&out.stdout)
    );
    // `hoard gcc` with the link first on PATH must not call itself through it.
    let out = sandbox
        .hoard()
        .current_dir(&dir)
        .args(["gcc", "-c", "x.c", "-o", "y.o"])
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(dir.join("x.o")).unwrap(),
        std::fs::read(dir.join("y.o")).unwrap()
    );
}

#[test]
fn a_path_of_nothing_but_links_is_an_error_naming_them() {
    let sandbox = Sandbox::new();
    let bin = links(sandbox.dir.path(), &["gcc"]);
    let more = sandbox.dir.path().join("more");
    std::fs::create_dir(&more).unwrap();
    std::os::unix::fs::symlink(HOARD, more.join("gcc")).unwrap();
    let out = with_sandbox_env(&sandbox, bin.join("gcc"))
        .args(["-c", "x.c"])
        .env("PATH", format!("{}:{}", bin.display(), more.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains(&bin.join("gcc").display().to_string()),
        "{said}"
    );
    assert!(
        said.contains(&more.join("gcc").display().to_string()),
        "{said}"
    );
    assert!(said.contains("hoard itself"), "{said}");
}
