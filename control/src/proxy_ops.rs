//! Reads the proxy's ops listener (statistics, recent requests, client key limits, status) for
//! the admin UI, into the types of the proxy's ops contract; and its usage history (`/usage`),
//! whose answer (JSON or CSV) is passed on as it came, bounded in size. Only GETs, with the
//! filters of `RecentQuery` or the usage parameters control checked; never passes anything else
//! through.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proxy::config::Config;
use proxy::ops::contract::{LimitsPage, OpsStats, RecentPage, RecentQuery, Status};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::cause::{Cause, CauseCode};
use crate::errors::AdminError;
use crate::settings::loopback_for;

const OPS_TIMEOUT: Duration = Duration::from_secs(5);
/// A usage query may read a month of history; it still answers well within this.
const USAGE_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest `/usage` answer passed on.
pub const USAGE_ANSWER_LIMIT: usize = 8 * 1024 * 1024;

/// An answer of the proxy's `/usage` as it came: a success, its refusal of the query (400), or
/// its saying that it keeps no history (503 `usage_history_off`).
#[derive(Debug)]
pub struct UsageAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    pub body: Bytes,
}

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

    /// `GET /usage` with `query` (parameters control has checked). A success, a 400 or a 503
    /// in the ops error shape comes back as the proxy gave it; any other answer, a body over
    /// `USAGE_ANSWER_LIMIT`, or no answer is `ProxyOpsUnreachable`.
    pub async fn usage(
        &self,
        config: &Config,
        query: &[(&str, String)],
    ) -> Result<UsageAnswer, AdminError> {
        let base = self.base(config);
        let unreachable = |cause: Cause| AdminError::ProxyOpsUnreachable {
            url: base.clone(),
            from: self.base_from(),
            cause,
        };
        let mut response = self
            .http
            .get(format!("{base}/usage"))
            .query(query)
            .timeout(USAGE_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(Cause::of(&e)))?;
        let status = response.status();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let content_disposition = header(reqwest::header::CONTENT_DISPOSITION);
        let refusal = matches!(
            status,
            reqwest::StatusCode::BAD_REQUEST | reqwest::StatusCode::SERVICE_UNAVAILABLE
        ) && content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"));
        if !status.is_success() && !refusal {
            return Err(unreachable(Cause::new(
                CauseCode::Answered,
                status.to_string(),
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n > USAGE_ANSWER_LIMIT as u64)
        {
            return Err(unreachable(too_large()));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(Cause::unreadable(&e)))?
        {
            if body.len() + chunk.len() > USAGE_ANSWER_LIMIT {
                return Err(unreachable(too_large()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(UsageAnswer {
            status: status.as_u16(),
            content_type,
            content_disposition,
            body: body.freeze(),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        config: &Config,
        path: &str,
        query: &impl Serialize,
    ) -> Result<T, AdminError> {
        let base = self.base(config);
        let unreachable = |cause: Cause| AdminError::ProxyOpsUnreachable {
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
            .map_err(|e| unreachable(Cause::of(&e)))?;
        if !response.status().is_success() {
            return Err(unreachable(Cause::new(
                CauseCode::Answered,
                response.status().to_string(),
            )));
        }
        response
            .json()
            .await
            .map_err(|e| unreachable(Cause::unreadable(&e)))
    }
}

fn too_large() -> Cause {
    Cause::new(
        CauseCode::AnswerTooLarge,
        (USAGE_ANSWER_LIMIT / (1024 * 1024)).to_string(),
    )
}
