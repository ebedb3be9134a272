//! The minter's tables (`badge_jobs`, `badge_batches`, `badge_batch_txs`, `minter_state`):
//! every statement the minter runs, each taking the time it writes from the caller's
//! clock. Badge jobs are queued by their producers through [`crate::store::badge_jobs`];
//! from there on only this module changes them.

use std::collections::{BTreeMap, HashSet};

use alloy::primitives::{Address, B256, Bytes, U256};
use sqlx::{AnyConnection, Row};

use super::{
    MintError,
    types::{Batch, JOB_COLUMNS, Job, Signed, fee_of, job_of},
};
use crate::store::{
    Db, StoreError, address_bytes, b256_bytes,
    outbox::{self, NewEvent},
    to_b256, u256_bytes,
};

/// Batch statuses that are still in flight.
const OPEN: &str = "('signed', 'sent', 'mined')";

/// Returns the open batches of `issuer` on `chain_id`, by nonce.
pub(super) async fn open_batches(db: &Db, chain_id: u64, issuer: Address) -> Result<Vec<Batch>, MintError> {
    let rows = sqlx::query(&format!(
        "SELECT id, nonce, call, input, gas_limit, status, bumps, max_fee, priority_fee, tx_hash, raw_tx, sent_at, mined_block \
         FROM badge_batches WHERE chain_id = $1 AND issuer = $2 AND status IN {OPEN} ORDER BY nonce"
    ))
    .bind(chain_id as i64)
    .bind(address_bytes(issuer))
    .fetch_all(db.pool())
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

/// Returns how many batches of `issuer` are open.
pub(super) async fn count_open(db: &Db, chain_id: u64, issuer: Address) -> Result<i64, MintError> {
    let sql = format!("SELECT COUNT(*) FROM badge_batches WHERE chain_id = $1 AND issuer = $2 AND status IN {OPEN}");
    Ok(sqlx::query(&sql).bind(chain_id as i64).bind(address_bytes(issuer)).fetch_one(db.pool()).await?.try_get(0)?)
}

/// Returns the hashes of every signed version of a batch, newest first.
pub(super) async fn versions(db: &Db, batch_id: i64) -> Result<Vec<B256>, MintError> {
    let rows = sqlx::query("SELECT tx_hash FROM badge_batch_txs WHERE batch_id = $1 ORDER BY created_at DESC").bind(batch_id).fetch_all(db.pool()).await?;
    Ok(rows.iter().map(|r| to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "badge_batch_txs.tx_hash")).collect::<Result<_, _>>()?)
}

