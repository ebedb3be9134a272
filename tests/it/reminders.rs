//! Reminders and expiry: `subscription.expiring` at 7 days and 1 day before the end of a
//! period and `subscription.expired` at the end, each exactly once per period — across a
//! restart, after downtime, and with two instances on one PostgreSQL at the same moment.

use std::time::Duration;

use alloy::primitives::Address;
use sqlx::Row;
use tmai_pay::{
    billing::{
        activation::{self, Subscription},
        reminders::{Reminders, Report},
    },
    clock::Clock,
    config::ReminderSettings,
    store::Db,
};

use crate::{
    db::{DbKind, on_both_databases},
    harness::{CONFIRMATIONS, Harness},
};

const DAY: u64 = 86_400;

fn fixture_deployment() -> tmai_pay::chain::deployment::Deployment {
    let dir = tmai_pay::toolchain::Toolchain::locate().unwrap().fixtures_dir();
    tmai_pay::chain::deployment::Deployment::read(&dir.join(tmai_pay::chain::devnet::DEPLOYMENT_FILE)).unwrap()
}

async fn subscribe(h: &Harness, wallet: usize) -> u64 {
    let quote = h.quote(wallet, 1, "TMAI", 1).await;
    h.pay(wallet, &quote).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    expiry(&h.test_db.db, h.wallet(wallet)).await
}

async fn expiry(db: &Db, wallet: Address) -> u64 {
    let mut conn = db.pool().acquire().await.unwrap();
    activation::load(&mut conn, wallet).await.unwrap().unwrap().expires_at
}

/// Moves `clock` to `at` (unix seconds).
fn set(clock: &Clock, at: u64) {
    let now = clock.now();
    assert!(at >= now, "the clock only moves forward");
    clock.advance(Duration::from_secs(at - now));
}

/// The events of `event_type` for `wallet`, as (kind detail, expires_at).
async fn notices(h: &Harness, event_type: &str, wallet: Address) -> Vec<serde_json::Value> {
    h.events(event_type).await.into_iter().map(|e| e.payload["data"].clone()).filter(|d| d["wallet"] == serde_json::json!(wallet)).collect()
}

pub(crate) async fn reminders_fire_once_per_period(kind: DbKind) {
    let h = Harness::start(kind).await;
    let clock = Clock::system();
    let reminders = || Reminders::new(h.test_db.db.clone(), h.catalog.clone(), ReminderSettings::default(), clock.clone());
    let (a, b) = (h.wallet(1), h.wallet(2));
    let end_a = subscribe(&h, 1).await;
    let r = reminders();
    assert_eq!(r.tick().await.unwrap(), Report::default(), "a month away: nothing yet");

    set(&clock, end_a - 7 * DAY + 60);
    assert_eq!(r.tick().await.unwrap().expiring, 1);
    assert_eq!(r.tick().await.unwrap().expiring, 0, "once");
    assert_eq!(reminders().tick().await.unwrap().expiring, 0, "once across a restart");
    let seven = notices(&h, "subscription.expiring", a).await;
    assert_eq!(seven.len(), 1);
    assert_eq!((seven[0]["days_before"].as_u64(), seven[0]["expires_at"].as_u64()), (Some(7), Some(end_a)));

    set(&clock, end_a - DAY + 60);
    assert_eq!(r.tick().await.unwrap().expiring, 1);
    assert_eq!(reminders().tick().await.unwrap().expiring, 0);
    set(&clock, end_a + 1);
    assert_eq!(r.tick().await.unwrap().expired, 1);
    assert_eq!(reminders().tick().await.unwrap(), Report::default());
    let expired = notices(&h, "subscription.expired", a).await;
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0]["expired_at"].as_u64(), expired[0]["reason"].as_str()), (Some(end_a), Some("period_ended")));
    let status: String =
        sqlx::query("SELECT status FROM subscriptions WHERE wallet = $1").bind(a.to_vec()).fetch_one(h.test_db.db.pool()).await.unwrap().try_get(0).unwrap();
    assert_eq!(status, "expired");
    assert_eq!(notices(&h, "subscription.expiring", a).await.len(), 2);

    // Wallet b pays; the pass first runs a day before its end, as if the service had been
    // down through the 7-day window: only the 1-day reminder goes out, not both.
    // (a clock of its own: the first one is a month ahead).
    let clock = Clock::system();
    let r = Reminders::new(h.test_db.db.clone(), h.catalog.clone(), ReminderSettings::default(), clock.clone());
    let end_b = subscribe(&h, 2).await;
    set(&clock, end_b - DAY + 60);
    let report = r.tick().await.unwrap();
    assert_eq!(report.expiring, 1, "{report:?}");
    let got = notices(&h, "subscription.expiring", b).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["days_before"], 1);

    // A renewal starts a new period with its own reminders.
    let renewed = subscribe(&h, 2).await;
    assert_eq!(renewed, end_b + 30 * DAY);
    set(&clock, renewed - 7 * DAY + 60);
    assert_eq!(r.tick().await.unwrap().expiring, 1);
    assert_eq!(notices(&h, "subscription.expiring", b).await.len(), 2);
    assert_eq!(notices(&h, "subscription.expired", b).await.len(), 0);
    crate::event_schemas::check_outbox(&h.test_db.db).await;
}
on_both_databases!(reminders_fire_once_per_period);

