//! The payment watcher: reads `OrderPaid` logs from a persisted cursor, records payments
//! as `detected`, confirms them `N` blocks deep and activates their plans, and undoes
//! what a reorg removed. Each pass is *undo, apply, then acknowledge* in **one database
//! transaction**: roll back reorged blocks, record payments, confirm and activate, store
//! recent block hashes, move the cursor. A crash at any point loses nothing: the cursor
//! only moves with the effects it covers.
//!
//! anvil's log subscription does not report removed logs, so reorgs are found by comparing
//! the stored hash of recent blocks with the node's, at start-up and on every pass.

use std::{collections::HashMap, sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use sqlx::{AnyConnection, Row};
use tokio_util::sync::CancellationToken;

use super::{
    bindings::SubscriptionCheckout::OrderPaid,
    paid_log::{PaidLog, decode_logs, payment_key},
};
use crate::{
    billing::{activation, plans::Catalog},
    store::{
        Db, StoreError, address_bytes, b256_bytes,
        bulk::{Value, execute_in, fetch_in, insert},
        outbox::{self, NewEvent},
        to_address, to_b256, to_u256, u256_bytes, unix_now,
    },
};

/// Logs the time since `t` for one phase of a pass at debug level
/// (`RUST_LOG=tmai_pay::watcher::phases=debug`), then restarts `t`.
fn phase(label: &str, t: &mut std::time::Instant) {
    tracing::debug!(target: "tmai_pay::watcher::phases", phase = label, ms = t.elapsed().as_secs_f64() * 1e3);
    *t = std::time::Instant::now();
}

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
    /// Successful fetches since the range last changed (it grows back after a run of them).
    successes: Arc<std::sync::atomic::AtomicU64>,
}

