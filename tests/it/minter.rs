//! The badge minter on a real anvil with the real badge contract and a real database:
//! batching and superseding, stuck fees, nonce drift, crashes, reorgs, an unfunded issuer.

use std::time::Duration;

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
};
use sqlx::Row;
use tmai_pay::{
    billing::activation::{self, Subscription},
    chain::{
        bindings::{IMembershipBadge::Membership, MembershipBadge},
        devnet,
        minter::{Minter, MinterConfig, TickReport},
    },
    states::BadgeJobStatus,
    store::{Db, address_bytes, outbox, unix_now},
};

use crate::{
    db::{DbKind, TestDb, fresh_db, on_both_databases},
    helpers::{TestChain, spawn_chain},
};

pub(crate) const CONFIRMATIONS: u64 = 2;

pub(crate) struct Bench {
    pub(crate) chain: TestChain,
    test_db: TestDb,
    /// Anvil control and reads (signs as the deployer when it sends).
    pub(crate) rpc: DynProvider,
}

impl Bench {
    pub(crate) async fn start(kind: DbKind) -> Self {
        let chain = spawn_chain().await;
        let test_db = fresh_db(kind).await;
        let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
        Self { chain, test_db, rpc }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.test_db.db
    }

    pub(crate) fn config(&self) -> MinterConfig {
        let d = &self.chain.deployment;
        let mut config = MinterConfig::new(d.chain_id, d.badge, CONFIRMATIONS);
        config.stuck_after = Duration::from_secs(1);
        config.retry_base = Duration::from_secs(1);
        config.retry_max = Duration::from_secs(2);
        config.poll_interval = Duration::from_millis(50);
        config
    }

    pub(crate) fn minter(&self, config: MinterConfig) -> Minter {
        let provider = ProviderBuilder::new().connect_http(self.chain.anvil.endpoint_url()).erased();
        let wallet = EthereumWallet::from(devnet::key(&self.chain.anvil, devnet::ISSUER));
        Minter::new(self.db().clone(), provider, wallet, config)
    }

    pub(crate) fn issuer(&self) -> Address {
        self.chain.anvil.addresses()[devnet::ISSUER]
    }

    pub(crate) fn badge(&self) -> MembershipBadge::MembershipBadgeInstance<DynProvider> {
        MembershipBadge::new(self.chain.deployment.badge, self.rpc.clone())
    }

    /// Activates `wallet` as the activation code does: saves the subscription and queues
    /// its badge job in one transaction.
    pub(crate) async fn activate(&self, wallet: Address, tier: u8, expires_at: u64, action: &str) {
        let now = unix_now() as u64;
        let mut tx = self.db().begin_write().await.unwrap();
        let sub = Subscription {
            wallet,
            plan_id: u32::from(tier),
            tier,
            status: "active".parse().unwrap(),
            started_at: now,
            expires_at,
            next_plan_id: None,
            next_expires_at: None,
            comp_seconds: 0,
            paid_rate: None,
        };
        activation::save(&mut tx, &sub, now).await.unwrap();
        activation::queue_badge(&mut tx, wallet, action.parse().unwrap(), tier, expires_at, now).await.unwrap();
        tx.commit().await.unwrap();
    }

    pub(crate) async fn queue(&self, wallet: Address, action: &str, new_wallet: Option<Address>) {
        sqlx::query("INSERT INTO badge_jobs (wallet, action, new_wallet, created_at) VALUES ($1, $2, $3, $4)")
            .bind(address_bytes(wallet))
            .bind(action)
            .bind(new_wallet.map(address_bytes))
            .bind(unix_now())
            .execute(self.db().pool())
            .await
            .unwrap();
    }

    /// Ticks until nothing is open or waiting, mining a block after each tick (blocks
    /// arrive only with transactions otherwise); returns every report.
    pub(crate) async fn drain(&self, minter: &Minter) -> Vec<TickReport> {
        let mut reports = Vec::new();
        for _ in 0..200 {
            let report = minter.tick().await.unwrap();
            let idle = report.idle();
            reports.push(report);
            if idle {
                return reports;
            }
            self.rpc.anvil_mine(Some(1), None).await.unwrap();
        }
        panic!("the minter did not drain: {:?}", reports.last());
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql).fetch_one(self.db().pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
    }

