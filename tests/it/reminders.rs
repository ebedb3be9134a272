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
    let catalog = std::sync::Arc::new(tmai_pay::billing::plans::Catalog::new(&crate::harness::plan_configs(), &fixture_deployment().tokens).unwrap());
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
