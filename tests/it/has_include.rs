//! `__has_include` in direct mode: a header (or the source) that asks whether a header
//! exists keeps its compiles direct hits (no preprocessor run, which the journal's `direct`
//! says), and every answer is checked again, so a header appearing in or going from any
//! directory the compiler would look in gives the object a plain gcc gives. Forms the
//! scanner cannot read still come out right, keyed by the preprocessor's output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Sandbox, journal_lines, text, tools};

/// A tree or two (`a`, and `elsewhere/b` for a second checkout), each a git root, compiled
/// through one sandbox whose journal tells how each compile ended.
struct Trees {
    sandbox: Sandbox,
    a: PathBuf,
    b: PathBuf,
    journal: PathBuf,
}

/// How one compile through hoard ended: `(result, direct)` from its journal line.
type Ending = (String, Option<bool>);

const DIRECT_HIT: (&str, Option<bool>) = ("hit", Some(true));

impl Trees {
    fn new(files: &[(&str, &str)]) -> Self {
        let mut sandbox = Sandbox::new();
        let journal = sandbox.dir.path().join("journal.jsonl");
        sandbox.set_env("HOARD_JOURNAL", &journal.display().to_string());
        let a = sandbox.dir.path().join("a");
        let b = sandbox.dir.path().join("elsewhere/b");
        for root in [&a, &b] {
            std::fs::create_dir_all(root.join(".git")).unwrap();
            for (rel, body) in files {
                write(&root.join(rel), body);
            }
        }
        Self {
            sandbox,
            a,
            b,
            journal,
        }
    }

    /// As [`plain`], through hoard; the object and how the compile ended.
    fn through(
        &self,
        root: &Path,
        compiler: &str,
        source: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Vec<u8>, Ending) {
        let mut cmd = self.sandbox.hoard();
        cmd.arg(compiler);
        let object = run(cmd, root, source, args, env);
        let line = journal_lines(&self.journal).pop().unwrap();
        let ending = (
            line["result"].as_str().unwrap_or_default().to_owned(),
            line["direct"].as_bool(),
        );
        (object, ending)
    }

    /// Compiles in `root` through hoard twice and plainly once: both objects through hoard
    /// equal the plain one, and the second compile is a direct hit. Returns how the first
    /// ended.
    fn twice_equal_and_direct(
        &self,
        root: &Path,
        compiler: &str,
        source: &str,
        args: &[&str],
        env: &[(&str, &str)],
        what: &str,
    ) -> Ending {
        let plain = plain(root, compiler, source, args, env);
        let (first, ending) = self.through(root, compiler, source, args, env);
        assert!(
            first == plain,
            "{what}: the first compile through hoard got another object ({ending:?})"
        );
        let (second, again) = self.through(root, compiler, source, args, env);
        assert!(
            second == plain,
            "{what}: the second compile through hoard got another object ({again:?})"
        );
        assert_eq!(
            again,
            (DIRECT_HIT.0.to_owned(), DIRECT_HIT.1),
            "{what}: the second compile"
        );
        ending
    }
}

