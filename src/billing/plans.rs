//! The plans catalog: read from the configuration, checked against the deployment's tokens
//! at start-up. A bad catalog stops the service with an error naming the field.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256, utils::parse_units};
use serde::{Deserialize, Serialize};

use crate::chain::deployment::TokenInfo;

/// Seconds in a monthly period (30 days: the badge and the database count in seconds).
pub const MONTH_SECS: u64 = 30 * 86_400;
/// Seconds in a yearly period (365 days).
pub const YEAR_SECS: u64 = 365 * 86_400;

/// One plan as written in the configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Catalog id; also `Quote.planId` on-chain.
    pub id: u32,
    /// Display name ("Premium monthly").
    pub name: String,
    /// Tier rank: 1 Basic, 2 Advanced, 3 Premium, 4 VIP; a higher rank is an upgrade.
    pub tier: u8,
    /// Billing period: `monthly` or `yearly`.
    pub period: String,
    /// Price per period by token symbol, in whole tokens as a decimal string ("49.99").
    /// A TMAI discount is simply a lower TMAI price.
    #[serde(default)]
    pub prices: BTreeMap<String, String>,
    /// Price per period in US dollars as a decimal string (`"49.00"`), kept exactly (in
    /// micro-dollars). The plan is then sold in every token with a rate source in
    /// `[pricing.tokens]` at the market rate; an explicit `prices` entry overrides it.
    #[serde(default)]
    pub price_usd: Option<String>,
    /// Card price per period in cents; no card payments when absent (defaults to the USD
    /// price in cents when `price_usd` is set).
    #[serde(default)]
    pub card_price_cents: Option<u64>,
    /// The card processor's price id for this plan (Stripe's `price_…`): invoices and
    /// subscription changes name the plan by it. Unique across plans; needs
    /// `card_price_cents` (what the processor charges for it).
    #[serde(default)]
    pub card_price_id: Option<String>,
    /// Free trial days for card payments (never for on-chain payments).
    #[serde(default)]
    pub trial_days: u32,
    /// The discount the TMAI price gives against the list price, in percent. With
    /// `price_usd` it is taken off the USD price of `pricing.discount_token` payments; with
    /// an explicit TMAI price it is only shown (the TMAI price itself is what is charged).
    #[serde(default)]
    pub tmai_discount_percent: Option<u8>,
}

/// A billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// 30 days.
    Monthly,
    /// 365 days.
    Yearly,
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        })
    }
}

impl Period {
    /// Returns the period's length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Monthly => MONTH_SECS,
            Self::Yearly => YEAR_SECS,
        }
    }
}

/// A validated plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Catalog id.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Tier rank (1 or more).
    pub tier: u8,
    /// Billing period.
    pub period: Period,
    /// Price per period in the token's smallest unit, by token address.
    pub prices: BTreeMap<Address, U256>,
    /// USD price per period in micro-dollars, when the plan is priced in dollars.
    pub price_usd_micro: Option<u64>,
    /// Card price per period in cents.
    pub card_price_cents: Option<u64>,
    /// The card processor's price id (`price_…`).
    pub card_price_id: Option<String>,
    /// Trial days for card payments.
    pub trial_days: u32,
    /// Discount of the TMAI price against the list price, in percent (for display).
    pub tmai_discount_percent: Option<u8>,
}

impl Plan {
    /// Returns the price of `periods` periods in `token`, if the plan is sold in it.
    pub fn price(&self, token: Address, periods: u32) -> Option<U256> {
        self.prices.get(&token).map(|p| *p * U256::from(periods))
    }
}

