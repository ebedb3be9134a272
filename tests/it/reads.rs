//! The hot paths of the public API: subscription reads go through a cache that no
//! committed write ever leaves stale (this instance's at once, another PostgreSQL
//! instance's as its `NOTIFY` arrives), and checkouts created together share commits while
//! each gets its own order, signature and event.

use std::{collections::HashSet, time::Duration};

use alloy::primitives::{Address, Signature, U256};
use serde_json::Value;
use tmai_pay::{
    billing::{
        activation::{Subscription, save},
        quotes::QuoteRequest,
    },
    chain::{
        bindings::ISubscriptionCheckout::Quote,
        signing::{quote_digest, quote_domain},
    },
    store::{Db, unix_now},
};

use crate::{
    api::App,
    db::{DbKind, on_both_databases},
};

const ROUTE: &str = "/v1/subscriptions/{wallet}";

fn subscription(wallet: Address, tier: u8, status: &str) -> Subscription {
    let now = unix_now() as u64;
    Subscription {
        wallet,
        plan_id: u32::from(tier),
        tier,
        status: status.parse().unwrap(),
        started_at: now,
        expires_at: now + 30 * 86_400,
        next_plan_id: None,
        next_expires_at: None,
        comp_seconds: 0,
        paid_rate: None,
    }
}

async fn write(db: &Db, s: &Subscription) {
    let mut tx = db.begin_write().await.unwrap();
    save(&mut tx, s, unix_now() as u64).await.unwrap();
    tx.commit().await.unwrap();
}

async fn read(app: &App, wallet: Address) -> (u16, Value) {
    app.call("GET", ROUTE, &format!("/v1/subscriptions/{wallet}"), None, None).await
}

/// Reads repeated between writes (so the cache holds each answer) always show the last
/// committed write: no subscription, then one, then a change, then a member route's change.
async fn subscription_reads_show_every_committed_write_at_once(kind: DbKind) {
    let app = App::spawn(kind).await;
    let db = &app.h.test_db.db;
    let wallet = app.h.wallet(3);
    for _ in 0..3 {
        assert_eq!(read(&app, wallet).await.0, 404);
    }

    write(db, &subscription(wallet, 3, "active")).await;
    for _ in 0..3 {
        let (status, body) = read(&app, wallet).await;
        assert_eq!((status, body["tier"].as_u64(), body["status"].as_str()), (200, Some(3), Some("active")), "{body}");
    }

    write(db, &subscription(wallet, 2, "active")).await;
    let (_, body) = read(&app, wallet).await;
    assert_eq!(body["tier"], 2, "a write after the cached read shows at once: {body}");

    let (status, canceled) = app.call("POST", "/v1/members/{wallet}/cancel", &format!("/v1/members/{wallet}/cancel"), None, Some(&app.key)).await;
    assert_eq!(status, 200, "{canceled}");
    let (_, body) = read(&app, wallet).await;
    assert_eq!(body["status"], "canceled", "{body}");
}
on_both_databases!(subscription_reads_show_every_committed_write_at_once);

/// Two instances on one PostgreSQL: a write by the other instance, or by anything else
/// that changes `subscriptions`, moves this instance's cache generation (the trigger's
/// NOTIFY) and the next read shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_writes_reach_the_cache_through_notify() {
    let app = App::spawn(DbKind::Postgres).await;
    let db = &app.h.test_db.db;
    let wallet = app.h.wallet(4);
    assert_eq!(read(&app, wallet).await.0, 404);
    let mut generation = None;
    for _ in 0..100 {
        generation = db.cache_generation();
        if generation.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = generation.expect("the listener connects and caching turns on");
    assert_eq!(read(&app, wallet).await.0, 404);

    // Act 1: the other instance writes.
    let other = Db::connect(&app.h.test_db.url).await.unwrap();
    write(&other, &subscription(wallet, 3, "active")).await;
    let moved = wait_until(|| db.cache_generation().is_some_and(|g| g != before)).await;
    assert!(moved, "the other instance's commit was notified");
    let (status, body) = read(&app, wallet).await;
    assert_eq!((status, body["tier"].as_u64()), (200, Some(3)), "{body}");

    // Act 2: a plain SQL write from outside the service.
    let now_cached = db.cache_generation().unwrap();
    sqlx::query("UPDATE subscriptions SET tier = 1, plan_id = 1").execute(other.pool()).await.unwrap();
    assert!(wait_until(|| db.cache_generation().is_some_and(|g| g != now_cached)).await, "an outside write was notified");
    let (_, body) = read(&app, wallet).await;
    assert_eq!(body["tier"], 1, "{body}");
    other.close().await;
}

