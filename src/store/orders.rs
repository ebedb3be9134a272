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

use std::{collections::VecDeque, path::PathBuf, sync::Arc};

use sqlx::Row;
use tokio::sync::oneshot;

use super::{
    Backend, Db, StoreError,
    bulk::{Value, insert},
    unix_now,
};

/// Order ids reserved per database round trip.
pub const ID_BLOCK: i64 = 256;

/// Orders written per transaction at most.
const MAX_BATCH: usize = 512;

/// An order row and its `checkout.created` event, ready to store.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Reserved with [`next_id`].
    pub order_id: i64,
    /// Public checkout id.
    pub checkout_id: String,
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
    /// Stable id of the `checkout.created` event.
    pub event_id: String,
    /// The event's `data`.
    pub event_data: serde_json::Value,
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Reserved ids and orders waiting for the writer (one per [`Db`]).
#[derive(Debug, Default)]
pub struct OrderQueue {
    ids: tokio::sync::Mutex<VecDeque<i64>>,
    pending: std::sync::Mutex<Pending>,
    /// On SQLite, the file, written through a connection of the writer's own.
    sqlite: Option<SqliteWriter>,
}

impl OrderQueue {
    /// Returns the queue of a database; `sqlite_file` for an SQLite file.
    pub(crate) fn new(sqlite_file: Option<PathBuf>) -> Self {
        let sqlite = sqlite_file.map(|path| SqliteWriter { path, conn: Default::default() });
        Self { sqlite, ..Default::default() }
    }

    /// Closes the writer's SQLite connection (the pool is closing); a later write opens it
    /// again.
    pub(crate) fn close(&self) {
        if let Some(writer) = &self.sqlite
            && let Ok(mut conn) = writer.conn.lock()
        {
            *conn = None;
        }
    }
}

/// SQLite's order writer: rusqlite on a blocking thread, statements prepared once. sqlx
/// runs every SQLite statement on a worker thread and hands it over and back (two thread
/// wake-ups per statement, four statements per batch); here a whole batch is one hand-over.
/// Like the pool's connections it never checkpoints the WAL inside a commit
/// (`wal_autocheckpoint = 0`); it wakes the database's background checkpointer instead.
#[derive(Debug)]
struct SqliteWriter {
    path: PathBuf,
    conn: Arc<std::sync::Mutex<Option<rusqlite::Connection>>>,
}

#[derive(Debug, Default)]
struct Pending {
    orders: Vec<(NewOrder, Waiter)>,
    writing: bool,
}

