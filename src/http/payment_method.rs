//! Paying by card, and switching between card and crypto (issue 28 §2): `POST
//! /v1/checkouts/card` ("Pay by card" on the checkout page), and the member's
//! `GET /v1/me/payment-method`, `POST /v1/me/payment-method/card` (switch to card, the
//! first charge at the end of the paid crypto time) and `POST /v1/me/payment-method/crypto`
//! (the card subscription ends at its period end; then the member pays on-chain). The
//! decisions are [`crate::billing::card::sessions`]'; this module parses and answers.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
    params::parse_wallet,
};
use crate::{
    billing::card::sessions::{self, MIN_DEFERRAL_SECS, StartedSession},
    states::SubscriptionStatus,
    store::{self, card::CardSubscriptionStatus},
};

/// `POST /v1/checkouts/card` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCardCheckout {
    /// Plan id from `GET /v1/plans` (one with `card_available`).
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    pub plan_id: u32,
    /// The wallet that receives the plan (0x-prefixed address, not the zero address).
    #[schema(pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")]
    pub wallet: String,
    /// The merchant's own customer, in the forms `POST /v1/checkouts` takes (signed on a
    /// public page; bare with the merchant's API key).
    #[schema(pattern = "^[A-Za-z0-9_:@-]{1,64}(\\.[0-9]{1,20}\\.[0-9a-f]{64})?$", max_length = 150)]
    pub customer_ref: Option<String>,
}

/// A card Checkout Session to send the member to.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardSessionView {
    /// The processor's page: send the browser there.
    pub url: String,
    /// The processor's session id (`cs_…`).
    pub session_id: String,
    /// The plan it sells.
    pub plan_id: u32,
    /// The free trial it offers, in days (0: none; card only, once per wallet).
    pub trial_days: u32,
    /// When the card is first charged, when not at once: the trial's end, or for a switch
    /// the end of the paid crypto time (unix seconds).
    pub first_charge_at: Option<u64>,
}

impl From<StartedSession> for CardSessionView {
    fn from(s: StartedSession) -> Self {
        Self { url: s.url, session_id: s.session_id, plan_id: s.plan_id, trial_days: s.trial_days, first_charge_at: s.first_charge_at }
    }
}

/// Creates a card Checkout Session ("Pay by card" on the checkout page), subscription mode:
/// charged at once, or after the plan's free trial for a wallet that never had one and has
/// no running plan. The page sends the browser to `url`; the processor's signed
/// `checkout.session.completed` then activates the plan.
#[utoipa::path(post, path = "/v1/checkouts/card", tag = "public", request_body = CreateCardCheckout, responses(
    (status = 201, body = CardSessionView),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A signed customer_ref that is expired, tampered or not signed with this merchant's secret"),
    (status = 404, body = ErrorBody, description = "No such plan"),
    (status = 409, body = ErrorBody, description = "`card_not_offered` (the plan has no card price), `already_paying_by_card`, `customer_ref_conflict`"),
    (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
    (status = 502, body = ErrorBody, description = "`card_processor`: the processor refused or could not be reached"),
    (status = 404, body = ErrorBody, description = "`card_not_configured`: card payments are off on this service (no card.api_key); not a server fault"),
))]
pub async fn create_card_checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateCardCheckout>,
) -> Result<(StatusCode, Json<CardSessionView>), ApiError> {
    let wallet = parse_wallet("wallet", &body.wallet)?;
    let customer = match &body.customer_ref {
        Some(text) => Some(super::checkouts::checked_customer(&state, &headers, wallet, text).await?),
        None => None,
    };
    let started = sessions::checkout(state.card_sessions(), wallet, body.plan_id, customer, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(started.into())))
}

/// How the member pays, as the account page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodView {
    /// `crypto` (renewed by paying on-chain), `card` (a card subscription renews it) or
    /// `none` (no running plan).
    pub method: String,
    /// Paying by card and set to end: the card-paid time runs to `crypto_from`, then the
    /// member pays on-chain.
    pub card_ending: bool,
    /// When the paid time ends (the plan's end, or the scheduled plan's end): a switch to
    /// card is first charged then (unix seconds; null without a running plan).
    pub paid_until: Option<u64>,
    /// The card subscription (`sub_…`), when there is one.
    pub card_subscription: Option<String>,
    /// When the card is charged next (paying by card, not ending): the end of the paid time.
    pub next_card_charge_at: Option<u64>,
    /// When paying on-chain takes over (going back to crypto: the end of the card-paid time).
    pub crypto_from: Option<u64>,
    /// Whether "Switch to card" is offered now: card payments are configured, the plan that
    /// renews is sold by card, and the paid time ends 48 hours or more from now.
    pub can_switch_to_card: bool,
    /// Why it is not offered, in words (null when it is, or when paying by card).
    pub switch_unavailable_reason: Option<String>,
    /// Whether card payments are configured on this service.
    pub card_configured: bool,
}

