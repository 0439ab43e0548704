//! `hoard`: the compiler wrapper (`hoard gcc -c x.c -o x.o`) and the control commands.
//!
//! The first argument decides which: a word that is not a flag (`gcc`, `rustc`,
//! `/usr/bin/cc`) is a compiler, and everything from it on is that compiler's command line,
//! never read as hoard's flags; anything else is a control command line, parsed by clap
//! into [`Control`] and planned into [`Action`]s. One word is hoard's own, `keygen`
//! ([`Keygen`]): no compiler is called that.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use hoard::config::{ConfigError, Settings};
use hoard_client::ClientConfig;

/// The usage line clap cannot derive: a compiler's command line is not hoard's.
const USAGE: &str = "hoard <COMPILER> [ARGS]...       (wrap one compile: hoard gcc -c a.c)
       RUSTC_WRAPPER=hoard cargo build  (every rustc cargo runs)
       hoard [OPTIONS]                  (the control commands below)";

/// A compile cache for C/C++ and Rust builds.
///
/// Put hoard in front of the compiler: `CC="hoard gcc"`, `CXX="hoard g++"`,
/// `RUSTC_WRAPPER=hoard`, `CMAKE_<LANG>_COMPILER_LAUNCHER=hoard`, or a link named like the
/// compiler first on PATH (`ln -s $(which hoard) ~/bin/gcc`). A server starts on demand and
/// holds the cache; a cache fault never fails the build, the real compiler runs instead.
#[derive(Debug, Parser)]
#[command(name = "hoard", about, long_about, override_usage = USAGE)]
// Each flag is an independent action, as in ccache's command line; `Control::plan` turns
// them into the `Action`s to run.
#[allow(clippy::struct_excessive_bools)]
struct Control {
    /// Print the statistics.
    #[arg(long, short = 's', help_heading = "Statistics and reports")]
    show_stats: bool,
    /// With --show-stats: the same as `--report JOURNAL` (its older name).
    #[arg(
        long,
        requires = "show_stats",
        value_name = "JOURNAL",
        help_heading = "Statistics and reports"
    )]
    since_journal: Option<PathBuf>,
    /// Report one build from its journal (`HOARD_JOURNAL`): hit rate, time saved and the
    /// slowest misses with why they missed, per crate and per directory. `--format html`
    /// writes one self-contained page with a timeline of the build's compiles.
    #[arg(long, value_name = "JOURNAL", help_heading = "Statistics and reports")]
    report: Option<PathBuf>,
    /// With --show-stats, --report or --show-config: one JSON object (same as `--format
    /// json`).
    #[arg(long, help_heading = "Statistics and reports")]
    json: bool,
    /// With --show-stats: `text` (the default), `json`, or `markdown` (tables for a CI job
    /// summary: `hoard --show-stats --format markdown >> "$GITHUB_STEP_SUMMARY"`). With
    /// --report: those or `html`. With --show-config: `text` or `json`.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        help_heading = "Statistics and reports"
    )]
    format: Option<Format>,
    /// Reset the statistics.
    #[arg(long, short = 'z', help_heading = "Statistics and reports")]
    zero_stats: bool,
    /// Set the local cache's size limit (`20G`, `1.5GiB`, `500MB`) in the config file, as
    /// ccache's -M does; the running server is stopped so the next compile starts one with
    /// the new limit. HOARD_CACHE_SIZE in the environment still wins over the file.
    #[arg(
        long,
        short = 'M',
        value_name = "SIZE",
        help_heading = "Cache management"
    )]
    max_size: Option<String>,
    /// Remove every entry from the local cache (remote tiers are left alone).
    #[arg(long, short = 'C', help_heading = "Cache management")]
    clear: bool,
    /// Bring the local cache within its size limit now, and remove temporary files that
    /// writers which died left behind.
    #[arg(long, short = 'c', help_heading = "Cache management")]
    cleanup: bool,
    /// Remove local entries not used (stored or hit) for AGE: `3600s`, `90m`, `12h`, `7d`.
    #[arg(long, value_name = "AGE", help_heading = "Cache management")]
    evict_older_than: Option<String>,
    /// Start the server (if none is running) and return.
    #[arg(long, help_heading = "Server")]
    start_server: bool,
    /// Stop the running server.
    #[arg(long, help_heading = "Server")]
    stop_server: bool,
    /// Print every setting, its effective value, and where it came from (environment,
    /// config file, default).
    #[arg(long, help_heading = "Diagnostics")]
    show_config: bool,
    /// Explain a compile without running it: `hoard --explain -- gcc -c a.c -o a.o`. Says
    /// whether it is cacheable (or why not), its key and inputs, whether the cache holds it,
    /// and which inputs differ from the entry last stored for the same output.
    #[arg(long, requires = "command", help_heading = "Diagnostics")]
    explain: bool,
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell); see the
    /// README for where to install it.
    #[arg(long, value_name = "SHELL", help_heading = "Shell integration")]
    completions: Option<clap_complete::Shell>,
    /// Print the manual page (roff): `hoard --man-page > ~/.local/share/man/man1/hoard.1`.
    #[arg(long, help_heading = "Shell integration")]
    man_page: bool,
    /// The compiler command, after `--` (with --explain).
    #[arg(last = true, hide = true)]
    command: Vec<OsString>,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Aligned text, for people.
    Text,
    /// One JSON object.
    Json,
    /// Markdown tables (statistics and reports).
    Markdown,
    /// One self-contained HTML page (reports only).
    Html,
}

