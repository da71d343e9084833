//! Client of geofence's binding API: tells the relay which meeting a server ufrag belongs to, so
//! that it can classify a transport from its very first STUN Binding request.
//!
//! HTTP/1.1 with JSON bodies over a Unix socket, one connection per call (calls are rare: one per
//! join, restart or leave).

use std::{fmt, path::PathBuf, str::FromStr};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixStream;

/// Where ufrags are registered: `none`, or `unix:/path/to/api.sock`.
#[derive(Clone, Debug)]
pub enum Binding {
    None,
    Unix(PathBuf),
}

impl FromStr for Binding {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        match spec.split_once(':') {
            _ if spec == "none" => Ok(Binding::None),
            Some(("unix", path)) if !path.is_empty() => Ok(Binding::Unix(path.into())),
            _ => Err(format!(
                "{spec:?} is neither `none` nor `unix:/path/to/api.sock`"
            )),
        }
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::None => f.write_str("none"),
            Binding::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Answers larger than this are not from the binding API.
const MAX_RESPONSE: usize = 64 * 1024;

impl Binding {
    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<()> {
        let Binding::Unix(_) = self else {
            return Ok(());
        };
        self.call(Method::GET, "/v1/health", None).await.map(drop)
    }

    /// `POST /v1/bind` of one ufrag to its meeting. An error means the relay refused it or could
    /// not be asked; either way the transport must not go ahead.
    pub async fn bind(&self, meeting: &str, ufrag: &str) -> Result<()> {
        let body = json!({ "ufrags": [{ "meeting": meeting, "ufrag": ufrag }] });
        self.call(Method::POST, "/v1/bind", Some(body))
            .await
            .map(drop)
    }

    /// `POST /v1/unbind` of ufrags that no transport uses any more.
    pub async fn unbind(&self, ufrags: &[String]) -> Result<()> {
        if ufrags.is_empty() {
            return Ok(());
        }
        let body = json!({ "ufrags": ufrags });
        self.call(Method::POST, "/v1/unbind", Some(body))
            .await
            .map(drop)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let Binding::Unix(socket) = self else {
            return Ok(Value::Null);
        };
        let what = format!("{method} {path} on {}", socket.display());
        let (status, answer) = exchange(socket, method, path, body)
            .await
            .with_context(|| format!("binding API: {what}"))?;
        if status.is_success() {
            return Ok(answer);
        }
        // The contract puts the reason in `error`; anything else is shown as it came.
        let reason = answer
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| answer.to_string(), str::to_owned);
        bail!("binding API refused {what}: {status}: {reason}")
    }
}

async fn exchange(
    socket: &PathBuf,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let stream = UnixStream::connect(socket).await.context("connecting")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    // The connection task ends with the one exchange; its error, if any, shows in the exchange.
    tokio::spawn(async move {
        let _ = connection.await;
    });

    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "geofence");
    let bytes = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&body).context("encoding the request")?)
        }
        None => Bytes::new(),
    };
    let request = request
        .body(Full::new(bytes))
        .context("building the request")?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {e}"))?
        .to_bytes();
    let answer = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the answer ({status}) is not JSON: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })?
    };
    Ok((status, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert!(matches!("none".parse(), Ok(Binding::None)));
        let Ok(Binding::Unix(path)) = "unix:/run/geofence/api.sock".parse() else {
            panic!("unix spec does not parse");
        };
        assert_eq!(path, PathBuf::from("/run/geofence/api.sock"));
        assert!("unix:".parse::<Binding>().is_err());
        assert!("tcp:127.0.0.1:1".parse::<Binding>().is_err());
        assert!("".parse::<Binding>().is_err());
    }
}
