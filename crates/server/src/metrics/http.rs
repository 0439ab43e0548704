//! The HTTP side of the metrics endpoint: hyper's HTTP/1.1 server (already in the build
//! through tonic) on a listener of its own, with `GET /metrics`, `GET /status`, and 404 for
//! anything else.
//!
//! Whoever reaches the address may ask, so a request costs little and holds nothing for
//! long: its headers must arrive within [`HEADER_DEADLINE`] and fit [`MAX_HEADER_BYTES`]
//! and [`MAX_HEADERS`], a whole connection is closed after [`CONNECTION_DEADLINE`] (one
//! request per connection: scrapes are seconds apart), no request body is ever read, and at
//! most [`MAX_CONNECTIONS`] are served at once (more are closed at once). The listener is a
//! task of the server's, aborted when the server stops; its connections are tasks of the
//! listener's, aborted with it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::exposition::{self, Format};
use crate::error::ServerError;
use crate::shared::Shared;

/// How long a client has to send its request's headers.
const HEADER_DEADLINE: Duration = Duration::from_secs(5);
/// How long one connection may last, request and answer included.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
/// The most header lines a request may carry; a scraper sends a handful.
const MAX_HEADERS: usize = 32;
/// The most bytes of request line and headers a request may carry.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;
/// The pause after a failed accept (out of descriptors), so it is not retried in a loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds the metrics address; failing names it.
pub(crate) async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::MetricsListen {
            addr: addr.to_owned(),
            source,
        })
}

/// Answers scrapes on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped (aborting every connection) when this task is.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%addr, "metrics connection closed: too many at once");
            continue;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| answer(request, Arc::clone(&shared)));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .max_headers(MAX_HEADERS)
                .max_header_size(MAX_HEADER_BYTES)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "metrics connection failed"),
                Err(_) => tracing::debug!(%addr, "metrics connection past its deadline; closed"),
            }
            drop(slot);
        });
    }
}

/// What to send back for one request.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics(Format),
    Status,
    WrongMethod,
    NotFound,
}

fn route(method: &Method, path: &str, accept: Option<&str>) -> Route {
    let page = match path {
        "/metrics" => Route::Metrics(Format::accepted(accept)),
        "/status" => Route::Status,
        _ => return Route::NotFound,
    };
    if method == Method::GET || method == Method::HEAD {
        page
    } else {
        Route::WrongMethod
    }
}

async fn answer(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let route = route(request.method(), request.uri().path(), accept);
    let page = match route {
        Route::NotFound => return Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
        Route::WrongMethod => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return Ok(response);
        }
        page => page,
    };
    // Gathering reads the client events log and the size ledger: off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let gathered = super::gather(&shared);
        match page {
            Route::Metrics(format) => exposition::render(gathered, format)
                .map(|text| (format.content_type(), text))
                .map_err(|_| "the exposition could not be written".to_owned()),
            _ => Ok((
                "application/json",
                super::status::render(&gathered).to_string() + "\n",
            )),
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("gathering failed: {e}")));
    Ok(match rendered {
        Ok((content_type, body)) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(content_type),
            );
            headers.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(why) => {
            tracing::warn!(%why, "metrics request failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    })
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_pages_are_served_and_only_to_get_and_head() {
        let openmetrics = Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
        assert_eq!(
            route(&Method::GET, "/metrics", openmetrics),
            Route::Metrics(Format::OpenMetrics)
        );
        assert_eq!(
            route(&Method::GET, "/metrics", Some("*/*")),
            Route::Metrics(Format::PrometheusText)
        );
        assert_eq!(
            route(&Method::HEAD, "/metrics", None),
            Route::Metrics(Format::PrometheusText)
        );
        assert_eq!(route(&Method::GET, "/status", None), Route::Status);
        assert_eq!(route(&Method::POST, "/status", None), Route::WrongMethod);
        for path in ["/", "/metrics/", "/status.json", "/../etc/passwd", "/cache"] {
            assert_eq!(route(&Method::GET, path, None), Route::NotFound, "{path}");
        }
    }
}
