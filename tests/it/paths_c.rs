//! Path independence for C/C++ (issue 18): a CMake + Ninja project written here (33
//! compiles, C and C++, shared headers under `include/`, a header generated into the build
//! directory), built through `hoard` in one build
//! directory and then in another, or in a second checkout at another path: the second build
//! hits, and every object and every dependency Ninja recorded is byte-identical to a plain
//! build at the new path. With `-g` the objects still equal the plain build's (misses are
//! fine); `HOARD_PATHS=exact` keeps paths in keys. Then the direct-mode rules across
//! checkouts: a shadowing header, `__has_include`, `CPATH`, `-include`, `-imacros`, and an
//! expanded `__FILE__`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{HOARD, Sandbox, counter, text, tools};

/// Sources of the project: `C_SOURCES` C files and as many C++ files, plus `main.c`.
const C_SOURCES: usize = 16;

/// Writes the project under `root`, a git checkout (a `.git` directory marks its root).
fn write_project(root: &Path) {
    let write = |rel: &str, body: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    std::fs::create_dir_all(root.join(".git")).unwrap();
    write(
        "include/common.h",
        "#pragma once\n#define SCALE 3\nstatic inline int twice(int x) { return 2 * x; }\n",
    );
    write(
        "include/shape.hpp",
        "#pragma once\n#include \"common.h\"\nstruct Shape { int w, h; int area() const { return w * h * SCALE; } };\n",
    );
    write("src/private.h", "#pragma once\n#define OFFSET 7\n");
    // Generated into the build directory, which is then an include directory: its path
    // differs from one build directory to the next.
    write("config.h.in", "#pragma once\n#define LEVEL @LEVEL@\n");
    let mut library = Vec::new();
    for i in 0..C_SOURCES {
        write(
            &format!("src/c{i}.c"),
            &format!(
                "#include <stdio.h>\n#include \"common.h\"\n#include \"config.h\"\n#include \"private.h\"\nint c{i}(int x) {{ static const char name[] = \"c{i}\"; return twice(x) + OFFSET + LEVEL + {i} + name[0]; }}\n"
            ),
        );
        write(
            &format!("src/p{i}.cpp"),
            &format!(
                "#include <vector>\n#include \"shape.hpp\"\nnamespace {{ int local(int x) {{ return x + {i}; }} }}\nint p{i}(int x) {{ std::vector<Shape> v{{{{x, {i}}}}}; return local(v[0].area()); }}\n"
            ),
        );
        library.push(format!("src/c{i}.c src/p{i}.cpp"));
    }
    write(
        "main.c",
        "#include <stdio.h>\n#include \"common.h\"\nint c0(int);\nint main(void) { printf(\"%d\\n\", c0(SCALE)); return 0; }\n",
    );
    write(
        "CMakeLists.txt",
        &format!(
            "cmake_minimum_required(VERSION 3.13)\nproject(paths C CXX)\nset(LEVEL 4)\nconfigure_file(config.h.in config.h)\nadd_library(core STATIC {})\ntarget_include_directories(core PUBLIC include ${{CMAKE_CURRENT_BINARY_DIR}})\nadd_executable(app main.c)\ntarget_link_libraries(app core stdc++)\n",
            library.join(" ")
        ),
    );
}

