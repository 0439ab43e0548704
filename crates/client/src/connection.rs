//! One conversation with a server: connect (starting a server if none listens), negotiate the
//! version, and exchange requests and responses within a timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hoard_protocol::{
    InlineAssembly, InlineError, InlinePieces, MAX_PROTOCOL, MIN_PROTOCOL, PROTOCOL_V1,
    PROTOCOL_V2, Request, Response, capability, codec, decode, encode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::{ClientConfig, ClientError};

/// Where the server found a hit's entry: the tier, and the trusted key that signed it (on a
/// verifying tier). Older servers say neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HitSource {
    /// The tier (`local`, `redis`, ...).
    pub tier: Option<String>,
    /// The signer's name.
    pub signer: Option<String>,
}

/// A byte stream to a server: the Unix socket, or TCP.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Transport for T {}

/// An open, negotiated connection.
#[derive(Debug)]
pub struct Connection {
    framed: Framed<Box<dyn Transport>, LengthDelimitedCodec>,
    request_timeout: Duration,
    /// How long the answer to `Hello` may take (see [`ClientConfig::answer_timeout`]).
    answer_timeout: Duration,
    version: u32,
    capabilities: Vec<String>,
    shared_fs: bool,
    remote: bool,
    welcome_pending: bool,
    state_dir: PathBuf,
    /// The server process behind a Unix socket, as the kernel reported it.
    peer: Option<crate::trust::Peer>,
}

impl Connection {
    /// Connects to the configured server, starting one first when none is listening and the
    /// configuration says how, and negotiates the protocol version. A server that answers
    /// `Hello` with `Unsupported` predates v2; the conversation continues in v1 on the same
    /// connection. With `max_protocol` 1 no `Hello` is sent at all, as a v1 client would.
    ///
    /// With `server_addr` set the server is reached over TCP instead: nothing is started, the
    /// `Hello` carries the token, and every entry travels inline.
    ///
    /// On a Unix socket, nothing is sent before the kernel has said who listens: a server of
    /// another uid than this process's effective uid is refused with
    /// [`ClientError::UntrustedServer`] (see `docs/Security.md`).
    pub async fn open(config: &ClientConfig) -> Result<Self, ClientError> {
        let mut connection = Self::open_pipelined(config).await?;
        connection.negotiate().await?;
        Ok(connection)
    }

    /// As [`Connection::open`], but without waiting for the answer to `Hello`: it is read
    /// with the answer to the first request, which travels in the same round trip. Until then
    /// the version and capabilities are this build's own (a server that turns out to predate
    /// v2 answers that first request `Unsupported`, and [`Connection::version`] says 1 from
    /// then on); call [`Connection::negotiate`] to know before asking.
    pub async fn open_pipelined(config: &ClientConfig) -> Result<Self, ClientError> {
        let (stream, peer) = if let Some(addr) = &config.server_addr {
            (connect_tcp(addr, config.connect_timeout).await?, None)
        } else {
            let (stream, peer) = connect_unix(config).await?;
            (stream, Some(peer))
        };
        let remote = peer.is_none();
        let max = config.max_protocol.clamp(MIN_PROTOCOL, MAX_PROTOCOL);
        let mut connection = Self {
            framed: Framed::new(stream, codec(config.max_frame_length)),
            request_timeout: config.request_timeout,
            answer_timeout: crate::wedged::first_answer_timeout(config),
            version: PROTOCOL_V1,
            capabilities: Vec::new(),
            shared_fs: !remote,
            remote,
            welcome_pending: false,
            state_dir: config.cache_dir.clone(),
            peer,
        };
        if remote && max < PROTOCOL_V2 {
            return Err(ClientError::Unsupported {
                request: "Hello",
                message: format!(
                    "a TCP server (HOARD_SERVER_ADDR) is only spoken to in v{PROTOCOL_V2} and \
                     later; the client is pinned to v{max}"
                ),
            });
        }
        if max >= PROTOCOL_V2 {
            let probe = if remote {
                None
            } else {
                crate::probe::nonce_file(&config.cache_dir)
            };
            let hello = Request::Hello {
                min: MIN_PROTOCOL,
                max,
                capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
                probe,
                token: config.token.clone(),
            };
            // Fed, not flushed: it leaves with the first request.
            connection
                .framed
                .feed(encode(&hello)?)
                .await
                .map_err(|source| ClientError::Io {
                    request: "Hello",
                    source,
                })?;
            connection.version = max;
            connection.capabilities = capability::ALL.iter().map(|c| (*c).to_owned()).collect();
            connection.welcome_pending = true;
        }
        Ok(connection)
    }