/// Answers how the signed-in member pays and what switching would do.
#[utoipa::path(get, path = "/v1/me/payment-method", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = PaymentMethodView), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "Sign-in is not configured"), (status = 429, body = ErrorBody),
))]
pub async fn payment_method(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::signed_in_wallet(&state, &headers).await?;
    let now = state.clock.now();
    let sub = super::subscriptions::stored_subscription(&state, wallet).await?;
    let mut conn = state.db.pool().acquire().await.map_err(crate::store::StoreError::from)?;
    let card = store::card::newest_card_subscription(&mut conn, wallet).await?;
    drop(conn);
    let running = sub.as_deref().filter(|s| s.status != SubscriptionStatus::Expired && s.expires_at > now);
    let paid_end = running.map(|s| sessions::renewal_plan(s).1);
    let card_configured = state.processor.is_some() && !state.http.public_url().is_empty();
    let mut view = PaymentMethodView {
        method: "none".into(),
        card_ending: false,
        paid_until: paid_end,
        card_subscription: None,
        next_card_charge_at: None,
        crypto_from: None,
        can_switch_to_card: false,
        switch_unavailable_reason: None,
        card_configured,
    };
    match (&card, running) {
        (Some(c), Some(_)) if c.subscription.status == CardSubscriptionStatus::Active => {
            view.method = "card".into();
            view.card_subscription = Some(c.id.clone());
            view.next_card_charge_at = paid_end;
        }
        (Some(c), Some(_)) => {
            view.method = "card".into();
            view.card_ending = true;
            view.card_subscription = Some(c.id.clone());
            view.crypto_from = paid_end;
        }
        (_, Some(s)) => {
            view.method = "crypto".into();
            let (plan_id, end) = sessions::renewal_plan(s);
            let sold = state.catalog.get(plan_id).is_some_and(|p| p.card_price_id.is_some() && p.card_price.is_some());
            let reason = if !card_configured {
                Some("card payments are not configured on this service".to_string())
            } else if !sold {
                Some(format!("plan {plan_id} is not sold by card"))
            } else if end < now + MIN_DEFERRAL_SECS {
                Some("your paid time ends in less than 48 hours; renew with \"Pay by card\" on the checkout page instead".to_string())
            } else {
                None
            };
            view.can_switch_to_card = reason.is_none();
            view.switch_unavailable_reason = reason;
        }
        (_, None) => view.switch_unavailable_reason = Some("you have no running plan; buy one on the checkout page".into()),
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// Switches the signed-in member from crypto to card: a card Checkout Session whose
/// subscription is first charged when the paid crypto time ends (`trial_end`; the plan
/// that runs then), so nothing is paid twice and no free trial applies. The page sends the
/// browser to `url`. With the session cookie the request must come from an allowed origin
/// with the session's `X-CSRF-Token`.
#[utoipa::path(post, path = "/v1/me/payment-method/card", tag = "public", security(("membership_token" = [])), responses(
    (status = 201, body = CardSessionView), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody, description = "Sign-in is not configured, or the plan is gone from the catalog"),
    (status = 409, body = ErrorBody, description = "`already_paying_by_card`, `card_not_offered`, `no_paid_time`, `switch_too_late` (the paid time ends within 48 hours)"),
    (status = 429, body = ErrorBody),
    (status = 502, body = ErrorBody, description = "`card_processor`: the processor refused or could not be reached"),
    (status = 404, body = ErrorBody, description = "`card_not_configured`: card payments are off on this service (no card.api_key); not a server fault"),
))]
pub async fn switch_to_card(State(state): State<AppState>, headers: HeaderMap) -> Result<(StatusCode, Json<CardSessionView>), ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let started = sessions::switch_to_card(state.card_sessions(), wallet, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(started.into())))
}

/// What going back to crypto did.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackToCryptoView {
    /// The card subscription, now set to end at its period end at the processor.
    pub card_subscription: String,
    /// The processor's `cancel_at_period_end` (true).
    pub cancel_at_period_end: bool,
    /// When the card-paid time ends and paying on-chain takes over (unix seconds).
    pub crypto_from: Option<u64>,
    /// Where the member pays on-chain (the checkout page for the plan).
    pub checkout_url: String,
}

/// Takes the signed-in member back to crypto: the service sets the card subscription to
/// `cancel_at_period_end` at the processor. The card-paid period runs to its end and is not
/// charged again; the member then pays on-chain on the checkout page. The processor's
/// `customer.subscription.updated` records the change here. Same guard as switching to card.
#[utoipa::path(post, path = "/v1/me/payment-method/crypto", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = BackToCryptoView), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody, description = "Sign-in is not configured"),
    (status = 409, body = ErrorBody, description = "`no_card_subscription`: the plan is not renewed by card"),
    (status = 429, body = ErrorBody),
    (status = 502, body = ErrorBody, description = "`card_processor`: the processor refused or could not be reached"),
    (status = 404, body = ErrorBody, description = "`card_not_configured`: card payments are off on this service (no card.api_key); not a server fault"),
))]
pub async fn back_to_crypto(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<BackToCryptoView>, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let done = sessions::back_to_crypto(state.card_sessions(), wallet).await?;
    let plan = store::card::card_subscription(&mut *state.db.pool().acquire().await.map_err(crate::store::StoreError::from)?, &done.card_subscription)
        .await?
        .map(|c| c.plan_id);
    let checkout_url = match plan {
        Some(plan) => format!("{}/checkout?plan={plan}", state.http.public_url()),
        None => format!("{}/checkout", state.http.public_url()),
    };
    Ok(Json(BackToCryptoView {
        card_subscription: done.card_subscription,
        cancel_at_period_end: done.updated.cancel_at_period_end,
        crypto_from: done.crypto_from,
        checkout_url,
    }))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/checkouts/card", post(create_card_checkout))
        .route("/v1/me/payment-method", get(payment_method))
        .route("/v1/me/payment-method/card", post(switch_to_card))
        .route("/v1/me/payment-method/crypto", post(back_to_crypto))
}

/// The payment-method routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(create_card_checkout, payment_method, switch_to_card, back_to_crypto))]
pub(super) struct Api;
