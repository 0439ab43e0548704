//! What the argument targets share: turning fuzz bytes into a command line and classifying
//! it the way a wrapper does.
//!
//! The argument parsers are private to `hoard-compiler`; `classify` is their public door.
//! Before it parses, it finds the compiler on `PATH`; once an argument list parses, it
//! identifies the compiler (cached on disk after the first time) and looks at the outputs.
//! Response files (`@file`) are read from disk, so every `@` argument is pointed at one file
//! in a scratch directory whose text comes from the input too: the response-file splitter is
//! fuzzed as well, and no input can make the target read `/dev/zero`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use hoard_compiler::{CommandLine, PipelineConfig, classify};

const RESPONSE_FILE: &str = "args.rsp";

struct Scratch {
    _dir: tempfile::TempDir,
    cwd: PathBuf,
    state: PathBuf,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let cwd = dir.path().join("cwd");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&cwd).expect("cwd");
        std::fs::create_dir_all(&state).expect("state");
        Scratch {
            _dir: dir,
            cwd,
            state,
        }
    })
}

/// Classifies `program` with arguments from `data`: NUL-separated arguments, then after the
/// first 0xFF byte the text of the response file every `@` argument names.
pub fn classify_bytes(program: &str, data: &[u8]) {
    let scratch = scratch();
    let (args, response) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if std::fs::write(scratch.cwd.join(RESPONSE_FILE), response).is_err() {
        return;
    }
    let args: Vec<OsString> = args
        .split(|&b| b == 0)
        .map(|arg| {
            if arg.first() == Some(&b'@') {
                OsString::from(format!("@{RESPONSE_FILE}"))
            } else {
                OsString::from_vec(arg.to_vec())
            }
        })
        .collect();
    let command = CommandLine {
        program: program.into(),
        args,
        cwd: scratch.cwd.clone(),
        env: vec![(
            "PATH".into(),
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )],
    };
    let config = PipelineConfig {
        state_dir: scratch.state.clone(),
        direct_mode: true,
    };
    let _ = classify(&command, &config);
}
