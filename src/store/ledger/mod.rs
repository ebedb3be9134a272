//! `payments`, `payment_reversals`, `chain_cursor` and `chain_blocks`: the ledger of what
//! the chain paid. The watcher's passes write it through [`PassTx`]; the merchant's
//! payment list, a checkout's progress and refunds read it ([`payments`]).
//!
//! A pass's writes are typed operations on one transaction, with one implementation per
//! database: sqlx set-based statements ([`any`], PostgreSQL and SQLite without a file)
//! and rusqlite statements prepared once and bound row by row on the process's own SQLite
//! connection ([`sqlite`]), which is what lets a backfill into an SQLite file keep up with
//! the node. The pass logic ([`crate::watcher`]) is written once against [`PassTx`]; both
//! implementations run the same tests. The other tables a pass touches (`orders`,
//! `subscriptions`, `activations`, `badge_jobs`, `outbox_events`) are written through
//! their owners.

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, B256};

use crate::chain::paid_log::PaidLog;
use crate::{
    billing::activation::Writes,
    ids::{CheckoutId, OrderId},
    states::PaymentStatus,
    store::{
        Db, StoreError, WriteTx,
        sqlite::SqliteTx,
        subscriptions::{ActivationKind, Subscription},
    },
};

mod any;
pub mod payments;
mod sql;
mod sqlite;

/// What one payment's activation did, as stored (`activations`, owned by
/// [`crate::store::subscriptions`]).
pub(crate) use crate::store::subscriptions::PastActivation;

/// An order as stored, for matching payments.
pub(crate) use crate::store::orders::OrderTerms as StoredOrder;

/// A payment to record: the log, the order it pays (or why none), and whether it is deep
/// enough to be recorded as confirmed at once.
#[derive(Debug, Clone)]
pub(crate) struct NewPayment {
    pub(crate) log: PaidLog,
    pub(crate) matched_order: Option<OrderId>,
    pub(crate) unmatched_reason: Option<&'static str>,
    pub(crate) confirmed: bool,
    /// The matched order's checkout.
    pub(crate) checkout_id: Option<CheckoutId>,
    /// The matched order's USD value at its locked rate (USD-priced orders).
    pub(crate) usd: Option<crate::store::orders::OrderUsd>,
    /// The matched order's customer.
    pub(crate) customer_ref: Option<crate::billing::customers::CustomerRef>,
}

/// The `payments` columns a [`StoredPayment`] is read from, in its order (both
/// implementations decode them).
const PAYMENT_COLUMNS: &str = "id, tx_hash, log_index, block_number, block_hash, order_id, payer, token, plan_id, periods, \
     matched_order, status, revision, confirmed_at, orphaned_at, \
     (SELECT o.checkout_id FROM orders o WHERE o.order_id = payments.matched_order) AS checkout_id, \
     (SELECT o.usd_micro FROM orders o WHERE o.order_id = payments.matched_order) AS usd_micro, \
     (SELECT o.rate_usd FROM orders o WHERE o.order_id = payments.matched_order) AS rate_usd, \
     (SELECT o.customer_ref FROM orders o WHERE o.order_id = payments.matched_order) AS customer_ref, amount";

/// A stored payment: one the pass confirms, or one a reorg removed.
#[derive(Debug, Clone)]
pub(crate) struct StoredPayment {
    pub(crate) id: i64,
    pub(crate) tx_hash: B256,
    pub(crate) log_index: u64,
    pub(crate) block_number: u64,
    pub(crate) block_hash: B256,
    pub(crate) order_id: OrderId,
    pub(crate) payer: Address,
    pub(crate) token: Address,
    pub(crate) plan_id: u32,
    pub(crate) periods: u32,
    pub(crate) matched_order: Option<OrderId>,
    pub(crate) status: PaymentStatus,
    /// Times what the payment bought was taken back (part of its later event ids).
    pub(crate) revision: u32,
    /// When it was first confirmed; kept while a reorg has it off the chain or waiting to
    /// be confirmed again, so it is never confirmed or activated twice.
    pub(crate) confirmed_at: Option<u64>,
    /// Set while a reorg deeper than the confirmations has this confirmed payment off the
    /// chain (its effects kept until it is found again or taken back).
    pub(crate) orphaned_at: Option<u64>,
    /// The matched order's checkout.
    pub(crate) checkout_id: Option<CheckoutId>,
    /// The matched order's USD value at its locked rate (USD-priced orders).
    pub(crate) usd: Option<crate::store::orders::OrderUsd>,
    /// The matched order's customer.
    pub(crate) customer_ref: Option<crate::billing::customers::CustomerRef>,
    /// Amount paid, in the token's smallest unit.
    pub(crate) amount: alloy::primitives::U256,
}

