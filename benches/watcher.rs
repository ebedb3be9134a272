//! Watcher benchmark.
//!
//! Backfill: 10,000 payments on a local anvil, read from the deployment block by the
//! watcher into SQLite and into PostgreSQL (detected, confirmed and activated), each beside
//! the raw limit measured in the same run: the same block range fetched with `eth_getLogs`
//! and decoded, nothing stored. Also the peak resident memory of this process during each
//! backfill.
//!
//! The peer, in the same run on the same anvil: ponder 0.16.10 (`tools/ponder`; the newest
//! that runs on Node 20) indexing the same `OrderPaid` logs over the same block range into
//! PGlite (its default store) and into PostgreSQL, one row per event; its rate is taken from
//! its own historical-indexing gauges (start-up, build and migrations left out), and the
//! time from `ponder start` to `/ready` is recorded beside it. Left out when ponder is not
//! installed (`npm ci --prefix tools/ponder`; `scripts/bench-report` does it).
//!
//! Live: anvil mines a block on demand; for each of 500 payments the benchmark mines the
//! block that makes it N deep and measures the time until the activation is committed,
//! with the watcher following new heads over a websocket. p50 and p99 are printed.
//!
//! Faults (`BENCH=faults`, alone): a backlog of `FAULT_PAYMENTS` (default 2,000) payments
//! already on the chain, backfilled into SQLite through the chaos campaign's fault proxy
//! (tests/chaos/proxy.rs) with no faults, then into a second database with 20 % of calls
//! faulted (dropped mid-answer, 503, truncated, or delayed up to 200 ms), in the same run
//! through the service's own transport (retry layer, one node per pass); prints the ratio.
//!
//! Run: `cargo bench --bench watcher` (`PAYMENTS=2000` for a quicker run;
//! `BENCH=faults cargo bench --bench watcher` for the fault comparison).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    primitives::U256,
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use anyhow::{Context, Result, bail, ensure};
use sqlx::Row;
use tmai_pay::watcher::{Watcher, WatcherConfig};
use tmai_pay::{
    billing::{
        plans::Catalog,
        quotes::{IssuedQuote, QuoteIssuer, QuoteRequest},
    },
    chain::{
        bindings::{
            SubscriptionCheckout::{self, OrderPaid},
            TestToken,
        },
        devnet::{self, AnvilOptions},
        paid_log::decode_logs,
    },
    config::PlanConfig,
    store::Db,
    toolchain::Toolchain,
};

#[path = "support/profile.rs"]
#[allow(dead_code, unreachable_pub)]
mod profile;

#[path = "support/record.rs"]
#[allow(dead_code, unreachable_pub)]
mod record;

#[path = "../tests/chaos/proxy.rs"]
#[allow(dead_code, unreachable_pub)]
mod proxy;

const CONFIRMATIONS: u64 = 2;
const PER_BLOCK: usize = 250;
const RANGE: u64 = 2_000;

fn plans() -> Vec<PlanConfig> {
    (1..=4u8)
        .map(|tier| PlanConfig {
            id: u32::from(tier),
            name: format!("Tier {tier}"),
            tier,
            period: "monthly".into(),
            prices: [("TMAI".to_string(), format!("{}", 10 * u32::from(tier)))].into(),
            card_price_cents: None,
            card_price_id: None,
            trial_days: 0,
            tmai_discount_percent: None,
            price_usd: None,
        })
        .collect()
}

/// Peak resident set of this process in MiB (VmHWM), after resetting it when asked.
fn peak_mib(reset: bool) -> f64 {
    if reset {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    status_mib("VmHWM:")
}

/// A memory figure of this process from /proc/self/status, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0)
}

/// The PostgreSQL server the bench's databases live on.
fn pg_server() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Runs `sql` on the server's `postgres` database (creating and dropping databases).
async fn admin(sql: &str) -> Result<()> {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&format!("{}/postgres", pg_server())).await?;
    sqlx::query(sql).execute(&admin).await?;
    admin.close().await;
    Ok(())
}

/// Creates the database `name` empty (dropping what an earlier run left); returns its URL.
async fn fresh_database(name: &str) -> Result<String> {
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    admin(&format!("CREATE DATABASE {name}")).await?;
    Ok(format!("{}/{name}", pg_server()))
}

async fn postgres_db() -> Result<Db> {
    Ok(Db::connect(&fresh_database(&format!("tmai_bench_{}", std::process::id())).await?).await?)
}

