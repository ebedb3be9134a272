//! `badge_batches` (one row per issuer nonce the minter used), `badge_batch_txs` (every
//! signed version of a batch) and `minter_state` (the next issuer nonce): the batch
//! transactions the minter writes ahead, tracks and settles, with the jobs they carry.

use alloy::primitives::{Address, B256, Bytes, U256};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{
    BatchStatus, IN_FLIGHT, OPEN, bind_each,
    minter_jobs::{Backoff, fail_jobs, jobs_in_batch},
};
use crate::{
    states::{BadgeAction, BadgeJobStatus},
    store::{Db, StoreError, address_bytes, b256_bytes, to_b256, to_u256, u256_bytes},
};

/// One open batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Row id.
    pub id: i64,
    /// The issuer nonce it uses.
    pub nonce: u64,
    /// The badge contract call it makes.
    pub call: BadgeAction,
    /// The call's encoded input.
    pub input: Bytes,
    /// Gas limit it was signed with.
    pub gas_limit: u64,
    /// Where it is.
    pub status: BatchStatus,
    /// How many fee-bumped replacements were sent.
    pub bumps: u32,
    /// `maxFeePerGas` of the current version (wei).
    pub max_fee: u128,
    /// `maxPriorityFeePerGas` of the current version (wei).
    pub priority_fee: u128,
    /// Hash of the current version.
    pub tx_hash: B256,
    /// The current version's signed bytes (re-broadcast as they are).
    pub raw: Vec<u8>,
    /// When the current version was last sent.
    pub sent_at: Option<i64>,
    /// The block it was seen mined in.
    pub mined_block: Option<u64>,
    /// That block's hash (None for batches recorded before it was kept).
    pub mined_block_hash: Option<B256>,
}

/// A signed batch to write ahead of its broadcast.
#[derive(Debug, Clone)]
pub struct NewBatch<'a> {
    /// The issuer nonce it is signed for.
    pub nonce: u64,
    /// The badge contract call it makes.
    pub call: BadgeAction,
    /// The call's encoded input.
    pub input: &'a [u8],
    /// Gas limit it is signed with.
    pub gas_limit: u64,
    /// `maxFeePerGas` (wei).
    pub max_fee: u128,
    /// `maxPriorityFeePerGas` (wei).
    pub priority_fee: u128,
    /// The signed transaction's hash.
    pub tx_hash: B256,
    /// The signed bytes.
    pub raw: &'a [u8],
    /// The jobs it carries, in call order.
    pub job_ids: Vec<i64>,
}

/// Decodes a stored fee.
fn fee_of(bytes: &[u8]) -> Result<u128, StoreError> {
    let value = to_u256(bytes, "badge_batches fee")?;
    u128::try_from(value).map_err(|_| StoreError::Corrupt("badge_batches fee"))
}

/// Decodes a `badge_batches` row.
pub(super) fn batch_of(r: &AnyRow) -> Result<Batch, StoreError> {
    Ok(Batch {
        id: r.try_get("id")?,
        nonce: r.try_get::<i64, _>("nonce")? as u64,
        call: r.try_get::<String, _>("call")?.parse().map_err(|_| StoreError::Corrupt("badge_batches.call"))?,
        input: Bytes::from(r.try_get::<Vec<u8>, _>("input")?),
        gas_limit: r.try_get::<i64, _>("gas_limit")? as u64,
        status: r.try_get::<String, _>("status")?.parse().map_err(|_| StoreError::Corrupt("badge_batches.status"))?,
        bumps: r.try_get::<i64, _>("bumps")? as u32,
        max_fee: fee_of(&r.try_get::<Vec<u8>, _>("max_fee")?)?,
        priority_fee: fee_of(&r.try_get::<Vec<u8>, _>("priority_fee")?)?,
        tx_hash: to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "badge_batches.tx_hash")?,
        raw: r.try_get("raw_tx")?,
        sent_at: r.try_get("sent_at")?,
        mined_block: r.try_get::<Option<i64>, _>("mined_block")?.map(|v| v as u64),
        mined_block_hash: r.try_get::<Option<Vec<u8>>, _>("mined_block_hash")?.map(|b| to_b256(&b, "badge_batches.mined_block_hash")).transpose()?,
    })
}

/// The `badge_batches` columns [`batch_of`] reads.
pub(super) const BATCH_COLUMNS: &str =
    "id, nonce, call, input, gas_limit, status, bumps, max_fee, priority_fee, tx_hash, raw_tx, sent_at, mined_block, mined_block_hash";

