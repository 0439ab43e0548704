//! The pipeline with real gcc (and clang, g++ and clang++ when installed) over a real
//! `DiskStore` through `StorageCache`: every hit must give what the plain compiler gives.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hoard_compiler::{
    ArtifactCache, CacheError, CacheKey, CacheStatus, CommandLine, CompileOutcome, CompileResult,
    CompilerKind, Language, OutputPath, PipelineConfig, StorageCache, cached_compile, classify,
    run_compiler,
};
use hoard_storage::{DiskStore, EntryStore};

/// A source tree, a compiler-state directory and a cache, all in one temporary directory.
struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PipelineConfig,
    cache: StorageCache,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let store = DiskStore::open(&root.join("cache"), 1 << 30).unwrap();
        Self {
            config: PipelineConfig::new(root.join("state")),
            cache: StorageCache::new(EntryStore::new(Arc::new(store))),
            root,
            _dir: dir,
        }
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn remove(&self, path: &str) {
        let _ = std::fs::remove_file(self.root.join(path));
    }

    /// `program args` run in `cwd` (relative to the root) with this process's environment,
    /// `PWD` set as a shell would.
    fn command(&self, program: &str, cwd: &str, args: &str) -> CommandLine {
        let cwd = self.root.join(cwd);
        let mut env: Vec<(OsString, OsString)> =
            std::env::vars_os().filter(|(k, _)| k != "PWD").collect();
        env.push(("PWD".into(), cwd.clone().into()));
        CommandLine {
            program: program.into(),
            args: args.split_whitespace().map(OsString::from).collect(),
            cwd,
            env,
        }
    }

    async fn cached(&self, cmd: &CommandLine) -> CompileOutcome {
        let compile = classify(cmd, &self.config).unwrap_or_else(|e| panic!("{e}"));
        let outcome = cached_compile(&compile, &self.cache).await;
        assert!(
            outcome.cache_errors.is_empty(),
            "{:?}",
            outcome.cache_errors
        );
        outcome
    }
}

/// The compilers to test with: gcc always, the others when this machine has them.
fn compilers() -> Vec<(&'static str, &'static str)> {
    let mut found = vec![("gcc", "c")];
    for (program, extension) in [("g++", "cpp"), ("clang", "c"), ("clang++", "cpp")] {
        let runs = std::process::Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if runs {
            found.push((program, extension));
        }
    }
    found
}

const HEADER: &str = "#define ANSWER 42\nint twice(int x);\n";
const SOURCE: &str = "#include \"answer.h\"\nint twice(int x) { return 2 * x; }\nint answer(void) { return twice(ANSWER / 2); }\n";

fn hit(direct: bool) -> CacheStatus {
    CacheStatus::Hit { direct }
}

#[tokio::test]
async fn a_second_compile_hits_with_object_and_dep_file_identical_to_the_plain_compiler() {
    for (program, ext) in compilers() {
        let p = Project::new();
        p.write("include/answer.h", HEADER);
        p.write(&format!("src/main.{ext}"), SOURCE);
        std::fs::create_dir_all(p.root.join("obj")).unwrap();
        let cmd = p.command(
            program,
            "",
            &format!("-O2 -g -Iinclude -MD -c src/main.{ext} -o obj/main.o"),
        );

        let first = p.cached(&cmd).await;
        assert_eq!(first.status, CacheStatus::Miss, "{program}");
        assert_eq!(first.result.exit_status, 0, "{program}");
        p.remove("obj/main.o");
        p.remove("obj/main.d");

        let second = p.cached(&cmd).await;
        assert!(
            matches!(second.status, CacheStatus::Hit { .. }),
            "{program}"
        );
        let (object, dep) = (p.read("obj/main.o"), p.read("obj/main.d"));
        p.remove("obj/main.o");
        p.remove("obj/main.d");

        let plain = run_compiler(&cmd).await;
        assert_eq!(second.result, plain, "{program}");
        assert!(object == p.read("obj/main.o"), "{program}: object differs");
        assert_eq!(
            String::from_utf8(dep).unwrap(),
            String::from_utf8(p.read("obj/main.d")).unwrap(),
            "{program}"
        );
    }
}

