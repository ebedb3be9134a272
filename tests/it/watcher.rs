//! The payment watcher and plan activation on a real anvil, on SQLite and PostgreSQL.

use alloy::providers::{Provider, ext::AnvilApi};
use tmai_pay::{
    billing::{activation, plans::MONTH_SECS},
    store::address_bytes,
};

use crate::{
    db::{DbKind, on_both_databases},
    harness::{CONFIRMATIONS, Harness},
};

pub(crate) async fn a_paid_checkout_confirms_after_n_blocks_and_activates_the_plan(kind: DbKind) {
    // Arrange
    let h = Harness::start(kind).await;
    let quote = h.quote(0, 3, "TMAI", 1).await;

    // Act: paid, then watched before and after it is deep enough
    let receipt = h.pay(0, &quote).await;
    h.catch_up().await;
    let detected_status = h.payment_status(receipt.transaction_hash).await;
    let subscriptions_before = h.count("SELECT COUNT(*) FROM subscriptions").await;
    h.mine(CONFIRMATIONS - 1).await;
    h.catch_up().await;

    // Assert
    assert_eq!(detected_status, "detected");
    assert_eq!(subscriptions_before, 0, "a payment is never acted on before it is confirmed");
    assert_eq!(h.payment_status(receipt.transaction_hash).await, "confirmed");
    let mut conn = h.test_db.db.pool().acquire().await.unwrap();
    let sub = activation::load(&mut conn, h.wallet(0)).await.unwrap().expect("subscription");
    assert_eq!((sub.plan_id, sub.tier, sub.status.as_str()), (3, 3, "active"));
    let started = sub.started_at;
    assert_eq!(sub.expires_at, started + MONTH_SECS);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs WHERE action = 'issue' AND tier = 3").await, 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'paid'").await, 1);
    for event in ["checkout.created", "payment.detected", "payment.confirmed", "subscription.activated"] {
        assert_eq!(h.events(event).await.len(), 1, "{event}");
    }
    let activated = &h.events("subscription.activated").await[0].payload;
    assert_eq!(activated["data"]["tier"], 3);
    crate::event_schemas::check_outbox(&h.test_db.db).await;
}
on_both_databases!(a_paid_checkout_confirms_after_n_blocks_and_activates_the_plan);

pub(crate) async fn a_renewal_extends_from_the_current_expiry(kind: DbKind) {
    let h = Harness::start(kind).await;
    h.pay(1, &h.quote(1, 1, "USD", 1).await).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    let mut conn = h.test_db.db.pool().acquire().await.unwrap();
    let first = activation::load(&mut conn, h.wallet(1)).await.unwrap().unwrap();

    h.pay(1, &h.quote(1, 1, "TMAI", 2).await).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;

    let renewed = activation::load(&mut conn, h.wallet(1)).await.unwrap().unwrap();
    assert_eq!(renewed.expires_at, first.expires_at + 2 * MONTH_SECS);
    assert_eq!(h.events("subscription.renewed").await.len(), 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs").await, 2);
    crate::event_schemas::check_outbox(&h.test_db.db).await;
}
on_both_databases!(a_renewal_extends_from_the_current_expiry);

pub(crate) async fn a_reorg_that_drops_a_detected_payment_never_activates_it(kind: DbKind) {
    // Arrange: a payment detected one block deep (fewer than N)
    let h = Harness::start(kind).await;
    let quote = h.quote(2, 2, "TMAI", 1).await;
    let snapshot = h.rpc.anvil_snapshot().await.unwrap();
    let (approval, receipt) = h.approve_and_pay(2, &quote).await;
    let raw_approval = h.rpc.get_raw_transaction_by_hash(approval.transaction_hash).await.unwrap().unwrap();
    let raw_payment = h.rpc.get_raw_transaction_by_hash(receipt.transaction_hash).await.unwrap().unwrap();
    h.catch_up().await;
    assert_eq!(h.payment_status(receipt.transaction_hash).await, "detected");

    // Act: the chain drops the payment's blocks and grows past N on another branch
    assert!(h.rpc.anvil_revert(snapshot).await.unwrap());
    h.mine(CONFIRMATIONS + 3).await;
    h.catch_up().await;

    // Assert
    assert_eq!(h.payment_status(receipt.transaction_hash).await, "reorged");
    assert_eq!(h.count("SELECT COUNT(*) FROM subscriptions").await, 0);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs").await, 0);
    assert_eq!(h.events("payment.reorged").await.len(), 1);
    assert_eq!(h.events("subscription.activated").await.len(), 0);

    // And when the same transaction is included again, it activates exactly once.
    for raw in [raw_approval, raw_payment] {
        h.rpc.send_raw_transaction(&raw).await.unwrap().get_receipt().await.unwrap();
    }
    h.catch_up().await;
    assert_eq!(h.payment_status(receipt.transaction_hash).await, "detected");
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    h.mine(2).await;
    h.catch_up().await;
    assert_eq!(h.payment_status(receipt.transaction_hash).await, "confirmed");
    assert_eq!(h.count("SELECT COUNT(*) FROM subscriptions").await, 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 1);
    assert_eq!(h.events("subscription.activated").await.len(), 1);
    crate::event_schemas::check_outbox(&h.test_db.db).await;
}
on_both_databases!(a_reorg_that_drops_a_detected_payment_never_activates_it);

async fn a_watcher_stopped_abruptly_mid_pass_misses_nothing_and_doubles_nothing(kind: DbKind) {
    // Arrange: several payments waiting to be read
    let h = Harness::start_with(kind, 3).await;
    for i in 0..4 {
        let quote = h.quote(i, 1 + (i as u32 % 4), "USD", 1).await;
        h.pay(i, &quote).await;
    }
    h.mine(CONFIRMATIONS).await;

    // Act: passes cut off at many points (the task is dropped mid-flight), then run out
    for delay_ms in [0u64, 1, 2, 3, 5, 8, 13, 21, 34] {
        let watcher = h.watcher.clone();
        let task = tokio::spawn(async move { watcher.pass().await });
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
    }
    h.catch_up().await;

    // Assert
    assert_eq!(h.count("SELECT COUNT(*) FROM payments WHERE status = 'confirmed'").await, 4);
    assert_eq!(h.count("SELECT COUNT(*) FROM subscriptions").await, 4);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 4);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs").await, 4);
    assert_eq!(h.events("payment.detected").await.len(), 4);
    assert_eq!(h.events("payment.confirmed").await.len(), 4);
}
on_both_databases!(a_watcher_stopped_abruptly_mid_pass_misses_nothing_and_doubles_nothing);

