//! `subscriptions` and `activations`: every statement that reads or writes them, for both
//! connections the service uses (sqlx on any database, and the process's own rusqlite
//! connection on the hot SQLite paths). The rules that decide what a subscription becomes
//! live in [`crate::billing::activation`]; this module only stores what they decided.

use std::collections::{HashMap, HashSet};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::{
    Db, StoreError, address_bytes,
    bulk::{Value, column_i64, execute_in, fetch_in, insert},
    to_address,
};
use crate::{
    money::PaidRate,
    states::{SubscriptionStatus, text_enum},
};

text_enum! {
    /// What a payment's activation did to its subscription (`activations.kind`, kept in
    /// `payment_reversals.kind` when it is taken back): stored, and serialized, as the name
    /// of the event it caused.
    ActivationKind {
        /// A new (or lapsed) subscription.
        #[serde(rename = "subscription.activated")]
        Activated => "subscription.activated",
        /// More time at the same tier.
        #[serde(rename = "subscription.renewed")]
        Renewed => "subscription.renewed",
        /// A higher tier at once, with credit.
        #[serde(rename = "subscription.upgraded")]
        Upgraded => "subscription.upgraded",
        /// A lower tier from the end of the current period.
        #[serde(rename = "subscription.downgrade_scheduled")]
        DowngradeScheduled => "subscription.downgrade_scheduled",
    }
}

/// A subscription row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Member wallet.
    pub wallet: Address,
    /// Current plan.
    pub plan_id: u32,
    /// Current tier.
    pub tier: u8,
    /// `trialing`, `active`, `past_due` (a renewal failed; access runs to `expires_at`),
    /// `expired` or `canceled`.
    pub status: SubscriptionStatus,
    /// When the subscription first started.
    pub started_at: u64,
    /// When the current tier's paid time ends.
    pub expires_at: u64,
    /// Plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
    /// When the scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The comped part of `expires_at` (granted by the merchant, not paid): the last
    /// `comp_seconds` before `expires_at`.
    pub comp_seconds: u64,
    /// The lowest price per second among the payments whose time the subscription still
    /// runs on (what upgrade credit values its unused paid time at); `None` on rows written
    /// before it was kept (then the current plan's list price is used).
    #[serde(default)]
    pub paid_rate: Option<PaidRate>,
}

/// An `activations` row: what one payment did.
#[derive(Debug, Clone)]
pub struct ActivationRow {
    /// `payments.id` (the row's key: a payment activates at most once).
    pub payment_id: i64,
    /// Member wallet.
    pub wallet: Address,
    /// The change.
    pub kind: ActivationKind,
    /// Plan paid for.
    pub plan_id: u32,
    /// Expiry before the payment.
    pub old_expires_at: Option<u64>,
    /// Expiry after it.
    pub new_expires_at: u64,
    /// Seconds credited from unused time.
    pub credit_seconds: u64,
    /// The subscription before an upgrade, as JSON (what taking the upgrade back restores).
    pub previous: Option<String>,
}

/// The columns a [`Subscription`] is read from, in its order.
const COLUMNS: &str = "wallet, plan_id, tier, status, started_at, expires_at, next_plan_id, next_expires_at, comp_seconds, paid_micro, paid_seconds";

/// The columns a save writes.
const SAVE_HEAD: &str = "INSERT INTO subscriptions (wallet, plan_id, tier, status, started_at, expires_at, next_plan_id, next_expires_at, comp_seconds, paid_micro, paid_seconds, updated_at)";
/// How a save resolves an existing row.
const SAVE_TAIL: &str = "ON CONFLICT (wallet) DO UPDATE SET plan_id = excluded.plan_id, tier = excluded.tier, \
    status = excluded.status, expires_at = excluded.expires_at, next_plan_id = excluded.next_plan_id, \
    next_expires_at = excluded.next_expires_at, comp_seconds = excluded.comp_seconds, paid_micro = excluded.paid_micro, paid_seconds = excluded.paid_seconds, updated_at = excluded.updated_at";

