//! Uniswap v3 pools: the time-weighted average tick over a window (`observe`), turned into
//! USD per token with the quote asset's USD rate. Quotes are refused while the pool's
//! observation history is shorter than the window, and when the spot tick (`slot0`) is
//! further from the TWAP than the configured share (a price pushed within a block).
#![allow(missing_docs, unreachable_pub)]

use alloy::{
    eips::BlockId,
    primitives::{
        Address, U256, U512,
        aliases::{I56, U160},
    },
    providers::DynProvider,
    sol,
};

use super::{ConfigError, Refusal, RefusalCode};
use crate::money::{RATE_SCALE, UsdRate};

sol! {
    #[sol(rpc)]
    interface IUniswapV3Pool {
        function token0() external view returns (address);
        function token1() external view returns (address);
        function slot0() external view returns (uint160 sqrtPriceX96, int24 tick, uint16 observationIndex, uint16 observationCardinality, uint16 observationCardinalityNext, uint8 feeProtocol, bool unlocked);
        function observe(uint32[] calldata secondsAgos) external view returns (int56[] memory tickCumulatives, uint160[] memory secondsPerLiquidityCumulativeX128s);
    }

    #[sol(rpc)]
    interface IERC20Decimals {
        function decimals() external view returns (uint8);
    }
}

/// A pool checked at start-up: which side the token is on and the decimals of both.
#[derive(Debug, Clone)]
pub struct PoolInfo {
    /// The pool.
    pub pool: Address,
    /// Whether the priced token is the pool's token0.
    pub token_is_0: bool,
    /// The priced token's decimals.
    pub token_decimals: u8,
    /// The other token (the quote asset).
    pub quote: Address,
    /// The quote asset's decimals.
    pub quote_decimals: u8,
}

/// Checks that `pool` is a Uniswap v3 pool holding `token`, and reads the quote asset.
pub async fn check(provider: &DynProvider, field: &str, pool: Address, token: Address, token_decimals: u8) -> Result<PoolInfo, ConfigError> {
    super::require_code(provider, field, pool).await?;
    let contract = IUniswapV3Pool::new(pool, provider);
    let not_pool = |e: alloy::contract::Error| ConfigError::new(field.into(), format!("{pool} is not a Uniswap v3 pool: {e}"));
    let token0 = contract.token0().call().await.map_err(not_pool)?;
    let token1 = contract.token1().call().await.map_err(not_pool)?;
    let (token_is_0, quote) = if token0 == token {
        (true, token1)
    } else if token1 == token {
        (false, token0)
    } else {
        return Err(ConfigError::new(field.into(), format!("the pool {pool} holds {token0} and {token1}, not the token {token}")));
    };
    let quote_decimals = IERC20Decimals::new(quote, provider)
        .decimals()
        .call()
        .await
        .map_err(|e| ConfigError::new(field.into(), format!("the pool's other token {quote} does not answer decimals(): {e}")))?;
    Ok(PoolInfo { pool, token_is_0, token_decimals, quote, quote_decimals })
}

/// The lowest tick a Uniswap v3 pool can hold (`TickMath.MIN_TICK`).
pub const MIN_TICK: i32 = -887_272;
/// The highest tick a Uniswap v3 pool can hold (`TickMath.MAX_TICK`).
pub const MAX_TICK: i32 = 887_272;

/// What one look at the pool found.
#[derive(Debug, Clone, Copy)]
pub struct PoolPrice {
    /// The quote asset per whole token over the window, times 10^18, never above what the
    /// pool's ticks show ([`token_tick`]).
    pub twap: UsdRate,
    /// The average tick over the window (rounded toward −∞).
    pub twap_tick: i32,
    /// The spot tick.
    pub spot_tick: i32,
    /// The harmonic-mean liquidity over the window.
    pub liquidity: u128,
}

