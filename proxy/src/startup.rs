//! Builds the application: loads the config (created from the example when missing), binds the API and ops listeners (port 0 works),
//! starts the config watcher and the stats snapshots, and runs until a stop signal.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::bookkeeping::accounting::Accounting;
use crate::bookkeeping::recent::Recent;
use crate::bookkeeping::stats::Stats;
use crate::config::ConfigError;
use crate::downstream::body_budget::BodyBudget;
use crate::handlers::{self, AppState};
use crate::ops::contract::ConfigStatus;
use crate::ops::metrics::Metrics;
use crate::ops::{self, OpsState};
use crate::process::first_start::create_config_if_missing;
use crate::process::signals::StopSignals;
use crate::rewrite::images::ImageService;
use crate::settings::Settings;
use crate::snapshot::reload::{self, ConfigWatcher};
use crate::snapshot::{Shared, Snapshot};
use crate::upstream::credentials::CredentialRegistry;
use crate::upstream::pool::PoolRegistry;

/// Entries kept per ring (errors and successes) in the recent-requests record.
const RECENT_PER_RING: usize = 500;
/// The memory each ring of recent requests may hold.
const RECENT_BYTES_PER_RING: usize = 1 << 20;

/// Pending connections the API listener queues. `TcpListener::bind` queues 128, which a burst
/// of new clients overflows (their SYNs are dropped and retried a second later), and
/// `HttpServer::backlog` applies only to addresses the server binds itself.
const API_BACKLOG: u32 = 4096;

pub struct Application {
    api: Server,
    ops: Server,
    port: u16,
    ops_port: u16,
    accounting: Arc<Accounting>,
    settings: Settings,
    signals: StopSignals,
    _watcher: ConfigWatcher,
}

/// Stops both listeners gracefully (in-flight requests and streams may finish).
#[derive(Clone)]
pub struct StopHandle {
    api: ServerHandle,
    ops: ServerHandle,
}

