//! `smsflow run`: the service from a checked [`Config`]: store, flows (hot-reloaded), one SMPP
//! pool per `[[smsc]]`, the pipeline, the webhook worker, the HTTP API and `/metrics`, until
//! SIGINT/SIGTERM.
//!
//! Shutdown order: stop taking HTTP events, stop the pipeline (sends in flight finish), unbind
//! (the pools wait for responses in flight), stop the webhook worker (deliveries in flight
//! finish), flush the store; all within `[service] shutdown_timeout` (`shutdown.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Bind, Config, MetricsConfig, SmscConfig};
use crate::esme::{BindKind, Pool, PoolConfig, tcp_connector, tls_connector};
use crate::flow::engine::{EngineConfig, FlowEngine};
use crate::http::{self, ApiState};
use crate::smpp::encode::BindMode;
use crate::smpp::session::SessionConfig;
use crate::store::Store;

use super::driver::{Pipeline, Settings, now_ms};
use super::shutdown::Stop;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr} for {what}: {source}")]
    Listen {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    /// Flows that cannot run: none at all, or a file that fails with no good version to fall
    /// back on. A config problem: exit 2.
    #[error("{0}")]
    Flows(String),
    /// The config lacks what running needs (an `[[smsc]]`): exit 2.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The stop took longer than `shutdown_timeout`: these parts were abandoned (exit 3).
    #[error(
        "stopped after shutdown_timeout ({}) abandoning {}",
        humantime::format_duration(*timeout),
        abandoned.join("; ")
    )]
    StopTimedOut {
        timeout: Duration,
        abandoned: Vec<String>,
    },
}

impl RunError {
    /// The exit code `smsflow run` ends with (SPEC: 2 for bad config, 1 for the job failing).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Flows(_) | RunError::Config(_) => 2,
            RunError::StopTimedOut { .. } => super::shutdown::EXIT_STOP_TIMED_OUT,
            _ => 1,
        }
    }
}

/// The pool settings of one `[[smsc]]`.
pub fn pool_config(smsc: &SmscConfig) -> PoolConfig {
    let connector = match smsc.tls() {
        Some(tls) => tls_connector(&smsc.name, smsc.host.clone(), smsc.port, tls.clone()),
        None => tcp_connector(smsc.host.clone(), smsc.port),
    };
    let mut pool = PoolConfig::new(smsc.name.clone(), connector);
    pool.session = SessionConfig {
        bind_mode: BindMode::Transceiver,
        system_id: smsc.system_id.clone(),
        password: smsc.password().to_owned(),
        system_type: smsc.system_type.clone(),
        address_range: smsc.address_range.clone(),
        window: smsc.window as usize,
        enquire_link_interval: smsc.enquire_link_interval,
        response_timeout: smsc.response_timeout,
        ..SessionConfig::default()
    };
    pool.bind = match smsc.bind {
        Bind::Transceiver => BindKind::Transceiver,
        Bind::Pair => BindKind::Pair,
    };
    pool.sessions = smsc.sessions as usize;
    pool.tps = smsc.tps;
    pool.reconnect_min = smsc.reconnect_min;
    pool.reconnect_max = smsc.reconnect_max;
    pool.source_addr = smsc.source_addr.clone();
    pool.source_addr_ton = smsc.source_addr_ton;
    pool.source_addr_npi = smsc.source_addr_npi;
    pool.registered_delivery = smsc.registered_delivery;
    pool
}

/// What `smsflow run` takes beside its config.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Start on a store refused for data loss, sealed as it is
    /// ([`Store::open_in_accepting_loss`]).
    pub accept_data_loss: bool,
}

/// Runs the service until `stop` resolves.
pub async fn run(
    config: Config,
    stop_requested: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with(config, RunOptions::default(), stop_requested).await
}

