//! New orders: ids reserved in blocks, and a group commit that writes every order (and its
//! `checkout.created` event) waiting at that moment in one transaction.
//!
//! A checkout needs its order id before it can sign the quote, and signing is the costly
//! part of a checkout. With ids reserved ahead (`id_blocks`, a block of
//! [`ID_BLOCK`] per reservation, per process) requests sign in parallel, outside any
//! transaction, and only then queue their rows. One writer task drains the queue: while it
//! commits one batch the next gathers, so under load many orders share a commit and an
//! idle service writes each order at once. A request is answered only after its batch has
//! committed; the writer is a task of its own, so a client hanging up cannot cancel a
//! write half-way. Ids of a reserved block that is never used (a restart) are skipped,
//! never reused; a quote is only ever shown for an order that is stored.

use std::{collections::VecDeque, sync::Arc};

use sqlx::Row;
use tokio::sync::oneshot;

use crate::{
    billing::customers::CustomerRef,
    ids::{CheckoutId, OrderId},
    states::OrderStatus,
};

pub use super::order_pricing::{OrderPricing, OrderUsd};
use super::{
    Db, StoreError,
    bulk::Value,
    outbox::{self, NewEvent},
};

/// Order ids reserved per database round trip.
pub const ID_BLOCK: i64 = 256;

/// Orders written per transaction at most.
const MAX_BATCH: usize = 512;

/// Times the writer yields to ready tasks before it takes a batch.
const READY_YIELDS: usize = 3;

/// An order row and its `checkout.created` event, ready to store.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Reserved with [`next_id`].
    pub order_id: OrderId,
    /// Public checkout id.
    pub checkout_id: CheckoutId,
    /// Chain id.
    pub chain_id: i64,
    /// Payer (20 bytes).
    pub payer: Vec<u8>,
    /// Token (20 bytes).
    pub token: Vec<u8>,
    /// Amount (32 bytes, big-endian).
    pub amount: Vec<u8>,
    /// Plan id.
    pub plan_id: i64,
    /// Periods.
    pub periods: i64,
    /// Unix deadline.
    pub deadline: i64,
    /// The quote signature.
    pub signature: Vec<u8>,
    /// Unix time of creation.
    pub created_at: i64,
    /// The market rate a USD-priced order was quoted at.
    pub pricing: Option<OrderPricing>,
    /// The merchant's customer the checkout was created for.
    pub customer_ref: Option<CustomerRef>,
    /// The `checkout.created` event.
    pub event: NewEvent,
}

impl NewOrder {
    /// The `orders` key: ids from [`next_id`] always fit.
    fn key(&self) -> i64 {
        self.order_id.db_key().expect("an order id from next_id fits the orders key")
    }
    fn usd_micro(&self) -> Option<i64> {
        self.pricing.as_ref().map(OrderPricing::usd_micro_column)
    }
    fn rate_usd(&self) -> Option<String> {
        self.pricing.as_ref().map(OrderPricing::rate_usd_column)
    }
    fn rate_source(&self) -> Option<String> {
        self.pricing.as_ref().map(OrderPricing::rate_source_column)
    }
    fn rate_at(&self) -> Option<i64> {
        self.pricing.as_ref().map(OrderPricing::rate_at_column)
    }
    fn customer_ref(&self) -> Option<String> {
        self.customer_ref.as_ref().map(|c| c.as_str().to_string())
    }
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Reserved ids and orders waiting for the writer (one per [`Db`]).
#[derive(Debug, Default)]
pub struct OrderQueue {
    ids: tokio::sync::Mutex<VecDeque<i64>>,
    pending: std::sync::Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    orders: Vec<(NewOrder, Waiter)>,
    writing: bool,
}

/// Returns the next order id, reserving a new block when the last is used up.
pub async fn next_id(db: &Db) -> Result<OrderId, StoreError> {
    let mut ids = db.orders().ids.lock().await;
    if let Some(id) = ids.pop_front() {
        return Ok(OrderId::issued(id));
    }
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    let row = sqlx::query("UPDATE id_blocks SET next_id = next_id + $1 WHERE name = 'order_id' RETURNING next_id").bind(ID_BLOCK).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    let end: i64 = row.try_get("next_id")?;
    ids.extend(end - ID_BLOCK..end);
    Ok(OrderId::issued(ids.pop_front().expect("a block was just reserved")))
}

/// Returns the order id after the highest stored one (1 for a database without orders).
pub async fn id_after_last(db: &Db) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(order_id), 0) + 1 FROM orders").fetch_one(db.pool()).await?)
}

