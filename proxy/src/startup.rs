//! Builds the application: loads the config (created from the example when missing), binds the
//! API and ops listeners (port 0 works), starts the config source (the file watcher, or the blob
//! follower), the usage history's upkeep and the stats snapshots, and runs until a stop signal;
//! on a stop it reports not ready while it drains.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::blob::cache::LocalCache;
use crate::blob::replica_stats::ReplicaStats;
use crate::blob::{BlobStore, PersistenceMode};
use crate::bookkeeping::accounting::Accounting;
use crate::bookkeeping::history::History;
use crate::bookkeeping::recent::Recent;
use crate::bookkeeping::stats::Stats;
use crate::config::{self, Config, ConfigError};
use crate::downstream::body_budget::BodyBudget;
use crate::handlers::{self, AppState};
use crate::ops::contract::{ConfigStatus, ServingFrom};
use crate::ops::metrics::Metrics;
use crate::ops::{self, OpsState};
use crate::process::clock::now_ms;
use crate::process::first_start::create_config_if_missing;
use crate::process::signals::StopSignals;
use crate::rewrite::images::ImageService;
use crate::settings::Settings;
use crate::snapshot::blob_source::{self, BlobFollower};
use crate::snapshot::reload::{self, ConfigWatcher};
use crate::snapshot::{ReadyState, Shared, Snapshot};
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
    signals: StopSignals,
    shared: Arc<Shared>,
    /// Where statistics are copied for control to add up (blob mode).
    replica_stats: Option<Arc<ReplicaStats>>,
    _source: ConfigSource,
}

/// What keeps the config current (held only to be dropped with the application).
enum ConfigSource {
    File { _watcher: ConfigWatcher },
    Blob { _follower: BlobFollower },
}

/// Stops both listeners gracefully (in-flight requests and streams may finish). The proxy
/// reports not ready from the start of the stop; the ops listener stays up until the API
/// listener has drained, so a load balancer sees it.
#[derive(Clone)]
pub struct StopHandle {
    api: ServerHandle,
    ops: ServerHandle,
    shared: Arc<Shared>,
}

impl StopHandle {
    pub async fn stop(&self) {
        self.shared.readiness.start_draining();
        self.api.stop(true).await;
        self.ops.stop(true).await;
    }
}

/// The config the proxy starts with, and where it came from.
struct Start {
    config: Config,
    status: ConfigStatus,
    readiness: ReadyState,
    blob: Option<(BlobStore, Arc<LocalCache>)>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // In blob mode config.json is the blob's cache: a missing blob is created from the
        // example instead (`blob_source`), and without a config the proxy is not ready.
        if matches!(settings.persistence, PersistenceMode::File) {
            let path = settings.config_path.clone();
            let example = settings.config_example.clone();
            tokio::task::spawn_blocking(move || {
                create_config_if_missing(&path, example.as_deref())
            })
            .await??;
        }
        // Before the first client is built (the blob client in blob mode), off the reactor.
        tokio::task::spawn_blocking(crate::upstream::transport::load_tls_roots).await?;
        let Start {
            config,
            mut status,
            readiness,
            blob,
        } = match &settings.persistence {
            PersistenceMode::File => start_from_file(&settings).await?,
            PersistenceMode::Blob(blob) => start_from_cache(&settings, (**blob).clone()).await?,
        };
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
        status.loaded_at_ms = snapshot.loaded_at_ms;
        status.ignored_keys = snapshot.config.ignored.clone();
        let shared = Arc::new(Shared::new(snapshot, status, credentials, pools, readiness));

        let stats_path = settings.stats_path();
        let replica_stats = blob.as_ref().map(|(store, _)| {
            ReplicaStats::new(
                store.clone(),
                settings.usage_history.then(|| settings.data_dir.clone()),
            )
        });
        if let Some(copy) = &replica_stats {
            copy.restore(&stats_path).await;
        }
        let history_dir = settings.usage_history.then(|| settings.data_dir.clone());
        let (stats, history) = tokio::task::spawn_blocking(move || {
            (
                Stats::load(Some(stats_path)),
                history_dir.map_or_else(History::off, |dir| History::load(&dir, now_ms())),
            )
        })
        .await?;
        let accounting = Accounting::new(
            stats,
            history,
            Recent::new(RECENT_PER_RING, RECENT_BYTES_PER_RING),
        );
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

        let source = match blob {
            None => ConfigSource::File {
                _watcher: reload::watch(
                    settings.config_path.clone(),
                    shared.clone(),
                    settings.config_poll,
                    settings.config_events,
                ),
            },
            Some((store, cache)) => ConfigSource::Blob {
                _follower: blob_source::follow(
                    store,
                    cache,
                    settings.config_example.clone(),
                    shared.clone(),
                ),
            },
        };
        // Registered before "listening" is logged, so a SIGTERM right after start-up drains too.
        let signals = StopSignals::register()?;
        tracing::info!(api = %listen, port, ops = %format!("{ops_ip}:{ops_port}"), "proxy listening");
        Ok(Application {
            api,
            ops,
            port,
            ops_port,
            accounting,
            signals,
            shared,
            replica_stats,
            _source: source,
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
            shared: self.shared.clone(),
        }
    }

