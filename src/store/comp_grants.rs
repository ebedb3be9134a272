//! `comp_grants`: the ledger of comp time the merchant granted (who got how much and why),
//! kept apart from paid time. The rules of a grant live in [`crate::billing::members`];
//! this module only records it.

use alloy::primitives::Address;
use sqlx::{AnyConnection, Row};

use super::{StoreError, address_bytes};

/// A comp grant to record.
#[derive(Debug, Clone)]
pub struct NewCompGrant<'a> {
    /// The member.
    pub wallet: Address,
    /// Days granted.
    pub days: u32,
    /// Seconds granted (the days in seconds).
    pub seconds: u64,
    /// Why, for the record.
    pub reason: &'a str,
    /// The subscription's expiry before the grant.
    pub old_expires_at: u64,
    /// Its expiry after the grant.
    pub new_expires_at: u64,
}

/// Records `grant` at `now` inside the caller's transaction; returns its ledger id.
pub async fn record(conn: &mut AnyConnection, grant: &NewCompGrant<'_>, now: u64) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO comp_grants (wallet, days, seconds, reason, old_expires_at, new_expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(address_bytes(grant.wallet))
    .bind(i64::from(grant.days))
    .bind(grant.seconds as i64)
    .bind(grant.reason)
    .bind(grant.old_expires_at as i64)
    .bind(grant.new_expires_at as i64)
    .bind(now as i64)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get(0)?)
}
