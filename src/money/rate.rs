//! A market rate: US dollars per one whole token, as an integer scaled by 10^18.

use std::fmt;

use alloy::primitives::U256;

use super::{AmountError, format_decimal, parse_decimal};

/// The scale of a [`UsdRate`]: 10^18.
pub const RATE_SCALE: u128 = 1_000_000_000_000_000_000;

/// A market rate: USD per one whole token, times 10^18 (18 decimals, exact). The value is
/// public for the rate sources that compute one (a pool's tick, a feed's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsdRate(pub U256);

impl UsdRate {
    /// One dollar per token.
    pub const ONE: Self = Self(U256::from_limbs([RATE_SCALE as u64, (RATE_SCALE >> 64) as u64, 0, 0]));

    /// Parses a decimal rate such as `"0.00397"` (at most 18 decimals), exactly.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        parse_decimal(text, text.trim(), 18, "a decimal number such as \"0.25\"").map(Self)
    }

    /// Returns a rate of `answer / 10^decimals` (a Chainlink answer), rounded down to the
    /// rate's 18 decimals; `None` on overflow.
    pub fn from_scaled(answer: U256, decimals: u8) -> Option<Self> {
        let scale = U256::from(10).checked_pow(U256::from(decimals))?;
        Some(Self(answer.checked_mul(U256::from(RATE_SCALE))? / scale))
    }

    /// Returns this rate times `other` (token/ETH × ETH/USD), rounded down; `None` on
    /// overflow.
    pub fn times(self, other: Self) -> Option<Self> {
        Some(Self(self.0.checked_mul(other.0)? / U256::from(RATE_SCALE)))
    }

    /// Whether the rate is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Returns the rate as a decimal string with trailing zeros trimmed (`"0.003971"`,
    /// `"2"`): the form the API answers and the `orders.rate_usd` column stores.
    pub fn to_decimal(self) -> String {
        format_decimal(self.0, 18, 0)
    }
}

impl serde::Serialize for UsdRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_decimal())
    }
}

impl fmt::Display for UsdRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal())
    }
}
