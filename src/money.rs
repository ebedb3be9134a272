//! Money, typed: a US-dollar amount is a [`Usd`] (micro-dollars), a card amount is
//! [`Cents`] (the card currency's minor unit), a token amount is a [`TokenAmount`] (smallest
//! units with the token's decimals), a market rate is a [`UsdRate`] and a price reduction is
//! a [`Discount`]. Each conversion between them exists once, here, with its rounding rule:
//!
//! - what a member **owes** is rounded **up** (a price never drops below its exact value:
//!   [`Usd::less`], [`Usd::to_cents`], [`TokenAmount::owed`],
//!   [`TokenAmount::round_up_significant`]);
//! - what a member is **credited** is rounded **down** (an amount is never worth more than
//!   it exactly is: [`TokenAmount::usd_value`]).
//!
//! Arithmetic is checked: a value that would overflow is `None`, never a wrapped or
//! saturated number and never a panic. Decimal text (the configuration's prices, a fixed
//! rate) is parsed exactly, with no floating point anywhere.

mod paid;
mod rate;
mod token;

#[cfg(test)]
mod tests;

use std::{fmt, str::FromStr};

use alloy::primitives::U256;

pub use paid::PaidRate;
pub use rate::{RATE_SCALE, UsdRate};
pub use token::TokenAmount;

/// Micro-dollars per dollar.
pub const MICRO_PER_USD: u64 = 1_000_000;

/// Micro-dollars per cent.
const MICRO_PER_CENT: u64 = MICRO_PER_USD / 100;

/// Why a decimal text is not an amount; the message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not digits with at most one decimal point (no sign, no exponent).
    #[error("{text:?} is not {expected}")]
    NotDecimal {
        /// The text as given.
        text: String,
        /// What a valid text looks like (`a dollar amount such as "49.00"`).
        expected: &'static str,
    },
    /// A minus sign.
    #[error("{0:?} is negative")]
    Negative(String),
    /// More decimals than the amount's unit holds (digits would be dropped).
    #[error("{text:?} has more than {max} decimals")]
    TooPrecise {
        /// The text as given.
        text: String,
        /// Decimals the unit holds.
        max: u8,
    },
    /// Larger than the type holds.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses `digits` (already trimmed: `"49.5"`, `".5"`, `"12"`) into an integer of
/// `decimals` decimal places; `text` is what the errors quote.
fn parse_decimal(text: &str, digits: &str, decimals: u8, expected: &'static str) -> Result<U256, AmountError> {
    if digits.starts_with('-') {
        return Err(AmountError::Negative(text.to_string()));
    }
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !is_digits(whole) || !is_digits(frac) {
        return Err(AmountError::NotDecimal { text: text.to_string(), expected });
    }
    if frac.len() > usize::from(decimals) {
        return Err(AmountError::TooPrecise { text: text.to_string(), max: decimals });
    }
    let too_large = || AmountError::TooLarge(text.to_string());
    let scale = U256::from(10).checked_pow(U256::from(decimals)).ok_or_else(too_large)?;
    let whole = if whole.is_empty() { U256::ZERO } else { U256::from_str_radix(whole, 10).map_err(|_| too_large())? };
    // Padded to `decimals` digits: "5" of "0.5" at 6 decimals is 500000 millionths.
    let frac = if frac.is_empty() {
        U256::ZERO
    } else {
        U256::from_str_radix(&format!("{frac:0<width$}", width = usize::from(decimals)), 10).map_err(|_| too_large())?
    };
    whole.checked_mul(scale).and_then(|w| w.checked_add(frac)).ok_or_else(too_large)
}

/// Formats `value` as a decimal of `decimals` places with trailing zeros trimmed, keeping
/// at least `min_frac` decimals (`"49.00"` with 2, `"16072"` with 0).
fn format_decimal(value: U256, decimals: u8, min_frac: usize) -> String {
    let digits = value.to_string();
    let decimals = usize::from(decimals);
    let padded = if digits.len() <= decimals { format!("{}{digits}", "0".repeat(decimals + 1 - digits.len())) } else { digits };
    let (whole, frac) = padded.split_at(padded.len() - decimals);
    let frac = frac.trim_end_matches('0');
    let frac = format!("{frac:0<min_frac$}");
    if frac.is_empty() { whole.to_string() } else { format!("{whole}.{frac}") }
}

