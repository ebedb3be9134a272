//! Exact USD arithmetic: USD prices as integer micro-dollars, market rates as USD per whole
//! token scaled by 10^18, and the token amount a USD price costs at a rate, rounded *up* to
//! a number of significant digits so that a member never pays less than the USD price
//! after discount. No floating point anywhere on the way from the price to the amount.

use alloy::primitives::U256;

/// Micro-dollars per dollar.
pub const MICRO_PER_USD: u64 = 1_000_000;

/// The scale of a [`UsdRate`]: 10^18.
pub const RATE_SCALE: u128 = 1_000_000_000_000_000_000;

/// Parses a USD amount such as `"49.00"` or `"0.5"` into micro-dollars (at most six
/// decimals, no sign, no exponent).
pub fn parse_usd(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_start_matches('$');
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a dollar amount such as \"49.00\""));
    }
    if frac.len() > 6 {
        return Err(format!("{text:?} has more than 6 decimals"));
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| format!("{text:?} is too large"))? };
    let frac_micro: u64 = format!("{frac:0<6}").parse().unwrap_or(0);
    whole.checked_mul(MICRO_PER_USD).and_then(|w| w.checked_add(frac_micro)).ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats micro-dollars as `49.00` (two decimals, more when they are not zero).
pub fn format_usd(micro: u64) -> String {
    let whole = micro / MICRO_PER_USD;
    let frac = format!("{:06}", micro % MICRO_PER_USD);
    let frac = frac.trim_end_matches('0');
    format!("{whole}.{frac:0<2}")
}

/// A market rate: USD per one whole token, times 10^18.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsdRate(pub U256);

impl UsdRate {
    /// One dollar per token.
    pub const ONE: Self = Self(U256::from_limbs([RATE_SCALE as u64, (RATE_SCALE >> 64) as u64, 0, 0]));

    /// Parses a decimal rate such as `"0.00397"` (at most 18 decimals).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() && frac.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{text:?} is not a decimal number such as \"0.25\""));
        }
        if frac.len() > 18 {
            return Err(format!("{text:?} has more than 18 decimals"));
        }
        let whole = if whole.is_empty() { U256::ZERO } else { U256::from_str_radix(whole, 10).map_err(|_| format!("{text:?} is too large"))? };
        let frac = U256::from_str_radix(&format!("{frac:0<18}"), 10).map_err(|_| format!("{text:?} is not a number"))?;
        whole.checked_mul(U256::from(RATE_SCALE)).and_then(|w| w.checked_add(frac)).map(Self).ok_or_else(|| format!("{text:?} is too large"))
    }

    /// Returns a rate of `answer / 10^decimals` (a Chainlink answer), if positive.
    pub fn from_scaled(answer: U256, decimals: u8) -> Self {
        let scale = U256::from(10).pow(U256::from(decimals));
        Self(answer * U256::from(RATE_SCALE) / scale)
    }

    /// Returns this rate times `other` (token/ETH × ETH/USD).
    pub fn times(self, other: Self) -> Self {
        Self(self.0 * other.0 / U256::from(RATE_SCALE))
    }

    /// Whether the rate is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Returns the rate as a decimal string with trailing zeros trimmed (`"0.003971"`).
    pub fn to_decimal(self) -> String {
        let scale = U256::from(RATE_SCALE);
        let whole = self.0 / scale;
        let frac = format!("{:018}", self.0 % scale);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() { whole.to_string() } else { format!("{whole}.{frac}") }
    }
}

impl serde::Serialize for UsdRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_decimal())
    }
}

impl std::fmt::Display for UsdRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_decimal())
    }
}

/// Returns `usd_micro` less `discount_percent` %, rounded up to the micro-dollar (what a
/// discounted price may never go under).
pub fn discounted_micro(usd_micro: u64, discount_percent: u8) -> u64 {
    let keep = 100 - u64::from(discount_percent.min(99));
    (u128::from(usd_micro) * u128::from(keep)).div_ceil(100) as u64
}

/// Returns the token amount (smallest units of a token with `decimals`) that `usd_micro`
/// less `discount_percent` % costs at `rate`, rounded up to `significant` digits: never less
/// than the exact discounted value. `None` for a zero rate or on overflow.
pub fn token_amount(usd_micro: u64, discount_percent: u8, rate: UsdRate, decimals: u8, significant: u8) -> Option<U256> {
    if rate.is_zero() || decimals > 36 {
        return None;
    }
    let keep = U256::from(100 - u64::from(discount_percent.min(99)));
    let ten = U256::from(10);
    let numerator = U256::from(usd_micro).checked_mul(keep)?.checked_mul(ten.pow(U256::from(decimals)))?.checked_mul(U256::from(RATE_SCALE))?;
    let denominator = rate.0.checked_mul(U256::from(MICRO_PER_USD))?.checked_mul(U256::from(100))?;
    let exact = numerator.div_ceil(denominator);
    Some(round_up_significant(exact, significant))
}

