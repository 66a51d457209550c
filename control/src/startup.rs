//! Builds the control application: opens config.json (created from the example when missing),
//! binds the admin listener (port 0 works), renders the Caddyfile and starts the Caddy loader
//! and the config.json poll, and runs until a stop signal.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use proxy::blob::PersistenceMode;
use proxy::process::atomic_file::remove_stale_temporaries;
use proxy::process::first_start::create_config_if_missing;
use proxy::process::signals::StopSignals;

use crate::api::{self, AppState};
use crate::blob_backend::BlobBackend;
use crate::caddy::admin::CaddyAdmin;
use crate::caddy::caddyfile::BUILTIN_TEMPLATE;
use crate::caddy::loader::CaddyLoader;
use crate::caddy::sync::{CaddySync, RenderInputs};
use crate::errors::AdminError;
use crate::proxy_ops::ProxyOps;
use crate::settings::{Settings, host_port_of};
use crate::store::{AdminCredentials, ConfigStore};
use crate::throttle::LoginThrottle;
use crate::{admin_auth, cross_site, host_check, mount, ui};

/// Caddy's admin address in the Caddyfile when control does not drive Caddy.
const DEFAULT_ADMIN_LISTEN: &str = "localhost:2019";

pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
    signals: StopSignals,
    tasks: Vec<actix_rt::task::JoinHandle<()>>,
}

#[derive(Clone)]
pub struct StopHandle(ServerHandle);

impl StopHandle {
    pub async fn stop(&self) {
        self.0.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // In blob mode config.json is the blob's cache; the proxy creates a missing blob.
        if settings.create_missing_config && matches!(settings.persistence, PersistenceMode::File) {
            let path = settings.config_path.clone();
            let example = settings.config_example.clone();
            tokio::task::spawn_blocking(move || {
                create_config_if_missing(&path, example.as_deref())
            })
            .await??;
        }
        let path = settings.config_path.clone();
        let persistence = settings.persistence.clone();
        let store = Arc::new(
            tokio::task::spawn_blocking(move || {
                let blob = match persistence {
                    PersistenceMode::File => None,
                    PersistenceMode::Blob(blob) => Some(BlobBackend::start(*blob, &path)?),
                };
                ConfigStore::open_with(path, blob)
            })
            .await?
            .with_context(|| format!("opening {}", settings.config_path.display()))?,
        );
        {
            let store = store.clone();
            tokio::task::spawn_blocking(move || log_start_warnings(&store)).await??;
        }

        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding the admin listener on {}", settings.listen))?;
        let port = listener.local_addr()?.port();

        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        let admin = settings
            .caddy
            .admin_url
            .clone()
            .map(|url| CaddyAdmin::new(url, http.clone()));
        let loader = CaddyLoader::new(admin);
        let template = match &settings.caddy.template_path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading CADDY_TEMPLATE {}", path.display()))?,
            None => BUILTIN_TEMPLATE.to_string(),
        };
        let inputs = RenderInputs {
            config_path: std::path::absolute(&settings.config_path)?,
            admin_listen: settings
                .caddy
                .admin_url
                .as_ref()
                .and_then(host_port_of)
                .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.into()),
            http_port: settings.caddy.http_port,
            control_upstream: settings.control_upstream(port),
            proxy_upstream: settings.caddy.proxy_upstream.clone(),
            storage_dir: std::path::absolute(settings.caddy.storage_dir(&settings.data_dir))?,
            tls_log: std::path::absolute(settings.caddy.tls_log_path(&settings.data_dir))?,
            tls_internal: settings.caddy.tls_internal,
        };
        let caddyfile_path = settings.caddy.caddyfile_path.clone();
        tokio::task::spawn_blocking(move || remove_stale_temporaries(&caddyfile_path)).await?;
        let caddy = Arc::new(CaddySync::new(
            template,
            settings.caddy.caddyfile_path.clone(),
            inputs,
            loader.clone(),
        ));
        {
            let caddy = caddy.clone();
            let store = store.clone();
            tokio::task::spawn_blocking(move || caddy.apply(&store.last_good())).await?;
        }

        let mut tasks = vec![actix_rt::spawn(loader.run())];
        tasks.push(actix_rt::spawn(poll_config(
            store.clone(),
            caddy.clone(),
            settings.config_poll,
        )));

        let state = web::Data::new(AppState {
            ops: ProxyOps::new(
                settings.proxy_ops_url.clone(),
                settings.proxy_ops_from,
                http.clone(),
            ),
            proxy_url: settings.proxy_url.clone(),
            throttle: LoginThrottle::new(settings.throttle.clone()),
            settings: settings.clone(),
            store,
            http,
            caddy,
            started: Instant::now(),
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(api::configure)
                .configure(ui::configure)
                .default_service(web::to(not_found))
                .wrap(from_fn(cross_site::refuse_cross_site))
                .wrap(from_fn(admin_auth::require_login))
                .wrap(from_fn(mount::admin_path))
                .wrap(from_fn(host_check::refuse_unknown_host))
                .wrap(
                    DefaultHeaders::new()
                        .add(("content-security-policy", ui::CONTENT_SECURITY_POLICY))
                        .add(("x-frame-options", "DENY"))
                        .add(("x-content-type-options", "nosniff"))
                        .add(("referrer-policy", "no-referrer"))
                        .add(("cache-control", "no-store")),
                )
        })
        .disable_signals()
        .shutdown_timeout(5)
        .workers(settings.workers.unwrap_or(2))
        .listen(listener)?
        .run();

        let signals = StopSignals::register()?;
        tracing::info!(
            listen = %settings.listen,
            port,
            admin_path = %state.store.last_good().server.admin_path,
            config = %state.store.location(),
            caddyfile = %settings.caddy.caddyfile_path.display(),
            "control listening"
        );
        Ok(Application {
            server,
            port,
            state,
            signals,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.server.handle())
    }

    /// The shared state, for tests that inspect the Caddy loader.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM/SIGINT or a `StopHandle`.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let stop = self.stop_handle();
        let mut signals = self.signals;
        let watcher = actix_rt::spawn(async move {
            signals.recv().await;
            tracing::info!("stopping");
            stop.stop().await;
        });
        let result = self.server.await;
        watcher.abort();
        for task in self.tasks {
            task.abort();
        }
        tracing::info!("stopped");
        result.context("admin listener")
    }
}

