//! The control command line: its definition (clap), the help text clap cannot derive, and
//! the plan of [`Action`]s a command line asks for.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::error::ControlError;

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
pub(crate) struct Control {
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
    pub(crate) completions: Option<clap_complete::Shell>,
    /// Print the manual page (roff): `hoard --man-page > ~/.local/share/man/man1/hoard.1`.
    #[arg(long, help_heading = "Shell integration")]
    pub(crate) man_page: bool,
    /// The compiler command, after `--` (with --explain).
    #[arg(last = true, hide = true)]
    command: Vec<OsString>,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
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
pub(crate) enum Action {
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

/// The control command line, parsed with the help text clap cannot derive: the version
/// with the protocols it speaks, and the most used variables with this user's config file.
pub(crate) fn parse_control() -> Result<Control, ControlError> {
    let matches = control_command().get_matches();
    // Unreachable in practice: the matches come from the same definition.
    Control::from_arg_matches(&matches).map_err(|e| ControlError::Usage(e.to_string()))
}

pub(crate) fn control_command() -> clap::Command {
    Control::command()
        .version(hoard::help_text::version())
        .after_help(hoard::help_text::after_help())
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
    pub(crate) fn plan(self) -> (Vec<Action>, Option<ControlError>) {
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

/// `--evict-older-than`'s AGE, read as every duration setting is (`90m`, `7d`, seconds).
fn parse_age(text: &str) -> Result<Duration, ControlError> {
    hoard::config::parse_duration(text).map_err(|e| ControlError::BadAge {
        value: text.trim().to_owned(),
        message: e.to_string(),
    })
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