const ACTIVATION_HEAD: &str =
    "INSERT INTO activations (payment_id, wallet, kind, plan_id, old_expires_at, new_expires_at, credit_seconds, created_at, previous)";

fn status_of(text: &str) -> Result<SubscriptionStatus, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt("subscriptions.status"))
}

/// Decodes `paid_micro` and `paid_seconds` (both NULL on rows written before 0014).
fn paid_rate(micro: Option<i64>, seconds: Option<i64>) -> Result<Option<PaidRate>, StoreError> {
    match (micro, seconds) {
        (Some(micro), Some(seconds)) => match (u64::try_from(micro), u64::try_from(seconds)) {
            (Ok(micro), Ok(seconds)) if seconds > 0 => Ok(Some(PaidRate { micro, seconds })),
            _ => Err(StoreError::Corrupt("subscriptions.paid_micro")),
        },
        _ => Ok(None),
    }
}

/// Decodes a row of [`COLUMNS`] read through sqlx.
fn from_row(r: &sqlx::any::AnyRow) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        wallet: to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "subscriptions.wallet")?,
        plan_id: r.try_get::<i64, _>("plan_id")? as u32,
        tier: r.try_get::<i64, _>("tier")? as u8,
        status: status_of(&r.try_get::<String, _>("status")?)?,
        started_at: r.try_get::<i64, _>("started_at")? as u64,
        expires_at: r.try_get::<i64, _>("expires_at")? as u64,
        next_plan_id: r.try_get::<Option<i64>, _>("next_plan_id")?.map(|v| v as u32),
        next_expires_at: r.try_get::<Option<i64>, _>("next_expires_at")?.map(|v| v as u64),
        comp_seconds: r.try_get::<i64, _>("comp_seconds")? as u64,
        paid_rate: paid_rate(r.try_get("paid_micro")?, r.try_get("paid_seconds")?)?,
    })
}

/// Decodes a row of [`COLUMNS`] read through rusqlite.
fn from_sqlite_row(r: &rusqlite::Row<'_>) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        wallet: to_address(&r.get::<_, Vec<u8>>(0)?, "subscriptions.wallet")?,
        plan_id: r.get::<_, i64>(1)? as u32,
        tier: r.get::<_, i64>(2)? as u8,
        status: status_of(&r.get::<_, String>(3)?)?,
        started_at: r.get::<_, i64>(4)? as u64,
        expires_at: r.get::<_, i64>(5)? as u64,
        next_plan_id: r.get::<_, Option<i64>>(6)?.map(|v| v as u32),
        next_expires_at: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        comp_seconds: r.get::<_, i64>(8)? as u64,
        paid_rate: paid_rate(r.get(9)?, r.get(10)?)?,
    })
}

/// Loads the subscription of `wallet`.
pub async fn load(conn: &mut AnyConnection, wallet: Address) -> Result<Option<Subscription>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM subscriptions WHERE wallet = $1")).bind(address_bytes(wallet)).fetch_optional(conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// Loads the subscriptions of `wallets` (those that have one), in one statement.
pub async fn load_many(conn: &mut AnyConnection, wallets: &[Address]) -> Result<Vec<Subscription>, StoreError> {
    let list: Vec<Value> = wallets.iter().map(|w| Value::Bytes(address_bytes(*w))).collect();
    let rows = fetch_in(conn, &format!("SELECT {COLUMNS} FROM subscriptions WHERE wallet IN"), "", &[], &list).await?;
    rows.iter().map(from_row).collect()
}

/// Loads the subscriptions of `wallets` on the process's SQLite connection.
pub fn load_many_sqlite(conn: &rusqlite::Connection, wallets: &[Address]) -> Result<Vec<Subscription>, StoreError> {
    let mut read = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM subscriptions WHERE wallet = ?1"))?;
    let mut out = Vec::with_capacity(wallets.len());
    for wallet in wallets {
        let mut rows = read.query([wallet.as_slice()])?;
        while let Some(row) = rows.next()? {
            out.push(from_sqlite_row(row)?);
        }
    }
    Ok(out)
}