/// A US-dollar amount in micro-dollars (10^-6 USD), at most `i64::MAX` micro-dollars (about
/// 9.2 trillion dollars) so that every amount fits the `BIGINT` columns that store it.
///
/// Prices are configured in dollars (`"49.00"`, at most 6 decimals: [`Usd::parse`]) and
/// answered the same way (`"49.00"`: [`Usd`]'s `Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd(u64);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Self = Self(0);
    /// The largest amount (`i64::MAX` micro-dollars).
    pub const MAX: Self = Self(i64::MAX as u64);

    /// Returns `micro` micro-dollars, or `None` above [`Usd::MAX`].
    pub const fn from_micro(micro: u64) -> Option<Self> {
        if micro <= Self::MAX.0 { Some(Self(micro)) } else { None }
    }

    /// Returns the amount in micro-dollars.
    pub const fn micro(self) -> u64 {
        self.0
    }

    /// Returns the amount as a `usd_micro` column holds it.
    pub const fn to_stored(self) -> i64 {
        self.0 as i64
    }

    /// Reads a `usd_micro` column; `None` for a negative value (never written).
    pub fn from_stored(micro: i64) -> Option<Self> {
        u64::try_from(micro).ok().map(Self)
    }

    /// Parses a dollar amount as the configuration writes it: `"49.00"`, `"0.5"`, `"$9.99"`,
    /// `"12"` (at most 6 decimals, no sign, no exponent), exactly.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let digits = text.trim().trim_start_matches('$');
        let micro = parse_decimal(text, digits, 6, "a dollar amount such as \"49.00\"")?;
        u64::try_from(micro).ok().and_then(Self::from_micro).ok_or_else(|| AmountError::TooLarge(text.to_string()))
    }

    /// Returns the sum, or `None` past [`Usd::MAX`].
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).and_then(Self::from_micro)
    }

    /// Returns `times` this amount (a price per period times periods), or `None` past
    /// [`Usd::MAX`].
    pub fn checked_mul(self, times: u32) -> Option<Self> {
        self.0.checked_mul(u64::from(times)).and_then(Self::from_micro)
    }

    /// Returns this price less `discount`, rounded **up** to the micro-dollar: what a
    /// discounted price owes is never below its exact value.
    pub fn less(self, discount: Discount) -> Self {
        // ≤ self: the product fits u128 and the quotient fits in Usd.
        Self((u128::from(self.0) * u128::from(discount.keep())).div_ceil(100) as u64)
    }

    /// Returns this price in [`Cents`], rounded **up** to the cent (a card price a member
    /// owes never undercharges the dollar price).
    pub fn to_cents(self) -> Cents {
        Cents(self.0.div_ceil(MICRO_PER_CENT))
    }
}

impl FromStr for Usd {
    type Err = AmountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Usd {
    /// Writes the amount as the API answers it: whole dollars and at least two decimals,
    /// more when they are not zero (`"49.00"`, `"9.995"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_decimal(U256::from(self.0), 6, 2))
    }
}

impl serde::Serialize for Usd {
    /// Serializes the amount as its decimal string (`"49.00"`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A card amount in the card currency's minor unit (`[card] currency`), as the processor's
/// `amount` fields and `card_price_cents` carry it. The exponent assumed where a dollar
/// price becomes a card price ([`Usd::to_cents`], a plan's default card price) is 2, as in
/// USD, EUR, GBP, CAD, AUD and most currencies: one unit is a hundredth. For a zero-decimal
/// currency (JPY, KRW) or a three-decimal one (KWD, BHD), set `card_price_cents` in that
/// currency's own minor unit; nothing else converts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(u64);

impl Cents {
    /// Returns `minor` units of the card currency (as the processor's `amount` fields and
    /// `card_price_cents` carry them).
    pub const fn from_minor(minor: u64) -> Self {
        Self(minor)
    }

    /// Returns the amount in minor units.
    pub const fn minor(self) -> u64 {
        self.0
    }

    /// Returns `times` this amount, or `None` on overflow.
    pub fn checked_mul(self, times: u32) -> Option<Self> {
        self.0.checked_mul(u64::from(times)).map(Self)
    }
}

/// A percentage taken off a price, 0 to 99 (a price is never given away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Discount(u8);

impl Discount {
    /// No discount.
    pub const NONE: Self = Self(0);

    /// Returns a discount of `percent` %, or `None` above 99.
    pub const fn percent(percent: u8) -> Option<Self> {
        if percent <= 99 { Some(Self(percent)) } else { None }
    }

    /// Returns the discount in percent.
    pub const fn as_percent(self) -> u8 {
        self.0
    }

    /// Returns the percent of the price that is kept (1 to 100).
    fn keep(self) -> u64 {
        100 - u64::from(self.0)
    }
}
