//! The checkout routes of a purchase: `POST /v1/checkouts`, `GET /v1/checkouts/{id}` and
//! its progress stream (what is on sale is in [`super::plans`]). Inputs are parsed at the
//! edge into typed values; every bad input is a 4xx in the one error shape.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::{
    AppState,
    clients::Client,
    error::{ApiError, ApiJson, ErrorBody},
    params::parse_wallet,
    plans::TokenView,
};
use crate::{
    billing::{
        checkouts::{self, CheckoutProgress, Stage},
        customers::{self, CustomerRef},
        quotes::QuoteRequest,
    },
    ids::{CheckoutId, OrderId},
    states::{CheckoutStatus, OrderStatus},
    store::orders::{self, StoredOrder},
};

/// `POST /v1/checkouts` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCheckout {
    /// Plan id from `GET /v1/plans`.
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    pub plan_id: u32,
    /// Token symbol to pay in.
    pub token: String,
    /// The wallet that pays and receives the plan (0x-prefixed address, not the zero address).
    #[schema(pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")]
    pub wallet: String,
    /// Periods to buy, 1–36 (default 1).
    #[serde(default, deserialize_with = "super::numbers::opt_u32_integral")]
    #[schema(minimum = 1, maximum = 36)]
    pub periods: Option<u32>,
    /// The merchant's own customer (user id) the purchase is for: 1–64 characters of
    /// `A-Z a-z 0-9 _ : @ -`. From a public page only in the signed form
    /// `<ref>.<expires_at>.<mac>` the merchant's server made (README "Customer references");
    /// with the merchant's API key (`Authorization: Bearer`) also bare. Kept with the order
    /// and carried in every event the checkout causes.
    #[schema(pattern = "^[A-Za-z0-9_:@-]{1,64}(\\.[0-9]{1,20}\\.[0-9a-f]{64})?$", max_length = 150)]
    pub customer_ref: Option<String>,
}

/// The EIP-712 quote, field for field as the contract takes it.
#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)]
pub struct QuoteView {
    /// Order id (decimal string).
    #[schema(value_type = String)]
    pub orderId: OrderId,
    /// Payer.
    pub payer: String,
    /// Token address.
    pub token: String,
    /// Amount in the token's smallest unit (decimal string).
    pub amount: String,
    /// Plan id.
    pub planId: u32,
    /// Periods.
    pub periods: u32,
    /// Unix deadline.
    pub deadline: u64,
}

/// A checkout's progress, as the event stream reports it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Progress {
    /// `open`, `expired`, `detected`, `confirming`, `active` or `badge_issued`.
    #[schema(value_type = String)]
    pub stage: Stage,
    /// Confirmations the payment has.
    pub confirmations: u64,
    /// Confirmations required.
    pub required: u64,
    /// Payment transaction.
    pub tx_hash: Option<String>,
    /// Badge transaction, once issued.
    pub badge_tx_hash: Option<String>,
    /// Plan expiry, once active.
    pub expires_at: Option<u64>,
    /// Nothing more will change: the badge is issued, the plan is active and no badge
    /// change is due (a scheduled downgrade), or the quote expired unpaid.
    pub done: bool,
}

impl From<&CheckoutProgress> for Progress {
    fn from(p: &CheckoutProgress) -> Self {
        Self {
            stage: p.stage,
            confirmations: p.confirmations,
            required: p.required,
            tx_hash: p.tx_hash.map(|h| h.to_string()),
            badge_tx_hash: p.badge_tx_hash.map(|h| h.to_string()),
            expires_at: p.expires_at,
            done: p.done,
        }
    }
}

/// A checkout.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutView {
    /// Public checkout id.
    #[schema(value_type = String)]
    pub id: CheckoutId,
    /// `open`, `paid` or `expired`.
    pub status: CheckoutStatus,
    /// On-chain order id (decimal string).
    #[schema(value_type = String)]
    pub order_id: OrderId,
    /// Chain id.
    pub chain_id: u64,
    /// Checkout contract to call.
    pub contract: String,
    /// Token to pay in.
    pub token: TokenView,
    /// Amount in the token's smallest unit (decimal string).
    pub amount: String,
    /// Unix time after which the quote cannot be paid.
    pub expires_at: u64,
    /// The signed quote.
    pub quote: QuoteView,
    /// The quote signer's signature (hex).
    pub signature: String,
    /// Server-sent event stream of this checkout's progress.
    pub events_url: String,
    /// Progress now.
    pub progress: Progress,
    /// For a plan priced in dollars: the rate the amount is locked at and its USD value.
    pub usd: Option<super::rates::UsdPricing>,
}

