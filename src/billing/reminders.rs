//! Renewal reminders and expiry (DESIGN.md flow 7): `subscription.expiring` at each
//! configured offset before the end of a subscription's paid time, `subscription.expired`
//! when it ends. Each is sent once per subscription period: the notice is keyed by
//! (wallet, period end, kind) in `subscription_notices`, and its outbox event id is derived
//! from the same key, so a restart, a second instance running the same pass at the same
//! moment, or a pass repeated after a crash writes nothing twice. A renewal moves the end
//! and starts a new period with its own reminders.
//!
//! Only the most specific reminder is sent when several are due at once (a service that
//! was down for a week sends "1 day left", not also "7 days left"). The badge's on-chain
//! expiry is what gates access, so expiry sends no transaction.

use std::time::Duration;

use alloy::primitives::Address;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::{activation, plans::Catalog};
use crate::{
    clock::Clock,
    config::ReminderSettings,
    events::EventType,
    store::{
        Db, StoreError, address_bytes,
        bulk::{Value, insert},
        outbox::{self, NewEvent},
        subscriptions, to_address,
    },
};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// `subscription.expiring` events written.
    pub expiring: u64,
    /// `subscription.expired` events written.
    pub expired: u64,
    /// Scheduled downgrades that took effect.
    pub downgrades: u64,
}

/// The reminder pass; runs on every instance (exactly once comes from the keys, not from
/// leadership).
#[derive(Debug, Clone)]
pub struct Reminders {
    db: Db,
    catalog: std::sync::Arc<Catalog>,
    settings: ReminderSettings,
    clock: Clock,
}

struct Due {
    wallet: Address,
    plan_id: i64,
    tier: i64,
    status: String,
    end: i64,
}

impl Reminders {
    /// Returns the pass over `db`.
    pub fn new(db: Db, catalog: std::sync::Arc<Catalog>, settings: ReminderSettings, clock: Clock) -> Self {
        Self { db, catalog, settings, clock }
    }

    /// Runs a pass every `interval_secs` until `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) {
        let interval = Duration::from_secs(self.settings.interval_secs);
        loop {
            if let Err(error) = self.tick().await {
                tracing::warn!(%error, "reminder pass failed; retrying");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One pass, in one transaction: due downgrades take effect, then reminders, then
    /// expiry.
    pub async fn tick(&self) -> Result<Report, StoreError> {
        let now = self.clock.now() as i64;
        let mut report = Report::default();
        let mut tx = self.db.begin_write().await?;
        report.downgrades = activation::apply_due_downgrades(&mut tx, &self.catalog, now as u64).await? as u64;

        // Offsets from the largest to the smallest: a subscription is in the window of an
        // offset when its end is within it but not within the next smaller one.
        let mut days: Vec<i64> = self.settings.expiring_days.iter().map(|d| i64::from(*d)).collect();
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        let mut events = Vec::new();
        let mut notices = Vec::new();
        for (i, d) in days.iter().enumerate() {
            let lower = days.get(i + 1).map_or(0, |next| next * 86_400);
            let kind = format!("expiring_{d}d");
            let due = self.select(&mut tx, "s.expires_at > $1 + $2 AND s.expires_at <= $1 + $3", &[now, lower, d * 86_400], &kind).await?;
            for s in due {
                notices.push(notice(s.wallet, s.end, &kind, now));
                events.push(NewEvent::new(
                    outbox::event_id(&[EventType::SubscriptionExpiring.as_str(), &s.wallet.to_string(), &s.end.to_string(), &kind]),
                    EventType::SubscriptionExpiring,
                    &serde_json::json!({
                        "wallet": s.wallet, "plan_id": s.plan_id, "tier": s.tier, "status": s.status,
                        "expires_at": s.end, "days_before": d,
                    }),
                ));
            }
        }
        let ended = self.select(&mut tx, "s.expires_at <= $1 AND $2 = $2 AND $3 = $3", &[now, 0, 0], "expired").await?;
        for s in ended {
            notices.push(notice(s.wallet, s.end, "expired", now));
            events.push(NewEvent::new(
                outbox::event_id(&[EventType::SubscriptionExpired.as_str(), &s.wallet.to_string(), &s.end.to_string()]),
                EventType::SubscriptionExpired,
                &serde_json::json!({
                    "wallet": s.wallet, "plan_id": s.plan_id, "tier": s.tier, "expired_at": s.end,
                    "reason": match s.status.as_str() { "canceled" => "canceled", "past_due" => "renewal_failed", _ => "period_ended" },
                }),
            ));
        }
        // The notice row is the claim: another instance running the same pass at the same
        // moment waits on it (PostgreSQL) and inserts nothing, so only the pass that inserted
        // a notice writes its event.
        let (claimed, _) = insert(
            &mut tx,
            "INSERT INTO subscription_notices (wallet, period_end, kind, created_at)",
            &notices,
            "ON CONFLICT DO NOTHING RETURNING wallet, period_end, kind",
        )
        .await?;
        let mut mine = std::collections::HashSet::new();
        for row in &claimed {
            let wallet = to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "subscription_notices.wallet")?;
            mine.insert((wallet, row.try_get::<i64, _>("period_end")?, row.try_get::<String, _>("kind")?));
        }
        let mut wallets = Vec::new();
        let mut written = Vec::new();
        for (n, event) in notices.iter().zip(events) {
            let (Value::Bytes(w), Value::I64(end), Value::Text(kind)) = (&n[0], &n[1], &n[2]) else { unreachable!("built above") };
            let wallet = Address::from_slice(w);
            if !mine.contains(&(wallet, *end, kind.clone())) {
                continue;
            }
            if kind == "expired" {
                report.expired += 1;
                wallets.push(wallet);
            } else {
                report.expiring += 1;
            }
            written.push(event);
        }
        subscriptions::expire_ended(&mut tx, &wallets, now as u64).await?;
        outbox::write_all(&mut tx, &written, now).await?;
        tx.commit().await?;
        if report.expiring + report.expired > 0 {
            tracing::info!(expiring = report.expiring, expired = report.expired, "reminders written");
        }
        Ok(report)
    }

    /// Returns live subscriptions matching `window` (over `$1…$3`) without a `kind` notice
    /// for their current end.
    async fn select(&self, conn: &mut sqlx::AnyConnection, window: &str, params: &[i64; 3], kind: &str) -> Result<Vec<Due>, StoreError> {
        let sql = format!(
            "SELECT s.wallet, s.plan_id, s.tier, s.status, s.expires_at FROM subscriptions s \
             WHERE s.status IN ('active', 'trialing', 'past_due', 'canceled') AND s.next_plan_id IS NULL AND {window} \
             AND NOT EXISTS (SELECT 1 FROM subscription_notices n WHERE n.wallet = s.wallet AND n.period_end = s.expires_at AND n.kind = $4) \
             ORDER BY s.expires_at, s.wallet"
        );
        let rows = sqlx::query(&sql).bind(params[0]).bind(params[1]).bind(params[2]).bind(kind).fetch_all(conn).await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    wallet: to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "subscriptions.wallet")?,
                    plan_id: r.try_get("plan_id")?,
                    tier: r.try_get("tier")?,
                    status: r.try_get("status")?,
                    end: r.try_get("expires_at")?,
                })
            })
            .collect()
    }
}

fn notice(wallet: Address, end: i64, kind: &str, now: i64) -> Vec<Value> {
    vec![Value::Bytes(address_bytes(wallet)), Value::I64(end), Value::Text(kind.to_string()), Value::I64(now)]
}
