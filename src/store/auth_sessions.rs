//! Owner of `auth_sessions`: the account page's sessions. The cookie holds a random secret;
//! only its SHA-256 is stored. Writes go through [`Db::begin_write`] (on SQLite the
//! process's write gate), or through the caller's transaction when a member action ends a
//! wallet's sessions with its other effects.

use alloy::primitives::Address;
use sqlx::{AnyConnection, Row};

use super::{Db, StoreError, address_bytes, to_address};

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The member's wallet.
    pub wallet: Address,
    /// The cross-site request token the page must send with changes.
    pub csrf: String,
    /// When the member signed the message that opened it.
    pub auth_time: u64,
    /// When it ends.
    pub expires_at: u64,
}

/// Stores a new session (`id_hash`: the SHA-256 of its secret); deletes the sessions that
/// ended or expired a day before `now` first, so the table holds live sessions.
pub async fn create(db: &Db, id_hash: &[u8], session: &Session, now: u64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    sqlx::query("DELETE FROM auth_sessions WHERE expires_at < $1 OR ended_at < $1").bind(now as i64 - 86_400).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO auth_sessions (id_hash, wallet, csrf, auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id_hash.to_vec())
        .bind(address_bytes(session.wallet))
        .bind(&session.csrf)
        .bind(session.auth_time as i64)
        .bind(now as i64)
        .bind(session.expires_at as i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Returns the session `id_hash` names when it is live at `now` (not ended, not expired).
pub async fn live(db: &Db, id_hash: &[u8], now: u64) -> Result<Option<Session>, StoreError> {
    let row = sqlx::query("SELECT wallet, csrf, auth_time, expires_at FROM auth_sessions WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2")
        .bind(id_hash.to_vec())
        .bind(now as i64)
        .fetch_optional(db.pool())
        .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(Session {
        wallet: to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "auth_sessions.wallet")?,
        csrf: r.try_get("csrf")?,
        auth_time: r.try_get::<i64, _>("auth_time")? as u64,
        expires_at: r.try_get::<i64, _>("expires_at")? as u64,
    }))
}

/// Ends the session `id_hash` names (signed out).
pub async fn end(db: &Db, id_hash: &[u8], now: u64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    sqlx::query("UPDATE auth_sessions SET ended_at = $1 WHERE id_hash = $2 AND ended_at IS NULL")
        .bind(now as i64)
        .bind(id_hash.to_vec())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends every live session of `wallet` inside the caller's transaction; returns how many.
pub async fn end_wallet(conn: &mut AnyConnection, wallet: Address, now: u64) -> Result<u64, StoreError> {
    let done = sqlx::query("UPDATE auth_sessions SET ended_at = $1 WHERE wallet = $2 AND ended_at IS NULL")
        .bind(now as i64)
        .bind(address_bytes(wallet))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Ends every live session of `wallet` (sign out everywhere); returns how many.
pub async fn end_all(db: &Db, wallet: Address, now: u64) -> Result<u64, StoreError> {
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    let n = end_wallet(&mut tx, wallet, now).await?;
    tx.commit().await?;
    Ok(n)
}