    /// Reads the answer to `Hello` if it has not been read yet (sending the `Hello` first if
    /// nothing has carried it yet).
    pub async fn negotiate(&mut self) -> Result<(), ClientError> {
        if !self.welcome_pending {
            return Ok(());
        }
        let waited = self.answer_timeout;
        let work = async {
            SinkExt::<bytes::Bytes>::flush(&mut self.framed)
                .await
                .map_err(|source| ClientError::Io {
                    request: "Hello",
                    source,
                })?;
            self.take_welcome().await
        };
        tokio::time::timeout(waited, work)
            .await
            .map_err(|_| ClientError::Timeout {
                request: "Hello",
                waited,
            })?
    }

    /// Reads the answer to `Hello` when it is still to come (it was sent with the request
    /// just written), within the answer timeout: a server that does not even answer that is
    /// not worth the whole request timeout.
    async fn welcome_if_pending(&mut self) -> Result<(), ClientError> {
        if !self.welcome_pending {
            return Ok(());
        }
        let waited = self.answer_timeout;
        tokio::time::timeout(waited, self.take_welcome())
            .await
            .map_err(|_| ClientError::Timeout {
                request: "Hello",
                waited,
            })?
    }

    /// Whether the answer to `Hello` is still to be read.
    pub fn negotiated(&self) -> bool {
        !self.welcome_pending
    }

    /// Reads and applies the answer to `Hello`.
    async fn take_welcome(&mut self) -> Result<(), ClientError> {
        self.welcome_pending = false;
        match self.receive("Hello").await {
            Ok(Response::Welcome {
                version,
                capabilities,
                shared_fs,
            }) => {
                // Until now `version` is the newest we offered: a server that picks one we
                // did not offer speaks something this client cannot.
                if !(MIN_PROTOCOL..=self.version).contains(&version) {
                    return Err(ClientError::Unsupported {
                        request: "Hello",
                        message: format!(
                            "the server chose protocol v{version}; this client speaks \
                             v{MIN_PROTOCOL} to v{}",
                            self.version
                        ),
                    });
                }
                self.version = version;
                self.capabilities = capabilities;
                // A server from before the probe works on our paths as it always has.
                self.shared_fs = !self.remote && shared_fs.unwrap_or(true);
                Ok(())
            }
            // A server from before v2: the conversation goes on in v1.
            Err(ClientError::Unsupported { .. }) if !self.remote => {
                self.version = PROTOCOL_V1;
                self.capabilities.clear();
                Ok(())
            }
            Ok(other) => Err(unexpected("Hello", &other)),
            Err(e) => Err(e),
        }
    }

    /// Whether the server may see our paths: it read the probe (each directory is still
    /// checked per request). `false` over TCP and in another mount namespace.
    pub fn shared_fs(&self) -> bool {
        self.shared_fs
    }

    /// The pid of the server process behind a Unix socket, as the kernel reported it when
    /// the connection was made (`None` over TCP, or when that process is in another pid
    /// namespace). It runs as this process's effective uid.
    pub fn server_pid(&self) -> Option<u32> {
        self.peer.and_then(|peer| peer.pid)
    }