/// Returns the subscriptions whose scheduled downgrade is due at `now`, by wallet.
pub async fn due_downgrades(conn: &mut AnyConnection, now: u64) -> Result<Vec<Subscription>, StoreError> {
    let rows = sqlx::query(&due_downgrades_sql()).bind(now as i64).fetch_all(conn).await?;
    let mut due = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    due.sort_by_key(|s| s.wallet);
    Ok(due)
}

/// The subscriptions whose scheduled plan takes over at `$1` (rusqlite binds `$n` by
/// position as sqlx does, so both connections run the same text). Unordered: SQLite read
/// the whole table in wallet order rather than sort the few due rows the partial index
/// `subscriptions_scheduled_expiry` finds (measured: 12 ms at 100,000 members with none
/// due), so the callers sort by wallet.
fn due_downgrades_sql() -> String {
    format!("SELECT {COLUMNS} FROM subscriptions WHERE next_plan_id IS NOT NULL AND expires_at <= $1")
}

/// [`due_downgrades`] on the process's SQLite connection.
pub fn due_downgrades_sqlite(conn: &rusqlite::Connection, now: u64) -> Result<Vec<Subscription>, StoreError> {
    let mut read = conn.prepare_cached(&due_downgrades_sql())?;
    let mut rows = read.query([now as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_sqlite_row(row)?);
    }
    out.sort_by_key(|s| s.wallet);
    Ok(out)
}

/// Writes `s` (insert or replace).
pub async fn save(conn: &mut AnyConnection, s: &Subscription, now: u64) -> Result<(), StoreError> {
    save_all(conn, std::slice::from_ref(s), now).await
}

fn values(s: &Subscription, now: i64) -> Vec<Value> {
    vec![
        Value::Bytes(address_bytes(s.wallet)),
        Value::I64(i64::from(s.plan_id)),
        Value::I64(i64::from(s.tier)),
        Value::Text(s.status.as_str().to_string()),
        Value::I64(s.started_at as i64),
        Value::I64(s.expires_at as i64),
        Value::OptI64(s.next_plan_id.map(i64::from)),
        Value::OptI64(s.next_expires_at.map(|v| v as i64)),
        Value::I64(s.comp_seconds as i64),
        Value::OptI64(s.paid_rate.map(|r| r.micro as i64)),
        Value::OptI64(s.paid_rate.map(|r| r.seconds as i64)),
        Value::I64(now),
    ]
}

/// Writes `subscriptions` (insert or replace each), in one statement.
pub async fn save_all(conn: &mut AnyConnection, subscriptions: &[Subscription], now: u64) -> Result<(), StoreError> {
    let rows: Vec<Vec<Value>> = subscriptions.iter().map(|s| values(s, now as i64)).collect();
    insert(conn, SAVE_HEAD, &rows, SAVE_TAIL).await?;
    Ok(())
}

/// [`save_all`] on the process's SQLite connection.
pub fn save_all_sqlite(conn: &rusqlite::Connection, subscriptions: &[Subscription], now: u64) -> rusqlite::Result<()> {
    let mut save = conn.prepare_cached(&format!("{SAVE_HEAD} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) {SAVE_TAIL}"))?;
    for s in subscriptions {
        save.execute(rusqlite::params![
            s.wallet.as_slice(),
            i64::from(s.plan_id),
            i64::from(s.tier),
            s.status.as_str(),
            s.started_at as i64,
            s.expires_at as i64,
            s.next_plan_id.map(i64::from),
            s.next_expires_at.map(|v| v as i64),
            s.comp_seconds as i64,
            s.paid_rate.map(|r| r.micro as i64),
            s.paid_rate.map(|r| r.seconds as i64),
            now as i64
        ])?;
    }
    Ok(())
}

