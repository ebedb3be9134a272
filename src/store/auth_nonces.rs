//! Owner of `auth_nonces`: the single-use, short-lived nonces of Sign-In with Ethereum.
//!
//! Every write goes through [`Db::begin_write`] (on SQLite, the process's write gate, like
//! every other writer). The table is bounded: a new nonce is refused while the configured
//! number of unexpired ones exists, and expired ones are deleted as new ones are issued.
//! A nonce also counts the signature checks that asked the chain for it, so a nonce buys a
//! bounded number of RPC calls.

use sqlx::Row;

use super::{Backend, Db, StoreError};

/// What spending a nonce (or taking one of its tries) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// The nonce was unused and unexpired; it is now used (or a try is taken).
    Spent,
    /// The nonce was used before (a replayed message).
    Replayed,
    /// The nonce's tries are all taken: it is spent.
    Exhausted,
    /// The nonce has expired.
    Expired,
    /// The service never issued it.
    Unknown,
}

/// What issuing a nonce did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issue {
    /// The nonce is stored.
    Issued,
    /// The table holds the most unexpired nonces allowed; nothing was stored. The oldest
    /// expires at `next_expiry` (unix seconds).
    Full {
        /// When the first of the live nonces expires.
        next_expiry: i64,
    },
}

/// Serializes nonce issuers on PostgreSQL (`pg_advisory_xact_lock`), so that the count and
/// the insert of two issuers cannot interleave past the cap. ASCII "authnonc".
const ISSUE_LOCK: i64 = 0x6175_7468_6e6f_6e63;

/// Stores a new nonce issued at `now`, valid until `expires_at`, unless `cap` unexpired
/// nonces exist already; deletes nonces that expired before `now` first.
pub async fn insert(db: &Db, nonce: &str, now: i64, expires_at: i64, cap: u64) -> Result<Issue, StoreError> {
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    if db.backend() == Backend::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)").bind(ISSUE_LOCK).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM auth_nonces WHERE expires_at < $1").bind(now).execute(&mut *tx).await?;
    let row = sqlx::query("SELECT COUNT(*), MIN(expires_at) FROM auth_nonces").fetch_one(&mut *tx).await?;
    let (live, next_expiry): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    if u64::try_from(live).unwrap_or(0) >= cap {
        tx.commit().await?;
        return Ok(Issue::Full { next_expiry: next_expiry.unwrap_or(now) });
    }
    sqlx::query("INSERT INTO auth_nonces (nonce, issued_at, expires_at) VALUES ($1, $2, $3)").bind(nonce).bind(now).bind(expires_at).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Issue::Issued)
}

/// Returns whether `nonce` could be spent at `now`, without spending it; a nonce whose
/// `max_tries` are taken is [`Spend::Exhausted`].
pub async fn peek(db: &Db, nonce: &str, now: i64, max_tries: u32) -> Result<Spend, StoreError> {
    let row = sqlx::query("SELECT expires_at, used_at, failed_tries FROM auth_nonces WHERE nonce = $1").bind(nonce).fetch_optional(db.pool()).await?;
    let Some(row) = row else { return Ok(Spend::Unknown) };
    let expires_at: i64 = row.try_get("expires_at")?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    let tries: i64 = row.try_get("failed_tries")?;
    Ok(if used_at.is_some() {
        Spend::Replayed
    } else if expires_at <= now {
        Spend::Expired
    } else if tries >= i64::from(max_tries) {
        Spend::Exhausted
    } else {
        Spend::Spent
    })
}

/// Takes one of `nonce`'s `max_tries` signature checks at `now`, before the check asks the
/// chain: one guarded UPDATE, so concurrent checks with one nonce take at most `max_tries`
/// between them. A check that then succeeds spends the nonce, so in effect the count is of
/// failed checks.
pub async fn take_try(db: &Db, nonce: &str, now: i64, max_tries: u32) -> Result<Spend, StoreError> {
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    let done =
        sqlx::query("UPDATE auth_nonces SET failed_tries = failed_tries + 1 WHERE nonce = $1 AND used_at IS NULL AND expires_at > $2 AND failed_tries < $3")
            .bind(nonce)
            .bind(now)
            .bind(i64::from(max_tries))
            .execute(&mut *tx)
            .await?;
    tx.commit().await?;
    if done.rows_affected() == 1 {
        return Ok(Spend::Spent);
    }
    match peek(db, nonce, now, max_tries).await? {
        Spend::Spent => Ok(Spend::Exhausted),
        other => Ok(other),
    }
}

/// Spends `nonce` at `now`: one guarded UPDATE, so of two concurrent sign-ins with the
/// same nonce exactly one wins.
pub async fn spend(db: &Db, nonce: &str, now: i64) -> Result<Spend, StoreError> {
    let mut tx = db.begin_write().await?;
    tx.keep_read_caches();
    let done = sqlx::query("UPDATE auth_nonces SET used_at = $1 WHERE nonce = $2 AND used_at IS NULL AND expires_at > $1")
        .bind(now)
        .bind(nonce)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if done.rows_affected() == 1 {
        return Ok(Spend::Spent);
    }
    match peek(db, nonce, now, u32::MAX).await? {
        Spend::Spent => Ok(Spend::Replayed),
        other => Ok(other),
    }
}
