//! The `[[plans]]` tables: each plan as written in the configuration file. The catalog
//! (`billing::plans::Catalog`) checks them against the deployment at start-up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
