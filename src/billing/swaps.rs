//! The one-click buy of a missing token (`[pricing.swap]`): what a member short of TMAI
//! pays, in the configured token, for exactly the shortfall through a Uniswap v3
//! `SwapRouter`, priced by Uniswap's `QuoterV2` (an `eth_call` that simulates the very swap,
//! every hop and tick), with the slippage bound the member sees and the swap may not exceed.
//!
//! Rounding: the quoter's input is the exact input of the simulated swap; the bound is that
//! input times `(10,000 + slippage_bps) / 10,000`, rounded **up** to the paying token's
//! smallest unit (the router takes only what the swap needs, so the member pays at most the
//! bound and usually the quote). The output is the shortfall, exactly (`exactOutput`).

use std::sync::Arc;

use alloy::{
    primitives::{Address, Bytes, U256},
    providers::{DynProvider, Provider},
    sol,
};

use crate::{
    chain::deployment::{Deployment, TokenInfo},
    config::SwapSettings,
};

sol! {
    #[sol(rpc)]
    interface IQuoterV2 {
        function quoteExactOutput(bytes memory path, uint256 amountOut) external returns (uint256 amountIn, uint160[] memory sqrtPriceX96AfterList, uint32[] memory initializedTicksCrossedList, uint256 gasEstimate);
    }
}

/// Gas the page's swap transaction adds to the quoter's estimate of the swap itself: the
/// transaction's base cost (21,000), `selfPermit` (an EIP-2612 permit, about 50,000) and the
/// `multicall` around both.
pub const SWAP_TX_OVERHEAD_GAS: u64 = 80_000;

/// The largest shortfall a quote is made for, in the bought token's smallest units: 10^36
/// (a billion billion whole tokens at 18 decimals), far past any plan, so a quote request
/// cannot ask the node to simulate absurd amounts.
pub const MAX_AMOUNT_OUT: u128 = 1_000_000_000_000_000_000_000_000_000_000_000_000;

/// One token that can be bought: its deployment entry and the encoded exact-output path.
#[derive(Debug, Clone)]
pub struct Route {
    /// The token bought.
    pub token: TokenInfo,
    /// The path as `exactOutput` takes it: the bought token first, the paying token last.
    pub path: Bytes,
    /// The pools' fees compounded, in parts per million of the input (`1 − Π(1 − fee)`).
    pub pool_fee_ppm: u32,
    /// Hops (pools) on the route.
    pub hops: usize,
}

/// What buying a shortfall costs.
#[derive(Debug, Clone)]
pub struct SwapQuote {
    /// The route.
    pub route: Route,
    /// The token paid with.
    pub pay_with: TokenInfo,
    /// The shortfall bought, exactly (smallest units of the bought token).
    pub amount_out: U256,
    /// The input the quoter's simulation needs (smallest units of `pay_with`).
    pub amount_in: U256,
    /// The most the swap may take: `amount_in` plus the slippage bound, rounded up.
    pub amount_in_max: U256,
    /// Gas of the page's swap transaction (the quoter's estimate plus
    /// [`SWAP_TX_OVERHEAD_GAS`]).
    pub gas: u64,
    /// The node's gas price (wei), when it answered.
    pub gas_price_wei: Option<u128>,
}

/// Why a swap quote cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// No route buys that token.
    #[error("no swap route buys {0:?}; tokens that can be bought: {1}")]
    NoRoute(String, String),
    /// A zero or too large amount.
    #[error("amount must be 1 to {MAX_AMOUNT_OUT} smallest units")]
    Amount,
    /// Every quoter slot is in use.
    #[error("as many swap quotes are being worked out as pricing.swap.quotes_in_flight allows; try again in a second")]
    Busy,
    /// The quoter refused (no liquidity for that much) or the node did not answer.
    #[error("the market cannot price that swap now: {0}")]
    Unpriced(String),
}

/// The configured swap: routes resolved against the deployment, the quoter and its share of
/// the node.
#[derive(Debug)]
pub struct SwapDesk {
    /// The `SwapRouter` the page calls.
    pub router: Address,
    quoter: Address,
    /// The token a member pays the swap with.
    pub pay_with: TokenInfo,
    /// Basis points the member may pay above the quote.
    pub slippage_bps: u32,
    /// The tokens that can be bought.
    pub routes: Vec<Route>,
    in_flight: Arc<tokio::sync::Semaphore>,
    provider: DynProvider,
}

/// Encodes an exact-output path: `out`, then each (fee, token) back to `input`. `hops` are
/// (token, fee) from the paying side: the fee of the pool between a token and the next.
pub fn exact_output_path(input: Address, via: &[Address], fees: &[u32], out: Address) -> Bytes {
    let tokens: Vec<Address> = std::iter::once(input).chain(via.iter().copied()).chain(std::iter::once(out)).collect();
    let mut path = Vec::with_capacity(20 + 23 * fees.len());
    path.extend_from_slice(out.as_slice());
    for (i, fee) in fees.iter().enumerate().rev() {
        path.extend_from_slice(&fee.to_be_bytes()[1..]);
        path.extend_from_slice(tokens[i].as_slice());
    }
    Bytes::from(path)
}

