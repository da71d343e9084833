//! A minimal HTTP/1.1 server for `/metrics`: one request per connection, answered and
//! closed. Scrapers need nothing more, and it keeps an HTTP stack out of a root daemon.

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use super::exposition::CONTENT_TYPE;

/// The most a request head may take; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
/// A client that sends nothing for this long is dropped.
const IDLE: Duration = Duration::from_secs(10);

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub allow: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            allow: status == 405,
        }
    }

    pub fn metrics(body: String) -> Response {
        Response {
            status: 200,
            content_type: CONTENT_TYPE,
            body,
            allow: false,
        }
    }
}

/// The route a request head asks for, or the response that refuses it.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics { head_only: bool },
    Index { head_only: bool },
}

pub fn route(head: &str) -> Result<Route, (u16, &'static str)> {
    let line = head.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err((400, "bad request line\n"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err((505, "HTTP/1.x only\n"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err((405, "only GET and HEAD\n")),
    };
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => Ok(Route::Metrics { head_only }),
        "/" => Ok(Route::Index { head_only }),
        _ => Err((404, "not found; metrics are at /metrics\n")),
    }
}

/// Accepts connections until `shutdown` turns true; `metrics` renders a scrape.
pub async fn serve<F, Fut>(listener: TcpListener, metrics: F, mut shutdown: watch::Receiver<bool>)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response> + Send,
{
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    log::warn!("accepting a metrics connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, peer, metrics).await {
                log::debug!("metrics connection from {peer}: {e}");
            }
        });
    }
}

async fn answer<F, Fut>(mut stream: TcpStream, peer: SocketAddr, metrics: F) -> std::io::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Response>,
{
    let head = match tokio::time::timeout(IDLE, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (response, head_only) = match head.as_deref().map(route) {
        None => (Response::text(431, "request head too large\n"), false),
        Some(Ok(Route::Metrics { head_only })) => (metrics().await, head_only),
        Some(Ok(Route::Index { head_only })) => (
            Response::text(200, "geofence daemon: metrics at /metrics\n"),
            head_only,
        ),
        Some(Err((status, body))) => {
            log::debug!("metrics request from {peer} refused with {status}");
            (Response::text(status, body), false)
        }
    };
    write_response(&mut stream, &response, head_only).await?;
    stream.shutdown().await
}

/// The request up to its blank line; `None` if it exceeds [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

async fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let allow = if r.allow { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(r.body.as_bytes()).await?;
    }
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = |target: &str| route(&format!("GET {target} HTTP/1.1\r\nHost: x"));
        assert_eq!(get("/metrics"), Ok(Route::Metrics { head_only: false }));
        assert_eq!(
            get("/metrics?name[]=x"),
            Ok(Route::Metrics { head_only: false })
        );
        assert_eq!(
            route("HEAD /metrics HTTP/1.0"),
            Ok(Route::Metrics { head_only: true })
        );
        assert_eq!(get("/"), Ok(Route::Index { head_only: false }));
        assert_eq!(get("/metricsx").map_err(|e| e.0), Err(404));
        assert_eq!(route("POST /metrics HTTP/1.1").map_err(|e| e.0), Err(405));
        assert_eq!(route("GET /metrics").map_err(|e| e.0), Err(400));
        assert_eq!(route("GET /metrics SPDY/3").map_err(|e| e.0), Err(505));
        assert_eq!(route("").map_err(|e| e.0), Err(400));
    }
}
