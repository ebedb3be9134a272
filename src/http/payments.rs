//! The merchant's payments (API key): `GET /v1/payments`, newest first, and
//! `POST /v1/payments/{id}/refund`, which marks a payment refunded and ends the
//! subscription it activated in one write transaction ([`crate::billing::members`]).

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
    members::MemberView,
    params::page_limit,
};
use crate::{
    billing::members,
    ids::OrderId,
    states::PaymentStatus,
    store::ledger::payments::{self, PaymentFilter},
};

/// A recorded payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// Payment id (cursor order).
    pub id: i64,
    /// Transaction hash.
    pub tx_hash: String,
    /// Log index.
    pub log_index: i64,
    /// Block number.
    pub block_number: i64,
    /// Order id (decimal string).
    #[schema(value_type = String)]
    pub order_id: OrderId,
    /// Payer.
    pub payer: String,
    /// Token address.
    pub token: String,
    /// Amount in the token's smallest unit (decimal string).
    pub amount: String,
    /// Plan id.
    pub plan_id: u32,
    /// Periods.
    pub periods: u32,
    /// `detected`, `confirmed` or `reorged`.
    pub status: PaymentStatus,
    /// Why the payment matched no open order, if it did not.
    pub unmatched_reason: Option<String>,
    /// Unix time detected.
    pub detected_at: i64,
    /// For a USD-priced order: the amount's USD value at the rate it was quoted at
    /// (`"40.18"`).
    pub usd_value: Option<String>,
    /// That rate, USD per whole token.
    pub rate_usd: Option<String>,
    /// That rate's source.
    pub rate_source: Option<String>,
}

/// A page of payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentsPage {
    /// Payments, newest first.
    pub payments: Vec<PaymentView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Paging of `GET /v1/payments`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PaymentsQuery {
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only payments with an id below this.
    pub before: Option<i64>,
    /// Only payments in this status.
    #[param(pattern = "^(detected|confirmed|reorged)$")]
    pub status: Option<String>,
}

/// Lists payments, newest first (merchant API key).
#[utoipa::path(get, path = "/v1/payments", tag = "merchant", params(PaymentsQuery), security(("api_key" = [])), responses(
    (status = 200, body = PaymentsPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
))]
pub async fn payments(
    State(state): State<AppState>,
    query: Result<Query<PaymentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentsPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let limit = page_limit(query.limit)?;
    let status = match &query.status {
        Some(s) => Some(s.parse::<PaymentStatus>().map_err(|_| ApiError::invalid("status must be detected, confirmed or reorged"))?),
        None => None,
    };
    let filter = PaymentFilter { before: query.before, status, limit: i64::from(limit) };
    let payments: Vec<PaymentView> = payments::list(&state.db, &filter)
        .await?
        .into_iter()
        .map(|p| PaymentView {
            id: p.id,
            tx_hash: p.tx_hash.to_string(),
            log_index: p.log_index,
            block_number: p.block_number,
            order_id: p.order_id,
            payer: p.payer.to_string(),
            token: p.token.to_string(),
            amount: p.amount.to_string(),
            plan_id: p.plan_id,
            periods: p.periods,
            status: p.status,
            unmatched_reason: p.unmatched_reason,
            detected_at: p.detected_at,
            usd_value: p.usd.as_ref().and_then(|(micro, _, _)| crate::money::Usd::from_stored(*micro)).map(|usd| usd.to_string()),
            rate_usd: p.usd.as_ref().map(|(_, rate, _)| rate.clone()),
            rate_source: p.usd.map(|(_, _, source)| source),
        })
        .collect();
    let next_before = (payments.len() == limit as usize).then(|| payments.last().map(|p| p.id)).flatten();
    Ok(Json(PaymentsPage { payments, next_before }))
}

/// `POST /v1/payments/{id}/refund` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Why, up to 500 characters, not blank (the money is returned outside the service).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub note: String,
}

/// A refunded payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundResponse {
    /// Payment id.
    pub payment_id: i64,
    /// The payer.
    pub payer: String,
    /// Unix time marked refunded.
    pub refunded_at: u64,
    /// The note.
    pub note: String,
    /// The payer's subscription, ended now, when the payment had activated a live one.
    pub subscription: Option<MemberView>,
}

/// Marks a confirmed on-chain payment refunded and ends the payer's subscription it
/// activated (like a revoke, reason `refunded`); events `payment.refunded` and
/// `subscription.expired`.
#[utoipa::path(post, path = "/v1/payments/{id}/refund", tag = "merchant", security(("api_key" = [])),
    params(("id" = i64, Path, description = "payment id, as in GET /v1/payments")), request_body = RefundRequest, responses(
    (status = 200, body = RefundResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
))]
pub async fn refund(State(state): State<AppState>, Path(id): Path<String>, ApiJson(body): ApiJson<RefundRequest>) -> Result<Json<RefundResponse>, ApiError> {
    let id: i64 = id.trim().parse().map_err(|_| ApiError::invalid(format!("payment id {id:?} is not a number (ids as in GET /v1/payments)")))?;
    let mut tx = state.db.begin_write().await?;
    let refund = members::refund(&mut tx, id, &body.note, state.clock.now()).await?;
    tx.commit().await?;
    let subscription = match &refund.subscription {
        Some(sub) => Some(MemberView::of(&state, sub).await?),
        None => None,
    };
    Ok(Json(RefundResponse {
        payment_id: refund.payment_id,
        payer: refund.payer.to_string(),
        refunded_at: refund.refunded_at,
        note: refund.note,
        subscription,
    }))
}

/// Returns the payment routes (merchant: behind the API key).
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/payments", get(payments)).route("/v1/payments/{id}/refund", post(refund))
}

/// The payment routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(payments, refund))]
pub(super) struct Api;
