//! The money types' rounding and round-trip properties, over seeded random cases.

use alloy::primitives::U256;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

fn pow10(n: u8) -> U256 {
    U256::from(10).pow(U256::from(n))
}

fn usd(micro: u64) -> Usd {
    Usd::from_micro(micro).unwrap()
}

fn discount(percent: u8) -> Discount {
    Discount::percent(percent).unwrap()
}

/// A random rate from just above zero to ~1.8e19 times its scale (tiny to huge).
fn random_rate(rng: &mut StdRng) -> UsdRate {
    let exponent: u32 = rng.random_range(0..=30);
    UsdRate(U256::from(rng.random_range(1u64..=u64::MAX)) / U256::from(10).pow(U256::from(exponent)) + U256::from(1))
}

#[test]
fn dollar_amounts_parse_exactly() {
    assert_eq!(Usd::parse("49.00"), Ok(usd(49_000_000)));
    assert_eq!(Usd::parse("0.5"), Ok(usd(500_000)));
    assert_eq!(Usd::parse("$9.99"), Ok(usd(9_990_000)));
    assert_eq!(Usd::parse("12"), Ok(usd(12_000_000)));
    for bad in ["", ".", "-1", "1e3", "1.0000001", "abc", "4 9", "9223372036854.775808"] {
        assert!(Usd::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Usd::parse("9223372036854.775807"), Ok(Usd::MAX));
    assert_eq!(usd(49_000_000).to_string(), "49.00");
    assert_eq!(usd(9_995_000).to_string(), "9.995");
    assert_eq!(Usd::ZERO.to_string(), "0.00");
    assert_eq!(UsdRate::parse("0.25").unwrap().to_decimal(), "0.25");
    assert_eq!(UsdRate::parse("2").unwrap(), UsdRate(U256::from(2 * RATE_SCALE)));
    assert_eq!(UsdRate::ONE, UsdRate::parse("1").unwrap());
    assert_eq!(TokenAmount::parse("49.99", 6), Ok(TokenAmount::new(U256::from(49_990_000u64), 6)));
    assert!(matches!(TokenAmount::parse("9.0000001", 6), Err(AmountError::TooPrecise { max: 6, .. })));
    assert!(matches!(TokenAmount::parse("-5", 18), Err(AmountError::Negative(_))));
    assert_eq!(TokenAmount::new(U256::from(16_072u64) * pow10(18), 18).to_string(), "16072");
    assert_eq!(TokenAmount::new(U256::from(5u64), 3).to_string(), "0.005");
}

#[test]
fn forty_nine_dollars_with_eighteen_percent_off_at_a_quarter_cent() {
    let rate = UsdRate::parse("0.0025").unwrap();
    let owed = |rate| TokenAmount::owed(usd(49_000_000), discount(18), rate, 18).and_then(|a| a.round_up_significant(6)).unwrap();
    // 49 × 0.82 = 40.18 USD ÷ 0.0025 = 16,072 TMAI exactly.
    assert_eq!(owed(rate).units(), U256::from(16_072u64) * pow10(18));
    assert_eq!(usd(49_000_000).less(discount(18)), usd(40_180_000));
    // An awkward rate: the amount is rounded up to 6 significant digits.
    let rate = UsdRate::parse("0.003971").unwrap();
    let amount = owed(rate);
    assert_eq!(amount.units().to_string(), "10118400000000000000000");
    assert!(amount.usd_value(rate).unwrap() >= usd(40_180_000));
}

/// A property test over random prices, discounts, decimals, rates and precisions: the
/// amount is never worth less than the discounted price, and the rounding adds less than
/// one unit of the last kept digit.
#[test]
fn rounding_never_undercharges() {
    let mut rng = StdRng::seed_from_u64(19);
    for case in 0..20_000 {
        let usd_micro: u64 = rng.random_range(1..=100_000_000_000);
        let percent: u8 = if rng.random_bool(0.5) { 0 } else { rng.random_range(1..=99) };
        let decimals: u8 = rng.random_range(0..=24);
        let significant: u8 = rng.random_range(0..=10);
        let rate = random_rate(&mut rng);
        let exact = TokenAmount::owed(usd(usd_micro), discount(percent), rate, decimals).unwrap();
        let amount = exact.round_up_significant(significant).unwrap().units();
        // amount × rate / 10^decimals ≥ usd × (100 − d) / 100, cross-multiplied exactly.
        let paid = amount * rate.0 * U256::from(MICRO_PER_USD) * U256::from(100);
        let owed = U256::from(usd_micro) * U256::from(100 - u64::from(percent)) * pow10(decimals) * U256::from(RATE_SCALE);
        assert!(paid >= owed, "case {case}: {amount} at {rate} for {usd_micro} µUSD −{percent}% ({decimals} decimals) undercharges");
        let exact = exact.units();
        assert!(amount >= exact);
        if significant > 0 {
            let digits = exact.to_string().len() as u32;
            let step = U256::from(10).pow(U256::from(digits.saturating_sub(u32::from(significant))));
            assert!(amount - exact < step, "case {case}: rounding {exact} to {amount} added a step of {step} or more");
            assert!(amount.to_string().trim_end_matches('0').len() <= usize::from(significant).max(1), "case {case}: {amount}");
        }
    }
}

/// The exact owed amount is the smallest that covers the price: one unit less undercharges.
#[test]
fn the_owed_amount_is_the_least_that_covers_the_price() {
    let mut rng = StdRng::seed_from_u64(23);
    for case in 0..20_000 {
        let price = usd(rng.random_range(1..=100_000_000_000));
        let off = discount(rng.random_range(0..=99));
        let decimals: u8 = rng.random_range(0..=24);
        let rate = random_rate(&mut rng);
        let amount = TokenAmount::owed(price, off, rate, decimals).unwrap().units();
        let covers = |units: U256| {
            units * rate.0 * U256::from(MICRO_PER_USD) * U256::from(100)
                >= U256::from(price.micro()) * U256::from(off.keep()) * pow10(decimals) * U256::from(RATE_SCALE)
        };
        assert!(covers(amount), "case {case}");
        assert!(amount.is_zero() || !covers(amount - U256::from(1)), "case {case}: {amount} is more than the least");
    }
}

/// Owed amounts move the right way: up with the price, down with the rate and the discount.
#[test]
fn owed_amounts_are_monotone() {
    let mut rng = StdRng::seed_from_u64(29);
    for case in 0..10_000 {
        let decimals: u8 = rng.random_range(0..=24);
        let significant: u8 = rng.random_range(0..=10);
        let (a, b) = (rng.random_range(1..=100_000_000_000u64), rng.random_range(1..=100_000_000_000u64));
        let (low, high) = (usd(a.min(b)), usd(a.max(b)));
        let (r1, r2) = (random_rate(&mut rng), random_rate(&mut rng));
        let (slow, fast) = (r1.min(r2), r1.max(r2));
        let (d1, d2) = (rng.random_range(0..=99u8), rng.random_range(0..=99u8));
        let (less_off, more_off) = (discount(d1.min(d2)), discount(d1.max(d2)));
        let owed = |price, off, rate| TokenAmount::owed(price, off, rate, decimals).and_then(|t| t.round_up_significant(significant)).unwrap().units();
        assert!(owed(low, less_off, slow) <= owed(high, less_off, slow), "case {case}: price");
        assert!(owed(low, less_off, fast) <= owed(low, less_off, slow), "case {case}: rate");
        assert!(owed(high, more_off, slow) <= owed(high, less_off, slow), "case {case}: discount");
        assert!(low.less(more_off) <= low.less(less_off) && low.less(less_off) <= high.less(less_off), "case {case}: discounted price");
        assert!(low.to_cents() <= high.to_cents(), "case {case}: cents");
    }
}

/// Credited values round down: a token amount is never valued above its exact worth and
/// less than a micro-dollar below it; more tokens are never worth less; and the amount owed
/// for an amount's value never exceeds the amount (a round trip never gains).
#[test]
fn usd_values_round_down_and_round_trip() {
    let mut rng = StdRng::seed_from_u64(31);
    for case in 0..20_000 {
        let decimals: u8 = rng.random_range(0..=24);
        let rate = random_rate(&mut rng);
        let units = U256::from(rng.random_range(0..=u64::MAX)) * U256::from(rng.random_range(1..=1_000_000u64));
        let amount = TokenAmount::new(units, decimals);
        let Some(value) = amount.usd_value(rate) else { continue };
        let worth = units * rate.0 * U256::from(MICRO_PER_USD);
        let unit = pow10(decimals) * U256::from(RATE_SCALE);
        assert!(U256::from(value.micro()) * unit <= worth, "case {case}: {amount} at {rate} valued above its worth");
        assert!(worth < U256::from(value.micro() + 1) * unit, "case {case}: {amount} at {rate} valued a micro-dollar or more below");
        let more = TokenAmount::new(units + U256::from(rng.random_range(0..=u64::MAX)), decimals);
        assert!(more.usd_value(rate).is_none_or(|v| v >= value), "case {case}: more tokens worth less");
        let back = TokenAmount::owed(value, Discount::NONE, rate, decimals).unwrap();
        assert!(back.units() <= units, "case {case}: {value} at {rate} owes {back}, more than {amount}");
    }
}

/// Discounted prices and card prices are rounded up, by less than one of their unit.
#[test]
fn discounts_and_cents_never_undercharge() {
    let mut rng = StdRng::seed_from_u64(37);
    for case in 0..20_000 {
        let price = usd(rng.random_range(0..=Usd::MAX.micro()));
        let off = discount(rng.random_range(0..=99));
        let exact = u128::from(price.micro()) * u128::from(off.keep());
        let less = u128::from(price.less(off).micro()) * 100;
        assert!(less >= exact && less < exact + 100, "case {case}: {price} −{}% = {}", off.as_percent(), price.less(off));
        let cents = u128::from(price.to_cents().minor()) * 10_000;
        assert!(cents >= u128::from(price.micro()) && cents < u128::from(price.micro()) + 10_000, "case {case}: {price} in cents");
    }
    assert_eq!(usd(49_000_000).to_cents(), Cents::from_minor(4_900));
    assert_eq!(usd(9_995_000).to_cents(), Cents::from_minor(1_000));
}

/// Every amount's text parses back to the amount: dollars, rates and token amounts.
#[test]
fn texts_round_trip() {
    let mut rng = StdRng::seed_from_u64(41);
    for case in 0..20_000 {
        let price = usd(rng.random_range(0..=Usd::MAX.micro()));
        assert_eq!(price.to_string().parse::<Usd>(), Ok(price), "case {case}");
        let rate = UsdRate(U256::from(rng.random_range(0..=u64::MAX)) * U256::from(rng.random_range(0..=u64::MAX)));
        assert_eq!(UsdRate::parse(&rate.to_decimal()), Ok(rate), "case {case}");
        let decimals: u8 = rng.random_range(0..=36);
        let amount = TokenAmount::new(U256::from(rng.random_range(0..=u64::MAX)) * U256::from(rng.random_range(0..=u64::MAX)), decimals);
        assert_eq!(TokenAmount::parse(&amount.to_string(), decimals), Ok(amount), "case {case}");
    }
}

/// Overflow is `None` or an error, never a wrapped, saturated or panicking value.
#[test]
fn overflow_is_refused() {
    assert_eq!(Usd::MAX.checked_mul(2), None);
    assert_eq!(Usd::MAX.checked_add(usd(1)), None);
    assert_eq!(usd(1).checked_mul(36), Some(usd(36)));
    assert_eq!(Cents::from_minor(u64::MAX).checked_mul(2), None);
    assert!(matches!(Usd::parse("99999999999999999999"), Err(AmountError::TooLarge(_))));
    assert!(matches!(UsdRate::parse(&"9".repeat(70)), Err(AmountError::TooLarge(_))));
    let max = TokenAmount::new(U256::MAX, 18);
    assert_eq!(max.checked_mul(2), None);
    assert_eq!(max.round_up_significant(6), None);
    assert_eq!(TokenAmount::owed(usd(1), Discount::NONE, UsdRate(U256::ZERO), 18), None, "a zero rate prices nothing");
    assert_eq!(TokenAmount::owed(usd(1), Discount::NONE, UsdRate::ONE, 37), None);
    assert_eq!(TokenAmount::owed(Usd::MAX, Discount::NONE, UsdRate(U256::MAX), 36), None);
    assert_eq!(max.usd_value(UsdRate(U256::MAX)), None);
    assert_eq!(UsdRate::from_scaled(U256::MAX, 8), None);
    assert_eq!(UsdRate::from_scaled(U256::from(250_000u64), 8), UsdRate::parse("0.0025").ok());
    assert_eq!(UsdRate(U256::MAX).times(UsdRate(U256::from(2))), None);
    assert_eq!(Discount::percent(100), None);
}
