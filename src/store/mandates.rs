//! `renewal_mandates` and `renewal_charges`: the renewal mandates members signed, and the
//! renewer's record of each mandate period's attempts. The rules live in
//! [`crate::billing::renewals`]; this module only records them.

use alloy::primitives::{Address, B256, U256};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{Db, StoreError, address_bytes, b256_bytes, to_address, to_b256, to_u256, u256_bytes};

/// A mandate's state in the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MandateStatus {
    /// The renewer charges it.
    Active,
    /// The member turned it off.
    Off,
    /// It can never be charged again (`ended_reason` says why).
    Ended,
    /// A newer mandate of the wallet took over.
    Replaced,
}

impl MandateStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Off => "off",
            Self::Ended => "ended",
            Self::Replaced => "replaced",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "active" => Ok(Self::Active),
            "off" => Ok(Self::Off),
            "ended" => Ok(Self::Ended),
            "replaced" => Ok(Self::Replaced),
            _ => Err(StoreError::Corrupt("renewal_mandates.status")),
        }
    }
}

/// A signed mandate, every field as the member signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMandate {
    /// Its EIP-712 digest: the id the contract knows it by.
    pub mandate_id: B256,
    /// The payer.
    pub wallet: Address,
    /// The token charged.
    pub token: Address,
    /// The most one charge may take.
    pub max_amount: U256,
    /// Seconds in one billing period.
    pub period: u32,
    /// The most charges ever.
    pub max_charges: u32,
    /// When billing period 0 begins.
    pub start: u64,
    /// When no charge is possible any more.
    pub valid_until: u64,
    /// Seconds before a period from which its charge may be taken.
    pub early_window: u32,
    /// The plan each charge pays for.
    pub plan_id: u32,
    /// The signed salt.
    pub salt: U256,
    /// The payer's signature.
    pub signature: Vec<u8>,
    /// The service's state of it.
    pub status: MandateStatus,
    /// Why it ended (a renewal failure's name), when it did.
    pub ended_reason: Option<String>,
    /// When it was registered with the service.
    pub created_at: u64,
}

const COLUMNS: &str = "mandate_id, wallet, token, max_amount, period_secs, max_charges, start_at, valid_until, early_window, plan_id, salt, \
                       signature, status, ended_reason, created_at";

fn from_row(row: &AnyRow) -> Result<StoredMandate, StoreError> {
    let int = |i: usize, column: &'static str| -> Result<u64, StoreError> { u64::try_from(row.try_get::<i64, _>(i)?).map_err(|_| StoreError::Corrupt(column)) };
    let small = |i: usize, column: &'static str| -> Result<u32, StoreError> { u32::try_from(int(i, column)?).map_err(|_| StoreError::Corrupt(column)) };
    Ok(StoredMandate {
        mandate_id: to_b256(&row.try_get::<Vec<u8>, _>(0)?, "renewal_mandates.mandate_id")?,
        wallet: to_address(&row.try_get::<Vec<u8>, _>(1)?, "renewal_mandates.wallet")?,
        token: to_address(&row.try_get::<Vec<u8>, _>(2)?, "renewal_mandates.token")?,
        max_amount: to_u256(&row.try_get::<Vec<u8>, _>(3)?, "renewal_mandates.max_amount")?,
        period: small(4, "renewal_mandates.period_secs")?,
        max_charges: small(5, "renewal_mandates.max_charges")?,
        start: int(6, "renewal_mandates.start_at")?,
        valid_until: int(7, "renewal_mandates.valid_until")?,
        early_window: small(8, "renewal_mandates.early_window")?,
        plan_id: small(9, "renewal_mandates.plan_id")?,
        salt: to_u256(&row.try_get::<Vec<u8>, _>(10)?, "renewal_mandates.salt")?,
        signature: row.try_get(11)?,
        status: MandateStatus::parse(&row.try_get::<String, _>(12)?)?,
        ended_reason: row.try_get(13)?,
        created_at: int(14, "renewal_mandates.created_at")?,
    })
}

