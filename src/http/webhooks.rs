//! Merchant routes for webhooks out: endpoints (create, list, read, update, delete, rotate
//! the secret), the delivery log, redelivery, and the event list. All need an API key.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
};
use crate::{
    notify::{
        self,
        endpoints::{self, Attempt, Delivery, Endpoint, Patch},
        targets,
    },
    store::outbox,
};

fn endpoint_missing(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook endpoint {id}"))
}

async fn checked_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    Ok(targets::check_url(raw, state.webhooks.allow_private_targets).await?.to_string())
}

fn checked_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description {
        Some(d) if d.chars().count() > 500 => Err(ApiError::invalid("description must be at most 500 characters")),
        other => Ok(other),
    }
}

fn checked_filter(filter: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    filter.map(|f| notify::check_filter(&f).map_err(ApiError::invalid)).transpose()
}

/// `POST /v1/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where to POST events: an https (or http) URL on a public address.
    pub url: String,
    /// Event names or families (`subscription.*`) to receive; leave out for every event.
    pub event_types: Option<Vec<String>>,
    /// Free text, up to 500 characters.
    pub description: Option<String>,
}

/// A new endpoint and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The `whsec_…` secret that signs its deliveries (Standard Webhooks). Store it now: it
    /// is not shown again.
    pub secret: String,
}

/// Registers an endpoint; it receives the events written from now on.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "merchant", request_body = CreateEndpoint, security(("api_key" = [])), responses(
    (status = 201, body = CreatedEndpoint), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
))]
pub async fn create_endpoint(State(state): State<AppState>, ApiJson(body): ApiJson<CreateEndpoint>) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    let url = checked_url(&state, &body.url).await?;
    let filter = checked_filter(body.event_types)?;
    let description = checked_description(body.description)?.unwrap_or_default();
    let (endpoint, secret) = endpoints::create(&state.db, &url, &description, filter, state.clock.now() as i64).await?;
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint registered");
    Ok((StatusCode::CREATED, Json(CreatedEndpoint { endpoint, secret })))
}

/// The registered endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Endpoints, oldest first.
    pub endpoints: Vec<Endpoint>,
}

/// Lists the endpoints.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "merchant", security(("api_key" = [])), responses(
    (status = 200, body = EndpointList), (status = 401, body = ErrorBody),
))]
pub async fn list_endpoints(State(state): State<AppState>) -> Result<Json<EndpointList>, ApiError> {
    Ok(Json(EndpointList { endpoints: endpoints::list(&state.db).await? }))
}