#[tokio::test]
async fn the_second_run_is_a_direct_mode_hit() {
    for (program, ext) in compilers() {
        let p = Project::new();
        p.write("answer.h", HEADER);
        p.write(&format!("main.{ext}"), SOURCE);
        let cmd = p.command(program, "", &format!("-c main.{ext}"));
        assert_eq!(p.cached(&cmd).await.status, CacheStatus::Miss, "{program}");
        assert_eq!(p.cached(&cmd).await.status, hit(true), "{program}");
        assert!(!p.read("main.o").is_empty());
    }
}

#[tokio::test]
async fn without_direct_mode_the_hit_comes_from_the_preprocessor() {
    let mut p = Project::new();
    p.config.direct_mode = false;
    p.write("answer.h", HEADER);
    p.write("main.c", SOURCE);
    let cmd = p.command("gcc", "", "-c main.c");
    assert_eq!(p.cached(&cmd).await.status, CacheStatus::Miss);
    assert_eq!(p.cached(&cmd).await.status, hit(false));
}

#[tokio::test]
async fn a_changed_header_misses_builds_the_new_object_and_the_old_one_still_hits() {
    for (program, ext) in compilers() {
        let p = Project::new();
        p.write("answer.h", HEADER);
        p.write(&format!("main.{ext}"), SOURCE);
        let cmd = p.command(program, "", &format!("-O1 -c main.{ext}"));
        p.cached(&cmd).await;
        let old = p.read("main.o");

        p.write("answer.h", &HEADER.replace("42", "1234"));
        assert_eq!(p.cached(&cmd).await.status, CacheStatus::Miss, "{program}");
        let new = p.read("main.o");
        assert_ne!(new, old, "{program}");
        run_compiler(&cmd).await;
        assert_eq!(new, p.read("main.o"), "{program}");
        assert_eq!(p.cached(&cmd).await.status, hit(true), "{program}");
        assert_eq!(new, p.read("main.o"), "{program}");

        p.write("answer.h", HEADER);
        assert_eq!(p.cached(&cmd).await.status, hit(true), "{program}");
        assert_eq!(old, p.read("main.o"), "{program}");
    }
}

#[tokio::test]
async fn time_macros_in_the_source_or_a_header_are_never_a_direct_hit() {
    let p = Project::new();
    p.write("stamp.h", "static const char *built = __DATE__;\n");
    p.write(
        "uses_header.c",
        "#include \"stamp.h\"\nconst char *b(void) { return built; }\n",
    );
    p.write("uses_time.c", "const char *t(void) { return __TIME__; }\n");
    for source in ["uses_header.c", "uses_time.c"] {
        let cmd = p.command("gcc", "", &format!("-c {source}"));
        for _ in 0..3 {
            let outcome = p.cached(&cmd).await;
            assert_ne!(outcome.status, hit(true), "{source}");
            assert_eq!(outcome.result.exit_status, 0);
        }
    }
}

#[tokio::test]
async fn a_failing_compile_gives_the_compilers_status_and_stderr_and_is_not_stored() {
    for (program, ext) in compilers() {
        let p = Project::new();
        p.write(
            &format!("bad.{ext}"),
            "int f(void) { return missing_name; }\n",
        );
        let cmd = p.command(program, "", &format!("-c bad.{ext} -o bad.o"));
        let plain = run_compiler(&cmd).await;
        assert_ne!(plain.exit_status, 0);
        for _ in 0..2 {
            let outcome = p.cached(&cmd).await;
            assert_eq!(outcome.status, CacheStatus::Miss, "{program}");
            assert_eq!(outcome.result, plain, "{program}");
        }
        assert!(!p.root.join("bad.o").exists());
    }
}

