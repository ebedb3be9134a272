//! Nothing anonymous grows without bound (issue 26 §5): unpaid checkouts are pruned after
//! their retention (and a late payment for one is still recorded and reported), and the
//! card webhook has a rate limit and a body limit of its own. Each test drives its bound
//! on a real service, a real database and, where payments are involved, a real anvil.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Row;
use tmai_pay::{
    billing::retention::{Report, Retention},
    clock::Clock,
    config::{CardSettings, HttpSettings, RetentionSettings, WebhookSettings},
    notify::{delivery::Deliverer, endpoints},
};

use crate::{
    api::App,
    db::{DbKind, on_both_databases},
    harness::{CONFIRMATIONS, Harness},
    helpers::free_port,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Webhook delivery for the tests: a private target allowed (the endpoint is a closed port
/// on this machine), one retry ten days after the first attempt, no jitter.
fn webhook_settings() -> WebhookSettings {
    WebhookSettings { allow_private_targets: true, schedule_secs: vec![0, 10 * 86_400], jitter_percent: 0, ..Default::default() }
}

/// Row counts of the tables a checkout writes: orders, outbox events, deliveries, attempts.
async fn tables(app: &App) -> [i64; 4] {
    let mut out = [0; 4];
    for (i, table) in ["orders", "outbox_events", "webhook_deliveries", "webhook_attempts"].iter().enumerate() {
        out[i] = app.count(&format!("SELECT COUNT(*) FROM {table}")).await;
    }
    out
}

/// Asks for `n` checkouts through the API (every one must be answered 201).
async fn checkouts(app: &App, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = json!({ "plan_id": 3, "token": "TMAI", "wallet": app.wallet(i % 5), "periods": 1 });
        let (status, answer) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body), None).await;
        assert_eq!(status, 201, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Unpaid checkouts stop growing the tables: a checkout a day for a week, a retention of
/// two days, a pruning pass (in batches of 7) each day. The orders and events reach their
/// bound and stay there; old checkouts whose webhook is still being retried are kept until
/// their delivery ends, then go with their deliveries and attempts; the service answers
/// throughout.
async fn unpaid_checkouts_stop_growing_the_tables(kind: DbKind) {
    // Arrange: the API and the delivery worker on one movable clock
    let clock = Clock::system();
    let state_clock = clock.clone();
    let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| {
        state.with_clock(state_clock).with_webhooks(webhook_settings())
    })
    .await;
    let db = app.h.test_db.db.clone();
    let deliverer = Deliverer::new(db.clone(), webhook_settings(), clock.clone()).unwrap();
    let retention = Retention::new(db.clone(), RetentionSettings { unpaid_checkouts_days: 2, interval_secs: 60, batch_size: 7 }, clock.clone());

    // Act: ten checkouts a day for six days, each day fanned out (no endpoint yet) and pruned
    let mut sizes = Vec::new();
    let mut first_day = Vec::new();
    for day in 0..6 {
        let ids = checkouts(&app, 10).await;
        if day == 0 {
            first_day = ids;
        }
        deliverer.tick().await.unwrap();
        clock.advance(DAY);
        retention.tick().await.unwrap();
        sizes.push(tables(&app).await);
    }

    // Assert: a day's checkouts live two days past their deadline, then go: the tables
    // hold two days' worth (20) from the second day on, whatever the days before sold
    let orders: Vec<i64> = sizes.iter().map(|s| s[0]).collect();
    let events: Vec<i64> = sizes.iter().map(|s| s[1]).collect();
    assert_eq!(orders, [10, 20, 20, 20, 20, 20], "orders after each day");
    assert_eq!(events, orders, "each order's checkout.created goes with it");
    let (status, body) = app.call("GET", "/v1/checkouts/{id}", &format!("/v1/checkouts/{}", first_day[0]), None, None).await;
    assert_eq!(status, 404, "a pruned checkout is unknown: {body}");

    // Arrange: an endpoint that is down, and five checkouts for it: the first delivery
    // fails and waits for its retry, the other four wait behind it (in order)
    let dead = format!("http://127.0.0.1:{}/hooks", free_port());
    let (endpoint, _) = endpoints::create(&db, &dead, "down", None, clock.now() as i64).await.unwrap();
    let held = checkouts(&app, 5).await;
    let report = deliverer.tick().await.unwrap();
    assert_eq!((report.queued, report.failed_attempts), (5, 1), "{report:?}");

    // Act: three days on, past the retention, the deliveries still pending
    clock.advance(3 * DAY);
    let report = retention.tick().await.unwrap();

    // Assert: the older checkouts went; these are kept with their pending deliveries (the
    // newest order is no candidate at all)
    assert_eq!(report.held, 4, "{report:?}");
    assert_eq!(tables(&app).await, [5, 5, 5, 1], "{report:?}");
    let (status, _) = app.call("GET", "/v1/checkouts/{id}", &format!("/v1/checkouts/{}", held[0]), None, None).await;
    assert_eq!(status, 200, "a checkout whose webhook is pending is kept");

    // Act: the merchant deletes the endpoint, which cancels its pending deliveries
    let (status, _) = app.call("DELETE", "/v1/webhook-endpoints/{id}", &format!("/v1/webhook-endpoints/{}", endpoint.id), None, Some(&app.key)).await;
    assert_eq!(status, 204);
    let report = retention.tick().await.unwrap();

    // Assert: now they go, with their deliveries and the one attempt; the newest order and
    // its delivery stay; the service still answers
    assert_eq!(report, Report { orders: 4, events: 4, deliveries: 4, attempts: 1, held: 0, batches: 1 });
    assert_eq!(tables(&app).await, [1, 1, 1, 0]);
    let (status, _) = app.call("GET", "/v1/plans", "/v1/plans", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(checkouts(&app, 1).await.len(), 1);
}
on_both_databases!(unpaid_checkouts_stop_growing_the_tables);

/// The newest order is kept whatever its age: start-up checks the order id after the
/// highest stored one against the chain, and pruning must not move it back.
async fn the_newest_order_is_never_pruned(kind: DbKind) {
    // Arrange
    let clock = Clock::system();
    let state_clock = clock.clone();
    let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| state.with_clock(state_clock)).await;
    let db = app.h.test_db.db.clone();
    checkouts(&app, 3).await;
    Deliverer::new(db.clone(), WebhookSettings::default(), clock.clone()).unwrap().tick().await.unwrap();
    let highest = app.count("SELECT MAX(order_id) FROM orders").await;

    // Act: a year later
    clock.advance(365 * DAY);
    let report = Retention::new(db, RetentionSettings::default(), clock).tick().await.unwrap();

    // Assert
    assert_eq!(report.orders, 2, "{report:?}");
    assert_eq!(app.count("SELECT MAX(order_id) FROM orders").await, highest);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
}
on_both_databases!(the_newest_order_is_never_pruned);

/// A payment that arrives for a pruned order is recorded and reported, never lost: the
/// contract takes a quote only before its deadline, so such a payment was mined before it
/// and is seen late (the watcher behind, or a late confirmation). Here the service's clock
/// runs a retention ahead of the chain's to make that happen on a real anvil: the order is
/// pruned, then the old signed quote is paid. The watcher records it `unmatched` (`unknown
/// order`) with `payment.unmatched`; a paid order is never pruned.
async fn a_payment_for_a_pruned_order_is_recorded_unmatched(kind: DbKind) {
    // Arrange: an unpaid quote, then a paid one, then a newer unpaid one, all fanned out
    let h = Harness::start(kind).await;
    let db = h.test_db.db.clone();
    let pruned = h.quote(0, 3, "TMAI", 1).await;
    let paid = h.quote(1, 3, "TMAI", 1).await;
    h.pay(1, &paid).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    h.quote(2, 1, "USD", 1).await;
    let clock = Clock::system();
    Deliverer::new(db.clone(), WebhookSettings::default(), clock.clone()).unwrap().tick().await.unwrap();

    // Act: thirty days and an hour after the quotes' deadlines, a pruning pass
    clock.advance(31 * DAY);
    let report = Retention::new(db.clone(), RetentionSettings::default(), clock).tick().await.unwrap();

    // Assert: only the unpaid, not newest order went, with its checkout.created
    assert_eq!((report.orders, report.events), (1, 1), "{report:?}");
    let key = pruned.order_id.db_key().unwrap();
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM orders WHERE order_id = {key}")).await, 0);
    assert_eq!(h.count(&format!("SELECT COUNT(*) FROM orders WHERE order_id = {}", paid.order_id.db_key().unwrap())).await, 1, "a paid order is kept");
    let order_id = pruned.order_id.to_string();
    let created = h.events("checkout.created").await;
    assert!(created.iter().all(|e| e.payload["data"]["order_id"] != order_id.as_str()), "its checkout.created is gone");

    // Act: the old quote is paid on chain (its deadline has not passed there) and seen
    let receipt = h.pay(0, &pruned).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;

    // Assert: recorded, unmatched, reported; nothing activated for it
    let row = sqlx::query("SELECT matched_order, unmatched_reason FROM payments WHERE tx_hash = $1")
        .bind(receipt.transaction_hash.to_vec())
        .fetch_one(db.pool())
        .await
        .expect("the late payment is recorded");
    assert_eq!(row.try_get::<Option<i64>, _>("matched_order").unwrap(), None);
    assert_eq!(row.try_get::<Option<String>, _>("unmatched_reason").unwrap().as_deref(), Some("unknown order"));
    let unmatched = h.events("payment.unmatched").await;
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    let data = &unmatched[0].payload["data"];
    assert_eq!(data["order_id"], order_id.as_str());
    assert_eq!(data["reason"], "unknown order");
    assert_eq!(data["tx_hash"], receipt.transaction_hash.to_string());
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 1, "only the matched payment activated");
}
on_both_databases!(a_payment_for_a_pruned_order_is_recorded_unmatched);

