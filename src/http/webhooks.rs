//! Merchant routes for webhooks out: endpoints (create, list, read, update, delete, rotate
//! the secret) and their delivery log (the events, and their redelivery, are in
//! [`super::events`]). All need an API key.

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    routing::{get, post},
};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
};
use crate::{
    notify::{self, targets},
    store::webhooks::{
        DeliveryStatus, deliveries,
        deliveries::{Attempt, Delivery},
        endpoints,
        endpoints::{Endpoint, Patch},
    },
};

fn endpoint_missing(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook endpoint {id}"))
}

/// The form of an endpoint URL the document states (`url`'s `pattern` in both request
/// bodies; a unit test keeps them equal): an http(s) URL whose host is a dotted name of
/// letter-led labels or a dotted-quad IPv4 address, an optional port, and a path and
/// query of visible ASCII other than `#` (anything else percent-encoded; no fragment).
/// The class is spelled out rather than `[^#\s]`: `\s` differs between the document's
/// dialect (ECMA-262, where U+0085 is not white space) and Rust's (where it is), and the
/// two must agree on every string. A URL parser is more lenient (it takes `*` in a host, say), so the text is checked
/// against the stated form before it is parsed.
const URL_PATTERN: &str = "^https?://([A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?([/?][!-\"$-~]*)?$";

static URL_FORM: LazyLock<Regex> = LazyLock::new(|| Regex::new(URL_PATTERN).expect("the documented URL pattern compiles"));

async fn checked_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    // The parser's checks first: they name what is wrong (scheme, credentials, a private
    // address); what the parser takes and the stated form does not is refused after.
    let url = targets::check_url(raw, state.webhooks.allow_private_targets).await?;
    if !URL_FORM.is_match(raw) {
        return Err(ApiError::invalid(
            "url must be http(s)://host[:port][/path] with a host name of letters, digits and hyphens (each label led by a letter) or a dotted IPv4 address",
        ));
    }
    Ok(url.to_string())
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
    /// Where to POST events: an https (or http) URL on a public address, without
    /// credentials or a #fragment, up to 2048 characters.
    #[schema(
        max_length = 2048,
        pattern = "^https?://([A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?([/?][!-\"$-~]*)?$"
    )]
    pub url: String,
    /// Event names or families (`subscription.*`) to receive; leave out for every event.
    #[schema(min_items = 1)]
    pub event_types: Option<Vec<String>>,
    /// Free text, up to 500 characters.
    #[schema(max_length = 500)]
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
    let (endpoint, secret) = notify::endpoints::create(&state.db, &url, &description, filter, state.clock.now() as i64).await?;
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
    /// New URL (as for a new endpoint).
    #[schema(
        max_length = 2048,
        pattern = "^https?://([A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?([/?][!-\"$-~]*)?$"
    )]
    pub url: Option<String>,
    /// New filter; `null` to receive every event.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<Vec<String>>, min_items = 1)]
    pub event_types: Option<Option<Vec<String>>>,
    /// New description, up to 500 characters.
    #[schema(max_length = 500)]
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
    let (secret, until) = notify::endpoints::rotate(&state.db, &id, state.clock.now() as i64, state.webhooks.rotation_overlap_secs)
        .await?
        .ok_or_else(|| endpoint_missing(&id))?;
    tracing::info!(endpoint = %id, "webhook secret rotated");
    Ok(Json(RotatedSecret { secret, previous_secret_until: until }))
}

/// Paging of the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only entries with an id below this (the previous page's `next_before`).
    pub before: Option<i64>,
    /// Deliveries only: `pending`, `delivered`, `failed` or `canceled`.
    #[param(pattern = "^(pending|delivered|failed|canceled)$")]
    pub status: Option<String>,
    /// Attempts only: the attempts of one event.
    pub event_id: Option<String>,
}

fn log_query(query: Result<Query<LogQuery>, QueryRejection>) -> Result<(LogQuery, i64), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let limit = super::params::page_limit(query.limit)?;
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
    let status = query
        .status
        .as_deref()
        .map(str::parse::<DeliveryStatus>)
        .transpose()
        .map_err(|_| ApiError::invalid("status must be pending, delivered, failed or canceled"))?;
    if query.event_id.is_some() {
        return Err(ApiError::invalid("event_id filters attempts; see /v1/webhook-endpoints/{id}/attempts"));
    }
    known_endpoint(&state, &id).await?;
    let deliveries = deliveries::list(&state.db, &id, status, query.before, limit).await?;
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
    let attempts = deliveries::attempts(&state.db, &id, query.event_id.as_deref(), query.before, limit).await?;
    let next_before = (attempts.len() as i64 == limit).then(|| attempts.last().map(|a| a.id)).flatten();
    Ok(Json(AttemptPage { attempts, next_before }))
}

async fn known_endpoint(state: &AppState, id: &str) -> Result<(), ApiError> {
    // Deleted endpoints keep their log.
    if endpoints::ever_existed(&state.db, id).await? { Ok(()) } else { Err(endpoint_missing(id)) }
}

/// Returns the webhook endpoint routes (merchant: behind the API key).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook-endpoints", post(create_endpoint).get(list_endpoints))
        .route("/v1/webhook-endpoints/{id}", get(get_endpoint).patch(update_endpoint).delete(delete_endpoint))
        .route("/v1/webhook-endpoints/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/webhook-endpoints/{id}/deliveries", get(list_deliveries))
        .route("/v1/webhook-endpoints/{id}/attempts", get(list_attempts))
}

/// The webhook endpoint routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(create_endpoint, list_endpoints, get_endpoint, update_endpoint, delete_endpoint, rotate_secret, list_deliveries, list_attempts))]
pub(super) struct Api;

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    fn url_pattern_of(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> String {
        let json = serde_json::to_value(schema).unwrap();
        json["properties"]["url"]["pattern"].as_str().expect("url has a pattern").to_string()
    }

    #[test]
    fn the_checked_url_form_is_the_documented_one() {
        assert_eq!(url_pattern_of(CreateEndpoint::schema()), URL_PATTERN);
        assert_eq!(url_pattern_of(UpdateEndpoint::schema()), URL_PATTERN);
    }

    #[test]
    fn urls_a_parser_would_take_but_the_document_refuses_are_refused() {
        for good in ["https://hooks.example.com/tmai", "http://127.0.0.1:8080/in?x=1", "https://a.b-c.io:65535", "https://example.com?q"] {
            assert!(URL_FORM.is_match(good), "{good}");
        }
        for bad in [
            "https://251.227.240.252*",
            "https://exa*mple.com/",
            "https://[::1]/",
            "https://256.1.1.1/",
            "https://example.com:65536/",
            "https://example.com/#frag",
            " https://example.com/",
            "https://user@example.com/",
            "ftp://example.com/",
            "https://-bad.example/",
            "http://d.q.yk0i.c?\u{85}\u{9f}}",
            "https://example.com/caf\u{e9}",
            "https://example.com/a b",
        ] {
            assert!(!URL_FORM.is_match(bad), "{bad}");
        }
    }
}
