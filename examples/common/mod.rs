//! What the examples share: their command line (`[--server] POSITIONAL...`) and opening the
//! cache, embedded or through a running `hoard-server`.

use std::error::Error;
use std::ffi::OsString;
use std::path::PathBuf;

use hoard_client::{ClientConfig, Hoard};

/// An example's command line.
pub struct Args {
    /// `--server`: use the `hoard-server` listening on `HOARD_SERVER_UDS`.
    pub server: bool,
    /// The other arguments, in order.
    pub positional: Vec<OsString>,
}

/// Reads the command line; `-h`/`--help` prints `usage` and exits, an unknown option prints
/// it and exits 2.
pub fn args(usage: &str) -> Args {
    let mut server = false;
    let mut positional = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--server") => server = true,
            Some("-h" | "--help") => {
                println!("{usage}");
                std::process::exit(0);
            }
            Some(option) if option.starts_with('-') => {
                eprintln!("unknown option {option}\n{usage}");
                std::process::exit(2);
            }
            _ => positional.push(arg),
        }
    }
    Args { server, positional }
}

/// The cache: embedded in this process (up to 1 GiB in `cache_dir`), or, with `server`, the
/// `hoard-server` at `HOARD_SERVER_UDS`.
pub async fn open(server: bool, cache_dir: PathBuf) -> Result<Hoard, Box<dyn Error>> {
    if server {
        let socket = std::env::var_os("HOARD_SERVER_UDS")
            .ok_or("--server needs HOARD_SERVER_UDS: the socket of a running hoard-server")?;
        Ok(Hoard::connect(&ClientConfig::new(cache_dir, socket.into())).await?)
    } else {
        Ok(Hoard::embedded(cache_dir, 1 << 30)?)
    }
}
