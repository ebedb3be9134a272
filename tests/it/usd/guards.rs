//! Rates that cannot be pushed, stale, or leaked (issue 26, §3), on the real Uniswap v3 pool
//! and Chainlink aggregators the USD tests deploy: a swap held across blocks moves the TWAP
//! by exactly its share of the window and is refused beyond `max_usd`; a pool below its
//! liquidity floor is refused; a feed behind the service clock, a node whose latest block
//! lags the clock, a rate too old to quote and a sequencer down or just restarted are
//! refused; a stablecoin is charged at the lower of $1 and its feed; a quote priced from a
//! market rate lives `market_quote_ttl_secs`.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ext::AnvilApi},
};
use tmai_pay::{
    billing::{
        plans::Catalog,
        quotes::{QuoteIssuer, QuoteRequest, price_plan},
        rates::{RateBook, RefusalCode, uniswap},
    },
    chain::{deployment::Deployment, devnet},
    clock::Clock,
    config::{PricingSettings, RateSourceConfig, SequencerFeedConfig},
    money::UsdRate,
};

use super::{PREMIUM, TWAP_SECS, feed, usd_plan, weth_to_move};
use crate::{
    db::{DbKind, fresh_db},
    helpers::spawn_chain,
    markets::{Markets, deploy_feed, set_answer},
};

fn token(d: &Deployment, symbol: &str) -> Address {
    d.tokens.iter().find(|t| t.symbol == symbol).unwrap().address
}

/// TMAI priced by the WETH pool's TWAP (spot guard 5 %) × ETH/USD, with the given guards.
fn pool_source(m: &Markets, min_liquidity: Option<u128>, min_usd: Option<&str>, max_usd: Option<&str>) -> RateSourceConfig {
    RateSourceConfig::UniswapV3 {
        pool: m.pool,
        twap_secs: TWAP_SECS,
        max_spot_deviation_bps: 500,
        quote_feed: Some(feed(m.eth_usd, 3_600)),
        quote_usd: None,
        min_liquidity: min_liquidity.map(|l| l.to_string()),
        min_usd: min_usd.map(Into::into),
        max_usd: max_usd.map(Into::into),
    }
}

async fn book_of(chain: &crate::helpers::TestChain, rpc: &DynProvider, sources: Vec<(&str, RateSourceConfig)>, clock: Clock) -> RateBook {
    let mut pricing = PricingSettings::default();
    for (symbol, source) in sources {
        pricing.tokens.insert(symbol.into(), source);
    }
    book_with(chain, rpc, pricing, clock).await
}

async fn book_with(chain: &crate::helpers::TestChain, rpc: &DynProvider, pricing: PricingSettings, clock: Clock) -> RateBook {
    RateBook::connect(&pricing, &chain.deployment.tokens, rpc.clone(), clock).await.unwrap()
}

async fn latest_time(rpc: &DynProvider) -> u64 {
    rpc.get_block_by_number(Default::default()).await.unwrap().unwrap().header.timestamp
}

/// Mines one block at `time` (unix seconds), or a second after the latest block if later.
async fn mine_at(rpc: &DynProvider, time: u64) {
    let time = time.max(latest_time(rpc).await + 1);
    rpc.anvil_set_next_block_timestamp(time).await.unwrap();
    rpc.anvil_mine(Some(1), None).await.unwrap();
}

fn code(book: &RateBook, token: Address) -> RefusalCode {
    book.current(token).expect_err("the rate should be refused").code
}

/// One pool a TWAP is read from, and how to push it.
struct Pushed {
    pool: Address,
    /// What the pool is quoted in and that buys TMAI in it.
    quote: Address,
    /// The amount of `quote` that moves the TMAI price up 4 %.
    push: u128,
    /// ETH/USD for the WETH pool, $1 for the stablecoin-like quote token.
    quote_rate: UsdRate,
    quote_feed: Option<Address>,
}