#[tokio::test]
async fn a_missing_header_fails_like_the_plain_compiler() {
    let p = Project::new();
    p.write("main.c", "#include \"nowhere.h\"\nint x;\n");
    let cmd = p.command("gcc", "", "-c main.c");
    let plain = run_compiler(&cmd).await;
    let outcome = p.cached(&cmd).await;
    assert_eq!(outcome.result, plain);
    assert_eq!(plain.exit_status, 1);
}

#[tokio::test]
async fn warnings_are_replayed_on_a_hit() {
    for (program, ext) in compilers() {
        let p = Project::new();
        p.write(
            &format!("warn.{ext}"),
            "int f(void) { int unused = 1; return 0; }\n",
        );
        let cmd = p.command(program, "", &format!("-Wall -c warn.{ext}"));
        let first = p.cached(&cmd).await;
        assert!(
            String::from_utf8_lossy(&first.result.stderr).contains("unused"),
            "{program}"
        );
        let second = p.cached(&cmd).await;
        assert_eq!(second.status, hit(true), "{program}");
        assert_eq!(second.result, first.result, "{program}");
        assert_eq!(second.result, run_compiler(&cmd).await, "{program}");
    }
}

#[tokio::test]
async fn an_object_with_debug_info_is_not_served_to_another_directory() {
    for (program, ext) in compilers() {
        let p = Project::new();
        for dir in ["one", "two"] {
            p.write(&format!("{dir}/answer.h"), HEADER);
            p.write(&format!("{dir}/main.{ext}"), SOURCE);
        }
        let args = format!("-g -c main.{ext}");
        assert_eq!(
            p.cached(&p.command(program, "one", &args)).await.status,
            CacheStatus::Miss
        );
        let other = p.command(program, "two", &args);
        assert_eq!(
            p.cached(&other).await.status,
            CacheStatus::Miss,
            "{program}"
        );
        let cached = p.read("two/main.o");
        run_compiler(&other).await;
        assert!(cached == p.read("two/main.o"), "{program}: object differs");
    }
}

#[tokio::test]
async fn without_debug_info_another_directory_shares_the_object() {
    let p = Project::new();
    for dir in ["one", "two"] {
        p.write(&format!("{dir}/answer.h"), HEADER);
        p.write(&format!("{dir}/main.c"), SOURCE);
    }
    assert_eq!(
        p.cached(&p.command("gcc", "one", "-c main.c")).await.status,
        CacheStatus::Miss
    );
    let other = p.command("gcc", "two", "-c main.c");
    assert_eq!(p.cached(&other).await.status, hit(true));
    let cached = p.read("two/main.o");
    run_compiler(&other).await;
    assert!(cached == p.read("two/main.o"));
}

#[tokio::test]
async fn a_header_found_relative_to_the_directory_is_checked_in_that_directory() {
    let p = Project::new();
    p.write("one/answer.h", HEADER);
    p.write("two/answer.h", &HEADER.replace("42", "7"));
    for dir in ["one", "two"] {
        p.write(&format!("{dir}/main.c"), SOURCE);
    }
    p.cached(&p.command("gcc", "one", "-c main.c")).await;
    let other = p.command("gcc", "two", "-c main.c");
    assert_eq!(p.cached(&other).await.status, CacheStatus::Miss);
    let cached = p.read("two/main.o");
    run_compiler(&other).await;
    assert!(cached == p.read("two/main.o"));
}

#[tokio::test]
async fn the_dependency_file_names_its_own_object_on_a_hit() {
    let p = Project::new();
    p.write("answer.h", HEADER);
    p.write("main.c", SOURCE);
    p.cached(&p.command("gcc", "", "-MMD -c main.c -o a.o"))
        .await;
    let other = p.command("gcc", "", "-MMD -c main.c -o b.o");
    p.cached(&other).await;
    let dep = p.read("b.d");
    assert!(String::from_utf8_lossy(&dep).starts_with("b.o:"));
    run_compiler(&other).await;
    assert_eq!(dep, p.read("b.d"));

    let with_target = p.command("gcc", "", "-MMD -MT out -MF c.dep -c main.c -o c.o");
    p.cached(&with_target).await;
    p.remove("c.dep");
    assert!(matches!(
        p.cached(&with_target).await.status,
        CacheStatus::Hit { .. }
    ));
    assert!(String::from_utf8_lossy(&p.read("c.dep")).starts_with("out:"));
}