impl StoredPayment {
    /// Whether this payment was confirmed before (and so holds, or held, its effects).
    pub(crate) fn was_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

/// A reorged payment whose log the chain holds again: the row moves there.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub(crate) id: i64,
    pub(crate) log_index: u64,
    pub(crate) block_number: u64,
    pub(crate) block_hash: B256,
    /// `detected`, or `confirmed` when it is already deep enough.
    pub(crate) status: PaymentStatus,
    pub(crate) confirmed_at: Option<u64>,
}

/// A vanished payment's effects, taken back: the row for `payment_reversals`.
#[derive(Debug, Clone)]
pub(crate) struct Reversal {
    pub(crate) payment_id: i64,
    pub(crate) revision: u32,
    pub(crate) wallet: Address,
    pub(crate) order: Option<OrderId>,
    pub(crate) kind: Option<ActivationKind>,
    pub(crate) plan_id: Option<u32>,
    pub(crate) activated_expires_at: Option<u64>,
    pub(crate) expires_before: Option<u64>,
    pub(crate) expires_after: Option<u64>,
}

/// A recent canonical block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRow {
    pub(crate) number: u64,
    pub(crate) hash: B256,
    pub(crate) parent_hash: B256,
}

/// Returns the watcher's cursor and the stored recent blocks, highest first (read outside
/// any transaction: only the watcher writes them, and a pass checks the cursor again
/// inside its transaction).
pub(crate) async fn position(db: &Db, chain_id: u64) -> Result<(Option<u64>, Vec<(u64, B256)>), StoreError> {
    any::position(db.pool(), chain_id).await
}

/// Returns the next block the watcher reads on `chain_id`, if it has read any (outside any
/// transaction: what the metrics and readiness show).
pub async fn next_block(db: &Db, chain_id: u64) -> Result<Option<u64>, StoreError> {
    any::cursor(&mut *db.pool().acquire().await?, chain_id).await
}

/// One pass's transaction.
#[derive(Debug)]
pub(crate) enum PassTx {
    /// sqlx on the pool.
    Any(WriteTx),
    /// rusqlite on the process's own SQLite connection.
    Sqlite(SqliteTx),
}

/// Calls the operation on whichever backend holds the transaction, and logs its time at
/// debug level (`RUST_LOG=tmai_pay::watcher::ops=debug`: where a pass's database time
/// goes; the target keeps the watcher's name, which is what operators filter on).
macro_rules! dispatch {
    ($self:ident, $op:ident($($arg:expr),*)) => {{
        let started = std::time::Instant::now();
        let result = match $self {
            PassTx::Any(tx) => any::$op(tx, $($arg),*).await,
            PassTx::Sqlite(tx) => sqlite::$op(tx, $($arg),*).await,
        };
        tracing::debug!(target: "tmai_pay::watcher::ops", op = stringify!($op), ms = started.elapsed().as_secs_f64() * 1e3);
        result
    }};
}

impl PassTx {
    /// Begins a pass's write transaction on `db`.
    pub(crate) async fn begin(db: &Db) -> Result<Self, StoreError> {
        match db.begin_sqlite().await {
            Some(tx) => Ok(Self::Sqlite(tx?)),
            None => Ok(Self::Any(db.begin_write().await?)),
        }
    }

    /// Returns the next block to read, if a pass ran before.
    pub(crate) async fn cursor(&mut self, chain_id: u64) -> Result<Option<u64>, StoreError> {
        dispatch!(self, cursor(chain_id))
    }

    /// Marks the payments above `fork` reorged (those confirmed before also orphaned at
    /// `now`: their effects stay until they come back or are taken back) and forgets the
    /// blocks above it; returns the payments as they were.
    pub(crate) async fn roll_back(&mut self, chain_id: u64, fork: u64, now: u64) -> Result<Vec<StoredPayment>, StoreError> {
        dispatch!(self, roll_back(chain_id, fork, now))
    }

    /// Returns the reorged payments of these transactions.
    pub(crate) async fn reorged_of(&mut self, chain_id: u64, tx_hashes: Vec<B256>) -> Result<Vec<StoredPayment>, StoreError> {
        dispatch!(self, reorged_of(chain_id, tx_hashes))
    }

    /// Moves reorged payments to where the chain holds their logs now.
    pub(crate) async fn relocate(&mut self, moves: Vec<Move>) -> Result<(), StoreError> {
        if moves.is_empty() {
            return Ok(());
        }
        dispatch!(self, relocate(moves))
    }

