//! The badge minter: turns queued badge jobs into `MembershipBadge` state with batched
//! transactions from the issuer key.
//!
//! Every tick does two things, in this order:
//!
//! 1. **Track** the open batches (one per issuer nonce the minter used): find the receipt
//!    of any signed version; confirm the batch `N` blocks deep and write its events; put a
//!    reorged-out batch back in flight; re-broadcast one the node forgot (the exact signed
//!    bytes are stored); replace one that is stuck with a fee bumped at least 10 %; give up
//!    a nonce another transaction consumed and queue its jobs again.
//! 2. **Plan** new batches from the queued jobs: a later job for a wallet supersedes the
//!    earlier unsent ones; each job is reconciled with the badge contract (a wallet that
//!    already holds a badge gets an update, not a second mint; one whose badge already
//!    shows the job's state, [`MinterConfig::confirmations`] deep, needs no transaction);
//!    jobs are grouped per call, bounded by count and gas, simulated, signed and **written
//!    to the database before they are broadcast**.
//!
//! The minter owns the issuer nonce: nonces are assigned from the open batches and the
//! chain's latest and pending counts, never from a cache, so a transaction sent from the
//! issuer key by anyone else, a node restart or a crash at any point is absorbed by the
//! next tick without manual help.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use alloy::{
    eips::{BlockId, Encodable2718},
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider},
    rpc::types::{TransactionReceipt, TransactionRequest},
    sol_types::SolCall,
    transports::TransportError,
};
use futures::{StreamExt, TryStreamExt, stream};
use sqlx::{AnyConnection, Row};
use tokio_util::sync::CancellationToken;

use super::bindings::{
    IMembershipBadge::Membership,
    MembershipBadge::{self, BadgeMoved, MembershipBadgeErrors, SubscriptionUpdate, Transfer},
};
use crate::store::{
    Db, StoreError, address_bytes, b256_bytes,
    outbox::{self, NewEvent},
    to_address, to_b256, to_u256, u256_bytes, unix_now,
};

/// Why a minter tick failed. Every failure is retried on the next tick.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The node did not answer or answered with an error.
    #[error("RPC: {0}")]
    Rpc(String),
    /// A transaction could not be built or signed.
    #[error("signing: {0}")]
    Signing(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A test asked the minter to stop right after broadcasting (crash simulation).
    #[error("stopped at the after-broadcast fail point")]
    FailPoint,
}

impl From<sqlx::Error> for MintError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

fn rpc(e: TransportError) -> MintError {
    MintError::Rpc(e.to_string())
}

/// Minter settings.
#[derive(Debug, Clone)]
pub struct MinterConfig {
    /// Chain id (transactions are signed for it).
    pub chain_id: u64,
    /// The badge contract.
    pub badge: Address,
    /// Blocks deep a batch must be to count (1 = in the head block).
    pub confirmations: u64,
    /// Most jobs in one batch call.
    pub max_batch_size: usize,
    /// Most gas one batch may use (bounds the batch size by each call's gas per job).
    pub max_batch_gas: u64,
    /// Most batches in flight (sent, not yet confirmed) at once.
    pub max_in_flight: usize,
    /// Highest `maxFeePerGas` the minter will pay, in wei. The first version of a
    /// transaction is priced at most 10/11 of it, so one replacement always fits under it.
    pub fee_cap: u128,
    /// A transaction not mined this long is replaced with a bumped fee; the wait doubles
    /// with each replacement.
    pub stuck_after: Duration,
    /// First retry delay of a failed job; doubles with each attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Time between ticks when nothing is happening.
    pub poll_interval: Duration,
    /// Tests only: return [`MintError::FailPoint`] right after the first broadcast of a
    /// tick, before the broadcast is recorded (a crash between sending and recording).
    #[doc(hidden)]
    pub fail_after_broadcast: bool,
}

impl MinterConfig {
    /// Defaults for `chain_id` and `badge`; the caller sets confirmations and fees.
    pub fn new(chain_id: u64, badge: Address, confirmations: u64) -> Self {
        Self {
            chain_id,
            badge,
            confirmations,
            max_batch_size: 250,
            max_batch_gas: 12_000_000,
            max_in_flight: 8,
            fee_cap: 500_000_000_000,
            stuck_after: Duration::from_secs(45),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
            fail_after_broadcast: false,
        }
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Head block seen.
    pub head: u64,
    /// Batches broadcast for the first time.
    pub sent: usize,
    /// Fee-bumped replacements broadcast.
    pub replaced: usize,
    /// Batches re-broadcast because the node no longer knew them.
    pub rebroadcast: usize,
    /// Batches whose block was reorged out.
    pub reorged: usize,
    /// Batches whose nonce another transaction consumed (their jobs were queued again).
    pub dropped: usize,
    /// Jobs confirmed (with or without a transaction).
    pub confirmed: usize,
    /// Jobs that failed this tick (retried later).
    pub failed: usize,
    /// Batches still open after the tick.
    pub open: usize,
    /// Jobs still waiting to be sent after the tick.
    pub waiting: usize,
    /// Whether the fee cap kept a stuck transaction from being replaced.
    pub fee_capped: bool,
}

impl TickReport {
    /// Whether there is nothing left to do: no open batch, no job waiting.
    pub fn idle(&self) -> bool {
        self.open == 0 && self.waiting == 0
    }
}

/// What a job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Call {
    Issue,
    Update,
    Revoke,
    Move,
}

impl Call {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "issue" => Self::Issue,
            "update" => Self::Update,
            "revoke" => Self::Revoke,
            "move" => Self::Move,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Issue => "issue",
            Self::Update => "update",
            Self::Revoke => "revoke",
            Self::Move => "move",
        }
    }

    /// Gas one job adds to a batch of this call (measured with `scripts/bench-gas`, with a
    /// margin); bounds batches by gas before they are simulated.
    fn gas_per_job(self) -> u64 {
        match self {
            Self::Issue => 32_000,
            Self::Update => 16_000,
            Self::Revoke => 16_000,
            Self::Move => 90_000,
        }
    }
}

