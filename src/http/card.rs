//! `POST /v1/card/webhook`: the card processor's events (Stripe's signature scheme). The
//! signature is checked over the raw body before anything is parsed; the event is applied
//! in one write transaction with its `card_events` row ([`crate::billing::card`]).

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
};
use crate::billing::card::{self, CardEvent};

/// What the service did with an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardWebhookResponse {
    /// `processed`, `acknowledged` (valid, nothing to change), `ignored` (an event type not
    /// handled) or `duplicate` (this event id was handled before; nothing changed).
    pub status: String,
    /// What the event did: `trialing`, `activated`, `renewed`, `upgraded`,
    /// `downgrade_scheduled`, `plan_changed`, `plan_recorded`, `canceled`, `uncanceled`,
    /// `past_due`, `pending` (a session not paid yet), `payment_failed`,
    /// `trial_already_used`, `trial_while_subscribed`, `deferred_start` (a switch from
    /// crypto: the card plan starts when the paid time ends), `first_invoice`, `not_a_renewal`,
    /// `unchanged`, `unknown_subscription`, `already_canceled`, `already_ended`,
    /// `not_canceled`, `no_subscription` or `ignored` (a subscription update that did two
    /// things names both, comma-separated).
    pub outcome: String,
    /// The processor's event id.
    pub event_id: String,
    /// The member's wallet, when the event named one.
    pub wallet: Option<String>,
}

/// Receives a card-processor event (Stripe). Verified with the `Stripe-Signature` header
/// (HMAC-SHA256 of `t.body` with `card.webhook_secret`, `card.tolerance_secs` of clock
/// skew); each event id is applied once, a replay answers `duplicate`. Without a configured
/// secret the route answers 404 `card_not_configured`: card payments are off on this
/// service, which is the operator's choice and not a server fault (a processor retries any
/// non-2xx answer, so events sent before the secret is set are delivered once it is).
#[utoipa::path(
    post,
    path = "/v1/card/webhook",
    tag = "card",
    request_body(content = serde_json::Value, description = "a Stripe event: {id, type, data: {object}}", content_type = "application/json"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix time>,v1=<hex HMAC-SHA256 of \"t.body\">[,v1=…]")),
    responses(
        (status = 200, body = CardWebhookResponse),
        (status = 400, body = ErrorBody, description = "bad, missing or stale signature; a body that is not an event; a bad wallet in the metadata"),
        (status = 413, body = ErrorBody, description = "the event is larger than card.body_limit_bytes"),
        (status = 429, body = ErrorBody, description = "over card.rate_limit_per_second for this client; retry after Retry-After"),
        (status = 422, body = ErrorBody, description = "metadata missing or naming a plan that does not exist; a processor price that is no plan's card_price_id; an amount or currency that is not the plan's card price"),
        (status = 404, body = ErrorBody, description = "`card_not_configured`: card payments are off on this service (no card.webhook_secret)"),
    )
)]
pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Json<CardWebhookResponse>, ApiError> {
    // Over `card.body_limit_bytes` (or unreadable): refused before anything is checked or
    // recorded; the processor retries, so raising the limit delivers it later.
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            tracing::warn!(limit = state.card.body_limit_bytes, "card webhook body over card.body_limit_bytes; refused");
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the event is larger than card.body_limit_bytes ({} bytes)", state.card.body_limit_bytes),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "the request body could not be read")
        }
    })?;
    // A request without a signature is refused as such (400) before the configuration is
    // looked at: only a signed event learns that card payments are off.
    if !headers.contains_key("stripe-signature") {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_signature", "missing Stripe-Signature header"));
    }
    let Some(secret) = &state.card.webhook_secret else {
        tracing::warn!("card webhook received but card.webhook_secret is not set; refused");
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "card_not_configured",
            "card webhooks are not configured: set [card] webhook_secret (TMAI_PAY__CARD__WEBHOOK_SECRET) to the endpoint's signing secret",
        ));
    };
    let now = state.clock.now();
    let header = headers.get("stripe-signature").map(|v| v.to_str().unwrap_or(""));
    if let Err(e) = card::verify_signature(header, &body, secret.expose_secret().as_bytes(), now, state.card.tolerance_secs) {
        tracing::warn!(error = %e, "card webhook refused");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_signature", e.to_string()));
    }
    let event = CardEvent::parse(&body)?;
    let mut tx = state.db.begin_write().await?;
    // On an error the transaction is dropped uncommitted: nothing is recorded, and the
    // processor's retry can succeed once the cause is fixed.
    let handled = card::handle(&mut tx, &state.catalog, &state.card, &event, state.http.public_url(), now).await?;
    tx.commit().await?;
    tracing::info!(event = %event.id, event_type = %event.event_type, status = handled.status, outcome = %handled.outcome, "card event");
    Ok(Json(CardWebhookResponse {
        status: handled.status.into(),
        outcome: handled.outcome.to_string(),
        event_id: event.id,
        wallet: handled.wallet.map(|w| w.to_string()),
    }))
}

/// Returns the card webhook route with its body limit (`card.body_limit_bytes`). Signed by
/// the processor, so behind no API key; rate-limited per client with a budget of its own
/// (`card.rate_limit_per_second`, by [`super::router`]).
pub(super) fn router(body_limit_bytes: usize) -> Router<AppState> {
    Router::new().route("/v1/card/webhook", post(webhook)).route_layer(DefaultBodyLimit::max(body_limit_bytes))
}

/// The card webhook route's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(webhook))]
pub(super) struct Api;