const SECRET: &str = "whsec_it_bounds_secret";
const CARD: &str = "/v1/card/webhook";

/// The processor's signature: `t=<t>,v1=<hex HMAC-SHA256 of "t.body">`.
fn signature(body: &str, t: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", alloy::hex::encode(mac.finalize().into_bytes()))
}

/// An event of a type the service does not act on, padded with `padding` bytes of metadata.
fn event(id: &str, padding: usize) -> String {
    json!({ "id": id, "object": "event", "type": "customer.updated", "data": { "object": { "metadata": { "note": "x".repeat(padding) } } } }).to_string()
}

async fn card_app(kind: DbKind, card: CardSettings, http: HttpSettings) -> App {
    let card = CardSettings { webhook_secret: Some(SecretString::from(SECRET.to_string())), ..card };
    App::spawn_configured(kind, http, move |state| state.with_card(card)).await
}

async fn post_card(app: &App, body: String) -> reqwest::Response {
    let header = signature(&body, app.state.clock.now());
    app.client
        .post(format!("{}{CARD}", app.base))
        .header("content-type", "application/json")
        .header("Stripe-Signature", header)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A card event over `card.body_limit_bytes` is answered 413 in the one error shape and
/// records nothing, signed or not; one under it is handled. The default limit is 64 KiB.
async fn an_oversized_card_event_is_refused_and_records_nothing(kind: DbKind) {
    // Arrange
    let app =
        card_app(kind, CardSettings { body_limit_bytes: 8 * 1024, ..Default::default() }, HttpSettings { rate_limit_per_second: 0, ..Default::default() })
            .await;
    let count = |table: &'static str| {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let app = &app;
        async move { app.count(&sql).await }
    };

    // Act: a signed event over the limit, then one well under it
    let refused = post_card(&app, event("evt_big", 8 * 1024)).await;
    let (status, body) = (refused.status().as_u16(), refused.json::<Value>().await.unwrap());
    let records = (count("card_events").await, count("outbox_events").await);
    let taken = post_card(&app, event("evt_small", 1_000)).await;

    // Assert
    assert_eq!(status, 413, "{body}");
    app.check("POST", CARD, 413, &body);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(records, (0, 0), "an oversized event records nothing");
    assert_eq!(taken.status().as_u16(), 200);
    assert_eq!(count("card_events").await, 1);

    // The default: 64 KiB
    assert_eq!(CardSettings::default().body_limit_bytes, 64 * 1024);
    let app = card_app(kind, CardSettings::default(), HttpSettings { rate_limit_per_second: 0, ..Default::default() }).await;
    assert_eq!(post_card(&app, event("evt_over_default", 64 * 1024)).await.status().as_u16(), 413);
    assert_eq!(post_card(&app, event("evt_under_default", 48 * 1024)).await.status().as_u16(), 200);
}
on_both_databases!(an_oversized_card_event_is_refused_and_records_nothing);