/// One badge job.
#[derive(Debug, Clone)]
struct Job {
    id: i64,
    wallet: Address,
    action: Call,
    tier: u8,
    expires_at: u64,
    new_wallet: Option<Address>,
}

/// One open batch.
#[derive(Debug, Clone)]
struct Batch {
    id: i64,
    nonce: u64,
    call: String,
    input: Bytes,
    gas_limit: u64,
    status: String,
    bumps: u32,
    max_fee: u128,
    priority_fee: u128,
    tx_hash: B256,
    raw: Vec<u8>,
    sent_at: Option<i64>,
    mined_block: Option<u64>,
}

/// What reconciling a job with the badge contract decided.
#[derive(Debug)]
enum Decision {
    /// Send this call.
    Send(Call),
    /// The chain already shows the job's effect, deep enough: confirm without a transaction.
    Done { token_id: U256 },
    /// The chain shows the effect only in recent blocks: look again next tick.
    Wait,
    /// The job can never succeed as it stands.
    Reject(String),
}

/// How the node answered a broadcast.
#[derive(Debug)]
enum Broadcast {
    Accepted,
    /// The nonce is used (by us or someone else); the next tick's tracking resolves it.
    NonceUsed,
    /// The node refused the transaction itself (funds, fee, gas limit…).
    Refused(String),
}

/// The minter for one badge contract and issuer key.
#[derive(Debug, Clone)]
pub struct Minter {
    db: Db,
    provider: DynProvider,
    wallet: EthereumWallet,
    issuer: Address,
    config: MinterConfig,
}

const OPEN: &str = "('signed', 'sent', 'mined')";

impl Minter {
    /// Returns a minter sending from `wallet`'s default signer through `provider` (a
    /// provider without a wallet or nonce filler: the minter signs and counts itself).
    pub fn new(db: Db, provider: DynProvider, wallet: EthereumWallet, config: MinterConfig) -> Self {
        let issuer = alloy::network::NetworkWallet::<alloy::network::Ethereum>::default_signer_address(&wallet);
        Self { db, provider, wallet, issuer, config }
    }

    /// The issuer address.
    pub fn issuer(&self) -> Address {
        self.issuer
    }

