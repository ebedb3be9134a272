//! `subscription_notices`: the reminders and expiry notices sent, one per subscription
//! period and kind, keyed by (wallet, period end, kind). The row is the claim that makes
//! each notice exactly once ([`claim`]); which subscriptions are due one is read here too,
//! joined with `subscriptions` in one query. When and what to send is decided in
//! [`crate::billing::reminders`].

use std::{collections::HashSet, fmt, str::FromStr};

use alloy::primitives::Address;
use sqlx::{AnyConnection, Row};

use super::{
    StoreError, address_bytes,
    bulk::{Value, insert},
    to_address,
};
use crate::states::{SubscriptionStatus, UnknownState};

/// What a notice tells (`subscription_notices.kind`). Not a `text_enum!`: a reminder's
/// text carries its offset, one per configured day (`expiring_7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// `expiring_<days>d`: the subscription ends within `days` days.
    Expiring {
        /// The reminder's offset before the end, in days.
        days: u32,
    },
    /// `expired`: the subscription's time ended.
    Expired,
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expiring { days } => write!(f, "expiring_{days}d"),
            Self::Expired => f.write_str("expired"),
        }
    }
}

impl FromStr for NoticeKind {
    type Err = UnknownState;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let days = text.strip_prefix("expiring_").and_then(|rest| rest.strip_suffix('d')).and_then(|days| days.parse::<u32>().ok());
        let kind = match (text, days) {
            ("expired", _) => Some(Self::Expired),
            (_, Some(days)) => Some(Self::Expiring { days }),
            _ => None,
        };
        // Only the text this type writes reads back (not `expiring_07d`).
        kind.filter(|k| k.to_string() == text).ok_or_else(|| UnknownState { kind: "NoticeKind", text: text.to_string() })
    }
}

/// One notice: its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notice {
    /// The member.
    pub wallet: Address,
    /// The end of the period it is about (the subscription's `expires_at` then).
    pub period_end: u64,
    /// What it tells.
    pub kind: NoticeKind,
}

/// A subscription due a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The member.
    pub wallet: Address,
    /// Current plan.
    pub plan_id: u32,
    /// Current tier.
    pub tier: u8,
    /// Its state.
    pub status: SubscriptionStatus,
    /// The end of its paid time (the notice's period end).
    pub expires_at: u64,
}

/// The states of a subscription that still gets notices (every one but `expired`).
pub(crate) const NOTIFIED: [SubscriptionStatus; 4] =
    [SubscriptionStatus::Active, SubscriptionStatus::Trialing, SubscriptionStatus::PastDue, SubscriptionStatus::Canceled];

/// Returns the subscriptions (without a scheduled plan) whose time ends after `after` and
/// by `until` and that have no `kind` notice for that end, by end then wallet.
pub async fn ending_between(conn: &mut AnyConnection, after: u64, until: u64, kind: NoticeKind) -> Result<Vec<Due>, StoreError> {
    unnoticed(conn, after as i64, until as i64, kind, Narrowing::None).await
}

/// [`ending_between`] narrowed to the subscriptions that can be due since an earlier look:
/// those whose end is after `edge` (it crossed into the range since) and those written at
/// or after `written_since` (`updated_at`: a new plan, a renewal, a switch). Each half
/// reads its own index (`subscriptions_status_expiry`, `subscriptions_updated`), so the
/// cost follows what changed, not how many plans sit in the range.
pub async fn ending_between_since(
    conn: &mut AnyConnection,
    after: u64,
    until: u64,
    kind: NoticeKind,
    edge: u64,
    written_since: u64,
) -> Result<Vec<Due>, StoreError> {
    unnoticed(conn, after as i64, until as i64, kind, Narrowing::Since { edge: edge as i64, written_since: written_since as i64 }).await
}

