//! The payment watcher: reads `OrderPaid` logs from a persisted cursor, records payments
//! as `detected`, confirms them `N` blocks deep and activates their plans, and undoes
//! what a reorg removed. Each pass is *undo, apply, then acknowledge* in **one database
//! transaction**: roll back reorged blocks, record payments, confirm and activate, store
//! recent block hashes, move the cursor. A crash at any point loses nothing: the cursor
//! only moves with the effects it covers.
//!
//! anvil's log subscription does not report removed logs, so reorgs are found by comparing
//! the stored hash of recent blocks with the node's, at start-up and on every pass.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use sqlx::{AnyConnection, Row};
use tokio_util::sync::CancellationToken;

use super::bindings::SubscriptionCheckout::OrderPaid;
use crate::{
    billing::{activation, plans::Catalog},
    store::{Db, StoreError, address_bytes, b256_bytes, outbox, to_address, to_b256, to_u256, u256_bytes, unix_now},
};

/// Why a watcher pass failed. Every failure is retried on the next pass.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The node did not answer or answered with an error.
    #[error("RPC: {0}")]
    Rpc(String),
    /// The node answered inconsistently (a reorg during the pass); the pass is retried.
    #[error("chain moved during the pass: {0}")]
    Moved(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for WatchError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

/// Watcher settings.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// Chain id (part of every payment's key).
    pub chain_id: u64,
    /// The checkout contract.
    pub checkout: Address,
    /// Blocks deep a payment must be to count (1 = in the head block).
    pub confirmations: u64,
    /// Largest `eth_getLogs` range.
    pub max_block_range: u64,
    /// First block to read when there is no cursor yet (the deployment block).
    pub start_block: u64,
    /// Time between passes when no new head arrives.
    pub poll_interval: Duration,
}

impl WatcherConfig {
    /// Blocks below the head whose hashes are kept for reorg detection.
    fn window(&self) -> u64 {
        self.confirmations + 64
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Head block seen.
    pub head: u64,
    /// Fork point when a reorg was rolled back.
    pub reorged_to: Option<u64>,
    /// Payments marked reorged.
    pub reorged: usize,
    /// `OrderPaid` logs recorded.
    pub detected: usize,
    /// Payments confirmed.
    pub confirmed: usize,
    /// Whether the cursor reached the head.
    pub caught_up: bool,
}

/// The watcher for one checkout contract.
#[derive(Debug, Clone)]
pub struct Watcher {
    db: Db,
    provider: DynProvider,
    catalog: Arc<Catalog>,
    config: WatcherConfig,
    range: Arc<std::sync::atomic::AtomicU64>,
}

/// A decoded `OrderPaid` log with its position.
#[derive(Debug, Clone)]
pub struct PaidLog {
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Log index in the block.
    pub log_index: u64,
    /// The event.
    pub event: OrderPaid,
}

/// Decodes `OrderPaid` logs; logs without a position (pending) or of another shape are
/// skipped. Pure, so it is tested on its own.
pub fn decode_logs(logs: &[Log]) -> Vec<PaidLog> {
    logs.iter()
        .filter(|l| !l.removed)
        .filter_map(|l| {
            let event = OrderPaid::decode_log(&l.inner).ok()?.data;
            Some(PaidLog {
                block_number: l.block_number?,
                block_hash: l.block_hash?,
                tx_hash: l.transaction_hash?,
                log_index: l.log_index?,
                event,
            })
        })
        .collect()
}

impl Watcher {
    /// Returns a watcher; nothing runs until [`Watcher::run`] or [`Watcher::pass`].
    pub fn new(db: Db, provider: DynProvider, catalog: Arc<Catalog>, config: WatcherConfig) -> Self {
        let range = Arc::new(std::sync::atomic::AtomicU64::new(config.max_block_range.max(1)));
        Self { db, provider, catalog, config, range }
    }

