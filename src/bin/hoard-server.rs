//! `hoard-server`: the storage-only server. Normally started on demand by `hoard`.

use std::process::ExitCode;

use hoard::config::Settings;
use hoard_server::ServerError;

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hoard-server: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    match runtime.block_on(hoard_server::serve(settings.server())) {
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
