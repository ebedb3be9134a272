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

use tokio_util::sync::CancellationToken;

use super::{activation, plans::Catalog};
use crate::{
    clock::Clock,
    config::ReminderSettings,
    events::{EventType, ExpiredReason, Payload, PeriodEnded, RenewalFailure, SubscriptionExpired, SubscriptionExpiring},
    states::SubscriptionStatus,
    store::{
        Db, StoreError, customers, mandates,
        notices::{self, Notice, NoticeKind},
        outbox::{self, NewEvent},
        subscriptions,
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

/// How far before the last look a plan's write may be dated and still be read by the next
/// narrowed look: a write transaction that took its `now` before the last pass began but
/// committed after it, or an instance whose clock runs behind. Anything older is found by
/// the next full look.
pub const WRITE_MARGIN_SECS: u64 = 300;

/// A full look (every plan in every window against its notice) at least this often, even
/// when every pass in between was narrowed.
pub const FULL_LOOK_SECS: u64 = 3_600;

/// The last look when this pass can narrow its reminder look to what changed since it;
/// `None` for a full look: no look yet, other offsets, a clock that went back, or the last
/// full look an hour or more ago.
///
/// Why the narrowed look misses nothing: a plan due a reminder now and not at the last look
/// either ended beyond the window's far edge then (its end crossed the edge since, and the
/// edge half reads it) or had another end or state then (a write since, which the written
/// half reads). A plan due then was given its notice by that committed pass.
fn narrowed_since(last: Option<notices::Look>, offsets: &str, now: u64) -> Option<notices::Look> {
    last.filter(|last| last.offsets == offsets && last.looked_at <= now && now < last.full_at.saturating_add(FULL_LOOK_SECS))
}

/// The reminder pass; runs on every instance (exactly once comes from the keys, not from
/// leadership).
#[derive(Debug, Clone)]
pub struct Reminders {
    db: Db,
    catalog: std::sync::Arc<Catalog>,
    settings: ReminderSettings,
    clock: Clock,
    renewal_grace: u64,
}

impl Reminders {
    /// Returns the pass over `db`.
    pub fn new(db: Db, catalog: std::sync::Arc<Catalog>, settings: ReminderSettings, clock: Clock) -> Self {
        Self { db, catalog, settings, clock, renewal_grace: 0 }
    }

    /// Returns the pass with automatic renewal's grace period (`renewals.grace_days`, in
    /// seconds): a `past_due` plan whose mandate is still retried stays `past_due` (without
    /// access) that long after its end before it expires.
    pub fn with_renewal_grace(mut self, secs: u64) -> Self {
        self.renewal_grace = secs;
        self
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
        let now = self.clock.now();
        let mut report = Report::default();
        let mut tx = self.db.begin_write().await?;
        notices::lookups_only(&mut tx).await?;
        report.downgrades = activation::apply_due_downgrades(&mut tx, &self.catalog, now).await? as u64;

        // Offsets from the largest to the smallest: a subscription is in the window of an
        // offset when its end is within it but not within the next smaller one.
        let mut days = self.settings.expiring_days.clone();
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        let offsets = days.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let since = narrowed_since(notices::last_look(&mut tx).await?, &offsets, now);
        let mut payloads: Vec<(String, Payload)> = Vec::new();
        let mut candidates = Vec::new();
        for (i, d) in days.iter().enumerate() {
            let lower = days.get(i + 1).map_or(0, |next| u64::from(*next) * 86_400);
            let kind = NoticeKind::Expiring { days: *d };
            let (after, until) = (now + lower, now + u64::from(*d) * 86_400);
            let due = match &since {
                // Ends that crossed the window's far edge since the last look, and plans
                // written since (less the margin).
                Some(last) => {
                    let edge = (last.looked_at + u64::from(*d) * 86_400).max(after);
                    notices::ending_between_since(&mut tx, after, until, kind, edge, last.looked_at.saturating_sub(WRITE_MARGIN_SECS)).await?
                }
                None => notices::ending_between(&mut tx, after, until, kind).await?,
            };
            for s in due {
                candidates.push(Notice { wallet: s.wallet, period_end: s.expires_at, kind });
                payloads.push((
                    outbox::event_id(&[EventType::SubscriptionExpiring.as_str(), &s.wallet.to_string(), &s.expires_at.to_string(), &kind.to_string()]),
                    SubscriptionExpiring { wallet: s.wallet, plan_id: s.plan_id, tier: s.tier, status: s.status, expires_at: s.expires_at, days_before: *d }
                        .into(),
                ));
            }
        }
        let full_at = since.map_or(now, |last| last.full_at);
        notices::save_look(&mut tx, &notices::Look { offsets, looked_at: now, full_at }).await?;
        for s in notices::ended_by(&mut tx, now, self.renewal_grace).await? {
            // An automatic renewal that failed says why the plan ended.
            let renewal_failure = if s.status == SubscriptionStatus::PastDue {
                mandates::failure_for_period(&mut tx, s.wallet, s.expires_at).await?.as_deref().and_then(RenewalFailure::parse)
            } else {
                None
            };
            candidates.push(Notice { wallet: s.wallet, period_end: s.expires_at, kind: NoticeKind::Expired });
            payloads.push((
                outbox::event_id(&[EventType::SubscriptionExpired.as_str(), &s.wallet.to_string(), &s.expires_at.to_string()]),
                SubscriptionExpired::PeriodEnded(PeriodEnded {
                    wallet: s.wallet,
                    plan_id: s.plan_id,
                    tier: s.tier,
                    expired_at: s.expires_at,
                    reason: match s.status {
                        SubscriptionStatus::Canceled => ExpiredReason::Canceled,
                        SubscriptionStatus::PastDue => ExpiredReason::RenewalFailed,
                        _ => ExpiredReason::PeriodEnded,
                    },
                    renewal_failure,
                })
                .into(),
            ));
        }
        // The notice row is the claim: only the pass that inserted a notice writes its event.
        let mine = notices::claim(&mut tx, &candidates, now).await?;
        let mut wallets = Vec::new();
        let mut written = Vec::new();
        let mine_wallets: Vec<_> = candidates.iter().filter(|n| mine.contains(n)).map(|n| n.wallet).collect();
        let customers = customers::of_wallets(&mut tx, &mine_wallets).await?;
        for (n, (id, payload)) in candidates.iter().zip(payloads) {
            if !mine.contains(n) {
                continue;
            }
            let event = NewEvent::for_customer(id, payload, customers.get(&n.wallet));
            match n.kind {
                NoticeKind::Expired => {
                    report.expired += 1;
                    wallets.push(n.wallet);
                }
                NoticeKind::Expiring { .. } => report.expiring += 1,
            }
            written.push(event);
        }
        subscriptions::expire_ended(&mut tx, &wallets, now).await?;
        outbox::write_all(&mut tx, &written, now as i64).await?;
        tx.commit().await?;
        if report.expiring + report.expired > 0 {
            tracing::info!(expiring = report.expiring, expired = report.expired, "reminders written");
        }
        Ok(report)
    }
}
