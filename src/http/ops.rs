//! The operations routes: liveness, readiness (the database and the RPC endpoint) and the
//! Prometheus page, served on the operations listener (`/healthz` on both).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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
    /// While the service is still starting: what start-up waits for (for example the chain
    /// id from an RPC endpoint that does not answer yet). Absent once it has started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting: Option<String>,
}

/// Answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Answers 200 when the database and the RPC endpoint answer, 503 otherwise (and while the
/// service is still starting, with what it waits for in `starting`). Served on the
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
    let ready = Ready { status: if ok { "ready" } else { "not_ready" }.into(), database, rpc, rates: super::rates::rate_views(&state), starting: None };
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

/// The operations listener from before the service is built: `tmai-pay run` serves it
/// first, so that while start-up waits (for an RPC endpoint that does not answer yet) a
/// supervisor sees the process alive (`/healthz` 200) and not ready (`/readyz` 503 with
/// what it waits for), not a refused connection. Once [`OpsGate::open`] hands it the
/// service's routes, it serves those.
#[derive(Debug, Clone, Default)]
pub struct OpsGate {
    inner: Arc<GateInner>,
}

#[derive(Debug, Default)]
struct GateInner {
    waiting: std::sync::RwLock<String>,
    routes: std::sync::OnceLock<Router>,
}

impl OpsGate {
    /// Records what start-up waits for now (shown by `/readyz` until the gate opens).
    pub fn waiting_for(&self, what: impl Into<String>) {
        *self.inner.waiting.write().expect("gate lock") = what.into();
    }

    /// Serves `routes` (the service's operations router) from now on.
    pub fn open(&self, routes: Router) {
        let _ = self.inner.routes.set(routes);
    }

    /// Returns the router to serve on the operations listener.
    pub fn router(&self) -> Router {
        let gate = self.clone();
        Router::new().fallback(move |request: axum::extract::Request| {
            let gate = gate.clone();
            async move { gate.answer(request).await }
        })
    }

    async fn answer(&self, request: axum::extract::Request) -> Response {
        use tower::ServiceExt;
        if let Some(routes) = self.inner.routes.get() {
            return match routes.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        match request.uri().path() {
            "/healthz" => healthz().await.into_response(),
            "/readyz" => {
                let waiting = self.inner.waiting.read().expect("gate lock").clone();
                let starting = Some(if waiting.is_empty() { "start-up".to_string() } else { waiting });
                let ready = Ready { status: "not_ready".into(), database: false, rpc: false, rates: Vec::new(), starting };
                (StatusCode::SERVICE_UNAVAILABLE, Json(ready)).into_response()
            }
            _ => super::error::ApiError::unavailable("the service is starting; see /readyz").into_response(),
        }
    }
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