#[tokio::test]
async fn response_files_and_assembly_sources_are_cached() {
    let p = Project::new();
    p.write("answer.h", HEADER);
    p.write("main.c", SOURCE);
    p.write("args.rsp", "-O2 '-DNAME=\"a b\"' -c main.c -o main.o");
    p.write("raw.s", ".text\n.globl f\nf:\n ret\n");
    for args in ["@args.rsp", "-c raw.s"] {
        let cmd = p.command("gcc", "", args);
        assert_eq!(p.cached(&cmd).await.status, CacheStatus::Miss, "{args}");
        assert!(
            matches!(p.cached(&cmd).await.status, CacheStatus::Hit { .. }),
            "{args}"
        );
    }
}

#[tokio::test]
async fn assembly_that_includes_other_files_is_never_served_from_the_cache() {
    let p = Project::new();
    p.write("body.s", "ret\n");
    p.write("raw.s", ".text\n.globl f\nf:\n.include \"body.s\"\n");
    p.write("cpp.S", ".text\n.globl g\ng:\n.include \"body.s\"\n");
    for args in ["-c raw.s", "-c cpp.S"] {
        let cmd = p.command("gcc", "", args);
        for _ in 0..2 {
            let outcome = p.cached(&cmd).await;
            assert_eq!(outcome.status, CacheStatus::Miss, "{args}");
            assert_eq!(outcome.result.exit_status, 0, "{args}");
        }
    }
}

