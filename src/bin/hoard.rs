//! `hoard`: the compiler wrapper (`hoard gcc -c x.c -o x.o`) and the control commands.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use hoard::config::Settings;

/// A compile cache for C/C++ and Rust. Use as `hoard <compiler> args...`, or with one of the
/// control flags below.
#[derive(Debug, Parser)]
#[command(version, about)]
// Each flag is an independent action, as in ccache's command line.
#[allow(clippy::struct_excessive_bools)]
struct Control {
    /// Print the statistics.
    #[arg(long, short = 's')]
    show_stats: bool,
    /// With --show-stats: summarise one build from its journal (`HOARD_JOURNAL`) instead
    /// of the server's totals.
    #[arg(long, requires = "show_stats", value_name = "JOURNAL")]
    since_journal: Option<std::path::PathBuf>,
    /// With --show-stats or --show-config: one JSON object.
    #[arg(long)]
    json: bool,
    /// Print every setting, its effective value, and where it came from (environment,
    /// config file, default).
    #[arg(long)]
    show_config: bool,
    /// Reset the statistics.
    #[arg(long, short = 'z')]
    zero_stats: bool,
    /// Start the server (if none is running) and return.
    #[arg(long)]
    start_server: bool,
    /// Stop the running server.
    #[arg(long)]
    stop_server: bool,
    /// Explain a compile without running it: `hoard --explain -- gcc -c a.c -o a.o`. Says
    /// whether it is cacheable (or why not), its key and inputs, whether the cache holds it,
    /// and which inputs differ from the entry last stored for the same output.
    #[arg(long, requires = "command")]
    explain: bool,
    /// The compiler command, after `--` (with --explain).
    #[arg(last = true)]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let _self = args.next();
    let rest: Vec<OsString> = args.collect();
    match rest.first() {
        Some(first) if !first.as_encoded_bytes().starts_with(b"-") => wrap(rest),
        _ => control(),
    }
}

/// Wrapper mode. A broken configuration must not break the build: it is logged and the
/// compiler runs as if hoard were not there.
fn wrap(mut rest: Vec<OsString>) -> ExitCode {
    let program = rest.remove(0);
    let status = match Settings::from_env() {
        Ok(settings) => {
            hoard::logging::init(&settings.cache_dir, "hoard.log");
            hoard_client::run_wrapper(&settings.client(), program, rest)
        }
        Err(e) => {
            eprintln_to_log(&e);
            hoard_client::run_wrapper_uncached(&program, &rest)
        }
    };
    ExitCode::from(u8::try_from(status.clamp(0, 255)).unwrap_or(1))
}

fn eprintln_to_log(e: &hoard::config::ConfigError) {
    if let Some(dir) = std::env::var_os("HOARD_DIR") {
        hoard::logging::init(std::path::Path::new(&dir), "hoard.log");
    }
    tracing::error!("configuration error, compiling without the cache: {e}");
}

/// `hoard --explain -- <command>`: the report, read from this machine's cache directory.
async fn explain(settings: &Settings, command: &[OsString]) -> Result<String, String> {
    let Some((program, args)) = command.split_first() else {
        return Err("--explain wants a compiler command after --".into());
    };
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let command = hoard_compiler::CommandLine {
        program: program.clone(),
        args: args.to_vec(),
        cwd,
        env: std::env::vars_os().collect(),
    };
    let mut config = hoard_compiler::PipelineConfig::new(&settings.cache_dir);
    config.direct_mode = settings.direct_mode;
    // The local store the server keeps in `HOARD_DIR/cache`, as wrappers read manifests.
    let dir = settings.cache_dir.join("cache");
    let manifest = move |key: &hoard_compiler::CacheKey| {
        let bytes = hoard_storage::DiskStore::peek(&dir, key).ok()??;
        hoard_storage::entry::unpack_blob(&bytes).ok()
    };
    let explanation = hoard_compiler::explain(&command, &config, manifest).await;
    Ok(explanation.to_string())
}

/// Writes a report to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn control() -> ExitCode {
    let control = Control::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hoard: {e}");
            return ExitCode::FAILURE;
        }
    };
    hoard::logging::init(&settings.cache_dir, "hoard.log");
    let client = settings.client();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hoard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        if control.stop_server {
            let stopped = hoard_client::stop_server(&client)
                .await
                .map_err(|e| e.to_string())?;
            println!("{stopped}");
        }
        if control.start_server {
            hoard_client::Connection::open(&client)
                .await
                .map_err(|e| e.to_string())?;
            match &client.server_addr {
                Some(addr) => println!("hoard server answering at {addr}"),
                None => println!("hoard server running at {}", client.socket_path.display()),
            }
        }
        if control.zero_stats {
            hoard_client::zero_stats(&client)
                .await
                .map_err(|e| e.to_string())?;
            println!("statistics zeroed");
        }
        if let Some(journal) = control
            .show_stats
            .then_some(())
            .and(control.since_journal.as_ref())
        {
            let summary = hoard_client::journal::summarise(journal).map_err(|e| e.to_string())?;
            emit(&summary.to_string());
        } else if control.show_stats {
            let stats = hoard_client::stats(&client)
                .await
                .map_err(|e| e.to_string())?;
            if control.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", hoard::stats_table::render(&stats, &settings));
            }
        }
        if control.explain {
            emit(&explain(&settings, &control.command).await?);
        }
        if control.show_config {
            if control.json {
                let report = hoard::config_report::to_json(&settings);
                let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
                emit(&format!("{text}\n"));
            } else {
                emit(&hoard::config_report::render(&settings));
            }
        }
        if control.json && !(control.show_stats || control.show_config) {
            return Err("--json goes with --show-stats or --show-config".into());
        }
        if !(control.stop_server
            || control.start_server
            || control.zero_stats
            || control.show_stats
            || control.show_config
            || control.explain)
        {
            return Err(
                "nothing to do: give a compiler command or a control flag (see --help)".into(),
            );
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hoard: {e}");
            ExitCode::FAILURE
        }
    }
}