/// Why the catalog is invalid; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("plans catalog: {field}: {message}")]
pub struct CatalogError {
    /// The offending field, e.g. `plans[2].prices.DOGE`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The validated plans, by id.
#[derive(Debug, Clone)]
pub struct Catalog {
    plans: BTreeMap<u32, Plan>,
    tokens: Vec<TokenInfo>,
}

impl Catalog {
    /// Validates `configs` against the deployment's `tokens`.
    pub fn new(configs: &[PlanConfig], tokens: &[TokenInfo]) -> Result<Self, CatalogError> {
        let mut plans = BTreeMap::new();
        for (i, config) in configs.iter().enumerate() {
            let err = |field: &str, message: String| CatalogError { field: format!("plans[{i}].{field}"), message };
            if config.id == 0 {
                return Err(err("id", "must be 1 or more".into()));
            }
            if config.name.trim().is_empty() {
                return Err(err("name", "must not be empty".into()));
            }
            if config.tier == 0 {
                return Err(err("tier", "must be 1 or more (1 Basic … 4 VIP)".into()));
            }
            let period = match config.period.trim().to_ascii_lowercase().as_str() {
                "monthly" | "month" => Period::Monthly,
                "yearly" | "year" | "annual" => Period::Yearly,
                other => return Err(err("period", format!("{other:?} is not a period; use monthly or yearly"))),
            };
            let price_usd_micro = match &config.price_usd {
                None => None,
                Some(text) => match super::pricing::parse_usd(text) {
                    Ok(0) => return Err(err("price_usd", "must be greater than zero".into())),
                    Ok(micro) => Some(micro),
                    Err(message) => return Err(err("price_usd", message)),
                },
            };
            // The card price defaults to the USD price in whole cents (rounded up).
            let card_price_cents = config.card_price_cents.or(price_usd_micro.map(|m| m.div_ceil(10_000)));
            if config.prices.is_empty() && card_price_cents.is_none() {
                return Err(err("prices", "a plan needs price_usd, a token price or a card price".into()));
            }
            let mut prices = BTreeMap::new();
            for (symbol, text) in &config.prices {
                let field = format!("prices.{symbol}");
                let token = tokens.iter().find(|t| t.symbol.eq_ignore_ascii_case(symbol)).ok_or_else(|| {
                    let known: Vec<&str> = tokens.iter().map(|t| t.symbol.as_str()).collect();
                    err(&field, format!("unknown token (the deployment has {})", known.join(", ")))
                })?;
                let trimmed = text.trim();
                if trimmed.starts_with('-') {
                    return Err(err(&field, format!("{text:?} is negative")));
                }
                // parse_units would silently drop digits past the token's decimals.
                if trimmed.split_once('.').is_some_and(|(_, frac)| frac.len() > usize::from(token.decimals)) {
                    return Err(err(&field, format!("{text:?} has more than the token's {} decimals", token.decimals)));
                }
                let units: U256 = parse_units(trimmed, token.decimals)
                    .map_err(|e| err(&field, format!("{text:?} is not an amount with at most {} decimals: {e}", token.decimals)))?
                    .into();
                if units.is_zero() {
                    return Err(err(&field, "price must be greater than zero".into()));
                }
                prices.insert(token.address, units);
            }
            if config.card_price_cents == Some(0) {
                return Err(err("card_price_cents", "must be greater than zero".into()));
            }
            let card_price_id = match config.card_price_id.as_deref().map(str::trim) {
                None => None,
                Some("") => return Err(err("card_price_id", "must not be empty (leave it out for a plan not sold by card subscription)".into())),
                Some(id) => {
                    if card_price_cents.is_none() {
                        return Err(err("card_price_id", "needs card_price_cents: the amount the processor charges for this price".into()));
                    }
                    if let Some(other) = plans.values().find(|p: &&Plan| p.card_price_id.as_deref() == Some(id)) {
                        return Err(err("card_price_id", format!("{id:?} is also the card price of plan {}; each processor price names one plan", other.id)));
                    }
                    Some(id.to_string())
                }
            };
            if config.tmai_discount_percent.is_some_and(|d| d == 0 || d >= 100) {
                return Err(err("tmai_discount_percent", "must be between 1 and 99".into()));
            }
            let plan = Plan {
                id: config.id,
                name: config.name.trim().to_string(),
                tier: config.tier,
                period,
                prices,
                price_usd_micro,
                card_price_cents,
                card_price_id,
                trial_days: config.trial_days,
                tmai_discount_percent: config.tmai_discount_percent,
            };
            if plans.insert(config.id, plan).is_some() {
                return Err(err("id", format!("{} is used by another plan", config.id)));
            }
        }
        if plans.is_empty() {
            return Err(CatalogError { field: "plans".into(), message: "the catalog has no plans".into() });
        }
        Ok(Self { plans, tokens: tokens.to_vec() })
    }

    /// Returns the plan with `id`.
    pub fn get(&self, id: u32) -> Option<&Plan> {
        self.plans.get(&id)
    }

    /// Returns the plan whose processor price id is `price_id` (`card_price_id`).
    pub fn by_card_price(&self, price_id: &str) -> Option<&Plan> {
        self.plans.values().find(|p| p.card_price_id.as_deref() == Some(price_id))
    }

    /// Returns every plan, by id.
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }

    /// Returns the token with `symbol` (case-insensitive).
    pub fn token(&self, symbol: &str) -> Option<&TokenInfo> {
        self.tokens.iter().find(|t| t.symbol.eq_ignore_ascii_case(symbol))
    }
}
