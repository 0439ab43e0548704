//! Load: many wrappers at once ([`wrappers`]), wrappers that compute one key at the same
//! moment ([`single_flight`]), and a soak with the server's memory measured ([`soak`]).
//!
//! What they share is here: wrappers run with a deadline (a hung wrapper fails the test
//! instead of hanging it), plain-gcc reference digests, and the cache directory's size.

mod single_flight;
mod soak;
mod wrappers;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Sandbox, text};

/// A wrapper that takes longer than this is hung: the server deadlocked or lost a request.
pub const WRAPPER_LIMIT: Duration = Duration::from_secs(90);

/// Runs `cmd` to completion, failing the test if it is still running after `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut out = Vec::new();
            pipes.0.read_to_end(&mut out).unwrap();
            out
        }),
        std::thread::spawn(move || {
            let mut err = Vec::new();
            pipes.1.read_to_end(&mut err).unwrap();
            err
        }),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} still running after {limit:?}: hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: readers.0.join().unwrap(),
        stderr: readers.1.join().unwrap(),
    }
}

/// One compile: `source` (relative to `cwd`) to `object`.
#[derive(Clone)]
pub struct Job {
    pub cwd: PathBuf,
    pub source: PathBuf,
    pub object: PathBuf,
}

impl Job {
    pub fn args(&self, flags: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        args.extend([
            "-c".into(),
            self.source.display().to_string(),
            "-o".into(),
            self.object.display().to_string(),
        ]);
        args
    }
}

/// Runs every job through `sandbox`'s wrapper, `parallel` at a time; each must succeed.
pub fn run_wrapped(sandbox: &Sandbox, jobs: &[Job], flags: &[&str], parallel: usize) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let out = output_within(
                        sandbox
                            .hoard()
                            .current_dir(&job.cwd)
                            .arg("gcc")
                            .args(job.args(flags)),
                        WRAPPER_LIMIT,
                    );
                    assert!(
                        out.status.success(),
                        "hoard gcc {:?}: {}",
                        job.args(flags),
                        text(&out.stderr)
                    );
                }
            });
        }
    });
}

/// The digest of what plain gcc makes of `job`, compiled to a scratch object in `scratch`.
pub fn plain_digest(job: &Job, flags: &[&str], scratch: &Path) -> blake3::Hash {
    std::fs::create_dir_all(scratch).unwrap();
    let object = scratch.join(job.object.file_name().unwrap());
    let plain = Job {
        object: object.clone(),
        ..job.clone()
    };
    let out = Command::new("gcc")
        .current_dir(&job.cwd)
        .args(plain.args(flags))
        .output()
        .unwrap();
    assert!(out.status.success(), "gcc: {}", text(&out.stderr));
    blake3::hash(&std::fs::read(object).unwrap())
}

pub fn digest(path: &Path) -> blake3::Hash {
    blake3::hash(&std::fs::read(path).unwrap())
}

/// Bytes of the entries and manifests in a cache directory (`HOARD_DIR/cache`), as eviction
/// counts them: `<2 hex>/<64 hex>` files.
pub fn stored_bytes(cache_dir: &Path) -> u64 {
    let Ok(subs) = std::fs::read_dir(cache_dir.join("cache")) else {
        return 0;
    };
    let mut total = 0;
    for sub in subs.flatten() {
        if sub.file_name().len() != 2 {
            continue;
        }
        for file in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.file_name().len() == 64
                && let Ok(meta) = file.metadata()
            {
                total += meta.len();
            }
        }
    }
    total
}