/// A stored order: what its checkout shows.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    /// Order id.
    pub order_id: OrderId,
    /// Public checkout id.
    pub checkout_id: CheckoutId,
    /// Payer.
    pub payer: alloy::primitives::Address,
    /// Token.
    pub token: alloy::primitives::Address,
    /// Amount in the token's smallest unit.
    pub amount: alloy::primitives::U256,
    /// Plan id.
    pub plan_id: u32,
    /// Periods.
    pub periods: u32,
    /// Unix deadline of the quote.
    pub deadline: u64,
    /// The quote signature.
    pub signature: Vec<u8>,
    /// As stored (an open order past its deadline is still `open`).
    pub status: OrderStatus,
    /// The market rate a USD-priced order was quoted at.
    pub pricing: Option<OrderPricing>,
    /// The merchant's customer the checkout was created for.
    pub customer_ref: Option<CustomerRef>,
}

/// Returns the order of checkout `checkout_id`, if any.
pub async fn load(db: &Db, checkout_id: &CheckoutId) -> Result<Option<StoredOrder>, StoreError> {
    let row = sqlx::query(
        "SELECT order_id, checkout_id, payer, token, amount, plan_id, periods, deadline, signature, status, usd_micro, rate_usd, rate_source, rate_at, \
             customer_ref FROM orders WHERE checkout_id = $1",
    )
    .bind(checkout_id.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(StoredOrder {
        order_id: OrderId::issued(r.try_get("order_id")?),
        checkout_id: CheckoutId::from_stored(r.try_get("checkout_id")?),
        payer: super::to_address(&r.try_get::<Vec<u8>, _>("payer")?, "orders.payer")?,
        token: super::to_address(&r.try_get::<Vec<u8>, _>("token")?, "orders.token")?,
        amount: super::to_u256(&r.try_get::<Vec<u8>, _>("amount")?, "orders.amount")?,
        plan_id: r.try_get::<i64, _>("plan_id")? as u32,
        periods: r.try_get::<i64, _>("periods")? as u32,
        deadline: r.try_get::<i64, _>("deadline")? as u64,
        signature: r.try_get("signature")?,
        status: r.try_get::<String, _>("status")?.parse().map_err(|_| StoreError::Corrupt("orders.status"))?,
        pricing: OrderPricing::from_columns(r.try_get("usd_micro")?, r.try_get("rate_usd")?, r.try_get("rate_source")?, r.try_get("rate_at")?)?,
        customer_ref: r.try_get::<Option<String>, _>("customer_ref")?.map(CustomerRef::stored),
    }))
}

/// Stores `order` and its event; returns once they are committed.
pub async fn insert_order(db: &Db, order: NewOrder) -> Result<(), StoreError> {
    let (done, wait) = oneshot::channel();
    let queue = db.orders().clone();
    let start_writer = {
        let mut pending = queue.pending.lock().expect("order queue lock");
        pending.orders.push((order, done));
        !std::mem::replace(&mut pending.writing, true)
    };
    if start_writer {
        tokio::spawn(write_pending(db.clone(), queue));
    }
    match wait.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(StoreError::Batch(message)),
        Err(_) => Err(StoreError::Batch("the order writer stopped".into())),
    }
}

/// Writes batches until the queue is empty.
async fn write_pending(db: Db, queue: Arc<OrderQueue>) {
    loop {
        // Let the checkouts that are ready to run (signing their quotes) queue first, so
        // they share this commit: without it a batch held ~3.5 orders under load, with it
        // ~9, and each commit writes a dozen WAL pages whatever its size.
        for _ in 0..READY_YIELDS {
            tokio::task::yield_now().await;
        }
        let batch: Vec<(NewOrder, Waiter)> = {
            let mut pending = queue.pending.lock().expect("order queue lock");
            if pending.orders.is_empty() {
                pending.writing = false;
                return;
            }
            let take = pending.orders.len().min(MAX_BATCH);
            pending.orders.drain(..take).collect()
        };
        let (orders, waiters): (Vec<NewOrder>, Vec<Waiter>) = batch.into_iter().unzip();
        let orders: Arc<[NewOrder]> = orders.into();
        let started = std::time::Instant::now();
        let written = write_batch(&db, orders.clone()).await;
        tracing::debug!(target: "tmai_pay::orders", orders = orders.len(), ms = started.elapsed().as_secs_f64() * 1e3, "order batch written");
        match written {
            Ok(()) => {
                for waiter in waiters {
                    let _ = waiter.send(Ok(()));
                }
            }
            // One bad row must not fail the others: write them one by one.
            Err(error) if orders.len() > 1 => {
                tracing::warn!(%error, orders = orders.len(), "writing a batch of orders failed; writing them one by one");
                for (order, waiter) in orders.iter().zip(waiters) {
                    let result = write_batch(&db, Arc::new([order.clone()])).await.map_err(|e| e.to_string());
                    let _ = waiter.send(result);
                }
            }
            Err(error) => {
                for waiter in waiters {
                    let _ = waiter.send(Err(error.to_string()));
                }
            }
        }
    }
}

