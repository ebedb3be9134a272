//! The reads: a wallet's subscription (through the read cache) and badge (from the chain)
//! for anyone, and the merchant's payments list. Inputs are parsed at the edge; every bad
//! input is a 4xx in the one error shape.

use std::sync::Arc;

use alloy::primitives::Address;
use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    api::{parse_wallet, tier_name},
    error::{ApiError, ErrorBody},
};
use crate::{
    billing::activation::{self, Subscription},
    chain::bindings::MembershipBadge,
    ids::OrderId,
    states::{PaymentStatus, SubscriptionStatus},
    store::payments::{self, PaymentFilter},
};

/// A wallet's subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// Member wallet.
    pub wallet: String,
    /// Current plan.
    pub plan_id: u32,
    /// Current tier.
    pub tier: u8,
    /// Tier name.
    pub tier_name: String,
    /// `trialing`, `active`, `past_due` (a card renewal failed; access runs to `expires_at`),
    /// `expired` or `canceled`.
    pub status: SubscriptionStatus,
    /// Unix time the subscription started.
    pub started_at: u64,
    /// Unix time the current tier's paid time ends.
    pub expires_at: u64,
    /// Plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
}

/// Returns a wallet's subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{wallet}", tag = "public", params(("wallet" = String, Path, description = "0x address")), responses(
    (status = 200, body = SubscriptionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
))]
pub async fn subscription(State(state): State<AppState>, Path(wallet): Path<String>) -> Result<Json<SubscriptionView>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    let stored = stored_subscription(&state, wallet).await?.ok_or_else(|| ApiError::not_found(format!("{wallet} has no subscription")))?;
    let mut status = stored.status;
    if status != SubscriptionStatus::Canceled && stored.expires_at <= state.clock.now() {
        status = SubscriptionStatus::Expired;
    }
    Ok(Json(SubscriptionView {
        wallet: wallet.to_string(),
        plan_id: stored.plan_id,
        tier: stored.tier,
        tier_name: tier_name(stored.tier).into(),
        status,
        started_at: stored.started_at,
        expires_at: stored.expires_at,
        next_plan_id: stored.next_plan_id,
    }))
}

/// Reads `wallet`'s subscription through the read cache: members' apps ask for it on every
/// page they gate, and it changes only at payments, card events and member changes.
async fn stored_subscription(state: &AppState, wallet: Address) -> Result<Option<Arc<Subscription>>, ApiError> {
    let generation = state.db.cache_generation();
    if let Some(generation) = generation
        && let Some(hit) = state.subscriptions.get(&wallet, generation)
    {
        return Ok(hit);
    }
    let mut conn = state.db.pool().acquire().await?;
    let stored = activation::load(&mut conn, wallet).await?.map(Arc::new);
    if let Some(generation) = generation {
        state.subscriptions.insert(wallet, generation, stored.clone());
    }
    Ok(stored)
}

/// A wallet's badge, read from the chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct BadgeView {
    /// Holder.
    pub wallet: String,
    /// Token id (decimal string).
    pub token_id: String,
    /// Tier on chain.
    pub tier: u8,
    /// Expiry on chain (unix time).
    pub expires_at: u64,
    /// Whether the badge is active now (`isActive`).
    pub active: bool,
    /// On-chain metadata (`data:application/json;base64,…` with an SVG image).
    pub token_uri: String,
}

/// Returns a wallet's badge as the chain holds it.
#[utoipa::path(get, path = "/v1/badges/{wallet}", tag = "public", params(("wallet" = String, Path, description = "0x address")), responses(
    (status = 200, body = BadgeView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
))]
pub async fn badge(State(state): State<AppState>, Path(wallet): Path<String>) -> Result<Json<BadgeView>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    let badge = MembershipBadge::new(state.deployment.badge, &state.provider);
    let unavailable = |e: alloy::contract::Error| {
        tracing::warn!(error = %e, "reading the badge failed");
        ApiError::unavailable("the chain cannot be read right now; try again")
    };
    let m = badge.membershipOf(wallet).call().await.map_err(unavailable)?;
    if m.tokenId.is_zero() {
        return Err(ApiError::not_found(format!("{wallet} holds no badge")));
    }
    let token_uri = badge.tokenURI(m.tokenId).call().await.map_err(unavailable)?;
    let active = badge.isActive(wallet).call().await.map_err(unavailable)?;
    Ok(Json(BadgeView { wallet: wallet.to_string(), token_id: m.tokenId.to_string(), tier: m.tier, expires_at: m.expiresAt_, active, token_uri }))
}

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
#[serde(deny_unknown_fields)]
pub struct PaymentsQuery {
    /// Page size, 1–500 (default 100).
    pub limit: Option<u32>,
    /// Only payments with an id below this.
    pub before: Option<i64>,
    /// Only payments in this status.
    pub status: Option<String>,
}

/// Returns a list route's page size: `limit`, 1–500, default 100.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=500).contains(&limit) { Ok(limit) } else { Err(ApiError::invalid("limit must be between 1 and 500")) }
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
            usd_value: p.usd.as_ref().map(|(micro, _, _)| crate::billing::pricing::format_usd((*micro).max(0) as u64)),
            rate_usd: p.usd.as_ref().map(|(_, rate, _)| rate.clone()),
            rate_source: p.usd.map(|(_, _, source)| source),
        })
        .collect();
    let next_before = (payments.len() == limit as usize).then(|| payments.last().map(|p| p.id)).flatten();
    Ok(Json(PaymentsPage { payments, next_before }))
}