async fn a_watcher_far_behind_backfills_every_payment(kind: DbKind) {
    let h = Harness::start_with(kind, 7).await;
    for i in 0..6 {
        h.pay(i, &h.quote(i, 4, "TMAI", 1).await).await;
        h.mine(40).await;
    }
    let head = h.rpc.get_block_number().await.unwrap();

    h.catch_up().await;

    assert!(head > h.chain.deployment.deploy_block + 200);
    assert_eq!(h.count("SELECT COUNT(*) FROM payments WHERE status = 'confirmed'").await, 6);
    assert_eq!(h.count("SELECT COUNT(*) FROM subscriptions WHERE tier = 4").await, 6);
    let stored_blocks = h.count("SELECT COUNT(*) FROM chain_blocks").await;
    assert!(stored_blocks as u64 <= CONFIRMATIONS + 65, "only the reorg window is kept: {stored_blocks}");
}
on_both_databases!(a_watcher_far_behind_backfills_every_payment);

pub(crate) async fn a_payment_for_an_unknown_order_is_recorded_and_reported_not_activated(kind: DbKind) {
    // Arrange: a quote signed by the right key but not stored in this database
    let h = Harness::start(kind).await;
    let other = crate::db::fresh_db(kind).await;
    let request = tmai_pay::billing::quotes::QuoteRequest { plan_id: 3, token: "USD".into(), payer: h.wallet(5), periods: 1 };
    let stray = h.quotes.issue(&other.db, &h.catalog, &request, h.chain_now().await).await.unwrap();
    sqlx::query("DELETE FROM orders").execute(h.test_db.db.pool()).await.unwrap();

    // Act
    let receipt = h.pay(5, &stray).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;

    // Assert
    assert_eq!(h.payment_status(receipt.transaction_hash).await, "confirmed");
    let unmatched = h.events("payment.unmatched").await;
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].payload["data"]["reason"], "unknown order");
    assert_eq!(h.count("SELECT COUNT(*) FROM subscriptions").await, 0);
    let wallet_rows =
        sqlx::query("SELECT COUNT(*) FROM payments WHERE payer = $1").bind(address_bytes(h.wallet(5))).fetch_one(h.test_db.db.pool()).await.unwrap();
    use sqlx::Row;
    assert_eq!(wallet_rows.try_get::<i64, _>(0).unwrap(), 1);
    crate::event_schemas::check_outbox(&h.test_db.db).await;
}
on_both_databases!(a_payment_for_an_unknown_order_is_recorded_and_reported_not_activated);