/// Creates a checkout: an order and a signed quote for the wallet to pay.
#[utoipa::path(post, path = "/v1/checkouts", tag = "public", request_body = CreateCheckout, responses(
    (status = 201, body = CheckoutView),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A signed customer_ref that is expired, tampered or not signed with this merchant's secret (`invalid_customer_ref`)"),
    (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
))]
pub async fn create_checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateCheckout>,
) -> Result<(StatusCode, Json<CheckoutView>), ApiError> {
    let payer = parse_wallet("wallet", &body.wallet)?;
    let Some(issuer) = &state.quotes else {
        return Err(ApiError::unavailable("checkout is not configured: set chain.quote_signer_key"));
    };
    let customer = match &body.customer_ref {
        Some(text) => Some(checked_customer(&state, &headers, payer, text).await?),
        None => None,
    };
    let request = QuoteRequest { plan_id: body.plan_id, token: body.token.trim().to_string(), payer, periods: body.periods.unwrap_or(1) };
    let issued = issuer.issue_for(&state.db, &state.catalog, &request, customer.clone(), state.clock.now()).await?;
    // Built from what was just stored: no second read on the hot path.
    let order = StoredOrder {
        order_id: issued.order_id,
        checkout_id: issued.checkout_id,
        payer: issued.quote.payer,
        token: issued.token,
        amount: issued.amount,
        plan_id: issued.quote.planId,
        periods: issued.quote.periods,
        deadline: issued.expires_at,
        signature: issued.signature.to_vec(),
        status: OrderStatus::Open,
        pricing: None,
        customer_ref: customer,
    };
    let progress = Progress::from(&CheckoutProgress::open(state.confirmations));
    let mut view = view_of(&state, &order, CheckoutStatus::Open, progress);
    view.usd = issued.pricing.as_ref().map(Into::into);
    Ok((StatusCode::CREATED, Json(view)))
}

/// Checks the `customer_ref` of a checkout for `payer` ([`customers::accept`]): a bare one
/// only with a live API key, a signed one from anyone; refused when the wallet belongs to
/// another customer already.
pub(super) async fn checked_customer(state: &AppState, headers: &HeaderMap, payer: alloy::primitives::Address, text: &str) -> Result<CustomerRef, ApiError> {
    let trusted = match super::keys::bearer(headers) {
        Some(key) => {
            super::keys::verify(&state.db, key).await?.ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
            true
        }
        None => false,
    };
    let customer = customers::accept(text, trusted, state.customer_refs.as_ref(), state.clock.now()).map_err(ApiError::from)?;
    if let Some(bound) = crate::store::customers::of_wallet_in(&state.db, payer).await?
        && bound != customer
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "customer_ref_conflict",
            format!("wallet {payer} belongs to another customer of the merchant; a membership is moved between customers by the merchant, not by a checkout"),
        ));
    }
    Ok(customer)
}

