//! `hoard`: the compiler wrapper (`hoard gcc -c x.c -o x.o`) and the control commands.
//!
//! The first argument decides which: a word that is not a flag (`gcc`, `rustc`,
//! `/usr/bin/cc`) is a compiler, and everything from it on is that compiler's command line,
//! never read as hoard's flags; anything else is a control command line, parsed by clap
//! into [`cli::Control`] and planned into [`cli::Action`]s. One word is hoard's own, `keygen`
//! ([`keygen::Keygen`]): no compiler is called that.

mod cli;
mod error;
mod explain;
mod keygen;
mod run;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use hoard::config::Settings;

use crate::cli::parse_control;
use crate::error::ControlError;
use crate::keygen::{Keygen, keygen};
use crate::run::control;

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

/// Writes a report to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
