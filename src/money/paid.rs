//! What paid time is worth: a price per second kept as the exact fraction it was paid at.

use alloy::primitives::U256;
use serde::{Deserialize, Serialize};

use super::{Cents, Discount, MICRO_PER_CENT, Usd};

/// `micro` micro-dollars bought `seconds` seconds: the price per second of some paid time,
/// kept as the exact fraction (micro-dollars per second are too coarse for monthly plans).
///
/// A subscription holds the lowest of these among the purchases whose time it still runs
/// on ([`PaidRate::min`]); an upgrade credits its unused paid time at that rate
/// ([`PaidRate::convert`]), rounded down, so the credit is never worth more than what was
/// paid for the time it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PaidRate {
    /// Micro-dollars paid.
    pub micro: u64,
    /// Seconds they bought (never zero).
    pub seconds: u64,
}

impl PaidRate {
    /// Time worth nothing (unpaid, or paid in a way that has no dollar worth).
    pub const ZERO: Self = Self { micro: 0, seconds: 1 };

    /// Returns the rate of `worth` paid for `seconds`; `None` when no time was bought.
    pub fn new(worth: Usd, seconds: u64) -> Option<Self> {
        (seconds > 0).then_some(Self { micro: worth.micro(), seconds })
    }

    /// Returns the lower of the two rates (compared exactly).
    pub fn min(self, other: Self) -> Self {
        let mine = u128::from(self.micro) * u128::from(other.seconds);
        let theirs = u128::from(other.micro) * u128::from(self.seconds);
        if mine <= theirs { self } else { other }
    }

    /// Returns the lower of `a` and `b` where either may be absent.
    pub fn lower(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Returns what `seconds` at this rate buy at the rate `to`, rounded **down** (a credit
    /// is never worth more than the time it replaces); 0 when `to` is free.
    pub fn convert(self, seconds: u64, to: Self) -> u64 {
        // seconds × (micro / self.seconds) / (to.micro / to.seconds); three u64 factors fit
        // in 192 bits, so the products cannot overflow U256.
        let num = U256::from(seconds).checked_mul(U256::from(self.micro)).and_then(|v| v.checked_mul(U256::from(to.seconds)));
        let den = U256::from(self.seconds).checked_mul(U256::from(to.micro));
        match (num, den) {
            (Some(num), Some(den)) if !den.is_zero() => u64::try_from(num / den).unwrap_or(u64::MAX),
            _ => 0,
        }
    }

    /// Returns what `seconds` at this rate are worth, rounded down.
    pub fn worth_of(self, seconds: u64) -> Usd {
        let micro = u128::from(seconds) * u128::from(self.micro) / u128::from(self.seconds.max(1));
        u64::try_from(micro).ok().and_then(Usd::from_micro).unwrap_or(Usd::MAX)
    }
}

impl Usd {
    /// Returns this worth less `discount`, rounded **down** (the dollar worth of a
    /// discounted payment is never more than what was paid).
    pub fn less_down(self, discount: Discount) -> Self {
        Self((u128::from(self.0) * u128::from(discount.keep()) / 100) as u64)
    }
}

impl Cents {
    /// Returns this card amount as dollars (the minor unit a hundredth, as in
    /// [`Usd::to_cents`]), or `None` past [`Usd::MAX`].
    pub fn to_usd(self) -> Option<Usd> {
        self.0.checked_mul(MICRO_PER_CENT).and_then(Usd::from_micro)
    }
}
