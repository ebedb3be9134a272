//! API load benchmark with wrk (Debian's `wrk`), on SQLite and on PostgreSQL.
//!
//! For each database the service's router is served in this process (rate limit off) and
//! wrk drives, for a few seconds each: the hello-world route of the same binary (the
//! baseline), `POST /v1/checkouts` (an order, a signed quote and an event per request), and
//! `GET /v1/subscriptions/{wallet}` rotating over 1,000 members, and the two member routes a
//! merchant's app may call on every page: `GET /v1/me` rotating over the 1,000 members'
//! membership tokens (an ES256 verification the first time a token is seen, a cache hit
//! after, and a subscription read) and `POST /v1/auth/refresh` with a session cookie (a
//! session read, a subscription read and an ES256 signature, also measured alone).
//! Printed: requests/s and wrk's p99 at full load, the
//! ratio to the baseline, and p99 near half the maximum rate (wrk paced by its `delay()`
//! hook: each connection waits 4 ms before each request, with as many connections as the
//! rate needs).
//!
//! Run: `scripts/bench-api` (installs wrk) or `cargo bench --bench api`; `ROUTE_SECONDS=…`,
//! `ONLY=SQLite` or `ONLY=PostgreSQL` for one database.

#[path = "support/fixture.rs"]
#[allow(dead_code, unreachable_pub)]
mod fixture;
#[path = "support/profile.rs"]
#[allow(dead_code, unreachable_pub)]
mod profile;

#[path = "support/record.rs"]
#[allow(dead_code, unreachable_pub)]
mod record;
#[path = "support/wrk.rs"]
#[allow(dead_code, unreachable_pub)]
mod wrk;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256, U256};
use anyhow::{Context, Result};
use tmai_pay::{
    auth::{AuthService, tokens::generate_pem},
    billing::{
        activation::{Subscription, save},
        plans::Catalog,
        quotes::QuoteIssuer,
        rates::RateBook,
    },
    chain::{
        bindings::ISubscriptionCheckout::Quote,
        deployment::Deployment,
        devnet,
        signing::{DigestSigner, quote_domain, sign_quote},
    },
    config::{AuthSettings, FeedConfig, HttpSettings, PlanConfig, PricingSettings, RateSourceConfig, SigningKeyConfig},
    http::{AppState, router, serve},
    store::{Db, auth_sessions, unix_now},
};
use tokio_util::sync::CancellationToken;
use wrk::{connections, wrk, wrk_with};

/// The tests' real markets: Uniswap v3 from its npm artifacts, Chainlink's test aggregator.
#[path = "../tests/it/markets.rs"]
mod markets;

const WALLET: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// Members whose subscriptions the read load rotates over.
const READ_WALLETS: u64 = 1_000;

fn plans() -> Vec<PlanConfig> {
    let fixed = PlanConfig {
        id: 3,
        name: "Premium monthly".into(),
        tier: 3,
        period: "monthly".into(),
        prices: [("TMAI".to_string(), "400".to_string()), ("USD".to_string(), "49".to_string())].into(),
        card_price_cents: Some(4900),
        card_price_id: None,
        trial_days: 7,
        tmai_discount_percent: Some(18),
        price_usd: None,
    };
    // The same plan priced in dollars: TMAI at the live Uniswap v3 TWAP × Chainlink ETH/USD.
    let usd = PlanConfig { id: 4, prices: Default::default(), price_usd: Some("49.00".into()), card_price_cents: None, ..fixed.clone() };
    vec![fixed, usd]
}

