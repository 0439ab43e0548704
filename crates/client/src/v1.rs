//! Protocol v1 from the client's side: the whole command goes to the server, which answers
//! with the compiler's result and the outputs in place.

use std::os::unix::ffi::OsStrExt;

use hoard_compiler::{CommandLine, CompileResult};
use hoard_protocol::{ByteBuf, Request, Response};

use crate::connection::unexpected;
use crate::{ClientError, Connection};

/// Has the server run `command` through its cache (`Compile`), waiting up to `timeout`.
pub async fn compile_on_server(
    connection: &mut Connection,
    command: &CommandLine,
    timeout: std::time::Duration,
) -> Result<CompileResult, ClientError> {
    let bytes = |s: &std::ffi::OsStr| ByteBuf::from(s.as_bytes());
    let request = Request::Compile {
        exe: command.program.as_bytes().to_vec(),
        cwd: command.cwd.as_os_str().as_bytes().to_vec(),
        args: command.args.iter().map(|a| bytes(a)).collect(),
        env: command
            .env
            .iter()
            .map(|(k, v)| (bytes(k), bytes(v)))
            .collect(),
    };
    match connection.request_within(&request, timeout).await? {
        Response::Compiled {
            stdout,
            stderr,
            exit_status,
            cache: _,
        } => Ok(CompileResult {
            stdout,
            stderr,
            exit_status,
        }),
        other => Err(unexpected("Compile", &other)),
    }
}
