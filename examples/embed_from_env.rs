//! Uses the very cache the `hoard` wrapper uses, configured the way `hoard` configures itself:
//! from the `HOARD_*` environment variables and the config file.
//!
//! ```text
//! cargo run --example embed_from_env -- [--embedded] [WORKDIR]
//! ```
//!
//! The settings come from `hoard::config::Settings::from_env()`: the cache directory
//! (`HOARD_DIR`), the server's socket (`HOARD_SERVER_UDS`, else the default socket `hoard`
//! derives from the storage configuration), a TCP server (`HOARD_SERVER_ADDR`), the remote
//! tiers and the signing keys. `Settings::client()` turns them into the `ClientConfig` the
//! wrapper itself connects with, so this tool reaches the server every `hoard gcc ...` of the
//! same environment reaches, and starts it the same way when none runs (`hoard-server` named
//! by `HOARD_SERVER_BIN`, else the one on `PATH`). With `--embedded`, or when no server can
//! be reached, the tool opens the same cache in this process instead, with the same size
//! limit, tiers and signing settings: either way it shares entries with the wrapper.
//!
//! The action it caches makes `WORKDIR/out/shout.txt` from `WORKDIR/input.txt` (written with
//! sample text when missing; edit it to see a miss) by uppercasing it. WORKDIR defaults to a
//! fixed directory under the system temporary directory.
//!
//! Prints where the cache is, `hit shout` or `miss shout`, then `hits=N misses=M`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use hoard::config::Settings;
use hoard_client::{CacheKey, Hoard, OutputPath};

const USAGE: &str = "usage: embed_from_env [--embedded] [WORKDIR]";

/// Changing what the action does must change its key, or old outputs would be served.
const RECIPE_VERSION: &str = "embed_from_env shout v1";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed_from_env: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (embedded, work_dir) = parse_args();
    let work_dir = std::path::absolute(work_dir)?;
    std::fs::create_dir_all(work_dir.join("out"))?;

    // What `hoard` itself reads, in the order it reads it: the environment over the config
    // file over the defaults. It also creates the cache directory.
    let settings = Settings::from_env()?;
    println!("cache directory: {}", settings.cache_dir.display());
    let hoard = if embedded {
        open_embedded(&settings)?
    } else {
        println!("socket: {}", settings.socket_path.display());
        match Hoard::connect(&settings.client()).await {
            Ok(hoard) => hoard,
            // The cache is an accelerator: a tool that can do without the server should.
            Err(e) => {
                println!("no server ({e}); using the cache in this process");
                open_embedded(&settings)?
            }
        }
    };
    println!(
        "mode: {}",
        if hoard.is_embedded() {
            "embedded"
        } else {
            "connected"
        }
    );

    let input = work_dir.join("input.txt");
    if !input.exists() {
        std::fs::write(&input, "hello from a build tool\n")?;
    }
    let output = OutputPath::new("shout", work_dir.join("out/shout.txt"));
    let key = action_key(&input)?;
    let hit = match hoard.get(&key, std::slice::from_ref(&output)).await {
        Ok(hit) => hit.is_some(),
        // An error is a miss: the work is done again, and the build goes on.
        Err(e) => {
            eprintln!("embed_from_env: lookup failed, doing the work: {e}");
            false
        }
    };
    if hit {
        println!("hit shout");
    } else {
        let text = std::fs::read_to_string(&input)?;
        std::fs::write(&output.path, text.to_uppercase())?;
        if let Err(e) = hoard
            .put(&key, std::slice::from_ref(&output), b"", b"", 0)
            .await
        {
            eprintln!("embed_from_env: not stored: {e}");
        }
        println!("miss shout");
    }
    // Remote-tier writes of an embedded cache are queued; a connected cache's server uploads.
    hoard.flush(std::time::Duration::from_secs(10)).await;
    println!("hits={} misses={}", u8::from(hit), u8::from(!hit));
    Ok(())
}

/// The cache in this process: the directory, size limit, tiers and signing settings `hoard`
/// would give its server.
fn open_embedded(settings: &Settings) -> Result<Hoard, Box<dyn Error>> {
    Ok(Hoard::embedded_with_trust(
        settings.cache_dir.clone(),
        settings.cache_size,
        settings.tiers.clone(),
        Arc::clone(&settings.trust),
    )?)
}

/// A blake3 digest over everything the output depends on: the recipe's version and the
/// input's contents (not its path: another checkout gets the same key).
fn action_key(input: &Path) -> Result<CacheKey, Box<dyn Error>> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(RECIPE_VERSION.as_bytes());
    hasher.update(&std::fs::read(input)?);
    Ok(hasher.finalize().into())
}

fn parse_args() -> (bool, PathBuf) {
    let mut embedded = false;
    let mut work_dir = None;
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--embedded") => embedded = true,
            Some("-h" | "--help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Some(option) if option.starts_with('-') => {
                eprintln!("unknown option {option}\n{USAGE}");
                std::process::exit(2);
            }
            _ if work_dir.is_none() => work_dir = Some(PathBuf::from(arg)),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let work_dir = work_dir.unwrap_or_else(|| std::env::temp_dir().join("hoard-embed-from-env"));
    (embedded, work_dir)
}