    /// Serves until SIGTERM/SIGINT or a `StopHandle`, then drains and writes the statistics.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let stop = self.stop_handle();
        let mut stop_signals = self.signals;
        let signals = actix_rt::spawn(async move {
            stop_signals.recv().await;
            stop.shared.readiness.start_draining();
            tracing::info!("stopping: no new connections; in-flight requests may finish");
            stop.stop().await;
        });
        let upkeep = actix_rt::spawn(upkeep(
            self.accounting.clone(),
            self.shared.clone(),
            self.replica_stats.clone(),
        ));
        let (api, ops) = futures_util::future::join(self.api, self.ops).await;
        signals.abort();
        upkeep.abort();
        maintain(&self.accounting, &self.shared).await;
        persist(&self.accounting).await;
        if let Some(copy) = &self.replica_stats {
            copy.copy(&self.accounting).await;
        }
        tracing::info!("stopped");
        api.context("API listener")?;
        ops.context("ops listener")?;
        Ok(())
    }
}

/// How often finished minutes of the usage history are sealed and rolled up.
const HISTORY_UPKEEP: Duration = Duration::from_secs(1);

/// Seals the usage history every second and writes the statistics every
/// `stats.flushInterval` (read from the serving config at each write, so a reload applies).
async fn upkeep(
    accounting: Arc<Accounting>,
    shared: Arc<Shared>,
    replica_stats: Option<Arc<ReplicaStats>>,
) {
    let mut last_write = Instant::now();
    loop {
        actix_rt::time::sleep(HISTORY_UPKEEP).await;
        maintain(&accounting, &shared).await;
        let flush_interval = shared.snapshot.load().config.stats.flush_interval;
        if last_write.elapsed() >= flush_interval {
            last_write = Instant::now();
            persist(&accounting).await;
            if let Some(copy) = &replica_stats {
                copy.copy(&accounting).await;
            }
        }
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

async fn maintain(accounting: &Arc<Accounting>, shared: &Shared) {
    let accounting = accounting.clone();
    let retention = shared.snapshot.load().config.stats.retention;
    if let Err(err) =
        tokio::task::spawn_blocking(move || accounting.history.maintain(now_ms(), &retention)).await
    {
        tracing::warn!(error = %err, "usage history upkeep failed");
    }
}

async fn persist(accounting: &Arc<Accounting>) {
    let accounting = accounting.clone();
    match tokio::task::spawn_blocking(move || accounting.persist(now_ms())).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %format!("{err:#}"), "could not write the statistics")
        }
        Err(err) => tracing::warn!(error = %err, "stats writer failed"),
    }
}

/// File mode: config.json must exist and be valid, or the proxy does not start.
async fn start_from_file(settings: &Settings) -> anyhow::Result<Start> {
    let path = settings.config_path.clone();
    let (config, sha256) = tokio::task::spawn_blocking(move || reload::read_config(&path))
        .await?
        .inspect_err(|err| log_config_issues(&settings.config_path, err))
        .with_context(|| format!("loading {}", settings.config_path.display()))?;
    let readiness = ReadyState::settled();
    readiness.config_loaded();
    Ok(Start {
        config,
        status: ConfigStatus {
            path: settings.config_path.display().to_string(),
            generation: 1,
            sha256,
            ..ConfigStatus::default()
        },
        readiness,
        blob: None,
    })
}

/// Blob mode: the local cache serves when it holds a valid config, else the defaults (not
/// ready: no models, no keys) until the blob has been read.
async fn start_from_cache(
    settings: &Settings,
    blob: crate::blob::BlobSettings,
) -> anyhow::Result<Start> {
    let store = BlobStore::new(blob).context("setting up the Blob Storage client")?;
    let cache = Arc::new(LocalCache::new(&settings.config_path));
    let reader = cache.clone();
    let initial = tokio::task::spawn_blocking(move || blob_source::initial_config(&reader))
        .await?
        .context("reading the local config cache")?;
    let readiness = ReadyState::default();
    let (config, sha256, generation, serving_from) = match initial {
        Some((config, sha256, pending)) => {
            readiness.config_loaded();
            let from = if pending {
                ServingFrom::PendingLocalChange
            } else {
                ServingFrom::LocalCache
            };
            (config, sha256, 1, from)
        }
        None => {
            let defaults = config::validate(Default::default())
                .map_err(|e| anyhow::anyhow!("the default config is invalid: {e}"))?;
            (defaults, String::new(), 0, ServingFrom::Nothing)
        }
    };
    let status = ConfigStatus {
        path: store.settings().describe(&store.settings().config_blob),
        generation,
        sha256,
        blob: Some(blob_source::initial_status(&store, serving_from)),
        ..ConfigStatus::default()
    };
    Ok(Start {
        config,
        status,
        readiness,
        blob: Some((store, cache)),
    })
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
