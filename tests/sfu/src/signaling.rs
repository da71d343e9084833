//! Signaling over plain HTTP/1.1 with JSON bodies: join, restart, leave and state.
//!
//! A transport's ufrag is registered with the relay before its answer leaves here, so the relay
//! knows the meeting of the very first STUN request; a refusal fails the request with 502.

use std::{collections::HashMap, convert::Infallible, sync::Arc};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::json;
use str0m::change::SdpOffer;
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
};

use crate::{
    binding::Binding,
    sfu::{Answered, Command, Refusal},
};

pub struct Signaling {
    pub sfu: mpsc::Sender<Command>,
    pub binding: Binding,
}

/// Offers are a few kilobytes; this leaves room for many m-lines.
const MAX_OFFER: usize = 256 * 1024;

/// A failed request: its status and the text of `{"error": ...}`.
struct Failure(StatusCode, String);

type Reply = Result<Response<Full<Bytes>>, Failure>;

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        match refusal {
            Refusal::BadOffer(why) => Failure(StatusCode::BAD_REQUEST, why),
            Refusal::Conflict(why) => Failure(StatusCode::CONFLICT, why),
            Refusal::NotFound(why) => Failure(StatusCode::NOT_FOUND, why),
        }
    }
}

pub async fn serve(listener: TcpListener, signaling: Arc<Signaling>) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await.context("accepting on --http")?;
        let signaling = signaling.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let signaling = signaling.clone();
                async move { Ok::<_, Infallible>(signaling.handle(request).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("sfu: signaling connection: {e}");
            }
        });
    }
}

impl Signaling {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = self.route(request).await;
        match reply {
            Ok(response) => response,
            Err(Failure(status, error)) => {
                eprintln!("sfu: {what}: {status}: {error}");
                json_response(status, &json!({ "error": error }))
            }
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Reply {
        let query = Query::parse(request.uri().query().unwrap_or(""));
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/join") => {
                let meeting = query.name("meeting")?;
                let participant = query.name("participant")?;
                let offer = read_offer(request).await?;
                self.join(meeting, participant, offer).await
            }
            (&Method::POST, "/restart") => {
                let participant = query.name("participant")?;
                let offer = read_offer(request).await?;
                self.restart(participant, offer).await
            }
            (&Method::POST, "/leave") => self.leave(query.name("participant")?).await,
            (&Method::GET, "/chromium.html") => Ok(page()),
            (&Method::GET, "/state") => {
                let state = self.ask(|reply| Command::State { reply }).await?;
                Ok(json_response(StatusCode::OK, &state))
            }
            (_, path) => Err(Failure(
                StatusCode::NOT_FOUND,
                format!(
                    "no route {path}: use POST /join, /restart, /leave or GET /state, \
                     /chromium.html"
                ),
            )),
        }
    }

    async fn join(&self, meeting: String, participant: String, offer: SdpOffer) -> Reply {
        let answered = self
            .ask(|reply| Command::Join {
                meeting,
                participant: participant.clone(),
                offer,
                reply,
            })
            .await??;
        self.register(&participant, answered).await
    }

    async fn restart(&self, participant: String, offer: SdpOffer) -> Reply {
        let answered = self
            .ask(|reply| Command::Restart {
                participant: participant.clone(),
                offer,
                reply,
            })
            .await??;
        self.register(&participant, answered).await
    }

    /// Binds the transport's ufrag, and only then hands out the answer. The old ufrag of a
    /// restart is unbound after the new one is bound, so the relay never lacks one.
    async fn register(&self, participant: &str, answered: Answered) -> Reply {
        let Answered {
            meeting,
            answer,
            ufrag,
            retired,
        } = answered;
        if let Err(e) = self.binding.bind(&meeting, &ufrag).await {
            // The relay would drop this transport's traffic: take it out altogether.
            let _ = self
                .ask(|reply| Command::Remove {
                    participant: participant.to_owned(),
                    only_ufrag: Some(ufrag),
                    reply,
                })
                .await;
            self.unbind(retired.into_iter().collect()).await;
            return Err(Failure(StatusCode::BAD_GATEWAY, format!("{e:#}")));
        }
        self.unbind(retired.into_iter().collect()).await;
        Ok(json_response(StatusCode::OK, &answer))
    }

    async fn leave(&self, participant: String) -> Reply {
        let removed = self
            .ask(|reply| Command::Remove {
                participant: participant.clone(),
                only_ufrag: None,
                reply,
            })
            .await?
            .ok_or_else(|| {
                Failure(
                    StatusCode::NOT_FOUND,
                    format!("no participant {participant:?}"),
                )
            })?;
        self.binding
            .unbind(std::slice::from_ref(&removed.ufrag))
            .await
            .map_err(|e| Failure(StatusCode::BAD_GATEWAY, format!("{e:#}")))?;
        Ok(json_response(
            StatusCode::OK,
            &json!({ "left": participant, "ufrag": removed.ufrag }),
        ))
    }

    /// Unbinds ufrags nothing uses any more; a failure leaves a stale entry at the relay, which
    /// is worth a line in the log but not failing a request whose transport is fine.
    async fn unbind(&self, ufrags: Vec<String>) {
        if let Err(e) = self.binding.unbind(&ufrags).await {
            eprintln!("sfu: {e:#}");
        }
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Failure> {
        let (reply, answer) = oneshot::channel();
        let gone = || {
            Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the media loop stopped".into(),
            )
        };
        self.sfu.send(command(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }
}

async fn read_offer(request: Request<Incoming>) -> Result<SdpOffer, Failure> {
    let body = Limited::new(request.into_body(), MAX_OFFER)
        .collect()
        .await
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("reading the offer: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("the body is not an offer {{\"type\":\"offer\",\"sdp\":...}}: {e}"),
        )
    })
}

/// The browser participant (tests/webrtc/chromium.html), served here so that its signaling is
/// same-origin and a browser in a test's network namespace needs no other server.
const PAGE: &str = include_str!("../../webrtc/chromium.html");

fn page() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    // Our own types always serialize; the fallback only keeps this free of panics.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Query parameters. Names are taken as they come, without percent-decoding, so they are
/// restricted to characters that never need it.
struct Query(HashMap<String, String>);

/// Longest meeting or participant name.
const MAX_NAME: usize = 64;

impl Query {
    fn parse(query: &str) -> Query {
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect();
        Query(pairs)
    }

    fn name(&self, key: &str) -> Result<String, Failure> {
        let bad = |why: &str| Failure(StatusCode::BAD_REQUEST, format!("`{key}` {why}"));
        let value = self.0.get(key).ok_or_else(|| bad("is missing"))?;
        if value.is_empty() || value.len() > MAX_NAME {
            return Err(bad(&format!("must be 1 to {MAX_NAME} characters")));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad("may only hold [A-Za-z0-9._-]"));
        }
        Ok(value.clone())
    }
}
