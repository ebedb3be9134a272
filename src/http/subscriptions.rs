//! A wallet's subscription (through the read cache) and badge (from the chain), for anyone:
//! `GET /v1/subscriptions/{wallet}` and `GET /v1/badges/{wallet}`. Inputs are parsed at the
//! edge; every bad input is a 4xx in the one error shape.

use std::sync::Arc;

use alloy::primitives::Address;
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    params::parse_wallet,
    plans::tier_name,
};
use crate::{
    billing::activation::{self, Subscription},
    chain::bindings::MembershipBadge,
    states::SubscriptionStatus,
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
    /// `trialing`, `active`, `past_due` (a renewal failed; access runs to `expires_at`, and
    /// past it while an automatic renewal is retried in its grace period the plan stays
    /// `past_due` without access), `expired` or `canceled`.
    pub status: SubscriptionStatus,
    /// Unix time the subscription started.
    pub started_at: u64,
    /// Unix time the current tier's paid time ends.
    pub expires_at: u64,
    /// Plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
}

/// Returns a wallet's subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{wallet}", tag = "public", params(("wallet" = String, Path, description = "0x address", pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")), responses(
    (status = 200, body = SubscriptionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
))]
pub async fn subscription(State(state): State<AppState>, Path(wallet): Path<String>) -> Result<Json<SubscriptionView>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    let stored = stored_subscription(&state, wallet).await?.ok_or_else(|| ApiError::not_found(format!("{wallet} has no subscription")))?;
    let mut status = stored.status;
    // Past its end a plan reads `expired`, except `canceled` and `past_due` (an automatic
    // renewal still retried in its grace period: no access, see `expires_at`).
    if !matches!(status, SubscriptionStatus::Canceled | SubscriptionStatus::PastDue) && stored.expires_at <= state.clock.now() {
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

/// Reads `wallet`'s subscription through the read cache (also for sign-in, refresh and
/// `/v1/me`): members' apps ask for it on every page they gate, and it changes only at
/// payments, card events and member changes.
pub(crate) async fn stored_subscription(state: &AppState, wallet: Address) -> Result<Option<Arc<Subscription>>, ApiError> {
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
#[utoipa::path(get, path = "/v1/badges/{wallet}", tag = "public", params(("wallet" = String, Path, description = "0x address", pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")), responses(
    (status = 200, body = BadgeView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
))]
pub async fn badge(State(state): State<AppState>, Path(wallet): Path<String>) -> Result<Json<BadgeView>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    read_badge(&state, wallet).await?.map(Json).ok_or_else(|| ApiError::not_found(format!("{wallet} holds no badge")))
}

/// Reads `wallet`'s badge from the chain (`None`: it holds none); 503 when the chain cannot
/// be read.
pub(crate) async fn read_badge(state: &AppState, wallet: Address) -> Result<Option<BadgeView>, ApiError> {
    let badge = MembershipBadge::new(state.deployment.badge, &state.provider);
    let unavailable = |e: alloy::contract::Error| {
        tracing::warn!(error = %e, "reading the badge failed");
        ApiError::unavailable("the chain cannot be read right now; try again")
    };
    let m = badge.membershipOf(wallet).call().await.map_err(unavailable)?;
    if m.tokenId.is_zero() {
        return Ok(None);
    }
    let token_uri = badge.tokenURI(m.tokenId).call().await.map_err(unavailable)?;
    let active = badge.isActive(wallet).call().await.map_err(unavailable)?;
    Ok(Some(BadgeView { wallet: wallet.to_string(), token_id: m.tokenId.to_string(), tier: m.tier, expires_at: m.expiresAt_, active, token_uri }))
}

/// Returns the subscription and badge routes (public, rate-limited per client).
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/subscriptions/{wallet}", get(subscription)).route("/v1/badges/{wallet}", get(badge))
}

/// The subscription and badge routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(subscription, badge))]
pub(super) struct Api;
