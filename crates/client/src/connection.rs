//! One conversation with a server: connect (starting a server if none listens), the
//! handshake, and request/response with a timeout.

use futures::{SinkExt, StreamExt};
use hoard_protocol::{
    MAX_PROTOCOL, MIN_PROTOCOL, Request, Response, capability, codec, decode, encode,
};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::{ClientConfig, ClientError};

/// An open, negotiated connection. The `Hello` is sent with the first request rather than on
/// its own, so a warm compile costs one round trip, not two.
#[derive(Debug)]
pub struct Connection {
    framed: Framed<UnixStream, LengthDelimitedCodec>,
    request_timeout: std::time::Duration,
    welcome_pending: bool,
    version: Option<u32>,
    capabilities: Vec<String>,
}

impl Connection {
    /// Connects to the configured server, starting one first when none is listening and the
    /// configuration says how.
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
        let mut framed = Framed::new(stream, codec(config.max_frame_length));
        let hello = Request::Hello {
            min: MIN_PROTOCOL,
            max: MAX_PROTOCOL,
            capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
        };
        // Queued, not flushed: it leaves with the first request.
        framed
            .feed(encode(&hello)?)
            .await
            .map_err(|source| ClientError::Io {
                request: "Hello",
                source,
            })?;
        Ok(Self {
            framed,
            request_timeout: config.request_timeout,
            welcome_pending: true,
            version: None,
            capabilities: Vec::new(),
        })
    }

    /// The negotiated version, once the server has answered the handshake.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// Whether both sides have the named capability (known after the first request).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }

    /// Sends `request` and waits for its answer, within the request timeout.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let name = request.type_name();
        let waited = self.request_timeout;
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
        if self.welcome_pending {
            self.welcome_pending = false;
            match self.receive(name).await? {
                Response::Welcome {
                    version,
                    capabilities,
                } => {
                    self.version = Some(version);
                    self.capabilities = capabilities;
                }
                Response::Unsupported { message } => {
                    // The request after it will be refused too; read that answer so the stream
                    // stays in step, then report the server as too old.
                    let _ = self.receive(name).await;
                    return Err(ClientError::Unsupported {
                        request: "Hello",
                        message: message.unwrap_or_default(),
                    });
                }
                other => return Err(unexpected("Hello", &other)),
            }
        }
        match self.receive(name).await? {
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

    async fn receive(&mut self, name: &'static str) -> Result<Response, ClientError> {
        match self.framed.next().await {
            Some(Ok(body)) => Ok(decode(&body)?),
            Some(Err(source)) => Err(ClientError::Io {
                request: name,
                source,
            }),
            None => Err(ClientError::Closed { request: name }),
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