/// Two instances on one PostgreSQL run the pass at the same moments: every reminder and
/// expiry is written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_write_each_reminder_once() {
    let test_db = crate::db::fresh_db(DbKind::Postgres).await;
    let other = Db::connect(&test_db.url).await.unwrap();
    let catalog = catalog();
    let clock = Clock::system();
    let now = clock.now();
    // 300 subscriptions ending over the next 10 days, written by the service's own code.
    let mut conn = test_db.db.pool().acquire().await.unwrap();
    for i in 0..300u64 {
        let wallet = Address::from_word(alloy::primitives::keccak256(i.to_be_bytes()));
        let sub = Subscription {
            wallet,
            plan_id: 1,
            tier: 1,
            status: if i % 10 == 0 { "canceled" } else { "active" }.parse().unwrap(),
            started_at: now,
            expires_at: now + 3_600 + i * 2_880,
            next_plan_id: None,
            next_expires_at: None,
            comp_seconds: 0,
            paid_rate: None,
        };
        activation::save(&mut conn, &sub, now).await.unwrap();
    }
    drop(conn);
    let settings = ReminderSettings::default();
    let first = Reminders::new(test_db.db.clone(), catalog.clone(), settings.clone(), clock.clone());
    let second = Reminders::new(other.clone(), catalog.clone(), settings, clock.clone());
    let mut total = Report::default();
    // Walk eleven days in 6-hour steps, both instances at once at every step.
    for _ in 0..44 {
        let (x, y) = tokio::join!(first.tick(), second.tick());
        for r in [x.unwrap(), y.unwrap()] {
            total.expiring += r.expiring;
            total.expired += r.expired;
        }
        clock.advance(Duration::from_secs(6 * 3_600));
    }
    let count = |event: &'static str| {
        let db = test_db.db.clone();
        async move {
            sqlx::query("SELECT COUNT(*), COUNT(DISTINCT payload) FROM outbox_events WHERE event_type = $1")
                .bind(event)
                .fetch_one(db.pool())
                .await
                .map(|r| (r.try_get::<i64, _>(0).unwrap(), r.try_get::<i64, _>(1).unwrap()))
                .unwrap()
        }
    };
    let expired = count("subscription.expired").await;
    assert_eq!(expired, (300, 300), "every subscription expired once");
    assert_eq!(total.expired, 300, "and the instances' reports agree");
    let expiring = count("subscription.expiring").await;
    assert_eq!(total.expiring as i64, expiring.0);
    // Each ends 1 h + i × 48 min out: a 1-day reminder for all, a 7-day one for those that
    // end more than a day out, and none twice.
    let one_day_out = (0..300u64).filter(|i| 3_600 + i * 2_880 > DAY).count() as i64;
    assert_eq!(expiring.0, 300 + one_day_out, "{expiring:?}");
    assert_eq!(expiring.0, expiring.1);
    let canceled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_events WHERE event_type = 'subscription.expired' AND payload LIKE '%\"canceled\"%'")
        .fetch_one(test_db.db.pool())
        .await
        .unwrap();
    assert_eq!(canceled, 30);
    other.close().await;
}

