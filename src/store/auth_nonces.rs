//! Owner of `auth_nonces`: the single-use, short-lived nonces of Sign-In with Ethereum.

use sqlx::Row;

use super::{Db, StoreError};

/// What spending a nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// The nonce was unused and unexpired; it is now used.
    Spent,
    /// The nonce was used before (a replayed message).
    Replayed,
    /// The nonce has expired.
    Expired,
    /// The service never issued it.
    Unknown,
}

/// Stores a new nonce issued at `now`, valid until `expires_at`, and deletes nonces that
/// expired before `now`.
pub async fn insert(db: &Db, nonce: &str, now: i64, expires_at: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM auth_nonces WHERE expires_at < $1").bind(now).execute(db.pool()).await?;
    sqlx::query("INSERT INTO auth_nonces (nonce, issued_at, expires_at) VALUES ($1, $2, $3)").bind(nonce).bind(now).bind(expires_at).execute(db.pool()).await?;
    Ok(())
}

/// Returns whether `nonce` could be spent at `now`, without spending it.
pub async fn peek(db: &Db, nonce: &str, now: i64) -> Result<Spend, StoreError> {
    let row = sqlx::query("SELECT expires_at, used_at FROM auth_nonces WHERE nonce = $1").bind(nonce).fetch_optional(db.pool()).await?;
    let Some(row) = row else { return Ok(Spend::Unknown) };
    let expires_at: i64 = row.try_get("expires_at")?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    Ok(if used_at.is_some() {
        Spend::Replayed
    } else if expires_at <= now {
        Spend::Expired
    } else {
        Spend::Spent
    })
}

/// Spends `nonce` at `now`: one guarded UPDATE, so of two concurrent sign-ins with the
/// same nonce exactly one wins.
pub async fn spend(db: &Db, nonce: &str, now: i64) -> Result<Spend, StoreError> {
    let done = sqlx::query("UPDATE auth_nonces SET used_at = $1 WHERE nonce = $2 AND used_at IS NULL AND expires_at > $1")
        .bind(now)
        .bind(nonce)
        .execute(db.pool())
        .await?;
    if done.rows_affected() == 1 {
        return Ok(Spend::Spent);
    }
    match peek(db, nonce, now).await? {
        Spend::Spent => Ok(Spend::Replayed),
        other => Ok(other),
    }
}