/// `compiler args -c <root>/src/<source> -o <root>/x.o` in `root`, plainly; the object.
/// `{root}` in an argument or value is the checkout's path.
fn plain(
    root: &Path,
    compiler: &str,
    source: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Vec<u8> {
    run(Command::new(compiler), root, source, args, env)
}

/// Runs `cmd` (a compiler, or hoard and a compiler) on `<root>/src/<source>` in `root`;
/// the object.
fn run(
    mut cmd: Command,
    root: &Path,
    source: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Vec<u8> {
    let fill = |s: &str| s.replace("{root}", &root.display().to_string());
    let object = root.join("x.o");
    let _ = std::fs::remove_file(&object);
    cmd.current_dir(root)
        .args(args.iter().map(|a| fill(a)))
        .arg("-c")
        .arg(root.join("src").join(source))
        .arg("-o")
        .arg(&object)
        .env_remove("CPATH")
        .env_remove("C_INCLUDE_PATH")
        .env_remove("CPLUS_INCLUDE_PATH")
        .envs(env.iter().map(|(k, v)| (*k, fill(v))));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    std::fs::read(&object).unwrap()
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// A header asking for `<x.h>` and `"y.h"`, including each when it exists, and for `<w.h>`,
/// which it never includes (so the files read are the same either way).
const ASK_H: &str = "#if __has_include(<x.h>)\n#include <x.h>\n#else\n#define X 0\n#endif\n\
                     #if __has_include(\"y.h\")\n#include \"y.h\"\n#else\n#define Y 0\n#endif\n\
                     #if __has_include(<w.h>)\n#define W 2\n#else\n#define W 1\n#endif\n";

/// A source asking for `"z.h"` itself, then using the header's answers.
const SOURCE: &str = "#include \"ask.h\"\n#if __has_include(\"z.h\")\n#include \"z.h\"\n#else\n\
                      #define Z 0\n#endif\nint v = X + Y + Z;\nint w = W;\n";

#[test]
fn a_header_asking_has_include_is_a_direct_hit_on_the_second_compile() {
    if !tools::installed(&["gcc", "g++"]) {
        return;
    }
    let trees = Trees::new(&[("src/x.c", SOURCE), ("inc/ask.h", ASK_H)]);
    let args = ["-I{root}/inc"];
    trees.twice_equal_and_direct(&trees.a, "gcc", "x.c", &args, &[], "C");
    // C++: libstdc++'s own headers ask too (`c++config.h`, for TBB).
    write(
        &trees.a.join("src/y.cpp"),
        &format!(
            "#include <vector>\n#include <string>\n{SOURCE}int size() {{ return std::vector<int>(3).size() + v; }}\n"
        ),
    );
    trees.twice_equal_and_direct(&trees.a, "g++", "y.cpp", &args, &[], "C++");
}

#[test]
fn headers_appearing_and_going_anywhere_the_compiler_looks_are_seen() {
    if !tools::installed(&["gcc"]) {
        return;
    }
    let trees = Trees::new(&[
        ("src/x.c", SOURCE),
        ("inc/ask.h", ASK_H),
        ("early/.keep", ""),
        ("cpath/.keep", ""),
    ]);
    let root = &trees.a;
    let args = ["-I{root}/early", "-I{root}/inc"];
    let env = [("CPATH", "{root}/cpath")];
    trees.twice_equal_and_direct(root, "gcc", "x.c", &args, &env, "nothing there");
    for (file, body) in [
        ("early/x.h", "#define X 1\n"),
        ("inc/x.h", "#define X 2\n"),
        ("cpath/x.h", "#define X 3\n"),
        ("inc/y.h", "#define Y 4\n"),
        ("src/z.h", "#define Z 5\n"),
        ("early/w.h", ""),
        ("cpath/w.h", ""),
    ] {
        write(&root.join(file), body);
        trees.twice_equal_and_direct(root, "gcc", "x.c", &args, &env, &format!("{file} appeared"));
        std::fs::remove_file(root.join(file)).unwrap();
        let (object, ending) = trees.through(root, "gcc", "x.c", &args, &env);
        assert!(
            object == plain(root, "gcc", "x.c", &args, &env),
            "{file} went: {ending:?}"
        );
        assert_eq!(
            ending,
            (DIRECT_HIT.0.to_owned(), DIRECT_HIT.1),
            "{file} went"
        );
    }
    // Two at once, the earlier directory winning.
    write(&root.join("early/x.h"), "#define X 6\n");
    write(&root.join("cpath/x.h"), "#define X 7\n");
    trees.twice_equal_and_direct(root, "gcc", "x.c", &args, &env, "two of them");
}

#[test]
fn a_macro_standing_for_has_include_is_followed() {
    if !tools::installed(&["gcc"]) {
        return;
    }
    let trees = Trees::new(&[
        (
            "src/x.c",
            "#include \"has.h\"\n#if HAS(<x.h>)\n#include <x.h>\n#else\n#define X 0\n#endif\nint v = X;\n",
        ),
        (
            "inc/has.h",
            "#ifndef HAS\n#  ifdef __has_include\n#    define HAS __has_include\n#  else\n#    define HAS(x) 0\n#  endif\n#endif\n",
        ),
        ("early/.keep", ""),
    ]);
    let args = ["-I{root}/early", "-I{root}/inc"];
    trees.twice_equal_and_direct(&trees.a, "gcc", "x.c", &args, &[], "no x.h");
    write(&trees.a.join("early/x.h"), "#define X 1\n");
    trees.twice_equal_and_direct(&trees.a, "gcc", "x.c", &args, &[], "x.h appeared");
}

#[test]
fn a_form_the_scanner_cannot_read_is_keyed_by_the_preprocessor_and_stays_right() {
    if !tools::installed(&["gcc"]) {
        return;
    }
    let trees = Trees::new(&[
        ("src/x.c", "#include \"ask.h\"\nint v = X;\n"),
        (
            "inc/ask.h",
            "#define NAME <x.h>\n#if __has_include(NAME)\n#include NAME\n#else\n#define X 0\n#endif\n",
        ),
        ("early/.keep", ""),
    ]);
    let root = &trees.a;
    let args = ["-I{root}/early", "-I{root}/inc"];
    for step in ["nothing", "early/x.h"] {
        if step != "nothing" {
            write(&root.join(step), "#define X 1\n");
        }
        let plain = plain(root, "gcc", "x.c", &args, &[]);
        let (first, _) = trees.through(root, "gcc", "x.c", &args, &[]);
        let (second, ending) = trees.through(root, "gcc", "x.c", &args, &[]);
        assert!(first == plain && second == plain, "{step}");
        assert_eq!(
            ending,
            ("hit".to_owned(), Some(false)),
            "{step}: a preprocessor-keyed hit"
        );
    }
}

#[test]
fn a_second_checkout_hits_directly_and_sees_its_own_headers() {
    if !tools::installed(&["gcc"]) {
        return;
    }
    let trees = Trees::new(&[
        ("src/x.c", SOURCE),
        ("inc/ask.h", ASK_H),
        ("early/.keep", ""),
    ]);
    let args = ["-I{root}/early", "-I{root}/inc"];
    trees.twice_equal_and_direct(&trees.a, "gcc", "x.c", &args, &[], "first checkout");
    let expected = plain(&trees.b, "gcc", "x.c", &args, &[]);
    let (object, ending) = trees.through(&trees.b, "gcc", "x.c", &args, &[]);
    assert!(object == expected);
    assert_eq!(
        ending,
        (DIRECT_HIT.0.to_owned(), DIRECT_HIT.1),
        "second checkout"
    );
    for file in ["inc/y.h", "early/x.h"] {
        write(&trees.b.join(file), "#define X 1\n#define Y 1\n");
        let plain = plain(&trees.b, "gcc", "x.c", &args, &[]);
        let (object, ending) = trees.through(&trees.b, "gcc", "x.c", &args, &[]);
        assert!(object == plain, "{file} in the second checkout: {ending:?}");
    }
}