/// A subscription for `reminder_looks_miss_nothing`, ending at `expires_at`.
fn plan(i: u64, status: &str, expires_at: u64, next_plan: bool) -> Subscription {
    Subscription {
        wallet: Address::from_word(alloy::primitives::keccak256(i.to_be_bytes())),
        plan_id: 1,
        tier: 1,
        status: status.parse().unwrap(),
        started_at: expires_at.saturating_sub(30 * DAY),
        expires_at,
        next_plan_id: next_plan.then_some(2),
        next_expires_at: next_plan.then_some(expires_at + 30 * DAY),
        comp_seconds: 0,
        paid_rate: None,
    }
}

/// The reminder pass's last look.
async fn last_look(db: &Db) -> tmai_pay::store::notices::Look {
    let mut conn = db.pool().acquire().await.unwrap();
    tmai_pay::store::notices::last_look(&mut conn).await.unwrap().unwrap()
}

/// The plans a full look still finds due a reminder (none after a pass, whatever happened).
async fn still_due(db: &Db, now: u64) -> Vec<(Address, u64, u32)> {
    let mut conn = db.pool().acquire().await.unwrap();
    let mut due = Vec::new();
    for (d, lower) in [(7u32, DAY), (1, 0)] {
        let kind = tmai_pay::store::notices::NoticeKind::Expiring { days: d };
        for s in tmai_pay::store::notices::ending_between(&mut conn, now + lower, now + u64::from(d) * DAY, kind).await.unwrap() {
            due.push((s.wallet, s.expires_at, d));
        }
    }
    due
}