impl StopHandle {
    pub async fn stop(&self) {
        self.api.stop(true).await;
        self.ops.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let path = settings.config_path.clone();
        let example = settings.config_example.clone();
        tokio::task::spawn_blocking(move || create_config_if_missing(&path, example.as_deref()))
            .await??;
        let path = settings.config_path.clone();
        let (config, sha256) = tokio::task::spawn_blocking(move || reload::read_config(&path))
            .await?
            .inspect_err(|err| log_config_issues(&settings.config_path, err))
            .with_context(|| format!("loading {}", settings.config_path.display()))?;
        reload::log_notes(&config);
        let (listen, listen_from) = match &settings.listen {
            Some(listen) => (listen.clone(), "PROXY_LISTEN"),
            None => (
                config.server.listen.to_string(),
                "server.host/server.port in config.json",
            ),
        };
        let (ops_listen, ops_from) = match &settings.ops_listen {
            Some(listen) => (listen.clone(), "PROXY_OPS_LISTEN"),
            None => (config.server.ops.to_string(), "server.ops in config.json"),
        };

        let credentials = CredentialRegistry::default();
        let pools = PoolRegistry::default();
        let snapshot = Snapshot::build(config, &credentials, &pools);
        let status = ConfigStatus {
            path: settings.config_path.display().to_string(),
            generation: 1,
            loaded_at_ms: snapshot.loaded_at_ms,
            sha256,
            rejected: None,
            ignored_keys: snapshot.config.ignored.clone(),
        };
        let shared = Arc::new(Shared::new(snapshot, status, credentials, pools));

        tokio::task::spawn_blocking(crate::upstream::transport::load_tls_roots).await?;
        let stats_path = settings.stats_path();
        let stats = tokio::task::spawn_blocking(move || Stats::load(Some(stats_path))).await?;
        let accounting =
            Accounting::new(stats, Recent::new(RECENT_PER_RING, RECENT_BYTES_PER_RING));
        let image_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let images = Arc::new(
            ImageService::new(image_threads).context("starting the image worker threads")?,
        );

        let api_listener = bind_with_backlog(&listen, API_BACKLOG).with_context(|| {
            format!(
                "binding the API listener on {listen} (from {listen_from}); if another program \
                 (Caddy's HTTP site, another proxy) has that port, set PROXY_LISTEN to another \
                 host:port and give control the same"
            )
        })?;
        let port = api_listener.local_addr()?.port();
        let body_budget = BodyBudget::new(settings.body_memory_limit);
        let state = web::Data::new(AppState {
            shared: shared.clone(),
            accounting: accounting.clone(),
            images: images.clone(),
            body_rules: settings.body_rules(),
            body_budget: body_budget.clone(),
            limiter: accounting.limiter.clone(),
        });
        let mut api = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route(
                    "/v1/chat/completions",
                    web::post().to(handlers::chat_completions),
                )
                .route("/v1/responses", web::post().to(handlers::responses))
                .route(
                    "/v1/images/generations",
                    web::post().to(handlers::images_generations),
                )
                .route("/v1/embeddings", web::post().to(handlers::embeddings))
                .route("/v1/models", web::get().to(handlers::models))
                .route("/v1/models/{id}", web::get().to(handlers::model))
                // Azure's paths, as its SDKs call them.
                .route(
                    "/openai/deployments/{model}/{operation:.+}",
                    web::post().to(handlers::azure_deployment),
                )
                .route("/openai/v1/models", web::get().to(handlers::models))
                .route("/openai/v1/models/{id}", web::get().to(handlers::model))
                .route(
                    "/openai/v1/{operation:.+}",
                    web::post().to(handlers::azure_operation),
                )
                .route(
                    "/openai/{operation:.+}",
                    web::post().to(handlers::azure_operation),
                )
                .route("/healthz", web::get().to(handlers::healthz))
                .default_service(web::to(handlers::not_found))
        })
        .disable_signals()
        // Each SSE event leaves at once instead of waiting for the client's ACK of the last.
        .tcp_nodelay(true)
        .shutdown_timeout(settings.shutdown_grace.as_secs());
        if let Some(workers) = settings.workers {
            api = api.workers(workers);
        }
        let api = api.listen(api_listener)?.run();

        let ops_listener = TcpListener::bind(&ops_listen).with_context(|| {
            format!(
                "binding the ops listener on {ops_listen} (from {ops_from}); if another program \
                 has that port, set PROXY_OPS_LISTEN to another host:port and give control the same"
            )
        })?;
        let ops_port = ops_listener.local_addr()?.port();
        let ops_ip = ops_listener.local_addr()?.ip();
        if !ops_ip.is_loopback() {
            tracing::warn!(address = %ops_listen, "the ops listener is reachable beyond loopback; it has no authentication");
        }
        let ops_state = web::Data::new(OpsState {
            metrics: Metrics::new(accounting.clone(), images.clone(), shared.clone()),
            shared: shared.clone(),
            accounting: accounting.clone(),
            images,
            body_budget,
            started: Instant::now(),
        });
        let ops = HttpServer::new(move || {
            App::new()
                .app_data(ops_state.clone())
                .configure(ops::configure)
        })
        .disable_signals()
        .shutdown_timeout(1)
        .workers(1)
        .listen(ops_listener)?
        .run();

        let watcher = reload::watch(
            settings.config_path.clone(),
            shared,
            settings.config_poll,
            settings.config_events,
        );
        // Registered before "listening" is logged, so a SIGTERM right after start-up drains too.
        let signals = StopSignals::register()?;
        tracing::info!(api = %listen, port, ops = %format!("{ops_ip}:{ops_port}"), "proxy listening");
        Ok(Application {
            api,
            ops,
            port,
            ops_port,
            accounting,
            settings,
            signals,
            _watcher: watcher,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ops_port(&self) -> u16 {
        self.ops_port
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            api: self.api.handle(),
            ops: self.ops.handle(),
        }
    }

    /// Serves until SIGTERM/SIGINT or a `StopHandle`, then drains and writes the statistics.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let stop = self.stop_handle();
        let mut stop_signals = self.signals;
        let signals = actix_rt::spawn(async move {
            stop_signals.recv().await;
            tracing::info!("stopping: no new connections; in-flight requests may finish");
            stop.stop().await;
        });
        let accounting = self.accounting.clone();
        let flush_every = self.settings.stats_flush;
        let flusher = actix_rt::spawn(async move {
            let mut ticker = actix_rt::time::interval(flush_every);
            loop {
                ticker.tick().await;
                persist(&accounting).await;
            }
        });
        let (api, ops) = futures_util::future::join(self.api, self.ops).await;
        signals.abort();
        flusher.abort();
        persist(&self.accounting).await;
        tracing::info!("stopped");
        api.context("API listener")?;
        ops.context("ops listener")?;
        Ok(())
    }
}

/// Logs each problem of a config file that stops the start, one line each, all of them.
fn log_config_issues(path: &std::path::Path, err: &anyhow::Error) {
    if let Some(err) = err.downcast_ref::<ConfigError>() {
        for issue in err.issues() {
            tracing::error!(path = %path.display(), field = %issue.path, problem = %issue.message, "config file invalid");
        }
    }
}

async fn persist(accounting: &Arc<Accounting>) {
    let accounting = accounting.clone();
    match tokio::task::spawn_blocking(move || accounting.persist()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %format!("{err:#}"), "could not write stats.json"),
        Err(err) => tracing::warn!(error = %err, "stats writer failed"),
    }
}

/// Binds the first address `listen` resolves to that can be bound, with `backlog` pending
/// connections.
fn bind_with_backlog(listen: &str, backlog: u32) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs as _;
    let mut last_error = None;
    for addr in listen.to_socket_addrs()? {
        let socket = if addr.is_ipv4() {
            actix_rt::net::TcpSocket::new_v4()?
        } else {
            actix_rt::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Ok(()) => return socket.listen(backlog)?.into_std(),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}
