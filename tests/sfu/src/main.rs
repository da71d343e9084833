//! `geofence-test-sfu`: a WebRTC SFU for geofence's tests, shaped like production SFUs (LiveKit,
//! mediasoup's WebRtcServer, pion's UDPMux): ICE-lite, and one UDP socket for every meeting, so
//! the relay can only tell meetings apart by the server ufrag the SFU registers with it.

mod binding;
mod ice;
mod peer;
mod sfu;
mod signaling;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::mpsc,
};

use crate::{binding::Binding, sfu::Sfu, signaling::Signaling};

/// A WebRTC test SFU: ICE-lite, every meeting on one UDP socket, data-channel messages forwarded
/// within a meeting.
///
/// Signaling (JSON over HTTP/1.1): `POST /join?meeting=M&participant=P` with an offer
/// `{"type":"offer","sdp":...}` answers `{"type":"answer","sdp":...}`;
/// `POST /restart?participant=P` with a new offer answers with a new server ufrag;
/// `POST /leave?participant=P`; `GET /state`; `GET /chromium.html`, a browser participant.
///
/// When it is ready it prints one line to stdout: `ready udp=ADDR http=ADDR`.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The one UDP socket for all media, and the address of the SDP host candidate (so not a
    /// wildcard address). Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    udp: SocketAddr,

    /// Where signaling listens. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    http: SocketAddr,

    /// Where each server ufrag is registered with its meeting before its answer is sent: `none`,
    /// or `unix:/path/to/api.sock` for geofence's binding API.
    #[arg(long, value_name = "SPEC", default_value = "none")]
    register: Binding,

    /// Starts every server ufrag the SFU chooses (up to 48 characters of [A-Za-z0-9+/]).
    #[arg(long, value_name = "STR", default_value = "")]
    ufrag_prefix: String,
}

/// How long a binding API that is still starting gets to answer its health check.
const HEALTH_WAIT: Duration = Duration::from_secs(5);

fn main() -> Result<()> {
    let args = Args::parse();
    ice::check_prefix(&args.ufrag_prefix).map_err(anyhow::Error::msg)?;
    if args.udp.ip().is_unspecified() {
        bail!(
            "--udp {} is a wildcard address, but clients are told to send to it: give the \
             address of an interface",
            args.udp
        );
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    wait_for_health(&args.register).await?;
    let socket = UdpSocket::bind(args.udp)
        .await
        .with_context(|| format!("binding UDP {}", args.udp))?;
    let listener = TcpListener::bind(args.http)
        .await
        .with_context(|| format!("listening on {}", args.http))?;
    let udp = socket.local_addr().context("UDP socket address")?;
    let http = listener.local_addr().context("HTTP socket address")?;
    eprintln!(
        "sfu: media on udp {udp}, signaling on http://{http}, ufrags registered with {}",
        args.register
    );

    let (commands, receiver) = mpsc::channel(64);
    let media = tokio::spawn(Sfu::new(socket, args.ufrag_prefix)?.run(receiver));
    let signaling = Arc::new(Signaling {
        sfu: commands,
        binding: args.register,
    });
    let web = tokio::spawn(signaling::serve(listener, signaling));
    println!("ready udp={udp} http={http}");

    tokio::select! {
        done = media => done.context("media loop panicked")?.context("media loop"),
        done = web => done.context("signaling panicked")?.context("signaling"),
        signal = tokio::signal::ctrl_c() => signal.context("waiting for ^C"),
    }
}

async fn wait_for_health(binding: &Binding) -> Result<()> {
    let deadline = tokio::time::Instant::now() + HEALTH_WAIT;
    loop {
        match binding.health().await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "the binding API is not healthy after {HEALTH_WAIT:?}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
