//! The market rate a USD-priced order was quoted at: the `orders` columns of migration
//! 0011 (`usd_micro`, `rate_usd`, `rate_source`, `rate_at`), NULL for orders priced in
//! tokens. The typed values ([`Usd`], [`UsdRate`]) become columns and come back here, in
//! one place: `usd_micro` holds micro-dollars, `rate_usd` the rate's decimal text.
//!
//! This module depends on nothing else in the store: `orders` uses it, not the reverse.

use super::StoreError;
use crate::money::{Usd, UsdRate};

/// The rate a USD-priced order was quoted at (columns of `orders`, migration 0011).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPricing {
    /// USD value of the amount at the rate (rounded down).
    pub usd_value: Usd,
    /// USD per whole token.
    pub rate: UsdRate,
    /// The rate's source.
    pub rate_source: String,
    /// Unix time the rate was read.
    pub rate_at: u64,
}

impl OrderPricing {
    /// Reads the four columns: `None` when the order was priced in tokens (`usd_micro` or
    /// `rate_usd` NULL); an error for a value no writer stores.
    pub(super) fn from_columns(
        usd_micro: Option<i64>,
        rate_usd: Option<String>,
        rate_source: Option<String>,
        rate_at: Option<i64>,
    ) -> Result<Option<Self>, StoreError> {
        let (Some(usd_micro), Some(rate_usd)) = (usd_micro, rate_usd) else { return Ok(None) };
        Ok(Some(Self {
            usd_value: Usd::from_stored(usd_micro).ok_or(StoreError::Corrupt("orders.usd_micro"))?,
            rate: UsdRate::parse(&rate_usd).map_err(|_| StoreError::Corrupt("orders.rate_usd"))?,
            rate_source: rate_source.unwrap_or_default(),
            rate_at: u64::try_from(rate_at.unwrap_or_default()).map_err(|_| StoreError::Corrupt("orders.rate_at"))?,
        }))
    }

    /// Returns the `usd_micro` column.
    pub(super) fn usd_micro_column(&self) -> i64 {
        self.usd_value.to_stored()
    }

    /// Returns the `rate_usd` column.
    pub(super) fn rate_usd_column(&self) -> String {
        self.rate.to_decimal()
    }

    /// Returns the `rate_source` column.
    pub(super) fn rate_source_column(&self) -> String {
        self.rate_source.clone()
    }

    /// Returns the `rate_at` column (Unix times fit 63 bits).
    pub(super) fn rate_at_column(&self) -> i64 {
        i64::try_from(self.rate_at).unwrap_or(i64::MAX)
    }
}

/// What a payment's events show of a USD-priced order: the amount's USD value at the
/// locked rate, and that rate as the events write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderUsd {
    /// USD value of the amount at the rate.
    pub usd_value: Usd,
    /// USD per whole token, as [`UsdRate::to_decimal`] writes it (`"0.0025"`; decoded and
    /// written again, so always in that form).
    pub rate_usd: String,
}

impl OrderUsd {
    /// Returns the pair when both columns are set and hold values a writer stores (a value
    /// that does not decode is logged and left out, as an order priced in tokens is).
    pub fn from_columns(usd_micro: Option<i64>, rate_usd: Option<String>) -> Option<Self> {
        match OrderPricing::from_columns(usd_micro, rate_usd, None, None) {
            Ok(pricing) => pricing.map(|p| Self { usd_value: p.usd_value, rate_usd: p.rate.to_decimal() }),
            Err(error) => {
                tracing::warn!(%error, "an order's USD columns do not decode; its events leave them out");
                None
            }
        }
    }

    /// The USD value as `"40.18"`.
    pub fn usd_value(&self) -> String {
        self.usd_value.to_string()
    }
}
