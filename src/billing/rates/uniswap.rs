//! Uniswap v3 pools: the time-weighted average tick over a window (`observe`), turned into
//! USD per token with the quote asset's USD rate. Quotes are refused while the pool's
//! observation history is shorter than the window, and when the spot tick (`slot0`) is
//! further from the TWAP than the configured share (a price pushed within a block).
#![allow(missing_docs, unreachable_pub)]

use alloy::{
    eips::BlockId,
    primitives::{Address, U256, U512, aliases::I56},
    providers::DynProvider,
    sol,
};

use super::ConfigError;
use crate::billing::pricing::{RATE_SCALE, UsdRate};

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

/// What one look at the pool found.
#[derive(Debug, Clone, Copy)]
pub struct PoolPrice {
    /// The quote asset per whole token over the window, times 10^18.
    pub twap: UsdRate,
    /// The average tick over the window.
    pub twap_tick: i32,
    /// The spot tick.
    pub spot_tick: i32,
}

/// Reads the TWAP over `window` seconds at `block`, refusing a short history or a spot
/// price further than `max_deviation_bps` from it.
pub async fn read(provider: &DynProvider, info: &PoolInfo, window: u32, max_deviation_bps: u32, block: u64) -> Result<PoolPrice, String> {
    let pool = IUniswapV3Pool::new(info.pool, provider);
    let observed = pool.observe(vec![window, 0]).block(BlockId::number(block)).call().await.map_err(|e| {
        let text = e.to_string();
        if text.contains("OLD") {
            format!("the pool {}'s observation history is shorter than the {window} s window (raise its observation cardinality and wait)", info.pool)
        } else {
            format!("the pool {} cannot be observed: {text}", info.pool)
        }
    })?;
    let slot0 = pool.slot0().block(BlockId::number(block)).call().await.map_err(|e| format!("the pool {}'s slot0 cannot be read: {e}", info.pool))?;
    let [older, newer] = observed.tickCumulatives[..] else {
        return Err(format!("the pool {} answered {} cumulatives for 2 points", info.pool, observed.tickCumulatives.len()));
    };
    let twap_tick = average_tick(older, newer, window);
    let spot_tick = slot0.tick.as_i32();
    let allowed = max_tick_distance(max_deviation_bps);
    if (i64::from(spot_tick) - i64::from(twap_tick)).unsigned_abs() > allowed {
        return Err(format!(
            "the pool {}'s spot price is more than {max_deviation_bps} bps from its {window} s TWAP (spot tick {spot_tick}, TWAP tick {twap_tick}): refused as manipulated",
            info.pool
        ));
    }
    let tick = if info.token_is_0 { twap_tick } else { -twap_tick };
    Ok(PoolPrice { twap: quote_per_token(tick, info.token_decimals, info.quote_decimals), twap_tick, spot_tick })
}

/// The mean tick between two cumulatives `window` seconds apart, rounded toward −∞.
pub fn average_tick(older: I56, newer: I56, window: u32) -> i32 {
    let delta = i64::try_from(newer).unwrap_or(0) - i64::try_from(older).unwrap_or(0);
    delta.div_euclid(i64::from(window.max(1))) as i32
}

/// The most ticks two prices `bps` basis points apart can be (1 tick = ×1.0001): an
/// integer search, no floating point.
pub fn max_tick_distance(bps: u32) -> u64 {
    // 1.0001^n ≤ 1 + bps/10^4, counted exactly on 1e18-scaled integers.
    let limit = U256::from(10_000u64 + u64::from(bps)) * U256::from(RATE_SCALE / 10_000);
    let mut price = U256::from(RATE_SCALE);
    let mut n = 0u64;
    while n < 1_000_000 {
        let next = price * U256::from(10_001u64) / U256::from(10_000u64);
        if next > limit {
            break;
        }
        price = next;
        n += 1;
    }
    n
}

/// 1.0001^tick in Q128 fixed point (U512 to keep the squares), by repeated squaring.
fn pow_q128(tick: i32) -> U512 {
    let one = U512::from(1u8) << 128usize;
    let mut base = (U512::from(10_001u64) << 128usize) / U512::from(10_000u64);
    let mut result = one;
    let mut n = tick.unsigned_abs();
    while n > 0 {
        if n & 1 == 1 {
            result = (result * base) >> 128usize;
        }
        base = (base * base) >> 128usize;
        n >>= 1;
    }
    if tick < 0 { (U512::from(1u8) << 256usize) / result } else { result }
}

/// Quote-asset units per whole token at `tick` (token1 per token0 in raw units is
/// 1.0001^tick), times 10^18.
pub fn quote_per_token(tick: i32, token_decimals: u8, quote_decimals: u8) -> UsdRate {
    let ten = U512::from(10u8);
    let raw = pow_q128(tick);
    let scaled = raw * ten.pow(U512::from(token_decimals)) * U512::from(RATE_SCALE) / ten.pow(U512::from(quote_decimals));
    let value: U512 = scaled >> 128usize;
    UsdRate(if value > U512::from_limbs_slice(U256::MAX.as_limbs()) {
        U256::MAX
    } else {
        U256::from_limbs(value.as_limbs()[..4].try_into().expect("four limbs"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_become_prices() {
        assert_eq!(quote_per_token(0, 18, 18), UsdRate::ONE);
        // 1.0001^23027 ≈ 10 (ln 10 / ln 1.0001 = 23027.0).
        let ten = quote_per_token(23_027, 18, 18).0;
        let expected = U256::from(10u64 * RATE_SCALE as u64);
        assert!(ten.abs_diff(expected) < expected / U256::from(1_000u64), "{ten}");
        let tenth = quote_per_token(-23_027, 18, 18).0;
        assert!(tenth.abs_diff(expected / U256::from(100u64)) < expected / U256::from(100_000u64), "{tenth}");
        // 6-decimal quote asset: raw ratios shift by 10^12.
        let usdc = quote_per_token(-276_324, 18, 6).0;
        assert!(usdc > U256::from(RATE_SCALE / 2) && usdc < U256::from(RATE_SCALE * 2), "{usdc}");
    }

    #[test]
    fn deviation_guards_and_averages_round_down() {
        assert_eq!(max_tick_distance(0), 0);
        assert_eq!(max_tick_distance(1), 1);
        assert_eq!(max_tick_distance(500), 487);
        assert_eq!(average_tick(I56::try_from(0).unwrap(), I56::try_from(-7).unwrap(), 2), -4);
        assert_eq!(average_tick(I56::try_from(0).unwrap(), I56::try_from(7).unwrap(), 2), 3);
    }
}