/// Reads the TWAP over `window` seconds at `block`, refusing a short history, a mean tick
/// outside the pool's range, a spot price further than `max_deviation_bps` from the TWAP,
/// and a harmonic-mean liquidity below `min_liquidity`.
pub async fn read(
    provider: &DynProvider,
    info: &PoolInfo,
    window: u32,
    max_deviation_bps: u32,
    min_liquidity: Option<u128>,
    block: u64,
) -> Result<PoolPrice, Refusal> {
    let pool = IUniswapV3Pool::new(info.pool, provider);
    let observed = pool.observe(vec![window, 0]).block(BlockId::number(block)).call().await.map_err(|e| {
        let text = e.to_string();
        if text.contains("OLD") {
            let detail =
                format!("the pool {}'s observation history is shorter than the {window} s window (raise its observation cardinality and wait)", info.pool);
            Refusal::new(RefusalCode::ShortHistory, detail)
        } else {
            Refusal::new(RefusalCode::ChainUnreadable, format!("the pool {} cannot be observed: {text}", info.pool))
        }
    })?;
    let slot0 = pool
        .slot0()
        .block(BlockId::number(block))
        .call()
        .await
        .map_err(|e| Refusal::new(RefusalCode::ChainUnreadable, format!("the pool {}'s slot0 cannot be read: {e}", info.pool)))?;
    let ([older, newer], [older_spl, newer_spl]) = (&observed.tickCumulatives[..], &observed.secondsPerLiquidityCumulativeX128s[..]) else {
        return Err(Refusal::new(
            RefusalCode::ChainUnreadable,
            format!("the pool {} answered {} cumulatives for 2 points", info.pool, observed.tickCumulatives.len()),
        ));
    };
    let extreme =
        || Refusal::new(RefusalCode::ExtremeTick, format!("the pool {}'s tick cumulatives {older} → {newer} over {window} s leave the tick range", info.pool));
    let twap_tick = mean_tick(*older, *newer, window, Toward::Floor).ok_or_else(extreme)?;
    let spot_tick = slot0.tick.as_i32();
    let allowed = max_tick_distance(max_deviation_bps);
    if (i64::from(spot_tick) - i64::from(twap_tick)).unsigned_abs() > allowed {
        let detail = format!(
            "the pool {}'s spot price is more than {max_deviation_bps} bps from its {window} s TWAP (spot tick {spot_tick}, TWAP tick {twap_tick})",
            info.pool
        );
        return Err(Refusal::new(RefusalCode::Manipulated, detail));
    }
    let liquidity = harmonic_mean_liquidity(*older_spl, *newer_spl, window);
    if let Some(floor) = min_liquidity
        && liquidity < floor
    {
        let detail = format!("the pool {}'s harmonic-mean liquidity over {window} s is {liquidity}, below min_liquidity {floor}", info.pool);
        return Err(Refusal::new(RefusalCode::ThinPool, detail));
    }
    let tick = token_tick(*older, *newer, window, info.token_is_0).ok_or_else(extreme)?;
    let twap = quote_per_token(tick, info.token_decimals, info.quote_decimals).ok_or_else(extreme)?;
    Ok(PoolPrice { twap, twap_tick, spot_tick, liquidity })
}

/// Which way a mean tick is rounded when the cumulatives' delta is not a multiple of the
/// window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// Toward −∞ (Uniswap's `OracleLibrary.consult`).
    Floor,
    /// Toward +∞.
    Ceil,
}

/// Returns the mean tick between two cumulatives `window` seconds apart, rounded `toward`;
/// `None` when it is outside [`MIN_TICK`]..=[`MAX_TICK`] (no pool holds such a price: the
/// answer is corrupt or hostile, and a clamp would price it) or the window is zero.
pub fn mean_tick(older: I56, newer: I56, window: u32, toward: Toward) -> Option<i32> {
    let delta = i64::try_from(newer).ok()?.checked_sub(i64::try_from(older).ok()?)?;
    let window = i64::from(window);
    let floor = delta.checked_div_euclid(window)?;
    let tick = match toward {
        Toward::Ceil if delta.checked_rem_euclid(window)? != 0 => floor.checked_add(1)?,
        _ => floor,
    };
    i32::try_from(tick).ok().filter(|t| (MIN_TICK..=MAX_TICK).contains(t))
}

/// Returns the tick whose price 1.0001^tick is the quote asset per token over the window,
/// rounded so the token's rate is never above what the pool shows: a pool's tick is the
/// floor of its price's log (token1 per token0), so the window's true mean price of token0
/// lies in [1.0001^mean, 1.0001^(mean+1)). For token0 the rate is 1.0001^⌊mean⌋; for token1
/// (the inverse price) it is 1.0001^−(⌈mean⌉+1), since ⌊mean⌋ (Uniswap's rounding) would
/// overstate token1 by up to two ticks and a buyer paying in it would pay too few tokens.
pub fn token_tick(older: I56, newer: I56, window: u32, token_is_0: bool) -> Option<i32> {
    let tick = if token_is_0 {
        mean_tick(older, newer, window, Toward::Floor)?
    } else {
        mean_tick(older, newer, window, Toward::Ceil)?.checked_add(1)?.checked_neg()?
    };
    Some(tick).filter(|t| (MIN_TICK..=MAX_TICK).contains(t))
}

