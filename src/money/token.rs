//! A token amount: smallest units with the token's decimals, and the conversions between
//! it and US dollars at a market rate.

use std::fmt;

use alloy::primitives::{U256, U512};

use super::{AmountError, Discount, MICRO_PER_USD, RATE_SCALE, Usd, UsdRate, format_decimal, parse_decimal};

/// An amount of a token: `units` of 10^-`decimals` of a whole token (the `uint256` that
/// quotes, logs and the `amount` columns carry), with the token's decimals so that it can
/// be shown in whole tokens and valued in dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenAmount {
    units: U256,
    decimals: u8,
}

impl TokenAmount {
    /// The most decimals a token priced from dollars may have (10^36 keeps every
    /// intermediate product of [`TokenAmount::owed`] inside 256 bits).
    pub const MAX_USD_DECIMALS: u8 = 36;

    /// Returns `units` smallest units of a token with `decimals`.
    pub const fn new(units: U256, decimals: u8) -> Self {
        Self { units, decimals }
    }

    /// Returns the amount in the token's smallest units.
    pub const fn units(self) -> U256 {
        self.units
    }

    /// Returns the token's decimals.
    pub const fn decimals(self) -> u8 {
        self.decimals
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.units.is_zero()
    }

    /// Parses an amount in whole tokens as the configuration writes it (`"49.99"`), exactly:
    /// digits past the token's `decimals` are refused, never dropped.
    pub fn parse(text: &str, decimals: u8) -> Result<Self, AmountError> {
        parse_decimal(text, text.trim(), decimals, "a token amount such as \"49.99\"").map(|units| Self { units, decimals })
    }

    /// Returns `times` this amount (a price per period times periods), or `None` on
    /// overflow.
    pub fn checked_mul(self, times: u32) -> Option<Self> {
        Some(Self { units: self.units.checked_mul(U256::from(times))?, ..self })
    }

    /// Returns what `price` less `discount` costs at `rate` in a token with `decimals`:
    /// `price × (100 − discount) / 100 / rate`, computed exactly and rounded **up** to the
    /// smallest unit, so the amount is never worth less than the discounted price (the
    /// discount is applied inside the one division, not rounded on its own first). `None`
    /// for a zero rate, more than [`TokenAmount::MAX_USD_DECIMALS`] decimals, or overflow.
    pub fn owed(price: Usd, discount: Discount, rate: UsdRate, decimals: u8) -> Option<Self> {
        if rate.is_zero() || decimals > Self::MAX_USD_DECIMALS {
            return None;
        }
        let ten = U256::from(10);
        let numerator = U256::from(price.micro())
            .checked_mul(U256::from(discount.keep()))?
            .checked_mul(ten.pow(U256::from(decimals)))?
            .checked_mul(U256::from(RATE_SCALE))?;
        let denominator = rate.0.checked_mul(U256::from(MICRO_PER_USD))?.checked_mul(U256::from(100))?;
        Some(Self { units: numerator.div_ceil(denominator), decimals })
    }

    /// Returns the amount rounded **up** to `significant` decimal digits (0: unchanged), so
    /// a quoted amount reads well in a wallet and is never below the exact one; `None` if
    /// rounding up overflows.
    pub fn round_up_significant(self, significant: u8) -> Option<Self> {
        let value = self.units;
        if significant == 0 || value.is_zero() {
            return Some(self);
        }
        let digits = value.to_string().len();
        if digits <= usize::from(significant) {
            return Some(self);
        }
        let step = U256::from(10).pow(U256::from(digits - usize::from(significant)));
        Some(Self { units: value.div_ceil(step).checked_mul(step)?, ..self })
    }

    /// Returns what the amount is worth at `rate`, rounded **down** to the micro-dollar: the
    /// most a member paid (what is credited never exceeds the exact value). `None` past
    /// [`Usd::MAX`].
    pub fn usd_value(self, rate: UsdRate) -> Option<Usd> {
        let wide = |v: U256| U512::from_limbs_slice(v.as_limbs());
        let ten = U512::from(10);
        let numerator = wide(self.units).checked_mul(wide(rate.0))?.checked_mul(U512::from(MICRO_PER_USD))?;
        let denominator = ten.checked_pow(U512::from(self.decimals))?.checked_mul(U512::from(RATE_SCALE))?;
        u64::try_from(numerator / denominator).ok().and_then(Usd::from_micro)
    }
}

impl fmt::Display for TokenAmount {
    /// Writes the amount in whole tokens with trailing zeros trimmed (`"16072"`,
    /// `"49.99"`), as the plans list shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_decimal(self.units, self.decimals, 0))
    }
}