/// Returns a checkout and its progress.
#[utoipa::path(get, path = "/v1/checkouts/{id}", tag = "public", params(("id" = String, Path, description = "checkout id")), responses(
    (status = 200, body = CheckoutView), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
))]
pub async fn get_checkout(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<CheckoutView>, ApiError> {
    load_checkout(&state, &id).await?.map(Json).ok_or_else(|| ApiError::not_found(format!("no checkout {id:?}")))
}

/// Streams a checkout's progress as server-sent `progress` events, one per change, until
/// nothing more will happen (`done`: the badge is issued, the plan is active and no badge
/// change is due — a scheduled downgrade —, or the quote expired unpaid), the stream's
/// lifetime (`http.event_stream_max_secs`) ends, or the service stops. A browser's
/// `EventSource` reconnects after the lifetime; a reconnection (`Last-Event-ID`) to a
/// checkout that is done is answered 204, which stops it. Open streams are capped per
/// client and overall (429).
#[utoipa::path(get, path = "/v1/checkouts/{id}/events", tag = "public", params(("id" = String, Path, description = "checkout id")), responses(
    (status = 200, description = "text/event-stream of `progress` events whose data is a Progress", content_type = "text/event-stream"),
    (status = 204, description = "a reconnection (`Last-Event-ID`) to a checkout that is done: nothing more will be sent"),
    (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
))]
pub async fn checkout_events(State(state): State<AppState>, Client(client): Client, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let Some(order) = load_order(&state, &id).await? else {
        return Err(ApiError::not_found(format!("no checkout {id:?}")));
    };
    let slot = state.streams.acquire(client)?;
    // Subscribed before the first read: a commit after it wakes the stream.
    let commits = state.db.commits();
    let first = progress_of(&state, &order).await?;
    if first.done && headers.contains_key("last-event-id") {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let ends_at = tokio::time::Instant::now() + Duration::from_secs(state.http.event_stream_max_secs);
    let follow = Follow { state, order, commits, _slot: slot, ends_at, next: Some(first), last: None, sent: 0, read_at: tokio::time::Instant::now() };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let progress = f.next_change().await?;
        f.sent += 1;
        let event = Event::default().event("progress").id(f.sent.to_string()).json_data(&progress).unwrap_or_default();
        Some((Ok::<_, Infallible>(event), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Longest wait for a commit before a stream reads its checkout anyway: commits on other
/// PostgreSQL instances (other than to `subscriptions`) wake nobody here.
const STREAM_FALLBACK_POLL: Duration = Duration::from_secs(5);
/// Shortest gap between two reads of one stream, however often commits land.
const STREAM_MIN_READ_GAP: Duration = Duration::from_millis(250);

/// One open event stream.
struct Follow {
    state: AppState,
    order: StoredOrder,
    commits: tokio::sync::watch::Receiver<u64>,
    _slot: super::streams::StreamSlot,
    ends_at: tokio::time::Instant,
    /// Progress read and not yet compared with the last sent.
    next: Option<Progress>,
    last: Option<Progress>,
    sent: u64,
    read_at: tokio::time::Instant,
}

impl Follow {
    /// Returns the next progress that differs from the last sent, reading the checkout only
    /// after a commit (or the fallback poll, or the quote's deadline); `None` ends the stream.
    async fn next_change(&mut self) -> Option<Progress> {
        if self.last.as_ref().is_some_and(|p| p.done) {
            return None;
        }
        loop {
            if let Some(progress) = self.next.take()
                && self.last.as_ref() != Some(&progress)
            {
                self.last = Some(progress.clone());
                return Some(progress);
            }
            let mut wake_at = (tokio::time::Instant::now() + STREAM_FALLBACK_POLL).min(self.ends_at);
            if self.last.as_ref().is_some_and(|p| p.stage == Stage::Open) {
                // An unpaid quote expires without any commit.
                let left = (self.order.deadline + 1).saturating_sub(self.state.clock.now());
                wake_at = wake_at.min(tokio::time::Instant::now() + Duration::from_secs(left));
            }
            tokio::select! {
                _ = self.state.cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(self.ends_at) => return None,
                changed = self.commits.changed() => changed.ok()?,
                _ = tokio::time::sleep_until(wake_at) => {}
            }
            let gap = self.read_at + STREAM_MIN_READ_GAP;
            tokio::select! {
                _ = self.state.cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(gap) => {}
            }
            // Commits during the gap are covered by the read that follows.
            self.commits.mark_unchanged();
            self.read_at = tokio::time::Instant::now();
            self.state.streams.count_read();
            self.next = progress_of(&self.state, &self.order).await.ok();
        }
    }
}

/// Returns the order of the checkout `id` names, parsed here once: a text that is no
/// checkout id is no checkout (404), without a database read.
async fn load_order(state: &AppState, id: &str) -> Result<Option<StoredOrder>, ApiError> {
    let Ok(checkout_id) = id.parse::<CheckoutId>() else { return Ok(None) };
    Ok(orders::load(&state.db, &checkout_id).await?)
}

async fn load_checkout(state: &AppState, checkout_id: &str) -> Result<Option<CheckoutView>, ApiError> {
    let Some(order) = load_order(state, checkout_id).await? else { return Ok(None) };
    let progress = progress_of(state, &order).await?;
    let status = checkouts::status(&order, state.clock.now());
    Ok(Some(view_of(state, &order, status, progress)))
}

fn view_of(state: &AppState, order: &StoredOrder, status: CheckoutStatus, progress: Progress) -> CheckoutView {
    let d = &state.deployment;
    let token = d.tokens.iter().find(|t| t.address == order.token);
    let (token_text, amount) = (state.address_text(order.token), order.amount.to_string());
    CheckoutView {
        id: order.checkout_id.clone(),
        status,
        order_id: order.order_id,
        chain_id: d.chain_id,
        contract: state.address_text(d.checkout),
        token: TokenView {
            symbol: token.map(|t| t.symbol.clone()).unwrap_or_default(),
            address: token_text.clone(),
            decimals: token.map(|t| t.decimals).unwrap_or(18),
            permit: token.is_some_and(|t| t.permit),
        },
        amount: amount.clone(),
        expires_at: order.deadline,
        quote: QuoteView {
            orderId: order.order_id,
            payer: order.payer.to_string(),
            token: token_text,
            amount,
            planId: order.plan_id,
            periods: order.periods,
            deadline: order.deadline,
        },
        signature: format!("0x{}", alloy::hex::encode(&order.signature)),
        events_url: format!("/v1/checkouts/{}/events", order.checkout_id),
        progress,
        usd: order.pricing.as_ref().map(Into::into),
    }
}

async fn progress_of(state: &AppState, order: &StoredOrder) -> Result<Progress, ApiError> {
    let progress = checkouts::progress(&state.db, order, state.confirmations, state.clock.now(), || state.head()).await?;
    Ok(Progress::from(&progress))
}

/// Returns the checkout routes (public, rate-limited per client).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/checkouts", post(create_checkout))
        .route("/v1/checkouts/{id}", get(get_checkout))
        .route("/v1/checkouts/{id}/events", get(checkout_events))
}

/// The checkout routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(create_checkout, get_checkout, checkout_events))]
pub(super) struct Api;