/// The read cache's listener on its own session: ended from outside (a failover, an
/// administrator), it reconnects on a new session that sees later writes; and closing the
/// database ends it, so nothing of a closed instance is left on the server (a database
/// with a session left on it cannot be dropped or copied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_listener_reconnects_after_its_session_ends_and_closes_with_the_database() {
    let test_db = crate::db::fresh_db(DbKind::Postgres).await;
    let db = &test_db.db;
    assert!(wait_until(|| db.cache_generation().is_some()).await, "the listener connects and caching turns on");
    let name = test_db.url.rsplit('/').next().unwrap().to_string();
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", crate::db::postgres_server())).await.unwrap();
    let listeners = |admin: sqlx::PgPool, name: String| async move {
        sqlx::query_scalar::<_, i32>("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'").bind(name).fetch_all(&admin).await.unwrap()
    };
    let first = listeners(admin.clone(), name.clone()).await;
    assert_eq!(first.len(), 1, "one listening session");

    // Act 1: its session is ended from outside.
    let before = db.cache_generation().unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(first[0]).execute(&admin).await.unwrap();
    let mut again = Vec::new();
    for _ in 0..200 {
        again = listeners(admin.clone(), name.clone()).await;
        if again.len() == 1 && again != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(again.len() == 1 && again != first, "a new listening session: {again:?} (was {first:?})");
    assert!(wait_until(|| db.cache_generation().is_some_and(|g| g != before)).await, "caching is back on, in a new generation");
    let reconnected = db.cache_generation().unwrap();
    let other = Db::connect(&test_db.url).await.unwrap();
    write(&other, &subscription(Address::repeat_byte(7), 2, "active")).await;
    assert!(wait_until(|| db.cache_generation().is_some_and(|g| g != reconnected)).await, "a write after the reconnect is notified");
    other.close().await;

    // Act 2: closing the database ends every session it had, the listener's too.
    db.close().await;
    let mut left = -1;
    for _ in 0..40 {
        left = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_activity WHERE datname = $1").bind(&name).fetch_one(&admin).await.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(left, 0, "sessions left on the closed database");
    sqlx::query(&format!("DROP DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
}

async fn wait_until(check: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// 120 checkouts at once: every one answered 201 with its own order id and a signature
/// the quote signer made over exactly that quote; every order and its event stored. A
/// second process on the same database continues after the ids the first reserved.
async fn checkouts_created_together_each_get_their_own_stored_order(kind: DbKind) {
    let app = App::spawn(kind).await;
    let calls = (0..120).map(|i| {
        let body = serde_json::json!({ "plan_id": 3, "token": "TMAI", "wallet": app.wallet(i % 8), "periods": 1 + (i % 3) });
        app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body), None)
    });
    let answers = futures::future::join_all(calls).await;
    let domain = quote_domain(app.h.chain.deployment.chain_id, app.h.chain.deployment.checkout);
    let signer = app.h.quotes.signer_address();
    let mut order_ids = HashSet::new();
    for (status, checkout) in &answers {
        assert_eq!(*status, 201, "{checkout}");
        let q = &checkout["quote"];
        let quote = Quote {
            orderId: q["orderId"].as_str().unwrap().parse().unwrap(),
            payer: q["payer"].as_str().unwrap().parse().unwrap(),
            token: q["token"].as_str().unwrap().parse().unwrap(),
            amount: q["amount"].as_str().unwrap().parse::<U256>().unwrap(),
            planId: q["planId"].as_u64().unwrap() as u32,
            periods: q["periods"].as_u64().unwrap() as u32,
            deadline: q["deadline"].as_u64().unwrap(),
        };
        let signature: Signature = checkout["signature"].as_str().unwrap().parse().unwrap();
        assert_eq!(signature.recover_address_from_prehash(&quote_digest(&quote, &domain)).unwrap(), signer);
        let order_id = checkout["order_id"].as_str().unwrap().to_string();
        let id = checkout["id"].as_str().unwrap();
        let expected_prefix = format!("chk_{:016x}", order_id.parse::<u64>().unwrap());
        assert!(id.starts_with(&expected_prefix) && id.len() == 4 + 16 + 32, "{id}: order id, then 32 random hex digits");
        assert!(order_ids.insert(order_id), "order ids are unique");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 120);
    assert_eq!(app.count("SELECT COUNT(DISTINCT order_id) FROM orders").await, 120);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox_events WHERE event_type = 'checkout.created'").await, 120);
    for (_, checkout) in &answers {
        let id = checkout["id"].as_str().unwrap();
        let (status, stored) = app.call("GET", "/v1/checkouts/{id}", &format!("/v1/checkouts/{id}"), None, None).await;
        assert_eq!((status, &stored["signature"], &stored["order_id"]), (200, &checkout["signature"], &checkout["order_id"]));
    }

    // A restart (a new process on the same database) never reuses a reserved id.
    let restarted = Db::connect(&app.h.test_db.url).await.unwrap();
    let request = QuoteRequest { plan_id: 3, token: "TMAI".into(), payer: app.h.wallet(1), periods: 1 };
    let issued = app.h.quotes.issue(&restarted, &app.h.catalog, &request, unix_now() as u64).await.unwrap();
    let highest = order_ids.iter().map(|id| id.parse::<u64>().unwrap()).max().unwrap();
    assert!(issued.order_id > highest, "{} after {highest}", issued.order_id);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 121);
    restarted.close().await;
}
on_both_databases!(checkouts_created_together_each_get_their_own_stored_order);
