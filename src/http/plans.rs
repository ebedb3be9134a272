//! `GET /v1/plans`: what is on sale — the plans with their price in each accepted token,
//! the tokens, the chain, and the market rates of USD-priced tokens; and
//! `GET /v1/swaps/quote`: what buying a missing token costs through the configured swap.

use alloy::primitives::U256;
use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
    routing::get,
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
};
use crate::billing::swaps::SwapError;

/// The chain the checkout runs on.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainInfo {
    /// Chain id.
    pub id: u64,
    /// Name shown to wallets.
    pub name: String,
    /// Public JSON-RPC URL wallets may add (`http.public_rpc_url`); null when none is
    /// configured: wallets then use their own RPC for the chain.
    pub rpc_url: Option<String>,
    /// A block explorer's transaction page with `{tx}` for the hash (`http.explorer_tx_url`);
    /// null when none is configured.
    pub explorer_tx_url: Option<String>,
    /// Checkout contract.
    pub checkout: String,
    /// Badge contract.
    pub badge: String,
}

/// A token the checkout takes.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Symbol (`TMAI`, `USD`).
    pub symbol: String,
    /// Contract address.
    pub address: String,
    /// Decimals.
    pub decimals: u8,
    /// Whether it supports EIP-2612 `permit` (one-transaction checkout).
    pub permit: bool,
}

/// A plan's price in one token.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceView {
    /// Token symbol.
    pub token: String,
    /// Price per period in the token's smallest unit (decimal string); empty while the
    /// token's market rate is unavailable (`reason`).
    pub amount: String,
    /// Price per period in whole tokens.
    pub display: String,
    /// For a plan priced in dollars: the USD side of this amount at the current rate.
    pub usd: Option<super::rates::UsdPricing>,
    /// Why the plan cannot be bought in this token now (its rate is unavailable).
    pub reason: Option<String>,
    /// The same reason as a code (`chain_unreadable`, `stale_feed`, `manipulated`, …).
    pub reason_code: Option<crate::billing::rates::RefusalCode>,
}

/// A plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Plan id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Tier rank (1 Basic … 4 VIP).
    pub tier: u8,
    /// Tier name.
    pub tier_name: String,
    /// `monthly` or `yearly`.
    pub period: String,
    /// Price per period in US dollars (`"49.00"`), for a plan priced in dollars.
    pub price_usd: Option<String>,
    /// Price per accepted token.
    pub prices: Vec<PriceView>,
    /// Card price in cents, when sold by card.
    pub card_price_cents: Option<u64>,
    /// Free trial days (card payments only).
    pub trial_days: u32,
    /// Whether the plan can be bought by card here ("Pay by card", `POST
    /// /v1/checkouts/card`): the plan has a processor price and card payments are
    /// configured (`card.api_key`).
    pub card_available: bool,
    /// Discount of the TMAI price against the list price, in percent, when configured.
    pub discount_percent: Option<u8>,
}

/// `GET /v1/plans`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlansResponse {
    /// The chain.
    pub chain: ChainInfo,
    /// Accepted tokens.
    pub tokens: Vec<TokenView>,
    /// Plans on sale.
    pub plans: Vec<PlanView>,
    /// The market rate of each token priced from one (`[pricing.tokens]`).
    pub rates: Vec<super::rates::RateView>,
    /// Where a member short of a token can buy it (`{token}` and `{amount}` to fill in).
    pub buy_url: Option<String>,
    /// The one-click buy of a missing token, when configured (`GET /v1/swaps/quote` prices
    /// it); the page then offers it instead of `buy_url`.
    pub swap: Option<SwapInfo>,
}

/// The configured one-click buy: a Uniswap v3 `SwapRouter` and what it sells.
#[derive(Debug, Serialize, ToSchema)]
pub struct SwapInfo {
    /// The `SwapRouter` (its `multicall` of `selfPermit` and `exactOutput`).
    pub router: String,
    /// The token a member pays the swap with.
    pub pay_with: TokenView,
    /// The bound above the quoted input, in basis points.
    pub slippage_bps: u32,
    /// Symbols of the tokens that can be bought.
    pub tokens: Vec<String>,
}