    pub(crate) async fn events(&self, event_type: &str) -> Vec<outbox::StoredEvent> {
        outbox::all(self.db().pool()).await.unwrap().into_iter().filter(|e| e.event_type == event_type).collect()
    }

    /// On-chain (token id, tier, expiry) of `wallet`.
    pub(crate) async fn on_chain(&self, wallet: Address) -> (U256, u8, u64) {
        let m = self.badge().membershipOf(wallet).call().await.unwrap();
        (m.tokenId, m.tier, m.expiresAt_)
    }

    pub(crate) async fn balance(&self, wallet: Address) -> U256 {
        self.badge().balanceOf(wallet).call().await.unwrap()
    }
}

pub(crate) fn wallet(i: u64) -> Address {
    Address::from_slice(&keccak256(format!("member-{i}"))[12..])
}

/// 1,000 activations across 1,000 wallets (100 renewed before the minter saw them): each
/// wallet ends with exactly one badge whose tier and expiry on chain match the database.
pub(crate) async fn a_thousand_wallets_get_one_badge_each(kind: DbKind) {
    // Arrange
    let b = Bench::start(kind).await;
    let base = unix_now() as u64 + 30 * 86_400;
    for i in 0..1_000u64 {
        b.activate(wallet(i), (i % 4 + 1) as u8, base + i, "issue").await;
    }
    for i in 0..100u64 {
        b.activate(wallet(i), 4, base + 365 * 86_400 + i, "update").await;
    }
    let minter = b.minter(b.config());

    // Act
    let reports = b.drain(&minter).await;

    // Assert: chain matches the database for every wallet, one badge each
    let rows = sqlx::query("SELECT wallet, tier, expires_at FROM subscriptions").fetch_all(b.db().pool()).await.unwrap();
    assert_eq!(rows.len(), 1_000);
    for row in rows {
        let wallet = Address::from_slice(&row.try_get::<Vec<u8>, _>("wallet").unwrap());
        let (token, tier, expiry) = b.on_chain(wallet).await;
        assert_eq!(token, U256::from_be_slice(wallet.as_slice()), "{wallet}");
        assert_eq!(i64::from(tier), row.try_get::<i64, _>("tier").unwrap(), "{wallet}");
        assert_eq!(expiry as i64, row.try_get::<i64, _>("expires_at").unwrap(), "{wallet}");
        assert_eq!(b.balance(wallet).await, U256::from(1));
    }
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await, 1_000);
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'superseded'").await, 100);
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status NOT IN ('confirmed', 'superseded')").await, 0);
    let minted = b.events("badge.minted").await;
    assert_eq!(minted.len(), 1_000);
    assert!(minted.iter().all(|e| e.payload["data"]["tx_hash"].is_string()));
    let batches = b.count("SELECT COUNT(*) FROM badge_batches WHERE status = 'confirmed'").await;
    assert!((4..=10).contains(&batches), "1,000 issues in {batches} batches");
    assert_eq!(reports.iter().map(|r| r.failed).sum::<usize>(), 0);

    // A renewal after the badge exists is an update, not a second mint.
    b.activate(wallet(7), 2, base + 999, "update").await;
    b.drain(&minter).await;
    assert_eq!(b.on_chain(wallet(7)).await.1, 2);
    assert_eq!(b.on_chain(wallet(7)).await.2, base + 999);
    assert_eq!(b.balance(wallet(7)).await, U256::from(1));
    let updated = b.events("badge.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].payload["data"]["token_id"], U256::from_be_slice(wallet(7).as_slice()).to_string());
    crate::event_schemas::check_outbox(b.db()).await;
}
on_both_databases!(a_thousand_wallets_get_one_badge_each);

