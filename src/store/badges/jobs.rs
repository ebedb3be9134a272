//! The badge job queue: every statement that adds a job to `badge_jobs`, for both
//! connections (sqlx, and the process's own rusqlite connection on the hot SQLite path).
//! From there on the minter moves a job through its states ([`super::minter_jobs`]).

use alloy::primitives::{Address, B256};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::store::{
    Db, StoreError, address_bytes, b256_bytes,
    bulk::{Value, insert},
    to_b256,
};
use crate::{
    ids::{CheckoutId, OrderId},
    states::{BadgeAction, BadgeJobStatus},
};

/// The on-chain payment behind a change: every event it causes (`payment.*`,
/// `subscription.*`, `badge.*`) carries these, so a merchant's app needs no join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// The on-chain order id.
    pub order_id: OrderId,
    /// The checkout that issued the order (None: a payment for an order not stored here).
    pub checkout_id: Option<CheckoutId>,
    /// The payment's transaction.
    pub tx_hash: B256,
}

/// A badge job to queue.
#[derive(Debug, Clone)]
pub struct NewBadgeJob {
    /// Member wallet (for `move`, the wallet the badge leaves).
    pub wallet: Address,
    /// What to do.
    pub action: BadgeAction,
    /// Tier the badge shows.
    pub tier: u8,
    /// Expiry the badge shows.
    pub expires_at: u64,
    /// For `move`: the wallet the badge goes to.
    pub new_wallet: Option<Address>,
    /// The payment that caused it, for its `badge.*` event.
    pub cause: Option<Cause>,
}

const HEAD: &str = "INSERT INTO badge_jobs (wallet, action, tier, expires_at, new_wallet, created_at, cause_order_id, cause_checkout_id, cause_tx_hash)";

/// Queues `jobs`, in order, in one statement.
pub async fn queue_all(conn: &mut AnyConnection, jobs: &[NewBadgeJob], now: u64) -> Result<(), StoreError> {
    let rows: Vec<Vec<Value>> = jobs
        .iter()
        .map(|j| {
            vec![
                Value::Bytes(address_bytes(j.wallet)),
                Value::Text(j.action.as_str().to_string()),
                Value::I64(i64::from(j.tier)),
                Value::I64(j.expires_at as i64),
                Value::OptBytes(j.new_wallet.map(address_bytes)),
                Value::I64(now as i64),
                Value::OptText(j.cause.as_ref().map(|c| c.order_id.to_string())),
                Value::OptText(j.cause.as_ref().and_then(|c| c.checkout_id.as_ref().map(ToString::to_string))),
                Value::OptBytes(j.cause.as_ref().map(|c| b256_bytes(c.tx_hash))),
            ]
        })
        .collect();
    insert(conn, HEAD, &rows, "").await?;
    Ok(())
}

/// Queues one job.
pub async fn queue(conn: &mut AnyConnection, job: &NewBadgeJob, now: u64) -> Result<(), StoreError> {
    queue_all(conn, std::slice::from_ref(job), now).await
}

/// [`queue_all`] on the process's SQLite connection.
pub fn queue_all_sqlite(conn: &rusqlite::Connection, jobs: &[NewBadgeJob], now: u64) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(&format!("{HEAD} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))?;
    for j in jobs {
        let cause = j.cause.as_ref();
        insert.execute(rusqlite::params![
            j.wallet.as_slice(),
            j.action.as_str(),
            i64::from(j.tier),
            j.expires_at as i64,
            j.new_wallet.as_ref().map(|w| w.as_slice()),
            now as i64,
            cause.map(|c| c.order_id.to_string()),
            cause.and_then(|c| c.checkout_id.as_ref().map(|id| id.as_str())),
            cause.map(|c| c.tx_hash.as_slice())
        ])?;
    }
    Ok(())
}

/// Returns the transaction of the newest confirmed badge job of `wallet` created at or
/// after `since` (`Some(None)`: confirmed without a stored hash), if there is one: what a
/// checkout's progress shows once its badge is on chain.
pub async fn confirmed_since(db: &Db, wallet: Address, since: u64) -> Result<Option<Option<B256>>, StoreError> {
    let row = sqlx::query("SELECT tx_hash FROM badge_jobs WHERE wallet = $1 AND created_at >= $2 AND status = $3 ORDER BY id DESC LIMIT 1")
        .bind(address_bytes(wallet))
        .bind(since as i64)
        .bind(BadgeJobStatus::Confirmed.as_str())
        .fetch_optional(db.pool())
        .await?;
    let Some(job) = row else { return Ok(None) };
    Ok(Some(job.try_get::<Option<Vec<u8>>, _>("tx_hash")?.map(|h| to_b256(&h, "badge_jobs.tx_hash")).transpose()?))
}