/// Writes `orders` and their events in one transaction.
async fn write_batch(db: &Db, orders: Arc<[NewOrder]>) -> Result<(), StoreError> {
    // The events' time: the newest order's, read from the service's clock by its caller
    // (this writer task has no clock of its own).
    let now = orders.iter().map(|o| o.created_at).max().unwrap_or_default();
    // SQLite: the process's own connection (after its other writers), a whole batch in one
    // hand-over to its thread instead of one per statement.
    let batch = orders.clone();
    if let Some(written) = db.sqlite_transaction(move |conn| Ok(write_sqlite(conn, &batch, now)?)).await {
        written?;
        db.committed_outside(false);
        return Ok(());
    }
    // Every other database is PostgreSQL: an SQLite database is always a file with the
    // process's own connection (`Db::connect` refuses an in-memory one).
    write_postgres(db, &orders, now).await
}

fn write_sqlite(tx: &rusqlite::Connection, orders: &[NewOrder], now: i64) -> rusqlite::Result<()> {
    let mut order = tx.prepare_cached(
        "INSERT INTO orders (order_id, checkout_id, chain_id, payer, token, amount, plan_id, periods, deadline, signature, created_at, usd_micro, rate_usd, rate_source, rate_at, customer_ref) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for o in orders {
        order.execute(rusqlite::params![
            o.key(),
            o.checkout_id.as_str(),
            o.chain_id,
            o.payer,
            o.token,
            o.amount,
            o.plan_id,
            o.periods,
            o.deadline,
            o.signature,
            o.created_at,
            o.usd_micro(),
            o.rate_usd(),
            o.rate_source(),
            o.rate_at(),
            o.customer_ref()
        ])?;
    }
    outbox::write_all_sqlite(tx, orders.iter().map(|o| &o.event), now)
}

/// PostgreSQL: the orders and their events in one statement (a data-modifying `WITH`),
/// atomic on its own, so a batch is one round trip instead of four.
async fn write_postgres(db: &Db, orders: &[NewOrder], now: i64) -> Result<(), StoreError> {
    use std::fmt::Write;
    let mut sql = String::from(
        "WITH new_orders AS (INSERT INTO orders (order_id, checkout_id, chain_id, payer, token, amount, plan_id, periods, deadline, signature, created_at, usd_micro, rate_usd, rate_source, rate_at, customer_ref) VALUES ",
    );
    let mut n = 0;
    for (i, _) in orders.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 0..16 {
            n += 1;
            let _ = write!(sql, "{}${n}", if c == 0 { "" } else { ", " });
        }
        sql.push(')');
    }
    sql.push(')');
    outbox::append_insert(&mut sql, n + 1, orders.len());
    let mut query = sqlx::query(&sql);
    for o in orders {
        query = query
            .bind(o.key())
            .bind(o.checkout_id.to_string())
            .bind(o.chain_id)
            .bind(o.payer.clone())
            .bind(o.token.clone())
            .bind(o.amount.clone())
            .bind(o.plan_id)
            .bind(o.periods)
            .bind(o.deadline)
            .bind(o.signature.clone())
            .bind(o.created_at)
            .bind(o.usd_micro())
            .bind(o.rate_usd())
            .bind(o.rate_source())
            .bind(o.rate_at())
            .bind(o.customer_ref());
    }
    for o in orders {
        query = outbox::bind_event(query, &o.event, now);
    }
    query.execute(db.pool()).await?;
    Ok(())
}