/// Blocks withheld: the stuck transaction is replaced with a higher fee. The base fee then
/// rises above the fee cap: no replacement can help until the operator raises the cap;
/// then it is replaced again and the queue drains.
async fn a_stuck_transaction_is_replaced_once_the_cap_allows(kind: DbKind) {
    // Arrange: automine off; a transaction priced for the current base fee
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..3 {
        b.activate(wallet(i), 3, expiry, "issue").await;
    }
    b.rpc.anvil_set_auto_mine(false).await.unwrap();
    let base_fee = u128::from(b.rpc.get_block_by_number(Default::default()).await.unwrap().unwrap().header.base_fee_per_gas.unwrap());
    let low_cap = base_fee * 20 + 2_000_000_000;
    let mut config = b.config();
    config.fee_cap = low_cap;
    let minter = b.minter(config.clone());
    let first = minter.tick().await.unwrap();
    assert_eq!(first.sent, 1);
    let first_hash: Vec<u8> = sqlx::query("SELECT tx_hash FROM badge_batches").fetch_one(b.db().pool()).await.unwrap().try_get(0).unwrap();

    // Act 1: no block comes; after the stuck timeout the transaction is replaced with a
    // higher fee, under the cap
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let report = minter.tick().await.unwrap();
    assert_eq!(report.replaced, 1, "{report:?}");
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_batch_txs").await, 2);

    // Act 2: the base fee jumps above the cap; blocks are mined without the transaction
    b.rpc.anvil_set_next_block_base_fee_per_gas(low_cap * 10).await.unwrap();
    b.rpc.anvil_mine(Some(1), None).await.unwrap();
    let mut capped = false;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let report = minter.tick().await.unwrap();
        capped |= report.fee_capped;
        if capped {
            break;
        }
    }
    assert!(capped, "the fee cap never stopped a replacement");
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await, 0);
    let fees: Vec<Vec<u8>> =
        sqlx::query("SELECT max_fee FROM badge_batch_txs").fetch_all(b.db().pool()).await.unwrap().iter().map(|r| r.try_get(0).unwrap()).collect();
    assert!(fees.iter().all(|f| U256::from_be_slice(f) <= U256::from(low_cap)), "every version stays under the cap");

    // Act 3: the operator raises the cap and restarts the minter
    config.fee_cap = low_cap * 1_000;
    let minter = b.minter(config);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let report = minter.tick().await.unwrap();
    assert_eq!(report.replaced, 1, "{report:?}");
    b.rpc.anvil_mine(Some(1), None).await.unwrap();
    b.drain(&minter).await;

    // Assert: confirmed through a replacement, not the first version; one badge each
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await, 3);
    let row = sqlx::query("SELECT mined_tx_hash, bumps FROM badge_batches WHERE status = 'confirmed'").fetch_one(b.db().pool()).await.unwrap();
    assert_ne!(row.try_get::<Vec<u8>, _>("mined_tx_hash").unwrap(), first_hash);
    assert!(row.try_get::<i64, _>("bumps").unwrap() >= 1);
    for i in 0..3 {
        assert_eq!(b.on_chain(wallet(i)).await.2, expiry);
    }
}
on_both_databases!(a_stuck_transaction_is_replaced_once_the_cap_allows);