/// Configures and builds `source` in `build` (Ninja, `build_type`), through `hoard` when a
/// sandbox is given, with `env` on top.
fn cmake_build(
    source: &Path,
    build: &Path,
    build_type: &str,
    hoard: Option<&Sandbox>,
    env: &[(&str, &str)],
) {
    let mut configure = Command::new("cmake");
    configure
        .args(["-G", "Ninja", "-S"])
        .arg(source)
        .arg("-B")
        .arg(build)
        .arg(format!("-DCMAKE_BUILD_TYPE={build_type}"));
    let mut run = Command::new("cmake");
    run.arg("--build").arg(build);
    for cmd in [&mut configure, &mut run] {
        if let Some(sandbox) = hoard {
            let env = sandbox.hoard();
            for (key, value) in env.get_envs() {
                match value {
                    Some(value) => cmd.env(key, value),
                    None => cmd.env_remove(key),
                };
            }
        }
        cmd.env_remove("HOARD_PATHS")
            .env_remove("HOARD_BASEDIRS")
            .envs(env.iter().copied());
    }
    if hoard.is_some() {
        configure.arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={HOARD}"));
        configure.arg(format!("-DCMAKE_CXX_COMPILER_LAUNCHER={HOARD}"));
    }
    for cmd in [&mut configure, &mut run] {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// Every object under `build`, by path relative to it.
fn objects(build: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    crate::support::files_under(build)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .map(|p| {
            (
                p.strip_prefix(build).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// What Ninja recorded from the compiles' dependency files (`ninja -t deps`): each target's
/// dependencies, without modification times.
fn recorded_deps(build: &Path) -> BTreeMap<String, Vec<String>> {
    let out = Command::new("ninja")
        .arg("-C")
        .arg(build)
        .args(["-t", "deps"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut target = String::new();
    for line in text(&out.stdout).lines() {
        if let Some(dep) = line.strip_prefix("    ") {
            deps.entry(target.clone()).or_default().push(dep.to_owned());
        } else if let Some((name, _)) = line.split_once(": #deps") {
            name.clone_into(&mut target);
        }
    }
    deps
}

/// Builds in `build` through `hoard`, keeps its objects and dependencies, then builds there
/// again with plain compilers and checks both are byte-identical. Returns (hits, misses).
fn build_matches_plain(
    sandbox: &Sandbox,
    source: &Path,
    build: &Path,
    build_type: &str,
    env: &[(&str, &str)],
) -> (u64, u64) {
    sandbox.zero_stats();
    cmake_build(source, build, build_type, Some(sandbox), env);
    let stats = sandbox.stats();
    let through = (objects(build), recorded_deps(build));
    std::fs::remove_dir_all(build).unwrap();
    cmake_build(source, build, build_type, None, env);
    let plain = (objects(build), recorded_deps(build));
    assert_eq!(through.0.len(), 2 * C_SOURCES + 1, "{:?}", through.0.keys());
    for (path, bytes) in &plain.0 {
        assert!(
            through.0.get(path) == Some(bytes),
            "{} differs from the plain build's in {}",
            path.display(),
            build.display()
        );
    }
    assert_eq!(through.1, plain.1, "dependencies Ninja recorded");
    assert_eq!(counter(&stats, "local_fallbacks"), 0, "{stats}");
    (
        counter(&stats, "cache_hits"),
        counter(&stats, "cache_misses"),
    )
}

/// At least 95% of the compiles hit.
fn assert_mostly_hits((hits, misses): (u64, u64), what: &str) {
    assert!(
        hits * 100 >= (hits + misses) * 95 && hits + misses > 2 * C_SOURCES as u64,
        "{what}: {hits} hits, {misses} misses"
    );
}

fn cmake_tools() -> bool {
    tools::installed(&["cmake", "ninja", "g++"])
}

/// The project written twice in `sandbox`: at `proj` and at `second`.
fn two_checkouts(sandbox: &Sandbox, second: &str) -> (PathBuf, PathBuf) {
    let first = sandbox.dir.path().join("proj");
    let second = sandbox.dir.path().join(second);
    write_project(&first);
    write_project(&second);
    (first, second)
}

#[test]
fn a_fresh_build_directory_hits_and_matches_a_plain_build_there() {
    if !cmake_tools() {
        return;
    }
    let sandbox = Sandbox::new();
    let source = sandbox.dir.path().join("proj");
    write_project(&source);
    build_matches_plain(&sandbox, &source, &source.join("build-a"), "Release", &[]);
    let second = build_matches_plain(&sandbox, &source, &source.join("build-b"), "Release", &[]);
    assert_mostly_hits(second, "build-b");
}

#[test]
fn a_second_checkout_hits_and_matches_a_plain_build_there() {
    if !cmake_tools() {
        return;
    }
    let sandbox = Sandbox::new();
    let (first, second) = two_checkouts(&sandbox, "elsewhere/deeper/clone");
    build_matches_plain(&sandbox, &first, &first.join("build"), "Release", &[]);
    let hits = build_matches_plain(&sandbox, &second, &second.join("build"), "Release", &[]);
    assert_mostly_hits(hits, "second checkout");
    // An out-of-tree build directory beside each checkout works the same way.
    let outside = |root: &Path| root.parent().unwrap().join("out-of-tree");
    build_matches_plain(&sandbox, &first, &outside(&first), "Release", &[]);
    let hits = build_matches_plain(&sandbox, &second, &outside(&second), "Release", &[]);
    assert_mostly_hits(hits, "out-of-tree build of a second checkout");
}

#[test]
fn debug_builds_at_a_new_path_equal_a_plain_build_there() {
    if !cmake_tools() {
        return;
    }
    let sandbox = Sandbox::new();
    let (first, second) = two_checkouts(&sandbox, "clone");
    let journal = sandbox.dir.path().join("second.jsonl");
    let journal_var = journal.display().to_string();
    build_matches_plain(
        &sandbox,
        &first,
        &first.join("build"),
        "RelWithDebInfo",
        &[],
    );
    let (_, misses) = build_matches_plain(
        &sandbox,
        &second,
        &second.join("build"),
        "RelWithDebInfo",
        &[("HOARD_JOURNAL", &journal_var)],
    );
    // Each miss of the project's own objects says why it could not share: the debug
    // information names the checkout.
    let project_misses: Vec<_> = crate::support::journal_lines(&journal)
        .into_iter()
        .filter(|l| l["result"] == "miss")
        .filter(|l| {
            l["output"].as_str().is_some_and(|o| {
                o.starts_with(&*second.to_string_lossy()) && !o.contains("CMakeScratch")
            })
        })
        .collect();
    assert!(misses > 0 && !project_misses.is_empty());
    for line in &project_misses {
        assert_eq!(line["reason"], "paths_in_debug_info", "{line}");
    }
    build_matches_plain(
        &sandbox,
        &first,
        &first.join("build-2"),
        "RelWithDebInfo",
        &[],
    );
}

#[test]
fn exact_paths_keep_a_second_checkout_apart() {
    if !cmake_tools() {
        return;
    }
    let sandbox = Sandbox::new();
    let (first, second) = two_checkouts(&sandbox, "clone");
    let exact = [("HOARD_PATHS", "exact")];
    build_matches_plain(
        &sandbox,
        &first,
        &first.join("build"),
        "RelWithDebInfo",
        &exact,
    );
    let (hits, _) =
        build_matches_plain(&sandbox, &second, &second.join("build"), "Release", &exact);
    assert_eq!(hits, 0, "exact paths: a second checkout shares nothing");
}

/// Two checkouts of a small tree for the direct-mode rules, `a` and `b`, each a git root.
struct Checkouts {
    sandbox: Sandbox,
    a: PathBuf,
    b: PathBuf,
}

impl Checkouts {
    fn new(files: &[(&str, &str)]) -> Self {
        let sandbox = Sandbox::new();
        let a = sandbox.dir.path().join("a");
        let b = sandbox.dir.path().join("elsewhere/b");
        for root in [&a, &b] {
            std::fs::create_dir_all(root.join(".git")).unwrap();
            for (rel, body) in files {
                write(&root.join(rel), body);
            }
        }
        Self { sandbox, a, b }
    }

    /// `gcc args -c <root>/src/x.c -o <root>/x.o` in `root`, through hoard or plain; the
    /// object's bytes. `{root}` in an argument or value is the checkout's path.
    fn compile(&self, root: &Path, hoard: bool, args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
        let fill = |s: &str| s.replace("{root}", &root.display().to_string());
        let mut cmd = if hoard {
            let mut cmd = self.sandbox.hoard();
            cmd.arg("gcc");
            cmd
        } else {
            Command::new("gcc")
        };
        let object = root.join("x.o");
        let _ = std::fs::remove_file(&object);
        cmd.current_dir(root)
            .args(args.iter().map(|a| fill(a)))
            .arg("-c")
            .arg(root.join("src/x.c"))
            .arg("-o")
            .arg(&object)
            .env_remove("CPATH")
            .envs(env.iter().map(|(k, v)| (*k, fill(v))));
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
        std::fs::read(&object).unwrap()
    }

    /// Compiles in `a` through hoard, changes `b` with `change`, then compiles in `b`
    /// through hoard and plainly: the objects must be equal.
    fn second_gets_its_own_object(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        change: impl Fn(&Path),
    ) {
        self.compile(&self.a, true, args, env);
        self.compile(&self.a, true, args, env);
        change(&self.b);
        let through = self.compile(&self.b, true, args, env);
        let plain = self.compile(&self.b, false, args, env);
        assert!(through == plain, "the second checkout got another object");
    }
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

#[test]
fn direct_mode_sees_a_header_shadowed_in_an_earlier_directory_of_a_second_checkout() {
    let trees = Checkouts::new(&[
        ("src/x.c", "#include \"h.h\"\nint x = H;\n"),
        ("late/h.h", "#define H 1\n"),
        ("early/.keep", ""),
    ]);
    trees.second_gets_its_own_object(&["-I{root}/early", "-I{root}/late"], &[], |b| {
        write(&b.join("early/h.h"), "#define H 2\n");
    });
}

#[test]
fn direct_mode_sees_has_include_in_a_second_checkout() {
    let trees = Checkouts::new(&[
        (
            "src/x.c",
            "#if __has_include(\"opt.h\")\n#include \"opt.h\"\n#else\n#define H 1\n#endif\nint x = H;\n",
        ),
        ("inc/.keep", ""),
    ]);
    trees.second_gets_its_own_object(&["-I{root}/inc"], &[], |b| {
        write(&b.join("inc/opt.h"), "#define H 2\n");
    });
    // The same question asked from a header, which direct mode only reads after a compile.
    let trees = Checkouts::new(&[
        ("src/x.c", "#include \"ask.h\"\nint x = H;\n"),
        (
            "inc/ask.h",
            "#if __has_include(\"opt.h\")\n#include \"opt.h\"\n#else\n#define H 1\n#endif\n",
        ),
    ]);
    trees.second_gets_its_own_object(&["-I{root}/inc"], &[], |b| {
        write(&b.join("inc/opt.h"), "#define H 2\n");
    });
}

#[test]
fn direct_mode_follows_cpath_in_a_second_checkout() {
    let trees = Checkouts::new(&[
        ("src/x.c", "#include <h.h>\nint x = H;\n"),
        ("inc/h.h", "#define H 1\n"),
    ]);
    for var in ["CPATH", "C_INCLUDE_PATH"] {
        trees.second_gets_its_own_object(&[], &[(var, "{root}/inc")], |b| {
            write(&b.join("inc/h.h"), &format!("#define H {}\n", var.len()));
        });
    }
}

#[test]
fn direct_mode_follows_include_and_imacros_in_a_second_checkout() {
    let trees = Checkouts::new(&[
        ("src/x.c", "int x = H + M;\n"),
        ("pre.h", "#define H 1\n"),
        ("mac.h", "#define M 1\n"),
    ]);
    let args = ["-include", "{root}/pre.h", "-imacros", "{root}/mac.h"];
    trees.second_gets_its_own_object(&args, &[], |b| write(&b.join("pre.h"), "#define H 2\n"));
    trees.second_gets_its_own_object(&args, &[], |b| write(&b.join("mac.h"), "#define M 3\n"));
}

#[test]
fn an_expanded_file_macro_keeps_each_checkout_its_own_path() {
    let trees = Checkouts::new(&[
        ("src/x.c", "#include \"where.h\"\nconst char *x = WHERE;\n"),
        ("inc/where.h", "#define WHERE __FILE__\n"),
    ]);
    trees.second_gets_its_own_object(&["-I{root}/inc"], &[], |_| {});
    let object = trees.compile(&trees.b, true, &["-I{root}/inc"], &[]);
    let b = trees.b.display().to_string();
    assert!(
        object.windows(b.len()).any(|w| w == b.as_bytes()),
        "the object names the second checkout's source"
    );
}

#[test]
fn a_debug_object_through_exact_paths_equals_plain_gcc_and_a_second_checkout_misses() {
    let trees = Checkouts::new(&[("src/x.c", "int x = 1;\n")]);
    let exact = [("HOARD_PATHS", "exact")];
    let through = trees.compile(&trees.a, true, &["-g"], &exact);
    assert!(through == trees.compile(&trees.a, false, &["-g"], &exact));
    trees.sandbox.zero_stats();
    trees.compile(&trees.b, true, &["-g"], &exact);
    let stats = trees.sandbox.stats();
    assert_eq!(counter(&stats, "cache_hits"), 0, "{stats}");
    // Without debug information the same compile shares across checkouts by default, and
    // not with exact paths.
    trees.compile(&trees.a, true, &[], &[]);
    trees.compile(&trees.a, true, &[], &exact);
    trees.sandbox.zero_stats();
    trees.compile(&trees.b, true, &[], &[]);
    trees.compile(&trees.b, true, &[], &exact);
    let stats = trees.sandbox.stats();
    assert_eq!(counter(&stats, "cache_hits"), 1, "{stats}");
}

#[test]
fn a_header_asking_has_include_hits_on_the_second_build_at_the_same_path() {
    // The first compile runs in depend mode and only then learns a header probes; its result
    // must be stored where the second compile (keyed by the preprocessor) looks.
    let trees = Checkouts::new(&[
        ("src/x.c", "#include \"ask.h\"\nint x = H;\n"),
        (
            "inc/ask.h",
            "#if __has_include(<no-such-header.h>)\n#define H 2\n#else\n#define H 1\n#endif\n",
        ),
    ]);
    for debug in [&["-g", "-I{root}/inc"][..], &["-I{root}/inc"][..]] {
        trees.sandbox.zero_stats();
        let first = trees.compile(&trees.a, true, debug, &[]);
        let second = trees.compile(&trees.a, true, debug, &[]);
        let stats = trees.sandbox.stats();
        assert_eq!(counter(&stats, "cache_hits"), 1, "{debug:?}: {stats}");
        assert!(first == second);
    }
}