/// An order's terms as the watcher matches a payment against them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerms {
    /// Chain id.
    pub chain_id: u64,
    /// Payer.
    pub payer: alloy::primitives::Address,
    /// Token.
    pub token: alloy::primitives::Address,
    /// Amount in the token's smallest unit.
    pub amount: alloy::primitives::U256,
    /// Plan id.
    pub plan_id: u32,
    /// Periods.
    pub periods: u32,
    /// Whether a payment already marked the order paid (a log for it from another
    /// transaction pays nothing).
    pub paid: bool,
    /// The checkout that issued it.
    pub checkout_id: CheckoutId,
    /// A USD-priced order's USD value at its locked rate.
    pub usd: Option<OrderUsd>,
    /// The merchant's customer the checkout was created for.
    pub customer_ref: Option<CustomerRef>,
}

const TERMS: &str =
    "SELECT order_id, chain_id, payer, token, amount, plan_id, periods, status, checkout_id, usd_micro, rate_usd, customer_ref FROM orders WHERE order_id";

fn terms_from(r: &sqlx::any::AnyRow) -> Result<(OrderId, OrderTerms), StoreError> {
    let terms = OrderTerms {
        chain_id: r.try_get::<i64, _>("chain_id")? as u64,
        payer: super::to_address(&r.try_get::<Vec<u8>, _>("payer")?, "orders.payer")?,
        token: super::to_address(&r.try_get::<Vec<u8>, _>("token")?, "orders.token")?,
        amount: super::to_u256(&r.try_get::<Vec<u8>, _>("amount")?, "orders.amount")?,
        plan_id: r.try_get::<i64, _>("plan_id")? as u32,
        periods: r.try_get::<i64, _>("periods")? as u32,
        paid: r.try_get::<String, _>("status")? == OrderStatus::Paid.as_str(),
        checkout_id: CheckoutId::from_stored(r.try_get("checkout_id")?),
        usd: OrderUsd::from_columns(r.try_get("usd_micro")?, r.try_get("rate_usd")?),
        customer_ref: r.try_get::<Option<String>, _>("customer_ref")?.map(CustomerRef::stored),
    };
    Ok((OrderId::issued(r.try_get("order_id")?), terms))
}

fn keys(ids: &[OrderId]) -> Vec<Value> {
    ids.iter().filter_map(|id| id.db_key()).map(Value::I64).collect()
}

/// Returns the terms of the stored orders among `ids` (ids no order has are left out).
pub async fn terms(conn: &mut sqlx::AnyConnection, ids: &[OrderId]) -> Result<std::collections::HashMap<OrderId, OrderTerms>, StoreError> {
    let rows = super::bulk::fetch_in(conn, &format!("{TERMS} IN"), "", &[], &keys(ids)).await?;
    rows.iter().map(terms_from).collect()
}

/// [`terms`] on the process's SQLite connection.
pub fn terms_sqlite(conn: &rusqlite::Connection, ids: &[OrderId]) -> Result<std::collections::HashMap<OrderId, OrderTerms>, StoreError> {
    let mut read = conn.prepare_cached(&format!("{TERMS} = ?1"))?;
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for id in ids {
        let Some(key) = id.db_key() else { continue };
        let mut rows = read.query([key])?;
        if let Some(r) = rows.next()? {
            let terms = OrderTerms {
                chain_id: r.get::<_, i64>(1)? as u64,
                payer: super::to_address(&r.get::<_, Vec<u8>>(2)?, "orders.payer")?,
                token: super::to_address(&r.get::<_, Vec<u8>>(3)?, "orders.token")?,
                amount: super::to_u256(&r.get::<_, Vec<u8>>(4)?, "orders.amount")?,
                plan_id: r.get::<_, i64>(5)? as u32,
                periods: r.get::<_, i64>(6)? as u32,
                paid: r.get::<_, String>(7)? == OrderStatus::Paid.as_str(),
                checkout_id: CheckoutId::from_stored(r.get(8)?),
                usd: OrderUsd::from_columns(r.get(9)?, r.get(10)?),
                customer_ref: r.get::<_, Option<String>>(11)?.map(CustomerRef::stored),
            };
            out.insert(*id, terms);
        }
    }
    Ok(out)
}

/// Marks orders paid.
pub async fn mark_paid(conn: &mut sqlx::AnyConnection, ids: &[OrderId]) -> Result<(), StoreError> {
    super::bulk::execute_in(conn, "UPDATE orders SET status = 'paid' WHERE order_id IN", "", &[], &keys(ids)).await?;
    Ok(())
}

