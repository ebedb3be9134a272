//! The market rate a USD-priced order was quoted at: the `orders` columns of migration
//! 0011 (`usd_micro`, `rate_usd`, `rate_source`, `rate_at`), NULL for orders priced in
//! tokens.

use super::orders::NewOrder;

/// The rate a USD-priced order was quoted at (columns of `orders`, migration 0011).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPricing {
    /// USD value of the amount at the rate, in micro-dollars.
    pub usd_micro: i64,
    /// USD per whole token (decimal string).
    pub rate_usd: String,
    /// The rate's source.
    pub rate_source: String,
    /// Unix time the rate was read.
    pub rate_at: i64,
}

/// What a payment's events show of a USD-priced order: the amount's USD value at the
/// locked rate, and that rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderUsd {
    /// USD value in micro-dollars.
    pub usd_micro: i64,
    /// USD per whole token (decimal string).
    pub rate_usd: String,
}

impl OrderUsd {
    /// Returns the pair when both columns are set.
    pub fn from_columns(usd_micro: Option<i64>, rate_usd: Option<String>) -> Option<Self> {
        Some(Self { usd_micro: usd_micro?, rate_usd: rate_usd? })
    }

    /// The USD value as `"40.18"`.
    pub fn usd_value(&self) -> String {
        let micro = self.usd_micro.max(0) as u64;
        let frac = format!("{:06}", micro % 1_000_000);
        let frac = frac.trim_end_matches('0');
        format!("{}.{frac:0<2}", micro / 1_000_000)
    }
}

impl NewOrder {
    pub(super) fn usd_micro(&self) -> Option<i64> {
        self.pricing.as_ref().map(|p| p.usd_micro)
    }
    pub(super) fn rate_usd(&self) -> Option<String> {
        self.pricing.as_ref().map(|p| p.rate_usd.clone())
    }
    pub(super) fn rate_source(&self) -> Option<String> {
        self.pricing.as_ref().map(|p| p.rate_source.clone())
    }
    pub(super) fn rate_at(&self) -> Option<i64> {
        self.pricing.as_ref().map(|p| p.rate_at)
    }
}
