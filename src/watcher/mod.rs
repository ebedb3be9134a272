//! The payment watcher: reads `OrderPaid` logs from a persisted cursor, records payments
//! as `detected`, confirms them `N` blocks deep and activates their plans, and undoes
//! what a reorg removed. Each pass is *undo, apply, then acknowledge* in **one database
//! transaction**: roll back reorged blocks, record payments, confirm and activate, store
//! recent block hashes, move the cursor. A crash at any point loses nothing: the cursor
//! only moves with the effects it covers.
//!
//! anvil's log subscription does not report removed logs, so reorgs are found by comparing
//! the stored hash of recent blocks with the node's, at start-up and on every pass.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use tokio_util::sync::CancellationToken;

use crate::{
    billing::{activation, plans::Catalog},
    chain::{
        bindings::SubscriptionCheckout::OrderPaid,
        paid_log::{PaidLog, decode_logs},
    },
    clock::Clock,
    store::{Db, StoreError, outbox::NewEvent},
};

mod effects;
mod reorgs;
#[cfg(feature = "test-hooks")]
mod seed;

use crate::store::ledger::{self, BlockRow, PassTx, StoredPayment};

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
    Rpc(#[from] alloy::transports::TransportError),
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
        crate::chain::reorg_window(self.confirmations)
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

/// Logs a pass records and settles at a time: bounds the memory a wide range of busy
/// blocks needs, and lets one chunk's writes overlap the next chunk's event building.
const CHUNK: usize = 1_000;

/// The subscriptions a pass has read or planned, by wallet.
#[derive(Debug, Default)]
struct Known {
    subscriptions: HashMap<Address, activation::Subscription>,
    /// The customer references of the wallets read (and those bound in the pass).
    customers: HashMap<Address, crate::billing::customers::CustomerRef>,
    /// Wallets read from the database (with or without a subscription).
    read: HashSet<Address>,
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
    /// Logs recorded and settled at a time ([`CHUNK`]).
    chunk: usize,
    /// Activation times come from it.
    clock: Clock,
    /// The block range the current (or last) pass reads, for reports of failing passes.
    attempt: Arc<std::sync::Mutex<(u64, u64)>>,
    /// Passes in a row that failed ([`Self::run`]).
    failures: Arc<std::sync::atomic::AtomicU32>,
    /// The chain's nodes, when there may be several: each pass reads the one in use.
    nodes: Option<crate::chain::rpc::Nodes>,
    /// The service's public URL, which `payment.confirmed`'s `receipt_url` starts with
    /// (empty: the path alone).
    receipt_base: Arc<str>,
}

/// Consecutive failed passes after which each failure is logged as an error.
const LOUD_AFTER: u32 = 3;

impl Watcher {
    /// Returns a watcher; nothing runs until [`Watcher::run`] or [`Watcher::pass`].
    pub fn new(db: Db, provider: DynProvider, catalog: Arc<Catalog>, config: WatcherConfig) -> Self {
        let range = Arc::new(std::sync::atomic::AtomicU64::new(config.max_block_range.max(1)));
        Self {
            db,
            provider,
            catalog,
            config,
            range,
            successes: Default::default(),
            chunk: CHUNK,
            clock: Clock::system(),
            attempt: Default::default(),
            failures: Default::default(),
            nodes: None,
            receipt_base: Arc::from(""),
        }
    }

    /// Returns the watcher writing receipt urls under `base` (`http.public_url`).
    pub fn with_receipt_base(mut self, base: &str) -> Self {
        self.receipt_base = Arc::from(base.trim_end_matches('/'));
        self
    }

    /// Returns the watcher reading `nodes` (the service's RPC nodes) instead of the provider
    /// it was made with: each pass reads the node in use when it starts, and only that node,
    /// from its head to its last header. Nodes disagree for a moment as a matter of course
    /// (a fallback a few blocks behind the primary, or on the other side of a one-block
    /// reorg); a pass that mixed them would take one node's missing or different block for a
    /// reorg and roll back what the other had confirmed. A pass that fails on its node's
    /// transport moves the next pass to the next node.
    pub fn with_nodes(mut self, nodes: crate::chain::rpc::Nodes) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// Returns the watcher with `clock` for activation times instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Returns the watcher recording and settling `logs` logs at a time (default 1,000;
    /// tests use small chunks to cross chunk boundaries with a few payments).
    pub fn with_chunk_size(mut self, logs: usize) -> Self {
        self.chunk = logs.max(1);
        self
    }

    /// Runs passes until `cancel` fires: at once while behind the head, then on each new
    /// head (`heads`, e.g. a websocket subscription) or every poll interval.
    pub async fn run(&self, cancel: CancellationToken, mut heads: Option<tokio::sync::mpsc::Receiver<u64>>) {
        let mut failures = 0u32;
        loop {
            let wait = match self.pass().await {
                Ok(report) => {
                    if failures >= LOUD_AFTER {
                        tracing::info!(failures, "watcher passes succeed again");
                    }
                    failures = 0;
                    self.failures.store(0, std::sync::atomic::Ordering::Relaxed);
                    metrics::gauge!("tmai_watcher_consecutive_failures").set(0.0);
                    if !report.caught_up {
                        continue;
                    }
                    self.config.poll_interval
                }
                Err(error) => {
                    failures += 1;
                    self.failures.store(failures, std::sync::atomic::Ordering::Relaxed);
                    metrics::gauge!("tmai_watcher_consecutive_failures").set(f64::from(failures));
                    let (from, to) = self.attempted_range();
                    // A pass that keeps failing the same way is an operator's problem, not a
                    // blip: say which blocks and why, loudly, and keep trying.
                    if failures >= LOUD_AFTER {
                        tracing::error!(%error, cause = ?error, failures, from, to, "watcher pass keeps failing; retrying");
                    } else {
                        tracing::warn!(%error, failures, from, to, "watcher pass failed; retrying");
                    }
                    self.config.poll_interval * failures.min(10)
                }
            };
            if !crate::chain::wait_for_next_round(&cancel, wait, &mut heads).await {
                return;
            }
        }
    }

    /// Returns how many passes in a row have failed (0 after a success).
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns the block range the current (or last) pass reads.
    pub fn attempted_range(&self) -> (u64, u64) {
        *self.attempt.lock().expect("attempt lock")
    }

    /// Runs one pass: reorg check, one range of logs, confirmations, all in one transaction;
    /// on one node from start to end ([`Self::with_nodes`]).
    pub async fn pass(&self) -> Result<PassReport, WatchError> {
        let Some(nodes) = &self.nodes else { return self.pass_on_one_node().await };
        let (index, provider) = nodes.pinned();
        let pinned = Self { provider, ..self.clone() };
        let result = pinned.pass_on_one_node().await;
        if let Err(WatchError::Rpc(error)) = &result {
            nodes.failed(index, error);
        }
        result
    }

    /// [`Self::pass`] on `self.provider`'s node.
    async fn pass_on_one_node(&self) -> Result<PassReport, WatchError> {
        let head = self.provider.get_block_number().await?;
        let now = self.clock.now();
        let chain = self.config.chain_id;
        let mut report = PassReport { head, ..Default::default() };

        // Where the last pass left off, and whether the chain still has its blocks: read
        // outside the transaction (only this watcher writes them; the transaction checks
        // the cursor again), so no write waits on these RPC round trips.
        let mut t = std::time::Instant::now();
        let (cursor, stored) = ledger::position(&self.db, chain).await?;
        if let Some((tip, _)) = stored.first()
            && *tip > head
            && self.nodes.as_ref().is_some_and(|n| n.len() > 1)
        {
            // This node is behind blocks already read (a fallback that lags): it cannot say
            // whether they are still canonical, and its missing blocks are not a reorg. Wait
            // for it to catch up (or for the node read before to answer again). With one
            // node, a shorter chain is a reorg, judged as one below.
            tracing::debug!(head, tip, "the RPC node is behind the blocks already read; waiting for it");
            return Ok(PassReport { head, caught_up: true, ..Default::default() });
        }
        let fork = self.find_fork(&stored).await?;
        let mut next = cursor.unwrap_or(self.config.start_block);
        if let Some(fork) = fork {
            next = next.min(fork + 1);
        }
        phase("position+fork", &mut t);

        // Read one range of logs with the window's block hashes. They are independent
        // reads: fetch them at once. When the node refuses the range and it shrinks, the
        // hashes above the new end are dropped (a prefix of a linked run is still linked).
        let (logs, blocks) = if next <= head {
            let to = head.min(next + self.range.load(std::sync::atomic::Ordering::Relaxed) - 1);
            *self.attempt.lock().expect("attempt lock") = (next, to);
            let ((logs, to), mut hashes) = tokio::try_join!(self.fetch_logs(next, to), self.recent_hashes(next, to, head))?;
            hashes.retain(|b| b.number <= to);
            let by_number: HashMap<u64, B256> = hashes.iter().map(|b| (b.number, b.hash)).collect();
            if let Some(log) = logs.iter().find(|l| by_number.get(&l.block_number).is_some_and(|h| *h != l.block_hash)) {
                return Err(WatchError::Moved(format!("block {} changed while reading", log.block_number)));
            }
            next = to + 1;
            (logs, hashes)
        } else {
            (Vec::new(), Vec::new())
        };
        report.caught_up = next > head;
        phase("logs+hashes", &mut t);

        let mut tx = PassTx::begin(&self.db).await?;
        if tx.cursor(chain).await? != cursor {
            return Err(WatchError::Moved("another watcher moved the cursor during the pass".into()));
        }
        let mut events = Vec::new();
        // 1. Undo: what the reorg removed.
        if let Some(fork) = fork {
            report.reorged_to = Some(fork);
            report.reorged = self.roll_back(&mut tx, fork, now, &mut events).await?;
        }
        // 2. Apply: confirm what is now deep enough (and was read), then record the new logs
        //    (those already deep as confirmed at once) and activate the matched ones, a
        //    chunk at a time (bounded memory; each payment's events stay in their order).
        let deep = (head + 1).saturating_sub(self.config.confirmations).min(next.saturating_sub(1));
        let older = tx.detected_up_to(chain, deep).await?;
        tx.confirm(older.iter().map(|p| p.id).collect(), now).await?;
        report.confirmed = older.len();
        // One mined again after a deep reorg was confirmed (and reported) before.
        events.extend(older.iter().filter(|c| !c.was_confirmed()).map(|c| effects::confirmed_event(chain, c, self.config.confirmations, &self.receipt_base)));
        let mut known = Known::default();
        let mut pending = self.settle(&mut tx, &older, events, &mut known, now).await?;
        for chunk in logs.chunks(self.chunk) {
            let (detected, confirming, writes) = self.record(&mut tx, chunk, deep, pending, &mut known, now).await?;
            report.detected += detected;
            report.confirmed += confirming;
            pending = writes;
        }
        phase("record+settle", &mut t);
        // 3. Take back what confirmed payments the chain no longer holds had bought, once
        //    the new branch is N deep where they stood and the whole of it has been read
        //    without finding them again.
        if report.caught_up {
            pending = self.take_back(&mut tx, deep, pending, &mut known, now).await?;
        }
        let due = tx.due_downgrades(now).await?;
        let mut customers = if due.is_empty() { HashMap::new() } else { tx.customers(due.iter().map(|s| s.wallet).collect()).await? };
        // A wallet this pass bound is not in the database yet.
        for s in &due {
            if let Some(customer) = known.customers.get(&s.wallet) {
                customers.entry(s.wallet).or_insert_with(|| customer.clone());
            }
        }
        let downgrades = activation::plan_downgrades(&self.catalog, due, &customers);
        pending.subscriptions.extend(downgrades.subscriptions);
        pending.jobs.extend(downgrades.jobs);
        pending.events.extend(downgrades.events);
        tx.write(pending, now).await?;
        phase("downgrades+write", &mut t);
        // 4. Acknowledge: the window's blocks and the cursor move with the effects.
        tx.save_blocks(chain, blocks, head.saturating_sub(self.config.window())).await?;
        tx.set_cursor(chain, next).await?;
        tx.commit(&self.db).await?;
        phase("blocks+cursor+commit", &mut t);
        if report.detected + report.confirmed + report.reorged > 0 {
            tracing::info!(head, next, detected = report.detected, confirmed = report.confirmed, reorged = report.reorged, "watcher pass");
        }
        Ok(report)
    }

    /// Records a chunk of logs as payments matched to their orders (a reorged one found
    /// again turns back to detected, or confirmed, in its new block) with
    /// `payment.detected` and, for payments that match no order, `payment.unmatched`; those
    /// recorded as confirmed get `payment.confirmed` and are settled ([`Self::settle`]).
    /// `pending`, the previous chunk's writes, goes to the database while this chunk's
    /// events are built (on SQLite the database works on its own thread meanwhile). Returns
    /// the payments recorded, those confirmed, and this chunk's writes, still to be written.
    async fn record(
        &self,
        tx: &mut PassTx,
        logs: &[PaidLog],
        deep: u64,
        pending: activation::Writes,
        known: &mut Known,
        now: u64,
    ) -> Result<(usize, usize, activation::Writes), WatchError> {
        let (chain, confirmations) = (self.config.chain_id, self.config.confirmations);
        let (logs, moved) = self.relocate(tx, logs, deep, now).await?;
        let orders = tx.orders(effects::order_ids(&logs)).await?;
        let paid_by = tx.paid_by(chain, effects::paid_orders(&orders)).await?;
        let rows = effects::new_payments(chain, logs, &orders, &paid_by, deep);
        let build = async {
            rows.iter()
                .map(|row| {
                    let mut detected = Vec::with_capacity(1);
                    effects::detected_events(chain, row, confirmations, &mut detected);
                    (detected, row.confirmed.then(|| effects::confirmed_event(chain, &effects::recorded(0, row), confirmations, &self.receipt_base)))
                })
                .collect::<Vec<_>>()
        };
        let (written, built) = tokio::join!(tx.write(pending, now), build);
        written?;
        let ids = tx.insert_payments(chain, rows.clone(), now).await?;
        let (mut events, mut confirmed_events, mut confirming) = (Vec::with_capacity(rows.len()), Vec::new(), Vec::new());
        let mut recorded = 0;
        for (p, detected, confirmed) in moved {
            recorded += 1;
            events.extend(detected);
            if let Some(event) = confirmed {
                confirming.push(p);
                confirmed_events.push(event);
            }
        }
        for ((row, id), (detected, confirmed)) in rows.iter().zip(ids).zip(built) {
            let Some(id) = id else { continue };
            recorded += 1;
            events.extend(detected);
            if let Some(event) = confirmed {
                confirming.push(effects::recorded(id, row));
                confirmed_events.push(event);
            }
        }
        events.append(&mut confirmed_events);
        let writes = self.settle(tx, &confirming, events, known, now).await?;
        Ok((recorded, confirming.len(), writes))
    }

    /// Marks the orders of confirmed payments paid and plans the activation of their plans
    /// in chain order; returns what to write: `events` first, then the `subscription.*`
    /// events. `known` holds the subscriptions read or planned so far in the pass.
    async fn settle(
        &self,
        tx: &mut PassTx,
        confirming: &[StoredPayment],
        events: Vec<NewEvent>,
        known: &mut Known,
        now: u64,
    ) -> Result<activation::Writes, WatchError> {
        let chain = self.config.chain_id;
        let paid: Vec<activation::PaidOrder> = confirming.iter().filter_map(|c| effects::paid_order(chain, c)).collect();
        let mut writes = activation::Writes::default();
        if !paid.is_empty() {
            tx.orders_paid(confirming.iter().filter_map(|c| c.matched_order).collect()).await?;
            let done: HashSet<i64> = tx.activated(paid.iter().map(|p| p.payment_id).collect()).await?;
            let mut unread: Vec<Address> = paid.iter().map(|p| p.wallet).filter(|w| !known.read.contains(w)).collect();
            unread.sort();
            unread.dedup();
            if !unread.is_empty() {
                known.subscriptions.extend(tx.subscriptions(unread.clone()).await?.into_iter().map(|s| (s.wallet, s)));
                known.customers.extend(tx.customers(unread.clone()).await?);
                known.read.extend(unread);
            }
            writes = activation::plan_activations(&self.catalog, &paid, &mut known.subscriptions, &mut known.customers, &done, now);
        }
        writes.events.splice(0..0, events);
        Ok(writes)
    }

    /// Fetches `OrderPaid` logs in `[from, to]`, halving the range while the provider
    /// refuses it; returns the logs and the range's actual end.
    async fn fetch_logs(&self, from: u64, mut to: u64) -> Result<(Vec<PaidLog>, u64), WatchError> {
        loop {
            let filter = Filter::new().address(self.config.checkout).event_signature(OrderPaid::SIGNATURE_HASH).from_block(from).to_block(to);
            match self.provider.get_logs(&filter).await {
                Ok(logs) => {
                    self.grow_range_after_successes();
                    return Ok((decode_logs(&logs, self.config.checkout), to));
                }
                Err(error) if to > from => {
                    let half = (to - from).div_ceil(2).max(1);
                    self.range.store(half, std::sync::atomic::Ordering::Relaxed);
                    self.successes.store(0, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(%error, from, to, half, "eth_getLogs refused the range; shrinking it");
                    to = from + half - 1;
                }
                Err(error) => return Err(error.into()),
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

    /// Returns the blocks in `[from, to]` that fall within the reorg window below `head`,
    /// checked to be linked by their parent hashes.
    async fn recent_hashes(&self, from: u64, to: u64, head: u64) -> Result<Vec<BlockRow>, WatchError> {
        use futures::{StreamExt, TryStreamExt};
        let start = from.max(head.saturating_sub(self.config.window()));
        // Up to 16 headers in flight: one by one, a 66-block window cost ~40 ms of round
        // trips in a backfill pass. `buffered` keeps them in block order.
        let out: Vec<BlockRow> = futures::stream::iter(start..=to)
            .map(|number| async move {
                let block = self.provider.get_block_by_number(number.into()).await?.ok_or_else(|| WatchError::Moved(format!("block {number} disappeared")))?;
                Ok::<_, WatchError>(BlockRow { number, hash: block.header.hash, parent_hash: block.header.parent_hash })
            })
            .buffered(16)
            .try_collect()
            .await?;
        for pair in out.windows(2) {
            if pair[1].parent_hash != pair[0].hash {
                return Err(WatchError::Moved(format!("block {} does not extend {}", pair[1].number, pair[0].number)));
            }
        }
        Ok(out)
    }
}
