//! Plans priced in US dollars, paid in tokens at the market rate (issue 19), on a real
//! anvil with Uniswap v3 and Chainlink's aggregator from their npm packages, on SQLite and
//! PostgreSQL: the TWAP is followed (not a same-block spot), a pushed spot price, a stale
//! feed and a depegged stablecoin each refuse their token only, an expired quote is
//! re-priced, a locked quote confirms after the rate moved, and bad configuration stops
//! start-up naming the field.

mod guards;
mod leaks;

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, U256},
    providers::{Provider, ext::AnvilApi},
};
use serde_json::{Value, json};
use sqlx::Row;
use tmai_pay::{
    billing::{
        plans::Catalog,
        quotes::{IssuedQuote, QuoteError, QuoteIssuer, QuoteRequest},
        rates::RateBook,
    },
    chain::{
        bindings::{SubscriptionCheckout, TestToken},
        devnet,
    },
    clock::Clock,
    config::{FeedConfig, HttpSettings, PlanConfig, PricingSettings, RateSourceConfig},
    http::{AppState, ops_router, router, serve},
    watcher::{Watcher, WatcherConfig},
};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{DbKind, fresh_db, on_both_databases},
    helpers::spawn_chain,
    markets::{Markets, POOL_WETH_WEI},
};

const PREMIUM: u32 = 3;
const TWAP_SECS: u32 = 600;
const QUOTE_TTL: u64 = 600;

fn usd_plan() -> PlanConfig {
    PlanConfig {
        id: PREMIUM,
        name: "Premium monthly".into(),
        tier: 3,
        period: "monthly".into(),
        prices: Default::default(),
        price_usd: Some("49.00".into()),
        card_price_cents: None,
        card_price_id: None,
        trial_days: 0,
        tmai_discount_percent: Some(18),
    }
}

fn feed(address: Address, max_age_secs: u64) -> FeedConfig {
    FeedConfig { address, decimals: 8, max_age_secs }
}

fn pricing(m: &Markets) -> PricingSettings {
    let mut p = PricingSettings::default();
    p.tokens.insert(
        "TMAI".into(),
        RateSourceConfig::UniswapV3 {
            pool: m.pool,
            twap_secs: TWAP_SECS,
            max_spot_deviation_bps: 500,
            quote_feed: Some(feed(m.eth_usd, 3_600)),
            quote_usd: None,
            min_liquidity: None,
            min_usd: None,
            max_usd: None,
        },
    );
    p.tokens.insert("USD".into(), RateSourceConfig::Stable { peg_feed: Some(feed(m.usd_peg, 86_400)), peg_tolerance_bps: 100 });
    p
}

fn whole(amount: U256, decimals: u8) -> f64 {
    alloy::primitives::utils::format_units(amount, decimals).unwrap().parse().unwrap()
}

/// WETH that moves a full-range pool's TMAI price up by `percent` %.
fn weth_to_move(percent: f64) -> u128 {
    ((POOL_WETH_WEI as f64) * ((1.0 + percent / 100.0).sqrt() - 1.0) / 0.997) as u128
}

fn refused(book: &RateBook, token: Address) -> String {
    book.current(token).expect_err("the rate should be refused").reason
}