/// `GET /v1/swaps/quote` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SwapQuoteQuery {
    /// Symbol of the token to buy (one of `swap.tokens` in `GET /v1/plans`).
    #[param(example = "TMAI")]
    pub token: String,
    /// Exactly how much to buy, in the token's smallest units (decimal string, at least 1).
    #[param(pattern = "^[0-9]{1,40}$", example = "2500000000000000000000")]
    pub amount: String,
}

/// What buying exactly `amount_out` costs now, and the transaction that buys it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SwapQuoteView {
    /// The `SwapRouter` to call.
    pub router: String,
    /// The token paid with.
    pub pay_with: TokenView,
    /// The token bought.
    pub token: TokenView,
    /// The amount bought, exactly (smallest units, decimal string).
    pub amount_out: String,
    /// What the swap needs now, by Uniswap's `QuoterV2` simulation (smallest units of
    /// `pay_with`, decimal string); the pools' fees are included.
    pub amount_in: String,
    /// The most the swap may take: `amount_in` plus `slippage_bps`, rounded up. The page
    /// passes it as `amountInMaximum`; a market that moved further makes the swap revert.
    pub amount_in_max: String,
    /// The bound above `amount_in`, in basis points.
    pub slippage_bps: u32,
    /// The pools' fees compounded, in parts per million of the input (included in
    /// `amount_in`).
    pub pool_fee_ppm: u32,
    /// Pools on the route.
    pub hops: usize,
    /// The `exactOutput` path (hex): the bought token first, the paying token last.
    pub path: String,
    /// Gas of the swap transaction (the quoter's estimate of the swap plus the permit and
    /// the transaction itself).
    pub gas: u64,
    /// `gas` times the node's gas price, in wei (decimal string), when the node answered:
    /// the network fee the page shows.
    pub network_fee_wei: Option<String>,
}

/// Returns the tier's name.
pub fn tier_name(tier: u8) -> &'static str {
    match tier {
        1 => "Basic",
        2 => "Advanced",
        3 => "Premium",
        4 => "VIP",
        _ => "Member",
    }
}

/// Lists the plans, the accepted tokens and the chain.
#[utoipa::path(get, path = "/v1/plans", tag = "public", responses((status = 200, body = PlansResponse), (status = 429, body = ErrorBody)))]
pub async fn plans(State(state): State<AppState>) -> Json<PlansResponse> {
    let d = &state.deployment;
    let tokens: Vec<TokenView> =
        d.tokens.iter().map(|t| TokenView { symbol: t.symbol.clone(), address: t.address.to_string(), decimals: t.decimals, permit: t.permit }).collect();
    let card_configured = state.processor.is_some() && !state.http.public_url().is_empty();
    let plans = state
        .catalog
        .plans()
        .map(|p| PlanView {
            id: p.id,
            name: p.name.clone(),
            tier: p.tier,
            tier_name: tier_name(p.tier).to_string(),
            period: p.period.to_string(),
            price_usd: p.price_usd.map(|usd| usd.to_string()),
            prices: d
                .tokens
                .iter()
                .filter_map(|t| {
                    let price = super::rates::plan_price(&state, p, t)?;
                    Some(PriceView {
                        token: t.symbol.clone(),
                        amount: price.amount.map(|a| a.units().to_string()).unwrap_or_default(),
                        display: price.amount.map(|a| a.to_string()).unwrap_or_default(),
                        usd: price.pricing.as_ref().map(Into::into),
                        reason: price.reason,
                        reason_code: price.reason_code,
                    })
                })
                .collect(),
            card_price_cents: p.card_price.map(crate::money::Cents::minor),
            trial_days: p.trial_days,
            card_available: card_configured && p.card_price.is_some() && p.card_price_id.is_some(),
            discount_percent: p.tmai_discount.map(crate::money::Discount::as_percent),
        })
        .collect();
    Json(PlansResponse {
        chain: ChainInfo {
            id: d.chain_id,
            name: state.http.chain_name.clone(),
            rpc_url: state.http.public_rpc_url().map(String::from),
            explorer_tx_url: state.http.explorer_tx_url.as_deref().map(str::trim).filter(|u| !u.is_empty()).map(String::from),
            checkout: d.checkout.to_string(),
            badge: d.badge.to_string(),
        },
        tokens,
        plans,
        rates: super::rates::rate_views(&state),
        buy_url: state.rates.settings().buy_url.clone(),
        swap: state.swaps.as_deref().map(|desk| SwapInfo {
            router: desk.router.to_string(),
            pay_with: token_view(&desk.pay_with),
            slippage_bps: desk.slippage_bps,
            tokens: desk.routes.iter().map(|r| r.token.symbol.clone()).collect(),
        }),
    })
}

