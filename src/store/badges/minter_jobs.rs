//! Badge jobs as the minter reads and moves them after they were queued ([`super::jobs`]):
//! due jobs, jobs in flight, supersede, fail with backoff, reject, confirm with their
//! events, and the count per status.

use std::collections::{BTreeMap, HashSet};

use alloy::primitives::{Address, B256, U256};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{Cause, IN_FLIGHT, WAITING, bind_each};
use crate::{
    ids::{CheckoutId, OrderId},
    states::{BadgeAction, BadgeJobStatus},
    store::{
        Db, StoreError, b256_bytes,
        outbox::{self, NewEvent},
        to_address, to_b256, u256_bytes,
    },
};

/// One badge job, as the minter plans it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// Member wallet (for a move, the wallet the badge leaves).
    pub wallet: Address,
    /// What the job asks of the badge contract.
    pub action: BadgeAction,
    /// Tier the badge shows.
    pub tier: u8,
    /// Expiry the badge shows.
    pub expires_at: u64,
    /// For a move: the wallet the badge goes to.
    pub new_wallet: Option<Address>,
    /// The payment that caused the job, for its event.
    pub cause: Option<Cause>,
    /// The customer the member's wallet is bound to, for its event.
    pub customer_ref: Option<crate::billing::customers::CustomerRef>,
}

/// The `badge_jobs` columns [`job_of`] reads.
const JOB_COLUMNS: &str = "id, wallet, action, tier, expires_at, new_wallet, cause_order_id, cause_checkout_id, cause_tx_hash, \
     (SELECT c.customer_ref FROM customers c WHERE c.wallet = badge_jobs.wallet) AS customer_ref";

/// Decodes a `badge_jobs` row.
fn job_of(row: &AnyRow) -> Result<Job, StoreError> {
    let action: String = row.try_get("action")?;
    Ok(Job {
        id: row.try_get("id")?,
        wallet: to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "badge_jobs.wallet")?,
        action: action.parse().map_err(|_| StoreError::Corrupt("badge_jobs.action"))?,
        tier: row.try_get::<Option<i64>, _>("tier")?.unwrap_or(0).clamp(0, 255) as u8,
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.unwrap_or(0).max(0) as u64,
        new_wallet: row.try_get::<Option<Vec<u8>>, _>("new_wallet")?.map(|b| to_address(&b, "badge_jobs.new_wallet")).transpose()?,
        cause: match row.try_get::<Option<String>, _>("cause_order_id")? {
            Some(order_id) => Some(Cause {
                order_id: order_id.parse::<OrderId>().map_err(|_| StoreError::Corrupt("badge_jobs.cause_order_id"))?,
                checkout_id: row.try_get::<Option<String>, _>("cause_checkout_id")?.map(CheckoutId::from_stored),
                tx_hash: to_b256(&row.try_get::<Vec<u8>, _>("cause_tx_hash")?, "badge_jobs.cause_tx_hash")?,
            }),
            None => None,
        },
        customer_ref: row.try_get::<Option<String>, _>("customer_ref")?.map(crate::billing::customers::CustomerRef::stored),
    })
}

/// Returns the jobs due to be sent (queued, or failed and due for a retry), by id.
pub async fn due_jobs(db: &Db, now: i64) -> Result<Vec<Job>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM badge_jobs WHERE status IN ($1, $2) AND next_attempt_at <= $3 ORDER BY id");
    let rows = bind_each(sqlx::query(&sql), WAITING.map(BadgeJobStatus::as_str)).bind(now).fetch_all(db.pool()).await?;
    rows.iter().map(job_of).collect()
}

/// Supersedes the waiting jobs (queued, or failed and due for a retry later) that a later
/// job for the same wallet, in flight or confirmed, replaces: sent after it, the older job
/// would put an older state back on the badge (a job that failed, say in a batch a deep
/// reorg made revert, and came due after a newer one was confirmed). Moves neither replace
/// nor are replaced: a move is a barrier. Returns how many jobs were superseded.
pub async fn supersede_stale(db: &Db, now: i64) -> Result<u64, StoreError> {
    let query = sqlx::query(
        "UPDATE badge_jobs SET status = $1, updated_at = $2 WHERE status IN ($3, $4) AND action <> $5 AND EXISTS \
         (SELECT 1 FROM badge_jobs later WHERE later.wallet = badge_jobs.wallet AND later.id > badge_jobs.id \
         AND later.action <> $5 AND later.status IN ($6, $7, $8))",
    )
    .bind(BadgeJobStatus::Superseded.as_str())
    .bind(now);
    let query = bind_each(query, WAITING.map(BadgeJobStatus::as_str)).bind(BadgeAction::Move.as_str());
    let query = bind_each(query, [BadgeJobStatus::Sent, BadgeJobStatus::Mined, BadgeJobStatus::Confirmed].map(BadgeJobStatus::as_str));
    Ok(query.execute(db.pool()).await?.rows_affected())
}