    /// Runs ticks until `cancel` fires: again at once while work is moving, otherwise on
    /// each new head or every poll interval.
    pub async fn run(&self, cancel: CancellationToken, mut heads: Option<tokio::sync::mpsc::Receiver<u64>>) {
        let mut failures = 0u32;
        loop {
            let wait = match self.tick().await {
                Ok(report) => {
                    failures = 0;
                    self.config.poll_interval
                        .min(if report.sent + report.confirmed > 0 { Duration::from_millis(50) } else { Duration::MAX })
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "minter tick failed; retrying");
                    self.config.poll_interval * failures.min(10)
                }
            };
            if !super::wait_for_next_round(&cancel, wait, &mut heads).await {
                return;
            }
        }
    }

    /// Runs one tick: track the open batches, then plan and send new ones.
    pub async fn tick(&self) -> Result<TickReport, MintError> {
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        let latest_nonce = self.provider.get_transaction_count(self.issuer).latest().await.map_err(rpc)?;
        let mut report = TickReport { head, ..Default::default() };
        let sends_ok = self.track(head, latest_nonce, &mut report).await?;
        if sends_ok {
            self.plan(head, latest_nonce, &mut report).await?;
        }
        let open: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM badge_batches WHERE chain_id = $1 AND issuer = $2 AND status IN {OPEN}"))
            .bind(self.config.chain_id as i64)
            .bind(address_bytes(self.issuer))
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        let counts = job_counts(&self.db).await?;
        report.open = open as usize;
        report.waiting = (counts.get("queued").copied().unwrap_or(0) + counts.get("failed").copied().unwrap_or(0)) as usize;
        metrics::gauge!("tmai_badge_batches_open").set(open as f64);
        metrics::gauge!("tmai_minter_fee_capped").set(if report.fee_capped { 1.0 } else { 0.0 });
        Ok(report)
    }

    /// Returns how many jobs are in each status.
    pub async fn job_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        job_counts(&self.db).await
    }

    // ------------------------------------------------------------------ track

    /// Tracks every open batch; returns whether new batches may be sent (no earlier nonce
    /// is waiting to be accepted by the node).
    async fn track(&self, head: u64, latest_nonce: u64, report: &mut TickReport) -> Result<bool, MintError> {
        let open = self.open_batches().await?;
        let mut sends_ok = true;
        for (i, batch) in open.iter().enumerate() {
            let receipt = self.find_receipt(batch.id).await?;
            if let Some(receipt) = receipt {
                let block = receipt.block_number.unwrap_or(head);
                if batch.status != "mined" || batch.mined_block != Some(block) {
                    self.mark_mined(batch, &receipt).await?;
                }
                if head + 1 >= block + self.config.confirmations {
                    if receipt.status() {
                        report.confirmed += self.confirm(batch, &receipt).await?;
                    } else {
                        report.failed += self.reverted(batch, &receipt).await?;
                    }
                }
                continue;
            }
            if batch.status == "mined" {
                tracing::warn!(batch = batch.id, nonce = batch.nonce, "badge batch reorged out; sending it again");
                report.reorged += 1;
                self.set_batch_status(batch.id, "sent", "sent").await?;
            }
            if batch.nonce < latest_nonce {
                tracing::warn!(
                    batch = batch.id,
                    nonce = batch.nonce,
                    "issuer nonce used by another transaction; queueing the batch's jobs again"
                );
                self.drop_batch(batch.id).await?;
                report.dropped += 1;
                continue;
            }
            if !sends_ok {
                continue;
            }
            let known = self.provider.get_transaction_by_hash(batch.tx_hash).await.map_err(rpc)?.is_some();
            if !known {
                match self.broadcast(&batch.raw).await? {
                    Broadcast::Accepted => {
                        if batch.status == "signed" {
                            report.sent += 1;
                        } else {
                            report.rebroadcast += 1;
                        }
                        self.mark_sent(batch.id).await?;
                    }
                    Broadcast::NonceUsed => sends_ok = false,
                    Broadcast::Refused(reason) if batch.status != "signed" && is_fee_refusal(&reason) => {
                        // The node dropped it as underpriced and will not take it back at
                        // that price: replace it now rather than after the stuck timeout.
                        match self.replace(batch).await? {
                            Some(true) => report.replaced += 1,
                            Some(false) => report.fee_capped = true,
                            None => {}
                        }
                        sends_ok = false;
                    }
                    Broadcast::Refused(reason) => {
                        report.failed += self.refused(&open[i..], &reason).await?;
                        sends_ok = false;
                    }
                }
                continue;
            }
            if batch.status == "signed" {
                self.mark_sent(batch.id).await?;
                continue;
            }
            let waited = unix_now() - batch.sent_at.unwrap_or(0);
            let limit = self.config.stuck_after.as_secs_f64() * 2f64.powi(batch.bumps.min(6) as i32);
            if waited as f64 >= limit.max(1.0) {
                match self.replace(batch).await? {
                    Some(true) => report.replaced += 1,
                    Some(false) => report.fee_capped = true,
                    None => {}
                }
            }
        }
        Ok(sends_ok)
    }

    async fn open_batches(&self) -> Result<Vec<Batch>, MintError> {
        let rows = sqlx::query(&format!(
            "SELECT id, nonce, call, input, gas_limit, status, bumps, max_fee, priority_fee, tx_hash, raw_tx, sent_at, mined_block \
             FROM badge_batches WHERE chain_id = $1 AND issuer = $2 AND status IN {OPEN} ORDER BY nonce"
        ))
        .bind(self.config.chain_id as i64)
        .bind(address_bytes(self.issuer))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Batch {
                    id: r.try_get("id")?,
                    nonce: r.try_get::<i64, _>("nonce")? as u64,
                    call: r.try_get("call")?,
                    input: Bytes::from(r.try_get::<Vec<u8>, _>("input")?),
                    gas_limit: r.try_get::<i64, _>("gas_limit")? as u64,
                    status: r.try_get("status")?,
                    bumps: r.try_get::<i64, _>("bumps")? as u32,
                    max_fee: fee_of(&r.try_get::<Vec<u8>, _>("max_fee")?)?,
                    priority_fee: fee_of(&r.try_get::<Vec<u8>, _>("priority_fee")?)?,
                    tx_hash: to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "badge_batches.tx_hash")?,
                    raw: r.try_get("raw_tx")?,
                    sent_at: r.try_get("sent_at")?,
                    mined_block: r.try_get::<Option<i64>, _>("mined_block")?.map(|v| v as u64),
                })
            })
            .collect()
    }

    /// Returns the receipt of whichever signed version of the batch was mined.
    async fn find_receipt(&self, batch_id: i64) -> Result<Option<TransactionReceipt>, MintError> {
        let hashes = sqlx::query("SELECT tx_hash FROM badge_batch_txs WHERE batch_id = $1 ORDER BY created_at DESC")
            .bind(batch_id)
            .fetch_all(self.db.pool())
            .await?;
        for row in hashes {
            let hash = to_b256(&row.try_get::<Vec<u8>, _>("tx_hash")?, "badge_batch_txs.tx_hash")?;
            if let Some(receipt) = self.provider.get_transaction_receipt(hash).await.map_err(rpc)?
                && receipt.block_number.is_some()
            {
                return Ok(Some(receipt));
            }
        }
        Ok(None)
    }

    async fn mark_mined(&self, batch: &Batch, receipt: &TransactionReceipt) -> Result<(), MintError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE badge_batches SET status = 'mined', mined_tx_hash = $1, mined_block = $2, gas_used = $3, updated_at = $4 WHERE id = $5")
            .bind(b256_bytes(receipt.transaction_hash))
            .bind(receipt.block_number.unwrap_or_default() as i64)
            .bind(receipt.gas_used as i64)
            .bind(unix_now())
            .bind(batch.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE badge_jobs SET status = 'mined', tx_hash = $1, updated_at = $2 WHERE batch_id = $3 AND status IN ('sent', 'mined')")
            .bind(b256_bytes(receipt.transaction_hash))
            .bind(unix_now())
            .bind(batch.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_batch_status(&self, batch_id: i64, batch_status: &str, job_status: &str) -> Result<(), MintError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE badge_batches SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(batch_status)
            .bind(unix_now())
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE badge_jobs SET status = $1, updated_at = $2 WHERE batch_id = $3 AND status IN ('sent', 'mined')")
            .bind(job_status)
            .bind(unix_now())
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mark_sent(&self, batch_id: i64) -> Result<(), MintError> {
        sqlx::query("UPDATE badge_batches SET status = 'sent', sent_at = $1, updated_at = $1 WHERE id = $2 AND status IN ('signed', 'sent')")
            .bind(unix_now())
            .bind(batch_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Gives up a batch whose nonce was consumed by another transaction: its jobs go back
    /// to the queue, to be reconciled with the contract and sent again.
    async fn drop_batch(&self, batch_id: i64) -> Result<(), MintError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE badge_batches SET status = 'dropped', last_error = 'nonce used by another transaction', updated_at = $1 WHERE id = $2")
            .bind(unix_now())
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE badge_jobs SET status = 'queued', batch_id = NULL, position = NULL, tx_hash = NULL, updated_at = $1 WHERE batch_id = $2 AND status IN ('sent', 'mined')")
            .bind(unix_now())
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The node refused the first of `batches` (ascending nonces): when none of them was
    /// ever accepted, they are all deleted and their jobs fail with the reason (retried
    /// with backoff); otherwise they are kept, to be broadcast again next tick.
    async fn refused(&self, batches: &[Batch], reason: &str) -> Result<usize, MintError> {
        let reason = explain_refusal(reason, self.issuer);
        tracing::warn!(nonce = batches[0].nonce, %reason, "node refused a badge transaction");
        if batches.iter().any(|b| b.status != "signed") {
            sqlx::query("UPDATE badge_batches SET last_error = $1, updated_at = $2 WHERE id = $3")
                .bind(&reason)
                .bind(unix_now())
                .bind(batches[0].id)
                .execute(self.db.pool())
                .await?;
            return Ok(0);
        }
        let mut tx = self.db.begin_write().await?;
        let mut failed = 0;
        for batch in batches {
            let ids = jobs_in_batch(&mut tx, batch.id).await?;
            failed += self.fail_jobs(&mut tx, &ids, &reason).await?;
            sqlx::query("DELETE FROM badge_batch_txs WHERE batch_id = $1").bind(batch.id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM badge_batches WHERE id = $1").bind(batch.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(failed)
    }

    /// Records a failure on each job: status `failed`, the reason, and the time of the next
    /// attempt (backoff doubling from `retry_base` up to `retry_max`).
    async fn fail_jobs(&self, conn: &mut AnyConnection, ids: &[i64], reason: &str) -> Result<usize, MintError> {
        let now = unix_now();
        for id in ids {
            let attempts: i64 = sqlx::query("SELECT attempts FROM badge_jobs WHERE id = $1").bind(id).fetch_one(&mut *conn).await?.try_get(0)?;
            let attempts = attempts + 1;
            let delay = self.config.retry_base.as_secs_f64() * 2f64.powi((attempts - 1).min(20) as i32);
            let delay = delay.min(self.config.retry_max.as_secs_f64()).ceil() as i64;
            sqlx::query(
                "UPDATE badge_jobs SET status = 'failed', attempts = $1, last_error = $2, next_attempt_at = $3, \
                 batch_id = NULL, position = NULL, tx_hash = NULL, updated_at = $4 WHERE id = $5",
            )
            .bind(attempts)
            .bind(reason)
            .bind(now + delay)
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if attempts >= 3 {
                tracing::error!(job = id, attempts, reason, "badge job keeps failing");
            } else {
                tracing::warn!(job = id, attempts, reason, "badge job failed; will retry");
            }
        }
        Ok(ids.len())
    }

    /// A mined batch reverted: its jobs fail with the reason and are reconciled with the
    /// contract before they are sent again.
    async fn reverted(&self, batch: &Batch, receipt: &TransactionReceipt) -> Result<usize, MintError> {
        let reason = format!("batch transaction {} reverted in block {}", receipt.transaction_hash, receipt.block_number.unwrap_or_default());
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE badge_batches SET status = 'reverted', last_error = $1, updated_at = $2 WHERE id = $3")
            .bind(&reason)
            .bind(unix_now())
            .bind(batch.id)
            .execute(&mut *tx)
            .await?;
        let ids = jobs_in_batch(&mut tx, batch.id).await?;
        let failed = self.fail_jobs(&mut tx, &ids, &reason).await?;
        tx.commit().await?;
        Ok(failed)
    }

    /// Confirms a successful batch `N` deep: its jobs become `confirmed` with the token
    /// ids read from the receipt's logs, and their events are written, in one transaction.
    async fn confirm(&self, batch: &Batch, receipt: &TransactionReceipt) -> Result<usize, MintError> {
        let mut tx = self.db.begin_write().await?;
        let rows = sqlx::query(
            "SELECT id, wallet, action, tier, expires_at, new_wallet, position FROM badge_jobs \
             WHERE batch_id = $1 AND status IN ('sent', 'mined') ORDER BY position",
        )
        .bind(batch.id)
        .fetch_all(&mut *tx)
        .await?;
        let logs: Vec<_> = receipt.inner.logs().iter().filter(|l| l.address() == self.config.badge).collect();
        let minted: Vec<U256> = logs
            .iter()
            .filter_map(|l| l.log_decode::<Transfer>().ok())
            .filter(|l| l.inner.from == Address::ZERO)
            .map(|l| l.inner.tokenId)
            .collect();
        let burned: Vec<U256> = logs
            .iter()
            .filter_map(|l| l.log_decode::<Transfer>().ok())
            .filter(|l| l.inner.to == Address::ZERO)
            .map(|l| l.inner.tokenId)
            .collect();
        let updated: Vec<U256> = logs.iter().filter_map(|l| l.log_decode::<SubscriptionUpdate>().ok()).map(|l| l.inner.tokenId).collect();
        let moved: Vec<U256> = logs.iter().filter_map(|l| l.log_decode::<BadgeMoved>().ok()).map(|l| l.inner.tokenId).collect();
        let mut events = Vec::new();
        let now = unix_now();
        let call = Call::parse(&batch.call).ok_or(StoreError::Corrupt("badge_batches.call"))?;
        for row in &rows {
            let job = job_of(row)?;
            let position = row.try_get::<Option<i64>, _>("position")?.unwrap_or(0) as usize;
            let token_id = match call {
                Call::Issue => minted.get(position),
                Call::Update => updated.get(position),
                Call::Revoke => burned.get(position),
                Call::Move => moved.first(),
            }
            .copied()
            .unwrap_or_default();
            sqlx::query("UPDATE badge_jobs SET status = 'confirmed', token_id = $1, tx_hash = $2, last_error = NULL, updated_at = $3 WHERE id = $4")
                .bind(u256_bytes(token_id))
                .bind(b256_bytes(receipt.transaction_hash))
                .bind(now)
                .bind(job.id)
                .execute(&mut *tx)
                .await?;
            events.push(badge_event(&job, call, token_id, Some(receipt.transaction_hash), receipt.block_number));
        }
        sqlx::query("UPDATE badge_batches SET status = 'confirmed', updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(batch.id)
            .execute(&mut *tx)
            .await?;
        outbox::write_all(&mut tx, &events).await?;
        tx.commit().await?;
        metrics::counter!("tmai_badge_jobs_confirmed_total").increment(rows.len() as u64);
        tracing::info!(batch = batch.id, nonce = batch.nonce, call = %batch.call, jobs = rows.len(), tx = %receipt.transaction_hash, "badge batch confirmed");
        Ok(rows.len())
    }

    /// Replaces a stuck batch with the same call at a fee at least 10 % higher (and at
    /// least what the node suggests now), under the cap. Returns `Some(true)` when
    /// replaced, `Some(false)` when the cap prevents it, `None` when the node refused.
    async fn replace(&self, batch: &Batch) -> Result<Option<bool>, MintError> {
        let fees = self.provider.estimate_eip1559_fees().await.map_err(rpc)?;
        let min_priority = batch.priority_fee + batch.priority_fee / 10 + 1;
        let min_max = batch.max_fee + batch.max_fee / 10 + 1;
        let mut priority = min_priority.max(fees.max_priority_fee_per_gas);
        let mut max_fee = min_max.max(fees.max_fee_per_gas).max(priority);
        if max_fee > self.config.fee_cap {
            max_fee = self.config.fee_cap;
            if max_fee < min_max {
                tracing::warn!(
                    batch = batch.id,
                    nonce = batch.nonce,
                    max_fee = batch.max_fee,
                    fee_cap = self.config.fee_cap,
                    "badge transaction stuck and the fee cap allows no further replacement; raise minter.fee_cap_gwei"
                );
                sqlx::query("UPDATE badge_batches SET last_error = 'stuck at the fee cap', updated_at = $1 WHERE id = $2")
                    .bind(unix_now())
                    .bind(batch.id)
                    .execute(self.db.pool())
                    .await?;
                return Ok(Some(false));
            }
            priority = priority.min(max_fee);
        }
        if priority < min_priority {
            priority = min_priority.min(max_fee);
        }
        let capped = max_fee == self.config.fee_cap;
        let (hash, raw) = self.sign(batch.nonce, &batch.input, batch.gas_limit, max_fee, priority).await?;
        // Write ahead: the new version is known before it is broadcast (any version may be
        // the one mined); it becomes the batch's current version once the node takes it.
        let mut tx = self.db.begin_write().await?;
        insert_version(&mut tx, batch.id, hash, max_fee, priority).await?;
        tx.commit().await?;
        match self.broadcast(&raw).await? {
            Broadcast::Accepted => {
                sqlx::query(
                    "UPDATE badge_batches SET tx_hash = $1, raw_tx = $2, max_fee = $3, priority_fee = $4, bumps = bumps + 1, \
                     sent_at = $5, last_error = NULL, updated_at = $5 WHERE id = $6",
                )
                .bind(b256_bytes(hash))
                .bind(raw)
                .bind(u256_bytes(U256::from(max_fee)))
                .bind(u256_bytes(U256::from(priority)))
                .bind(unix_now())
                .bind(batch.id)
                .execute(self.db.pool())
                .await?;
                metrics::counter!("tmai_badge_replacements_total").increment(1);
                tracing::info!(batch = batch.id, nonce = batch.nonce, old_max_fee = batch.max_fee, max_fee, tx = %hash, "replaced a stuck badge transaction");
                Ok(Some(true))
            }
            Broadcast::NonceUsed => Ok(None),
            Broadcast::Refused(reason) => {
                let reason = explain_refusal(&reason, self.issuer);
                tracing::warn!(batch = batch.id, nonce = batch.nonce, max_fee, fee_cap = self.config.fee_cap, %reason, "node refused the replacement");
                sqlx::query("UPDATE badge_batches SET last_error = $1, sent_at = $2, updated_at = $2 WHERE id = $3")
                    .bind(&reason)
                    .bind(unix_now())
                    .bind(batch.id)
                    .execute(self.db.pool())
                    .await?;
                Ok(if capped { Some(false) } else { None })
            }
        }
    }

    // ------------------------------------------------------------------ plan

    async fn plan(&self, head: u64, latest_nonce: u64, report: &mut TickReport) -> Result<(), MintError> {
        let open = self.open_batches().await?;
        let room = self.config.max_in_flight.saturating_sub(open.len());
        if room == 0 {
            return Ok(());
        }
        let now = unix_now();
        let rows = sqlx::query(
            "SELECT id, wallet, action, tier, expires_at, new_wallet FROM badge_jobs \
             WHERE status IN ('queued', 'failed') AND next_attempt_at <= $1 ORDER BY id",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let jobs: Vec<Job> = rows.iter().map(job_of).collect::<Result<_, _>>()?;
        let busy: HashSet<Vec<u8>> = sqlx::query("SELECT wallet, new_wallet FROM badge_jobs WHERE status IN ('sent', 'mined')")
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .flat_map(|r| [r.try_get::<Vec<u8>, _>("wallet").ok(), r.try_get::<Option<Vec<u8>>, _>("new_wallet").ok().flatten()])
            .flatten()
            .collect();

        // Supersede: per wallet, a later issue/update/revoke replaces the earlier unsent
        // ones; a move is a barrier (what follows it waits for it).
        let mut per_wallet: BTreeMap<Address, Vec<&Job>> = BTreeMap::new();
        for job in &jobs {
            per_wallet.entry(job.wallet).or_default().push(job);
        }
        let mut superseded = Vec::new();
        let mut effective = Vec::new();
        let mut claimed: HashSet<Address> = HashSet::new();
        let mut order: Vec<(i64, Address)> = per_wallet.iter().map(|(w, js)| (js[0].id, *w)).collect();
        order.sort();
        for (_, wallet) in order {
            let list = &per_wallet[&wallet];
            let chosen = if list[0].action == Call::Move {
                list[0]
            } else {
                let run = list.iter().take_while(|j| j.action != Call::Move).count();
                superseded.extend(list[..run - 1].iter().map(|j| j.id));
                list[run - 1]
            };
            let targets = [Some(chosen.wallet), chosen.new_wallet];
            if targets.iter().flatten().any(|a| busy.contains(&address_bytes(*a)) || claimed.contains(a)) {
                continue;
            }
            claimed.extend(targets.iter().flatten());
            effective.push(chosen.clone());
        }
        if !superseded.is_empty() {
            let mut tx = self.db.begin_write().await?;
            for id in &superseded {
                sqlx::query("UPDATE badge_jobs SET status = 'superseded', updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }

        // Reconcile with the badge contract.
        let safe_block = (head + 1).saturating_sub(self.config.confirmations);
        let decisions: Vec<(Job, Decision)> = stream::iter(effective.into_iter().map(|job| async move {
            let decision = self.decide(&job, safe_block).await?;
            Ok::<_, MintError>((job, decision))
        }))
        .buffered(32)
        .try_collect()
        .await?;
        let mut to_send: BTreeMap<Call, Vec<Job>> = BTreeMap::new();
        let mut done = Vec::new();
        let mut rejected = Vec::new();
        for (job, decision) in decisions {
            match decision {
                Decision::Send(call) => to_send.entry(call).or_default().push(job),
                Decision::Done { token_id } => done.push((job, token_id)),
                Decision::Wait => {}
                Decision::Reject(reason) => rejected.push((job, reason)),
            }
        }
        if !done.is_empty() || !rejected.is_empty() {
            let mut tx = self.db.begin_write().await?;
            let mut events = Vec::new();
            for (job, token_id) in &done {
                sqlx::query("UPDATE badge_jobs SET status = 'confirmed', token_id = $1, last_error = NULL, updated_at = $2 WHERE id = $3")
                    .bind(u256_bytes(*token_id))
                    .bind(now)
                    .bind(job.id)
                    .execute(&mut *tx)
                    .await?;
                events.push(badge_event(job, job.action, *token_id, None, None));
            }
            for (job, reason) in &rejected {
                tracing::error!(job = job.id, wallet = %job.wallet, reason, "badge job rejected");
                sqlx::query("UPDATE badge_jobs SET status = 'rejected', last_error = $1, updated_at = $2 WHERE id = $3")
                    .bind(reason)
                    .bind(now)
                    .bind(job.id)
                    .execute(&mut *tx)
                    .await?;
            }
            outbox::write_all(&mut tx, &events).await?;
            tx.commit().await?;
            report.confirmed += done.len();
        }
        if to_send.is_empty() {
            return Ok(());
        }

        // Batches, bounded by count and gas, simulated, then priced and signed.
        let mut chunks: Vec<(Call, Vec<Job>)> = Vec::new();
        for (call, jobs) in to_send {
            let size = match call {
                Call::Move => 1,
                _ => self.config.max_batch_size.min((self.config.max_batch_gas / call.gas_per_job()) as usize).max(1),
            };
            for chunk in jobs.chunks(size) {
                chunks.push((call, chunk.to_vec()));
            }
        }
        chunks.truncate(room);
        let mut planned = Vec::new();
        for (call, jobs) in chunks {
            report.failed += self.simulate(call, jobs, &mut planned).await?;
        }
        if planned.is_empty() {
            return Ok(());
        }
        let pending_nonce = self.provider.get_transaction_count(self.issuer).pending().await.map_err(rpc)?;
        let mut nonce = open.iter().map(|b| b.nonce + 1).max().unwrap_or(0).max(latest_nonce).max(pending_nonce);
        let fees = self.provider.estimate_eip1559_fees().await.map_err(rpc)?;
        let first_cap = self.config.fee_cap * 10 / 11;
        let max_fee = fees.max_fee_per_gas.min(first_cap);
        let priority = fees.max_priority_fee_per_gas.min(max_fee);

        let mut signed = Vec::new();
        for (call, jobs, input, gas_limit) in planned {
            let (hash, raw) = self.sign(nonce, &input, gas_limit, max_fee, priority).await?;
            signed.push((nonce, call, jobs, input, gas_limit, hash, raw));
            nonce += 1;
        }
        // Write ahead: the batches and their signed bytes are stored before any broadcast.
        let mut tx = self.db.begin_write().await?;
        let mut batch_ids = Vec::new();
        for (nonce, call, jobs, input, gas_limit, hash, raw) in &signed {
            let id: i64 = sqlx::query(
                "INSERT INTO badge_batches (chain_id, issuer, nonce, call, input, gas_limit, status, max_fee, priority_fee, \
                 tx_hash, raw_tx, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'signed', $7, $8, $9, $10, $11, $11) RETURNING id",
            )
            .bind(self.config.chain_id as i64)
            .bind(address_bytes(self.issuer))
            .bind(*nonce as i64)
            .bind(call.as_str())
            .bind(input.to_vec())
            .bind(*gas_limit as i64)
            .bind(u256_bytes(U256::from(max_fee)))
            .bind(u256_bytes(U256::from(priority)))
            .bind(b256_bytes(*hash))
            .bind(raw.clone())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            insert_version(&mut tx, id, *hash, max_fee, priority).await?;
            for (position, job) in jobs.iter().enumerate() {
                sqlx::query("UPDATE badge_jobs SET status = 'sent', batch_id = $1, position = $2, updated_at = $3 WHERE id = $4")
                    .bind(id)
                    .bind(position as i64)
                    .bind(now)
                    .bind(job.id)
                    .execute(&mut *tx)
                    .await?;
            }
            batch_ids.push(id);
        }
        sqlx::query(
            "INSERT INTO minter_state (chain_id, issuer, next_nonce, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain_id, issuer) DO UPDATE SET next_nonce = excluded.next_nonce, updated_at = excluded.updated_at",
        )
        .bind(self.config.chain_id as i64)
        .bind(address_bytes(self.issuer))
        .bind(nonce as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        for (i, (nonce, call, jobs, ..)) in signed.iter().enumerate() {
            match self.broadcast(&signed[i].6).await? {
                Broadcast::Accepted => {
                    if self.config.fail_after_broadcast {
                        return Err(MintError::FailPoint);
                    }
                    self.mark_sent(batch_ids[i]).await?;
                    report.sent += 1;
                    metrics::counter!("tmai_badge_batches_sent_total").increment(1);
                    tracing::info!(nonce, call = call.as_str(), jobs = jobs.len(), tx = %signed[i].5, "badge batch sent");
                }
                Broadcast::NonceUsed => break,
                Broadcast::Refused(reason) => {
                    let rest = self.open_batches().await?.into_iter().filter(|b| b.nonce >= *nonce).collect::<Vec<_>>();
                    report.failed += self.refused(&rest, &reason).await?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Decides what `job` needs given the badge contract's state.
    async fn decide(&self, job: &Job, safe_block: u64) -> Result<Decision, MintError> {
        let badge = MembershipBadge::new(self.config.badge, &self.provider);
        let state = |wallet: Address, block: Option<u64>| {
            let badge = badge.clone();
            async move {
                let call = badge.membershipOf(wallet);
                let call = match block {
                    Some(n) => call.block(BlockId::number(n)),
                    None => call,
                };
                call.call().await.map_err(|e| MintError::Rpc(e.to_string()))
            }
        };
        match job.action {
            Call::Issue | Call::Update => {
                if job.tier == 0 {
                    return Ok(Decision::Reject("tier 0 is not a membership".into()));
                }
                if job.wallet == Address::ZERO {
                    return Ok(Decision::Reject("the zero address cannot hold a badge".into()));
                }
                let now = state(job.wallet, None).await?;
                let wanted = |tier: u8, expiry: u64| tier == job.tier && expiry == job.expires_at;
                if now.tokenId.is_zero() {
                    return Ok(Decision::Send(Call::Issue));
                }
                if !wanted(now.tier, now.expiresAt_) {
                    return Ok(Decision::Send(Call::Update));
                }
                let safe = state(job.wallet, Some(safe_block)).await?;
                Ok(if !safe.tokenId.is_zero() && wanted(safe.tier, safe.expiresAt_) {
                    Decision::Done { token_id: safe.tokenId }
                } else {
                    Decision::Wait
                })
            }
            Call::Revoke => {
                let now = state(job.wallet, None).await?;
                if !now.tokenId.is_zero() {
                    return Ok(Decision::Send(Call::Revoke));
                }
                let safe = state(job.wallet, Some(safe_block)).await?;
                Ok(if safe.tokenId.is_zero() { Decision::Done { token_id: U256::ZERO } } else { Decision::Wait })
            }
            Call::Move => {
                let Some(to) = job.new_wallet else { return Ok(Decision::Reject("move without a new wallet".into())) };
                if to == Address::ZERO || to == job.wallet {
                    return Ok(Decision::Reject(format!("cannot move a badge to {to}")));
                }
                let (from_now, to_now) = (state(job.wallet, None).await?, state(to, None).await?);
                match (from_now.tokenId.is_zero(), to_now.tokenId.is_zero()) {
                    (false, true) => Ok(Decision::Send(Call::Move)),
                    (true, false) => {
                        let (from_safe, to_safe) = (state(job.wallet, Some(safe_block)).await?, state(to, Some(safe_block)).await?);
                        Ok(if from_safe.tokenId.is_zero() && !to_safe.tokenId.is_zero() {
                            Decision::Done { token_id: to_safe.tokenId }
                        } else {
                            Decision::Wait
                        })
                    }
                    (false, false) => Ok(Decision::Reject(format!("{to} already holds a badge"))),
                    (true, true) => Ok(Decision::Reject(format!("{} holds no badge to move", job.wallet))),
                }
            }
        }
    }

    /// Simulates the batch call with `eth_estimateGas`. Jobs the contract refuses by name
    /// (`AlreadyHasBadge`, `NoBadge`) fail and are left out; an unexplained refusal splits
    /// the batch until the failing job is alone. Appends what will be sent to `planned`;
    /// returns how many jobs failed.
    async fn simulate(&self, call: Call, jobs: Vec<Job>, planned: &mut Vec<(Call, Vec<Job>, Bytes, u64)>) -> Result<usize, MintError> {
        let mut failed = 0;
        let mut pending = vec![jobs];
        while let Some(jobs) = pending.pop() {
            if jobs.is_empty() {
                continue;
            }
            let input = encode(call, &jobs);
            let request = TransactionRequest::default().with_from(self.issuer).with_to(self.config.badge).with_input(input.clone());
            match self.provider.estimate_gas(request).await {
                Ok(gas) => {
                    let limit = gas + gas / 5;
                    planned.push((call, jobs, input, limit));
                }
                Err(error) => {
                    let decoded = error.as_error_resp().and_then(|p| p.as_decoded_interface_error::<MembershipBadgeErrors>());
                    let named = match &decoded {
                        Some(MembershipBadgeErrors::MembershipBadge__AlreadyHasBadge(e)) => Some(e.wallet),
                        Some(MembershipBadgeErrors::MembershipBadge__NoBadge(e)) => Some(e.wallet),
                        _ => None,
                    };
                    let reason = match &decoded {
                        Some(e) => format!("the badge contract refuses the {} call: {e:?}", call.as_str()),
                        None => explain_refusal(&format!("simulating the {} call failed: {error}", call.as_str()), self.issuer),
                    };
                    let guilty: Vec<i64> = match named {
                        Some(wallet) => jobs.iter().filter(|j| j.wallet == wallet || j.new_wallet == Some(wallet)).map(|j| j.id).collect(),
                        None if jobs.len() == 1 => vec![jobs[0].id],
                        None => {
                            if error.as_error_resp().is_none() {
                                return Err(rpc(error));
                            }
                            let (a, b) = jobs.split_at(jobs.len() / 2);
                            pending.push(a.to_vec());
                            pending.push(b.to_vec());
                            continue;
                        }
                    };
                    if guilty.is_empty() {
                        return Err(MintError::Rpc(reason));
                    }
                    let mut tx = self.db.begin_write().await?;
                    failed += self.fail_jobs(&mut tx, &guilty, &reason).await?;
                    tx.commit().await?;
                    pending.push(jobs.into_iter().filter(|j| !guilty.contains(&j.id)).collect());
                }
            }
        }
        Ok(failed)
    }

    async fn sign(&self, nonce: u64, input: &Bytes, gas_limit: u64, max_fee: u128, priority: u128) -> Result<(B256, Vec<u8>), MintError> {
        let request = TransactionRequest::default()
            .with_from(self.issuer)
            .with_to(self.config.badge)
            .with_input(input.clone())
            .with_nonce(nonce)
            .with_chain_id(self.config.chain_id)
            .with_gas_limit(gas_limit)
            .with_max_fee_per_gas(max_fee)
            .with_max_priority_fee_per_gas(priority);
        let envelope = request.build(&self.wallet).await.map_err(|e| MintError::Signing(e.to_string()))?;
        Ok((*envelope.tx_hash(), envelope.encoded_2718()))
    }

    async fn broadcast(&self, raw: &[u8]) -> Result<Broadcast, MintError> {
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(Broadcast::Accepted),
            Err(error) => {
                let Some(payload) = error.as_error_resp() else { return Err(rpc(error)) };
                let message = payload.message.to_lowercase();
                if message.contains("already known") || message.contains("already imported") || message.contains("already exists") {
                    Ok(Broadcast::Accepted)
                } else if message.contains("nonce too low") || message.contains("nonce has already been used") {
                    Ok(Broadcast::NonceUsed)
                } else {
                    Ok(Broadcast::Refused(payload.message.to_string()))
                }
            }
        }
    }
}

/// Returns how many badge jobs are in each status, and sets the `tmai_badge_jobs{status}`
/// gauges (`failed` counts jobs waiting to be retried after a failure).
pub async fn job_counts(db: &Db) -> Result<BTreeMap<String, i64>, StoreError> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM badge_jobs GROUP BY status").fetch_all(db.pool()).await?;
    let mut counts = BTreeMap::new();
    for row in rows {
        counts.insert(row.try_get::<String, _>("status")?, row.try_get::<i64, _>("n")?);
    }
    for status in ["queued", "sent", "mined", "confirmed", "failed", "superseded", "rejected"] {
        metrics::gauge!("tmai_badge_jobs", "status" => status).set(counts.get(status).copied().unwrap_or(0) as f64);
    }
    Ok(counts)
}

/// Whether the node refused a transaction for its price.
fn is_fee_refusal(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("fee cap") || lower.contains("base fee") || lower.contains("underpriced") || lower.contains("fee too low")
}

/// A person-readable reason for a refused broadcast.
fn explain_refusal(message: &str, issuer: Address) -> String {
    let lower = message.to_lowercase();
    if lower.contains("insufficient funds") || lower.contains("insufficient balance") {
        format!("the issuer account {issuer} cannot pay for gas (node: {message}); fund it with ETH and the jobs will drain")
    } else if is_fee_refusal(message) {
        format!("fee too low for the node (node: {message}); raise minter.fee_cap_gwei")
    } else {
        format!("node refused the transaction: {message}")
    }
}

fn encode(call: Call, jobs: &[Job]) -> Bytes {
    let memberships = || -> Vec<Membership> {
        jobs.iter().map(|j| Membership { wallet: j.wallet, tier: j.tier, expiresAt: j.expires_at }).collect()
    };
    match call {
        Call::Issue => MembershipBadge::issueCall { memberships: memberships() }.abi_encode().into(),
        Call::Update => MembershipBadge::updateCall { memberships: memberships() }.abi_encode().into(),
        Call::Revoke => MembershipBadge::revokeCall { wallets: jobs.iter().map(|j| j.wallet).collect() }.abi_encode().into(),
        Call::Move => {
            let job = &jobs[0];
            MembershipBadge::moveCall { from: job.wallet, to: job.new_wallet.unwrap_or_default() }.abi_encode().into()
        }
    }
}

fn badge_event(job: &Job, call: Call, token_id: U256, tx_hash: Option<B256>, block: Option<u64>) -> NewEvent {
    let event_type = match call {
        Call::Issue => "badge.minted",
        Call::Update | Call::Move => "badge.updated",
        Call::Revoke => "badge.revoked",
    };
    let mut data = serde_json::json!({
        "job_id": job.id,
        "wallet": job.wallet,
        "token_id": token_id.to_string(),
        "tx_hash": tx_hash,
        "block_number": block,
    });
    if matches!(job.action, Call::Issue | Call::Update) {
        data["tier"] = job.tier.into();
        data["expires_at"] = job.expires_at.into();
    }
    if job.action == Call::Move {
        data["change"] = "moved".into();
        data["to"] = serde_json::json!(job.new_wallet);
    }
    if tx_hash.is_none() {
        data["already_on_chain"] = true.into();
    }
    NewEvent::new(outbox::event_id(&[event_type, &job.id.to_string()]), event_type, &data)
}

fn job_of(row: &sqlx::any::AnyRow) -> Result<Job, StoreError> {
    let action: String = row.try_get("action")?;
    Ok(Job {
        id: row.try_get("id")?,
        wallet: to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "badge_jobs.wallet")?,
        action: Call::parse(&action).ok_or(StoreError::Corrupt("badge_jobs.action"))?,
        tier: row.try_get::<Option<i64>, _>("tier")?.unwrap_or(0).clamp(0, 255) as u8,
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.unwrap_or(0).max(0) as u64,
        new_wallet: row
            .try_get::<Option<Vec<u8>>, _>("new_wallet")?
            .map(|b| to_address(&b, "badge_jobs.new_wallet"))
            .transpose()?,
    })
}

/// Returns the ids of the jobs a batch carries (sent or mined).
async fn jobs_in_batch(conn: &mut AnyConnection, batch_id: i64) -> Result<Vec<i64>, MintError> {
    let rows = sqlx::query("SELECT id FROM badge_jobs WHERE batch_id = $1 AND status IN ('sent', 'mined')")
        .bind(batch_id)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
}

fn fee_of(bytes: &[u8]) -> Result<u128, StoreError> {
    let value = to_u256(bytes, "badge_batches fee")?;
    u128::try_from(value).map_err(|_| StoreError::Corrupt("badge_batches fee"))
}

async fn insert_version(conn: &mut AnyConnection, batch_id: i64, hash: B256, max_fee: u128, priority: u128) -> Result<(), MintError> {
    sqlx::query("INSERT INTO badge_batch_txs (tx_hash, batch_id, max_fee, priority_fee, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(b256_bytes(hash))
        .bind(batch_id)
        .bind(u256_bytes(U256::from(max_fee)))
        .bind(u256_bytes(U256::from(priority)))
        .bind(unix_now())
        .execute(conn)
        .await?;
    Ok(())
}