/// Returns the next order id, reserving a new block when the last is used up.
pub async fn next_id(db: &Db) -> Result<i64, StoreError> {
    let mut ids = db.orders().ids.lock().await;
    if let Some(id) = ids.pop_front() {
        return Ok(id);
    }
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    let row = sqlx::query("UPDATE id_blocks SET next_id = next_id + $1 WHERE name = 'order_id' RETURNING next_id")
        .bind(ID_BLOCK)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let end: i64 = row.try_get("next_id")?;
    ids.extend(end - ID_BLOCK..end);
    Ok(ids.pop_front().expect("a block was just reserved"))
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
        match write_batch(&db, &orders).await {
            Ok(()) => {
                for waiter in waiters {
                    let _ = waiter.send(Ok(()));
                }
            }
            // One bad row must not fail the others: write them one by one.
            Err(error) if orders.len() > 1 => {
                tracing::warn!(%error, orders = orders.len(), "writing a batch of orders failed; writing them one by one");
                for (order, waiter) in orders.into_iter().zip(waiters) {
                    let result = write_batch(&db, std::slice::from_ref(&order)).await.map_err(|e| e.to_string());
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
async fn write_batch(db: &Db, orders: &[NewOrder]) -> Result<(), StoreError> {
    let now = unix_now();
    match (&db.orders().sqlite, db.backend()) {
        (Some(writer), _) => {
            // The process's SQLite writers take turns at the gate, as `begin_write` does.
            let _gate = db.sqlite_write_gate().await;
            let (path, conn, orders) = (writer.path.clone(), writer.conn.clone(), orders.to_vec());
            let written = tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().expect("SQLite order writer lock");
                if conn.is_none() {
                    let opened = open_sqlite(&path)?;
                    opened.pragma_update(None, "wal_autocheckpoint", 0)?;
                    *conn = Some(opened);
                }
                let result = write_sqlite(conn.as_mut().expect("opened above"), &orders, now);
                if result.is_err() {
                    // A fresh connection next time: never reuse one in an unknown state.
                    *conn = None;
                }
                result
            })
            .await
            .map_err(|e| StoreError::Batch(format!("the SQLite order writer panicked: {e}")))?
            .map_err(|e| StoreError::Batch(e.to_string()));
            if written.is_ok() {
                db.wal_committed();
            }
            return written;
        }
        (None, Backend::Postgres) => return write_postgres(db, orders, now).await,
        (None, Backend::Sqlite) => {}
    }
    let order_rows: Vec<Vec<Value>> = orders
        .iter()
        .map(|o| {
            vec![
                Value::I64(o.order_id),
                Value::Text(o.checkout_id.clone()),
                Value::I64(o.chain_id),
                Value::Bytes(o.payer.clone()),
                Value::Bytes(o.token.clone()),
                Value::Bytes(o.amount.clone()),
                Value::I64(o.plan_id),
                Value::I64(o.periods),
                Value::I64(o.deadline),
                Value::Bytes(o.signature.clone()),
                Value::I64(o.created_at),
            ]
        })
        .collect();
    let event_rows: Vec<Vec<Value>> = orders
        .iter()
        .map(|o| {
            vec![Value::Text(o.event_id.clone()), Value::Text("checkout.created".into()), Value::Text(event_body(o)), Value::I64(now)]
        })
        .collect();
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    insert(
        &mut tx,
        "INSERT INTO orders (order_id, checkout_id, chain_id, payer, token, amount, plan_id, periods, deadline, signature, created_at)",
        &order_rows,
        "",
    )
    .await?;
    insert(&mut tx, "INSERT INTO outbox_events (id, event_type, payload, created_at)", &event_rows, "ON CONFLICT (id) DO NOTHING").await?;
    tx.commit().await?;
    Ok(())
}

fn open_sqlite(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // The same settings as the pool's connections (WAL is a property of the file).
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn write_sqlite(conn: &mut rusqlite::Connection, orders: &[NewOrder], now: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut order = tx.prepare_cached(
            "INSERT INTO orders (order_id, checkout_id, chain_id, payer, token, amount, plan_id, periods, deadline, signature, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut event = tx.prepare_cached(
            "INSERT INTO outbox_events (id, event_type, payload, created_at) VALUES (?1, 'checkout.created', ?2, ?3) ON CONFLICT (id) DO NOTHING",
        )?;
        for o in orders {
            order.execute(rusqlite::params![
                o.order_id,
                o.checkout_id,
                o.chain_id,
                o.payer,
                o.token,
                o.amount,
                o.plan_id,
                o.periods,
                o.deadline,
                o.signature,
                o.created_at
            ])?;
            event.execute(rusqlite::params![o.event_id, event_body(o), now])?;
        }
    }
    tx.commit()
}

/// The event's stored body: `{"id", "type", "data"}` as [`super::outbox`] writes it.
fn event_body(o: &NewOrder) -> String {
    serde_json::json!({ "id": o.event_id, "type": "checkout.created", "data": o.event_data }).to_string()
}

/// PostgreSQL: the orders and their events in one statement (a data-modifying `WITH`),
/// atomic on its own, so a batch is one round trip instead of four.
async fn write_postgres(db: &Db, orders: &[NewOrder], now: i64) -> Result<(), StoreError> {
    use std::fmt::Write;
    let mut sql = String::from(
        "WITH new_orders AS (INSERT INTO orders (order_id, checkout_id, chain_id, payer, token, amount, plan_id, periods, deadline, signature, created_at) VALUES ",
    );
    let mut n = 0;
    for (i, _) in orders.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 0..11 {
            n += 1;
            let _ = write!(sql, "{}${n}", if c == 0 { "" } else { ", " });
        }
        sql.push(')');
    }
    sql.push_str(") INSERT INTO outbox_events (id, event_type, payload, created_at) VALUES ");
    for (i, _) in orders.iter().enumerate() {
        let _ = write!(sql, "{}(${}, 'checkout.created', ${}, ${})", if i == 0 { "" } else { ", " }, n + 1, n + 2, n + 3);
        n += 3;
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    let mut query = sqlx::query(&sql);
    for o in orders {
        query = query
            .bind(o.order_id)
            .bind(o.checkout_id.clone())
            .bind(o.chain_id)
            .bind(o.payer.clone())
            .bind(o.token.clone())
            .bind(o.amount.clone())
            .bind(o.plan_id)
            .bind(o.periods)
            .bind(o.deadline)
            .bind(o.signature.clone())
            .bind(o.created_at);
    }
    for o in orders {
        query = query.bind(o.event_id.clone()).bind(event_body(o)).bind(now);
    }
    query.execute(db.pool()).await?;
    Ok(())
}