/// [`mark_paid`] on the process's SQLite connection.
pub fn mark_paid_sqlite(conn: &rusqlite::Connection, ids: &[OrderId]) -> Result<(), StoreError> {
    let mut update = conn.prepare_cached("UPDATE orders SET status = 'paid' WHERE order_id = ?1")?;
    for key in ids.iter().filter_map(|id| id.db_key()) {
        update.execute([key])?;
    }
    Ok(())
}

/// Opens `order` again after its payment was taken back, unless another confirmed payment
/// on `chain_id` paid it.
const REOPEN: &str = "UPDATE orders SET status = 'open' WHERE order_id = $1 AND status = 'paid' AND NOT EXISTS \
    (SELECT 1 FROM payments WHERE chain_id = $2 AND matched_order = orders.order_id AND status = 'confirmed')";

/// Opens `order` again (see [`REOPEN`]).
pub async fn reopen(conn: &mut sqlx::AnyConnection, order: OrderId, chain_id: u64) -> Result<(), StoreError> {
    let Some(key) = order.db_key() else { return Ok(()) };
    sqlx::query(REOPEN).bind(key).bind(chain_id as i64).execute(conn).await?;
    Ok(())
}

/// [`reopen`] on the process's SQLite connection.
pub fn reopen_sqlite(conn: &rusqlite::Connection, order: OrderId, chain_id: u64) -> Result<(), StoreError> {
    let Some(key) = order.db_key() else { return Ok(()) };
    conn.prepare_cached(REOPEN)?.execute(rusqlite::params![key, chain_id as i64])?;
    Ok(())
}

/// A never-paid order whose quote's deadline is old enough to prune ([`expired_unpaid`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredOrder {
    /// Order id.
    pub order_id: OrderId,
    /// Its checkout.
    pub checkout_id: CheckoutId,
    /// Its quote's deadline (unix seconds): with the order id, the cursor of a pass.
    pub deadline: i64,
}

/// Open orders, by deadline then id, after the cursor `($2, $3)`, with a deadline before `$1`:
/// read through the partial index `orders_open_deadline` (migration 0015), whose predicate
/// is spelled here as it is there. The newest order is never one of them: start-up compares
/// the order id after the highest stored one with the chain ([`id_after_last`]).
const EXPIRED_UNPAID: &str = "SELECT order_id, checkout_id, deadline FROM orders WHERE status = 'open' AND deadline < $1 AND (deadline, order_id) > ($2, $3) \
     AND order_id < (SELECT MAX(order_id) FROM orders) ORDER BY deadline, order_id LIMIT $4";

/// Returns up to `limit` open orders whose deadline is before `cutoff`, oldest deadline
/// first, after `after` (the `(deadline, order_id)` of the last one a pass saw). A read on
/// the pool: it holds no write lock. Orders a payment names are left out by
/// [`delete_unpaid`], which checks again under the write transaction.
pub async fn expired_unpaid(db: &Db, cutoff: i64, after: (i64, i64), limit: u32) -> Result<Vec<ExpiredOrder>, StoreError> {
    let rows = sqlx::query(EXPIRED_UNPAID).bind(cutoff).bind(after.0).bind(after.1).bind(i64::from(limit)).fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(ExpiredOrder {
                order_id: OrderId::issued(r.try_get("order_id")?),
                checkout_id: CheckoutId::from_stored(r.try_get("checkout_id")?),
                deadline: r.try_get("deadline")?,
            })
        })
        .collect()
}

/// Deletes the orders among `ids` that are still open, have a deadline before `cutoff` and
/// that no payment row names (a payment matched to an order keeps it, whatever became of
/// the payment); returns the ids deleted.
pub async fn delete_unpaid(conn: &mut sqlx::AnyConnection, ids: &[OrderId], cutoff: i64) -> Result<Vec<OrderId>, StoreError> {
    let rows = super::bulk::fetch_in(
        conn,
        "DELETE FROM orders WHERE status = 'open' AND deadline < $1 AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.matched_order = orders.order_id) AND order_id IN",
        "RETURNING order_id",
        &[Value::I64(cutoff)],
        &keys(ids),
    )
    .await?;
    rows.iter().map(|r| Ok(OrderId::issued(r.try_get("order_id")?))).collect()
}
