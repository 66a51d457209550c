//! Reads the proxy's ops listener (statistics, recent requests, status) for the admin UI.
//! Only GETs, with the filters the proxy knows; never passes anything else through.

use std::time::Duration;

use proxy::config::Config;
use serde_json::Value;
use url::Url;

use crate::caddy::admin::describe;
use crate::errors::AdminError;
use crate::settings::loopback_for;

const OPS_TIMEOUT: Duration = Duration::from_secs(5);

/// The query parameters `/requests` accepts.
pub const REQUEST_FILTERS: [&str; 6] = ["level", "model", "request_id", "key_id", "since", "limit"];

#[derive(Clone)]
pub struct ProxyOps {
    fixed: Option<Url>,
    http: reqwest::Client,
}

impl ProxyOps {
    pub fn new(fixed: Option<Url>, http: reqwest::Client) -> ProxyOps {
        ProxyOps { fixed, http }
    }

    /// `PROXY_OPS_URL`, else `server.ops` of the config (a wildcard host reached on loopback).
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

    pub async fn get_json(
        &self,
        config: &Config,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Value, AdminError> {
        let base = self.base(config);
        let unreachable = |cause: String| AdminError::ProxyOpsUnreachable {
            url: base.clone(),
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
