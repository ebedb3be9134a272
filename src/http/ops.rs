//! The operations routes: liveness, readiness (the database and the RPC endpoint) and the
//! Prometheus page, served on the operations listener (`/healthz` on both).

use std::time::{Duration, Instant};

use alloy::providers::Provider;
use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::{AppState, prometheus};

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
}

/// Readiness: what the service depends on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    /// The database answers.
    pub database: bool,
    /// The RPC endpoint answers.
    pub rpc: bool,
    /// Each priced token's market rate: an unhealthy one refuses quotes in that token only
    /// (it does not make the service unready).
    pub rates: Vec<super::rates::RateView>,
}

/// Answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Answers 200 when the database and the RPC endpoint answer, 503 otherwise. Served on the
/// operations listener (`http.ops_bind`) only; the answer is reused for a second.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let mut cached = state.ready.lock().await;
    if let Some((at, status, ready)) = cached.as_ref()
        && at.elapsed() < READY_CACHE
    {
        return (*status, Json(ready.clone()));
    }
    let database = state.db.ping().await;
    let rpc = tokio::time::timeout(Duration::from_secs(2), state.provider.get_block_number()).await.is_ok_and(|r| r.is_ok());
    let ok = database && rpc;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let ready = Ready { status: if ok { "ready" } else { "not_ready" }.into(), database, rpc, rates: super::rates::rate_views(&state) };
    *cached = Some((Instant::now(), status, ready.clone()));
    (status, Json(ready))
}

/// How long a readiness answer is reused.
const READY_CACHE: Duration = Duration::from_secs(1);

async fn metrics_page(State(state): State<AppState>) -> Response {
    // Gauges read on scrape: watcher lag, queue depths.
    if let Some(head) = state.head().await
        && let Ok(Some(next)) = state.db.next_block(state.deployment.chain_id).await
    {
        metrics::gauge!("tmai_watcher_lag_blocks").set((head as i64 + 1 - next).max(0) as f64);
        metrics::gauge!("tmai_chain_head").set(head as f64);
    }
    let _ = crate::chain::minter::job_counts(&state.db).await;
    let _ = crate::notify::delivery::pending_gauge(&state.db).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render()).into_response()
}

/// Returns the operations listener's routes: `/healthz`, `/readyz` and `/metrics`.
pub(super) fn router() -> Router<AppState> {
    public_router().route("/readyz", get(readyz)).route("/metrics", get(metrics_page))
}

/// Returns what the public listener serves of them: `/healthz` only.
pub(super) fn public_router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// The operations routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(healthz, readyz))]
pub(super) struct Api;