async fn usd_prices_follow_the_market_and_guards_refuse_one_token(kind: DbKind) {
    // Arrange: the fixture contracts, Uniswap v3 and the feeds on one anvil.
    let chain = spawn_chain().await;
    let test_db = fresh_db(kind).await;
    let m = Markets::deploy(&chain.anvil, &chain.deployment).await;
    let d = chain.deployment.clone();
    let tmai = d.tokens.iter().find(|t| t.symbol == "TMAI").unwrap().clone();
    let usd = d.tokens.iter().find(|t| t.symbol == "USD").unwrap().clone();
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let catalog = Arc::new(Catalog::new(&[usd_plan()], &d.tokens).unwrap());
    let book = Arc::new(RateBook::connect(&pricing(&m), &d.tokens, rpc.clone(), Clock::system()).await.unwrap());
    let issuer = QuoteIssuer::new(devnet::key(&chain.anvil, devnet::QUOTE_SIGNER), d.chain_id, d.checkout, QUOTE_TTL).with_rates(book.clone());
    let (issuer_ref, db_ref, catalog_ref, rpc_ref, wallets) = (&issuer, &test_db.db, &catalog, &rpc, chain.anvil.addresses().to_vec());
    let quote = move |token: &'static str, wallet: usize| {
        let request = QuoteRequest { plan_id: PREMIUM, token: token.into(), payer: wallets[wallet], periods: 1 };
        async move { issuer_ref.issue(db_ref, catalog_ref, &request, chain_now(rpc_ref).await).await }
    };

    // A pool younger than the TWAP window is refused; the stablecoin is not.
    book.refresh().await;
    assert!(refused(&book, tmai.address).contains("shorter than"), "{}", refused(&book, tmai.address));
    let paid_in_usd = quote("USD", 2).await.unwrap();
    assert_eq!(paid_in_usd.amount, U256::from(49_000_000u64), "$49.00 in a 6-decimal stablecoin, no discount");

    // Once the history covers the window: $49 − 18 % = $40.18 at $0.0025 = 16,072 TMAI.
    m.advance(u64::from(TWAP_SECS) + 100).await;
    book.refresh().await;
    let first = quote("TMAI", 1).await.unwrap();
    let tokens = whole(first.amount, 18);
    assert!((tokens / 16_072.0 - 1.0).abs() < 0.001, "{tokens} TMAI");
    let pricing = first.pricing.unwrap();
    assert_eq!(pricing.source, "uniswap_v3");
    assert_eq!(pricing.price_usd.micro(), 40_180_000);
    assert!(pricing.usd_value.micro() >= 40_180_000, "rounding never undercharges: {}", pricing.usd_value);
    assert!(first.amount.to_string().trim_end_matches('0').len() <= 6, "6 significant digits: {}", first.amount);

    // A same-block spot move (3 %, inside the 5 % guard) barely moves the TWAP.
    let before = m.spot_tick().await;
    m.buy_tmai(weth_to_move(3.0)).await;
    let moved = (m.spot_tick().await - before).abs();
    assert!((280..=310).contains(&moved), "spot moved {moved} ticks");
    book.refresh().await;
    let right_after = quote("TMAI", 1).await.unwrap();
    assert!(
        (whole(right_after.amount, 18) / tokens - 1.0).abs() < 0.001,
        "the quote follows the TWAP, not the spot: {} vs {tokens}",
        whole(right_after.amount, 18)
    );

    // After the window the TWAP has moved: the expired first quote is re-priced ~3 % lower.
    m.advance(u64::from(TWAP_SECS) + 100).await;
    book.refresh().await;
    assert!(first.expires_at < chain_now(&rpc).await, "the first quote expired");
    let repriced = quote("TMAI", 1).await.unwrap();
    let ratio = whole(repriced.amount, 18) / tokens;
    assert!((0.96..0.98).contains(&ratio), "re-priced at {ratio} of the first quote");

    // A locked quote: the market moves again (10 % spot push), then it is paid and confirms.
    let locked = quote("TMAI", 1).await.unwrap();
    m.buy_tmai(weth_to_move(10.0)).await;
    book.refresh().await;
    let reason = refused(&book, tmai.address);
    assert!(reason.contains("manipulated"), "{reason}");
    assert!(book.current(usd.address).is_ok(), "the stablecoin keeps working");
    assert!(matches!(quote("TMAI", 1).await, Err(QuoteError::RateUnavailable(_))));
    pay(&chain, 1, &locked).await;
    let watcher = Watcher::new(
        test_db.db.clone(),
        rpc.clone(),
        catalog.clone(),
        WatcherConfig {
            chain_id: d.chain_id,
            checkout: d.checkout,
            confirmations: 2,
            max_block_range: 2_000,
            start_block: d.deploy_block,
            poll_interval: Duration::from_millis(50),
        },
    );
    rpc.anvil_mine(Some(3), None).await.unwrap();
    for _ in 0..100 {
        if watcher.pass().await.unwrap().caught_up {
            break;
        }
    }
    let row = sqlx::query("SELECT o.status, o.rate_usd, o.rate_source, o.usd_micro, p.status AS paid FROM orders o JOIN payments p ON p.matched_order = o.order_id WHERE o.order_id = $1")
        .bind(locked.order_id.db_key().unwrap())
        .fetch_one(test_db.db.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("paid"), "confirmed", "the locked quote confirms after the rate moved");
    assert_eq!(row.get::<String, _>("rate_usd"), locked.pricing.unwrap().rate.to_decimal());
    assert_eq!(row.get::<String, _>("rate_source"), "uniswap_v3");
    assert_eq!(row.get::<i64, _>("usd_micro") as u64, locked.pricing.unwrap().usd_value.micro());

    let events = tmai_pay::store::outbox::all(test_db.db.pool()).await.unwrap();
    let created = events.iter().find(|e| e.event_type == "checkout.created" && e.payload["data"]["order_id"] == locked.order_id.to_string()).unwrap();
    assert_eq!(created.payload["data"]["usd_value"], locked.pricing.unwrap().usd_value.to_string());
    assert_eq!(created.payload["data"]["rate_source"], "uniswap_v3");
    let confirmed = events.iter().find(|e| e.event_type == "payment.confirmed" && e.payload["data"]["order_id"] == locked.order_id.to_string()).unwrap();
    assert_eq!(confirmed.payload["data"]["usd_value"], created.payload["data"]["usd_value"], "payment.confirmed shows the USD value at the locked rate");
    assert_eq!(confirmed.payload["data"]["rate_usd"], locked.pricing.unwrap().rate.to_decimal());

    // Through the API: 503 rate_unavailable for TMAI with the reason; USD still sold.
    let api = Api::spawn(&test_db.db, catalog.clone(), d.clone(), rpc.clone(), issuer.clone(), book.clone()).await;
    let (status, body) = api.checkout("TMAI", chain.anvil.addresses()[3]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "rate_unavailable");
    assert!(body["error"]["message"].as_str().unwrap().contains("manipulated"), "{body}");
    let (status, body) = api.checkout("USD", chain.anvil.addresses()[3]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["usd"]["usd_value"], "49.00");
    assert_eq!(body["usd"]["source"], "stable");
    let plans: Value = api.client.get(format!("{}/v1/plans", api.base)).send().await.unwrap().json().await.unwrap();
    let plan = &plans["plans"][0];
    assert_eq!(plan["price_usd"], "49.00");
    assert_eq!(plan["card_price_cents"], 4900, "the card price defaults to the USD price in cents");
    let price = |symbol: &str| plan["prices"].as_array().unwrap().iter().find(|p| p["token"] == symbol).unwrap().clone();
    assert!(price("TMAI")["reason"].as_str().unwrap().contains("manipulated"));
    assert_eq!(price("USD")["display"], "49");
    let payments: Value = api.client.get(format!("{}/v1/payments", api.base)).bearer_auth(&api.key).send().await.unwrap().json().await.unwrap();
    let listed = payments["payments"].as_array().unwrap().iter().find(|p| p["order_id"] == locked.order_id.to_string()).unwrap();
    assert_eq!(listed["usd_value"], locked.pricing.unwrap().usd_value.to_string());
    assert_eq!(listed["rate_source"], "uniswap_v3");
    let ready: Value = api.client.get(format!("{}/readyz", api.ops)).send().await.unwrap().json().await.unwrap();
    let health: Vec<(String, bool)> =
        ready["rates"].as_array().unwrap().iter().map(|r| (r["token"].as_str().unwrap().to_string(), r["healthy"].as_bool().unwrap())).collect();
    assert_eq!(health, vec![("TMAI".to_string(), false), ("USD".to_string(), true)]);

    // A stale ETH/USD answer (heartbeat 1 h) refuses TMAI only; a fresh one restores it.
    m.advance(4_000).await;
    book.refresh().await;
    let reason = refused(&book, tmai.address);
    assert!(reason.contains("stale"), "{reason}");
    assert!(book.current(usd.address).is_ok());
    crate::markets::set_answer(&m.provider, m.eth_usd, 300_000_000_000).await;
    book.refresh().await;
    assert!(book.current(tmai.address).is_ok(), "{:?}", book.current(tmai.address));

    // A depegged stablecoin (−5 %, tolerance 1 %) refuses USD only.
    crate::markets::set_answer(&m.provider, m.usd_peg, 95_000_000).await;
    book.refresh().await;
    let reason = refused(&book, usd.address);
    assert!(reason.contains("depegged"), "{reason}");
    assert!(book.current(tmai.address).is_ok());
    let (status, body) = api.checkout("USD", chain.anvil.addresses()[4]).await;
    assert_eq!((status, body["error"]["code"].clone()), (503, json!("rate_unavailable")));
}

