//! `geofence daemon`: serves Prometheus metrics, reloads the territory table when its
//! files change, and removes expired rules from the state. Enforcement does not depend on
//! it: the pinned link and maps work without any process, and stay when it stops.
//!
//! One maintenance loop polls (files, expiries) and runs each change to completion in a
//! blocking thread; SIGTERM or SIGINT stops new work, waits for a change under way (so
//! the lock is released with the state, maps and audit trail consistent), and exits 0.

mod api;
mod expire;
mod exposition;
mod fleet_metrics;
mod kernel_cache;
mod logger;
mod metrics;
mod rule_metrics;
mod server;
mod status;
mod watch;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch as channel,
};

use crate::change::Ctx;
use crate::{expiry::parse_duration, kernel, state};
use status::Shared;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Address and port of the Prometheus endpoint, served at /metrics. Port 0 picks a
    /// free port (logged at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// How often to look at the territory table's files and the rules' expiries, e.g. 2s
    /// or 200ms. A changed file is reloaded after it has been stable for one more poll.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub poll: Duration,
    /// Serve the binding API for SFU control planes on this Unix socket (mode 0660): HTTP
    /// with JSON, described in docs/api.yaml. A stale socket is replaced.
    #[arg(long, value_name = "PATH")]
    pub api: Option<PathBuf>,
    /// The group the API socket belongs to, so that an SFU's control plane running as a
    /// member can call it without root.
    #[arg(long, value_name = "GROUP", requires = "api")]
    pub api_group: Option<String>,
    /// On ports meetings share: how long a flow's binding learned from STUN applies
    /// without a new Binding request (ICE agents send one at least every 5 s). Set in the
    /// kernel when the daemon starts; without a daemon the program applies 30 s.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub learned_idle: Duration,
    /// Fleet mode (docs/fleet.md): enforce the fleet's policy from etcd, report this
    /// relay's status there and watch for new versions. Needs --relay.
    #[arg(long, requires = "relay")]
    pub fleet: bool,
    /// This relay's name in the fleet (its etcd keys, and its certificate's CN).
    #[arg(long, value_name = "NAME", requires = "fleet", value_parser = relay_name)]
    pub relay: Option<String>,
    /// Fleet mode: how often to read this relay's per-rule counters and sketches into its
    /// status key, which is rewritten only when they changed (docs/fleet.md has the etcd
    /// write rate this gives a fleet).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5m",
        value_parser = counters_every,
        requires = "fleet"
    )]
    pub fleet_counters_every: Duration,
    /// Fleet mode: how long after its end a rule's counts stay in the status key (the
    /// relay's own report keeps them for good).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "100d",
        value_parser = duration_or_zero,
        requires = "fleet"
    )]
    pub fleet_counters_keep: Duration,
    #[command(flatten)]
    pub etcd: crate::fleet::EtcdArgs,
}