/// The pass narrows its look to what changed since the last one (issue 30's growth bench:
/// the full look re-read every plan ending 1–7 days ahead on every pass). A random run of
/// passes, clock steps and writes nobody planned — new plans ending inside a window
/// already looked at, renewals, cancellations, scheduled downgrades, writes committed late
/// — and after every pass a full look finds nothing left due; each reminder once.
pub(crate) async fn reminder_looks_miss_nothing(kind: DbKind) {
    use rand::{Rng, SeedableRng};
    let test_db = crate::db::fresh_db(kind).await;
    let db = test_db.db.clone();
    let clock = Clock::system();
    let r = Reminders::new(db.clone(), catalog(), ReminderSettings::default(), clock.clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(30);
    let mut conn = db.pool().acquire().await.unwrap();
    let start = clock.now();
    for i in 0..200u64 {
        activation::save(&mut conn, &plan(i, "active", start + rng.random_range(0..12 * DAY), i % 17 == 0), start).await.unwrap();
    }
    let (mut narrowed, mut sent) = (0, 0);
    let mut next = 200u64;
    for step in 0..160 {
        let report = r.tick().await.unwrap();
        sent += report.expiring;
        let l = last_look(&db).await;
        assert_eq!(l.offsets, "7,1");
        assert_eq!(still_due(&db, l.looked_at).await, vec![], "step {step}: a full look finds nothing the pass left");
        if l.full_at < l.looked_at {
            narrowed += 1;
        }
        // Between passes: the clock moves 30 s to 40 min, and a few plans are written,
        // some dated up to the margin before the last pass (a write that committed late).
        clock.advance(Duration::from_secs(rng.random_range(30..2_400)));
        let now = clock.now();
        for _ in 0..rng.random_range(0..4) {
            let written_at = now - rng.random_range(0..tmai_pay::billing::reminders::WRITE_MARGIN_SECS.min(now - l.looked_at + 200));
            let (i, end) = match rng.random_range(0..4) {
                // A new plan ending anywhere in the next 8 days (inside windows already seen).
                0 => {
                    next += 1;
                    (next, now + rng.random_range(60..8 * DAY))
                }
                // An existing one renewed, shortened by a refund, or moved within a window.
                _ => (rng.random_range(0..next), now + rng.random_range(60..40 * DAY)),
            };
            let status = ["active", "canceled", "trialing", "past_due"][rng.random_range(0..4)];
            activation::save(&mut conn, &plan(i, status, end, rng.random_range(0..10) == 0), written_at).await.unwrap();
        }
    }
    assert!(narrowed > 100, "most passes narrowed their look ({narrowed} of 160)");
    assert!(sent > 150, "the run sent reminders ({sent})");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_events WHERE event_type = 'subscription.expiring'").fetch_one(db.pool()).await.unwrap();
    let claimed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subscription_notices WHERE kind LIKE 'expiring%'").fetch_one(db.pool()).await.unwrap();
    assert_eq!((events, claimed), (sent as i64, sent as i64), "one event per notice claimed, as reported");
}
on_both_databases!(reminder_looks_miss_nothing);

/// A write dated further back than the margin (a transaction open for minutes, a clock far
/// behind) is not read by the narrowed look; the hourly full look sends its reminder.
pub(crate) async fn a_write_older_than_the_margin_waits_for_the_full_look(kind: DbKind) {
    use tmai_pay::billing::reminders::{FULL_LOOK_SECS, WRITE_MARGIN_SECS};
    let test_db = crate::db::fresh_db(kind).await;
    let db = test_db.db.clone();
    let clock = Clock::system();
    let r = Reminders::new(db.clone(), catalog(), ReminderSettings::default(), clock.clone());
    assert_eq!(r.tick().await.unwrap(), Report::default(), "the first, full look");
    clock.advance(Duration::from_secs(30));
    let now = clock.now();
    let mut conn = db.pool().acquire().await.unwrap();
    // Both end in three days (inside the 7-day window since before the last look).
    activation::save(&mut conn, &plan(1, "active", now + 3 * DAY, false), now - 30 - WRITE_MARGIN_SECS).await.unwrap();
    activation::save(&mut conn, &plan(2, "active", now + 3 * DAY, false), now - 30 - WRITE_MARGIN_SECS - 1).await.unwrap();
    assert_eq!(r.tick().await.unwrap().expiring, 1, "the write at the margin is read");
    assert_eq!(still_due(&db, last_look(&db).await.looked_at).await.len(), 1, "the one before it waits");
    clock.advance(Duration::from_secs(FULL_LOOK_SECS - 31));
    assert_eq!(r.tick().await.unwrap().expiring, 0, "still narrowed just under an hour after the full look");
    clock.advance(Duration::from_secs(1));
    assert_eq!(r.tick().await.unwrap().expiring, 1, "an hour after the full look: another one");
    assert_eq!(still_due(&db, last_look(&db).await.looked_at).await, vec![]);
    // Other offsets than the last look's: a full look at once.
    let three = ReminderSettings { expiring_days: vec![3], ..ReminderSettings::default() };
    activation::save(&mut conn, &plan(3, "active", clock.now() + 2 * DAY, false), 0).await.unwrap();
    let r3 = Reminders::new(db.clone(), catalog(), three, clock.clone());
    assert_eq!(r3.tick().await.unwrap().expiring, 3, "a 3-day reminder for all three, read by a full look");
}
on_both_databases!(a_write_older_than_the_margin_waits_for_the_full_look);

/// The harness's plans.
fn catalog() -> std::sync::Arc<tmai_pay::billing::plans::Catalog> {
    std::sync::Arc::new(tmai_pay::billing::plans::Catalog::new(&crate::harness::plan_configs(), &fixture_deployment().tokens).unwrap())
}