/// The pools' fees compounded, in parts per million of the input, rounded up.
pub fn compounded_fee_ppm(fees: &[u32]) -> u32 {
    // Π(1 − fee/10^6) with exact integers: keep = Π(10^6 − fee) / 10^(6·n).
    let scale = 1_000_000u128.pow(fees.len() as u32);
    let keep: u128 = fees.iter().map(|f| 1_000_000u128 - u128::from(*f)).product();
    let lost = scale - keep;
    u32::try_from(lost.div_ceil(scale / 1_000_000)).unwrap_or(u32::MAX)
}

/// `amount × (10,000 + bps) / 10,000`, rounded up.
pub fn with_slippage(amount: U256, bps: u32) -> U256 {
    (amount * U256::from(10_000 + bps)).div_ceil(U256::from(10_000))
}

impl SwapDesk {
    /// Resolves `settings` against `deployment`: errors name the field (an unknown symbol).
    pub fn new(settings: &SwapSettings, deployment: &Deployment, provider: DynProvider) -> Result<Self, (String, String)> {
        settings.validate()?;
        let token = |field: String, symbol: &str| {
            deployment.token(symbol).cloned().ok_or_else(|| (field, format!("{symbol:?} is not one of the deployment's tokens ({})", symbols(deployment))))
        };
        let pay_with = token("pricing.swap.pay_with".into(), &settings.pay_with)?;
        let routes = settings
            .routes
            .iter()
            .map(|(symbol, route)| {
                let bought = token(format!("pricing.swap.routes.{symbol}"), symbol)?;
                Ok(Route {
                    path: exact_output_path(pay_with.address, &route.via, &route.fees, bought.address),
                    pool_fee_ppm: compounded_fee_ppm(&route.fees),
                    hops: route.fees.len(),
                    token: bought,
                })
            })
            .collect::<Result<Vec<_>, (String, String)>>()?;
        Ok(Self {
            router: settings.router,
            quoter: settings.quoter,
            pay_with,
            slippage_bps: settings.slippage_bps,
            routes,
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.quotes_in_flight as usize)),
            provider,
        })
    }

    /// Returns what buying exactly `amount_out` of `symbol` costs now. Refused at once when
    /// `quotes_in_flight` quotes are being worked out (never queued).
    pub async fn quote(&self, symbol: &str, amount_out: U256) -> Result<SwapQuote, SwapError> {
        let route = self
            .routes
            .iter()
            .find(|r| r.token.symbol == symbol)
            .ok_or_else(|| SwapError::NoRoute(symbol.to_string(), self.routes.iter().map(|r| r.token.symbol.as_str()).collect::<Vec<_>>().join(", ")))?;
        if amount_out.is_zero() || amount_out > U256::from(MAX_AMOUNT_OUT) {
            return Err(SwapError::Amount);
        }
        let _slot = self.in_flight.clone().try_acquire_owned().map_err(|_| SwapError::Busy)?;
        let quoter = IQuoterV2::new(self.quoter, &self.provider);
        let quoted = quoter.quoteExactOutput(route.path.clone(), amount_out).call().await.map_err(|e| {
            tracing::warn!(error = %crate::config::scrubbed_urls(&e.to_string()), token = symbol, "the swap quoter refused");
            SwapError::Unpriced("the pools do not hold enough for that amount, or the node did not answer".into())
        })?;
        let gas_price_wei = self.provider.get_gas_price().await.ok();
        let gas = u64::try_from(quoted.gasEstimate).unwrap_or(u64::MAX).saturating_add(SWAP_TX_OVERHEAD_GAS);
        Ok(SwapQuote {
            route: route.clone(),
            pay_with: self.pay_with.clone(),
            amount_out,
            amount_in: quoted.amountIn,
            amount_in_max: with_slippage(quoted.amountIn, self.slippage_bps),
            gas,
            gas_price_wei,
        })
    }
}

fn symbols(deployment: &Deployment) -> String {
    deployment.tokens.iter().map(|t| t.symbol.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_output_path_runs_from_the_bought_token_back_to_the_paying_one() {
        let (usd, weth, tmai) = (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));
        let path = exact_output_path(usd, &[weth], &[500, 3_000], tmai);
        let mut want = Vec::new();
        want.extend_from_slice(tmai.as_slice());
        want.extend_from_slice(&[0x00, 0x0b, 0xb8]); // 3000: the WETH/TMAI pool
        want.extend_from_slice(weth.as_slice());
        want.extend_from_slice(&[0x00, 0x01, 0xf4]); // 500: the USD/WETH pool
        want.extend_from_slice(usd.as_slice());
        assert_eq!(path.as_ref(), want.as_slice());
        assert_eq!(exact_output_path(usd, &[], &[10_000], tmai).len(), 43);
    }

    #[test]
    fn fees_compound_and_round_up_and_slippage_rounds_up() {
        // 1 − 0.997² = 0.005991 exactly.
        assert_eq!(compounded_fee_ppm(&[3_000, 3_000]), 5_991);
        assert_eq!(compounded_fee_ppm(&[3_000]), 3_000);
        // 1 − 0.9999³ = 0.000299970001 → 300 ppm, rounded up.
        assert_eq!(compounded_fee_ppm(&[100, 100, 100]), 300);
        assert_eq!(with_slippage(U256::from(10_000u64), 100), U256::from(10_100u64));
        assert_eq!(with_slippage(U256::from(1u64), 100), U256::from(2u64));
        assert_eq!(with_slippage(U256::from(999_999u64), 50), U256::from(1_004_999u64));
    }
}
