//! The merchant's event log (API key): `GET /v1/events` in the order events were written,
//! for reconciliation, and `POST /v1/events/{id}/redeliver`, which queues an event to the
//! webhook endpoints again.

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
};
use crate::{notify::endpoints, store::outbox};

/// `POST /v1/events/{id}/redeliver`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeliver {
    /// Only to this endpoint; leave out for every enabled endpoint that takes the event.
    pub endpoint_id: Option<String>,
}

/// The deliveries queued by a redelivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// New delivery ids; each carries the event's original `webhook-id`.
    pub deliveries: Vec<i64>,
}

/// Queues an event again (same `webhook-id`), behind what each endpoint has pending.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "merchant", params(("id" = String, Path, description = "Event id (evt_…)")),
    request_body(content = Redeliver, description = "Optional; an empty body redelivers to every endpoint that takes the event"),
    security(("api_key" = [])), responses(
    (status = 202, body = Redelivered), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody),
))]
pub async fn redeliver(State(state): State<AppState>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<(StatusCode, Json<Redelivered>), ApiError> {
    let body: Redeliver = if body.iter().all(u8::is_ascii_whitespace) {
        Redeliver::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))?
    };
    let deliveries = endpoints::redeliver(&state.db, &id, body.endpoint_id.as_deref(), state.clock.now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(Redelivered { deliveries })))
}

/// An event, as delivered.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Position in the event log.
    pub seq: i64,
    /// Event id (the `webhook-id` of its deliveries).
    pub id: String,
    /// Event name.
    pub r#type: String,
    /// Unix time written.
    pub created_at: i64,
    /// The delivered body: `{"id", "type", "data"}`.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events, oldest first.
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Paging of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this position.
    pub after: Option<i64>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only events of this name.
    pub r#type: Option<String>,
}

/// Lists events in the order they were written, for reconciliation.
#[utoipa::path(get, path = "/v1/events", tag = "merchant", params(EventsQuery), security(("api_key" = [])), responses(
    (status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
))]
pub async fn list_events(State(state): State<AppState>, query: Result<Query<EventsQuery>, QueryRejection>) -> Result<Json<EventPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let limit = super::params::page_limit(query.limit)?;
    if let Some(t) = &query.r#type
        && t.parse::<crate::events::EventType>().is_err()
    {
        return Err(ApiError::invalid(format!("type: unknown event {t:?}")));
    }
    let events: Vec<EventView> = outbox::page(&state.db, query.after.unwrap_or(0), query.r#type.as_deref(), i64::from(limit))
        .await?
        .into_iter()
        .map(|e| EventView { seq: e.seq, id: e.id, r#type: e.event_type, created_at: e.created_at, body: e.payload })
        .collect();
    let next_after = (events.len() == limit as usize).then(|| events.last().map(|e| e.seq)).flatten();
    Ok(Json(EventPage { events, next_after }))
}

/// Returns the event routes (merchant: behind the API key).
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/events", get(list_events)).route("/v1/events/{id}/redeliver", post(redeliver))
}

/// The event routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(redeliver, list_events))]
pub(super) struct Api;
