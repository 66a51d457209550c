//! The ops listener (loopback by default): statistics as JSON and Prometheus text, the usage
//! history over time ranges, recent requests with filters, the client keys' limits, config
//! status and readiness. Never serves client traffic, never shows a secret.

pub mod contract;
pub mod metrics;
pub mod usage;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpResponse, web};

use crate::bookkeeping::accounting::Accounting;
use crate::downstream::body_budget::BodyBudget;
use crate::rewrite::images::ImageService;
use crate::snapshot::Shared;
use contract::{LimitsPage, OpsStats, Readiness, RecentPage, RecentQuery, Status};
use metrics::Metrics;

pub struct OpsState {
    pub shared: Arc<Shared>,
    pub accounting: Arc<Accounting>,
    pub images: Arc<ImageService>,
    pub body_budget: Arc<BodyBudget>,
    pub metrics: Metrics,
    pub started: Instant,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats", web::get().to(stats))
        .route("/metrics", web::get().to(metrics))
        .route("/requests", web::get().to(requests))
        .route("/limits", web::get().to(limits))
        .route("/usage", web::get().to(usage::usage))
        .route("/status", web::get().to(status))
        .route("/readyz", web::get().to(readyz));
}

async fn stats(state: web::Data<OpsState>) -> HttpResponse {
    let accounting = &state.accounting;
    accounting.stats.set_budgets(accounting.limiter.budgets());
    HttpResponse::Ok().json(OpsStats {
        usage: state.accounting.stats.snapshot(),
        images: state.images.stats().snapshot(),
        deployments: state.shared.pools.stats(),
        replicas: Vec::new(),
    })
}

async fn metrics(state: web::Data<OpsState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type(metrics::CONTENT_TYPE)
            .body(text),
        Err(err) => {
            tracing::error!(error = %err, "encoding the metrics failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn requests(state: web::Data<OpsState>, query: web::Query<RecentQuery>) -> HttpResponse {
    HttpResponse::Ok().json(RecentPage {
        data: state.accounting.recent.query(&query),
    })
}

async fn limits(state: web::Data<OpsState>) -> HttpResponse {
    let snapshot = state.shared.snapshot.load();
    HttpResponse::Ok().json(LimitsPage {
        keys: state
            .accounting
            .limiter
            .usage(&snapshot.config.client_keys, &snapshot.config.limits)
            .await,
    })
}

async fn status(state: web::Data<OpsState>) -> HttpResponse {
    let snapshot = state.shared.snapshot.load();
    HttpResponse::Ok().json(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s: state.started.elapsed().as_secs(),
        config: state.shared.status(),
        models: snapshot.config.models.len(),
        upstreams: snapshot.config.upstreams.len(),
        client_keys: snapshot.config.client_keys.len(),
        body_bytes_in_flight: state.body_budget.in_flight() as u64,
        body_memory_limit: state.body_budget.limit() as u64,
        limits: state.accounting.limiter.status(&snapshot.config.limits),
    })
}

async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    match state.shared.readiness.check() {
        Ok(()) => HttpResponse::Ok().json(Readiness {
            ready: true,
            reason: None,
        }),
        Err(reason) => HttpResponse::ServiceUnavailable().json(Readiness {
            ready: false,
            reason: Some(reason.into()),
        }),
    }
}