/// Returns the subscriptions (without a scheduled plan) whose time ended by `now` and that
/// have no [`NoticeKind::Expired`] notice for that end, by end then wallet. A `past_due`
/// subscription whose automatic renewal is still being retried (an active renewal mandate)
/// is left out until `grace` seconds after its end: it stays `past_due`, without access,
/// while the renewer tries again.
pub async fn ended_by(conn: &mut AnyConnection, now: u64, grace: u64) -> Result<Vec<Due>, StoreError> {
    unnoticed(conn, i64::MIN, now as i64, NoticeKind::Expired, Narrowing::Grace { from: now.saturating_sub(grace) as i64 }).await
}

/// What narrows an [`unnoticed`] look beyond its range of ends.
enum Narrowing {
    None,
    /// Leave out `past_due` plans in their renewal grace (ended after `from`).
    Grace {
        from: i64,
    },
    /// Only ends after `edge` or rows written at or after `written_since`.
    Since {
        edge: i64,
        written_since: i64,
    },
}

/// A subscription `s` without its `$7` notice for its current end.
const NOT_NOTICED: &str = "NOT EXISTS (SELECT 1 FROM subscription_notices n WHERE n.wallet = s.wallet AND n.period_end = s.expires_at AND n.kind = $7)";

async fn unnoticed(conn: &mut AnyConnection, after: i64, until: i64, kind: NoticeKind, narrowing: Narrowing) -> Result<Vec<Due>, StoreError> {
    // $1–$4 the notified states, $5/$6 the range of ends, $7 the notice kind.
    let base = format!(
        "SELECT s.wallet, s.plan_id, s.tier, s.status, s.expires_at FROM subscriptions s \
         WHERE s.status IN ($1, $2, $3, $4) AND s.next_plan_id IS NULL AND s.expires_at > $5 AND s.expires_at <= $6 AND {NOT_NOTICED}"
    );
    let sql = match narrowing {
        Narrowing::None => format!("{base} ORDER BY s.expires_at, s.wallet"),
        Narrowing::Grace { .. } => format!(
            "{base} AND NOT (s.status = $8 AND s.expires_at > $9 \
             AND EXISTS (SELECT 1 FROM renewal_mandates m WHERE m.wallet = s.wallet AND m.status = 'active')) \
             ORDER BY s.expires_at, s.wallet"
        ),
        // The written half reads `subscriptions_updated`; SQLite's planner would otherwise
        // take the range of ends (the whole window) as the cheaper index, so that half
        // hides its state and end columns from it (`|| ''`, unary `+`: the same values on
        // both databases).
        Narrowing::Since { .. } => format!(
            "{base} AND s.expires_at > $8 UNION \
             SELECT s.wallet, s.plan_id, s.tier, s.status, s.expires_at FROM subscriptions s \
             WHERE s.updated_at >= $9 AND s.status || '' IN ($1, $2, $3, $4) AND s.next_plan_id IS NULL \
             AND +s.expires_at > $5 AND +s.expires_at <= $6 AND {NOT_NOTICED} \
             ORDER BY expires_at, wallet"
        ),
    };
    let mut query = sqlx::query(&sql);
    for status in NOTIFIED {
        query = query.bind(status.as_str());
    }
    query = query.bind(after).bind(until).bind(kind.to_string());
    match narrowing {
        Narrowing::None => {}
        Narrowing::Grace { from } => query = query.bind(SubscriptionStatus::PastDue.as_str()).bind(from),
        Narrowing::Since { edge, written_since } => query = query.bind(edge).bind(written_since),
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                wallet: to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "subscriptions.wallet")?,
                plan_id: r.try_get::<i64, _>("plan_id")? as u32,
                tier: r.try_get::<i64, _>("tier")? as u8,
                status: r.try_get::<String, _>("status")?.parse().map_err(|_| StoreError::Corrupt("subscriptions.status"))?,
                expires_at: r.try_get::<i64, _>("expires_at")? as u64,
            })
        })
        .collect()
}