/// Returns the open batches of `issuer` on `chain_id`, by nonce.
pub async fn open_batches(db: &Db, chain_id: u64, issuer: Address) -> Result<Vec<Batch>, StoreError> {
    let sql = format!("SELECT {BATCH_COLUMNS} FROM badge_batches WHERE chain_id = $1 AND issuer = $2 AND status IN ($3, $4, $5) ORDER BY nonce");
    let query = sqlx::query(&sql).bind(chain_id as i64).bind(address_bytes(issuer));
    let rows = bind_each(query, OPEN.map(BatchStatus::as_str)).fetch_all(db.pool()).await?;
    rows.iter().map(batch_of).collect()
}

/// Returns how many batches of `issuer` are open.
pub async fn count_open(db: &Db, chain_id: u64, issuer: Address) -> Result<i64, StoreError> {
    let query = sqlx::query("SELECT COUNT(*) FROM badge_batches WHERE chain_id = $1 AND issuer = $2 AND status IN ($3, $4, $5)")
        .bind(chain_id as i64)
        .bind(address_bytes(issuer));
    Ok(bind_each(query, OPEN.map(BatchStatus::as_str)).fetch_one(db.pool()).await?.try_get(0)?)
}

/// Returns the hashes of every signed version of a batch, newest first.
pub async fn versions(db: &Db, batch_id: i64) -> Result<Vec<B256>, StoreError> {
    let rows = sqlx::query("SELECT tx_hash FROM badge_batch_txs WHERE batch_id = $1 ORDER BY created_at DESC").bind(batch_id).fetch_all(db.pool()).await?;
    rows.iter().map(|r| to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "badge_batch_txs.tx_hash")).collect()
}

/// Sets the status of the in-flight jobs of a batch.
async fn set_jobs_status(conn: &mut AnyConnection, batch_id: i64, status: BadgeJobStatus, now: i64) -> Result<(), StoreError> {
    let query = sqlx::query("UPDATE badge_jobs SET status = $1, updated_at = $2 WHERE batch_id = $3 AND status IN ($4, $5)")
        .bind(status.as_str())
        .bind(now)
        .bind(batch_id);
    bind_each(query, IN_FLIGHT.map(BadgeJobStatus::as_str)).execute(conn).await?;
    Ok(())
}

/// Where a version of a batch was mined.
#[derive(Debug, Clone, Copy)]
pub struct MinedAt {
    /// The version that was mined.
    pub tx_hash: B256,
    /// Its block number.
    pub block: u64,
    /// Its block hash.
    pub block_hash: B256,
    /// Gas it used.
    pub gas_used: u64,
}

