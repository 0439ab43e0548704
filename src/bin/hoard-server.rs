//! `hoard-server`: the storage-only server. Normally started on demand by `hoard`.

use std::process::ExitCode;

use clap::{FromArgMatches, Parser};
use hoard::config::Settings;
use hoard_server::ServerError;

/// hoard's storage server. `hoard` starts one on demand on a Unix socket; start one by hand
/// to serve other machines over TCP as a cache gateway in front of the configured tiers.
/// SIGTERM or SIGINT stop it cleanly (pending puts stored, statistics saved, socket and pid
/// file removed). It refuses to start, with a non-zero exit, when the socket's directory or
/// its lock or pid file could be tampered with by another user, or when another user holds
/// its lock; losing the race to another server of the same user exits 0.
#[derive(Debug, Parser)]
#[command(name = "hoard-server", about, long_about)]
struct Args {
    /// Also serve TCP clients at this address (`0.0.0.0:PORT`), entries inline, to clients
    /// that show HOARD_SERVER_TOKEN (which must then be set). Same as HOARD_SERVER_LISTEN.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics and a JSON status page at
    /// /status (read-only, no authentication: bind it where only your monitoring reaches).
    /// Off by default. Same as HOARD_SERVER_METRICS.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<String>,
    /// Print the manual page (roff) and exit:
    /// `hoard-server --man-page > ~/.local/share/man/man1/hoard-server.1`.
    #[arg(long)]
    man_page: bool,
}

/// The command line's definition, with the version and protocols `hoard --version` shows.
fn command() -> clap::Command {
    use clap::CommandFactory;
    Args::command().version(hoard::help_text::version())
}

/// Where to serve metrics: the flag, else `HOARD_SERVER_METRICS` (empty is unset).
fn metrics_addr(flag: Option<String>) -> Option<String> {
    flag.or_else(|| hoard::config_file::setting("HOARD_SERVER_METRICS"))
        .filter(|addr| !addr.trim().is_empty())
}

/// OpenDAL's Actions cache service speaks the v2 protocol (the only one github.com still
/// serves) when `ACTIONS_CACHE_SERVICE_V2` is set, which it reads from the environment alone;
/// the runner does not always export it to a step, so a server with that tier sets it.
fn actions_cache_v2(settings: &Settings) {
    let uses_it = settings
        .tiers
        .iter()
        .any(|t| matches!(t.kind, hoard_storage::TierKind::Gha { .. }));
    if uses_it && std::env::var_os("ACTIONS_CACHE_SERVICE_V2").is_none_or(|v| v.is_empty()) {
        // SAFETY: called from `main` before the runtime or the logger start any thread, so
        // nothing reads the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("ACTIONS_CACHE_SERVICE_V2", "1");
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::from_arg_matches(&command().get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    if args.man_page {
        return match clap_mangen::Man::new(command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hoard-server: cannot write the manual page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hoard-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = args.listen {
        settings.listen_on(addr);
    }
    actions_cache_v2(&settings);
    hoard::logging::init(&settings.cache_dir, "server.log");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hoard-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = settings.server();
    config.metrics = metrics_addr(args.metrics);
    match runtime.block_on(hoard_server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        // Losing the race to start is not a failure: the other server serves.
        Err(ServerError::AlreadyRunning(socket)) => {
            tracing::debug!("another server already serves {}", socket.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("hoard-server: {e}");
            ExitCode::FAILURE
        }
    }
}