/// Records that a version of the batch was mined in `block`.
pub(super) async fn mark_mined(db: &Db, batch_id: i64, tx_hash: B256, block: u64, gas_used: u64, now: i64) -> Result<(), MintError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = 'mined', mined_tx_hash = $1, mined_block = $2, gas_used = $3, updated_at = $4 WHERE id = $5")
        .bind(b256_bytes(tx_hash))
        .bind(block as i64)
        .bind(gas_used as i64)
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE badge_jobs SET status = 'mined', tx_hash = $1, updated_at = $2 WHERE batch_id = $3 AND status IN ('sent', 'mined')")
        .bind(b256_bytes(tx_hash))
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a batch's status and its in-flight jobs' status.
pub(super) async fn set_batch_status(db: &Db, batch_id: i64, batch_status: &str, job_status: &str, now: i64) -> Result<(), MintError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = $1, updated_at = $2 WHERE id = $3").bind(batch_status).bind(now).bind(batch_id).execute(&mut *tx).await?;
    sqlx::query("UPDATE badge_jobs SET status = $1, updated_at = $2 WHERE batch_id = $3 AND status IN ('sent', 'mined')")
        .bind(job_status)
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Records that the node took the batch's current version.
pub(super) async fn mark_sent(db: &Db, batch_id: i64, now: i64) -> Result<(), MintError> {
    sqlx::query("UPDATE badge_batches SET status = 'sent', sent_at = $1, updated_at = $1 WHERE id = $2 AND status IN ('signed', 'sent')")
        .bind(now)
        .bind(batch_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Gives up a batch whose nonce another transaction consumed; its jobs go back to the queue.
pub(super) async fn drop_batch(db: &Db, batch_id: i64, now: i64) -> Result<(), MintError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = 'dropped', last_error = 'nonce used by another transaction', updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE badge_jobs SET status = 'queued', batch_id = NULL, position = NULL, tx_hash = NULL, updated_at = $1 \
         WHERE batch_id = $2 AND status IN ('sent', 'mined')",
    )
    .bind(now)
    .bind(batch_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Notes why a batch is not moving (shown in `badge_batches.last_error`); with `resent`
/// its wait for the stuck timeout starts over.
pub(super) async fn note_error(db: &Db, batch_id: i64, reason: &str, resent: bool, now: i64) -> Result<(), MintError> {
    let sql = if resent {
        "UPDATE badge_batches SET last_error = $1, sent_at = $2, updated_at = $2 WHERE id = $3"
    } else {
        "UPDATE badge_batches SET last_error = $1, updated_at = $2 WHERE id = $3"
    };
    sqlx::query(sql).bind(reason).bind(now).bind(batch_id).execute(db.pool()).await?;
    Ok(())
}

/// Returns the ids of the jobs a batch carries (sent or mined).
async fn jobs_in_batch(conn: &mut AnyConnection, batch_id: i64) -> Result<Vec<i64>, MintError> {
    let rows = sqlx::query("SELECT id FROM badge_jobs WHERE batch_id = $1 AND status IN ('sent', 'mined')").bind(batch_id).fetch_all(conn).await?;
    Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
}

/// How failed jobs are retried: the first delay, doubling up to the longest.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    pub(super) base_secs: f64,
    pub(super) max_secs: f64,
}

/// Records a failure on each job: status `failed`, the reason, and the time of the next
/// attempt (backoff doubling from the base up to the longest delay).
pub(super) async fn fail_jobs(conn: &mut AnyConnection, ids: &[i64], reason: &str, backoff: Backoff, now: i64) -> Result<usize, MintError> {
    for id in ids {
        let attempts: i64 = sqlx::query("SELECT attempts FROM badge_jobs WHERE id = $1").bind(id).fetch_one(&mut *conn).await?.try_get(0)?;
        let attempts = attempts + 1;
        let delay = (backoff.base_secs * 2f64.powi((attempts - 1).min(20) as i32)).min(backoff.max_secs).ceil() as i64;
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

/// Fails `ids` in a transaction of their own.
pub(super) async fn fail_alone(db: &Db, ids: &[i64], reason: &str, backoff: Backoff, now: i64) -> Result<usize, MintError> {
    let mut tx = db.begin_write().await?;
    let failed = fail_jobs(&mut tx, ids, reason, backoff, now).await?;
    tx.commit().await?;
    Ok(failed)
}

/// Deletes batches the node never accepted and fails their jobs with `reason`.
pub(super) async fn discard_batches(db: &Db, batch_ids: &[i64], reason: &str, backoff: Backoff, now: i64) -> Result<usize, MintError> {
    let mut tx = db.begin_write().await?;
    let mut failed = 0;
    for id in batch_ids {
        let jobs = jobs_in_batch(&mut tx, *id).await?;
        failed += fail_jobs(&mut tx, &jobs, reason, backoff, now).await?;
        sqlx::query("DELETE FROM badge_batch_txs WHERE batch_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM badge_batches WHERE id = $1").bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(failed)
}

/// Records a reverted batch; its jobs fail with `reason`.
pub(super) async fn mark_reverted(db: &Db, batch_id: i64, reason: &str, backoff: Backoff, now: i64) -> Result<usize, MintError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = 'reverted', last_error = $1, updated_at = $2 WHERE id = $3")
        .bind(reason)
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    let ids = jobs_in_batch(&mut tx, batch_id).await?;
    let failed = fail_jobs(&mut tx, &ids, reason, backoff, now).await?;
    tx.commit().await?;
    Ok(failed)
}

/// Returns the in-flight jobs of a batch with their positions in its call.
pub(super) async fn batch_jobs(conn: &mut AnyConnection, batch_id: i64) -> Result<Vec<(Job, usize)>, MintError> {
    let rows = sqlx::query(&format!("SELECT {JOB_COLUMNS}, position FROM badge_jobs WHERE batch_id = $1 AND status IN ('sent', 'mined') ORDER BY position"))
        .bind(batch_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| Ok((job_of(r)?, r.try_get::<Option<i64>, _>("position")?.unwrap_or(0) as usize))).collect()
}

/// Confirms jobs with their token ids (and the transaction that did it, if any) and
/// writes their events, inside the caller's transaction.
pub(super) async fn confirm_jobs(
    conn: &mut AnyConnection,
    done: &[(i64, U256)],
    tx_hash: Option<B256>,
    events: &[NewEvent],
    now: i64,
) -> Result<(), MintError> {
    for (id, token_id) in done {
        sqlx::query(
            "UPDATE badge_jobs SET status = 'confirmed', token_id = $1, tx_hash = COALESCE($2, tx_hash), last_error = NULL, \
             updated_at = $3 WHERE id = $4",
        )
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

/// Marks a batch confirmed.
pub(super) async fn mark_confirmed(conn: &mut AnyConnection, batch_id: i64, now: i64) -> Result<(), MintError> {
    sqlx::query("UPDATE badge_batches SET status = 'confirmed', updated_at = $1 WHERE id = $2").bind(now).bind(batch_id).execute(conn).await?;
    Ok(())
}

/// Marks jobs the contract can never take `rejected` with their reasons.
pub(super) async fn reject_jobs(conn: &mut AnyConnection, rejected: &[(i64, String)], now: i64) -> Result<(), MintError> {
    for (id, reason) in rejected {
        sqlx::query("UPDATE badge_jobs SET status = 'rejected', last_error = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Returns the jobs due to be sent (queued, or failed and due for a retry), by id.
pub(super) async fn due_jobs(db: &Db, now: i64) -> Result<Vec<Job>, MintError> {
    let rows = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM badge_jobs WHERE status IN ('queued', 'failed') AND next_attempt_at <= $1 ORDER BY id"))
        .bind(now)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(job_of).collect::<Result<_, _>>()?)
}

/// Returns the wallets (old and new) of jobs in flight.
pub(super) async fn busy_wallets(db: &Db) -> Result<HashSet<Vec<u8>>, MintError> {
    Ok(sqlx::query("SELECT wallet, new_wallet FROM badge_jobs WHERE status IN ('sent', 'mined')")
        .fetch_all(db.pool())
        .await?
        .iter()
        .flat_map(|r| [r.try_get::<Vec<u8>, _>("wallet").ok(), r.try_get::<Option<Vec<u8>>, _>("new_wallet").ok().flatten()])
        .flatten()
        .collect())
}

/// Marks jobs a later job for the same wallet replaced.
pub(super) async fn supersede(db: &Db, ids: &[i64], now: i64) -> Result<(), MintError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    for id in ids {
        sqlx::query("UPDATE badge_jobs SET status = 'superseded', updated_at = $1 WHERE id = $2").bind(now).bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Write-ahead: stores signed batches, their versions and jobs, and the next nonce, before
/// any is broadcast; returns the batch ids in order.
pub(super) async fn write_ahead(db: &Db, chain_id: u64, issuer: Address, signed: &[Signed], next_nonce: u64, now: i64) -> Result<Vec<i64>, MintError> {
    let mut tx = db.begin_write().await?;
    let mut batch_ids = Vec::with_capacity(signed.len());
    for s in signed {
        let id: i64 = sqlx::query(
            "INSERT INTO badge_batches (chain_id, issuer, nonce, call, input, gas_limit, status, max_fee, priority_fee, \
             tx_hash, raw_tx, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'signed', $7, $8, $9, $10, $11, $11) RETURNING id",
        )
        .bind(chain_id as i64)
        .bind(address_bytes(issuer))
        .bind(s.nonce as i64)
        .bind(s.planned.call.as_str())
        .bind(s.planned.input.to_vec())
        .bind(s.planned.gas_limit as i64)
        .bind(u256_bytes(U256::from(s.fees.max_fee)))
        .bind(u256_bytes(U256::from(s.fees.priority)))
        .bind(b256_bytes(s.hash))
        .bind(s.raw.clone())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        insert_version(&mut tx, id, s.hash, s.fees.max_fee, s.fees.priority, now).await?;
        for (position, job) in s.planned.jobs.iter().enumerate() {
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
    .bind(chain_id as i64)
    .bind(address_bytes(issuer))
    .bind(next_nonce as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(batch_ids)
}

/// Stores one signed version of a batch (any version may be the one mined).
pub(super) async fn insert_version(conn: &mut AnyConnection, batch_id: i64, hash: B256, max_fee: u128, priority: u128, now: i64) -> Result<(), MintError> {
    sqlx::query("INSERT INTO badge_batch_txs (tx_hash, batch_id, max_fee, priority_fee, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(b256_bytes(hash))
        .bind(batch_id)
        .bind(u256_bytes(U256::from(max_fee)))
        .bind(u256_bytes(U256::from(priority)))
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a replacement's version ahead of its broadcast.
pub(super) async fn write_version(db: &Db, batch_id: i64, hash: B256, max_fee: u128, priority: u128, now: i64) -> Result<(), MintError> {
    let mut tx = db.begin_write().await?;
    insert_version(&mut tx, batch_id, hash, max_fee, priority, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Makes an accepted replacement the batch's current version.
pub(super) async fn replaced(db: &Db, batch_id: i64, hash: B256, raw: &[u8], max_fee: u128, priority: u128, now: i64) -> Result<(), MintError> {
    sqlx::query(
        "UPDATE badge_batches SET tx_hash = $1, raw_tx = $2, max_fee = $3, priority_fee = $4, bumps = bumps + 1, \
         sent_at = $5, last_error = NULL, updated_at = $5 WHERE id = $6",
    )
    .bind(b256_bytes(hash))
    .bind(raw.to_vec())
    .bind(u256_bytes(U256::from(max_fee)))
    .bind(u256_bytes(U256::from(priority)))
    .bind(now)
    .bind(batch_id)
    .execute(db.pool())
    .await?;
    Ok(())
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
