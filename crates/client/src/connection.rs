//! One conversation with a server: connect (starting a server if none listens), negotiate the
//! version, and exchange requests and responses within a timeout.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hoard_protocol::{
    MAX_PROTOCOL, MIN_PROTOCOL, PROTOCOL_V1, PROTOCOL_V2, Request, Response, capability, codec,
    decode, encode,
};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::{ClientConfig, ClientError};

/// An open, negotiated connection.
#[derive(Debug)]
pub struct Connection {
    framed: Framed<UnixStream, LengthDelimitedCodec>,
    request_timeout: Duration,
    version: u32,
    capabilities: Vec<String>,
}

impl Connection {
    /// Connects to the configured server, starting one first when none is listening and the
    /// configuration says how, and negotiates the protocol version. A server that answers
    /// `Hello` with `Unsupported` predates v2; the conversation continues in v1 on the same
    /// connection. With `max_protocol` 1 no `Hello` is sent at all, as a v1 client would.
    pub async fn open(config: &ClientConfig) -> Result<Self, ClientError> {
        let stream = match UnixStream::connect(&config.socket_path).await {
            Ok(stream) => stream,
            Err(e) if crate::spawn::no_server_behind(&e) && config.launch.is_some() => {
                crate::spawn::start_and_connect(config).await?
            }
            Err(source) => {
                return Err(ClientError::Connect {
                    socket: config.socket_path.clone(),
                    source,
                });
            }
        };
        let mut connection = Self {
            framed: Framed::new(stream, codec(config.max_frame_length)),
            request_timeout: config.request_timeout,
            version: PROTOCOL_V1,
            capabilities: Vec::new(),
        };
        let max = config.max_protocol.clamp(MIN_PROTOCOL, MAX_PROTOCOL);
        if max >= PROTOCOL_V2 {
            let hello = Request::Hello {
                min: MIN_PROTOCOL,
                max,
                capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
            };
            match connection.request(&hello).await {
                Ok(Response::Welcome {
                    version,
                    capabilities,
                }) => {
                    connection.version = version;
                    connection.capabilities = capabilities;
                }
                Err(ClientError::Unsupported { .. }) => {}
                Ok(other) => return Err(unexpected("Hello", &other)),
                Err(e) => return Err(e),
            }
        }
        Ok(connection)
    }

    /// The negotiated protocol version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether both sides have the named capability.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }

    /// Sends `request` and waits for its answer, within the request timeout. `Error` and
    /// `Unsupported` answers come back as [`ClientError`]s.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.request_within(request, self.request_timeout).await
    }

    /// As [`Connection::request`], with its own timeout (a v1 `Compile` waits for a compile).
    pub async fn request_within(
        &mut self,
        request: &Request,
        waited: Duration,
    ) -> Result<Response, ClientError> {
        let name = request.type_name();
        tokio::time::timeout(waited, self.exchange(request, name))
            .await
            .map_err(|_| ClientError::Timeout {
                request: name,
                waited,
            })?
    }

    async fn exchange(
        &mut self,
        request: &Request,
        name: &'static str,
    ) -> Result<Response, ClientError> {
        self.framed
            .send(encode(request)?)
            .await
            .map_err(|source| ClientError::Io {
                request: name,
                source,
            })?;
        let response = match self.framed.next().await {
            Some(Ok(body)) => decode(&body)?,
            Some(Err(source)) => {
                return Err(ClientError::Io {
                    request: name,
                    source,
                });
            }
            None => return Err(ClientError::Closed { request: name }),
        };
        match response {
            Response::Error { message } => Err(ClientError::Refused {
                request: name,
                message,
            }),
            Response::Unsupported { message } => Err(ClientError::Unsupported {
                request: name,
                message: message.unwrap_or_default(),
            }),
            response => Ok(response),
        }
    }
}

/// The error for a response that does not answer the request.
pub(crate) fn unexpected(request: &'static str, got: &Response) -> ClientError {
    ClientError::Unexpected {
        request,
        got: format!("{got:?}").chars().take(200).collect(),
    }
}