    /// Runs passes until `cancel` fires: at once while behind the head, then on each new
    /// head (`heads`, e.g. a websocket subscription) or every poll interval.
    pub async fn run(&self, cancel: CancellationToken, mut heads: Option<tokio::sync::mpsc::Receiver<u64>>) {
        let mut failures = 0u32;
        loop {
            let wait = match self.pass().await {
                Ok(report) => {
                    failures = 0;
                    if !report.caught_up {
                        continue;
                    }
                    self.config.poll_interval
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "watcher pass failed; retrying");
                    self.config.poll_interval * failures.min(10)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                Some(_) = async { match heads.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {}
            }
        }
    }

    /// Runs one pass: reorg check, one range of logs, confirmations, all in one transaction.
    pub async fn pass(&self) -> Result<PassReport, WatchError> {
        let rpc = |e: alloy::transports::TransportError| WatchError::Rpc(e.to_string());
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        let now = unix_now() as u64;
        let mut report = PassReport { head, ..Default::default() };

        let mut tx = self.db.pool().begin().await?;
        let chain = self.config.chain_id as i64;
        let cursor = match sqlx::query("SELECT next_block FROM chain_cursor WHERE chain_id = $1")
            .bind(chain)
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(row) => row.try_get::<i64, _>("next_block")? as u64,
            None => self.config.start_block,
        };

        // 1. Undo: find the fork point among the stored recent blocks.
        let mut next = cursor;
        if let Some(fork) = self.find_fork(&mut tx).await? {
            report.reorged = self.roll_back(&mut tx, fork).await?;
            report.reorged_to = Some(fork);
            next = next.min(fork + 1);
        }

        // 2. Apply: read one range of logs and record them with the range's recent hashes.
        if next <= head {
            let to = head.min(next + self.range.load(std::sync::atomic::Ordering::Relaxed) - 1);
            let (logs, to) = self.fetch_logs(next, to).await?;
            let hashes = self.recent_hashes(next, to, head).await?;
            for log in &logs {
                if let Some((hash, _)) = hashes.iter().find(|(_, (n, _))| *n == log.block_number)
                    && *hash != log.block_hash {
                        return Err(WatchError::Moved(format!("block {} changed while reading", log.block_number)));
                    }
            }
            for log in &logs {
                if self.record(&mut tx, log, now).await? {
                    report.detected += 1;
                }
            }
            for (hash, (number, parent)) in &hashes {
                sqlx::query(
                    "INSERT INTO chain_blocks (chain_id, number, hash, parent_hash) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash, parent_hash = excluded.parent_hash",
                )
                .bind(chain)
                .bind(*number as i64)
                .bind(b256_bytes(*hash))
                .bind(b256_bytes(*parent))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM chain_blocks WHERE chain_id = $1 AND number < $2")
                .bind(chain)
                .bind(head.saturating_sub(self.config.window()) as i64)
                .execute(&mut *tx)
                .await?;
            next = to + 1;
        }
        report.caught_up = next > head;

        // 3. Confirm what is deep enough (and was read), activate matched payments.
        let deep = (head + 1).saturating_sub(self.config.confirmations);
        report.confirmed = self.confirm(&mut tx, deep.min(next.saturating_sub(1)), now).await?;
        activation::apply_due_downgrades(&mut tx, &self.catalog, now).await?;

        // 4. Acknowledge: move the cursor with the effects.
        sqlx::query(
            "INSERT INTO chain_cursor (chain_id, next_block) VALUES ($1, $2) \
             ON CONFLICT (chain_id) DO UPDATE SET next_block = excluded.next_block",
        )
        .bind(chain)
        .bind(next as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if report.detected + report.confirmed + report.reorged > 0 {
            tracing::info!(head, next, detected = report.detected, confirmed = report.confirmed, reorged = report.reorged, "watcher pass");
        }
        Ok(report)
    }

    /// Returns the highest stored block that is still canonical, when the stored tip is not.
    async fn find_fork(&self, conn: &mut AnyConnection) -> Result<Option<u64>, WatchError> {
        let rows = sqlx::query("SELECT number, hash FROM chain_blocks WHERE chain_id = $1 ORDER BY number DESC")
            .bind(self.config.chain_id as i64)
            .fetch_all(&mut *conn)
            .await?;
        let mut lowest = None;
        for (i, row) in rows.iter().enumerate() {
            let number = row.try_get::<i64, _>("number")? as u64;
            let stored = to_b256(&row.try_get::<Vec<u8>, _>("hash")?, "chain_blocks.hash")?;
            let block = self
                .provider
                .get_block_by_number(number.into())
                .await
                .map_err(|e| WatchError::Rpc(e.to_string()))?;
            if block.is_some_and(|b| b.header.hash == stored) {
                return Ok((i > 0).then_some(number));
            }
            lowest = Some(number);
        }
        if let Some(lowest) = lowest {
            tracing::error!(lowest, "reorg deeper than the stored window; rolling back all of it");
            return Ok(Some(lowest.saturating_sub(1)));
        }
        Ok(None)
    }

    /// Marks detected payments above `fork` reorged and forgets the blocks above it.
    async fn roll_back(&self, conn: &mut AnyConnection, fork: u64) -> Result<usize, WatchError> {
        let chain = self.config.chain_id as i64;
        let rows = sqlx::query(
            "SELECT id, tx_hash, log_index, block_hash, order_id, payer, status FROM payments \
             WHERE chain_id = $1 AND block_number > $2 AND status IN ('detected', 'confirmed')",
        )
        .bind(chain)
        .bind(fork as i64)
        .fetch_all(&mut *conn)
        .await?;
        let mut reorged = 0;
        for row in rows {
            let status: String = row.try_get("status")?;
            let tx_hash = to_b256(&row.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?;
            let log_index: i64 = row.try_get("log_index")?;
            if status == "confirmed" {
                tracing::error!(%tx_hash, log_index, fork, "a confirmed payment was reorged out; raise the confirmations");
                continue;
            }
            let block_hash = to_b256(&row.try_get::<Vec<u8>, _>("block_hash")?, "payments.block_hash")?;
            sqlx::query("UPDATE payments SET status = 'reorged' WHERE id = $1")
                .bind(row.try_get::<i64, _>("id")?)
                .execute(&mut *conn)
                .await?;
            let key = payment_key(self.config.chain_id, tx_hash, log_index as u64);
            let id = outbox::event_id(&["payment.reorged", &key, &block_hash.to_string()]);
            outbox::write(conn, &id, "payment.reorged", &serde_json::json!({
                "payment": key,
                "tx_hash": tx_hash,
                "block_hash": block_hash,
                "order_id": to_u256(&row.try_get::<Vec<u8>, _>("order_id")?, "payments.order_id")?.to_string(),
                "payer": to_address(&row.try_get::<Vec<u8>, _>("payer")?, "payments.payer")?,
            }))
            .await?;
            reorged += 1;
        }
        sqlx::query("DELETE FROM chain_blocks WHERE chain_id = $1 AND number > $2")
            .bind(chain)
            .bind(fork as i64)
            .execute(&mut *conn)
            .await?;
        tracing::warn!(fork, reorged, "reorg rolled back");
        Ok(reorged)
    }

    /// Fetches `OrderPaid` logs in `[from, to]`, halving the range while the provider
    /// refuses it; returns the logs and the range's actual end.
    async fn fetch_logs(&self, from: u64, mut to: u64) -> Result<(Vec<PaidLog>, u64), WatchError> {
        loop {
            let filter = Filter::new()
                .address(self.config.checkout)
                .event_signature(OrderPaid::SIGNATURE_HASH)
                .from_block(from)
                .to_block(to);
            match self.provider.get_logs(&filter).await {
                Ok(logs) => return Ok((decode_logs(&logs), to)),
                Err(error) if to > from => {
                    let half = (to - from).div_ceil(2).max(1);
                    self.range.store(half, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(%error, from, to, half, "eth_getLogs refused the range; shrinking it");
                    to = from + half - 1;
                }
                Err(error) => return Err(WatchError::Rpc(error.to_string())),
            }
        }
    }

    /// Returns (hash, (number, parent)) of the blocks in `[from, to]` that fall within the
    /// reorg window below `head`.
    async fn recent_hashes(&self, from: u64, to: u64, head: u64) -> Result<Vec<(B256, (u64, B256))>, WatchError> {
        let start = from.max(head.saturating_sub(self.config.window()));
        let mut out = Vec::new();
        for number in start..=to {
            let block = self
                .provider
                .get_block_by_number(number.into())
                .await
                .map_err(|e| WatchError::Rpc(e.to_string()))?
                .ok_or_else(|| WatchError::Moved(format!("block {number} disappeared")))?;
            out.push((block.header.hash, (number, block.header.parent_hash)));
        }
        for pair in out.windows(2) {
            if pair[1].1.1 != pair[0].0 {
                return Err(WatchError::Moved(format!("block {} does not extend {}", pair[1].1.0, pair[0].1.0)));
            }
        }
        Ok(out)
    }

    /// Records one log as a detected payment (or re-detects a reorged one); matches it to
    /// its order and reports unmatched payments. Returns whether anything changed.
    async fn record(&self, conn: &mut AnyConnection, log: &PaidLog, now: u64) -> Result<bool, WatchError> {
        let chain = self.config.chain_id as i64;
        let e = &log.event;
        let existing = sqlx::query("SELECT id, status, block_hash FROM payments WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3")
            .bind(chain)
            .bind(b256_bytes(log.tx_hash))
            .bind(log.log_index as i64)
            .fetch_optional(&mut *conn)
            .await?;
        let (matched, reason) = self.match_order(conn, log).await?;
        match existing {
            Some(row) => {
                let status: String = row.try_get("status")?;
                let hash = to_b256(&row.try_get::<Vec<u8>, _>("block_hash")?, "payments.block_hash")?;
                if status != "reorged" && hash == log.block_hash {
                    return Ok(false);
                }
                if status == "confirmed" {
                    return Ok(false);
                }
                sqlx::query("UPDATE payments SET status = 'detected', block_number = $1, block_hash = $2 WHERE id = $3")
                    .bind(log.block_number as i64)
                    .bind(b256_bytes(log.block_hash))
                    .bind(row.try_get::<i64, _>("id")?)
                    .execute(&mut *conn)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO payments (chain_id, tx_hash, log_index, block_number, block_hash, order_id, payer, token, amount, \
                     plan_id, periods, status, matched_order, unmatched_reason, detected_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'detected', $12, $13, $14)",
                )
                .bind(chain)
                .bind(b256_bytes(log.tx_hash))
                .bind(log.log_index as i64)
                .bind(log.block_number as i64)
                .bind(b256_bytes(log.block_hash))
                .bind(u256_bytes(e.orderId))
                .bind(address_bytes(e.payer))
                .bind(address_bytes(e.token))
                .bind(u256_bytes(e.amount))
                .bind(i64::from(e.planId))
                .bind(i64::from(e.periods))
                .bind(matched)
                .bind(reason.clone())
                .bind(now as i64)
                .execute(&mut *conn)
                .await?;
            }
        }
        let key = payment_key(self.config.chain_id, log.tx_hash, log.log_index);
        let payload = serde_json::json!({
            "payment": key,
            "tx_hash": log.tx_hash,
            "block_number": log.block_number,
            "block_hash": log.block_hash,
            "order_id": e.orderId.to_string(),
            "payer": e.payer,
            "token": e.token,
            "amount": e.amount.to_string(),
            "plan_id": e.planId,
            "periods": e.periods,
            "confirmations_required": self.config.confirmations,
        });
        let id = outbox::event_id(&["payment.detected", &key, &log.block_hash.to_string()]);
        outbox::write(conn, &id, "payment.detected", &payload).await?;
        if let Some(reason) = reason {
            let mut payload = payload;
            payload["reason"] = serde_json::Value::String(reason);
            let id = outbox::event_id(&["payment.unmatched", &key]);
            outbox::write(conn, &id, "payment.unmatched", &payload).await?;
        }
        Ok(true)
    }

    /// Returns the order a log pays (or None with the reason it matches none).
    async fn match_order(&self, conn: &mut AnyConnection, log: &PaidLog) -> Result<(Option<i64>, Option<String>), WatchError> {
        let e = &log.event;
        let Ok(order_id) = i64::try_from(e.orderId) else {
            return Ok((None, Some("unknown order".into())));
        };
        let Some(row) = sqlx::query("SELECT chain_id, payer, token, amount, plan_id, periods FROM orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok((None, Some("unknown order".into())));
        };
        let same = row.try_get::<i64, _>("chain_id")? as u64 == self.config.chain_id
            && to_address(&row.try_get::<Vec<u8>, _>("payer")?, "orders.payer")? == e.payer
            && to_address(&row.try_get::<Vec<u8>, _>("token")?, "orders.token")? == e.token
            && to_u256(&row.try_get::<Vec<u8>, _>("amount")?, "orders.amount")? == e.amount
            && row.try_get::<i64, _>("plan_id")? == i64::from(e.planId)
            && row.try_get::<i64, _>("periods")? == i64::from(e.periods);
        if !same {
            return Ok((None, Some("payment does not match its order".into())));
        }
        Ok((Some(order_id), None))
    }

    /// Confirms detected payments at or below `deep`, activating matched ones.
    async fn confirm(&self, conn: &mut AnyConnection, deep: u64, now: u64) -> Result<usize, WatchError> {
        let rows = sqlx::query(
            "SELECT id, tx_hash, log_index, block_number, order_id, payer, token, plan_id, periods, matched_order \
             FROM payments WHERE chain_id = $1 AND status = 'detected' AND block_number <= $2 ORDER BY block_number, log_index",
        )
        .bind(self.config.chain_id as i64)
        .bind(deep as i64)
        .fetch_all(&mut *conn)
        .await?;
        let mut confirmed = 0;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let tx_hash = to_b256(&row.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?;
            let log_index = row.try_get::<i64, _>("log_index")? as u64;
            let key = payment_key(self.config.chain_id, tx_hash, log_index);
            let done = sqlx::query("UPDATE payments SET status = 'confirmed', confirmed_at = $1 WHERE id = $2 AND status = 'detected'")
                .bind(now as i64)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                continue;
            }
            confirmed += 1;
            let payer = to_address(&row.try_get::<Vec<u8>, _>("payer")?, "payments.payer")?;
            let order_id = to_u256(&row.try_get::<Vec<u8>, _>("order_id")?, "payments.order_id")?;
            outbox::write(conn, &outbox::event_id(&["payment.confirmed", &key]), "payment.confirmed", &serde_json::json!({
                "payment": key,
                "tx_hash": tx_hash,
                "block_number": row.try_get::<i64, _>("block_number")?,
                "order_id": order_id.to_string(),
                "payer": payer,
                "confirmations": self.config.confirmations,
            }))
            .await?;
            let Some(order) = row.try_get::<Option<i64>, _>("matched_order")? else { continue };
            sqlx::query("UPDATE orders SET status = 'paid' WHERE order_id = $1").bind(order).execute(&mut *conn).await?;
            let paid = activation::PaidOrder {
                payment_id: id,
                payment_key: key,
                wallet: payer,
                plan_id: row.try_get::<i64, _>("plan_id")? as u32,
                periods: row.try_get::<i64, _>("periods")? as u32,
                token: to_address(&row.try_get::<Vec<u8>, _>("token")?, "payments.token")?,
            };
            activation::activate(conn, &self.catalog, &paid, now).await?;
        }
        Ok(confirmed)
    }
}

/// Returns the stable key of a payment: `chain:tx_hash:log_index`.
pub fn payment_key(chain_id: u64, tx_hash: B256, log_index: u64) -> String {
    format!("{chain_id}:{tx_hash}:{log_index}")
}
