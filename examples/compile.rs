//! Runs C compiles through hoard's cached-compile pipeline, as a build tool embedding hoard
//! would instead of running the compiler itself.
//!
//! ```text
//! cargo run --example compile -- [--server] [WORKDIR [FILE.c ...]]
//! ```
//!
//! Compiles each file with `gcc -c FILE.c -o WORKDIR/FILE.o`. Without files it writes two
//! small C files into WORKDIR (when missing) and compiles those. WORKDIR defaults to a fixed
//! directory under the system temporary directory; the cache lives in `WORKDIR/hoard-cache`
//! and is embedded (no server) unless `--server` is given: then the compiles go through the
//! `hoard-server` listening on `HOARD_SERVER_UDS`.
//!
//! Prints `hit FILE`, `miss FILE`, `fallback FILE: why` or `not cacheable FILE: why` per file,
//! then `hits=N misses=M`. Exits nonzero when a compile failed.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hoard_client::{CacheStatus, CommandLine};

mod common;

const SAMPLE_SOURCES: &[(&str, &str)] = &[
    (
        "greet.c",
        "#include <stdio.h>\n\nvoid greet(const char *name) { printf(\"hello, %s\\n\", name); }\n",
    ),
    (
        "answer.c",
        "#include <stdint.h>\n\nint32_t answer(void) { return INT32_C(6) * 7; }\n",
    ),
];

const USAGE: &str = "usage: compile [--server] [WORKDIR [FILE.c ...]]";

struct Options {
    server: bool,
    work_dir: PathBuf,
    sources: Vec<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match build().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compile: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn build() -> Result<ExitCode, Box<dyn Error>> {
    let options = parse_options();
    std::fs::create_dir_all(&options.work_dir)?;
    // Absolute paths everywhere: the server accepts only absolute output paths, and the
    // compile must not depend on where this tool was started.
    let work_dir = std::fs::canonicalize(&options.work_dir)?;
    let cache_dir = work_dir.join("hoard-cache");
    let hoard = common::open(options.server, cache_dir).await?;
    let sources = if options.sources.is_empty() {
        write_samples(&work_dir)?
    } else {
        options.sources
    };

    let (mut hits, mut misses, mut failed) = (0, 0, false);
    for source in &sources {
        let name = source.strip_prefix(&work_dir).unwrap_or(source).display();
        let stem = source
            .file_stem()
            .ok_or_else(|| format!("{name}: no file name"))?;
        let object = work_dir.join(Path::new(stem).with_extension("o"));
        let command = CommandLine {
            program: "gcc".into(),
            args: vec![
                "-c".into(),
                std::path::absolute(source)?.into(),
                "-o".into(),
                object.into(),
            ],
            cwd: work_dir.clone(),
            env: std::env::vars_os().collect(),
        };
        let outcome = hoard.compile(&command).await;
        // On a hit too: the compiler's warnings are part of what the build must see.
        std::io::stderr().write_all(&outcome.result.stderr)?;
        match &outcome.status {
            CacheStatus::Hit { .. } => {
                println!("hit {name}");
                hits += 1;
            }
            CacheStatus::Miss => {
                println!("miss {name}");
                misses += 1;
            }
            // `Withdrawn` never comes out of `Hoard::compile`: `connect` insists on v2.
            CacheStatus::Fallback | CacheStatus::Withdrawn => {
                let why: Vec<String> = outcome
                    .cache_errors
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                println!("fallback {name}: {}", why.join("; "));
                misses += 1;
            }
            CacheStatus::NotCacheable(reason) => println!("not cacheable {name}: {reason}"),
            // `CacheStatus` is non-exhaustive: a status added in a later hoard is reported,
            // not a build error here.
            other => {
                println!("{other:?} {name}");
                misses += 1;
            }
        }
        if outcome.result.exit_status != 0 {
            eprintln!("compile: {name}: gcc exited {}", outcome.result.exit_status);
            failed = true;
        }
    }
    println!("hits={hits} misses={misses}");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_options() -> Options {
    let args = common::args(USAGE);
    let mut positional = args.positional.into_iter().map(PathBuf::from);
    Options {
        server: args.server,
        work_dir: positional
            .next()
            .unwrap_or_else(|| std::env::temp_dir().join("hoard-example-compile")),
        sources: positional.collect(),
    }
}

/// Writes the sample sources that are missing and returns all of their paths.
fn write_samples(work_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for (name, text) in SAMPLE_SOURCES {
        let path = work_dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text)?;
        }
        paths.push(path);
    }
    Ok(paths)
}