/// Returns the harmonic-mean liquidity over `window` seconds from two
/// `secondsPerLiquidityCumulativeX128` points (`OracleLibrary.consult`):
/// window × (2^160 − 1) / (delta << 32), saturating at `u128::MAX`.
pub fn harmonic_mean_liquidity(older: U160, newer: U160, window: u32) -> u128 {
    // The cumulative is a uint160 that the pool lets wrap by design: the difference is
    // taken modulo 2^160 as Uniswap does, explicitly.
    let delta = U256::from(newer.wrapping_sub(older));
    let numerator = U256::from(window).checked_mul(U256::from(U160::MAX));
    let denominator = delta.checked_shl(32);
    match (numerator, denominator) {
        (Some(n), Some(d)) if !d.is_zero() => n.checked_div(d).and_then(|l| u128::try_from(l).ok()).unwrap_or(u128::MAX),
        _ => u128::MAX,
    }
}

/// The most ticks two prices `bps` basis points apart can be (1 tick = ×1.0001): an
/// integer search, no floating point.
pub fn max_tick_distance(bps: u32) -> u64 {
    // 1.0001^n ≤ 1 + bps/10^4, counted exactly on 1e18-scaled integers (at most 4.3e23
    // × 10^4, far inside u128; a failed step ends the count).
    let Some(limit) = (10_000u128 + u128::from(bps)).checked_mul(RATE_SCALE / 10_000) else { return 0 };
    let mut price = RATE_SCALE;
    let mut n = 0u64;
    while n < 1_000_000 {
        match price.checked_mul(10_001).map(|p| p / 10_000) {
            Some(next) if next <= limit => price = next,
            _ => break,
        }
        n += 1;
    }
    n
}

/// 1.0001^tick in Q128 fixed point (U512 to keep the squares), rounded down: never above
/// the true power. A negative tick is 2^256 over the positive power rounded *up*, which
/// keeps the precision of the large number. `None` beyond the tick range.
pub fn pow_q128(tick: i32) -> Option<U512> {
    if !(MIN_TICK..=MAX_TICK).contains(&tick) {
        return None;
    }
    if tick < 0 {
        let up = pow_q128_rounded(tick.unsigned_abs(), true)?;
        U512::from(1u8).checked_shl(256)?.checked_div(up)
    } else {
        pow_q128_rounded(tick.unsigned_abs(), false)
    }
}

/// 1.0001^n in Q128 by repeated squaring, every step rounded up (`up`) or down.
fn pow_q128_rounded(n: u32, up: bool) -> Option<U512> {
    let one = U512::from(1u8).checked_shl(128)?;
    let round = if up { one.checked_sub(U512::from(1u8))? } else { U512::ZERO };
    // (a × b) / 2^128, rounded as asked.
    let mul = |a: U512, b: U512| a.checked_mul(b)?.checked_add(round).map(|p| p >> 128usize);
    let scaled = U512::from(10_001u64).checked_shl(128)?;
    let mut base = scaled.checked_div(U512::from(10_000u64))?;
    if up && !scaled.checked_rem(U512::from(10_000u64))?.is_zero() {
        base = base.checked_add(U512::from(1u8))?;
    }
    let mut result = one;
    let mut n = n;
    while n > 0 {
        if n & 1 == 1 {
            result = mul(result, base)?;
        }
        n >>= 1;
        if n > 0 {
            base = mul(base, base)?;
        }
    }
    Some(result)
}