fn token_view(t: &crate::chain::deployment::TokenInfo) -> TokenView {
    TokenView { symbol: t.symbol.clone(), address: t.address.to_string(), decimals: t.decimals, permit: t.permit }
}

/// Prices buying exactly `amount` of `token` through the configured swap (Uniswap's
/// `QuoterV2`, simulated by the node): what the checkout page shows before the wallet opens.
#[utoipa::path(get, path = "/v1/swaps/quote", tag = "public", params(SwapQuoteQuery), responses(
    (status = 200, body = SwapQuoteView),
    (status = 400, body = ErrorBody, description = "An amount that is not 1 to 10^36 smallest units"),
    (status = 404, body = ErrorBody, description = "No swap is configured (`[pricing.swap]`), or none buys that token"),
    (status = 429, body = ErrorBody),
    (status = 503, body = ErrorBody, description = "The market cannot price that swap now (`swap_unpriced`), or as many quotes are being worked out as allowed (`swap_busy`, with `Retry-After`)"),
))]
pub async fn swap_quote(State(state): State<AppState>, query: Result<Query<SwapQuoteQuery>, QueryRejection>) -> Result<Json<SwapQuoteView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let desk = state.swaps.as_deref().ok_or_else(|| ApiError::not_found("no swap is configured: set [pricing.swap]"))?;
    let amount = query.amount.trim();
    let amount_out = (!amount.is_empty() && amount.len() <= 40 && amount.bytes().all(|b| b.is_ascii_digit()))
        .then(|| U256::from_str_radix(amount, 10).ok())
        .flatten()
        .ok_or_else(|| ApiError::invalid(format!("amount: {amount:?} is not a whole number of smallest units")))?;
    let quote = desk.quote(query.token.trim(), amount_out).await.map_err(|e| match e {
        SwapError::NoRoute(..) => ApiError::not_found(e.to_string()),
        SwapError::Amount => ApiError::invalid(e.to_string()),
        SwapError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "swap_busy", e.to_string()).retry_after(1),
        SwapError::Unpriced(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "swap_unpriced", e.to_string()).retry_after(5),
    })?;
    Ok(Json(SwapQuoteView {
        router: desk.router.to_string(),
        pay_with: token_view(&quote.pay_with),
        token: token_view(&quote.route.token),
        amount_out: quote.amount_out.to_string(),
        amount_in: quote.amount_in.to_string(),
        amount_in_max: quote.amount_in_max.to_string(),
        slippage_bps: desk.slippage_bps,
        pool_fee_ppm: quote.route.pool_fee_ppm,
        hops: quote.route.hops,
        path: quote.route.path.to_string(),
        gas: quote.gas,
        network_fee_wei: quote.gas_price_wei.map(|p| (u128::from(quote.gas) * p).to_string()),
    }))
}

/// Returns the plans route (public, rate-limited per client).
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/plans", get(plans)).route("/v1/swaps/quote", get(swap_quote))
}

/// The plans route's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(plans, swap_quote))]
pub(super) struct Api;