/// A transaction from the issuer key outside the service takes the nonce of a batch
/// waiting in the pool, and another badge is issued outside: the minter gives the nonce up,
/// sends the jobs again at a fresh nonce and reconciles the outside badge, by itself.
async fn the_minter_recovers_from_nonce_drift(kind: DbKind) {
    // Arrange: a batch waiting in the pool (automine off)
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..5 {
        b.activate(wallet(i), 1, expiry, "issue").await;
    }
    b.rpc.anvil_set_auto_mine(false).await.unwrap();
    let minter = b.minter(b.config());
    assert_eq!(minter.tick().await.unwrap().sent, 1);
    let nonce = b.rpc.get_transaction_count(b.issuer()).latest().await.unwrap();

    // Act: the same key sends, outside the service, a better-paid transaction at that nonce
    // (issuing a badge to wallet 50), and the block is mined
    let outside = devnet::provider_for(&b.chain.anvil, devnet::ISSUER);
    let fees = outside.estimate_eip1559_fees().await.unwrap();
    let pending = MembershipBadge::new(b.chain.deployment.badge, &outside)
        .issue(vec![Membership { wallet: wallet(50), tier: 2, expiresAt: expiry }])
        .nonce(nonce)
        .max_fee_per_gas(fees.max_fee_per_gas * 10)
        .max_priority_fee_per_gas(fees.max_fee_per_gas * 5)
        .gas(500_000)
        .send()
        .await
        .unwrap();
    let outside_hash = *pending.tx_hash();
    b.rpc.anvil_mine(Some(1), None).await.unwrap();
    b.rpc.anvil_set_auto_mine(true).await.unwrap();
    assert!(b.rpc.get_transaction_receipt(outside_hash).await.unwrap().is_some());
    // The service also has a job for wallet 50, with the same state the outside tx set.
    b.activate(wallet(50), 2, expiry, "issue").await;
    let reports = b.drain(&minter).await;

    // Assert
    assert_eq!(reports.iter().map(|r| r.dropped).sum::<usize>(), 1, "{reports:?}");
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_batches WHERE status = 'dropped'").await, 1);
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await, 6);
    for i in (0..5).chain([50]) {
        assert_eq!(b.balance(wallet(i)).await, U256::from(1));
        assert_eq!(b.on_chain(wallet(i)).await.2, expiry);
    }
    let minted = b.events("badge.minted").await;
    assert_eq!(minted.len(), 6);
    assert_eq!(minted.iter().filter(|e| e.payload["data"]["already_on_chain"] == true).count(), 1);
}
on_both_databases!(the_minter_recovers_from_nonce_drift);

/// The minter stops abruptly after broadcasting and before recording it; a new one picks
/// the batch up from its write-ahead record: no second mint, nothing lost.
async fn a_crash_between_sending_and_recording_mints_once(kind: DbKind) {
    // Arrange
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..20 {
        b.activate(wallet(i), 2, expiry, "issue").await;
    }
    let mut config = b.config();
    config.fail_after_broadcast = true;

    // Act: crash right after the broadcast (the transaction is mined at once)
    let error = b.minter(config.clone()).tick().await.unwrap_err();
    assert!(error.to_string().contains("fail point"), "{error}");
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_batches WHERE status = 'signed'").await, 1);
    // anvil mines on arrival, but on a loaded machine the receipt can trail the send.
    let mined_by = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.balance(wallet(0)).await.is_zero() && std::time::Instant::now() < mined_by {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(b.balance(wallet(0)).await, U256::from(1), "the broadcast transaction was mined");
    config.fail_after_broadcast = false;
    let minter = b.minter(config);
    b.drain(&minter).await;

    // Assert
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_batches").await, 1);
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await, 20);
    assert_eq!(b.events("badge.minted").await.len(), 20);
    for i in 0..20 {
        assert_eq!(b.balance(wallet(i)).await, U256::from(1));
    }
    let nonce_after = b.rpc.get_transaction_count(b.issuer()).latest().await.unwrap();
    assert_eq!(nonce_after, 1, "exactly one issuer transaction");
}
on_both_databases!(a_crash_between_sending_and_recording_mints_once);

/// The block holding a mint is reorged out before it is deep enough: the batch is sent
/// again and its jobs are confirmed once.
async fn a_reorged_mint_is_sent_again(kind: DbKind) {
    // Arrange
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..10 {
        b.activate(wallet(i), 4, expiry, "issue").await;
    }
    let snapshot = b.rpc.anvil_snapshot().await.unwrap();
    let minter = b.minter(b.config());
    let report = minter.tick().await.unwrap();
    assert_eq!(report.sent, 1);
    // automine mines in the background: tick until the receipt is seen (not confirmed: no
    // further block comes)
    let mut report = minter.tick().await.unwrap();
    for _ in 0..50 {
        if b.count("SELECT COUNT(*) FROM badge_batches WHERE status = 'mined'").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        report = minter.tick().await.unwrap();
    }
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_batches WHERE status = 'mined'").await, 1, "{report:?}");
    assert_eq!(b.balance(wallet(0)).await, U256::from(1));

    // Act: the block is reorged out
    assert!(b.rpc.anvil_revert(snapshot).await.unwrap());
    assert_eq!(b.balance(wallet(0)).await, U256::ZERO);
    let reports = b.drain(&minter).await;

    // Assert
    assert_eq!(reports.iter().map(|r| r.reorged).sum::<usize>(), 1, "{reports:?}");
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await, 10);
    assert_eq!(b.events("badge.minted").await.len(), 10);
    for i in 0..10 {
        assert_eq!(b.on_chain(wallet(i)).await, (U256::from_be_slice(wallet(i).as_slice()), 4, expiry));
    }
}
on_both_databases!(a_reorged_mint_is_sent_again);