/// A TMAI/WETH Uniswap v3 pool and Chainlink feeds on `anvil` (the tests' markets), with
/// the TWAP window's history behind them, and a rate book kept fresh per block.
async fn live_rates(anvil: &alloy::node_bindings::AnvilInstance, deployment: &Deployment, provider: &alloy::providers::DynProvider) -> Result<Arc<RateBook>> {
    let m = markets::Markets::deploy(anvil, deployment).await;
    m.advance(700).await;
    let mut pricing = PricingSettings::default();
    let feed = |address, max_age_secs| FeedConfig { address, decimals: 8, max_age_secs };
    pricing.tokens.insert(
        "TMAI".into(),
        RateSourceConfig::UniswapV3 {
            pool: m.pool,
            twap_secs: 600,
            max_spot_deviation_bps: 500,
            quote_feed: Some(feed(m.eth_usd, 86_400)),
            quote_usd: None,
            min_liquidity: None,
            min_usd: None,
            max_usd: None,
        },
    );
    let book = Arc::new(RateBook::connect(&pricing, &deployment.tokens, provider.clone(), tmai_pay::clock::Clock::system()).await?);
    book.refresh().await;
    book.current(m.tmai).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(book)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // RUST_LOG=tmai_pay::orders=debug shows the order writer's batches (size and time).
    tmai_pay::telemetry::init_with_default(false, "warn");
    let seconds = wrk::route_seconds();
    wrk::require()?;
    let fixture::FixtureChain { deployment, anvil, provider } = fixture::start()?;
    let catalog = Arc::new(Catalog::new(&plans(), &deployment.tokens)?);
    let rates = live_rates(&anvil, &deployment, &provider).await?;
    let rates_cancel = CancellationToken::new();
    tokio::spawn(rates.clone().run(rates_cancel.clone()));
    let tmp = tempfile::tempdir()?;
    let post = tmp.path().join("post.lua");
    std::fs::write(
        &post,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"plan_id\": 3, \"token\": \"TMAI\", \"wallet\": \"{WALLET}\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;

    let post_usd = tmp.path().join("post-usd.lua");
    std::fs::write(
        &post_usd,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"plan_id\": 4, \"token\": \"TMAI\", \"wallet\": \"{WALLET}\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;

    // Reads rotate over this many members (every one has a subscription).
    let readers: Vec<Address> = (1..=READ_WALLETS).map(|i| Address::from_word(B256::from(U256::from(i + 0x1000)))).collect();
    let get = tmp.path().join("get.lua");
    let mut lua = String::from("local paths = {}\nlocal n = 0\nfunction init(args)\n");
    for wallet in &readers {
        lua.push_str(&format!("  paths[#paths + 1] = wrk.format(\"GET\", \"/v1/subscriptions/{wallet}\")\n"));
    }
    lua.push_str("end\nfunction request()\n  n = n % #paths + 1\n  return paths[n]\nend\n");
    std::fs::write(&get, lua)?;

    let pg_server = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let pg_name = format!("tmai_bench_{}", std::process::id());
    let backends = [("SQLite", format!("sqlite://{}", tmp.path().join("api.db").display())), ("PostgreSQL", format!("{pg_server}/{pg_name}"))];
    println!("API load (wrk, 1 thread, {} connections, {seconds} s per route; p99 near half rate from wrk paced by its delay() hook)", connections());
    let only = std::env::var("ONLY").ok();
    let mut rec = record::Record::new("api");
    rec.param("seconds", seconds);
    rec.param("connections", connections());
    rec.param("read_wallets", READ_WALLETS);
    for (name, url) in backends.into_iter().filter(|(name, _)| only.as_deref().is_none_or(|o| o.eq_ignore_ascii_case(name))) {
        if name == "PostgreSQL" {
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&format!("{pg_server}/postgres")).await.context("PostgreSQL at 127.0.0.1:5432")?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {pg_name}")).execute(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {pg_name}")).execute(&admin).await?;
            admin.close().await;
        }
        let db = Db::connect(&url).await?;
        let now = unix_now() as u64;
        let mut tx = db.begin_write().await?;
        for wallet in &readers {
            save(
                &mut tx,
                &Subscription {
                    wallet: *wallet,
                    plan_id: 3,
                    tier: 3,
                    status: tmai_pay::states::SubscriptionStatus::Active,
                    started_at: now,
                    expires_at: now + 30 * 86_400,
                    next_plan_id: None,
                    next_expires_at: None,
                    comp_seconds: 0,
                    paid_rate: None,
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        // Sign-in for this server's origin; a member (with a subscription) holding a token
        // and a session, as after a sign-in.
        let auth_settings = AuthSettings {
            allowed_origins: vec![base.clone()],
            keys: vec![SigningKeyConfig { kid: "bench".into(), private_key_pem: Some(generate_pem().into()), private_key_env: None, retired_at: None }],
            ..Default::default()
        };
        let auth = AuthService::from_settings(&auth_settings)?.context("sign-in is configured")?;
        let member = readers[0];
        let session_secret = format!("bench-session-{}", std::process::id());
        let csrf = "bench-csrf".to_string();
        let session = auth_sessions::Session { wallet: member, csrf: csrf.clone(), auth_time: now, expires_at: now + 86_400 };
        auth_sessions::create(&db, &<sha2::Sha256 as sha2::Digest>::digest(session_secret.as_bytes()), &session, now).await?;
        // Every reader holds a token; /v1/me rotates over them, as a merchant's app serving
        // many members would (each token is verified once, then found in the cache).
        let mut me_script = String::from("local tokens = {}\nlocal n = 0\nfunction init(args)\n");
        for (i, wallet) in readers.iter().enumerate() {
            let mut claims = auth.claims(*wallet, None, now, now, &format!("bench-{i}"));
            claims.exp = now + 86_400;
            me_script.push_str(&format!("  tokens[#tokens + 1] = \"Bearer {}\"\n", auth.keys.sign(&claims)?));
        }
        me_script.push_str("end\nfunction request()\n  n = n % #tokens + 1\n  wrk.headers[\"Authorization\"] = tokens[n]\n  return wrk.format(\"GET\")\nend\n");
        let me_lua = tmp.path().join(format!("me-{name}.lua"));
        std::fs::write(&me_lua, me_script)?;
        // What bounds a refresh: one ES256 signature per new token, measured alone on one core.
        let mut claims = auth.claims(member, None, now, now, "bench");
        claims.exp = now + 86_400;
        let (started, mut es256_signed) = (Instant::now(), 0u32);
        while started.elapsed() < Duration::from_secs(1) {
            std::hint::black_box(auth.keys.sign(&claims)?);
            es256_signed += 1;
        }
        let es256_rate = f64::from(es256_signed) / started.elapsed().as_secs_f64();
        let refresh_lua = tmp.path().join(format!("refresh-{name}.lua"));
        std::fs::write(
            &refresh_lua,
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Cookie\"] = \"tmai_session={session_secret}\"\nwrk.headers[\"Origin\"] = \"{base}\"\nwrk.headers[\"X-CSRF-Token\"] = \"{csrf}\"\n"
            ),
        )?;
        let cancel = CancellationToken::new();
        let quotes = QuoteIssuer::new(devnet::key(&anvil, devnet::QUOTE_SIGNER), deployment.chain_id, deployment.checkout, 1_800).with_rates(rates.clone());
        let http = HttpSettings { rate_limit_per_second: 0, ..Default::default() };
        let state = AppState::new(db.clone(), catalog.clone(), deployment.clone(), provider.clone(), 2, http, cancel.clone())
            .with_quotes(Some(quotes))
            .with_auth(Some(auth));
        let server = tokio::spawn(serve(listener, router(state), cancel.clone()));

        let hello = wrk(&format!("{base}/bench/hello"), None, seconds).await?;
        let tag = profile::database(name);
        let create = {
            let _profiled = profile::Section::start(&format!("checkouts-{tag}"));
            wrk(&format!("{base}/v1/checkouts"), Some(&post), seconds).await?
        };
        if profile::profiling() && !profile::profiled(&format!("refresh-{tag}")) {
            cancel.cancel();
            let _ = server.await;
            continue;
        }
        let create_usd = wrk(&format!("{base}/v1/checkouts"), Some(&post_usd), seconds).await?;
        let read = wrk(&format!("{base}/v1/subscriptions/{WALLET}"), Some(&get), seconds).await?;
        let me = wrk(&format!("{base}/v1/me"), Some(&me_lua), seconds).await?;
        let refresh = {
            let _profiled = profile::Section::start(&format!("refresh-{tag}"));
            wrk(&format!("{base}/v1/auth/refresh"), Some(&refresh_lua), seconds).await?
        };
        if profile::profiling() {
            cancel.cancel();
            let _ = server.await;
            continue;
        }
        // The bound on checkout creation: one secp256k1 signature per quote, measured alone
        // on one core, with the pure-Rust signer and with libsecp256k1 (which checkouts use).
        let signer = devnet::key(&anvil, devnet::QUOTE_SIGNER);
        let digests = DigestSigner::new(&signer);
        let domain = quote_domain(deployment.chain_id, deployment.checkout);
        let quote = |n: u32| Quote {
            orderId: U256::from(n),
            payer: WALLET.parse().expect("address"),
            token: deployment.tokens[0].address,
            amount: U256::from(1u8),
            planId: 3,
            periods: 1,
            deadline: 1,
        };
        let (started, mut signed) = (Instant::now(), 0u32);
        while started.elapsed() < Duration::from_secs(1) {
            sign_quote(&signer, &quote(signed), &domain).await?;
            signed += 1;
        }
        let k256_rate = f64::from(signed) / started.elapsed().as_secs_f64();
        let (started, mut signed) = (Instant::now(), 0u32);
        while started.elapsed() < Duration::from_secs(1) {
            digests.sign_quote(&quote(signed), &domain);
            signed += 1;
        }
        let signing_rate = f64::from(signed) / started.elapsed().as_secs_f64();
        let (create_half, create_half_rate) = paced(&format!("{base}/v1/checkouts"), Some(&post), create.rps / 2.0, seconds, tmp.path()).await?;
        let (read_half, read_half_rate) = paced(&format!("{base}/v1/subscriptions/{WALLET}"), Some(&get), read.rps / 2.0, seconds, tmp.path()).await?;
        println!("{name}:");
        println!("  {:<36} {:>9} {:>10} {:>9} {:>16}", "route", "req/s", "p99 (ms)", "ratio", "p99 @ ~half (ms)");
        println!("  {:<36} {:>9.0} {:>10.2} {:>8.3}x {:>16}", "GET /bench/hello (baseline)", hello.rps, hello.p99_ms, 1.0, "");
        println!(
            "  {:<36} {:>9.0} {:>10.2} {:>8.3}x {:>16.2}   at {:.0} req/s; target >= 0.3x, p99 @ half <= 20 ms",
            "POST /v1/checkouts",
            create.rps,
            create.p99_ms,
            create.rps / hello.rps,
            create_half,
            create_half_rate
        );
        println!(
            "  {:<36} {:>9.0} {:>10.2} {:>8.3}x {:>16}   {:.3} of the fixed-price checkouts (rates cached per block)",
            "POST /v1/checkouts, USD live rate",
            create_usd.rps,
            create_usd.p99_ms,
            create_usd.rps / hello.rps,
            "",
            create_usd.rps / create.rps
        );
        println!(
            "  {:<36} {:>9.0} {:>10.2} {:>8.3}x {:>16.2}   at {:.0} req/s; target >= 0.6x, p99 @ half <= 20 ms",
            "GET /v1/subscriptions/{wallet}",
            read.rps,
            read.p99_ms,
            read.rps / hello.rps,
            read_half,
            read_half_rate
        );
        for (route, figures) in [("GET /v1/me (membership token)", &me), ("POST /v1/auth/refresh (session)", &refresh)] {
            println!("  {:<36} {:>9.0} {:>10.2} {:>8.3}x {:>16}   target >= 0.5x", route, figures.rps, figures.p99_ms, figures.rps / hello.rps, "");
        }
        println!(
            "  {:<36} {:>9.0} {:>10} {:>8.3}x   (one core, nothing else; what each refresh signs)",
            "ES256 token signing alone",
            es256_rate,
            "",
            es256_rate / hello.rps
        );
        println!(
            "  {:<36} {:>9.0} {:>10} {:>8.3}x   (one core, nothing else; libsecp256k1, what checkouts use)",
            "EIP-712 quote signing alone",
            signing_rate,
            "",
            signing_rate / hello.rps
        );
        println!(
            "  {:<36} {:>9.0} {:>10} {:>8.3}x   (one core; alloy's pure-Rust k256 signer, for comparison)",
            "  the same with k256",
            k256_rate,
            "",
            k256_rate / hello.rps
        );
        // Every checkout's latency, for the report's histogram: an open-loop client in this
        // process at half the maximum rate, timed from each request's scheduled start.
        let checkout_ms = open_loop(&format!("{base}/v1/checkouts"), create.rps / 2.0, seconds).await?;
        let key = name.to_lowercase();
        let group = name;
        rec.add(record::figure(&format!("{key}.hello"), "GET /bench/hello (baseline)", "req/s", hello.rps).group(group));
        let routes = [
            ("checkout", "POST /v1/checkouts (fixed price)", &create, Some("≥ 0.3× hello-world")),
            ("checkout_usd", "POST /v1/checkouts (dollar price, live rate)", &create_usd, None),
            ("read", "GET /v1/subscriptions/{wallet}", &read, Some("≥ 0.6× hello-world")),
            ("me", "GET /v1/me (membership token)", &me, Some("≥ 0.5× hello-world")),
            ("refresh", "POST /v1/auth/refresh (session)", &refresh, Some("≥ 0.5× hello-world")),
        ];
        for (route, label, figures, target) in routes {
            let mut fig = record::figure(&format!("{key}.{route}"), label, "req/s", figures.rps).baseline(&format!("{key}.hello")).group(group);
            if let Some(target) = target {
                fig = fig.target(target);
            }
            rec.add(fig);
        }
        rec.add(
            record::figure(&format!("{key}.checkout.p99_half"), "POST /v1/checkouts p99 at half rate (wrk)", "ms", create_half)
                .lower()
                .target("≤ 20 ms")
                .group(group),
        );
        rec.add(
            record::figure(&format!("{key}.read.p99_half"), "GET /v1/subscriptions p99 at half rate (wrk)", "ms", read_half)
                .lower()
                .target("≤ 20 ms")
                .group(group),
        );
        rec.add(
            record::figure(&format!("{key}.quote_signing"), "EIP-712 quote signing alone, one core", "signatures/s", signing_rate)
                .baseline(&format!("{key}.hello"))
                .group(group),
        );
        rec.add(
            record::figure(&format!("{key}.es256_signing"), "ES256 token signing alone, one core", "signatures/s", es256_rate)
                .baseline(&format!("{key}.hello"))
                .group(group),
        );
        rec.samples(&format!("{key}.checkout"), &format!("POST /v1/checkouts at {:.0} req/s, open loop ({name})", create.rps / 2.0), "ms", &checkout_ms);
        cancel.cancel();
        let _ = server.await;
        db.close().await;
    }
    rates_cancel.cancel();
    rec.save()?;
    Ok(())
}

/// Sends checkouts to `url` at `rate` per second for `seconds` from this process, each on
/// its own schedule whether or not earlier ones have been answered (open loop); returns each
/// one's latency in ms from its scheduled start, so a stall counts against every request
/// it delayed. At most 128 are in flight (the process's file limit holds the server's and
/// the client's sockets); a request waiting for a slot is still timed from its schedule.
async fn open_loop(url: &str, rate: f64, seconds: u64) -> Result<Vec<f64>> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let body = serde_json::json!({ "plan_id": 3, "token": "TMAI", "wallet": WALLET });
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut sent = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(128));
    loop {
        let scheduled = ticker.tick().await;
        if scheduled.into_std() >= end {
            break;
        }
        let (client, url, body, slots) = (client.clone(), url.to_string(), body.clone(), slots.clone());
        sent.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            let answer = client.post(&url).json(&body).send().await?;
            anyhow::ensure!(answer.status().is_success(), "checkout answered {}", answer.status());
            answer.bytes().await?;
            Ok::<_, anyhow::Error>(scheduled.elapsed().as_secs_f64() * 1e3)
        });
    }
    let mut out = Vec::with_capacity(sent.len());
    while let Some(done) = sent.join_next().await {
        out.push(done??);
    }
    Ok(out)
}

/// Runs wrk paced near `rate` requests/s: each connection waits 4 ms before each request
/// (wrk's `delay()` hook), with as many connections as the rate needs. Returns the p99 in
/// milliseconds and the rate reached.
async fn paced(url: &str, lua: Option<&std::path::Path>, rate: f64, seconds: u64, dir: &std::path::Path) -> Result<(f64, f64)> {
    // 4 ms between requests per connection; enough connections to reach the rate.
    let delay_ms = 4u64;
    let connections = ((rate * delay_ms as f64 / 1000.0).round() as u64).clamp(1, 512);
    let script = dir.join(format!("paced-{}.lua", url.len()));
    let mut text = match lua {
        Some(p) => std::fs::read_to_string(p)?,
        None => String::new(),
    };
    text.push_str(&format!("function delay()\n  return {delay_ms}\nend\n"));
    std::fs::write(&script, text)?;
    let figures = wrk_with(url, Some(&script), seconds, connections).await?;
    Ok((figures.p99_ms, figures.rps))
}