impl Watcher {
    /// Returns a watcher; nothing runs until [`Watcher::run`] or [`Watcher::pass`].
    pub fn new(db: Db, provider: DynProvider, catalog: Arc<Catalog>, config: WatcherConfig) -> Self {
        let range = Arc::new(std::sync::atomic::AtomicU64::new(config.max_block_range.max(1)));
        Self { db, provider, catalog, config, range, successes: Default::default() }
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

        let mut t = std::time::Instant::now();
        let mut tx = self.db.begin_write().await?;
        phase("begin", &mut t);
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
            phase("fork", &mut t);
            // The logs and the window's block hashes are independent reads: fetch them at
            // once. When the node refuses the range and it shrinks, the hashes above the
            // new end are dropped (a prefix of a linked run of blocks is still linked).
            let ((logs, to), mut hashes) = tokio::try_join!(self.fetch_logs(next, to), self.recent_hashes(next, to, head))?;
            hashes.retain(|(_, (number, _))| *number <= to);
            phase("logs+hashes", &mut t);
            for log in &logs {
                if let Some((hash, _)) = hashes.iter().find(|(_, (n, _))| *n == log.block_number)
                    && *hash != log.block_hash {
                        return Err(WatchError::Moved(format!("block {} changed while reading", log.block_number)));
                    }
            }
            report.detected = self.record_all(&mut tx, &logs, now).await?;
            phase("record_all", &mut t);
            let blocks: Vec<Vec<Value>> = hashes
                .iter()
                .map(|(hash, (number, parent))| {
                    vec![Value::I64(chain), Value::I64(*number as i64), Value::Bytes(b256_bytes(*hash)), Value::Bytes(b256_bytes(*parent))]
                })
                .collect();
            insert(
                &mut tx,
                "INSERT INTO chain_blocks (chain_id, number, hash, parent_hash)",
                &blocks,
                "ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash, parent_hash = excluded.parent_hash",
            )
            .await?;
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
        phase("blocks", &mut t);
        report.confirmed = self.confirm(&mut tx, deep.min(next.saturating_sub(1)), now).await?;
        phase("confirm", &mut t);
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
        phase("downgrades+cursor", &mut t);
        tx.commit().await?;
        phase("commit", &mut t);
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
                Ok(logs) => {
                    self.grow_range_after_successes();
                    return Ok((decode_logs(&logs), to));
                }
                Err(error) if to > from => {
                    let half = (to - from).div_ceil(2).max(1);
                    self.range.store(half, std::sync::atomic::Ordering::Relaxed);
                    self.successes.store(0, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(%error, from, to, half, "eth_getLogs refused the range; shrinking it");
                    to = from + half - 1;
                }
                Err(error) => return Err(WatchError::Rpc(error.to_string())),
            }
        }
    }

    /// Returns the `eth_getLogs` range the watcher asks for now.
    pub fn block_range(&self) -> u64 {
        self.range.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Doubles a shrunk range (up to the configured maximum) after 16 successful fetches
    /// in a row, so a transient refusal does not slow the watcher for good; a provider with
    /// a fixed limit costs one refused call per 16 passes.
    fn grow_range_after_successes(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let range = self.range.load(Relaxed);
        if range >= self.config.max_block_range {
            return;
        }
        if self.successes.fetch_add(1, Relaxed) + 1 >= 16 {
            self.range.store((range * 2).min(self.config.max_block_range), Relaxed);
            self.successes.store(0, Relaxed);
        }
    }

    /// Returns (hash, (number, parent)) of the blocks in `[from, to]` that fall within the
    /// reorg window below `head`.
    async fn recent_hashes(&self, from: u64, to: u64, head: u64) -> Result<Vec<(B256, (u64, B256))>, WatchError> {
        use futures::{StreamExt, TryStreamExt};
        let start = from.max(head.saturating_sub(self.config.window()));
        // Up to 16 headers in flight: one by one, a 66-block window cost ~40 ms of round
        // trips in a backfill pass. `buffered` keeps them in block order.
        let out: Vec<(B256, (u64, B256))> = futures::stream::iter(start..=to)
            .map(|number| async move {
                let block = self
                    .provider
                    .get_block_by_number(number.into())
                    .await
                    .map_err(|e| WatchError::Rpc(e.to_string()))?
                    .ok_or_else(|| WatchError::Moved(format!("block {number} disappeared")))?;
                Ok::<_, WatchError>((block.header.hash, (number, block.header.parent_hash)))
            })
            .buffered(16)
            .try_collect()
            .await?;
        for pair in out.windows(2) {
            if pair[1].1.1 != pair[0].0 {
                return Err(WatchError::Moved(format!("block {} does not extend {}", pair[1].1.0, pair[0].1.0)));
            }
        }
        Ok(out)
    }

    /// Records logs as detected payments (a reorged one found again turns back to
    /// detected in its new block), matched to their orders; writes `payment.detected` and,
    /// for payments that match no order, `payment.unmatched`. Set-based: one read of the
    /// orders, one upsert, one event insert. Returns the rows inserted or re-detected.
    async fn record_all(&self, conn: &mut AnyConnection, logs: &[PaidLog], now: u64) -> Result<usize, WatchError> {
        if logs.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Value> = logs.iter().filter_map(|l| i64::try_from(l.event.orderId).ok()).map(Value::I64).collect();
        let mut orders = HashMap::new();
        for row in fetch_in(conn, "SELECT order_id, chain_id, payer, token, amount, plan_id, periods FROM orders WHERE order_id IN", "", &[], &ids).await? {
            let order = StoredOrder {
                chain_id: row.try_get::<i64, _>("chain_id")? as u64,
                payer: to_address(&row.try_get::<Vec<u8>, _>("payer")?, "orders.payer")?,
                token: to_address(&row.try_get::<Vec<u8>, _>("token")?, "orders.token")?,
                amount: to_u256(&row.try_get::<Vec<u8>, _>("amount")?, "orders.amount")?,
                plan_id: row.try_get::<i64, _>("plan_id")? as u32,
                periods: row.try_get::<i64, _>("periods")? as u32,
            };
            orders.insert(row.try_get::<i64, _>("order_id")?, order);
        }
        let mut t = std::time::Instant::now();
        let chain = self.config.chain_id as i64;
        let mut rows = Vec::with_capacity(logs.len());
        let mut events = Vec::with_capacity(logs.len());
        for log in logs {
            let e = &log.event;
            let (matched, reason) = self.match_order(&orders, log);
            rows.push(vec![
                Value::I64(chain),
                Value::Bytes(b256_bytes(log.tx_hash)),
                Value::I64(log.log_index as i64),
                Value::I64(log.block_number as i64),
                Value::Bytes(b256_bytes(log.block_hash)),
                Value::Bytes(u256_bytes(e.orderId)),
                Value::Bytes(address_bytes(e.payer)),
                Value::Bytes(address_bytes(e.token)),
                Value::Bytes(u256_bytes(e.amount)),
                Value::I64(i64::from(e.planId)),
                Value::I64(i64::from(e.periods)),
                Value::Text("detected".into()),
                Value::OptI64(matched),
                Value::OptText(reason.clone()),
                Value::I64(now as i64),
            ]);
            let key = payment_key(self.config.chain_id, log.tx_hash, log.log_index);
            let data = serde_json::json!({
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
            let unmatched = reason.map(|reason| {
                let mut data = data.clone();
                data["reason"] = serde_json::Value::String(reason);
                NewEvent { id: outbox::event_id(&["payment.unmatched", &key]), event_type: "payment.unmatched", data }
            });
            let id = outbox::event_id(&["payment.detected", &key, &log.block_hash.to_string()]);
            events.push(NewEvent { id, event_type: "payment.detected", data });
            events.extend(unmatched);
        }
        phase("  rec: build", &mut t);
        let (_, changed) = insert(
            conn,
            "INSERT INTO payments (chain_id, tx_hash, log_index, block_number, block_hash, order_id, payer, token, amount, \
             plan_id, periods, status, matched_order, unmatched_reason, detected_at)",
            &rows,
            "ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET status = 'detected', \
             block_number = excluded.block_number, block_hash = excluded.block_hash WHERE payments.status = 'reorged'",
        )
        .await?;
        phase("  rec: insert payments", &mut t);
        outbox::write_all(conn, &events).await?;
        phase("  rec: outbox", &mut t);
        Ok(changed as usize)
    }

    /// Returns the order a log pays (or None with the reason it matches none).
    fn match_order(&self, orders: &HashMap<i64, StoredOrder>, log: &PaidLog) -> (Option<i64>, Option<String>) {
        let e = &log.event;
        let Some((id, order)) = i64::try_from(e.orderId).ok().and_then(|id| orders.get(&id).map(|o| (id, o))) else {
            return (None, Some("unknown order".into()));
        };
        let same = order.chain_id == self.config.chain_id
            && order.payer == e.payer
            && order.token == e.token
            && order.amount == e.amount
            && order.plan_id == e.planId
            && order.periods == e.periods;
        if same { (Some(id), None) } else { (None, Some("payment does not match its order".into())) }
    }

    /// Confirms detected payments at or below `deep` and activates matched ones, with
    /// set-based updates.
    async fn confirm(&self, conn: &mut AnyConnection, deep: u64, now: u64) -> Result<usize, WatchError> {
        let rows = sqlx::query(
            "SELECT id, tx_hash, log_index, block_number, order_id, payer, token, plan_id, periods, matched_order \
             FROM payments WHERE chain_id = $1 AND status = 'detected' AND block_number <= $2 ORDER BY block_number, log_index",
        )
        .bind(self.config.chain_id as i64)
        .bind(deep as i64)
        .fetch_all(&mut *conn)
        .await?;
        let mut t = std::time::Instant::now();
        if rows.is_empty() {
            return Ok(0);
        }
        let (mut ids, mut orders, mut events, mut paid) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let tx_hash = to_b256(&row.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?;
            let key = payment_key(self.config.chain_id, tx_hash, row.try_get::<i64, _>("log_index")? as u64);
            let payer = to_address(&row.try_get::<Vec<u8>, _>("payer")?, "payments.payer")?;
            ids.push(Value::I64(id));
            events.push(NewEvent {
                id: outbox::event_id(&["payment.confirmed", &key]),
                event_type: "payment.confirmed",
                data: serde_json::json!({
                    "payment": key,
                    "tx_hash": tx_hash,
                    "block_number": row.try_get::<i64, _>("block_number")?,
                    "order_id": to_u256(&row.try_get::<Vec<u8>, _>("order_id")?, "payments.order_id")?.to_string(),
                    "payer": payer,
                    "confirmations": self.config.confirmations,
                }),
            });
            if let Some(order) = row.try_get::<Option<i64>, _>("matched_order")? {
                orders.push(Value::I64(order));
                paid.push(activation::PaidOrder {
                    payment_id: id,
                    payment_key: key,
                    wallet: payer,
                    plan_id: row.try_get::<i64, _>("plan_id")? as u32,
                    periods: row.try_get::<i64, _>("periods")? as u32,
                    token: to_address(&row.try_get::<Vec<u8>, _>("token")?, "payments.token")?,
                });
            }
        }
        phase("  conf: select+build", &mut t);
        let confirmed = execute_in(
            conn,
            "UPDATE payments SET status = 'confirmed', confirmed_at = $1 WHERE status = 'detected' AND id IN",
            "",
            &[Value::I64(now as i64)],
            &ids,
        )
        .await?;
        phase("  conf: update payments", &mut t);
        execute_in(conn, "UPDATE orders SET status = 'paid' WHERE order_id IN", "", &[], &orders).await?;
        phase("  conf: update orders", &mut t);
        outbox::write_all(conn, &events).await?;
        phase("  conf: outbox", &mut t);
        activation::activate_all(conn, &self.catalog, &paid, now).await?;
        phase("  conf: activate_all", &mut t);
        Ok(confirmed as usize)
    }
}

/// An order as stored, for matching payments.
#[derive(Debug)]
struct StoredOrder {
    chain_id: u64,
    payer: Address,
    token: Address,
    amount: alloy::primitives::U256,
    plan_id: u32,
    periods: u32,
}
