//! Owner of `api_keys`: merchant API keys, `tmai_sk_` and 64 hex digits, stored only as
//! their SHA-256, several at once, revocable. The HTTP layer checks them
//! ([`crate::http::keys`]); the command line creates, lists and revokes them.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Db, StoreError};

/// A stored key, without its secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyInfo {
    /// Key id (for revoking).
    pub id: i64,
    /// Name given at creation.
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// Unix time of creation.
    pub created_at: i64,
    /// Unix time of revocation, if revoked.
    pub revoked_at: Option<i64>,
}

fn digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Creates a key named `name` at unix time `now`; returns its id and the key, which is
/// not stored and cannot be shown again.
pub async fn create(db: &Db, name: &str, now: i64) -> Result<(i64, String), StoreError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("tmai_sk_{}", alloy::hex::encode(bytes));
    let id: i64 = sqlx::query("INSERT INTO api_keys (name, prefix, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(name)
        .bind(&key[..16])
        .bind(digest(&key))
        .bind(now)
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    Ok((id, key))
}

/// Lists every key, revoked ones included.
pub async fn list(db: &Db) -> Result<Vec<ApiKeyInfo>, StoreError> {
    let rows = sqlx::query("SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY id").fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(ApiKeyInfo {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                prefix: r.try_get("prefix")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revokes key `id` at unix time `now`; returns whether a live key was revoked.
pub async fn revoke(db: &Db, id: i64, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(now).bind(id).execute(db.pool()).await?;
    Ok(done.rows_affected() == 1)
}

/// Returns the id of the live key `key`, if any.
pub async fn verify(db: &Db, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query("SELECT id FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
        .bind(digest(key))
        .fetch_optional(db.pool())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}
