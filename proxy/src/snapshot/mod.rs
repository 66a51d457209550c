//! Everything a request needs that changes together on reload (config, key table, upstream
//! credentials, deployment pools), in one immutable snapshot behind an `ArcSwap`. A request loads it once.
//! Beside it: the config's status and the proxy's readiness.

pub mod blob_source;
pub mod reload;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::downstream::client_keys::ClientKeyTable;
use crate::ops::contract::ConfigStatus;
use crate::process::clock::now_ms;
use crate::upstream::credentials::{CredentialRegistry, UpstreamCredential};
use crate::upstream::pool::{ModelPool, PoolRegistry};
use arc_swap::ArcSwap;

pub struct Snapshot {
    pub config: Config,
    pub client_keys: ClientKeyTable,
    /// One per entry of `config.upstreams`, same order.
    credentials: Vec<UpstreamCredential>,
    /// One per entry of `config.models`, same order.
    pools: Vec<ModelPool>,
    pub loaded_at_ms: u64,
}

impl Snapshot {
    /// Builds the snapshot of `config`, taking credentials from `registry` (call within the
    /// async runtime: a new token cache starts fetching at once) and the deployments' health
    /// from `pools`.
    pub fn build(config: Config, registry: &CredentialRegistry, pools: &PoolRegistry) -> Snapshot {
        let auths: Vec<_> = config
            .upstreams
            .iter()
            .map(|u| u.auth.as_ref().unwrap_or(&config.auth))
            .collect();
        let credentials = registry.credentials_for(&auths);
        if config.limits.estimate_prompt_tokens {
            crate::downstream::limits::estimate::preload();
        }
        Snapshot {
            client_keys: ClientKeyTable::new(&config.client_keys),
            credentials,
            pools: pools.pools_for(&config),
            config,
            loaded_at_ms: now_ms(),
        }
    }

    pub fn credential(&self, upstream: usize) -> &UpstreamCredential {
        &self.credentials[upstream]
    }

    pub fn pool(&self, model: usize) -> &ModelPool {
        &self.pools[model]
    }
}

pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub status: Mutex<ConfigStatus>,
    pub credentials: CredentialRegistry,
    pub pools: PoolRegistry,
    pub readiness: ReadyState,
}

/// Whether a load balancer should send traffic: a config is loaded, the config source has
/// settled (in blob mode: the first read of the blob finished, or the local cache was taken
/// because Blob did not answer), and the proxy is not draining.
#[derive(Debug, Default)]
pub struct ReadyState {
    loaded: AtomicBool,
    settled: AtomicBool,
    draining: AtomicBool,
}

impl ReadyState {
    /// Ready as soon as a config is loaded: the file source has nothing more to wait for.
    pub fn settled() -> ReadyState {
        let state = ReadyState::default();
        state.source_settled();
        state
    }

    pub fn config_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    pub fn source_settled(&self) {
        self.settled.store(true, Ordering::Release);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// `Ok` when ready, else the reason (`Readiness::reason`).
    pub fn check(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::Acquire) {
            Err("draining")
        } else if !self.loaded.load(Ordering::Acquire) {
            Err("no_config")
        } else if !self.settled.load(Ordering::Acquire) {
            Err("blob_first_read")
        } else {
            Ok(())
        }
    }
}

impl Shared {
    pub fn new(
        snapshot: Snapshot,
        status: ConfigStatus,
        credentials: CredentialRegistry,
        pools: PoolRegistry,
        readiness: ReadyState,
    ) -> Shared {
        Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            status: Mutex::new(status),
            credentials,
            pools,
            readiness,
        }
    }

    pub fn status(&self) -> ConfigStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