/// One control command. The flags combine (`--stop-server --start-server` restarts the
/// server), so a command line is a list of these, run in the order of the variants.
#[derive(Debug, PartialEq)]
enum Action {
    /// `--stop-server`.
    StopServer,
    /// `--start-server`.
    StartServer,
    /// `--zero-stats`.
    ZeroStats,
    /// `--max-size SIZE`: the text as given (kept in the file) and its bytes.
    MaxSize(String, u64),
    /// `--clear`.
    Clear,
    /// `--evict-older-than AGE`.
    EvictOlderThan(Duration),
    /// `--cleanup`.
    Cleanup,
    /// `--show-stats [--format F]`: the server's totals.
    ShowStats { format: Format },
    /// `--report JOURNAL [--format F]` (or `--show-stats --since-journal JOURNAL`): one
    /// build's report, from its journal.
    Report { journal: PathBuf, format: Format },
    /// `--explain -- COMMAND`.
    Explain(Vec<OsString>),
    /// `--show-config [--json]`.
    ShowConfig { json: bool },
}

/// Why a control command failed; printed after `hoard: `.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    /// The configuration (environment or file) is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No tokio runtime could be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The server could not be reached, started, stopped or asked.
    #[error(transparent)]
    Server(#[from] hoard_client::ClientError),
    /// The journal given to `--report` could not be read.
    #[error(transparent)]
    Journal(#[from] hoard_client::journal::JournalError),
    /// A report could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// `--explain` needs the current directory, as the compile would.
    #[error("current directory: {0}")]
    CurrentDir(#[source] std::io::Error),
    /// `--explain` with nothing after `--`.
    #[error("--explain wants a compiler command after --")]
    NoCommand,
    /// `--json` with no report it formats.
    #[error("--json goes with --show-stats, --report or --show-config")]
    JsonAlone,
    /// `--format` with no report, or a format the report does not have.
    #[error("--format {0} goes with {1}")]
    FormatMisplaced(&'static str, &'static str),
    /// `HOARD_PATHS` holds a value hoard does not know (reported by `--show-config`, after
    /// the report; compiles run as under `exact`).
    #[error("{0}; compiles run as under HOARD_PATHS=exact")]
    PathMode(#[from] hoard_compiler::PathModeError),
    /// `hoard keygen` could not write the key.
    #[error(transparent)]
    Keygen(#[from] hoard_storage::signing::SigningError),
    /// A cache-management command failed.
    #[error(transparent)]
    Management(#[from] hoard::cache_management::ManagementError),
    /// `--evict-older-than` was given something that is not an age.
    #[error("--evict-older-than: {message}")]
    BadAge {
        /// What was given.
        value: String,
        /// Why it is not an age.
        message: String,
    },
    /// The manual page could not be written.
    #[error("cannot write the manual page: {0}")]
    ManPage(#[source] std::io::Error),
    /// Called as a compiler hoard cannot find past its own links.
    #[error(transparent)]
    Masquerade(#[from] hoard::masquerade::MasqueradeError),
    /// The command line could not be read.
    #[error("{0}")]
    Usage(String),
    /// No action at all.
    #[error("nothing to do: give a compiler command or a control flag (see --help)")]
    NothingToDo,
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    if let Some(name) = hoard::masquerade::masqueraded_name(&argv0) {
        // Called through a link named like a compiler: everything is that compiler's.
        return match next_compiler(name, true) {
            Ok(compiler) => wrap(compiler, argv.collect()),
            Err(e) => report(Err(e)),
        };
    }
    let mut rest = argv;
    // Decided by hand, before clap: a compiler's arguments must never be read as hoard's
    // (`hoard gcc --version`), and the hit path should not pay for building a parser.
    match rest.next() {
        Some(first) if first == "keygen" => report(keygen(&Keygen::parse_from(
            std::iter::once(OsString::from("hoard keygen")).chain(rest),
        ))),
        Some(first) if !first.as_encoded_bytes().starts_with(b"-") => {
            match next_compiler(&first, false) {
                Ok(compiler) => wrap(compiler, rest.collect()),
                Err(e) => report(Err(e)),
            }
        }
        _ => report(parse_control().and_then(control)),
    }
}

/// The compiler to run for `name`: past every link to hoard on `PATH`, so that neither a
/// masquerade link (`masqueraded`) nor `hoard gcc` with such a link on `PATH` calls hoard
/// again; a `name` whose first match is a real compiler is run as named.
fn next_compiler(name: &std::ffi::OsStr, masqueraded: bool) -> Result<OsString, ControlError> {
    use hoard::masquerade::{next_compiler, past_links};
    // The kernel's link to the running executable: its file is hoard's, however it was
    // reached (symlink, hard link, another path).
    let myself = std::path::Path::new("/proc/self/exe");
    let search_path = std::env::var_os("PATH");
    let found = if masqueraded {
        Some(next_compiler(name, search_path.as_deref(), myself))
    } else {
        past_links(name, search_path.as_deref(), myself)
    };
    match found {
        None => Ok(name.to_owned()),
        Some(Ok(path)) => Ok(path.into_os_string()),
        Some(Err(e)) => Err(e.into()),
    }
}

/// The control command line, parsed with the help text clap cannot derive: the version
/// with the protocols it speaks, and the most used variables with this user's config file.
fn parse_control() -> Result<Control, ControlError> {
    let matches = control_command().get_matches();
    // Unreachable in practice: the matches come from the same definition.
    Control::from_arg_matches(&matches).map_err(|e| ControlError::Usage(e.to_string()))
}

fn control_command() -> clap::Command {
    Control::command()
        .version(hoard::help_text::version())
        .after_help(hoard::help_text::after_help())
}

/// `hoard keygen PATH`: a new signing key for `HOARD_SIGNING_KEY`, and the public line
/// readers put in `HOARD_TRUSTED_KEYS`.
#[derive(Debug, Parser)]
#[command(
    about = "Create a signing key: the secret key at PATH (mode 0600; HOARD_SIGNING_KEY on the \
             machines that write the shared cache, such as CI), its public line at PATH.pub \
             (HOARD_TRUSTED_KEYS on every machine that reads it), and print the public line"
)]
struct Keygen {
    /// Where to write the secret key; it must not exist yet.
    path: PathBuf,
    /// The key's name, as `--explain`, the journal and logs name a signer (default: the
    /// file's name and this host's, `ci-key@runner`).
    #[arg(long)]
    name: Option<String>,
}

fn keygen(args: &Keygen) -> Result<(), ControlError> {
    let name = args.name.clone().unwrap_or_else(|| {
        let stem = args
            .path
            .file_stem()
            .map_or_else(|| "hoard".into(), |s| s.to_string_lossy().into_owned());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        if host.is_empty() {
            stem
        } else {
            format!("{stem}@{host}")
        }
    });
    let line = hoard_storage::signing::keygen(&args.path, &name)?;
    println!("{line}");
    eprintln!(
        "hoard: signing key written to {path} (secret: HOARD_SIGNING_KEY={path} where the shared \
         cache is written), its public line to {path}.pub (HOARD_TRUSTED_KEYS on every reader)",
        path = args.path.display()
    );
    Ok(())
}

fn report(result: Result<(), ControlError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hoard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Wrapper mode. A broken configuration must not break the build: it is told (once per
/// build) and logged, and the compiler runs as if hoard were not there.
fn wrap(program: OsString, args: Vec<OsString>) -> ExitCode {
    if switched_on("HOARD_DISABLE") {
        // ccache's CCACHE_DISABLE: the compiler alone, no configuration read, no server.
        return exit_code(hoard_client::run_wrapper_uncached(&program, &args));
    }
    let status = match Settings::for_wrapper() {
        Ok(settings) => {
            hoard::logging::init(&settings.cache_dir, "hoard.log");
            let env = hoard::path_settings::compile_env(std::env::vars_os().collect());
            let mut client = settings.client();
            client.recache = switched_on("HOARD_RECACHE");
            hoard_client::run_wrapper_in(&client, program, args, env)
        }
        Err(e) => {
            hoard::config_notice::config_error(&e);
            hoard_client::run_wrapper_uncached(&program, &args)
        }
    };
    exit_code(status)
}

fn exit_code(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status.clamp(0, 255)).unwrap_or(1))
}

/// A yes/no setting as ccache reads its own: set (in the environment, else the config
/// file) means on, unless it says `0`, `false`, `no`, `off` or `disable` (any case).
fn switched_on(name: &str) -> bool {
    hoard::config_file::setting(name).is_some_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off" | "disable"
        )
    })
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }
}

impl Control {
    /// The actions asked for, in the order they run, and the misuse to report once they
    /// have run (as hoard always has: `--zero-stats --json` zeroes, then fails).
    fn plan(self) -> (Vec<Action>, Option<ControlError>) {
        let mut actions = Vec::new();
        if self.stop_server {
            actions.push(Action::StopServer);
        }
        if self.start_server {
            actions.push(Action::StartServer);
        }
        if self.zero_stats {
            actions.push(Action::ZeroStats);
        }
        if let Some(size) = self.max_size {
            match hoard::cache_management::parse_max_size(&size) {
                Ok(bytes) => actions.push(Action::MaxSize(size, bytes)),
                // Nothing runs: a bad value must not half-apply a command line.
                Err(e) => return (Vec::new(), Some(e.into())),
            }
        }
        if self.clear {
            actions.push(Action::Clear);
        }
        if let Some(age) = self.evict_older_than {
            match parse_age(&age) {
                Ok(age) => actions.push(Action::EvictOlderThan(age)),
                Err(e) => return (Vec::new(), Some(e)),
            }
        }
        if self.cleanup {
            actions.push(Action::Cleanup);
        }
        let format = match (self.json, self.format) {
            (true, _) => Format::Json,
            (false, format) => format.unwrap_or(Format::Text),
        };
        let journal = self.report.or(self.since_journal);
        let reports = self.show_stats || journal.is_some() || self.show_config;
        if format == Format::Html && journal.is_none() {
            // Nothing runs: only a build's report has a page.
            return (
                Vec::new(),
                Some(ControlError::FormatMisplaced("html", "--report")),
            );
        }
        let reporting = journal.is_some();
        match journal {
            Some(journal) => actions.push(Action::Report { journal, format }),
            None if self.show_stats => actions.push(Action::ShowStats { format }),
            None => {}
        }
        if self.explain {
            actions.push(Action::Explain(self.command));
        }
        if self.show_config {
            actions.push(Action::ShowConfig {
                json: format == Format::Json,
            });
        }
        let misuse = if self.json && !reports {
            Some(ControlError::JsonAlone)
        } else if self.format.is_some() && !reports {
            Some(ControlError::FormatMisplaced(
                format.name(),
                "--show-stats, --report or --show-config",
            ))
        } else if format == Format::Markdown && !(self.show_stats || reporting) {
            Some(ControlError::FormatMisplaced(
                "markdown",
                "--show-stats or --report",
            ))
        } else if actions.is_empty() {
            Some(ControlError::NothingToDo)
        } else {
            None
        };
        (actions, misuse)
    }
}

/// Runs a control command line: reads the settings, then each action in turn, stopping at
/// the first that fails.
fn control(control: Control) -> Result<(), ControlError> {
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
                hoard::cache_management::human_bytes(settings.cache_size),
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
    use hoard::cache_management::{ManagementError, human_bytes, persist_max_size};
    let path = hoard::config_file::path().ok_or(ManagementError::NoConfigFile)?;
    persist_max_size(&path, text)?;
    println!(
        "maximum cache size set to {} ({text:?} in {})",
        human_bytes(bytes),
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

/// `--evict-older-than`'s AGE, read as every duration setting is (`90m`, `7d`, seconds).
fn parse_age(text: &str) -> Result<Duration, ControlError> {
    hoard::config::parse_duration(text).map_err(|e| ControlError::BadAge {
        value: text.trim().to_owned(),
        message: e.to_string(),
    })
}

/// `hoard --explain -- <command>`: the report, read from this machine's cache directory.
async fn explain(settings: &Settings, command: &[OsString]) -> Result<String, ControlError> {
    use std::fmt::Write as _;
    let Some((program, args)) = command.split_first() else {
        return Err(ControlError::NoCommand);
    };
    let cwd = std::env::current_dir().map_err(ControlError::CurrentDir)?;
    let command = hoard_compiler::CommandLine {
        program: program.clone(),
        args: args.to_vec(),
        cwd,
        env: hoard::path_settings::compile_env(std::env::vars_os().collect()),
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
    let mut report = explanation.to_string();
    let dir = settings.cache_dir.join("cache");
    let entries = [
        ("manifest", explanation.key),
        ("result", explanation.result_key),
    ];
    for (what, key) in entries {
        if let Some(key) = key
            && explanation.in_cache
            && let Ok(Some(bytes)) = hoard_storage::DiskStore::peek(&dir, &key)
        {
            let signed = signed_by(&bytes, &key, &settings.trust.trusted);
            let _ = writeln!(report, "{what} {signed}");
        }
    }
    Ok(report)
}

/// Who signed a local entry, in words for `--explain`.
fn signed_by(
    entry: &[u8],
    key: &hoard_storage::CacheKey,
    trusted: &hoard_storage::signing::TrustedKeys,
) -> String {
    use hoard_storage::entry::Untrusted;
    match hoard_storage::entry::signer_of(entry, key, trusted) {
        Some(Ok(name)) => format!("signed by: {name} (a trusted key)"),
        Some(Err(Untrusted::Unsigned)) => {
            "signed by: nobody (stored by this machine, or fetched from a tier not verified)"
                .to_owned()
        }
        Some(Err(why)) => format!("signed by: no trusted key ({why})"),
        None => "signed by: unknown (stored by this machine)".to_owned(),
    }
}

/// Writes a report to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> (Vec<Action>, Option<String>) {
        let control =
            Control::try_parse_from(std::iter::once("hoard").chain(args.iter().copied())).unwrap();
        let (actions, misuse) = control.plan();
        (actions, misuse.map(|e| e.to_string()))
    }

    #[test]
    fn flags_combine_and_run_in_a_fixed_order() {
        let (actions, misuse) = plan(&["--show-config", "--start-server", "--stop-server", "-z"]);
        assert_eq!(
            actions,
            [
                Action::StopServer,
                Action::StartServer,
                Action::ZeroStats,
                Action::ShowConfig { json: false }
            ]
        );
        assert!(misuse.is_none());
    }

    #[test]
    fn json_goes_to_the_report_it_formats_and_a_journal_wins_over_the_server() {
        assert_eq!(
            plan(&["-s", "--json"]).0,
            [Action::ShowStats {
                format: Format::Json
            }]
        );
        let (actions, misuse) = plan(&["--zero-stats", "--json"]);
        assert_eq!(actions, [Action::ZeroStats]);
        assert_eq!(
            misuse.as_deref(),
            Some("--json goes with --show-stats, --report or --show-config")
        );
    }

    #[test]
    fn a_report_takes_a_format_and_since_journal_is_its_alias() {
        let report = |format| {
            [Action::Report {
                journal: PathBuf::from("j"),
                format,
            }]
        };
        let (actions, misuse) = plan(&["--report", "j"]);
        assert_eq!((actions, misuse), (Vec::from(report(Format::Text)), None));
        assert_eq!(
            plan(&["--report", "j", "--format", "html"]).0,
            report(Format::Html)
        );
        assert_eq!(
            plan(&["--report", "j", "--format", "markdown"]).0,
            report(Format::Markdown)
        );
        assert_eq!(
            plan(&["-s", "--since-journal", "j"]).0,
            report(Format::Text)
        );
        assert_eq!(
            plan(&["-s", "--since-journal", "j", "--json"]).0,
            report(Format::Json)
        );
        let (actions, misuse) = plan(&["-s", "--format", "html"]);
        assert!(actions.is_empty());
        assert_eq!(misuse.as_deref(), Some("--format html goes with --report"));
    }

    #[test]
    fn no_flag_is_nothing_to_do_and_explain_takes_the_command() {
        assert!(plan(&[]).1.is_some_and(|m| m.starts_with("nothing to do")));
        assert_eq!(
            plan(&["--explain", "--", "gcc", "-c", "a.c"]).0,
            [Action::Explain(vec![
                "gcc".into(),
                "-c".into(),
                "a.c".into()
            ])]
        );
    }
}