async fn not_found() -> Result<actix_web::HttpResponse, AdminError> {
    Err(AdminError::NotFound("not found".into()))
}

fn log_start_warnings(store: &ConfigStore) -> anyhow::Result<()> {
    match &*store.credentials() {
        AdminCredentials::Open => tracing::warn!(
            "the admin login is disabled (server.adminAuth.enabled is false): anyone who reaches the admin path can change the gateway"
        ),
        AdminCredentials::Locked => tracing::error!(
            "config.json cannot be read as a config: the admin login is locked until the file is fixed by hand"
        ),
        credentials if credentials.is_default_password() => tracing::warn!(
            "the admin password is still the default \"admin\": it is accepted only from loopback and private networks, and the admin UI changes nothing else until it is changed (server.adminAuth.password)"
        ),
        AdminCredentials::NoConfig => tracing::error!(
            "config.json does not exist: the admin login is closed until the file is created by hand"
        ),
        AdminCredentials::Basic { .. } => {}
    }
    let on_disk = store.read()?;
    if on_disk.valid().is_none() {
        for issue in on_disk.issues() {
            tracing::warn!(path = %issue.path, problem = %issue.message, "config.json on disk is not valid");
        }
    }
    Ok(())
}

/// Re-reads config.json every `every` to notice hand edits (in blob mode: the blob, every
/// `BLOB_POLL_MS`, or `BLOB_RECOVERY_INTERVAL_MS` while it does not answer; a pending local
/// change is pushed on the way); a new valid config re-renders the Caddyfile.
async fn poll_config(store: Arc<ConfigStore>, caddy: Arc<CaddySync>, every: Duration) {
    loop {
        let wait = store.blob().map_or(every, |blob| {
            if blob.view().reachable == Some(false) {
                blob.settings().recovery
            } else {
                blob.settings().poll
            }
        });
        actix_rt::time::sleep(wait).await;
        let store = store.clone();
        let caddy = caddy.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            if store.refresh()? {
                tracing::info!("config.json changed on disk");
                caddy.apply(&store.last_good());
            }
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "could not re-read config.json")
            }
            Err(err) => tracing::warn!(error = %err, "config.json poll failed"),
        }
    }
}