/// Records `activations` (each payment's row is its key: a second one fails the
/// transaction, so a payment never activates twice).
pub async fn record_activations(conn: &mut AnyConnection, activations: &[ActivationRow], now: u64) -> Result<(), StoreError> {
    let rows: Vec<Vec<Value>> = activations
        .iter()
        .map(|a| {
            vec![
                Value::I64(a.payment_id),
                Value::Bytes(address_bytes(a.wallet)),
                Value::Text(a.kind.as_str().to_string()),
                Value::I64(i64::from(a.plan_id)),
                Value::OptI64(a.old_expires_at.map(|v| v as i64)),
                Value::I64(a.new_expires_at as i64),
                Value::I64(a.credit_seconds as i64),
                Value::I64(now as i64),
                Value::OptText(a.previous.clone()),
            ]
        })
        .collect();
    insert(conn, ACTIVATION_HEAD, &rows, "").await?;
    Ok(())
}

/// [`record_activations`] on the process's SQLite connection.
pub fn record_activations_sqlite(conn: &rusqlite::Connection, activations: &[ActivationRow], now: u64) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(&format!("{ACTIVATION_HEAD} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))?;
    for a in activations {
        insert.execute(rusqlite::params![
            a.payment_id,
            a.wallet.as_slice(),
            a.kind.as_str(),
            i64::from(a.plan_id),
            a.old_expires_at.map(|v| v as i64),
            a.new_expires_at as i64,
            a.credit_seconds as i64,
            now as i64,
            a.previous
        ])?;
    }
    Ok(())
}

/// Marks the subscriptions of `wallets` whose time ended by `now` (and that have no plan
/// waiting to take over) `expired`; returns how many changed.
pub async fn expire_ended(conn: &mut AnyConnection, wallets: &[Address], now: u64) -> Result<u64, StoreError> {
    let list: Vec<Value> = wallets.iter().map(|w| Value::Bytes(address_bytes(*w))).collect();
    execute_in(
        conn,
        "UPDATE subscriptions SET status = 'expired', updated_at = $1 WHERE expires_at <= $1 AND next_plan_id IS NULL \
         AND status IN ('active', 'trialing', 'past_due', 'canceled') AND wallet IN",
        "",
        &[Value::I64(now as i64)],
        &list,
    )
    .await
}

/// Moves `from`'s subscription to `to` (who has none).
pub async fn move_wallet(conn: &mut AnyConnection, from: Address, to: Address, now: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE subscriptions SET wallet = $1, updated_at = $2 WHERE wallet = $3")
        .bind(address_bytes(to))
        .bind(now as i64)
        .bind(address_bytes(from))
        .execute(conn)
        .await?;
    Ok(())
}

/// What one payment's activation did, as stored (`activations`).
#[derive(Debug, Clone)]
pub struct PastActivation {
    /// The change.
    pub kind: ActivationKind,
    /// Plan paid for.
    pub plan_id: u32,
    /// Expiry after it.
    pub new_expires_at: u64,
    /// Seconds credited from unused time.
    pub credit_seconds: u64,
    /// The subscription before an upgrade.
    pub previous: Option<Subscription>,
    /// When it was recorded.
    pub created_at: u64,
}

/// One payment's activation (`$1`: the payment; rusqlite and sqlx run the same text).
const ACTIVATION_OF: &str = "SELECT kind, plan_id, new_expires_at, credit_seconds, previous, created_at FROM activations WHERE payment_id = $1";

/// Decodes a row of [`ACTIVATION_OF`] from its columns.
fn past_activation(
    kind: &str,
    plan_id: i64,
    new_expires_at: i64,
    credit_seconds: i64,
    previous: Option<String>,
    created_at: i64,
) -> Result<PastActivation, StoreError> {
    Ok(PastActivation {
        kind: kind.parse().map_err(|_| StoreError::Corrupt("activations.kind"))?,
        plan_id: plan_id as u32,
        new_expires_at: new_expires_at as u64,
        credit_seconds: credit_seconds as u64,
        previous: previous.as_deref().map(serde_json::from_str).transpose().map_err(|_| StoreError::Corrupt("activations.previous"))?,
        created_at: created_at as u64,
    })
}

fn past_activation_from(r: &sqlx::any::AnyRow) -> Result<PastActivation, StoreError> {
    past_activation(
        &r.try_get::<String, _>("kind")?,
        r.try_get("plan_id")?,
        r.try_get("new_expires_at")?,
        r.try_get("credit_seconds")?,
        r.try_get("previous")?,
        r.try_get("created_at")?,
    )
}

/// Returns the activation of payment `payment_id`, if it activated.
pub async fn activation_of(db: &Db, payment_id: i64) -> Result<Option<PastActivation>, StoreError> {
    let row = sqlx::query(ACTIVATION_OF).bind(payment_id).fetch_optional(db.pool()).await?;
    row.as_ref().map(past_activation_from).transpose()
}

/// Returns the activations of the payments among `payment_ids` that activated, inside the
/// caller's transaction.
pub async fn activations_of(conn: &mut AnyConnection, payment_ids: &[i64]) -> Result<HashMap<i64, PastActivation>, StoreError> {
    let mut out = HashMap::new();
    for &id in payment_ids {
        if let Some(r) = sqlx::query(ACTIVATION_OF).bind(id).fetch_optional(&mut *conn).await? {
            out.insert(id, past_activation_from(&r)?);
        }
    }
    Ok(out)
}

/// [`activations_of`] on the process's SQLite connection.
pub fn activations_of_sqlite(conn: &rusqlite::Connection, payment_ids: &[i64]) -> Result<HashMap<i64, PastActivation>, StoreError> {
    let mut read = conn.prepare_cached(ACTIVATION_OF)?;
    let mut out = HashMap::new();
    for &id in payment_ids {
        let mut rows = read.query([id])?;
        if let Some(r) = rows.next()? {
            out.insert(id, past_activation(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)?);
        }
    }
    Ok(out)
}

/// Returns which of the payments have activated, in one statement per chunk.
pub async fn activated(conn: &mut AnyConnection, payment_ids: &[i64]) -> Result<HashSet<i64>, StoreError> {
    let ids: Vec<Value> = payment_ids.iter().copied().map(Value::I64).collect();
    let rows = fetch_in(conn, "SELECT payment_id FROM activations WHERE payment_id IN", "", &[], &ids).await?;
    Ok(column_i64(&rows, "payment_id")?.into_iter().collect())
}

/// [`activated`] on the process's SQLite connection.
pub fn activated_sqlite(conn: &rusqlite::Connection, payment_ids: &[i64]) -> Result<HashSet<i64>, StoreError> {
    let mut read = conn.prepare_cached("SELECT 1 FROM activations WHERE payment_id = ?1")?;
    let mut done = HashSet::new();
    for &id in payment_ids {
        if read.exists([id])? {
            done.insert(id);
        }
    }
    Ok(done)
}

/// Deletes the activation of a payment whose effects were taken back (what it did is kept
/// in `payment_reversals`), so that payment may activate again if it is confirmed again.
const DROP_ACTIVATION: &str = "DELETE FROM activations WHERE payment_id = $1";

/// Forgets payment `payment_id`'s activation, inside the caller's transaction.
pub async fn drop_activation(conn: &mut AnyConnection, payment_id: i64) -> Result<(), StoreError> {
    sqlx::query(DROP_ACTIVATION).bind(payment_id).execute(conn).await?;
    Ok(())
}

/// [`drop_activation`] on the process's SQLite connection.
pub fn drop_activation_sqlite(conn: &rusqlite::Connection, payment_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached(DROP_ACTIVATION)?.execute([payment_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_kinds_parse_back_and_serialize_as_stored() {
        for k in ActivationKind::ALL {
            assert_eq!(k.as_str().parse::<ActivationKind>().unwrap(), *k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(serde_json::from_value::<ActivationKind>(k.as_str().into()).unwrap(), *k);
        }
        assert_eq!(ActivationKind::DowngradeScheduled.as_str(), "subscription.downgrade_scheduled");
    }
}
