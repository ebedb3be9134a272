//! Merchant API keys: `tmai_sk_` and 64 hex digits, stored only as their SHA-256, several
//! at once, revocable from the command line (`tmai-pay api-key …`). Merchant routes take
//! `Authorization: Bearer <key>`.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{AppState, error::ApiError};
use crate::store::{Db, StoreError, unix_now};

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

/// Creates a key named `name`; returns its id and the key, which is not stored and cannot
/// be shown again.
pub async fn create(db: &Db, name: &str) -> Result<(i64, String), StoreError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("tmai_sk_{}", alloy::hex::encode(bytes));
    let id: i64 = sqlx::query("INSERT INTO api_keys (name, prefix, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(name)
        .bind(&key[..16])
        .bind(digest(&key))
        .bind(unix_now())
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

/// Revokes key `id`; returns whether a live key was revoked.
pub async fn revoke(db: &Db, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(unix_now())
        .bind(id)
        .execute(db.pool())
        .await?;
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

/// Middleware: lets the request through only with a live key in `Authorization: Bearer`.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let header = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(key) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
        return Err(ApiError::unauthorized("this route needs an API key: send Authorization: Bearer <key> (create one with `tmai-pay api-key create`)"));
    };
    match verify(&state.db, key).await? {
        Some(_) => Ok(next.run(request).await),
        None => Err(ApiError::unauthorized("the API key is unknown or revoked")),
    }
}
