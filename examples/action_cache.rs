//! A tiny build tool that caches its own actions in hoard, under keys it computes itself.
//!
//! ```text
//! cargo run --example action_cache -- [--server] [WORKDIR [CACHE_DIR]]
//! ```
//!
//! Each action makes one output file from input files by a deterministic transformation
//! (concatenate, then uppercase). Its key is a blake3 digest over a recipe: the recipe's
//! version, the action's name and every input's name and contents, which is everything the
//! output depends on. The tool looks the key up; on a hit hoard has written the output, on a
//! miss the tool does the work and stores the output under the key.
//!
//! Inputs live in `WORKDIR/src` (written with sample text when missing: edit them to see
//! misses), outputs in `WORKDIR/out`. WORKDIR defaults to a fixed directory under the system
//! temporary directory, CACHE_DIR to `WORKDIR/hoard-cache`. The cache is embedded (no server)
//! unless `--server` is given; then the tool connects to the `hoard-server` listening on
//! `HOARD_SERVER_UDS`.
//!
//! Prints `hit NAME` or `miss NAME` per action, then `hits=N misses=M`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hoard_client::{CacheKey, OutputPath};

mod common;

/// One step of the build: `output` is made from `inputs`.
struct Action {
    name: &'static str,
    inputs: &'static [&'static str],
    output: &'static str,
}

const ACTIONS: &[Action] = &[
    Action {
        name: "shout-greeting",
        inputs: &["greeting.txt"],
        output: "greeting.txt",
    },
    Action {
        name: "shout-farewell",
        inputs: &["farewell.txt"],
        output: "farewell.txt",
    },
    Action {
        name: "bundle",
        inputs: &["greeting.txt", "farewell.txt"],
        output: "bundle.txt",
    },
];

/// Sample inputs, written when the work directory has none.
const SAMPLE_INPUTS: &[(&str, &str)] = &[
    ("greeting.txt", "hello, world\n"),
    ("farewell.txt", "goodbye for now\n"),
];

/// Changing what an action does must change every key, or old outputs would be served.
const RECIPE_VERSION: &str = "hoard example action_cache, transformation v1";

const USAGE: &str = "usage: action_cache [--server] [WORKDIR [CACHE_DIR]]";

struct Options {
    server: bool,
    work_dir: PathBuf,
    cache_dir: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match build().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("action_cache: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn build() -> Result<(), Box<dyn Error>> {
    let options = parse_options();
    std::fs::create_dir_all(&options.work_dir)?;
    // Output paths go to the server as they are, and it accepts only absolute ones.
    let work_dir = std::fs::canonicalize(&options.work_dir)?;
    let cache_dir = options
        .cache_dir
        .unwrap_or_else(|| work_dir.join("hoard-cache"));
    let hoard = common::open(options.server, cache_dir).await?;

    let src = work_dir.join("src");
    write_sample_inputs(&src)?;
    let out = work_dir.join("out");
    // Start from no outputs at all, as a clean build would: whatever is in `out` at the end
    // came from the cache or from doing the work.
    match std::fs::remove_dir_all(&out) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::create_dir_all(&out)?;

    let (mut hits, mut misses) = (0, 0);
    for action in ACTIONS {
        let key = action_key(action, &src)?;
        let outputs = [OutputPath::new("output", out.join(action.output))];
        match hoard.get(&key, &outputs).await {
            Ok(Some(_)) => {
                println!("hit {}", action.name);
                hits += 1;
                continue;
            }
            Ok(None) => {}
            // The cache only saves work: when it fails, the work is done as if it were not
            // there.
            Err(e) => eprintln!("action_cache: looking up {} failed: {e}", action.name),
        }
        run(action, &src, &outputs[0].path)?;
        if let Err(e) = hoard.put(&key, &outputs, b"", b"", 0).await {
            eprintln!("action_cache: storing {} failed: {e}", action.name);
        }
        println!("miss {}", action.name);
        misses += 1;
    }
    println!("hits={hits} misses={misses}");
    Ok(())
}

fn parse_options() -> Options {
    let args = common::args(USAGE);
    if args.positional.len() > 2 {
        eprintln!("{USAGE}");
        std::process::exit(2);
    }
    let mut positional = args.positional.into_iter().map(PathBuf::from);
    Options {
        server: args.server,
        work_dir: positional
            .next()
            .unwrap_or_else(|| std::env::temp_dir().join("hoard-example-action-cache")),
        cache_dir: positional.next(),
    }
}

fn write_sample_inputs(src: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(src)?;
    for (name, text) in SAMPLE_INPUTS {
        let path = src.join(name);
        if !path.exists() {
            std::fs::write(path, text)?;
        }
    }
    Ok(())
}

/// The digest of everything the action's output depends on. Each field is length-prefixed so
/// that no two different recipes hash the same bytes.
fn action_key(action: &Action, src: &Path) -> std::io::Result<CacheKey> {
    let mut recipe = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        recipe.update(&(bytes.len() as u64).to_le_bytes());
        recipe.update(bytes);
    };
    field(RECIPE_VERSION.as_bytes());
    field(action.name.as_bytes());
    for input in action.inputs {
        field(input.as_bytes());
        field(&std::fs::read(src.join(input))?);
    }
    Ok(recipe.finalize().into())
}

/// The work itself: concatenate the inputs and uppercase them.
fn run(action: &Action, src: &Path, output: &Path) -> std::io::Result<()> {
    let mut text = Vec::new();
    for input in action.inputs {
        text.extend(std::fs::read(src.join(input))?);
    }
    std::fs::write(output, text.to_ascii_uppercase())
}
