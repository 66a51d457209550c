//! Reads the proxy's ops listener (statistics, recent requests, client key limits, status) for
//! the admin UI, into the types of the proxy's ops contract. Only GETs, with the filters of
//! `RecentQuery`; never passes anything else through.

use std::time::Duration;

use proxy::config::Config;
use proxy::ops::contract::{LimitsPage, OpsStats, RecentPage, RecentQuery, Status};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::caddy::admin::describe;
use crate::errors::AdminError;
use crate::settings::loopback_for;

const OPS_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the ops listener's address comes from when no variable sets it.
const FROM_CONFIG: &str = "server.ops in config.json";

#[derive(Clone)]
pub struct ProxyOps {
    fixed: Option<Url>,
    /// The variable `fixed` came from.
    fixed_from: &'static str,
    http: reqwest::Client,
}

impl ProxyOps {
    pub fn new(fixed: Option<Url>, fixed_from: &'static str, http: reqwest::Client) -> ProxyOps {
        ProxyOps {
            fixed,
            fixed_from,
            http,
        }
    }

    /// Where `base` comes from: a variable, or the config.
    pub fn base_from(&self) -> &'static str {
        if self.fixed.is_some() {
            self.fixed_from
        } else {
            FROM_CONFIG
        }
    }

    /// `PROXY_OPS_URL` or `PROXY_OPS_LISTEN`, else `server.ops` of the config (a wildcard host
    /// reached on loopback).
    pub fn base(&self, config: &Config) -> String {
        match &self.fixed {
            Some(url) => url.as_str().trim_end_matches('/').to_string(),
            None => format!(
                "http://{}:{}",
                loopback_for(config.server.ops.host()),
                config.server.ops.port()
            ),
        }
    }

    pub async fn status(&self, config: &Config) -> Result<Status, AdminError> {
        self.get(config, "/status", &()).await
    }

    pub async fn stats(&self, config: &Config) -> Result<OpsStats, AdminError> {
        self.get(config, "/stats", &()).await
    }

    pub async fn limits(&self, config: &Config) -> Result<LimitsPage, AdminError> {
        self.get(config, "/limits", &()).await
    }

    pub async fn recent(
        &self,
        config: &Config,
        query: &RecentQuery,
    ) -> Result<RecentPage, AdminError> {
        self.get(config, "/requests", query).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        config: &Config,
        path: &str,
        query: &impl Serialize,
    ) -> Result<T, AdminError> {
        let base = self.base(config);
        let unreachable = |cause: String| AdminError::ProxyOpsUnreachable {
            url: base.clone(),
            from: self.base_from(),
            cause,
        };
        let response = self
            .http
            .get(format!("{base}{path}"))
            .query(query)
            .timeout(OPS_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(describe(&e)))?;
        if !response.status().is_success() {
            return Err(unreachable(format!("answered {}", response.status())));
        }
        response
            .json()
            .await
            .map_err(|e| unreachable(format!("unreadable answer: {}", describe(&e))))
    }
}
