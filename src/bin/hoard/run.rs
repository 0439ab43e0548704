//! Running a planned control command line, action by action.

use hoard::config::Settings;
use hoard_client::ClientConfig;

use crate::cli::{Action, Control, Format, control_command};
use crate::emit;
use crate::error::ControlError;
use crate::explain::explain;

/// Runs a control command line: reads the settings, then each action in turn, stopping at
/// the first that fails.
pub(crate) fn control(control: Control) -> Result<(), ControlError> {
    // Shell integration needs no configuration: it works where the config is broken.
    if let Some(shell) = control.completions {
        clap_complete::generate(
            shell,
            &mut control_command(),
            "hoard",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    if control.man_page {
        return clap_mangen::Man::new(control_command())
            .render(&mut std::io::stdout())
            .map_err(ControlError::ManPage);
    }
    let settings = Settings::from_env()?;
    hoard::logging::init(&settings.cache_dir, "hoard.log");
    let client = settings.client();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ControlError::Runtime)?;
    let (actions, misuse) = control.plan();
    runtime.block_on(async {
        for action in actions {
            run(action, &settings, &client).await?;
        }
        misuse.map_or(Ok(()), Err)
    })
}

async fn run(
    action: Action,
    settings: &Settings,
    client: &ClientConfig,
) -> Result<(), ControlError> {
    match action {
        Action::StopServer => println!("{}", hoard_client::stop_server(client).await?),
        Action::StartServer => {
            hoard_client::Connection::open(client).await?;
            match &client.server_addr {
                Some(addr) => println!("hoard server answering at {addr}"),
                None => println!("hoard server running at {}", client.socket_path.display()),
            }
        }
        Action::ZeroStats => {
            hoard_client::zero_stats(client).await?;
            println!("statistics zeroed");
        }
        Action::MaxSize(text, bytes) => set_max_size(&text, bytes, client).await?,
        Action::Clear => {
            let removed = hoard::cache_management::clear(settings).await?;
            println!(
                "local cache cleared: {}",
                hoard::cache_management::describe(&removed)
            );
        }
        Action::EvictOlderThan(age) => {
            let removed = hoard::cache_management::evict_older_than(settings, age).await?;
            println!(
                "entries unused for {}: {}",
                humantime::format_duration(age),
                hoard::cache_management::describe(&removed)
            );
        }
        Action::Cleanup => {
            let removed = hoard::cache_management::cleanup(settings, settings.cache_size).await?;
            println!(
                "local cache cleaned up to its limit of {}: {}",
                hoard::stats_table::human(settings.cache_size),
                hoard::cache_management::describe(&removed)
            );
        }
        Action::Report { journal, format } => {
            use hoard::report::ReportFormat;
            let summary = hoard_client::journal::summarise(&journal)?;
            let format = match format {
                Format::Text => ReportFormat::Text,
                Format::Json => ReportFormat::Json,
                Format::Markdown => ReportFormat::Markdown,
                Format::Html => ReportFormat::Html,
            };
            emit(&hoard::report::render(&summary, &journal, format)?);
        }
        Action::ShowStats { format } => {
            let stats = hoard_client::stats(client).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
                // `plan` never asks for a page of the server's totals.
                Format::Text | Format::Html => {
                    print!("{}", hoard::stats_table::render(&stats, settings));
                }
                Format::Markdown => print!("{}", hoard::stats_markdown::render(&stats)),
            }
        }
        Action::Explain(command) => emit(&explain(settings, &command).await?),
        Action::ShowConfig { json: true } => {
            let report = hoard::config_report::to_json(settings);
            emit(&format!("{}\n", serde_json::to_string_pretty(&report)?));
            hoard::path_settings::path_mode()?;
        }
        Action::ShowConfig { json: false } => {
            emit(&hoard::config_report::render(settings));
            hoard::path_settings::path_mode()?;
        }
    }
    Ok(())
}

/// `--max-size`: kept in the config file; the server serving the old limit is stopped, so
/// the next compile starts one that keeps the new one.
async fn set_max_size(text: &str, bytes: u64, client: &ClientConfig) -> Result<(), ControlError> {
    use hoard::cache_management::{ManagementError, persist_max_size};
    use hoard::stats_table::human;
    let path = hoard::config_file::path().ok_or(ManagementError::NoConfigFile)?;
    persist_max_size(&path, text)?;
    println!(
        "maximum cache size set to {} ({text:?} in {})",
        human(bytes),
        path.display()
    );
    if std::env::var_os("HOARD_CACHE_SIZE").is_some_and(|v| !v.is_empty()) {
        eprintln!(
            "hoard: warning: HOARD_CACHE_SIZE is set in the environment and wins over the \
             config file; unset it for the new limit to apply"
        );
    }
    // A gateway on another machine keeps its own limit.
    if client.server_addr.is_none() {
        let stopped = hoard_client::stop_server(client).await?;
        if stopped != hoard_client::Stopped::NotRunning {
            println!("{stopped}; the next compile starts one with the new limit");
        }
    }
    Ok(())
}
