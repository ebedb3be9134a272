//! Confirmed batches after their confirmation: the recent ones the minter keeps checking
//! against the chain, and what it writes when a reorg deeper than the confirmations removed
//! one (mined again elsewhere, back in flight at its nonce, or given up with its jobs queued
//! again). Each write is one transaction.

use alloy::primitives::Address;
use sqlx::AnyConnection;

use super::{
    BatchStatus, OPEN,
    batches::{BATCH_COLUMNS, Batch, MinedAt, batch_of, set_mined_at},
    bind_each,
};
use crate::{
    states::{BadgeAction, BadgeJobStatus},
    store::{Db, StoreError, address_bytes, b256_bytes},
};

/// Returns the confirmed batches of `issuer` on `chain_id` mined at or above `from_block`,
/// newest block first.
pub async fn recent_confirmed(db: &Db, chain_id: u64, issuer: Address, from_block: u64) -> Result<Vec<Batch>, StoreError> {
    let sql = format!(
        "SELECT {BATCH_COLUMNS} FROM badge_batches WHERE chain_id = $1 AND issuer = $2 AND status = $3 AND mined_block >= $4 \
         ORDER BY mined_block DESC, nonce DESC"
    );
    let rows = sqlx::query(&sql)
        .bind(chain_id as i64)
        .bind(address_bytes(issuer))
        .bind(BatchStatus::Confirmed.as_str())
        .bind(from_block as i64)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(batch_of).collect()
}

/// Records where a confirmed batch's transaction is on the canonical chain (mined again
/// after a reorg, or its block hash first seen); its jobs name the version mined.
pub async fn confirmed_at(db: &Db, batch_id: i64, at: MinedAt, now: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    set_mined_at(&mut tx, batch_id, BatchStatus::Confirmed, at, now).await?;
    sqlx::query("UPDATE badge_jobs SET tx_hash = $1, updated_at = $2 WHERE batch_id = $3 AND status = $4")
        .bind(b256_bytes(at.tx_hash))
        .bind(now)
        .bind(batch_id)
        .bind(BadgeJobStatus::Confirmed.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Puts a confirmed batch whose transaction a reorg removed back in flight, to be sent
/// again at its nonce: the batch becomes `sent` and its confirmed jobs `sent`. Returns
/// `false`, changing nothing, when an open batch already holds that nonce.
pub async fn reopen_confirmed(db: &Db, batch_id: i64, now: i64) -> Result<bool, StoreError> {
    let mut tx = db.begin_write().await?;
    let query = sqlx::query(
        "UPDATE badge_batches SET status = $1, mined_tx_hash = NULL, mined_block = NULL, mined_block_hash = NULL, gas_used = NULL, \
         sent_at = $2, last_error = 'reorged out after confirmation', updated_at = $2 WHERE id = $3 AND status = $4 \
         AND NOT EXISTS (SELECT 1 FROM badge_batches o WHERE o.chain_id = badge_batches.chain_id AND o.issuer = badge_batches.issuer \
         AND o.nonce = badge_batches.nonce AND o.status IN ($5, $6, $7))",
    )
    .bind(BatchStatus::Sent.as_str())
    .bind(now)
    .bind(batch_id)
    .bind(BatchStatus::Confirmed.as_str());
    if bind_each(query, OPEN.map(BatchStatus::as_str)).execute(&mut *tx).await?.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE badge_jobs SET status = $1, updated_at = $2 WHERE batch_id = $3 AND status = $4")
        .bind(BadgeJobStatus::Sent.as_str())
        .bind(now)
        .bind(batch_id)
        .bind(BadgeJobStatus::Confirmed.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives up a confirmed batch a reorg removed, as `status` with `reason`: `dropped` when
/// another transaction took its nonce, `reverted` when it was mined again and reverted.
/// Its jobs are queued again, except those a later job for the same wallet (other than a
/// move, which needs the badge first) already replaces: those are `superseded`, so an
/// older state never overwrites a newer one. Returns how many jobs were queued again.
pub async fn requeue_confirmed(db: &Db, batch_id: i64, status: BatchStatus, reason: &str, now: i64) -> Result<u64, StoreError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = $1, last_error = $2, updated_at = $3 WHERE id = $4")
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    supersede_replaced(&mut tx, batch_id, now).await?;
    let queued = sqlx::query(
        "UPDATE badge_jobs SET status = $1, batch_id = NULL, position = NULL, tx_hash = NULL, last_error = $2, next_attempt_at = $3, \
         updated_at = $3 WHERE batch_id = $4 AND status = $5",
    )
    .bind(BadgeJobStatus::Queued.as_str())
    .bind(reason)
    .bind(now)
    .bind(batch_id)
    .bind(BadgeJobStatus::Confirmed.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(queued)
}

/// Supersedes the confirmed jobs of a batch that a later job for the same wallet replaces
/// (any later job but a move that is not itself superseded or rejected).
async fn supersede_replaced(conn: &mut AnyConnection, batch_id: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE badge_jobs SET status = $1, updated_at = $2 WHERE batch_id = $3 AND status = $4 AND EXISTS \
         (SELECT 1 FROM badge_jobs later WHERE later.wallet = badge_jobs.wallet AND later.id > badge_jobs.id \
         AND later.action <> $5 AND later.status NOT IN ($6, $7))",
    )
    .bind(BadgeJobStatus::Superseded.as_str())
    .bind(now)
    .bind(batch_id)
    .bind(BadgeJobStatus::Confirmed.as_str())
    .bind(BadgeAction::Move.as_str())
    .bind(BadgeJobStatus::Superseded.as_str())
    .bind(BadgeJobStatus::Rejected.as_str())
    .execute(conn)
    .await?;
    Ok(())
}