/// Rounds `value` up to `significant` decimal digits (0: unchanged).
pub fn round_up_significant(value: U256, significant: u8) -> U256 {
    if significant == 0 || value.is_zero() {
        return value;
    }
    let digits = value.to_string().len() as u32;
    if digits <= u32::from(significant) {
        return value;
    }
    let step = U256::from(10).pow(U256::from(digits - u32::from(significant)));
    value.div_ceil(step) * step
}

/// Returns the USD value in micro-dollars of `amount` smallest units of a token with
/// `decimals` at `rate`, rounded down (what the member paid, at most).
pub fn usd_value_micro(amount: U256, rate: UsdRate, decimals: u8) -> u64 {
    let ten = U256::from(10);
    let value = amount.saturating_mul(rate.0).saturating_mul(U256::from(MICRO_PER_USD)) / (ten.pow(U256::from(decimals)) * U256::from(RATE_SCALE));
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn dollar_amounts_parse_exactly() {
        assert_eq!(parse_usd("49.00"), Ok(49_000_000));
        assert_eq!(parse_usd("0.5"), Ok(500_000));
        assert_eq!(parse_usd("$9.99"), Ok(9_990_000));
        assert_eq!(parse_usd("12"), Ok(12_000_000));
        for bad in ["", ".", "-1", "1e3", "1.0000001", "abc", "4 9"] {
            assert!(parse_usd(bad).is_err(), "{bad}");
        }
        assert_eq!(format_usd(49_000_000), "49.00");
        assert_eq!(format_usd(9_995_000), "9.995");
        assert_eq!(UsdRate::parse("0.25").unwrap().to_decimal(), "0.25");
        assert_eq!(UsdRate::parse("2").unwrap(), UsdRate(U256::from(2 * RATE_SCALE)));
        assert_eq!(UsdRate::ONE, UsdRate::parse("1").unwrap());
    }

    #[test]
    fn forty_nine_dollars_with_eighteen_percent_off_at_a_quarter_cent() {
        let rate = UsdRate::parse("0.0025").unwrap();
        // 49 × 0.82 = 40.18 USD ÷ 0.0025 = 16,072 TMAI exactly.
        assert_eq!(token_amount(49_000_000, 18, rate, 18, 6), Some(U256::from(16_072u64) * U256::from(10).pow(U256::from(18))));
        // An awkward rate: the amount is rounded up to 6 significant digits.
        let rate = UsdRate::parse("0.003971").unwrap();
        let amount = token_amount(49_000_000, 18, rate, 18, 6).unwrap();
        assert_eq!(amount.to_string(), "10118400000000000000000");
        assert!(usd_value_micro(amount, rate, 18) >= 40_180_000);
    }

    /// A property test over random prices, discounts, decimals, rates and precisions: the
    /// amount is never worth less than the discounted price, and the rounding adds less than
    /// one unit of the last kept digit.
    #[test]
    fn rounding_never_undercharges() {
        let mut rng = StdRng::seed_from_u64(19);
        for case in 0..20_000 {
            let usd_micro: u64 = rng.random_range(1..=100_000_000_000);
            let discount: u8 = if rng.random_bool(0.5) { 0 } else { rng.random_range(1..=99) };
            let decimals: u8 = rng.random_range(0..=24);
            let significant: u8 = rng.random_range(0..=10);
            let exponent: u32 = rng.random_range(0..=30);
            let rate = UsdRate(U256::from(rng.random_range(1u64..=u64::MAX)) / U256::from(10).pow(U256::from(exponent)) + U256::from(1));
            let amount = token_amount(usd_micro, discount, rate, decimals, significant).unwrap();
            // amount × rate / 10^decimals ≥ usd × (100 − d) / 100, cross-multiplied exactly.
            let paid = amount * rate.0 * U256::from(MICRO_PER_USD) * U256::from(100);
            let owed = U256::from(usd_micro) * U256::from(100 - u64::from(discount)) * U256::from(10).pow(U256::from(decimals)) * U256::from(RATE_SCALE);
            assert!(paid >= owed, "case {case}: {amount} at {rate} for {usd_micro} µUSD −{discount}% ({decimals} decimals) undercharges");
            let exact = token_amount(usd_micro, discount, rate, decimals, 0).unwrap();
            assert!(amount >= exact);
            if significant > 0 {
                let digits = exact.to_string().len() as u32;
                let step = U256::from(10).pow(U256::from(digits.saturating_sub(u32::from(significant))));
                assert!(amount - exact < step, "case {case}: rounding {exact} to {amount} added a step of {step} or more");
                assert!(amount.to_string().trim_end_matches('0').len() <= usize::from(significant).max(1), "case {case}: {amount}");
            }
        }
    }
}