on_both_databases!(usd_prices_follow_the_market_and_guards_refuse_one_token);

async fn chain_now(rpc: &alloy::providers::DynProvider) -> u64 {
    rpc.get_block_by_number(Default::default()).await.unwrap().unwrap().header.timestamp
}

async fn pay(chain: &crate::helpers::TestChain, wallet: usize, quote: &IssuedQuote) {
    let provider = devnet::provider_for(&chain.anvil, wallet);
    TestToken::new(quote.token, &provider).approve(quote.checkout, quote.amount).send().await.unwrap().get_receipt().await.unwrap();
    let receipt = SubscriptionCheckout::new(quote.checkout, &provider)
        .pay(quote.quote.clone(), quote.signature.clone())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status(), "the locked quote's payment is accepted on chain");
}

struct Api {
    base: String,
    ops: String,
    client: reqwest::Client,
    key: String,
    cancel: CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Api {
    async fn spawn(
        db: &tmai_pay::store::Db,
        catalog: Arc<Catalog>,
        d: tmai_pay::chain::deployment::Deployment,
        rpc: alloy::providers::DynProvider,
        issuer: QuoteIssuer,
        book: Arc<RateBook>,
    ) -> Self {
        let cancel = CancellationToken::new();
        let http = HttpSettings { rate_limit_per_second: 0, ..Default::default() };
        let state = AppState::new(db.clone(), catalog, d, rpc, 2, http, cancel.clone()).with_quotes(Some(issuer)).with_rates(book);
        let (_, key) = tmai_pay::http::keys::create(db, "tests", state.clock.now() as i64).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let ops = format!("http://{}", ops_listener.local_addr().unwrap());
        tokio::spawn(serve(listener, router(state.clone()), cancel.clone()));
        tokio::spawn(serve(ops_listener, ops_router(state), cancel.clone()));
        Self { base, ops, client: reqwest::Client::new(), key, cancel }
    }

    async fn checkout(&self, token: &str, wallet: Address) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/checkouts", self.base))
            .json(&json!({ "plan_id": PREMIUM, "token": token, "wallet": wallet.to_string() }))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

/// Bad pricing configuration stops start-up with the field named: an unknown pool, a pool
/// without the token, a feed with the wrong decimals, a zero rate, a zero USD price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pricing_configuration_names_the_field() {
    let chain = spawn_chain().await;
    let m = Markets::deploy(&chain.anvil, &chain.deployment).await;
    let d = &chain.deployment;
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let good = pricing(&m);
    let with = |symbol: &str, source: RateSourceConfig| {
        let mut p = good.clone();
        p.tokens.insert(symbol.into(), source);
        p
    };
    let uniswap = |pool: Address, decimals: u8| RateSourceConfig::UniswapV3 {
        pool,
        twap_secs: TWAP_SECS,
        max_spot_deviation_bps: 500,
        quote_feed: Some(FeedConfig { address: m.eth_usd, decimals, max_age_secs: 3_600 }),
        quote_usd: None,
        min_liquidity: None,
        min_usd: None,
        max_usd: None,
    };
    let guarded = |min_liquidity: Option<&str>, min_usd: Option<&str>, max_usd: Option<&str>| RateSourceConfig::UniswapV3 {
        pool: m.pool,
        twap_secs: TWAP_SECS,
        max_spot_deviation_bps: 500,
        quote_feed: Some(FeedConfig { address: m.eth_usd, decimals: 8, max_age_secs: 3_600 }),
        quote_usd: None,
        min_liquidity: min_liquidity.map(Into::into),
        min_usd: min_usd.map(Into::into),
        max_usd: max_usd.map(Into::into),
    };
    for (settings, field, words) in [
        (with("TMAI", uniswap(Address::repeat_byte(0x77), 8)), "pricing.tokens.TMAI.pool", "no contract"),
        (with("USD", uniswap(m.pool, 8)), "pricing.tokens.USD.pool", "not the token"),
        (with("TMAI", uniswap(m.pool, 18)), "pricing.tokens.TMAI.quote_feed.decimals", "has 8"),
        (with("USD", RateSourceConfig::Fixed { usd: "0".into() }), "pricing.tokens.USD.usd", "greater than zero"),
        (with("DOGE", RateSourceConfig::Fixed { usd: "0.1".into() }), "pricing.tokens.DOGE", "unknown token"),
        (with("TMAI", guarded(None, Some("0.01"), Some("0.001"))), "pricing.tokens.TMAI.max_usd", "above min_usd"),
        (with("TMAI", guarded(Some("lots"), None, None)), "pricing.tokens.TMAI.min_liquidity", "positive whole number"),
        (PricingSettings { max_block_lag_secs: 0, ..good.clone() }, "pricing.max_block_lag_secs", "at least 1"),
    ] {
        let error = RateBook::connect(&settings, &d.tokens, rpc.clone(), Clock::system()).await.unwrap_err().to_string();
        assert!(error.contains(field) && error.contains(words), "{field}: {error}");
    }
    assert!(RateBook::connect(&good, &d.tokens, rpc.clone(), Clock::system()).await.is_ok());
    let zero = PlanConfig { price_usd: Some("0.00".into()), ..usd_plan() };
    let error = Catalog::new(&[zero], &d.tokens).unwrap_err().to_string();
    assert!(error.contains("plans[0].price_usd") && error.contains("greater than zero"), "{error}");
}

/// `tmai-pay rates` (the real binary) reads every source once and prints it; a bad source
/// stops it with the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rates_command_prints_each_token_and_names_a_bad_field() {
    let chain = spawn_chain().await;
    let m = Markets::deploy(&chain.anvil, &chain.deployment).await;
    m.advance(u64::from(TWAP_SECS) + 100).await;
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("deployment.json");
    chain.deployment.write(&deployment).unwrap();
    let config = dir.path().join("tmai-pay.toml");
    let write = |pool: Address| {
        let text = format!(
            "deployment_file = \"{}\"\n[chain]\nrpc_url = \"{}\"\nchain_id = {}\n\
             [pricing.tokens.TMAI]\nsource = \"uniswap_v3\"\npool = \"{pool}\"\ntwap_secs = {TWAP_SECS}\nmax_spot_deviation_bps = 500\n\
             quote_feed = {{ address = \"{}\", decimals = 8, max_age_secs = 3600 }}\n\
             [pricing.tokens.USD]\nsource = \"fixed\"\nusd = \"1\"\n",
            deployment.display(),
            chain.anvil.endpoint(),
            chain.deployment.chain_id,
            m.eth_usd
        );
        std::fs::write(&config, text).unwrap();
    };
    let config_arg = config.to_str().unwrap().to_string();

    write(m.pool);
    let output = crate::helpers::tmai_pay(&["rates", "--config", &config_arg], &[]);
    let (stdout, stderr) = crate::helpers::text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    let tmai = stdout.lines().find(|l| l.to_ascii_uppercase().starts_with("TMAI")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(tmai.contains("uniswap_v3") && tmai.contains(" 0.002") && tmai.ends_with("ok"), "{tmai}");
    assert!(stdout.lines().any(|l| l.to_ascii_uppercase().starts_with("USD") && l.contains("fixed") && l.ends_with("ok")), "{stdout}");

    write(Address::repeat_byte(0x77));
    let output = crate::helpers::tmai_pay(&["rates", "--config", &config_arg], &[]);
    let (stdout, stderr) = crate::helpers::text(&output);
    assert!(!output.status.success());
    assert!(stderr.to_ascii_lowercase().contains("pricing.tokens.tmai.pool") && stderr.contains("no contract"), "{stdout}{stderr}");
}
