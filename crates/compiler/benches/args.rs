//! What the wrapper pays to understand a command before it hashes anything: `classify` end to
//! end (find the compiler on `PATH`, parse the arguments, look the compiler's identity up in the
//! on-disk identity cache, name the outputs) for a typical gcc command line as CMake issues it
//! and a typical rustc command line as cargo issues it for a registry crate. The argument
//! parsers are private, so this measures them through `classify`, with the identity caches
//! warm (as on every compile but the first). Needs gcc and rustc on `PATH`.
//! Run with `cargo bench -p hoard-compiler --bench args`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use divan::{Bencher, black_box};
use hoard_compiler::{CommandLine, PipelineConfig, classify};

fn main() {
    divan::main();
}

/// A scratch tree: sources, a build directory, and hoard's state directory.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PipelineConfig,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        Self {
            config: PipelineConfig::new(root.join("state")),
            root,
            _dir: dir,
        }
    }

    fn write(&self, path: &str, text: &str) -> PathBuf {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Classifies once (filling the identity caches), checks the command is cacheable, and
    /// returns it for the benchmark.
    fn warmed(&self, cmd: CommandLine) -> CommandLine {
        if let Err(reason) = classify(&cmd, &self.config) {
            panic!("{} is not cacheable: {reason}", cmd.program.display());
        }
        cmd
    }
}

/// `program args` run in `cwd` with this process's environment (`PWD` set as a shell would)
/// and `extra_env` after it.
fn command(program: &str, cwd: &Path, args: &str, extra_env: &[(&str, &str)]) -> CommandLine {
    let mut env: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(k, _)| k != "PWD").collect();
    env.push(("PWD".into(), cwd.into()));
    env.extend(extra_env.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    CommandLine {
        program: program.into(),
        args: args.split_whitespace().map(OsString::from).collect(),
        cwd: cwd.to_path_buf(),
        env,
    }
}

#[divan::bench]
fn classify_gcc(bencher: Bencher) {
    let tree = Tree::new();
    let src = tree.write(
        "project/src/net/http_client.c",
        "#include \"http.h\"\nint get(void) { return 0; }\n",
    );
    tree.write("project/include/http.h", "int get(void);\n");
    let build = tree.root.join("project/build");
    std::fs::create_dir_all(build.join("src/net")).unwrap();
    let include = tree.root.join("project/include");
    let args = format!(
        "-DNDEBUG -DHAVE_CONFIG_H -DVERSION=\"1.2.3\" -I{include} -I{build} \
         -isystem /usr/local/include -O2 -g -Wall -Wextra -Wshadow -fPIC -fvisibility=hidden \
         -std=gnu11 -MD -MT src/net/http_client.c.o -MF src/net/http_client.c.o.d \
         -o src/net/http_client.c.o -c {src}",
        include = include.display(),
        build = build.display(),
        src = src.display(),
    );
    let cmd = tree.warmed(command("gcc", &build, &args, &[]));
    bencher.bench(|| classify(black_box(&cmd), &tree.config).unwrap());
}

#[divan::bench]
fn classify_rustc(bencher: Bencher) {
    let tree = Tree::new();
    let package = tree.root.join("registry/serde_json-1.0.140");
    let src = tree.write(
        "registry/serde_json-1.0.140/src/lib.rs",
        "pub fn f() -> u32 { 1 }\n",
    );
    let deps = tree.root.join("target/debug/deps");
    std::fs::create_dir_all(&deps).unwrap();
    let mut externs = String::new();
    for (name, hash) in [
        ("itoa", "3f1a2b"),
        ("memchr", "9c0d1e"),
        ("ryu", "77aa01"),
        ("serde", "5e6f70"),
    ] {
        let path = deps.join(format!("lib{name}-{hash}.rmeta"));
        std::fs::write(&path, b"rmeta").unwrap();
        write!(externs, " --extern {name}={}", path.display()).unwrap();
    }
    let args = format!(
        "--crate-name serde_json --edition=2021 {src} --error-format=json \
         --json=diagnostic-rendered-ansi,artifacts,future-incompat --diagnostic-width=120 \
         --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 \
         --cfg feature=\"default\" --cfg feature=\"std\" \
         --check-cfg cfg(docsrs,test) --check-cfg cfg(feature,values(\"alloc\",\"default\",\"std\")) \
         -C metadata=4ab7d2c9e1f03b58 -C extra-filename=-4ab7d2c9e1f03b58 \
         --out-dir {deps} -L dependency={deps}{externs} --cap-lints allow \
         --cfg fast_arithmetic=\"64\"",
        src = src.display(),
        deps = deps.display(),
    );
    let manifest_dir = package.display().to_string();
    let cargo_env = [
        ("CARGO", "/usr/local/bin/cargo"),
        ("CARGO_CRATE_NAME", "serde_json"),
        ("CARGO_MANIFEST_DIR", manifest_dir.as_str()),
        ("CARGO_PKG_NAME", "serde_json"),
        ("CARGO_PKG_VERSION", "1.0.140"),
        ("CARGO_PKG_AUTHORS", "Erick Tryzelaar:David Tolnay"),
        ("CARGO_PKG_DESCRIPTION", "A JSON serialization file format"),
    ];
    let cmd = tree.warmed(command("rustc", &package, &args, &cargo_env));
    bencher.bench(|| classify(black_box(&cmd), &tree.config).unwrap());
}
