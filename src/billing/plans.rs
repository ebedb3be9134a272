//! The plans catalog: read from the configuration, checked against the deployment's tokens
//! at start-up. A bad catalog stops the service with an error naming the field.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use serde::Serialize;

use crate::{
    chain::deployment::TokenInfo,
    config::PlanConfig,
    money::{AmountError, Cents, Discount, PaidRate, TokenAmount, Usd},
};

/// Seconds in a monthly period (30 days: the badge and the database count in seconds).
pub const MONTH_SECS: u64 = 30 * 86_400;
/// Seconds in a yearly period (365 days).
pub const YEAR_SECS: u64 = 365 * 86_400;

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
#[derive(Debug, Clone)]
pub struct Plan {
    /// Catalog id.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Tier rank (1 or more).
    pub tier: u8,
    /// Billing period.
    pub period: Period,
    /// Explicit price per period, by token address.
    pub prices: BTreeMap<Address, TokenAmount>,
    /// USD price per period, when the plan is priced in dollars.
    pub price_usd: Option<Usd>,
    /// Card price per period.
    pub card_price: Option<Cents>,
    /// The card processor's price id (`price_…`).
    pub card_price_id: Option<String>,
    /// Trial days for card payments.
    pub trial_days: u32,
    /// Discount of the TMAI price against the list price (taken off the USD price of
    /// `pricing.discount_token` payments; only shown beside an explicit TMAI price).
    pub tmai_discount: Option<Discount>,
}

impl Plan {
    /// Returns the explicit price of `periods` periods in `token`, if the plan has one (and
    /// it does not overflow).
    pub fn price(&self, token: Address, periods: u32) -> Option<TokenAmount> {
        self.prices.get(&token)?.checked_mul(periods)
    }

    /// Returns what one period of the plan is worth in dollars, the measure that upgrade
    /// credit compares tiers by: `price_usd`, else the card price (a hundredth of a dollar
    /// per cent); `None` for a plan priced only in tokens.
    pub fn list_worth(&self) -> Option<Usd> {
        self.price_usd.or_else(|| self.card_price.and_then(Cents::to_usd))
    }

    /// Returns the plan's list price per second ([`Plan::list_worth`] over its period).
    pub fn list_rate(&self) -> Option<PaidRate> {
        PaidRate::new(self.list_worth()?, self.period.seconds())
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

/// Builds the error for a field of the plan being validated.
type FieldError<'a> = &'a dyn Fn(&str, String) -> CatalogError;

impl Catalog {
    /// Validates `configs` against the deployment's `tokens`.
    pub fn new(configs: &[PlanConfig], tokens: &[TokenInfo]) -> Result<Self, CatalogError> {
        let mut plans = BTreeMap::new();
        for (i, config) in configs.iter().enumerate() {
            let err = |field: &str, message: String| CatalogError { field: format!("plans[{i}].{field}"), message };
            let plan = validate(config, tokens, &plans, &err)?;
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

    /// Returns what a payment of `periods` of `plan` in `token` at the plan's own token
    /// price is worth in dollars (a plan priced in tokens has no locked rate): the plan's
    /// [`Plan::list_worth`] for those periods, less the plan's TMAI discount when paid in
    /// TMAI (the explicit TMAI price is the discounted one), rounded down. Zero for a plan
    /// with no dollar or card price: such time credits nothing on an upgrade.
    pub fn token_payment_worth(&self, plan: &Plan, periods: u32, token: Address) -> Usd {
        let Some(worth) = plan.list_worth().and_then(|w| w.checked_mul(periods)) else { return Usd::ZERO };
        let in_tmai = self.tokens.iter().any(|t| t.address == token && t.symbol.eq_ignore_ascii_case("TMAI"));
        match plan.tmai_discount {
            Some(discount) if in_tmai => worth.less_down(discount),
            _ => worth,
        }
    }

    /// Returns the token at `address`.
    pub fn token_at(&self, address: Address) -> Option<&TokenInfo> {
        self.tokens.iter().find(|t| t.address == address)
    }

    /// Returns the token with `symbol` (case-insensitive).
    pub fn token(&self, symbol: &str) -> Option<&TokenInfo> {
        self.tokens.iter().find(|t| t.symbol.eq_ignore_ascii_case(symbol))
    }
}

/// Validates one plan's configuration; `plans` are the plans validated before it.
fn validate(config: &PlanConfig, tokens: &[TokenInfo], plans: &BTreeMap<u32, Plan>, err: FieldError<'_>) -> Result<Plan, CatalogError> {
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
    let price_usd = match &config.price_usd {
        None => None,
        Some(text) => match Usd::parse(text) {
            Ok(Usd::ZERO) => return Err(err("price_usd", "must be greater than zero".into())),
            Ok(usd) => Some(usd),
            Err(e) => return Err(err("price_usd", e.to_string())),
        },
    };
    // The card price defaults to the USD price in whole cents (rounded up).
    let card_price = config.card_price_cents.map(Cents::from_minor).or(price_usd.map(Usd::to_cents));
    if config.prices.is_empty() && card_price.is_none() {
        return Err(err("prices", "a plan needs price_usd, a token price or a card price".into()));
    }
    let prices = token_prices(config, tokens, err)?;
    if config.card_price_cents == Some(0) {
        return Err(err("card_price_cents", "must be greater than zero".into()));
    }
    let card_price_id = match config.card_price_id.as_deref().map(str::trim) {
        None => None,
        Some("") => return Err(err("card_price_id", "must not be empty (leave it out for a plan not sold by card subscription)".into())),
        Some(id) => {
            if card_price.is_none() {
                return Err(err("card_price_id", "needs card_price_cents: the amount the processor charges for this price".into()));
            }
            if let Some(other) = plans.values().find(|p: &&Plan| p.card_price_id.as_deref() == Some(id)) {
                return Err(err("card_price_id", format!("{id:?} is also the card price of plan {}; each processor price names one plan", other.id)));
            }
            Some(id.to_string())
        }
    };
    let tmai_discount = match config.tmai_discount_percent {
        None => None,
        Some(percent) => {
            Some(Discount::percent(percent).filter(|d| *d != Discount::NONE).ok_or_else(|| err("tmai_discount_percent", "must be between 1 and 99".into()))?)
        }
    };
    Ok(Plan {
        id: config.id,
        name: config.name.trim().to_string(),
        tier: config.tier,
        period,
        prices,
        price_usd,
        card_price,
        card_price_id,
        trial_days: config.trial_days,
        tmai_discount,
    })
}

/// Parses a plan's explicit token prices (whole tokens, exactly, at most the token's
/// decimals) by token address.
fn token_prices(config: &PlanConfig, tokens: &[TokenInfo], err: FieldError<'_>) -> Result<BTreeMap<Address, TokenAmount>, CatalogError> {
    let mut prices = BTreeMap::new();
    for (symbol, text) in &config.prices {
        let field = format!("prices.{symbol}");
        let token = tokens.iter().find(|t| t.symbol.eq_ignore_ascii_case(symbol)).ok_or_else(|| {
            let known: Vec<&str> = tokens.iter().map(|t| t.symbol.as_str()).collect();
            err(&field, format!("unknown token (the deployment has {})", known.join(", ")))
        })?;
        let price = TokenAmount::parse(text, token.decimals).map_err(|e| match e {
            AmountError::TooPrecise { .. } => err(&field, format!("{text:?} has more than the token's {} decimals", token.decimals)),
            e => err(&field, e.to_string()),
        })?;
        if price.is_zero() {
            return Err(err(&field, "price must be greater than zero".into()));
        }
        prices.insert(token.address, price);
    }
    Ok(prices)
}
