//! Minter benchmark.
//!
//! 1,000 queued badge jobs (1,000 wallets), anvil mining a block every second, the minter
//! running as the service runs it (new heads over a websocket, SQLite): the number of
//! blocks from the first tick until every job is confirmed (target ≤ 5), beside the least
//! possible — the block gas limit's worth of badges per block, then the confirmations —
//! and the gas per badge in those batches, beside one badge issued alone in its own
//! transaction, measured in the same run.
//!
//! Run: `cargo bench --bench minter` (`JOBS=250` for a quicker run).

#[path = "support/record.rs"]
#[allow(dead_code, unreachable_pub)]
mod record;

use std::time::{Duration, Instant};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, keccak256},
    providers::{Provider, ProviderBuilder, WsConnect},
};
use anyhow::{Context, Result};
use futures::StreamExt;
use sqlx::Row;
use tmai_pay::{
    billing::activation::queue_badge,
    chain::{
        bindings::{IMembershipBadge::Membership, MembershipBadge},
        deployment::Deployment,
        devnet::{self, AnvilOptions},
        minter::{Minter, MinterConfig},
    },
    store::{Db, unix_now},
    toolchain::Toolchain,
};
use tokio_util::sync::CancellationToken;

const CONFIRMATIONS: u64 = 2;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let jobs: u64 = std::env::var("JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let toolchain = Toolchain::locate()?;
    let dir = toolchain.fixtures_dir();
    let deployment = Deployment::read(&dir.join(devnet::DEPLOYMENT_FILE))?;
    let anvil = devnet::spawn_anvil(&toolchain, &AnvilOptions { load_state: Some(dir.join(devnet::STATE_FILE)), block_time: Some(1), ..Default::default() })?;
    let http = ProviderBuilder::new().connect_http(anvil.endpoint_url()).erased();
    let gas_limit = http.get_block_by_number(Default::default()).await?.context("no head")?.header.gas_limit;

    // Baseline: one badge issued alone, from the issuer key, in this run.
    let issuer = devnet::provider_for(&anvil, devnet::ISSUER);
    let expiry = unix_now() as u64 + 30 * 86_400;
    let single = MembershipBadge::new(deployment.badge, &issuer)
        .issue(vec![Membership { wallet: wallet(u64::MAX), tier: 1, expiresAt: expiry }])
        .send()
        .await?
        .get_receipt()
        .await?;
    let single_gas = single.gas_used as f64;

    // The queue.
    let tmp = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite://{}", tmp.path().join("minter.db").display())).await?;
    let mut tx = db.begin_write().await?;
    for i in 0..jobs {
        queue_badge(&mut tx, wallet(i), tmai_pay::states::BadgeAction::Issue, (i % 4 + 1) as u8, expiry + i, unix_now() as u64).await?;
    }
    tx.commit().await?;

    // The minter as the service runs it, following heads over the websocket.
    let mut config = MinterConfig::new(deployment.chain_id, deployment.badge, CONFIRMATIONS);
    config.poll_interval = Duration::from_millis(200);
    let minter = Minter::new(db.clone(), http.clone(), EthereumWallet::from(devnet::key(&anvil, devnet::ISSUER)), config);
    let ws = ProviderBuilder::new().connect_ws(WsConnect::new(anvil.ws_endpoint())).await?;
    let mut blocks = ws.subscribe_blocks().await?.into_stream();
    let (heads_tx, heads_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(header) = blocks.next().await {
            let _ = heads_tx.try_send(header.number);
        }
    });
    let start_block = http.get_block_number().await?;
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let running = {
        let (minter, cancel) = (minter.clone(), cancel.clone());
        tokio::spawn(async move { minter.run(cancel, Some(heads_rx)).await })
    };
    let end_block = loop {
        let confirmed = count(&db, "SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await?;
        if confirmed as u64 == jobs {
            break http.get_block_number().await?;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "not confirmed after 5 minutes ({confirmed}/{jobs})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    cancel.cancel();
    running.await?;

    let gas_used = count(&db, "SELECT COALESCE(SUM(gas_used), 0) FROM badge_batches WHERE status = 'confirmed'").await? as f64;
    let batches = count(&db, "SELECT COUNT(*) FROM badge_batches WHERE status = 'confirmed'").await?;
    let per_badge = gas_used / jobs as f64;
    let blocks = end_block - start_block;
    let least = (gas_used / gas_limit as f64).ceil() as u64 + CONFIRMATIONS - 1;

    println!("minter: {jobs} badge jobs, anvil mining a block every second, {CONFIRMATIONS} confirmations");
    println!("  blocks until all confirmed     {blocks:>10}   least possible {least} (block gas limit {gas_limit}); target <= 5");
    println!("  blocks / least possible        {:>10.2}x", blocks as f64 / least as f64);
    println!("  wall time                      {:>10.1} s", elapsed.as_secs_f64());
    println!("  batches                        {batches:>10}");
    println!("  gas per badge (batched)        {per_badge:>10.0}");
    println!("  gas of one badge alone         {single_gas:>10.0}   (baseline, same run)");
    println!("  batched / alone                {:>10.3}x", per_badge / single_gas);
    let mut rec = record::Record::new("minter");
    rec.param("jobs", jobs);
    rec.param("confirmations", CONFIRMATIONS);
    rec.param("block_gas_limit", gas_limit);
    rec.add(record::figure("least_blocks", "least blocks possible (block gas limit + confirmations)", "blocks", least as f64).lower());
    rec.add(
        record::figure("blocks", &format!("blocks until {jobs} badges are confirmed"), "blocks", blocks as f64)
            .baseline("least_blocks")
            .lower()
            .target("2 blocks for 1,000 badges (direction)"),
    );
    rec.add(record::figure("wall", &format!("wall time for {jobs} badges (a block a second)"), "s", elapsed.as_secs_f64()).lower());
    rec.add(record::figure("gas_single", "one badge issued alone (baseline)", "gas", single_gas).lower());
    rec.add(record::figure("gas_per_badge", "gas per badge, batched", "gas", per_badge).baseline("gas_single").lower());
    rec.save()?;
    Ok(())
}

fn wallet(i: u64) -> Address {
    Address::from_slice(&keccak256(format!("bench-member-{i}"))[12..])
}

async fn count(db: &Db, sql: &str) -> Result<i64> {
    Ok(sqlx::query(sql).fetch_one(db.pool()).await?.try_get::<i64, _>(0)?)
}