#[tokio::test]
async fn the_compiler_identity_is_recorded_once_and_then_read_back() {
    let p = Project::new();
    p.write("main.c", SOURCE);
    p.write("answer.h", HEADER);
    let cmd = p.command("gcc", "", "-c main.c");
    assert_eq!(
        classify(&cmd, &p.config).unwrap().compiler_kind(),
        CompilerKind::Gcc
    );
    let records: Vec<PathBuf> = std::fs::read_dir(p.config.state_dir.join("compilers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1);
    let record = std::fs::read_to_string(&records[0]).unwrap();
    assert!(record.contains("kind gcc"), "{record}");

    // A record saying "clang" can only be believed if it is read rather than recomputed.
    std::fs::write(&records[0], record.replace("kind gcc", "kind clang")).unwrap();
    assert_eq!(
        classify(&cmd, &p.config).unwrap().compiler_kind(),
        CompilerKind::Clang
    );
}

/// A cache whose every operation fails, as a crashed server or a full disk would.
struct DownCache;

#[async_trait]
impl ArtifactCache for DownCache {
    async fn get(
        &self,
        _: &CacheKey,
        _: &[OutputPath],
        _: Language,
    ) -> Result<Option<CompileResult>, CacheError> {
        Err(CacheError::new("cache is down"))
    }
    async fn put(
        &self,
        _: &CacheKey,
        _: &[OutputPath],
        _: &CompileResult,
        _: Language,
    ) -> Result<(), CacheError> {
        Err(CacheError::new("cache is down"))
    }
    async fn get_manifest(&self, _: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        Err(CacheError::new("cache is down"))
    }
    async fn put_manifest(&self, _: &CacheKey, _: Vec<u8>) -> Result<(), CacheError> {
        Err(CacheError::new("cache is down"))
    }
}

#[tokio::test]
async fn a_failing_cache_falls_back_to_the_plain_compile() {
    let p = Project::new();
    p.write("answer.h", HEADER);
    p.write("main.c", SOURCE);
    let cmd = p.command("gcc", "", "-Wall -c main.c");
    let compile = classify(&cmd, &p.config).unwrap();
    let outcome = cached_compile(&compile, &DownCache).await;
    assert_eq!(outcome.status, CacheStatus::Fallback);
    assert_eq!(outcome.cache_errors.len(), 1);
    assert_eq!(outcome.cache_errors[0].to_string(), "cache is down");
    let object = p.read("main.o");
    assert_eq!(outcome.result, run_compiler(&cmd).await);
    assert_eq!(object, p.read("main.o"));
}

#[tokio::test]
async fn non_cacheable_commands_are_named() {
    let p = Project::new();
    p.write("main.c", SOURCE);
    for (args, reason) in [
        ("main.c -o prog", "linking"),
        ("-E main.c", "preprocess_only"),
        ("-c main.c -o /dev/null", "output_not_regular_file"),
        ("-c @missing.rsp", "unreadable_response_file"),
    ] {
        let err = classify(&p.command("gcc", "", args), &p.config).unwrap_err();
        assert_eq!(err.name(), reason, "{args}");
    }
    let err = classify(&p.command("no-such-cc", "", "-c main.c"), &p.config).unwrap_err();
    assert_eq!(err.name(), "compiler_not_found");
    let err = classify(&p.command("true", "", "-c main.c"), &p.config).unwrap_err();
    assert_eq!(err.name(), "unsupported_compiler");
}

#[test]
fn output_paths_are_absolute_with_their_directory_resolved() {
    let p = Project::new();
    p.write("real/main.c", SOURCE);
    std::os::unix::fs::symlink(p.root.join("real"), p.root.join("link")).unwrap();
    let compile = classify(
        &p.command("gcc", "link", "-MD -c main.c -o ./../link/x.o"),
        &p.config,
    )
    .unwrap();
    let paths: Vec<&Path> = compile.outputs().iter().map(|o| o.path.as_path()).collect();
    assert_eq!(paths, [p.root.join("real/x.o"), p.root.join("real/x.d")]);
    assert_eq!(compile.outputs()[0].role, "object");
    assert_eq!(compile.outputs()[1].role, "dep");
    assert_eq!(compile.language(), Language::C);
}

/// A compiler that logs each command line, then is gcc.
fn logging_gcc(p: &Project) -> (String, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = p.root.join("calls.log");
    let script = p.root.join("logging-gcc");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec gcc \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.to_string_lossy().into_owned(), log)
}

fn preprocessor_runs(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').any(|a| a == "-E"))
        .count()
}

#[tokio::test]
async fn a_direct_mode_miss_compiles_once_with_no_preprocessor_run_and_then_hits() {
    let p = Project::new();
    p.write("answer.h", HEADER);
    p.write("main.c", SOURCE);
    let (gcc, log) = logging_gcc(&p);
    let cmd = p.command(&gcc, "", "-O1 -g -c main.c");
    assert_eq!(p.cached(&cmd).await.status, CacheStatus::Miss);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(preprocessor_runs(&log), 0, "{calls}");
    assert_eq!(
        calls.lines().filter(|l| l.contains("-c main.c")).count(),
        1,
        "{calls}"
    );
    let cached = p.read("main.o");
    run_compiler(&p.command("gcc", "", "-O1 -g -c main.c")).await;
    assert_eq!(
        cached,
        p.read("main.o"),
        "the object is the plain compiler's"
    );
    assert_eq!(p.cached(&cmd).await.status, hit(true));
    assert_eq!(cached, p.read("main.o"));
    // A changed header is noticed without a preprocessor run too.
    p.write("answer.h", &HEADER.replace("42", "7"));
    assert_eq!(p.cached(&cmd).await.status, CacheStatus::Miss);
    assert_eq!(preprocessor_runs(&log), 0);
    assert_eq!(p.cached(&cmd).await.status, hit(true));
}

#[tokio::test]
async fn a_user_headers_only_dependency_file_cannot_stand_in_for_the_preprocessor() {
    let p = Project::new();
    p.write("answer.h", HEADER);
    p.write("main.c", SOURCE);
    let (gcc, log) = logging_gcc(&p);
    let cmd = p.command(&gcc, "", "-MMD -c main.c");
    assert_eq!(p.cached(&cmd).await.status, CacheStatus::Miss);
    assert_eq!(preprocessor_runs(&log), 1);
    assert_eq!(p.cached(&cmd).await.status, hit(true));
}
