//! Single flight: wrappers that compute the same key at the same moment compile it once; the
//! others wait for that compile and get the hit. The compiler here is real gcc behind a
//! script that logs every real compile (not its `-E` or `-v` runs) and sleeps, so that the
//! wrappers overlap for certain.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::load::{WRAPPER_LIMIT, output_within};
use crate::support::{self, Sandbox, counter, text};

const WRAPPERS: usize = 8;
/// How long each real compile is held up: far longer than it takes the wrappers to start.
const COMPILE_SLEEP: Duration = Duration::from_secs(2);

/// A `gcc` in `dir/bin` that appends a line to the returned log for each real compile,
/// sleeps, then runs the real gcc.
fn logging_gcc(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("compiles.log");
    let gcc = bin.join("gcc");
    std::fs::write(
        &gcc,
        format!(
            "#!/bin/sh\n\
             case \" $* \" in\n\
             *\" -E \"*|*\" -v \"*|*\" --version \"*) ;;\n\
             *\" -c \"*) echo \"$$ $*\" >> '{}'; sleep {} ;;\n\
             esac\n\
             exec gcc \"$@\"\n",
            log.display(),
            COMPILE_SLEEP.as_secs()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).unwrap();
    (gcc, log)
}

fn compiles(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count()
}

struct Run {
    sandbox: Sandbox,
    outputs: Vec<Output>,
    objects: Vec<PathBuf>,
    plain: Output,
    plain_object: PathBuf,
    compiles: usize,
    elapsed: Duration,
}

/// Starts `WRAPPERS` wrappers at one moment on one source, the `i`th with `env_for(i)`, and
/// returns what they and plain gcc made of it.
fn at_once(
    source: &str,
    sandbox_env: &[(&str, &str)],
    env_for: impl Fn(usize) -> Vec<(&'static str, &'static str)>,
) -> Run {
    let mut sandbox = Sandbox::new();
    for (k, v) in sandbox_env {
        sandbox.set_env(k, v);
    }
    sandbox.start_server();
    let dir = sandbox.dir.path().join("src");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.c"), source).unwrap();
    let (gcc, log) = logging_gcc(sandbox.dir.path());
    let objects: Vec<PathBuf> = (0..WRAPPERS)
        .map(|i| dir.join(format!("out{i}.o")))
        .collect();
    let barrier = Barrier::new(WRAPPERS);
    let started = Instant::now();
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = objects
            .iter()
            .enumerate()
            .map(|(i, object)| {
                let mut cmd = sandbox.hoard();
                cmd.current_dir(&dir)
                    .envs(env_for(i))
                    .arg(&gcc)
                    .args(["-O1", "-c", "s.c", "-o"])
                    .arg(object);
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    output_within(&mut cmd, WRAPPER_LIMIT)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let compiles = compiles(&log);
    let plain_object = dir.join("plain.o");
    let plain = Command::new("gcc")
        .current_dir(&dir)
        .args(["-O1", "-c", "s.c", "-o"])
        .arg(&plain_object)
        .output()
        .unwrap();
    Run {
        sandbox,
        outputs,
        objects,
        plain,
        plain_object,
        compiles,
        elapsed,
    }
}

impl Run {
    /// Every wrapper gave plain gcc's status, output and object.
    fn assert_all_like_plain(&self) {
        for (out, object) in self.outputs.iter().zip(&self.objects) {
            assert_eq!(
                out.status.code(),
                self.plain.status.code(),
                "{}",
                text(&out.stderr)
            );
            assert_eq!(text(&out.stdout), text(&self.plain.stdout));
            assert_eq!(text(&out.stderr), text(&self.plain.stderr));
            if self.plain.status.success() {
                assert_eq!(
                    std::fs::read(object).unwrap(),
                    std::fs::read(&self.plain_object).unwrap(),
                    "{} differs from plain gcc's object",
                    object.display()
                );
            }
        }
    }

    /// One real compile; the rest were hits served after waiting for it.
    fn assert_compiled_once(&self) {
        self.assert_all_like_plain();
        let stats = self.sandbox.stats();
        println!(
            "{WRAPPERS} wrappers at once: {} real compile(s) in {:?}; stats {stats}",
            self.compiles, self.elapsed
        );
        assert_eq!(self.compiles, 1, "{stats}\n{}", self.sandbox.log());
        assert_eq!(
            counter(&stats, "cache_hits"),
            WRAPPERS as u64 - 1,
            "{stats}"
        );
        assert_eq!(counter(&stats, "local_fallbacks"), 0, "{stats}");
        // Waiting for the one compile costs about one compile, not one each.
        assert!(self.elapsed < COMPILE_SLEEP * 3, "took {:?}", self.elapsed);
    }
}

const SOURCE: &str = "int triple(int x) { return 3 * x; }\nint quad(int x) { return 4 * x; }\n";

#[test]
fn v2_wrappers_in_direct_mode_compiling_one_source_at_once_compile_it_once() {
    let _machine = support::loading_the_machine();
    at_once(SOURCE, &[], |_| vec![]).assert_compiled_once();
}

#[test]
fn v2_wrappers_in_preprocessor_mode_compiling_one_source_at_once_compile_it_once() {
    let _machine = support::loading_the_machine();
    at_once(SOURCE, &[("HOARD_DIRECT_MODE", "off")], |_| vec![]).assert_compiled_once();
}

#[test]
fn v1_wrappers_compiling_one_source_at_once_have_the_server_compile_it_once() {
    let _machine = support::loading_the_machine();
    at_once(SOURCE, &[("HOARD_PROTOCOL", "1")], |_| vec![]).assert_compiled_once();
}

#[test]
fn v1_and_v2_wrappers_compiling_one_source_at_once_compile_it_once_between_them() {
    let _machine = support::loading_the_machine();
    let run = at_once(SOURCE, &[], |i| {
        if i % 2 == 0 {
            vec![("HOARD_PROTOCOL", "1")]
        } else {
            vec![]
        }
    });
    run.assert_compiled_once();
    let stats = run.sandbox.stats();
    assert!(
        stats["requests_by_protocol"]["1"].as_u64().unwrap_or(0) >= 4,
        "{stats}"
    );
    // A v2 wrapper that finds the entry in the local store serves it without a request.
    let v2 = stats["requests_by_protocol"]["2"].as_u64().unwrap_or(0)
        + stats["transfers"]["local"].as_u64().unwrap_or(0);
    assert!(v2 >= 4, "{stats}");
}

#[test]
fn wrappers_sharing_a_failing_compile_all_get_its_errors_without_waiting_in_turn() {
    let _machine = support::loading_the_machine();
    let run = at_once("int broken(void) { return nope; }\n", &[], |_| vec![]);
    assert!(!run.plain.status.success());
    run.assert_all_like_plain();
    println!(
        "{WRAPPERS} wrappers sharing a failing compile: {} real compiles in {:?}",
        run.compiles, run.elapsed
    );
    // The first one's failure stores nothing, so the others compile for themselves, all at
    // once: about two compiles' time, never one after another.
    assert_eq!(run.compiles, WRAPPERS);
    assert!(
        run.elapsed < COMPILE_SLEEP * 4,
        "failing compiles took {:?}: followers ran one after another",
        run.elapsed
    );
}