    /// Returns, for the orders among `ids` that a confirmed payment paid, its transaction.
    pub(crate) async fn paid_by(&mut self, chain_id: u64, ids: Vec<OrderId>) -> Result<HashMap<OrderId, B256>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        dispatch!(self, paid_by(chain_id, ids))
    }

    /// Returns the orphaned payments (confirmed, then reorged out) at or below `deep`.
    pub(crate) async fn orphans_up_to(&mut self, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
        dispatch!(self, orphans_up_to(chain_id, deep))
    }

    /// Returns the stored activations of these payments.
    pub(crate) async fn activations_of(&mut self, payment_ids: Vec<i64>) -> Result<HashMap<i64, PastActivation>, StoreError> {
        dispatch!(self, activations_of(payment_ids))
    }

    /// Records taken-back payments: their activations move to `payment_reversals`, the
    /// payments count a revision and forget their confirmation, their orders open again
    /// (unless another payment paid them).
    pub(crate) async fn take_back(&mut self, chain_id: u64, reversals: Vec<Reversal>, now: u64) -> Result<(), StoreError> {
        if reversals.is_empty() {
            return Ok(());
        }
        dispatch!(self, take_back(chain_id, reversals, now))
    }

    /// Returns the detected payments at or below `deep`, in chain order.
    pub(crate) async fn detected_up_to(&mut self, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
        dispatch!(self, detected_up_to(chain_id, deep))
    }

    /// Marks detected payments confirmed (keeping the first confirmation time of one
    /// confirmed before).
    pub(crate) async fn confirm(&mut self, ids: Vec<i64>, now: u64) -> Result<u64, StoreError> {
        dispatch!(self, confirm(ids, now))
    }

    /// Returns the stored orders among `ids`.
    pub(crate) async fn orders(&mut self, ids: Vec<OrderId>) -> Result<HashMap<OrderId, StoredOrder>, StoreError> {
        dispatch!(self, orders(ids))
    }

    /// Records payments; returns, row for row, the payment id of each one inserted or
    /// found again after a reorg (`None`: already recorded).
    pub(crate) async fn insert_payments(&mut self, chain_id: u64, rows: Vec<NewPayment>, now: u64) -> Result<Vec<Option<i64>>, StoreError> {
        dispatch!(self, insert_payments(chain_id, rows, now))
    }

    /// Marks orders paid.
    pub(crate) async fn orders_paid(&mut self, ids: Vec<OrderId>) -> Result<(), StoreError> {
        dispatch!(self, orders_paid(ids))
    }

    /// Returns which of the payments have activated before.
    pub(crate) async fn activated(&mut self, payment_ids: Vec<i64>) -> Result<HashSet<i64>, StoreError> {
        dispatch!(self, activated(payment_ids))
    }

    /// Returns the subscriptions of the wallets that have one.
    pub(crate) async fn subscriptions(&mut self, wallets: Vec<Address>) -> Result<Vec<Subscription>, StoreError> {
        dispatch!(self, subscriptions(wallets))
    }

    /// Returns the customer references of the wallets bound to one.
    pub(crate) async fn customers(&mut self, wallets: Vec<Address>) -> Result<HashMap<Address, crate::billing::customers::CustomerRef>, StoreError> {
        dispatch!(self, customers(wallets))
    }

    /// Returns the subscriptions whose scheduled downgrade is due at `now`.
    pub(crate) async fn due_downgrades(&mut self, now: u64) -> Result<Vec<Subscription>, StoreError> {
        dispatch!(self, due_downgrades(now))
    }

    /// Writes planned activations: their rows, the subscriptions, the badge jobs and the
    /// events.
    pub(crate) async fn write(&mut self, writes: Writes, now: u64) -> Result<(), StoreError> {
        if writes.activations.is_empty()
            && writes.subscriptions.is_empty()
            && writes.jobs.is_empty()
            && writes.events.is_empty()
            && writes.customers.is_empty()
            && writes.receipts.is_empty()
        {
            return Ok(());
        }
        dispatch!(self, write(writes, now))
    }

    /// Stores the recent blocks and forgets those below `keep_from`.
    pub(crate) async fn save_blocks(&mut self, chain_id: u64, blocks: Vec<BlockRow>, keep_from: u64) -> Result<(), StoreError> {
        dispatch!(self, save_blocks(chain_id, blocks, keep_from))
    }

    /// Moves the cursor.
    pub(crate) async fn set_cursor(&mut self, chain_id: u64, next: u64) -> Result<(), StoreError> {
        dispatch!(self, set_cursor(chain_id, next))
    }

    /// Commits the pass; read caches then drop what they hold.
    pub(crate) async fn commit(self, db: &Db) -> Result<(), StoreError> {
        match self {
            Self::Any(tx) => Ok(tx.commit().await?),
            Self::Sqlite(tx) => {
                tx.commit().await?;
                db.committed_outside(true);
                Ok(())
            }
        }
    }
}

/// Decodes `payments.status`.
fn payment_status(text: &str) -> Result<PaymentStatus, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt("payments.status"))
}

/// Decodes `payments.order_id`.
fn order_id_of(bytes: &[u8]) -> Result<OrderId, StoreError> {
    OrderId::from_be_slice(bytes).ok_or(StoreError::Corrupt("payments.order_id"))
}

/// The `orders` keys of `ids` (ids no stored order can have are left out).
fn order_keys(ids: &[OrderId]) -> Vec<i64> {
    ids.iter().filter_map(|id| id.db_key()).collect()
}
