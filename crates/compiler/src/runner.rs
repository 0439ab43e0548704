//! The one process runner: runs a compiler (or any command) in the command's directory and
//! environment, captures what it prints, optionally copies its standard error through as it
//! arrives, and maps how it ended to an exit status the caller can pass on.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::command::CommandLine;
use crate::result::CompileResult;

/// How to run one process.
pub(crate) struct Run<'a> {
    /// The binary to run.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [OsString],
    /// The command whose directory and environment it runs in.
    pub cmd: &'a CommandLine,
    /// How the program is named if it cannot be started.
    pub shown: &'a OsStr,
    /// Whether to copy its standard error to ours while it runs.
    pub stream: bool,
}

/// Runs the process, capturing stdout and stderr. With `stream`, each piece of stderr is
/// also written to this process's stderr as soon as it arrives. A program that cannot be
/// started exits 127 with a message naming it; one killed by a signal, 128 + the signal.
pub(crate) async fn run(run: Run<'_>) -> CompileResult {
    let started = Instant::now();
    let spawned = Command::new(run.program)
        .args(run.args)
        .current_dir(&run.cmd.cwd)
        .env_clear()
        .envs(run.cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = format!(
                "hoard: cannot run compiler {}: {e}\n",
                run.shown.to_string_lossy()
            );
            if run.stream {
                let _ = std::io::stderr().write_all(message.as_bytes());
            }
            return CompileResult {
                stdout: Vec::new(),
                stderr: message.into_bytes(),
                exit_status: 127,
                compile_time: started.elapsed(),
                output_digests: Vec::new(),
            };
        }
    };
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let read_stdout = async {
        let mut out = Vec::new();
        if let Some(pipe) = stdout_pipe.as_mut() {
            let _ = pipe.read_to_end(&mut out).await;
        }
        out
    };
    let read_stderr = async {
        let mut all = Vec::new();
        if let Some(pipe) = stderr_pipe.as_mut() {
            if run.stream {
                copy_through(pipe, &mut all).await;
            } else {
                let _ = pipe.read_to_end(&mut all).await;
            }
        }
        all
    };
    let (stdout, stderr) = tokio::join!(read_stdout, read_stderr);
    let exit_status = match child.wait().await {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1),
        Err(_) => 1,
    };
    CompileResult {
        stdout,
        stderr,
        exit_status,
        compile_time: started.elapsed(),
        output_digests: Vec::new(),
    }
}

/// Reads `pipe` to its end into `all`, writing each piece to this process's stderr as it
/// arrives (cargo reads rustc's progress from there while rustc runs).
async fn copy_through(pipe: &mut tokio::process::ChildStderr, all: &mut Vec<u8>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&buffer[..n]);
                let _ = err.flush();
                all.extend_from_slice(&buffer[..n]);
            }
        }
    }
}