/// The issuer account runs out of ETH: a clear error, the jobs stay queued, and they
/// drain once it is funded.
async fn an_unfunded_issuer_keeps_jobs_queued_until_funded(kind: DbKind) {
    // Arrange
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..4 {
        b.activate(wallet(i), 1, expiry, "issue").await;
    }
    b.rpc.anvil_set_balance(b.issuer(), U256::ZERO).await.unwrap();
    let minter = b.minter(b.config());

    // Act
    let report = minter.tick().await.unwrap();

    // Assert: failed with a reason a person can act on; nothing open, nothing lost
    assert_eq!(report.failed, 4, "{report:?}");
    assert_eq!(report.open, 0);
    assert_eq!(report.waiting, 4);
    let reason: String = sqlx::query("SELECT last_error FROM badge_jobs LIMIT 1").fetch_one(b.db().pool()).await.unwrap().try_get(0).unwrap();
    assert!(reason.contains("cannot pay for gas") && reason.contains(&b.issuer().to_string()), "{reason}");
    assert_eq!(minter.job_counts().await.unwrap().get(&BadgeJobStatus::Failed), Some(&4));
    assert_eq!(b.rpc.get_transaction_count(b.issuer()).latest().await.unwrap(), 0);

    // Act 2: funded; after the backoff the jobs drain
    b.rpc.anvil_set_balance(b.issuer(), U256::from(10u64).pow(U256::from(19))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    b.drain(&minter).await;
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").await, 4);
    let attempts = b.count("SELECT MAX(attempts) FROM badge_jobs").await;
    assert_eq!(attempts, 1);
}
on_both_databases!(an_unfunded_issuer_keeps_jobs_queued_until_funded);

/// Revoke and move jobs, and jobs that cannot succeed.
pub(crate) async fn revoke_move_and_impossible_jobs(kind: DbKind) {
    // Arrange: three badges
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..3 {
        b.activate(wallet(i), 3, expiry, "issue").await;
    }
    let minter = b.minter(b.config());
    b.drain(&minter).await;

    // Act: revoke wallet 0, move wallet 1's badge to wallet 9, move wallet 2's badge onto
    // wallet 1 while wallet 1 still holds one (queued after the first move), revoke a wallet
    // that never had a badge
    b.queue(wallet(0), "revoke", None).await;
    b.queue(wallet(1), "move", Some(wallet(9))).await;
    b.queue(wallet(40), "revoke", None).await;
    b.drain(&minter).await;
    b.queue(wallet(2), "move", Some(wallet(9))).await;
    b.drain(&minter).await;

    // Assert
    assert_eq!(b.balance(wallet(0)).await, U256::ZERO);
    assert_eq!(b.on_chain(wallet(9)).await, (U256::from_be_slice(wallet(1).as_slice()), 3, expiry));
    assert_eq!(b.on_chain(wallet(1)).await.0, U256::ZERO);
    let revoked = b.events("badge.revoked").await;
    assert_eq!(revoked.len(), 2);
    assert_eq!(revoked.iter().filter(|e| e.payload["data"]["already_on_chain"] == true).count(), 1);
    let moved: Vec<_> = b.events("badge.updated").await.into_iter().filter(|e| e.payload["data"]["change"] == "moved").collect();
    assert_eq!(moved.len(), 1);
    let rejected: String =
        sqlx::query("SELECT last_error FROM badge_jobs WHERE status = 'rejected'").fetch_one(b.db().pool()).await.unwrap().try_get(0).unwrap();
    assert!(rejected.contains("already holds a badge"), "{rejected}");
    assert_eq!(b.on_chain(wallet(2)).await.0, U256::from_be_slice(wallet(2).as_slice()), "the refused move changed nothing");
    crate::event_schemas::check_outbox(b.db()).await;
}
on_both_databases!(revoke_move_and_impossible_jobs);
