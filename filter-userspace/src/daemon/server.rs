//! The daemon's HTTP server, hyper's HTTP/1.1 on TCP (metrics) and on a Unix socket (the
//! binding API): each connection in its own task, request bodies read up to a limit,
//! stopped when told to.

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, UnixListener},
    sync::watch,
};

/// The largest request body read; a batch of 1,000 flow bindings takes about 150 KiB.
pub const MAX_BODY: usize = 4 << 20;
/// A client that sends no request for this long is dropped.
const IDLE: Duration = Duration::from_secs(30);

pub type Reply = Response<Full<Bytes>>;
pub type Handler =
    Arc<dyn Fn(Method, String, Bytes) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Where connections come from.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A reply with a body and its type.
pub fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn text(status: StatusCode, body: &'static str) -> Reply {
    reply(status, "text/plain; charset=utf-8", body)
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// `{"error": why}`.
pub fn error(status: StatusCode, why: impl std::fmt::Display) -> Reply {
    json(status, &serde_json::json!({ "error": why.to_string() }))
}

/// 405 with the methods the path takes.
pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("this path takes {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Accepts connections until `stopped` turns true.
pub async fn serve(listener: Listener, handler: Handler, mut stopped: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok(Connection::Tcp(stream)) => spawn(stream, handler.clone()),
            Ok(Connection::Unix(stream)) => spawn(stream, handler.clone()),
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

enum Connection {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Connection> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Connection::Tcp(s)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Connection::Unix(s)),
    }
}

fn spawn<S>(stream: S, handler: Handler)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |request| answer(request, handler.clone()));
        let connection = http1::Builder::new()
            .header_read_timeout(IDLE)
            .timer(hyper_util::rt::TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service);
        if let Err(e) = connection.await {
            tracing::debug!("HTTP connection: {e}");
        }
    });
}

async fn answer(request: Request<Incoming>, handler: Handler) -> Result<Reply, Infallible> {
    let (parts, body) = request.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH);
    if declared.and_then(|v| v.to_str().ok()?.parse::<usize>().ok()) > Some(MAX_BODY) {
        // Refused before a byte of it is read.
        let why = format!("the request body exceeds {MAX_BODY} bytes");
        return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, why));
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let why = format!("the request body exceeds {MAX_BODY} bytes");
            return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, why));
        }
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                format!("reading the body: {e}"),
            ));
        }
    };
    let head = parts.method == Method::HEAD;
    let method = if head { Method::GET } else { parts.method };
    let mut reply = handler(method, parts.uri.path().to_string(), body).await;
    if head {
        *reply.body_mut() = Full::new(Bytes::new());
    }
    Ok(reply)
}