/// Records `mandate` as the wallet's active one, inside the caller's transaction; an active
/// mandate the wallet had is marked `replaced`. The same mandate again changes nothing.
pub async fn insert(conn: &mut AnyConnection, mandate: &StoredMandate, now: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE renewal_mandates SET status = 'replaced', updated_at = $2 WHERE wallet = $1 AND status = 'active' AND mandate_id <> $3")
        .bind(address_bytes(mandate.wallet))
        .bind(now as i64)
        .bind(b256_bytes(mandate.mandate_id))
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO renewal_mandates (mandate_id, wallet, token, max_amount, period_secs, max_charges, start_at, valid_until, early_window, plan_id, \
         salt, signature, status, ended_reason, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active', NULL, $13, $13) ON CONFLICT (mandate_id) DO NOTHING",
    )
    .bind(b256_bytes(mandate.mandate_id))
    .bind(address_bytes(mandate.wallet))
    .bind(address_bytes(mandate.token))
    .bind(u256_bytes(mandate.max_amount))
    .bind(i64::from(mandate.period))
    .bind(i64::from(mandate.max_charges))
    .bind(mandate.start as i64)
    .bind(mandate.valid_until as i64)
    .bind(i64::from(mandate.early_window))
    .bind(i64::from(mandate.plan_id))
    .bind(u256_bytes(mandate.salt))
    .bind(mandate.signature.clone())
    .bind(now as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Returns `mandate_id`'s mandate.
pub async fn get(conn: &mut AnyConnection, mandate_id: B256) -> Result<Option<StoredMandate>, StoreError> {
    let row =
        sqlx::query(&format!("SELECT {COLUMNS} FROM renewal_mandates WHERE mandate_id = $1")).bind(b256_bytes(mandate_id)).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// Returns `wallet`'s newest mandate (active or not).
pub async fn latest_of(db: &Db, wallet: Address) -> Result<Option<StoredMandate>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM renewal_mandates WHERE wallet = $1 ORDER BY created_at DESC, status = 'active' DESC, updated_at DESC LIMIT 1"
    ))
    .bind(address_bytes(wallet))
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Returns `wallet`'s active mandate.
pub async fn active_of(conn: &mut AnyConnection, wallet: Address) -> Result<Option<StoredMandate>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM renewal_mandates WHERE wallet = $1 AND status = 'active'"))
        .bind(address_bytes(wallet))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Sets `mandate_id`'s status (and why it ended), inside the caller's transaction.
pub async fn set_status(conn: &mut AnyConnection, mandate_id: B256, status: MandateStatus, reason: Option<&str>, now: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE renewal_mandates SET status = $2, ended_reason = $3, updated_at = $4 WHERE mandate_id = $1")
        .bind(b256_bytes(mandate_id))
        .bind(status.as_str())
        .bind(reason.map(str::to_string))
        .bind(now as i64)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What [`due`] leaves out: the mandate periods with nothing to do at `now` (a look at one of
/// them would only answer "waiting"), so a batch is filled with work however many wait.
#[derive(Debug, Clone, Copy)]
pub struct DueWindow {
    /// Periods ending from here on (`now` − the grace period).
    pub since: u64,
    /// Periods ending up to here (`now` + the charge lead + the notice lead).
    pub until: u64,
    /// Periods ending after this are only told of (the pre-flight), once; from here on
    /// they are charged (`now` + the charge lead).
    pub charge_from: u64,
    /// Now: a period whose next attempt is later is waiting.
    pub now: u64,
    /// A charge sent after this is still given time to land (`now` − the resend delay).
    pub sent_after: u64,
}

/// The active mandates whose subscription's period ends inside `w`, with that end, oldest end
/// first (at most `limit`), leaving out the periods waiting for nothing to happen: their
/// next attempt later, a charge sent (or seen charged) within the resend delay, or (not yet
/// due for the charge) already told of. A period seen charged is looked at again after the
/// resend delay while it is still due (a deep reorg may have taken the charge back). The period index is the renewer's: `(end − start) ÷ period`.
pub async fn due(db: &Db, w: DueWindow, limit: u32) -> Result<Vec<(StoredMandate, u64)>, StoreError> {
    let columns = COLUMNS.split(", ").map(|c| format!("m.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let rows = sqlx::query(&format!(
        "SELECT {columns}, s.expires_at FROM renewal_mandates m JOIN subscriptions s ON s.wallet = m.wallet \
         WHERE m.status = 'active' AND s.status IN ('active', 'past_due') AND s.expires_at <= $1 AND s.expires_at >= $3 \
         AND NOT EXISTS (SELECT 1 FROM renewal_charges c WHERE c.mandate_id = m.mandate_id \
           AND c.period_index = (CASE WHEN s.expires_at > m.start_at THEN (s.expires_at - m.start_at) / m.period_secs ELSE 0 END) \
           AND (c.next_attempt_at > $4 OR c.sent_at > $5 OR (s.expires_at > $6 AND c.preflight_at IS NOT NULL))) \
         ORDER BY s.expires_at LIMIT $2"
    ))
    .bind(w.until as i64)
    .bind(i64::from(limit))
    .bind(w.since as i64)
    .bind(w.now as i64)
    .bind(w.sent_after as i64)
    .bind(w.charge_from as i64)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok((from_row(r)?, r.try_get::<i64, _>(15)? as u64))).collect()
}

/// The wallets whose active mandate is for another plan than the one their next renewal
/// buys: a paid lower plan queued, else a scheduled switch in force, else the current plan
/// (at most `limit`).
pub async fn for_another_plan(db: &Db, limit: u32) -> Result<Vec<Address>, StoreError> {
    let rows = sqlx::query(
        "SELECT m.wallet FROM renewal_mandates m JOIN subscriptions s ON s.wallet = m.wallet \
         LEFT JOIN plan_switches w ON w.wallet = m.wallet AND w.for_expires_at = s.expires_at AND s.next_plan_id IS NULL \
         WHERE m.status = 'active' AND m.plan_id <> COALESCE(s.next_plan_id, w.plan_id, s.plan_id) LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| to_address(&r.try_get::<Vec<u8>, _>(0)?, "renewal_mandates.wallet")).collect()
}

/// Why the automatic renewal of `wallet`'s period ending at `expires_at` last failed (the
/// renewer's record of that period, of any of the wallet's mandates), if it did.
pub async fn failure_for_period(conn: &mut AnyConnection, wallet: Address, expires_at: u64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT c.last_reason FROM renewal_charges c JOIN renewal_mandates m ON m.mandate_id = c.mandate_id \
         WHERE m.wallet = $1 AND c.last_reason IS NOT NULL AND c.charged = 0 AND $2 >= m.start_at \
         AND c.period_index = ($2 - m.start_at) / m.period_secs ORDER BY c.updated_at DESC LIMIT 1",
    )
    .bind(address_bytes(wallet))
    .bind(expires_at as i64)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
}

/// The renewer's record of one mandate period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeRecord {
    /// The order of the last attempt (its `orders` key).
    pub order_key: Option<i64>,
    /// The last transaction sent.
    pub tx_hash: Option<B256>,
    /// When it was sent, or last seen charged on the chain.
    pub sent_at: Option<u64>,
    /// Attempts so far (sent or failed before sending).
    pub attempts: u64,
    /// The last failure's name.
    pub last_reason: Option<String>,
    /// When to try next.
    pub next_attempt_at: u64,
    /// The chain showed the period charged.
    pub charged: bool,
    /// When the member was told of this period's charge (the pre-flight).
    pub preflight_at: Option<u64>,
}

/// Returns the record of `mandate_id`'s period `index`.
pub async fn charge_of(db: &Db, mandate_id: B256, index: u64) -> Result<Option<ChargeRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT order_id, tx_hash, sent_at, attempts, last_reason, next_attempt_at, charged, preflight_at FROM renewal_charges \
         WHERE mandate_id = $1 AND period_index = $2",
    )
    .bind(b256_bytes(mandate_id))
    .bind(index as i64)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(ChargeRecord {
            order_key: r.try_get(0)?,
            tx_hash: r.try_get::<Option<Vec<u8>>, _>(1)?.map(|b| to_b256(&b, "renewal_charges.tx_hash")).transpose()?,
            sent_at: r.try_get::<Option<i64>, _>(2)?.map(|t| t as u64),
            attempts: r.try_get::<i64, _>(3)? as u64,
            last_reason: r.try_get(4)?,
            next_attempt_at: r.try_get::<i64, _>(5)? as u64,
            charged: r.try_get::<i64, _>(6)? != 0,
            preflight_at: r.try_get::<Option<i64>, _>(7)?.map(|t| t as u64),
        })
    })
    .transpose()
}

/// Writes the record of `mandate_id`'s period `index`, inside the caller's transaction.
pub async fn put_charge(conn: &mut AnyConnection, mandate_id: B256, index: u64, record: &ChargeRecord, now: u64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO renewal_charges (mandate_id, period_index, order_id, tx_hash, sent_at, attempts, last_reason, next_attempt_at, charged, \
         preflight_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (mandate_id, period_index) DO UPDATE SET \
         order_id = excluded.order_id, tx_hash = excluded.tx_hash, sent_at = excluded.sent_at, attempts = excluded.attempts, \
         last_reason = excluded.last_reason, next_attempt_at = excluded.next_attempt_at, charged = excluded.charged, \
         preflight_at = excluded.preflight_at, updated_at = excluded.updated_at",
    )
    .bind(b256_bytes(mandate_id))
    .bind(index as i64)
    .bind(record.order_key)
    .bind(record.tx_hash.map(b256_bytes))
    .bind(record.sent_at.map(|t| t as i64))
    .bind(record.attempts as i64)
    .bind(record.last_reason.clone())
    .bind(record.next_attempt_at as i64)
    .bind(i64::from(record.charged))
    .bind(record.preflight_at.map(|t| t as i64))
    .bind(now as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