    /// The client's state directory (`HOARD_DIR`).
    pub(crate) fn state_dir(&self) -> &Path {
        &self.state_dir
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
    /// Sending and the answer each have `waited`; a pending answer to `Hello`, read in
    /// between, has its own (shorter) timeout.
    pub async fn request_within(
        &mut self,
        request: &Request,
        waited: Duration,
    ) -> Result<Response, ClientError> {
        let name = request.type_name();
        self.send_within(name, waited, encode(request)?).await?;
        self.welcome_if_pending().await?;
        within(name, waited, self.receive(name)).await
    }

    /// Sends the encoded request `name` within `waited`.
    async fn send_within(
        &mut self,
        name: &'static str,
        waited: Duration,
        body: bytes::Bytes,
    ) -> Result<(), ClientError> {
        within(name, waited, async {
            self.framed
                .send(body)
                .await
                .map_err(|source| ClientError::Io {
                    request: name,
                    source,
                })
        })
        .await
    }

    /// Stores `entry` (packed here) under `key` by sending its bytes: `CachePutInline` with
    /// the first piece, `Chunk`s with the rest, then one answer.
    pub(crate) async fn put_inline(
        &mut self,
        key: String,
        language: Option<String>,
        entry: &[u8],
    ) -> Result<Response, ClientError> {
        const NAME: &str = "CachePutInline";
        let waited = self.request_timeout;
        let send = async {
            let pieces = InlinePieces::new(entry);
            let first = Request::CachePutInline {
                key,
                language,
                size: pieces.size(),
                data: pieces.first().to_vec(),
            };
            let io = |source| ClientError::Io {
                request: NAME,
                source,
            };
            self.framed.feed(encode(&first)?).await.map_err(io)?;
            for piece in pieces.rest() {
                let chunk = Request::Chunk {
                    data: piece.to_vec(),
                };
                self.framed.feed(encode(&chunk)?).await.map_err(io)?;
            }
            SinkExt::<bytes::Bytes>::flush(&mut self.framed)
                .await
                .map_err(io)
        };
        within(NAME, waited, send).await?;
        self.welcome_if_pending().await?;
        within(NAME, waited, self.receive(NAME)).await
    }

    /// Fetches the entry under `key` as bytes (`CacheGetInline`): `None` on a miss.
    pub(crate) async fn get_inline(
        &mut self,
        key: String,
        language: Option<String>,
    ) -> Result<Option<(Vec<u8>, HitSource)>, ClientError> {
        const NAME: &str = "CacheGetInline";
        let waited = self.request_timeout;
        let request = Request::CacheGetInline { key, language };
        self.send_within(NAME, waited, encode(&request)?).await?;
        self.welcome_if_pending().await?;
        let receive = async {
            let (size, first, source) = match self.receive(NAME).await? {
                Response::Entry {
                    size,
                    data,
                    tier,
                    signer,
                } => (size, data, HitSource { tier, signer }),
                Response::Miss => return Ok(None),
                other => return Err(unexpected(NAME, &other)),
            };
            // The server's entry is as large as it says: its size is not limited here.
            let mut entry = InlineAssembly::begin(size, first, u64::MAX).map_err(entry_refused)?;
            while !entry.is_complete() {
                match self.receive(NAME).await? {
                    Response::Chunk { data } => entry.push(&data).map_err(entry_refused)?,
                    other => return Err(unexpected(NAME, &other)),
                }
            }
            Ok(Some((entry.finish().map_err(entry_refused)?, source)))
        };
        within(NAME, waited, receive).await
    }

    /// Reads one response; `Error` and `Unsupported` become [`ClientError`]s.
    async fn receive(&mut self, name: &'static str) -> Result<Response, ClientError> {
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

/// Runs `work` on `request`'s behalf for at most `waited`.
async fn within<T>(
    request: &'static str,
    waited: Duration,
    work: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(waited, work)
        .await
        .map_err(|_| ClientError::Timeout { request, waited })?
}

/// The error for an inline entry whose pieces do not add up to its announced size.
fn entry_refused(refused: InlineError) -> ClientError {
    let got = match refused {
        InlineError::Overflow { arrived, size } | InlineError::Short { arrived, size } => {
            format!("{arrived} bytes for an entry of {size}")
        }
        other => other.to_string(),
    };
    ClientError::Unexpected {
        request: "CacheGetInline",
        got,
    }
}

/// The error for a response that does not answer the request.
pub(crate) fn unexpected(request: &'static str, got: &Response) -> ClientError {
    ClientError::Unexpected {
        request,
        got: format!("{got:?}").chars().take(200).collect(),
    }
}

/// Connects to the configured socket (starting a server when none listens and the
/// configuration says how) and checks who listens before anything is sent.
async fn connect_unix(
    config: &ClientConfig,
) -> Result<(Box<dyn Transport>, crate::trust::Peer), ClientError> {
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
    let peer = crate::trust::verify_server(&stream, &config.socket_path)?;
    Ok((Box::new(stream), peer))
}

async fn connect_tcp(addr: &str, waited: Duration) -> Result<Box<dyn Transport>, ClientError> {
    let failed = |source| ClientError::ConnectTcp {
        addr: addr.to_owned(),
        source,
    };
    let stream = tokio::time::timeout(waited, TcpStream::connect(addr))
        .await
        .map_err(|_| failed(std::io::ErrorKind::TimedOut.into()))?
        .map_err(failed)?;
    // Requests are small and latency-bound: never wait to fill a packet.
    stream.set_nodelay(true).map_err(failed)?;
    Ok(Box::new(stream))
}