/// A flood of card webhook requests from one client is answered 429 with `Retry-After`
/// past `card.rate_limit_burst`, in the one error shape, and spends nothing of the public
/// routes' budget: the service keeps answering them (and the card route answers again once
/// the budget refills).
async fn a_card_webhook_flood_is_rate_limited_and_the_service_keeps_answering(kind: DbKind) {
    // Arrange: the card route at 1/s with a burst of 3; the public routes at 1/s, burst 3
    let card = CardSettings { rate_limit_per_second: 1, rate_limit_burst: 3, ..Default::default() };
    let app = card_app(kind, card, HttpSettings { rate_limit_per_second: 1, rate_limit_burst: 3, ..Default::default() }).await;

    // Act: twenty unsigned requests at once
    let flood = (0..20).map(|_| app.client.post(format!("{}{CARD}", app.base)).header("content-type", "application/json").body("{}").send());
    let answers: Vec<reqwest::Response> = futures::future::join_all(flood).await.into_iter().map(Result::unwrap).collect();

    // Assert: three checked (and refused as unsigned), the rest 429 with Retry-After
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 400).count(), 3, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 17, "{codes:?}");
    let limited = answers.into_iter().find(|r| r.status().as_u16() == 429).unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    app.check("POST", CARD, 429, &body);
    assert_eq!(body["error"]["code"], "rate_limited");
    // The public routes still have their whole burst, and the operations listener answers.
    for _ in 0..3 {
        assert_eq!(app.client.get(format!("{}/v1/plans", app.base)).send().await.unwrap().status().as_u16(), 200);
    }
    assert_eq!(app.client.get(format!("{}/healthz", app.base)).send().await.unwrap().status().as_u16(), 200);
    // A signed event gets through once the card budget has refilled.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(post_card(&app, event("evt_after_flood", 10)).await.status().as_u16(), 200);
}
on_both_databases!(a_card_webhook_flood_is_rate_limited_and_the_service_keeps_answering);