impl Pushed {
    fn source(&self, min_usd: Option<&str>, max_usd: Option<&str>) -> RateSourceConfig {
        RateSourceConfig::UniswapV3 {
            pool: self.pool,
            twap_secs: TWAP_SECS,
            max_spot_deviation_bps: 500,
            quote_feed: self.quote_feed.map(|f| feed(f, 3_600)),
            quote_usd: self.quote_feed.is_none().then(|| "1".into()),
            min_liquidity: None,
            min_usd: min_usd.map(Into::into),
            max_usd: max_usd.map(Into::into),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_held_across_blocks_moves_the_twap_by_its_share_and_is_refused_beyond_max_usd() {
    // Arrange: TMAI at $0.0025 in two real pools, one where it is token0 (against WETH ×
    // ETH/USD) and one where it is token1 (against a $1 quote token), each read by a book
    // without bounds and one refusing above $0.00255 (2 % over).
    let chain = spawn_chain().await;
    let m = Markets::deploy(&chain.anvil, &chain.deployment).await;
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let tmai = token(&chain.deployment, "TMAI");
    let whole = U256::from(10u64).pow(U256::from(18u64));
    let quote_reserve = 2_500u128 * 10u128.pow(18);
    let (other_pool, other) = m.pool_with_tmai_as_token1((U256::from(1_000_000u64) * whole, U256::from(quote_reserve)), 0.0025).await;
    let four_percent = |reserve: u128| ((reserve as f64) * (1.04f64.sqrt() - 1.0) / 0.997) as u128;
    let cases = [
        Pushed { pool: m.pool, quote: m.weth, push: weth_to_move(4.0), quote_rate: UsdRate::parse("3000").unwrap(), quote_feed: Some(m.eth_usd) },
        Pushed { pool: other_pool, quote: other, push: four_percent(quote_reserve), quote_rate: UsdRate::ONE, quote_feed: None },
    ];
    m.advance(u64::from(TWAP_SECS) + 100).await;
    let max_usd = UsdRate::parse("0.00255").unwrap();
    let window = i64::from(TWAP_SECS);
    for case in &cases {
        let token_is_0 = tmai < case.quote;
        let open = book_of(&chain, &rpc, vec![("TMAI", case.source(None, None))], Clock::system()).await;
        let bounded = book_of(&chain, &rpc, vec![("TMAI", case.source(Some("0.002"), Some("0.00255")))], Clock::system()).await;
        bounded.refresh().await;
        assert!(bounded.current(tmai).is_ok(), "token0 {token_is_0}: {:?}", bounded.current(tmai));

        // Act: a 4 % push (inside the 5 % spot guard), then held across blocks.
        let (before, price_before) = (m.spot_tick_of(case.pool).await, m.spot_price_of(case.pool).await);
        m.buy_tmai_with(case.quote, case.push).await;
        let (after, price_after) = (m.spot_tick_of(case.pool).await, m.spot_price_of(case.pool).await);
        let swapped_at = latest_time(&rpc).await;
        for held in [60i64, 150, 450] {
            mine_at(&rpc, swapped_at + held as u64).await;
            open.refresh().await;
            bounded.refresh().await;

            // Assert: the rate is never above the market's: the window's geometric-mean price
            // from the pool's exact sqrt prices (each tick is the floor of its price's log).
            let reading = open.current(tmai).unwrap_or_else(|e| panic!("token0 {token_is_0}, held {held} s: {e:?}"));
            let rate = reading.rate.to_decimal().parse::<f64>().unwrap();
            let ln_price = (price_before.ln() * (window - held) as f64 + price_after.ln() * held as f64) / window as f64;
            let market = (if token_is_0 { ln_price } else { -ln_price }).exp() * case.quote_rate.to_decimal().parse::<f64>().unwrap();
            assert!(rate <= market * (1.0 + 1e-12), "token0 {token_is_0}, held {held} s: ${rate} is above the market's ${market}");
            assert!(rate >= market * (1.0 - 3e-4), "token0 {token_is_0}, held {held} s: ${rate} is more than 3 ticks below ${market}");

            // Assert: exactly the time-weighted mean of the two spot ticks, ⌊mean⌋ for token0,
            // −(⌈mean⌉ + 1) for token1.
            let cumulative = i64::from(before) * (window - held) + i64::from(after) * held;
            let tick = if token_is_0 { cumulative.div_euclid(window) } else { -(-(-cumulative).div_euclid(window) + 1) };
            let expected = uniswap::quote_per_token(i32::try_from(tick).unwrap(), 18, 18).unwrap().times(case.quote_rate).unwrap();
            assert_eq!(reading.rate, expected, "token0 {token_is_0}, held {held} s: spot ticks {before} → {after}");
            let moved = rate / 0.0025 - 1.0;
            let share = 0.04 * held as f64 / window as f64;
            assert!((moved - share).abs() < 0.002, "token0 {token_is_0}, held {held} s: the TWAP moved {moved}, the held share of 4 % is {share}");
            if expected <= max_usd {
                assert!(bounded.current(tmai).is_ok(), "token0 {token_is_0}, held {held} s: {:?}", bounded.current(tmai));
            } else {
                let refused = bounded.current(tmai).unwrap_err();
                assert_eq!(refused.code, RefusalCode::RateOutOfBounds, "token0 {token_is_0}, held {held} s: {refused:?}");
                assert_eq!(refused.reason, RefusalCode::RateOutOfBounds.message());
            }
        }
        assert_eq!(code(&bounded, tmai), RefusalCode::RateOutOfBounds, "450 s of a 600 s window at +4 % is past $0.00255");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_below_its_liquidity_floor_is_refused() {
    // Arrange: the pool's own liquidity, and two floors around it.
    let chain = spawn_chain().await;
    let m = Markets::deploy(&chain.anvil, &chain.deployment).await;
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let tmai = token(&chain.deployment, "TMAI");
    let liquidity = m.liquidity().await;
    assert!(liquidity > 0);
    let thin = book_of(&chain, &rpc, vec![("TMAI", pool_source(&m, Some(liquidity * 2), None, None))], Clock::system()).await;
    let deep = book_of(&chain, &rpc, vec![("TMAI", pool_source(&m, Some(liquidity / 2), None, None))], Clock::system()).await;

    // Act: a window of the full pool.
    m.advance(u64::from(TWAP_SECS) + 100).await;
    thin.refresh().await;
    deep.refresh().await;

    // Assert: below the floor refused with its code, above it priced.
    let refused = thin.current(tmai).unwrap_err();
    assert_eq!(refused.code, RefusalCode::ThinPool, "{refused:?}");
    assert!(refused.detail.contains("min_liquidity"), "{}", refused.detail);
    assert!(deep.current(tmai).is_ok(), "{:?}", deep.current(tmai));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_behind_the_clock_a_lagging_node_and_an_old_rate_are_refused() {
    // Arrange: the stablecoin guarded by a peg feed with a 30 s heartbeat; TMAI at a fixed
    // rate (read from no chain: it keeps selling). The service clock is moved, not the chain.
    let chain = spawn_chain().await;
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let usd = token(&chain.deployment, "USD");
    let tmai = token(&chain.deployment, "TMAI");
    let peg = deploy_feed(&rpc, 8, 100_000_000).await;
    let clock = Clock::system();
    let sources = vec![
        ("USD", RateSourceConfig::Stable { peg_feed: Some(feed(peg, 30)), peg_tolerance_bps: 100 }),
        ("TMAI", RateSourceConfig::Fixed { usd: "0.0025".into() }),
    ];
    let book = book_of(&chain, &rpc, sources, clock.clone()).await;
    mine_at(&rpc, clock.now()).await;
    book.refresh().await;
    assert!(book.current(usd).is_ok(), "{:?}", book.current(usd));

    // Act 1: the clock is 45 s past the feed's update, the node 45 s behind (within
    // max_block_lag_secs 60): by the block's time the feed looks fresh, by the clock it is not.
    clock.advance(Duration::from_secs(45));
    book.refresh().await;
    assert_eq!(code(&book, usd), RefusalCode::StaleFeed, "a feed behind the clock");
    assert!(book.current(tmai).is_ok());

    // Act 2: a fresh answer in a block at the clock's time restores it.
    rpc.anvil_set_next_block_timestamp(clock.now()).await.unwrap();
    set_answer(&rpc, peg, 100_000_000).await;
    book.refresh().await;
    assert!(book.current(usd).is_ok(), "{:?}", book.current(usd));

    // Act 3: the rate is not read again for longer than market_rate_max_age_secs (120):
    // too old to price a quote, though the cache (max_cache_age_secs 300) still holds it.
    clock.advance(Duration::from_secs(121));
    assert_eq!(code(&book, usd), RefusalCode::RateTooOld);
    assert!(book.current(tmai).is_ok(), "a fixed rate does not age with a market");

    // Act 4: the node's latest block now lags the clock by 121 s (> 60): every rate read
    // from the chain is refused, with its own code; the fixed rate keeps selling.
    book.refresh().await;
    let refused = book.current(usd).unwrap_err();
    assert_eq!(refused.code, RefusalCode::StaleNode, "{refused:?}");
    assert!(refused.detail.contains("behind the clock"), "{}", refused.detail);
    assert!(!refused.to_string().contains("behind the clock by"), "the detail stays out of the answer: {refused}");
    assert!(book.current(tmai).is_ok());

    // Act 5: the node catches up (a block at the clock's time, a fresh answer): sold again.
    rpc.anvil_set_next_block_timestamp(clock.now()).await.unwrap();
    set_answer(&rpc, peg, 100_000_000).await;
    book.refresh().await;
    assert!(book.current(usd).is_ok(), "{:?}", book.current(usd));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_down_or_just_restarted_refuses_rates_read_from_the_chain() {
    // Arrange: Chainlink's aggregator as an L2 sequencer-uptime feed (0 decimals, answer 0:
    // up, its startedAt the deployment's block), grace one hour.
    let chain = spawn_chain().await;
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let usd = token(&chain.deployment, "USD");
    let tmai = token(&chain.deployment, "TMAI");
    let peg = deploy_feed(&rpc, 8, 100_000_000).await;
    let sequencer = deploy_feed(&rpc, 0, 0).await;
    let mut pricing = PricingSettings::default();
    pricing.tokens.insert("USD".into(), RateSourceConfig::Stable { peg_feed: Some(feed(peg, 86_400)), peg_tolerance_bps: 100 });
    pricing.tokens.insert("TMAI".into(), RateSourceConfig::Fixed { usd: "0.0025".into() });
    pricing.sequencer_uptime_feed = Some(SequencerFeedConfig { address: sequencer, grace_secs: 3_600 });
    let book = book_with(&chain, &rpc, pricing.clone(), Clock::system()).await;
    let advance = |secs: u64| {
        let rpc = rpc.clone();
        async move {
            rpc.anvil_increase_time(secs).await.unwrap();
            rpc.anvil_mine(Some(1), None).await.unwrap();
        }
    };

    // Up for less than the grace period: refused; the fixed rate sells.
    book.refresh().await;
    assert_eq!(code(&book, usd), RefusalCode::SequencerDown);
    assert!(book.current(tmai).is_ok());
    advance(3_601).await;
    book.refresh().await;
    assert!(book.current(usd).is_ok(), "{:?}", book.current(usd));

    // Down: refused; back up: refused through the grace period, then sold.
    set_answer(&rpc, sequencer, 1).await;
    book.refresh().await;
    assert_eq!(code(&book, usd), RefusalCode::SequencerDown);
    set_answer(&rpc, sequencer, 0).await;
    advance(600).await;
    book.refresh().await;
    assert_eq!(code(&book, usd), RefusalCode::SequencerDown, "10 minutes into the hour's grace");
    advance(3_000).await;
    book.refresh().await;
    assert!(book.current(usd).is_ok(), "{:?}", book.current(usd));

    // A sequencer feed that is no contract stops start-up naming the field.
    pricing.sequencer_uptime_feed = Some(SequencerFeedConfig { address: Address::repeat_byte(0x77), grace_secs: 3_600 });
    let error = RateBook::connect(&pricing, &chain.deployment.tokens, rpc.clone(), Clock::system()).await.unwrap_err().to_string();
    assert!(error.contains("pricing.sequencer_uptime_feed.address") && error.contains("no contract"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stablecoin_is_charged_at_the_lower_of_one_dollar_and_its_feed() {
    let chain = spawn_chain().await;
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let usd = chain.deployment.tokens.iter().find(|t| t.symbol == "USD").unwrap().clone();
    let peg = deploy_feed(&rpc, 8, 99_500_000).await;
    let book =
        book_of(&chain, &rpc, vec![("USD", RateSourceConfig::Stable { peg_feed: Some(feed(peg, 86_400)), peg_tolerance_bps: 100 })], Clock::system()).await;
    let catalog = Catalog::new(&[usd_plan()], &chain.deployment.tokens).unwrap();
    let plan = catalog.get(PREMIUM).unwrap();

    // $0.995, within the 1 % tolerance: charged at $0.995 ($49 = 49.2463 USD, 6 digits up).
    book.refresh().await;
    assert_eq!(book.current(usd.address).unwrap().rate, UsdRate::parse("0.995").unwrap());
    let (amount, pricing) = price_plan(Some(&book), plan, &usd, 1).unwrap();
    assert_eq!(amount.units(), U256::from(49_246_300u64));
    assert!(pricing.unwrap().usd_value.micro() >= 49_000_000);

    // $1.004: charged at $1, never as if the coin were worth more.
    set_answer(&rpc, peg, 100_400_000).await;
    book.refresh().await;
    assert_eq!(book.current(usd.address).unwrap().rate, UsdRate::ONE);
    assert_eq!(price_plan(Some(&book), plan, &usd, 1).unwrap().0.units(), U256::from(49_000_000u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_priced_from_a_market_rate_lives_shorter_than_a_fixed_one() {
    // Arrange: USD guarded by its peg feed (a market), TMAI at a fixed rate; quotes 1800 s.
    let chain = spawn_chain().await;
    let test_db = fresh_db(DbKind::Sqlite).await;
    let d = chain.deployment.clone();
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let peg = deploy_feed(&rpc, 8, 100_000_000).await;
    let sources = vec![
        ("USD", RateSourceConfig::Stable { peg_feed: Some(feed(peg, 86_400)), peg_tolerance_bps: 100 }),
        ("TMAI", RateSourceConfig::Fixed { usd: "0.0025".into() }),
    ];
    let book = Arc::new(book_of(&chain, &rpc, sources, Clock::system()).await);
    book.refresh().await;
    let catalog = Catalog::new(&[usd_plan()], &d.tokens).unwrap();
    let issuer = QuoteIssuer::new(devnet::key(&chain.anvil, devnet::QUOTE_SIGNER), d.chain_id, d.checkout, 1_800).with_rates(book.clone());
    let now = Clock::system().now();
    let request = |token: &str| QuoteRequest { plan_id: PREMIUM, token: token.into(), payer: chain.anvil.addresses()[1], periods: 1 };

    // Act
    let market = issuer.issue(&test_db.db, &catalog, &request("USD"), now).await.unwrap();
    let fixed = issuer.issue(&test_db.db, &catalog, &request("TMAI"), now).await.unwrap();

    // Assert: pricing.market_quote_ttl_secs (300) for the market rate, chain.quote_ttl_secs
    // for the fixed one; the signed deadline is the same.
    assert_eq!(market.expires_at, now + PricingSettings::default().market_quote_ttl_secs);
    assert_eq!(market.quote.deadline, market.expires_at);
    assert_eq!(fixed.expires_at, now + 1_800);
}