async fn quotes_issued_while_the_watcher_runs_never_fail_its_passes(kind: DbKind) {
    // Arrange: payments to watch, and a second writer issuing quotes at the same time
    let h = Harness::start(kind).await;
    for i in 0..3 {
        h.pay(i, &h.quote(i, 2, "USD", 1).await).await;
    }
    let (db, quotes, catalog, payer) = (h.test_db.db.clone(), h.quotes.clone(), h.catalog.clone(), h.wallet(7));
    let now = h.chain_now().await;
    let writer = tokio::spawn(async move {
        for _ in 0..150 {
            let request = tmai_pay::billing::quotes::QuoteRequest { plan_id: 1, token: "TMAI".into(), payer, periods: 1 };
            quotes.issue(&db, &catalog, &request, now).await.expect("quote issued beside the watcher");
        }
    });

    // Act: passes while the writer runs
    let mut failures = Vec::new();
    while !writer.is_finished() {
        if let Err(error) = h.watcher.pass().await {
            failures.push(error.to_string());
        }
        h.mine(1).await;
    }
    writer.await.unwrap();
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;

    // Assert
    assert!(failures.is_empty(), "passes failed under a concurrent writer: {failures:?}");
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 3);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders").await, 153);
}
on_both_databases!(quotes_issued_while_the_watcher_runs_never_fail_its_passes);

/// A JSON-RPC proxy in front of anvil that refuses `eth_getLogs` over more than `limit`
/// blocks, as hosted providers do; everything else passes through to the real node.
pub(crate) async fn range_limited_proxy(
    upstream: String,
    limit: u64,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };
    let refused = Arc::new(AtomicU64::new(0));
    let counter = refused.clone();
    let limit = Arc::new(AtomicU64::new(limit));
    let current = limit.clone();
    let client = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(request): axum::Json<serde_json::Value>| {
            let (client, upstream, counter, current) = (client.clone(), upstream.clone(), counter.clone(), current.clone());
            async move {
                let limit = current.load(Ordering::Relaxed);
                if request["method"] == "eth_getLogs" {
                    let block = |key: &str| u64::from_str_radix(request["params"][0][key].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0);
                    if block("toBlock") + 1 - block("fromBlock") > limit {
                        counter.fetch_add(1, Ordering::Relaxed);
                        return axum::Json(serde_json::json!({
                            "jsonrpc": "2.0", "id": request["id"],
                            "error": { "code": -32005, "message": format!("block range is too wide (max {limit})") }
                        }));
                    }
                }
                let answer: serde_json::Value = client.post(&upstream).json(&request).send().await.unwrap().json().await.unwrap();
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, refused, limit)
}

/// A provider that refuses wide `eth_getLogs` ranges: the watcher shrinks the range and
/// still records every payment; once the provider takes wide ranges again, it grows back.
async fn the_watcher_shrinks_the_range_a_provider_refuses(kind: DbKind) {
    // Arrange: three payments spread over ~40 blocks; a provider that takes 8 blocks at most
    let h = Harness::start(kind).await;
    for wallet in 0..3 {
        let quote = h.quote(wallet, 1, "USD", 1).await;
        h.pay(wallet, &quote).await;
        h.mine(15).await;
    }
    let (url, refused, limit) = range_limited_proxy(h.chain.anvil.endpoint(), 8).await;
    let provider = alloy::providers::ProviderBuilder::new().connect_http(url.parse().unwrap()).erased();
    let watcher = h.watcher_on(&h.test_db.db, provider);

    // Act
    let mut passes = 0;
    while !watcher.pass().await.unwrap().caught_up {
        passes += 1;
        assert!(passes < 200, "the watcher did not catch up");
    }

    // Assert
    assert!(refused.load(std::sync::atomic::Ordering::Relaxed) > 0, "the provider never refused a range");
    assert_eq!(h.count("SELECT COUNT(*) FROM payments WHERE status = 'confirmed'").await, 3);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 3);
    assert!(watcher.block_range() <= 8, "range {}", watcher.block_range());

    // Act 2: the provider lifts its limit; after a run of successes the range grows back
    limit.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    for _ in 0..40 {
        h.mine(1).await;
        watcher.pass().await.unwrap();
    }
    assert!(watcher.block_range() > 8, "range {}", watcher.block_range());
}
on_both_databases!(the_watcher_shrinks_the_range_a_provider_refuses);