/// Keeps PostgreSQL from starting parallel workers for the rest of the transaction: the
/// reminder pass's lookups read few rows through an index, but a pooled connection runs them
/// as cached prepared statements, and after five runs PostgreSQL may keep a generic plan,
/// which cannot see the bound time and takes "written since the last look" for a third of
/// the table: it starts two workers, whose start-up costs more than the lookup (at
/// 1,000,000 members, vacuumed and analysed: 8–12 ms with them, 0.6 ms without; a custom
/// plan reads the index either way). Nothing on SQLite.
pub async fn lookups_only(conn: &mut AnyConnection) -> Result<(), StoreError> {
    if !super::bulk::is_sqlite(conn) {
        sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0").execute(conn).await?;
    }
    Ok(())
}

/// How far the reminder pass last looked (`reminder_looks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// The offsets it looked with, largest first (`7,1`).
    pub offsets: String,
    /// The `now` of the last pass that committed.
    pub looked_at: u64,
    /// The `now` of the last full look.
    pub full_at: u64,
}

/// Returns the last look, if a pass has committed one.
pub async fn last_look(conn: &mut AnyConnection) -> Result<Option<Look>, StoreError> {
    let row = sqlx::query("SELECT offsets, looked_at, full_at FROM reminder_looks WHERE id = 1").fetch_optional(conn).await?;
    row.map(|r| {
        Ok(Look { offsets: r.try_get("offsets")?, looked_at: r.try_get::<i64, _>("looked_at")? as u64, full_at: r.try_get::<i64, _>("full_at")? as u64 })
    })
    .transpose()
}

/// Records `look` as the last one. Two instances may overwrite each other's; a look that
/// goes back only makes the next pass read more.
pub async fn save_look(conn: &mut AnyConnection, look: &Look) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reminder_looks (id, offsets, looked_at, full_at) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET offsets = excluded.offsets, looked_at = excluded.looked_at, full_at = excluded.full_at",
    )
    .bind(&look.offsets)
    .bind(look.looked_at as i64)
    .bind(look.full_at as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts `notices` at `now` where none with their key exists; returns those this call
/// inserted. Another instance inserting the same notice at the same moment waits on its
/// row (PostgreSQL) and inserts nothing, so only the caller that claimed a notice sends it.
pub async fn claim(conn: &mut AnyConnection, notices: &[Notice], now: u64) -> Result<HashSet<Notice>, StoreError> {
    let rows: Vec<Vec<Value>> = notices
        .iter()
        .map(|n| vec![Value::Bytes(address_bytes(n.wallet)), Value::I64(n.period_end as i64), Value::Text(n.kind.to_string()), Value::I64(now as i64)])
        .collect();
    let (claimed, _) = insert(
        conn,
        "INSERT INTO subscription_notices (wallet, period_end, kind, created_at)",
        &rows,
        "ON CONFLICT DO NOTHING RETURNING wallet, period_end, kind",
    )
    .await?;
    claimed
        .iter()
        .map(|r| {
            Ok(Notice {
                wallet: to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "subscription_notices.wallet")?,
                period_end: r.try_get::<i64, _>("period_end")? as u64,
                kind: r.try_get::<String, _>("kind")?.parse().map_err(|_| StoreError::Corrupt("subscription_notices.kind"))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_kinds_read_back_as_written() {
        for kind in [NoticeKind::Expired, NoticeKind::Expiring { days: 7 }, NoticeKind::Expiring { days: 1 }, NoticeKind::Expiring { days: 365 }] {
            assert_eq!(kind.to_string().parse::<NoticeKind>().unwrap(), kind);
        }
        assert_eq!(NoticeKind::Expiring { days: 7 }.to_string(), "expiring_7d");
        assert_eq!(NoticeKind::Expired.to_string(), "expired");
        for bad in ["expiring_07d", "expiring_d", "expiring_7", "expiring_-1d", "Expired", ""] {
            assert!(bad.parse::<NoticeKind>().is_err(), "{bad:?}");
        }
    }
}
