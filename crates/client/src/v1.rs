//! Protocol v1 from the client's side: the whole command goes to the server, which answers
//! with the compiler's result and the outputs in place.

use std::os::unix::ffi::OsStrExt;

use hoard_compiler::{CommandLine, CompileResult};
use hoard_protocol::{ByteBuf, Request, Response};

use crate::connection::unexpected;
use crate::{ClientError, Connection};

/// What a v1 server answered to `Compile`.
#[derive(Debug, Clone)]
pub struct ServerCompiled {
    /// What the compile printed and returned (its time is unknown here: zero).
    pub result: CompileResult,
    /// How the server's cache served it (`hit`, `miss`, `non_cacheable`, `fallback`), when
    /// the server says.
    pub cache: Option<String>,
}

/// Has the server run `command` through its cache (`Compile`), waiting up to `timeout`, and
/// says how the server's cache served it.
pub async fn compile_on_server_with_status(
    connection: &mut Connection,
    command: &CommandLine,
    timeout: std::time::Duration,
) -> Result<ServerCompiled, ClientError> {
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
            cache,
        } => Ok(ServerCompiled {
            result: CompileResult::new(stdout, stderr, exit_status),
            cache,
        }),
        other => Err(unexpected("Compile", &other)),
    }
}