/// Returns the wallets (old and new) of jobs in flight.
pub async fn busy_wallets(db: &Db) -> Result<HashSet<Vec<u8>>, StoreError> {
    Ok(bind_each(sqlx::query("SELECT wallet, new_wallet FROM badge_jobs WHERE status IN ($1, $2)"), IN_FLIGHT.map(BadgeJobStatus::as_str))
        .fetch_all(db.pool())
        .await?
        .iter()
        .flat_map(|r| [r.try_get::<Vec<u8>, _>("wallet").ok(), r.try_get::<Option<Vec<u8>>, _>("new_wallet").ok().flatten()])
        .flatten()
        .collect())
}

/// Marks jobs a later job for the same wallet replaced.
pub async fn supersede(db: &Db, ids: &[i64], now: i64) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    for id in ids {
        sqlx::query("UPDATE badge_jobs SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(BadgeJobStatus::Superseded.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Returns the ids of the jobs a batch carries (sent or mined).
pub(super) async fn jobs_in_batch(conn: &mut AnyConnection, batch_id: i64) -> Result<Vec<i64>, StoreError> {
    let query = sqlx::query("SELECT id FROM badge_jobs WHERE batch_id = $1 AND status IN ($2, $3)").bind(batch_id);
    let rows = bind_each(query, IN_FLIGHT.map(BadgeJobStatus::as_str)).fetch_all(conn).await?;
    Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
}

/// Returns the in-flight jobs of a batch with their positions in its call.
pub async fn batch_jobs(conn: &mut AnyConnection, batch_id: i64) -> Result<Vec<(Job, usize)>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS}, position FROM badge_jobs WHERE batch_id = $1 AND status IN ($2, $3) ORDER BY position");
    let rows = bind_each(sqlx::query(&sql).bind(batch_id), IN_FLIGHT.map(BadgeJobStatus::as_str)).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| Ok((job_of(r)?, r.try_get::<Option<i64>, _>("position")?.unwrap_or(0) as usize))).collect()
}

/// How failed jobs are retried: the first delay, doubling up to the longest.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First retry delay, in seconds.
    pub base_secs: f64,
    /// Longest retry delay, in seconds.
    pub max_secs: f64,
}

/// Records a failure on each job: status `failed`, the reason, and the time of the next
/// attempt (backoff doubling from the base up to the longest delay).
pub(super) async fn fail_jobs(conn: &mut AnyConnection, ids: &[i64], reason: &str, backoff: Backoff, now: i64) -> Result<usize, StoreError> {
    for id in ids {
        let attempts: i64 = sqlx::query("SELECT attempts FROM badge_jobs WHERE id = $1").bind(id).fetch_one(&mut *conn).await?.try_get(0)?;
        let attempts = attempts + 1;
        let delay = (backoff.base_secs * 2f64.powi((attempts - 1).min(20) as i32)).min(backoff.max_secs).ceil() as i64;
        sqlx::query(
            "UPDATE badge_jobs SET status = $1, attempts = $2, last_error = $3, next_attempt_at = $4, \
             batch_id = NULL, position = NULL, tx_hash = NULL, updated_at = $5 WHERE id = $6",
        )
        .bind(BadgeJobStatus::Failed.as_str())
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

/// Fails `ids` in a transaction of their own.
pub async fn fail_alone(db: &Db, ids: &[i64], reason: &str, backoff: Backoff, now: i64) -> Result<usize, StoreError> {
    let mut tx = db.begin_write().await?;
    let failed = fail_jobs(&mut tx, ids, reason, backoff, now).await?;
    tx.commit().await?;
    Ok(failed)
}

/// Confirms jobs with their token ids (and the transaction that did it, if any) and
/// writes their events, inside the caller's transaction.
pub async fn confirm_jobs(conn: &mut AnyConnection, done: &[(i64, U256)], tx_hash: Option<B256>, events: &[NewEvent], now: i64) -> Result<(), StoreError> {
    for (id, token_id) in done {
        sqlx::query(
            "UPDATE badge_jobs SET status = $1, token_id = $2, tx_hash = COALESCE($3, tx_hash), last_error = NULL, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(BadgeJobStatus::Confirmed.as_str())
        .bind(u256_bytes(*token_id))
        .bind(tx_hash.map(b256_bytes))
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    outbox::write_all(conn, events, now).await?;
    Ok(())
}

/// Marks jobs the contract can never take `rejected` with their reasons.
pub async fn reject_jobs(conn: &mut AnyConnection, rejected: &[(i64, String)], now: i64) -> Result<(), StoreError> {
    for (id, reason) in rejected {
        sqlx::query("UPDATE badge_jobs SET status = $1, last_error = $2, updated_at = $3 WHERE id = $4")
            .bind(BadgeJobStatus::Rejected.as_str())
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Returns how many badge jobs are in each status (statuses without a job are absent).
pub async fn job_counts(db: &Db) -> Result<BTreeMap<BadgeJobStatus, i64>, StoreError> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM badge_jobs GROUP BY status").fetch_all(db.pool()).await?;
    let mut counts = BTreeMap::new();
    for row in rows {
        let status = row.try_get::<String, _>("status")?.parse().map_err(|_| StoreError::Corrupt("badge_jobs.status"))?;
        counts.insert(status, row.try_get::<i64, _>("n")?);
    }
    Ok(counts)
}