/// Records where the batch was mined, with `status`.
pub(super) async fn set_mined_at(conn: &mut AnyConnection, batch_id: i64, status: BatchStatus, at: MinedAt, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE badge_batches SET status = $1, mined_tx_hash = $2, mined_block = $3, mined_block_hash = $4, gas_used = $5, \
         updated_at = $6 WHERE id = $7",
    )
    .bind(status.as_str())
    .bind(b256_bytes(at.tx_hash))
    .bind(at.block as i64)
    .bind(b256_bytes(at.block_hash))
    .bind(at.gas_used as i64)
    .bind(now)
    .bind(batch_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that a version of the batch was mined at `at`.
pub async fn mark_mined(db: &Db, batch_id: i64, at: MinedAt, now: i64) -> Result<(), StoreError> {
    let tx_hash = at.tx_hash;
    let mut tx = db.begin_write().await?;
    set_mined_at(&mut tx, batch_id, BatchStatus::Mined, at, now).await?;
    let query = sqlx::query("UPDATE badge_jobs SET status = $1, tx_hash = $2, updated_at = $3 WHERE batch_id = $4 AND status IN ($5, $6)")
        .bind(BadgeJobStatus::Mined.as_str())
        .bind(b256_bytes(tx_hash))
        .bind(now)
        .bind(batch_id);
    bind_each(query, IN_FLIGHT.map(BadgeJobStatus::as_str)).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a batch's status and its in-flight jobs' status.
pub async fn set_batch_status(db: &Db, batch_id: i64, batch_status: BatchStatus, job_status: BadgeJobStatus, now: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(batch_status.as_str())
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    set_jobs_status(&mut tx, batch_id, job_status, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Records that the node took the batch's current version.
pub async fn mark_sent(db: &Db, batch_id: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE badge_batches SET status = $1, sent_at = $2, updated_at = $2 WHERE id = $3 AND status IN ($4, $5)")
        .bind(BatchStatus::Sent.as_str())
        .bind(now)
        .bind(batch_id)
        .bind(BatchStatus::Signed.as_str())
        .bind(BatchStatus::Sent.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Gives up a batch whose nonce another transaction consumed; its jobs go back to the queue.
pub async fn drop_batch(db: &Db, batch_id: i64, now: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = $1, last_error = 'nonce used by another transaction', updated_at = $2 WHERE id = $3")
        .bind(BatchStatus::Dropped.as_str())
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    let query = sqlx::query(
        "UPDATE badge_jobs SET status = $1, batch_id = NULL, position = NULL, tx_hash = NULL, updated_at = $2 \
         WHERE batch_id = $3 AND status IN ($4, $5)",
    )
    .bind(BadgeJobStatus::Queued.as_str())
    .bind(now)
    .bind(batch_id);
    bind_each(query, IN_FLIGHT.map(BadgeJobStatus::as_str)).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Notes why a batch is not moving (shown in `badge_batches.last_error`); with `resent`
/// its wait for the stuck timeout starts over.
pub async fn note_error(db: &Db, batch_id: i64, reason: &str, resent: bool, now: i64) -> Result<(), StoreError> {
    let sql = if resent {
        "UPDATE badge_batches SET last_error = $1, sent_at = $2, updated_at = $2 WHERE id = $3"
    } else {
        "UPDATE badge_batches SET last_error = $1, updated_at = $2 WHERE id = $3"
    };
    sqlx::query(sql).bind(reason).bind(now).bind(batch_id).execute(db.pool()).await?;
    Ok(())
}

/// Deletes batches the node never accepted and fails their jobs with `reason`.
pub async fn discard_batches(db: &Db, batch_ids: &[i64], reason: &str, backoff: Backoff, now: i64) -> Result<usize, StoreError> {
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
pub async fn mark_reverted(db: &Db, batch_id: i64, reason: &str, backoff: Backoff, now: i64) -> Result<usize, StoreError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE badge_batches SET status = $1, last_error = $2, updated_at = $3 WHERE id = $4")
        .bind(BatchStatus::Reverted.as_str())
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

/// Marks a batch confirmed.
pub async fn mark_confirmed(conn: &mut AnyConnection, batch_id: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE badge_batches SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(BatchStatus::Confirmed.as_str())
        .bind(now)
        .bind(batch_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Write-ahead: stores signed batches, their versions and jobs, and the next nonce, before
/// any is broadcast; returns the batch ids in order.
pub async fn write_ahead(db: &Db, chain_id: u64, issuer: Address, batches: &[NewBatch<'_>], next_nonce: u64, now: i64) -> Result<Vec<i64>, StoreError> {
    let mut tx = db.begin_write().await?;
    let mut batch_ids = Vec::with_capacity(batches.len());
    for b in batches {
        let id: i64 = sqlx::query(
            "INSERT INTO badge_batches (chain_id, issuer, nonce, call, input, gas_limit, status, max_fee, priority_fee, \
             tx_hash, raw_tx, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
        )
        .bind(chain_id as i64)
        .bind(address_bytes(issuer))
        .bind(b.nonce as i64)
        .bind(b.call.as_str())
        .bind(b.input.to_vec())
        .bind(b.gas_limit as i64)
        .bind(BatchStatus::Signed.as_str())
        .bind(u256_bytes(U256::from(b.max_fee)))
        .bind(u256_bytes(U256::from(b.priority_fee)))
        .bind(b256_bytes(b.tx_hash))
        .bind(b.raw.to_vec())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        insert_version(&mut tx, id, b.tx_hash, b.max_fee, b.priority_fee, now).await?;
        for (position, job_id) in b.job_ids.iter().enumerate() {
            sqlx::query("UPDATE badge_jobs SET status = $1, batch_id = $2, position = $3, updated_at = $4 WHERE id = $5")
                .bind(BadgeJobStatus::Sent.as_str())
                .bind(id)
                .bind(position as i64)
                .bind(now)
                .bind(job_id)
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
async fn insert_version(conn: &mut AnyConnection, batch_id: i64, hash: B256, max_fee: u128, priority: u128, now: i64) -> Result<(), StoreError> {
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
pub async fn write_version(db: &Db, batch_id: i64, hash: B256, max_fee: u128, priority: u128, now: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    insert_version(&mut tx, batch_id, hash, max_fee, priority, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Makes an accepted replacement the batch's current version.
pub async fn replaced(db: &Db, batch_id: i64, hash: B256, raw: &[u8], max_fee: u128, priority: u128, now: i64) -> Result<(), StoreError> {
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
