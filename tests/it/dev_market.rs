//! The market in the committed fixtures, loaded the way `tmai-pay dev` loads it: real
//! WETH9, Uniswap v3 pools and Chainlink aggregators, with the example catalog's sources.

use alloy::{
    node_bindings::AnvilInstance,
    providers::{DynProvider, Provider, ext::AnvilApi},
};
use tmai_pay::{
    billing::rates::report,
    chain::{
        deployment::Deployment,
        devnet::{self, AnvilOptions},
        market,
    },
    config::Settings,
};

use crate::helpers::toolchain;

/// Three weeks.
const WEEKS: u64 = 21 * 24 * 60 * 60;

struct DevChain {
    anvil: AnvilInstance,
    provider: DynProvider,
    deployment: Deployment,
    settings: Settings,
}

/// anvil with the committed state loaded (as `tmai-pay dev` starts it) and the example
/// catalog pointed at it.
fn load_fixtures() -> DevChain {
    let toolchain = toolchain();
    let dir = toolchain.fixtures_dir();
    let deployment = Deployment::read(&dir.join(devnet::DEPLOYMENT_FILE)).unwrap();
    let options = AnvilOptions { load_state: Some(dir.join(devnet::STATE_FILE)), ..AnvilOptions::default() };
    let anvil = devnet::spawn_anvil(&toolchain, &options).unwrap();
    let provider = devnet::provider_for(&anvil, devnet::DEPLOYER);
    let mut settings = Settings::from_toml(include_str!("../../tmai-pay.example.toml")).unwrap();
    settings.chain.rpc_url = anvil.endpoint();
    settings.deployment_file = dir.join(devnet::DEPLOYMENT_FILE);
    DevChain { anvil, provider, deployment, settings }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The USD rate of `symbol` in a report, when it is healthy.
fn rate_of(report: &str, symbol: &str) -> Option<f64> {
    let line = report.lines().find(|l| l.starts_with(&format!("{symbol} ")))?;
    if !line.ends_with("ok") {
        return None;
    }
    line.split_whitespace().nth(2)?.parse().ok()
}

#[tokio::test]
async fn the_committed_fixtures_price_in_dollars_weeks_after_they_were_made_once_the_feeds_are_refreshed() {
    // Arrange: the chain's clock weeks after the fixtures were made (and after now).
    let chain = load_fixtures();
    let market = chain.deployment.market.clone().expect("the fixtures name a market");
    let later = devnet::FIXTURE_GENESIS_TIME.max(now()) + WEEKS;
    chain.provider.anvil_set_next_block_timestamp(later).await.unwrap();
    chain.provider.anvil_mine(Some(1), None).await.unwrap();
    let (stale, stale_healthy) = report::report(&chain.settings).await.unwrap();

    // Act
    market::refresh_feeds(&chain.provider, &market).await.unwrap();
    let (fresh, healthy) = report::report(&chain.settings).await.unwrap();

    // Assert
    assert!(!stale_healthy && stale.contains("stale"), "rounds weeks old are refused before the refresh:\n{stale}");
    assert!(healthy, "{fresh}");
    let tmai = rate_of(&fresh, "TMAI").unwrap();
    assert!((tmai - market::TMAI_USD).abs() < 0.001, "TMAI at its start price, spot == TWAP weeks later: {fresh}");
    assert_eq!(rate_of(&fresh, "USD"), Some(1.0), "{fresh}");
    let head = chain.provider.get_block_by_number(Default::default()).await.unwrap().unwrap();
    assert!(head.header.timestamp >= later, "the report read the chain weeks later");
    drop(chain.anvil);
}

#[tokio::test]
async fn devnet_swap_moves_the_spot_at_once_and_the_twap_after_the_window() {
    // Arrange
    let chain = load_fixtures();
    let market = chain.deployment.market.clone().unwrap();
    market::refresh_feeds(&chain.provider, &market).await.unwrap();
    let (before, healthy) = report::report(&chain.settings).await.unwrap();
    assert!(healthy, "{before}");

    // Act: buy TMAI worth $50,000, then let a whole TWAP window pass.
    let swap = market::swap_usd(&chain.provider, &chain.deployment, 50_000, false).await.unwrap();
    let (pushed, pushed_healthy) = report::report(&chain.settings).await.unwrap();
    chain.provider.anvil_increase_time(1_801).await.unwrap();
    market::refresh_feeds(&chain.provider, &market).await.unwrap();
    let (settled, settled_healthy) = report::report(&chain.settings).await.unwrap();
    let sold = market::swap_usd(&chain.provider, &chain.deployment, 50_000, true).await.unwrap();

    // Assert
    let moved = swap.spot_after / swap.spot_before - 1.0;
    assert!(moved > 0.05, "a $50,000 buy moves the spot more than the 5 % guard: {swap:?}");
    assert!(swap.tmai > 400_000.0, "{swap:?}");
    assert!(!pushed_healthy && pushed.contains("manipulated"), "a same-block push is refused:\n{pushed}");
    assert!(settled_healthy, "{settled}");
    let twap = rate_of(&settled, "TMAI").unwrap();
    assert!(twap > rate_of(&before, "TMAI").unwrap() * 1.05, "the TWAP followed the spot after the window:\n{before}\n{settled}");
    assert!((twap / swap.spot_after - 1.0).abs() < 0.001, "TWAP {twap} against spot {}", swap.spot_after);
    assert!(sold.spot_after < sold.spot_before * 0.95, "--sell moves it down: {sold:?}");
}

/// What the checkout page sends for a quote: `multicall(selfPermit(pay token, max),
/// exactOutput(path, shortfall, max))` from `wallet`, signed with its key.
async fn page_swap(
    chain: &DevChain,
    wallet: usize,
    quote: &tmai_pay::billing::swaps::SwapQuote,
    router: alloy::primitives::Address,
) -> alloy::rpc::types::TransactionReceipt {
    use alloy::{primitives::U256, sol_types::SolCall};
    use tmai_pay::chain::{
        bindings::TestToken,
        signing::{PermitRequest, sign_permit},
    };
    let key = devnet::key(&chain.anvil, wallet);
    let provider = devnet::provider_for(&chain.anvil, wallet);
    let pay = TestToken::new(quote.pay_with.address, &provider);
    let deadline = U256::from(now() + 3_600);
    let request = PermitRequest {
        token_name: pay.name().call().await.unwrap(),
        token: quote.pay_with.address,
        chain_id: chain.deployment.chain_id,
        spender: router,
        value: quote.amount_in_max,
        nonce: pay.nonces(key.address()).call().await.unwrap(),
        deadline,
    };
    let permit = sign_permit(&key, &request).await.unwrap();
    let self_permit =
        market::ISwapRouter::selfPermitCall { token: quote.pay_with.address, value: quote.amount_in_max, deadline, v: permit.v, r: permit.r, s: permit.s };
    let exact_output = market::ISwapRouter::exactOutputCall {
        params: market::ISwapRouter::ExactOutputParams {
            path: quote.route.path.clone(),
            recipient: key.address(),
            deadline,
            amountOut: quote.amount_out,
            amountInMaximum: quote.amount_in_max,
        },
    };
    let router = market::ISwapRouter::new(router, &provider);
    router.multicall(vec![self_permit.abi_encode().into(), exact_output.abi_encode().into()]).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap()
}

#[tokio::test]
async fn a_wallet_short_of_tmai_buys_exactly_the_shortfall_at_the_quoted_price_and_a_moved_market_takes_nothing() {
    use alloy::primitives::U256;
    use tmai_pay::{
        billing::swaps::{SwapDesk, SwapError},
        chain::bindings::TestToken,
    };
    // Arrange: the example catalog's swap on the committed market (USD → WETH → TMAI).
    let chain = load_fixtures();
    let market = chain.deployment.market.clone().unwrap();
    let swap = chain.settings.pricing.swap.clone().expect("the example configures the one-click buy");
    assert_eq!((swap.router, swap.quoter), (market.swap_router, market.quoter), "the example's router and quoter are the fixtures'");
    assert_eq!((swap.routes["TMAI"].via.clone(), swap.routes["TMAI"].fees.clone()), (vec![market.weth], vec![market.fee, market.fee]));
    let desk = SwapDesk::new(&swap, &chain.deployment, chain.provider.clone()).unwrap();
    let wallet = 7;
    let who = chain.anvil.addresses()[wallet];
    let (tmai, usd) = (chain.deployment.token("TMAI").unwrap().address, chain.deployment.token("USD").unwrap().address);
    let balances = || async {
        (TestToken::new(tmai, &chain.provider).balanceOf(who).call().await.unwrap(), TestToken::new(usd, &chain.provider).balanceOf(who).call().await.unwrap())
    };
    let shortfall = U256::from(1_234_567_890_123_456_789_012u128); // ~1,234.57 TMAI, ~$123

    // Act: a quote, the page's swap for it; then a second quote, a $50,000 push, its swap
    let quote = desk.quote("TMAI", shortfall).await.unwrap();
    let (tmai_before, usd_before) = balances().await;
    let bought = page_swap(&chain, wallet, &quote, swap.router).await;
    let (tmai_after, usd_after) = balances().await;
    let second = desk.quote("TMAI", shortfall).await.unwrap();
    market::swap_usd(&chain.provider, &chain.deployment, 50_000, false).await.unwrap();
    let refused = page_swap(&chain, wallet, &second, swap.router).await;
    let (tmai_refused, usd_refused) = balances().await;

    // Assert: exactly the shortfall, for exactly the simulated input (nothing moved the
    // pools between quote and swap), within the bound; at ~$0.10 plus 0.6 % of fees
    assert!(bought.status(), "the swap went through");
    assert_eq!(tmai_after - tmai_before, shortfall, "exactly the shortfall is bought");
    assert_eq!(usd_before - usd_after, quote.amount_in, "the member paid the quoted input");
    assert!(quote.amount_in <= quote.amount_in_max && quote.amount_in_max == (quote.amount_in * U256::from(10_100u32)).div_ceil(U256::from(10_000u32)));
    let dollars = quote.amount_in.to::<u128>() as f64 / 1e6;
    assert!((dollars / (1_234.567_890_123 * market::TMAI_USD) - 1.0 - 0.006).abs() < 0.003, "${dollars} for 1,234.57 TMAI at $0.10 with 0.6 % of fees");
    assert_eq!(quote.route.pool_fee_ppm, 5_991);
    assert!(quote.gas > 100_000 && quote.gas < 400_000, "{}", quote.gas);
    println!("one-click buy: {} gas for multicall(selfPermit, exactOutput 2 hops); quoter estimate {}", bought.gas_used, quote.gas);
    assert!(!refused.status(), "a market pushed past the bound refuses the swap");
    assert_eq!((tmai_refused, usd_refused), (tmai_after, usd_after), "a refused swap takes nothing");
    // Refusals before the node is asked
    assert!(matches!(desk.quote("USD", shortfall).await, Err(SwapError::NoRoute(..))));
    assert!(matches!(desk.quote("TMAI", U256::ZERO).await, Err(SwapError::Amount)));
    assert!(matches!(desk.quote("TMAI", U256::from(10u8).pow(U256::from(37u8))).await, Err(SwapError::Amount)));
    // More than the pools hold: the quoter's simulation fails, a clear refusal
    assert!(matches!(desk.quote("TMAI", U256::from(10u8).pow(U256::from(33u8))).await, Err(SwapError::Unpriced(_))));
}