/// [`run`] with `options`.
pub async fn run_with(
    config: Config,
    options: RunOptions,
    stop_requested: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // Before the store opens: a config that cannot run changes nothing on disk.
    config.require_smsc()?;
    // Before the flows load, so their first loads are counted.
    let exporter = crate::metrics::install();
    // CSI tallies count local days of service.timezone (recounted if it changed).
    let (data_dir, zone) = (&config.service.data_dir, &config.service.timezone);
    let store = if options.accept_data_loss {
        Store::open_in_accepting_loss(data_dir, zone)?
    } else {
        Store::open_in(data_dir, zone)?
    };
    store.set_min_free_space(config.service.min_free_space as u64);
    let (engine, errors) = FlowEngine::new(
        store.clone(),
        EngineConfig {
            scripts_dir: Some(config.service.scripts_dir.clone()),
            timezone: config.service.timezone.clone(),
            gate: Some(crate::flow::check::gate),
            functions: crate::flow::check::register,
            webhooks: crate::config::webhook::names(&config.webhook),
            check_webhooks: true,
            ..EngineConfig::default()
        },
    );
    let engine = Arc::new(engine);
    let flows: Vec<String> = engine.flows().iter().map(|f| f.name.clone()).collect();
    let stranded: Vec<String> = (errors.iter())
        .filter(|e| {
            let stem = std::path::Path::new(&e.origin())
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            stem.is_none_or(|stem| !flows.contains(&stem))
        })
        .map(ToString::to_string)
        .collect();
    if !stranded.is_empty() {
        return Err(RunError::Flows(format!(
            "{} (fix the file, or run `smsflow check` to see why; no earlier version of it \
             passed here to fall back on)",
            stranded.join("; ")
        )));
    }
    if flows.is_empty() {
        return Err(RunError::Flows(format!(
            "no flows in {} (service.scripts_dir): there is nothing to run; point it at the \
             directory of *.rhai flows",
            config.service.scripts_dir.display()
        )));
    }
    tracing::info!(flows = ?flows, "flows loaded");
    crate::http::warn_unloaded_routes(config.button_routes(), &engine);
    for flow in engine.flows() {
        crate::metrics::register_flow(&flow.name, flow.scale.min..=flow.scale.max);
    }

    let metrics = serve_metrics(&config.metrics, exporter).await?;

    // Every carrier's MOs go into one queue; MTs go out through any bound carrier.
    let (inbound_tx, inbound) = tokio::sync::mpsc::channel(4096);
    let mut pools = Vec::new();
    let mut forwarders = Vec::new();
    for smsc in &config.smsc {
        let (pool, mut rx) = Pool::start(pool_config(smsc), 4096);
        pools.push(Arc::new(pool));
        let tx = inbound_tx.clone();
        forwarders.push(tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(inbound_tx);
    let webhooks = crate::webhook::Worker::start(store.clone(), &config.webhook);
    let events = start_export(&config, &store)?;
    let pipeline = Pipeline::start(
        engine.clone(),
        store.clone(),
        pools.clone(),
        inbound,
        Settings {
            redelivery_window: config.service.redelivery_window,
            // Every session's window, full of parts accepted and not yet recorded.
            submit_budget: (config.smsc.iter())
                .map(|s| s.sessions as usize * s.window as usize)
                .sum(),
            response_grace: (config.smsc.iter())
                .map(|s| s.response_timeout)
                .max()
                .unwrap_or(super::inbound::DEFAULT_GRACE),
        },
    );

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| RunError::Listen {
            what: "the HTTP API",
            addr: config.http.listen,
            source,
        })?;
    let https = config.http.tls().cloned();
    tracing::info!(listen = %config.http.listen, tls = https.is_some(), "http api listening");
    http::tls::warn_if_exposed(
        config.http.listen,
        https.is_some(),
        "the HTTP API carries MSISDNs and tokens",
        "http",
    );
    warn_about_exposure(&config.http);
    let state = ApiState {
        engine: engine.clone(),
        store: store.clone(),
        tokens: config
            .http
            .tokens
            .iter()
            .map(|t| t.expose().to_owned())
            .collect(),
        number_tokens: (config.http.number_tokens.iter())
            .map(|t| t.expose().to_owned())
            .collect(),
        ready: Arc::new({
            let pools = pools.clone();
            move || pools.iter().any(|p| p.bound() > 0)
        }),
        start: Arc::new({
            let pipeline = pipeline.clone();
            move |now, flow, event, key| {
                let pipeline = pipeline.clone();
                Box::pin(async move { pipeline.start_event(now, flow, event, key).await })
            }
        }),
        on_accepted: Arc::new({
            let (pipeline, webhooks) = (pipeline.clone(), webhooks.clone());
            move || {
                pipeline.outbox_changed();
                webhooks.wake();
            }
        }),
        now: Arc::new(now_ms),
        buttons: config.button_routes().clone(),
    };
    let http_stop = Arc::new(tokio::sync::Notify::new());
    let census = http::listener::Census::default();
    let mut http = tokio::spawn(http::listener::serve_counted(
        listener,
        https,
        http::router(state, config.http.max_body),
        // Half the stop for the HTTP drain: the pipeline, unbind and flush follow it.
        crate::config::ListenerLimits {
            stop_grace: config.service.shutdown_timeout / 2,
            ..config.http.limits()
        },
        "api",
        census.clone(),
        {
            let http_stop = http_stop.clone();
            async move { http_stop.notified().await }
        },
    ));

    // Operators edit flows while the service runs: pick up changed scripts.
    let reload = tokio::spawn({
        let engine = engine.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let engine = engine.clone();
                let _ = tokio::task::spawn_blocking(move || engine.reload()).await;
            }
        }
    });

    stop_requested.await;
    tracing::info!("stopping: no new events, finishing what is in flight");
    let mut stop = Stop::new(config.service.shutdown_timeout);
    // notify_one keeps a permit, so the server stops even if it is not waiting yet.
    http_stop.notify_one();
    reload.abort();
    let describe_http = || census.describe("http api").into_iter().collect();
    let http_result = stop.part("the HTTP API", describe_http, &mut http).await;
    if http_result.is_none() {
        http.abort();
    }
    stop.part("the pipeline", || pipeline.describe(), pipeline.shutdown())
        .await;
    let describe_pools = || pools.iter().flat_map(|p| p.describe()).collect();
    let unbind = async {
        for pool in &pools {
            pool.shutdown().await;
        }
    };
    stop.last_rite("the SMPP sessions' unbind", describe_pools, unbind)
        .await;
    stop.part("webhooks", || webhooks.describe(), webhooks.shutdown())
        .await;
    if let Some(events) = events {
        let describe = || vec![format!("{} events to publish", store.exports_len())];
        stop.part("the export to NATS", describe, events.shutdown())
            .await;
    }
    for forwarder in forwarders {
        forwarder.abort();
    }
    metrics.abort();
    let describe_store = || vec!["the store's last flush (sled)".to_owned()];
    let flushed = stop
        .last_rite("the store", describe_store, store.flush())
        .await;
    if !stop.abandoned().is_empty() {
        return Err(RunError::StopTimedOut {
            timeout: stop.timeout(),
            abandoned: stop.abandoned().to_vec(),
        });
    }
    if let Some(flushed) = flushed {
        flushed?;
    }
    tracing::info!("stopped");
    match http_result {
        Some(Ok(Err(e))) => Err(RunError::Http(e)),
        _ => Ok(()),
    }
}

