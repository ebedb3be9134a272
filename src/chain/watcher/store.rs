//! The writes of one watcher pass, as typed operations on one transaction, with one
//! implementation per database: sqlx set-based statements ([`any`], PostgreSQL and SQLite
//! without a file) and rusqlite statements prepared once and bound row by row on the
//! process's own SQLite connection ([`sqlite`]), which is what lets a backfill into an
//! SQLite file keep up with the node. The pass logic ([`super::apply`]) is written once
//! against [`PassTx`]; both implementations run the same tests.

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, B256, U256};

use super::super::paid_log::PaidLog;
use crate::{
    billing::activation::{Subscription, Writes},
    store::{Db, StoreError, WriteTx, sqlite::SqliteTx},
};

mod any;
mod sqlite;

/// An order as stored, for matching payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredOrder {
    pub(crate) chain_id: u64,
    pub(crate) payer: Address,
    pub(crate) token: Address,
    pub(crate) amount: U256,
    pub(crate) plan_id: u32,
    pub(crate) periods: u32,
}

/// A payment to record: the log, the order it pays (or why none), and whether it is deep
/// enough to be recorded as confirmed at once.
#[derive(Debug, Clone)]
pub(crate) struct NewPayment {
    pub(crate) log: PaidLog,
    pub(crate) matched_order: Option<i64>,
    pub(crate) unmatched_reason: Option<&'static str>,
    pub(crate) confirmed: bool,
}

/// The `payments` columns a [`StoredPayment`] is read from, in its order (both
/// implementations decode them).
const PAYMENT_COLUMNS: &str =
    "id, tx_hash, log_index, block_number, block_hash, order_id, payer, token, plan_id, periods, matched_order, status";

/// A stored payment: one the pass confirms, or one a reorg removed.
#[derive(Debug, Clone)]
pub(crate) struct StoredPayment {
    pub(crate) id: i64,
    pub(crate) tx_hash: B256,
    pub(crate) log_index: u64,
    pub(crate) block_number: u64,
    pub(crate) block_hash: B256,
    pub(crate) order_id: U256,
    pub(crate) payer: Address,
    pub(crate) token: Address,
    pub(crate) plan_id: u32,
    pub(crate) periods: u32,
    pub(crate) matched_order: Option<i64>,
    /// `detected`, `confirmed` or `reorged`.
    pub(crate) status: String,
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

/// One pass's transaction.
#[derive(Debug)]
pub(crate) enum PassTx {
    /// sqlx on the pool.
    Any(WriteTx),
    /// rusqlite on the process's own SQLite connection.
    Sqlite(SqliteTx),
}

/// Calls the operation on whichever backend holds the transaction, and logs its time at
/// debug level (`RUST_LOG=tmai_pay::watcher::ops=debug`: where a pass's database time goes).
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

    /// Marks the detected payments above `fork` reorged and forgets the blocks above it;
    /// returns the payments above `fork` (confirmed ones too, which stay confirmed).
    pub(crate) async fn roll_back(&mut self, chain_id: u64, fork: u64) -> Result<Vec<StoredPayment>, StoreError> {
        dispatch!(self, roll_back(chain_id, fork))
    }

    /// Returns the detected payments at or below `deep`, in chain order.
    pub(crate) async fn detected_up_to(&mut self, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
        dispatch!(self, detected_up_to(chain_id, deep))
    }

    /// Marks detected payments confirmed.
    pub(crate) async fn confirm(&mut self, ids: Vec<i64>, now: u64) -> Result<u64, StoreError> {
        dispatch!(self, confirm(ids, now))
    }

    /// Returns the stored orders among `ids`.
    pub(crate) async fn orders(&mut self, ids: Vec<i64>) -> Result<HashMap<i64, StoredOrder>, StoreError> {
        dispatch!(self, orders(ids))
    }

    /// Records payments; returns, row for row, the payment id of each one inserted or
    /// found again after a reorg (`None`: already recorded).
    pub(crate) async fn insert_payments(&mut self, chain_id: u64, rows: Vec<NewPayment>, now: u64) -> Result<Vec<Option<i64>>, StoreError> {
        dispatch!(self, insert_payments(chain_id, rows, now))
    }

    /// Marks orders paid.
    pub(crate) async fn orders_paid(&mut self, ids: Vec<i64>) -> Result<(), StoreError> {
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

    /// Returns the subscriptions whose scheduled downgrade is due at `now`.
    pub(crate) async fn due_downgrades(&mut self, now: u64) -> Result<Vec<Subscription>, StoreError> {
        dispatch!(self, due_downgrades(now))
    }

    /// Writes planned activations: their rows, the subscriptions, the badge jobs and the
    /// events.
    pub(crate) async fn write(&mut self, writes: Writes, now: u64) -> Result<(), StoreError> {
        if writes.activations.is_empty() && writes.subscriptions.is_empty() && writes.jobs.is_empty() && writes.events.is_empty() {
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