/// Reads `(wallet, plan, tier, status, next plan, expiry, next expiry)` of every subscription.
async fn subscriptions_of(db: &tmai_pay::store::Db) -> Vec<(Vec<u8>, i64, i64, String, Option<i64>, i64, Option<i64>)> {
    use sqlx::Row;
    sqlx::query("SELECT wallet, plan_id, tier, status, next_plan_id, expires_at, next_expires_at FROM subscriptions ORDER BY wallet")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("wallet"), r.get("plan_id"), r.get("tier"), r.get("status"), r.get("next_plan_id"), r.get("expires_at"), r.get("next_expires_at")))
        .collect()
}

async fn a_pass_in_many_chunks_activates_exactly_as_one_chunk(kind: DbKind) {
    // Arrange: three wallets renewing, upgrading and downgrading over eleven payments, the
    // same orders in a second database watched three logs at a time
    let h = Harness::start(kind).await;
    let other = crate::db::fresh_db(kind).await;
    let chunked = h.watcher_on(&other.db, h.rpc.clone()).with_chunk_size(3);
    let plan = [(0, 1), (1, 3), (2, 2), (0, 1), (1, 1), (2, 4), (0, 3), (1, 3), (2, 4), (0, 2), (1, 4)];
    let now = h.chain_now().await;
    for (wallet, plan_id) in plan {
        let request = tmai_pay::billing::quotes::QuoteRequest { plan_id, token: "USD".into(), payer: h.wallet(wallet), periods: 1 };
        let quote = h.quotes.issue(&h.test_db.db, &h.catalog, &request, now).await.unwrap();
        let twin = h.quotes.issue(&other.db, &h.catalog, &request, now).await.unwrap();
        assert_eq!(quote.order_id, twin.order_id, "both databases hand out the same order ids");
        h.pay(wallet, &quote).await;
    }
    h.mine(CONFIRMATIONS).await;

    // Act
    h.catch_up().await;
    while !chunked.pass().await.unwrap().caught_up {}

    // Assert: the same subscriptions (times within the seconds between the two passes),
    // activations and badge jobs
    let (one, many) = (subscriptions_of(&h.test_db.db).await, subscriptions_of(&other.db).await);
    assert_eq!(one.len(), 3);
    for (a, b) in one.iter().zip(&many) {
        assert_eq!((&a.0, a.1, a.2, &a.3, a.4), (&b.0, b.1, b.2, &b.3, b.4));
        assert!((a.5 - b.5).abs() <= 2, "expiry {} vs {}", a.5, b.5);
        assert_eq!(a.6.is_some(), b.6.is_some());
    }
    let kinds = "SELECT payment_id || ':' || kind || ':' || plan_id FROM activations ORDER BY payment_id";
    let jobs = "SELECT wallet, action, tier FROM badge_jobs ORDER BY id";
    // Eleven activations; two of them scheduled downgrades, which queue no badge.
    for (sql, rows) in [(kinds, plan.len()), (jobs, plan.len() - 2)] {
        let read = |db: tmai_pay::store::Db| async move {
            use sqlx::Row;
            let rows = sqlx::query(sql).fetch_all(db.pool()).await.unwrap();
            rows.iter()
                .map(|r| {
                    format!(
                        "{:?}",
                        (0..r.len())
                            .map(|i| r
                                .try_get::<String, _>(i)
                                .or_else(|_| r.try_get::<i64, _>(i).map(|v| v.to_string()))
                                .unwrap_or_else(|_| alloy::hex::encode(r.get::<Vec<u8>, _>(i))))
                            .collect::<Vec<_>>()
                    )
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (read(h.test_db.db.clone()).await, read(other.db.clone()).await);
        assert_eq!(a.len(), rows, "{sql}: {a:?}");
        assert_eq!(a, b, "{sql}");
    }
    // And each payment's events stay in their order: detected, confirmed, then its change.
    let events = tmai_pay::store::outbox::all(other.db.pool()).await.unwrap();
    let mut checked = 0;
    for detected in events.iter().filter(|e| e.event_type == "payment.detected") {
        let key = &detected.payload["data"]["payment"];
        let seq_of = |kind: &str| events.iter().find(|e| e.event_type.starts_with(kind) && e.payload["data"]["payment"] == *key).map(|e| e.seq);
        let (confirmed, change) = (seq_of("payment.confirmed").unwrap(), seq_of("subscription.").unwrap());
        assert!(detected.seq < confirmed && confirmed < change, "{key}: {} < {confirmed} < {change}", detected.seq);
        checked += 1;
    }
    assert_eq!(checked, plan.len());
}
on_both_databases!(a_pass_in_many_chunks_activates_exactly_as_one_chunk);