/// Serves `GET /metrics` (Prometheus text) on `[metrics] listen`, over HTTPS when configured,
/// until aborted.
async fn serve_metrics(
    config: &MetricsConfig,
    exporter: crate::metrics::Exporter,
) -> Result<tokio::task::JoinHandle<()>, RunError> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Listen {
            what: "metrics",
            addr: listen,
            source,
        })?;
    let tls = config.tls().cloned();
    tracing::info!(%listen, tls = tls.is_some(), "metrics listening");
    http::tls::warn_if_exposed(
        listen,
        tls.is_some(),
        "/metrics carries the service's counters",
        "metrics",
    );
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let exporter = exporter.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    exporter.render(),
                )
            }
        }),
    );
    let limits = crate::config::ListenerLimits::metrics();
    Ok(tokio::spawn(async move {
        let forever = std::future::pending();
        let served = http::listener::serve(listener, tls, app, limits, "metrics", forever).await;
        if let Err(e) = served {
            tracing::error!("metrics server failed: {e}");
        }
    }))
}

/// Loud warnings for an API anyone on the network could use: the sample token, or none,
/// beyond loopback.
fn warn_about_exposure(http: &crate::config::HttpConfig) {
    let exposed = !http.listen.ip().is_loopback();
    if http.has_sample_token() {
        tracing::warn!(
            listen = %http.listen,
            "http.tokens holds the sample token \"change-me\": anyone who read the docs can \
             post events and read customer comments; set http.tokens or http.tokens_env"
        );
    }
    if exposed && http.tokens.is_empty() {
        tracing::warn!(
            listen = %http.listen,
            "the HTTP API listens beyond loopback without tokens: anyone who can reach it \
             can post events and read customer comments; set http.tokens or http.tokens_env"
        );
    }
}

/// With `[export]`, the store derives export events from here on and the publisher takes
/// them to JetStream; without, it derives none (the queued stay for a later start).
fn start_export(
    config: &Config,
    store: &Store,
) -> Result<Option<Arc<crate::export::Exporter>>, RunError> {
    crate::metrics::register_export();
    store.set_export(config.export.is_some())?;
    let pending = store.exports_len();
    let Some(export) = &config.export else {
        if pending > 0 {
            tracing::warn!(
                pending,
                "export events wait in the store but [export] is not configured; they are published once it is"
            );
        }
        return Ok(None);
    };
    let origin = crate::export::Origin {
        node: config.service.node.clone(),
        short_code: (config.smsc.first()).map_or_else(String::new, |s| s.source_addr.clone()),
    };
    let nats = crate::config::export::redacted(&export.servers());
    tracing::info!(%nats, stream = %export.stream, node = %origin.node, pending, "exporting events to NATS JetStream");
    Ok(Some(crate::export::Exporter::start(
        store.clone(),
        export.clone(),
        origin,
    )))
}
