//! Keeps the Caddyfile in the data dir in step with config.json: renders it from each new
//! config, writes it only when its text changed, and hands it to the loader. Blocking (file
//! I/O): call from a blocking pool. Never writes a Caddyfile that failed to render.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use proxy::config::Config;
use proxy::process::atomic_file::write_atomically;
use proxy::process::clock::now_ms;
use serde::Serialize;

use super::caddyfile::{self, RenderSettings};
use super::loader::{CaddyLoader, Caddyfile};

/// The inputs of `RenderSettings` that do not change while control runs.
#[derive(Debug, Clone)]
pub struct RenderInputs {
    pub config_path: PathBuf,
    pub admin_listen: String,
    pub http_port: u16,
    pub control_upstream: String,
    pub proxy_upstream: Option<String>,
    pub storage_dir: PathBuf,
    pub tls_log: PathBuf,
    pub tls_internal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenderOutcome {
    pub at_ms: u64,
    pub ok: bool,
    pub error: Option<String>,
    /// The file's text changed and was written.
    pub written: bool,
    pub sha256: Option<String>,
}

pub struct CaddySync {
    template: String,
    caddyfile_path: PathBuf,
    inputs: RenderInputs,
    loader: Arc<CaddyLoader>,
    lock: Mutex<()>,
    last: Mutex<Option<RenderOutcome>>,
}

impl CaddySync {
    pub fn new(
        template: String,
        caddyfile_path: PathBuf,
        inputs: RenderInputs,
        loader: Arc<CaddyLoader>,
    ) -> CaddySync {
        CaddySync {
            template,
            caddyfile_path,
            inputs,
            loader,
            lock: Mutex::new(()),
            last: Mutex::new(None),
        }
    }

    pub fn caddyfile_path(&self) -> &std::path::Path {
        &self.caddyfile_path
    }

    pub fn inputs(&self) -> &RenderInputs {
        &self.inputs
    }

    pub fn loader(&self) -> &Arc<CaddyLoader> {
        &self.loader
    }

    pub fn last_render(&self) -> Option<RenderOutcome> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Renders the Caddyfile for `config`; the text, or why it cannot be rendered.
    pub fn render(&self, config: &Config) -> Result<String, caddyfile::RenderError> {
        let i = &self.inputs;
        caddyfile::render(
            &self.template,
            config,
            &RenderSettings {
                config_path: &i.config_path,
                admin_listen: i.admin_listen.clone(),
                http_port: i.http_port,
                control_upstream: i.control_upstream.clone(),
                proxy_upstream: i.proxy_upstream.clone(),
                storage_dir: &i.storage_dir,
                tls_log: &i.tls_log,
                tls_internal: i.tls_internal,
            },
        )
    }

    /// Renders, writes when changed, and submits the text to the loader.
    pub fn apply(&self, config: &Config) -> RenderOutcome {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = match self.render(config) {
            Err(err) => {
                tracing::error!(error = %err, "the Caddyfile could not be rendered; Caddy keeps its config");
                RenderOutcome {
                    at_ms: now_ms(),
                    ok: false,
                    error: Some(err.to_string()),
                    written: false,
                    sha256: None,
                }
            }
            Ok(text) => {
                let on_disk = std::fs::read_to_string(&self.caddyfile_path).ok();
                let mut outcome = RenderOutcome {
                    at_ms: now_ms(),
                    ok: true,
                    error: None,
                    written: false,
                    sha256: None,
                };
                if on_disk.as_deref() != Some(text.as_str()) {
                    match write_atomically(&self.caddyfile_path, text.as_bytes()) {
                        Ok(()) => {
                            outcome.written = true;
                            tracing::info!(path = %self.caddyfile_path.display(), "Caddyfile written");
                        }
                        Err(err) => {
                            let message =
                                format!("writing {}: {err:#}", self.caddyfile_path.display());
                            tracing::error!(error = %message, "the Caddyfile could not be written");
                            outcome.ok = false;
                            outcome.error = Some(message);
                        }
                    }
                }
                let caddyfile = Caddyfile::new(text);
                outcome.sha256 = Some(caddyfile.sha256.clone());
                self.loader.submit(caddyfile);
                outcome
            }
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome.clone());
        outcome
    }
}
