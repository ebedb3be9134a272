//! How the market rates show in the API: per token in `GET /v1/plans` and `/readyz`, and
//! the USD side of a checkout.

use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::{
    billing::{
        plans::Plan,
        quotes::{QuoteError, QuotePricing, price_plan},
        rates::{RateStatus, RefusalCode},
    },
    chain::deployment::TokenInfo,
    money::TokenAmount,
    store::orders::OrderPricing,
};

/// One token's market rate.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RateView {
    /// Token symbol.
    pub token: String,
    /// `stable`, `chainlink`, `uniswap_v3` or `fixed`.
    pub source: String,
    /// Whether quotes in the token can be priced now.
    pub healthy: bool,
    /// USD per whole token (decimal string), when healthy.
    pub rate_usd: Option<String>,
    /// Block the rate was read at, when healthy.
    pub block: Option<u64>,
    /// Seconds since the rate was read (or refused).
    pub age_secs: u64,
    /// Why quotes in the token are refused, when they are: a fixed sentence per
    /// `reason_code` (never the node's own words).
    pub reason: Option<String>,
    /// Why quotes in the token are refused, as a code, when they are.
    pub reason_code: Option<RefusalCode>,
}

impl From<&RateStatus> for RateView {
    fn from(s: &RateStatus) -> Self {
        Self {
            token: s.symbol.clone(),
            source: s.source.into(),
            healthy: s.current.is_ok(),
            rate_usd: s.current.as_ref().ok().map(|r| r.rate.to_decimal()),
            block: s.current.as_ref().ok().map(|r| r.block),
            age_secs: s.age_secs,
            reason: s.current.as_ref().err().map(|e| e.reason.clone()),
            reason_code: s.current.as_ref().err().map(|e| e.code),
        }
    }
}

/// Every priced token's rate.
pub(crate) fn rate_views(state: &AppState) -> Vec<RateView> {
    state.rates.statuses().iter().map(RateView::from).collect()
}

/// The USD side of a quote: the price, what the amount is worth at the locked rate, and
/// the rate.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsdPricing {
    /// The plan's USD price for the periods bought, after discount (`"40.18"`); null when
    /// read back from a stored order.
    pub price_usd: Option<String>,
    /// USD value of the amount at the rate (`"40.18"`; never below the price).
    pub usd_value: String,
    /// USD per whole token the amount was priced at.
    pub rate_usd: String,
    /// The rate's source.
    pub source: String,
    /// Unix time the rate was read.
    pub rate_at: u64,
    /// Discount taken off the USD price, in percent (null when read back).
    pub discount_percent: Option<u8>,
}

impl From<&QuotePricing> for UsdPricing {
    fn from(p: &QuotePricing) -> Self {
        Self {
            price_usd: Some(p.price_usd.to_string()),
            usd_value: p.usd_value.to_string(),
            rate_usd: p.rate.to_decimal(),
            source: p.source.into(),
            rate_at: p.rate_at,
            discount_percent: Some(p.discount.as_percent()),
        }
    }
}

impl From<&OrderPricing> for UsdPricing {
    fn from(p: &OrderPricing) -> Self {
        Self {
            price_usd: None,
            usd_value: p.usd_value.to_string(),
            rate_usd: p.rate.to_decimal(),
            source: p.rate_source.clone(),
            rate_at: p.rate_at,
            discount_percent: None,
        }
    }
}

/// A plan's price in one token now, as `GET /v1/plans` shows it.
pub(crate) struct PlanPrice {
    pub(crate) amount: Option<TokenAmount>,
    pub(crate) pricing: Option<QuotePricing>,
    pub(crate) reason: Option<String>,
    pub(crate) reason_code: Option<RefusalCode>,
}

/// The price of one period of `plan` in `token` now, if the plan is sold in it.
pub(crate) fn plan_price(state: &AppState, plan: &Plan, token: &TokenInfo) -> Option<PlanPrice> {
    match price_plan(Some(&state.rates), plan, token, 1) {
        Ok((amount, pricing)) => Some(PlanPrice { amount: Some(amount), pricing, reason: None, reason_code: None }),
        Err(QuoteError::RateUnavailable(e)) => Some(PlanPrice { amount: None, pricing: None, reason: Some(e.reason), reason_code: Some(e.code) }),
        Err(_) => None,
    }
}