/// Returns the quote-asset units per whole token at `tick` (token1 per token0 in raw
/// units is 1.0001^tick), times 10^18, rounded down; `None` beyond the tick range or when
/// the rate does not fit (never clamped).
pub fn quote_per_token(tick: i32, token_decimals: u8, quote_decimals: u8) -> Option<UsdRate> {
    let ten = U512::from(10u8);
    let scaled = pow_q128(tick)?
        .checked_mul(ten.checked_pow(U512::from(token_decimals))?)?
        .checked_mul(U512::from(RATE_SCALE))?
        .checked_div(ten.checked_pow(U512::from(quote_decimals))?)?;
    let value = scaled >> 128usize;
    U256::checked_from_limbs_slice(value.as_limbs()).map(UsdRate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i56(v: i64) -> I56 {
        I56::try_from(v).unwrap()
    }

    #[test]
    fn ticks_become_prices() {
        assert_eq!(quote_per_token(0, 18, 18), Some(UsdRate::ONE));
        // 1.0001^23027 ≈ 10 (ln 10 / ln 1.0001 = 23027.0).
        let ten = quote_per_token(23_027, 18, 18).unwrap().0;
        let expected = U256::from(10u64 * RATE_SCALE as u64);
        assert!(ten.abs_diff(expected) < expected / U256::from(1_000u64), "{ten}");
        let tenth = quote_per_token(-23_027, 18, 18).unwrap().0;
        assert!(tenth.abs_diff(expected / U256::from(100u64)) < expected / U256::from(100_000u64), "{tenth}");
        // 6-decimal quote asset: raw ratios shift by 10^12.
        let usdc = quote_per_token(-276_324, 18, 6).unwrap().0;
        assert!(usdc > U256::from(RATE_SCALE / 2) && usdc < U256::from(RATE_SCALE * 2), "{usdc}");
    }

    #[test]
    fn powers_are_rounded_down_on_both_sides_of_zero() {
        // 1.0001^1 and 1.0001^-1 in 18 decimals, rounded down.
        assert_eq!(quote_per_token(1, 18, 18).unwrap().0, U256::from(1_000_099_999_999_999_999u128), "1.0001 less its Q128 remainder");
        assert_eq!(quote_per_token(-1, 18, 18).unwrap().0, U256::from(999_900_009_999_000_099u128));
        // x^n × x^-n never exceeds 1 (each is rounded down).
        for tick in [1, 7, 60, 4_055, 100_000, 500_000, MAX_TICK] {
            let up = pow_q128(tick).unwrap();
            let down = pow_q128(-tick).unwrap();
            assert!(up.checked_mul(down).unwrap() <= U512::from(1u8) << 256usize, "{tick}");
        }
    }

    #[test]
    fn extreme_ticks_are_an_error_not_a_clamp() {
        // The range's ends are prices (an 18-decimal token against an 18-decimal quote).
        let top = pow_q128(MAX_TICK).unwrap();
        assert!(top > U512::from(1u8) << 255usize && top < U512::from(1u8) << 256usize, "1.0001^887272 ≈ 2^256");
        assert!(pow_q128(MIN_TICK).unwrap() <= U512::from(1u8), "1.0001^-887272 ≈ 2^-128");
        // Beyond them, nothing: no wrap, no U256::MAX.
        for tick in [MAX_TICK + 1, MIN_TICK - 1, i32::MAX, i32::MIN] {
            assert_eq!(pow_q128(tick), None, "{tick}");
            assert_eq!(quote_per_token(tick, 18, 18), None, "{tick}");
        }
        // At MAX_TICK an 18-decimal pair's rate is about 2^128 dollars (it fits); with a
        // 60-decimal token it does not fit 256 bits: refused, not clamped to U256::MAX.
        let top_rate = quote_per_token(MAX_TICK, 18, 18).unwrap().0;
        assert!(top_rate > U256::from(RATE_SCALE).checked_mul(U256::from(u128::MAX >> 1)).unwrap(), "{top_rate}");
        assert_eq!(quote_per_token(MAX_TICK, 60, 0), None);
        assert!(quote_per_token(MIN_TICK, 18, 18).is_some_and(|r| r.is_zero()), "2^-128 dollars rounds down to zero (then refused as zero_rate)");
        // Absurd decimals overflow the checked products instead of wrapping.
        assert_eq!(quote_per_token(0, 255, 0), None);
        // Mean ticks beyond the range (from cumulatives anywhere in int56) are refused.
        let max56 = i56((1i64 << 55) - 1);
        let min56 = i56(-(1i64 << 55));
        assert_eq!(mean_tick(min56, max56, 1, Toward::Floor), None);
        assert_eq!(mean_tick(max56, min56, 1, Toward::Ceil), None);
        assert_eq!(mean_tick(i56(0), i56(i64::from(MAX_TICK) * 600), 600, Toward::Floor), Some(MAX_TICK));
        assert_eq!(mean_tick(i56(0), i56(i64::from(MAX_TICK) * 600 + 1), 600, Toward::Ceil), None);
        assert_eq!(mean_tick(i56(0), i56(i64::from(MIN_TICK) * 600 - 1), 600, Toward::Floor), None);
        assert_eq!(mean_tick(i56(0), i56(5), 0, Toward::Floor), None, "an empty window");
        // token1 at the top of the range needs one tick more than the range holds.
        assert_eq!(token_tick(i56(0), i56(i64::from(MAX_TICK) * 600), 600, false), None);
        assert_eq!(token_tick(i56(0), i56(i64::from(MAX_TICK - 1) * 600), 600, false), Some(-MAX_TICK));
    }

    #[test]
    fn deviation_guards_and_averages_round_toward_the_lower_rate() {
        assert_eq!(max_tick_distance(0), 0);
        assert_eq!(max_tick_distance(1), 1);
        assert_eq!(max_tick_distance(500), 487);
        assert_eq!(max_tick_distance(u32::MAX), 129_710);
        assert_eq!(mean_tick(i56(0), i56(-7), 2, Toward::Floor), Some(-4));
        assert_eq!(mean_tick(i56(0), i56(7), 2, Toward::Floor), Some(3));
        assert_eq!(mean_tick(i56(0), i56(-7), 2, Toward::Ceil), Some(-3));
        assert_eq!(mean_tick(i56(0), i56(7), 2, Toward::Ceil), Some(4));
        assert_eq!(mean_tick(i56(0), i56(-8), 2, Toward::Ceil), Some(-4));
        // A mean of −3.5 ticks: token0's rate is 1.0001^−4 (not −3), token1's is
        // 1.0001^−(−3+1) = 1.0001^2, never 1.0001^4 as −⌊mean⌋ would give, nor 1.0001^3.
        assert_eq!(token_tick(i56(0), i56(-7), 2, true), Some(-4));
        assert_eq!(token_tick(i56(0), i56(-7), 2, false), Some(2));
        assert_eq!(token_tick(i56(0), i56(7), 2, false), Some(-5));
        assert_eq!(token_tick(i56(0), i56(8), 2, false), Some(-5), "an exact mean still takes the tick's own floor into account");
        // Whichever side: the rate is never above the window's geometric-mean price, for
        // any mean (every second's tick is the floor of its price's log).
        for delta in -2_000i64..2_000 {
            let window = 7u32;
            let mean = delta as f64 / f64::from(window);
            let t0 = token_tick(i56(0), i56(delta), window, true).unwrap();
            let t1 = token_tick(i56(0), i56(delta), window, false).unwrap();
            assert!(f64::from(t0) <= mean, "token0 {delta}");
            // The token1 price is 1.0001^-(mean + x) for x in [0, 1): at most 1.0001^-mean-1.
            assert!(f64::from(t1) <= -mean - 1.0 + 1e-9, "token1 {delta}");
        }
    }

    #[test]
    fn harmonic_mean_liquidity_follows_the_oracle_library() {
        // A constant liquidity L accumulates window × 2^128 / L.
        let l = 913_000_000_000_000_000_000u128;
        let per_second = (U160::from(1u8) << 128usize).checked_div(U160::from(l)).unwrap();
        let delta = per_second.checked_mul(U160::from(600u32)).unwrap();
        let start = U160::from(5u8);
        let mean = harmonic_mean_liquidity(start, start.checked_add(delta).unwrap(), 600);
        assert!(mean.abs_diff(l) < l / 1_000_000, "{mean}");
        // The cumulative wraps modulo 2^160 by design: 10 below the top, then past it.
        let near_top = U160::MAX.checked_sub(U160::from(9u8)).unwrap();
        let wrapped = harmonic_mean_liquidity(near_top, delta.checked_sub(U160::from(10u8)).unwrap(), 600);
        assert_eq!(wrapped, mean);
        // Zero liquidity counts as 1 in the pool: window << 128 → a harmonic mean of 0.
        let empty = U160::from(600u32) << 128usize;
        assert_eq!(harmonic_mean_liquidity(U160::ZERO, empty, 600), 0);
        assert_eq!(harmonic_mean_liquidity(U160::ZERO, U160::ZERO, 600), u128::MAX);
    }
}