/// Returns one endpoint.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "merchant", params(("id" = String, Path, description = "Endpoint id")),
    security(("api_key" = [])), responses((status = 200, body = Endpoint), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_endpoint(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Endpoint>, ApiError> {
    endpoints::get(&state.db, &id).await?.map(Json).ok_or_else(|| endpoint_missing(&id))
}

fn some_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1/webhook-endpoints/{id}`: fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// New URL.
    pub url: Option<String>,
    /// New filter; `null` to receive every event.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    /// New description.
    pub description: Option<String>,
    /// `false` stops deliveries and cancels what is pending; `true` delivers the events
    /// written from then on (also after a 410 disabled it). Missed events can be redelivered.
    pub enabled: Option<bool>,
}

/// Updates an endpoint.
#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "merchant", params(("id" = String, Path, description = "Endpoint id")),
    request_body = UpdateEndpoint, security(("api_key" = [])), responses(
    (status = 200, body = Endpoint), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateEndpoint>,
) -> Result<Json<Endpoint>, ApiError> {
    let url = match &body.url {
        Some(raw) => Some(checked_url(&state, raw).await?),
        None => None,
    };
    let event_types = match body.event_types {
        Some(filter) => Some(checked_filter(filter)?),
        None => None,
    };
    let patch = Patch { url, description: checked_description(body.description)?, event_types, enabled: body.enabled };
    endpoints::update(&state.db, &id, &patch, state.clock.now_ms()).await?.map(Json).ok_or_else(|| endpoint_missing(&id))
}

/// Deletes an endpoint; its pending deliveries are canceled (its log stays readable).
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "merchant", params(("id" = String, Path, description = "Endpoint id")),
    security(("api_key" = [])), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_endpoint(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if endpoints::delete(&state.db, &id, state.clock.now_ms()).await? {
        tracing::info!(endpoint = %id, "webhook endpoint deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(endpoint_missing(&id))
    }
}

/// A rotated secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new `whsec_…` secret, shown this once.
    pub secret: String,
    /// Until this unix time deliveries carry a signature by the previous secret as well.
    pub previous_secret_until: i64,
}

/// Gives the endpoint a new secret; deliveries are signed with both secrets until the
/// overlap (`webhooks.rotation_overlap_secs`) ends, so the receiver can switch at leisure.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "merchant", params(("id" = String, Path, description = "Endpoint id")),
    security(("api_key" = [])), responses((status = 200, body = RotatedSecret), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RotatedSecret>, ApiError> {
    let (secret, until) =
        endpoints::rotate(&state.db, &id, state.clock.now() as i64, state.webhooks.rotation_overlap_secs).await?.ok_or_else(|| endpoint_missing(&id))?;
    tracing::info!(endpoint = %id, "webhook secret rotated");
    Ok(Json(RotatedSecret { secret, previous_secret_until: until }))
}

/// Paging of the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Page size, 1–500 (default 100).
    pub limit: Option<u32>,
    /// Only entries with an id below this (the previous page's `next_before`).
    pub before: Option<i64>,
    /// Deliveries only: `pending`, `delivered`, `failed` or `canceled`.
    pub status: Option<String>,
    /// Attempts only: the attempts of one event.
    pub event_id: Option<String>,
}

fn log_query(query: Result<Query<LogQuery>, QueryRejection>) -> Result<(LogQuery, i64), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let limit = super::reads::page_limit(query.limit)?;
    Ok((query, i64::from(limit)))
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Deliveries, newest first.
    pub deliveries: Vec<Delivery>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Lists an endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "merchant", params(("id" = String, Path, description = "Endpoint id"), LogQuery),
    security(("api_key" = [])), responses(
    (status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let (query, limit) = log_query(query)?;
    if let Some(s) = &query.status
        && !["pending", "delivered", "failed", "canceled"].contains(&s.as_str())
    {
        return Err(ApiError::invalid("status must be pending, delivered, failed or canceled"));
    }
    if query.event_id.is_some() {
        return Err(ApiError::invalid("event_id filters attempts; see /v1/webhook-endpoints/{id}/attempts"));
    }
    known_endpoint(&state, &id).await?;
    let deliveries = endpoints::deliveries(&state.db, &id, query.status.as_deref(), query.before, limit).await?;
    let next_before = (deliveries.len() as i64 == limit).then(|| deliveries.last().map(|d| d.id)).flatten();
    Ok(Json(DeliveryPage { deliveries, next_before }))
}

/// A page of attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptPage {
    /// Attempts, newest first.
    pub attempts: Vec<Attempt>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// The delivery log: every attempt to an endpoint with its status, latency and the first
/// bytes of the answer, newest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/attempts", tag = "merchant", params(("id" = String, Path, description = "Endpoint id"), LogQuery),
    security(("api_key" = [])), responses(
    (status = 200, body = AttemptPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn list_attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<AttemptPage>, ApiError> {
    let (query, limit) = log_query(query)?;
    if query.status.is_some() {
        return Err(ApiError::invalid("status filters deliveries; see /v1/webhook-endpoints/{id}/deliveries"));
    }
    known_endpoint(&state, &id).await?;
    let attempts = endpoints::attempts(&state.db, &id, query.event_id.as_deref(), query.before, limit).await?;
    let next_before = (attempts.len() as i64 == limit).then(|| attempts.last().map(|a| a.id)).flatten();
    Ok(Json(AttemptPage { attempts, next_before }))
}

async fn known_endpoint(state: &AppState, id: &str) -> Result<(), ApiError> {
    // Deleted endpoints keep their log.
    if endpoints::ever_existed(&state.db, id).await? { Ok(()) } else { Err(endpoint_missing(id)) }
}

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
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this position.
    pub after: Option<i64>,
    /// Page size, 1–500 (default 100).
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
    let limit = super::reads::page_limit(query.limit)?;
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