struct Bench {
    anvil: alloy::node_bindings::AnvilInstance,
    deployment: tmai_pay::chain::deployment::Deployment,
    catalog: Arc<Catalog>,
    issuer: QuoteIssuer,
    rpc: DynProvider,
}

impl Bench {
    fn watcher(&self, db: &Db, range: u64) -> Watcher {
        self.watcher_on(db, range, self.rpc.clone())
    }

    fn watcher_on(&self, db: &Db, range: u64, rpc: DynProvider) -> Watcher {
        Watcher::new(
            db.clone(),
            rpc,
            self.catalog.clone(),
            WatcherConfig {
                chain_id: self.deployment.chain_id,
                checkout: self.deployment.checkout,
                confirmations: CONFIRMATIONS,
                max_block_range: range,
                start_block: self.deployment.deploy_block,
                poll_interval: Duration::from_millis(20),
            },
        )
    }

    /// Issues `count` quotes into each database (same order ids in each) and returns them.
    async fn quotes(&self, dbs: &[&Db], count: usize, first_wallet: usize) -> Result<Vec<(usize, IssuedQuote)>> {
        let now = self.rpc.get_block_by_number(Default::default()).await?.context("head")?.header.timestamp;
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let wallet = first_wallet + i % 5;
            let request = QuoteRequest { plan_id: 1 + (i % 4) as u32, token: "TMAI".into(), payer: self.anvil.addresses()[wallet], periods: 1 };
            let mut issued = None;
            for db in dbs {
                issued = Some(self.issuer.issue(db, &self.catalog, &request, now).await?);
            }
            out.push((wallet, issued.context("a database")?));
        }
        Ok(out)
    }

    /// Sends the payments, `PER_BLOCK` to a block, with automine off.
    async fn pay_all(&self, quotes: &[(usize, IssuedQuote)]) -> Result<()> {
        self.pay_all_per_block(quotes, PER_BLOCK).await
    }

    /// Sends the payments, `per_block` to a block, with automine off.
    async fn pay_all_per_block(&self, quotes: &[(usize, IssuedQuote)], per_block: usize) -> Result<()> {
        let payers: Vec<DynProvider> = (0..devnet::TEST_WALLETS)
            .map(|i| ProviderBuilder::new().wallet(EthereumWallet::from(devnet::key(&self.anvil, i))).connect_http(self.anvil.endpoint_url()).erased())
            .collect();
        let tmai = self.deployment.token("TMAI").context("TMAI")?.address;
        for payer in &payers {
            TestToken::new(tmai, payer).approve(self.deployment.checkout, U256::MAX).send().await?.get_receipt().await?;
        }
        self.rpc.anvil_set_auto_mine(false).await?;
        for chunk in quotes.chunks(per_block) {
            for (wallet, q) in chunk {
                // Mined in the next evm_mine; receipts are checked through the backfill counts.
                let _pending = SubscriptionCheckout::new(q.checkout, &payers[*wallet]).pay(q.quote.clone(), q.signature.clone()).gas(150_000).send().await?;
            }
            self.rpc.evm_mine(None).await?;
        }
        self.rpc.anvil_set_auto_mine(true).await?;
        Ok(())
    }
}

async fn count(db: &Db, sql: &str) -> Result<i64> {
    Ok(sqlx::query(sql).fetch_one(db.pool()).await?.try_get(0)?)
}

/// Reads `[from, to]` with eth_getLogs in `RANGE`-block pieces and decodes; returns logs.
async fn raw_read(b: &Bench, from: u64, to: u64) -> Result<usize> {
    let mut total = 0;
    let mut start = from;
    while start <= to {
        let end = to.min(start + RANGE - 1);
        let filter = Filter::new().address(b.deployment.checkout).event_signature(OrderPaid::SIGNATURE_HASH).from_block(start).to_block(end);
        total += decode_logs(&b.rpc.get_logs(&filter).await?, b.deployment.checkout).len();
        start = end + 1;
    }
    Ok(total)
}