/// A duration that may be zero: parse_duration refuses zero in the words of a rule's
/// `--for`, which these flags are not.
fn duration_or_zero(text: &str) -> Result<Duration, String> {
    let mut digits = text.chars().filter(char::is_ascii_digit).peekable();
    let zero = digits.peek().is_some() && digits.all(|c| c == '0');
    if zero && parse_duration(&text.replace('0', "1")).is_ok() {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

fn counters_every(text: &str) -> Result<Duration, String> {
    let every = duration_or_zero(text)?;
    if every < Duration::from_millis(100) {
        return Err(format!(
            "`{text}` is shorter than 100ms: the counters would be read without a pause"
        ));
    }
    Ok(every)
}

fn relay_name(name: &str) -> Result<String, String> {
    crate::fleet::keys::check_relay_name(name).map(|()| name.to_string())
}

pub fn run(ctx: Ctx, args: DaemonArgs) -> anyhow::Result<()> {
    logger::init();
    kernel::check_privileges()?;
    state::ensure_dir(&ctx.state_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(Arc::new(ctx), args))
}

async fn serve(ctx: Arc<Ctx>, args: DaemonArgs) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    if kernel::Kernel::exists(&ctx.pin_dir) {
        let mut maps = kernel::Kernel::open(&ctx.pin_dir).context("opening the maps")?;
        kernel::bindings::set_learned_idle(&mut maps, args.learned_idle)
            .context("--learned-idle: setting it in the kernel")?;
    }
    // Both listeners before the first log line: whoever reads it can connect to either.
    let api_listener = match &args.api {
        Some(path) => {
            let kernel =
                kernel::Kernel::open(&ctx.pin_dir).context("opening the maps for the API")?;
            let listener = api::bind_socket(path, args.api_group.as_deref())?;
            Some((listener, kernel, path.clone()))
        }
        None => None,
    };
    tracing::info!(
        "geofence {} daemon: metrics on http://{bound}/metrics; checking geo files and expiries every {:?}; \
         pin dir {}, state dir {}",
        env!("CARGO_PKG_VERSION"),
        args.poll,
        ctx.pin_dir.display(),
        ctx.state_dir.display()
    );
    let status = Shared::new();
    let (stop, stopped) = channel::channel(false);

    // Fleet mode: a task beside the others; it only ever changes the kernel after etcd
    // answered, so its failures leave enforcement as it is.
    let agent = match (args.fleet, &args.relay) {
        (true, Some(relay)) => {
            let enforcer = crate::fleet::relay::LocalRelay {
                ctx: (*ctx).clone(),
            };
            let agent = crate::fleet::agent::Agent::new(
                relay.clone(),
                args.etcd.clone(),
                enforcer,
                jiff::Timestamp::now,
            );
            let agent = agent.with_counters(args.fleet_counters_every, args.fleet_counters_keep);
            tracing::info!(
                "fleet mode: relay {relay}, etcd {}; counters every {:?}",
                args.etcd.endpoints.join(","),
                args.fleet_counters_every
            );
            Some(agent)
        }
        _ => None,
    };
    let link = agent.as_ref().map(|a| a.connection());

    let metrics = metrics_handler(ctx.clone(), status.clone(), link);
    let server = tokio::spawn(server::serve(
        server::Listener::Tcp(listener),
        metrics,
        stopped.clone(),
    ));
    let api = api_listener.map(|(listener, kernel, path)| {
        let handler = Arc::new(api::Api {
            state_dir: ctx.state_dir.clone(),
            kernel: std::sync::Mutex::new(kernel),
        })
        .handler();
        tracing::info!("binding API on {}", path.display());
        tokio::spawn(server::serve(
            server::Listener::Unix(listener),
            handler,
            stopped.clone(),
        ))
    });

    let fleet = agent.map(|agent| tokio::spawn(agent.run(stopped.clone())));
    let maintenance = tokio::spawn(maintain(ctx, status, args.poll, stopped));

    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!("{name}: stopping (enforcement stays in place)");
    // Receivers only drop when their tasks have ended, which is what we wait for anyway.
    let _ = stop.send(true);
    let (server, maintenance) = tokio::join!(server, maintenance);
    server.context("the metrics server failed")?;
    if let Some(api) = api {
        api.await.context("the binding API failed")?;
    }
    if let Some(path) = &args.api {
        let _ = std::fs::remove_file(path);
    }
    maintenance.context("the maintenance loop failed")?;
    if let Some(fleet) = fleet {
        fleet.await.context("the fleet agent failed")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `/metrics`, rendered from the maps in a blocking thread, a few scrapes at a time: a
/// burst of connections cannot start hundreds of threads.
fn metrics_handler(
    ctx: Arc<Ctx>,
    status: Shared,
    fleet: Option<crate::fleet::connection::Handle>,
) -> server::Handler {
    use hyper::{Method, StatusCode};
    let scrapes = Arc::new(tokio::sync::Semaphore::new(2));
    let maps = Arc::new(kernel_cache::KernelCache::default());
    Arc::new(move |method, path, _body| {
        let (ctx, status, scrapes, maps) =
            (ctx.clone(), status.clone(), scrapes.clone(), maps.clone());
        let fleet = fleet.as_ref().map(|f| f.get());
        Box::pin(async move {
            match (path.as_str(), method) {
                ("/metrics", Method::GET) => {}
                ("/", Method::GET) => {
                    return server::text(StatusCode::OK, "geofence daemon: metrics at /metrics\n");
                }
                ("/metrics" | "/", _) => return server::method_not_allowed("GET, HEAD"),
                _ => {
                    return server::text(
                        StatusCode::NOT_FOUND,
                        "not found; metrics are at /metrics\n",
                    );
                }
            }
            let _permit = scrapes.acquire_owned().await;
            let rendered = tokio::task::spawn_blocking(move || {
                let snapshot = metrics::Snapshot::read(
                    &ctx.pin_dir,
                    &ctx.state_dir,
                    &maps,
                    status.get(),
                    fleet,
                );
                metrics::render(snapshot).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match rendered {
                Ok(body) => server::reply(StatusCode::OK, exposition::CONTENT_TYPE, body),
                Err(e) => {
                    tracing::error!("rendering metrics: {e}");
                    server::text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "rendering metrics failed; see the daemon's log\n",
                    )
                }
            }
        })
    })
}

/// Polls until told to stop. A poll's work runs to the end before the stop is seen.
async fn maintain(
    ctx: Arc<Ctx>,
    status: Shared,
    every: Duration,
    mut stopped: channel::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watcher = watch::GeoWatcher::default();
    loop {
        tokio::select! {
            biased;
            _ = stopped.changed() => return,
            _ = interval.tick() => {}
        }
        let (ctx, status) = (ctx.at(crate::expiry::Clock::now()), status.clone());
        let done = tokio::task::spawn_blocking(move || {
            match state::State::load(&ctx.state_dir) {
                Ok(seen) => {
                    watcher.poll(&ctx, &seen, &status);
                    expire::poll(&ctx, &seen, &status);
                }
                Err(e) => tracing::error!("reading the state: {e:#}"),
            }
            watcher
        })
        .await;
        match done {
            Ok(w) => watcher = w,
            Err(e) => {
                // A panic in one poll must not stop the others.
                tracing::error!("a maintenance poll failed: {e}");
                watcher = watch::GeoWatcher::default();
            }
        }
    }
}