async fn backfill(b: &Bench, db: &Db) -> Result<(Duration, f64)> {
    let watcher = b.watcher(db, RANGE);
    eprintln!("resident before the backfill: {:.1} MiB", status_mib("VmRSS:"));
    peak_mib(true);
    let started = Instant::now();
    loop {
        if watcher.pass().await?.caught_up {
            break;
        }
    }
    Ok((started.elapsed(), peak_mib(false)))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Backfills `db` through `nodes` until caught up; returns the time and the failed passes.
async fn backfill_through(b: &Bench, db: &Db, nodes: &tmai_pay::chain::rpc::Nodes, range: u64) -> Result<(Duration, usize)> {
    let watcher = b.watcher_on(db, range, nodes.provider.clone()).with_nodes(nodes.clone());
    let started = Instant::now();
    let mut failed = 0;
    loop {
        match watcher.pass().await {
            Ok(report) if report.caught_up => break,
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    Ok((started.elapsed(), failed))
}

/// Ponder 0.16 (`tools/ponder`, installed by `scripts/bench-report`) indexing the same
/// `OrderPaid` logs from the same anvil, `[deploy block, end]`, into PGlite (its default
/// store) or, given a database URL, PostgreSQL. Returns the time from `ponder start` until
/// `/ready` answers 200 and its API (`tools/ponder/src/api`) counts `expect` rows; `None`
/// when ponder is not installed.
async fn ponder(b: &Bench, toolchain: &Toolchain, end: u64, expect: usize, database_url: Option<&str>) -> Result<Option<Duration>> {
    let dir = toolchain.root().join("tools/ponder");
    if !dir.join("node_modules/.bin/ponder").exists() {
        eprintln!("ponder is not installed (npm ci --prefix tools/ponder, as scripts/bench-report does): its figures are left out");
        return Ok(None);
    }
    let tmp = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(tmp.path().join("ponder.log"))?;
    let mut command = tokio::process::Command::new(dir.join("node_modules/.bin/ponder"));
    command
        .args(["start", "--port", &port.to_string(), "--schema", "bench"])
        .current_dir(&dir)
        .env("PONDER_RPC_URL", b.anvil.endpoint())
        .env("PONDER_CHAIN_ID", b.deployment.chain_id.to_string())
        .env("PONDER_CHECKOUT", b.deployment.checkout.to_string())
        .env("PONDER_START_BLOCK", b.deployment.deploy_block.to_string())
        .env("PONDER_END_BLOCK", end.to_string())
        .env("PONDER_PGLITE_DIR", tmp.path().join("pglite"))
        .env("PONDER_TELEMETRY_DISABLED", "true")
        .env_remove("DATABASE_URL")
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let started = Instant::now();
    let mut child = command.spawn().context("starting ponder")?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    // Done when /ready answers 200 and the API counts every event: ponder indexes the blocks
    // it deems unfinalized after it reports ready, so ready alone comes too early.
    let count = async || -> Option<u64> { client.get(format!("{base}/count")).send().await.ok()?.json::<serde_json::Value>().await.ok()?["rows"].as_u64() };
    let mut ready = false;
    let done = loop {
        if let Some(status) = child.try_wait()? {
            bail!("ponder exited ({status}): {}", std::fs::read_to_string(tmp.path().join("ponder.log")).unwrap_or_default());
        }
        ready = ready || client.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status().is_success());
        if ready && count().await == Some(expect as u64) {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(900),
            "ponder not done after 15 minutes (ready: {ready}, rows: {:?} of {expect}): {}",
            count().await,
            std::fs::read_to_string(tmp.path().join("ponder.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(Some(done))
}

/// The fault comparison (module documentation).
async fn faults(b: &Bench) -> Result<()> {
    let payments: usize = std::env::var("FAULT_PAYMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    // 20 payments a block and 50-block ranges: a backlog read in many passes and calls.
    let (per_block, range) = (20, 50);
    let dir = tempfile::tempdir()?;
    let clean = Db::connect(&format!("sqlite://{}", dir.path().join("clean.db").display())).await?;
    let faulty = Db::connect(&format!("sqlite://{}", dir.path().join("faulty.db").display())).await?;
    eprintln!("issuing and paying {payments} orders…");
    let quotes = b.quotes(&[&clean, &faulty], payments, 0).await?;
    b.pay_all_per_block(&quotes, per_block).await?;
    b.rpc.anvil_mine(Some(CONFIRMATIONS), None).await?;
    let proxy = proxy::Proxy::start(b.anvil.endpoint(), b.anvil.port(), 30, 0, 201).await;
    let nodes = tmai_pay::chain::rpc::Nodes::new(vec![proxy.http_url.parse()?], vec!["fault proxy".into()]);
    let (clean_time, clean_failed) = backfill_through(b, &clean, &nodes, range).await?;
    proxy.set_share(20);
    let (faulty_time, faulty_failed) = backfill_through(b, &faulty, &nodes, range).await?;
    let counts = proxy.counts();
    for (name, db) in [("clean", &clean), ("faulted", &faulty)] {
        let activated = count(db, "SELECT COUNT(*) FROM activations").await?;
        anyhow::ensure!(activated as usize == payments, "{name}: {activated} of {payments} activated");
    }
    let rate = |d: Duration| payments as f64 / d.as_secs_f64();
    println!("watcher backlog under RPC faults: {payments} payments, {per_block} a block, range {range}, SQLite, same run, through the fault proxy");
    println!("{:<44} {:>12} {:>14}", "", "payments/s", "failed passes");
    println!("{:<44} {:>12.0} {:>14}", "no faults (baseline)", rate(clean_time), clean_failed);
    println!("{:<44} {:>12.0} {:>14}", "20 % of calls faulted", rate(faulty_time), faulty_failed);
    println!(
        "faulted / clean: {:.3}×  (goal ≥ 0.5×); faults: {} dropped, {} 503, {} truncated, {} delayed ≤ 200 ms of {} calls",
        clean_time.as_secs_f64() / faulty_time.as_secs_f64(),
        counts.dropped,
        counts.errored,
        counts.truncated,
        counts.delayed,
        counts.calls
    );
    let mut rec = record::Record::new("watcher-faults");
    rec.param("payments", payments);
    rec.param("payments_per_block", per_block);
    rec.param("range", range);
    rec.param("fault_percent", 20);
    rec.add(record::figure("backlog.clean", "backlog through the proxy, no faults", "payments/s", rate(clean_time)).group("SQLite"));
    rec.add(
        record::figure("backlog.faulted", "backlog through the proxy, 20 % of calls faulted", "payments/s", rate(faulty_time))
            .baseline("backlog.clean")
            .target("≥ 0.5× the clean rate")
            .group("SQLite"),
    );
    rec.add(record::figure("backlog.failed_passes", "watcher passes that failed under faults", "passes", faulty_failed as f64).lower().group("SQLite"));
    rec.save()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let payments: usize = std::env::var("PAYMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let live: usize = std::env::var("LIVE_PAYMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    tmai_pay::telemetry::init_with_default(false, "warn");
    let toolchain = Toolchain::locate()?;
    let anvil = devnet::spawn_anvil(&toolchain, &AnvilOptions::default())?;
    let deployment = devnet::deploy_fixture_contracts(&anvil).await?;
    let catalog = Arc::new(Catalog::new(&plans(), &deployment.tokens)?);
    let issuer = QuoteIssuer::new(devnet::key(&anvil, devnet::QUOTE_SIGNER), deployment.chain_id, deployment.checkout, 86_400);
    let rpc = devnet::provider_for(&anvil, devnet::DEPLOYER);
    let b = Bench { anvil, deployment, catalog, issuer, rpc };
    if std::env::var("BENCH").is_ok_and(|v| v == "faults") {
        return faults(&b).await;
    }

    // Backfill set-up: the same orders in both databases, then the payments on chain.
    let dir = tempfile::tempdir()?;
    let sqlite = Db::connect(&format!("sqlite://{}", dir.path().join("bench.db").display())).await?;
    let postgres = postgres_db().await?;
    eprintln!("issuing {payments} quotes into SQLite and PostgreSQL…");
    let quotes = b.quotes(&[&sqlite, &postgres], payments, 0).await?;
    eprintln!("paying {payments} orders on anvil…");
    b.pay_all(&quotes).await?;
    b.rpc.anvil_mine(Some(CONFIRMATIONS), None).await?;
    let head = b.rpc.get_block_number().await?;

    // Raw limit, measured between the two backfills (best of three).
    let mut raw = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let n = raw_read(&b, b.deployment.deploy_block, head).await?;
        raw = raw.min(started.elapsed());
        anyhow::ensure!(n == payments, "raw read found {n} of {payments} payments");
    }
    let (sqlite_time, sqlite_peak) = {
        let _profiled = profile::Section::start("backfill-sqlite");
        backfill(&b, &sqlite).await?
    };
    let (pg_time, pg_peak) = {
        let _profiled = profile::Section::start("backfill-postgres");
        backfill(&b, &postgres).await?
    };
    if profile::profiling() {
        return Ok(());
    }
    for (name, db) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        let confirmed = count(db, "SELECT COUNT(*) FROM payments WHERE status = 'confirmed'").await?;
        let activated = count(db, "SELECT COUNT(*) FROM activations").await?;
        anyhow::ensure!(confirmed as usize == payments && activated as usize == payments, "{name}: {confirmed} confirmed, {activated} activated");
    }
    let rate = |d: Duration| payments as f64 / d.as_secs_f64();
    println!("watcher backfill: {payments} payments over {} blocks (range {RANGE}), each detected, confirmed and activated", head - b.deployment.deploy_block);
    println!("{:<40} {:>12} {:>10} {:>10}  target", "", "payments/s", "ratio", "peak MiB");
    println!("{:<40} {:>12.0} {:>10} {:>10}", "raw eth_getLogs + decode (baseline)", rate(raw), "1.000×", "-");
    println!(
        "{:<40} {:>12.0} {:>9.3}× {:>10.1}  ≥ 0.5× raw, ≤ 200 MiB",
        "watcher into SQLite",
        rate(sqlite_time),
        raw.as_secs_f64() / sqlite_time.as_secs_f64(),
        sqlite_peak
    );
    println!("{:<40} {:>12.0} {:>9.3}× {:>10.1}  (reported)", "watcher into PostgreSQL", rate(pg_time), raw.as_secs_f64() / pg_time.as_secs_f64(), pg_peak);

    let mut rec = record::Record::new("watcher");
    rec.param("payments", payments);
    rec.param("live_payments", live);
    rec.param("range", RANGE);
    rec.param("confirmations", CONFIRMATIONS);
    rec.add(record::figure("backfill.raw", "raw eth_getLogs + decode (baseline)", "payments/s", rate(raw)).group("backfill"));
    rec.add(
        record::figure("backfill.sqlite", "watcher backfill into SQLite", "payments/s", rate(sqlite_time))
            .baseline("backfill.raw")
            .target("≥ 0.35× raw")
            .group("backfill"),
    );
    rec.add(record::figure("backfill.postgres", "watcher backfill into PostgreSQL", "payments/s", rate(pg_time)).baseline("backfill.raw").group("backfill"));
    // The peer: ponder indexing the same logs from the same anvil, into PGlite and PostgreSQL.
    let ponder_db = format!("tmai_ponder_{}", std::process::id());
    // Ponder's start-up (build, migrations, server) measured apart: the same command over
    // the blocks before the first payment, so indexing = (start → ready) − (that).
    let before_first = b.deployment.deploy_block;
    let mut ponder_runs = Vec::new();
    for store in ["PGlite", "PostgreSQL"] {
        let url = if store == "PostgreSQL" { Some(fresh_database(&ponder_db).await?) } else { None };
        let idle = ponder(&b, &toolchain, before_first, 0, url.as_deref()).await?;
        if url.is_some() {
            // A fresh database for the measured run: nothing of the idle run's sync store.
            fresh_database(&ponder_db).await?;
        }
        let full = ponder(&b, &toolchain, head, payments, url.as_deref()).await?;
        if let (Some(idle), Some(full)) = (idle, full) {
            ponder_runs.push((store, idle, full));
        }
    }
    if ponder_runs.iter().any(|(store, ..)| *store == "PostgreSQL") {
        // What ponder stored, counted: its tables and their rows.
        let db = sqlx::AnyPool::connect(&format!("{}/{ponder_db}", pg_server())).await?;
        let tables = sqlx::query("SELECT table_schema::text, table_name::text FROM information_schema.tables WHERE table_schema IN ('ponder_sync', 'bench') AND table_type = 'BASE TABLE' ORDER BY 1, 2")
            .fetch_all(&db)
            .await?;
        let mut held = Vec::new();
        for row in tables {
            let (schema, table): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            let rows: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM \"{schema}\".\"{table}\"")).fetch_one(&db).await?.try_get(0)?;
            if rows > 0 {
                held.push(format!("{schema}.{table} {rows}"));
            }
        }
        db.close().await;
        println!("ponder's PostgreSQL tables after indexing {payments} payments (rows): {}", held.join(", "));
    }
    admin(&format!("DROP DATABASE IF EXISTS {ponder_db} WITH (FORCE)")).await?;
    for (store, idle, full) in &ponder_runs {
        let indexing = full.saturating_sub(*idle).max(Duration::from_millis(1));
        println!(
            "{:<40} {:>12.0} {:>9.3}×   (start → ready {:.2} s, less its start-up alone {:.2} s)",
            format!("ponder 0.16.10 into {store}"),
            rate(indexing),
            raw.as_secs_f64() / indexing.as_secs_f64(),
            full.as_secs_f64(),
            idle.as_secs_f64()
        );
        let key = store.to_lowercase();
        rec.add(
            record::figure(
                &format!("backfill.ponder_{key}"),
                &format!("ponder 0.16.10 into {store} (start → all stored, less start-up)"),
                "payments/s",
                rate(indexing),
            )
            .baseline("backfill.raw")
            .group("backfill"),
        );
        rec.add(
            record::figure(&format!("backfill.ponder_{key}_ready"), &format!("ponder into {store}: start → ready and all stored"), "s", full.as_secs_f64())
                .lower()
                .group("backfill"),
        );
        rec.add(
            record::figure(&format!("backfill.ponder_{key}_startup"), &format!("ponder into {store}: start → ready, no events"), "s", idle.as_secs_f64())
                .lower()
                .group("backfill"),
        );
    }
    rec.add(record::figure("backfill.sqlite_peak", "peak resident memory, SQLite backfill", "MiB", sqlite_peak).lower().group("backfill"));
    rec.add(record::figure("backfill.postgres_peak", "peak resident memory, PostgreSQL backfill", "MiB", pg_peak).lower().group("backfill"));

    // Live: websocket heads; the block that makes a payment N deep starts the clock.
    // Live on the backfilled SQLite database: order ids are unique per checkout contract,
    // so a fresh database would hand out ids the contract has already seen paid.
    let live_db = sqlite.clone();
    let live_base = count(&live_db, "SELECT COUNT(*) FROM activations").await?;
    let watcher = b.watcher(&live_db, RANGE);
    while !watcher.pass().await?.caught_up {}
    let ws = ProviderBuilder::new().connect_ws(alloy::providers::WsConnect::new(b.anvil.ws_endpoint())).await?;
    let mut stream = ws.subscribe_blocks().await?.into_stream();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(h) = stream.next().await {
            if tx.send(h.number).await.is_err() {
                return;
            }
        }
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let runner = {
        let (watcher, cancel) = (watcher.clone(), cancel.clone());
        tokio::spawn(async move { watcher.run(cancel, Some(rx)).await })
    };
    let live_quotes = b.quotes(&[&live_db], live, 5).await?;
    let tmai = b.deployment.token("TMAI").context("TMAI")?.address;
    let payers: Vec<DynProvider> = (0..devnet::TEST_WALLETS).map(|i| devnet::provider_for(&b.anvil, i)).collect();
    for payer in &payers[5..] {
        TestToken::new(tmai, payer).approve(b.deployment.checkout, U256::MAX).send().await?.get_receipt().await?;
    }
    let mut latencies = Vec::with_capacity(live);
    for (i, (wallet, q)) in live_quotes.iter().enumerate() {
        SubscriptionCheckout::new(q.checkout, &payers[*wallet]).pay(q.quote.clone(), q.signature.clone()).send().await?.get_receipt().await?;
        // The payment's block is its first confirmation; mine up to one short of N.
        if CONFIRMATIONS > 2 {
            b.rpc.anvil_mine(Some(CONFIRMATIONS - 2), None).await?;
        }
        let want = live_base + (i + 1) as i64;
        let started = Instant::now();
        b.rpc.anvil_mine(Some(1), None).await?;
        loop {
            if count(&live_db, "SELECT COUNT(*) FROM activations").await? >= want {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(started.elapsed());
    }
    cancel.cancel();
    let _ = runner.await;
    latencies.sort();
    println!("live (websocket heads, SQLite): confirming block → activation committed, {live} payments");
    println!(
        "  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   target p99 ≤ 100 ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    let ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    rec.add(
        record::figure("live.p50", "live: confirming block → activation, p50", "ms", percentile(&latencies, 0.5).as_secs_f64() * 1e3)
            .lower()
            .group("live (SQLite)"),
    );
    rec.add(
        record::figure("live.p99", "live: confirming block → activation, p99", "ms", percentile(&latencies, 0.99).as_secs_f64() * 1e3)
            .lower()
            .target("≤ 100 ms")
            .group("live (SQLite)"),
    );
    rec.samples("live", "confirming block → activation committed (SQLite, websocket heads)", "ms", &ms);
    rec.save()?;
    Ok(())
}
