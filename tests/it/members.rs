//! Member management through the merchant API on a real chain and database: members are
//! made by real on-chain payments (quote, pay, watch), then comped, canceled, revoked,
//! moved and refunded; every response is checked against the served OpenAPI document.

use alloy::primitives::Address;
use serde_json::{Value, json};
use sqlx::Row;
use tmai_pay::billing::plans::MONTH_SECS;

use crate::{
    api::App,
    db::{DbKind, on_both_databases},
    harness::CONFIRMATIONS,
};

const DAY: u64 = 86_400;

/// Wallet `index` pays one period of `plan_id` in TMAI on chain; returns when it is active.
async fn buy(app: &App, index: usize, plan_id: u32) {
    let quote = app.h.quote(index, plan_id, "TMAI", 1).await;
    app.h.pay(index, &quote).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row5 {
    status: String,
    tier: i64,
    expires_at: u64,
    comp_seconds: u64,
}

async fn subscription(app: &App, wallet: &str) -> Option<Row5> {
    let wallet: Address = wallet.parse().unwrap();
    sqlx::query("SELECT status, tier, expires_at, comp_seconds FROM subscriptions WHERE wallet = $1")
        .bind(wallet.to_vec())
        .fetch_optional(app.h.test_db.db.pool())
        .await
        .unwrap()
        .map(|r| Row5 {
            status: r.try_get("status").unwrap(),
            tier: r.try_get("tier").unwrap(),
            expires_at: r.try_get::<i64, _>("expires_at").unwrap() as u64,
            comp_seconds: r.try_get::<i64, _>("comp_seconds").unwrap() as u64,
        })
}

/// The latest badge job: (wallet, action, tier, expires_at, new_wallet).
async fn last_job(app: &App) -> (Address, String, Option<i64>, Option<i64>, Option<Address>) {
    let r = sqlx::query("SELECT wallet, action, tier, expires_at, new_wallet FROM badge_jobs ORDER BY id DESC LIMIT 1")
        .fetch_one(app.h.test_db.db.pool())
        .await
        .unwrap();
    (
        Address::from_slice(&r.try_get::<Vec<u8>, _>("wallet").unwrap()),
        r.try_get("action").unwrap(),
        r.try_get("tier").unwrap(),
        r.try_get("expires_at").unwrap(),
        r.try_get::<Option<Vec<u8>>, _>("new_wallet").unwrap().map(|b| Address::from_slice(&b)),
    )
}

async fn counts(app: &App) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM subscriptions",
        "SELECT COUNT(*) FROM badge_jobs",
        "SELECT COUNT(*) FROM outbox_events",
        "SELECT COUNT(*) FROM comp_grants",
        "SELECT COUNT(*) FROM payments WHERE refunded_at IS NOT NULL",
        "SELECT CAST(COALESCE(SUM(expires_at), 0) AS BIGINT) FROM subscriptions",
        "SELECT COUNT(*) FROM subscriptions WHERE status = 'active'",
    ] {
        out.push(app.count(sql).await);
    }
    out
}

async fn post(app: &App, route: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    app.call("POST", route, path, body, Some(&app.key)).await
}

const COMP: &str = "/v1/members/{wallet}/comp";
const CANCEL: &str = "/v1/members/{wallet}/cancel";
const REVOKE: &str = "/v1/members/{wallet}/revoke";
const MOVE: &str = "/v1/members/{wallet}/move";
const REFUND: &str = "/v1/payments/{id}/refund";

/// Comp time, cancel, revoke and move, each: the row, the badge job and the event; and each
/// refused with 409 (nothing changed) where the state does not allow it.
pub(crate) async fn member_actions_change_the_subscription_badge_and_events(kind: DbKind) {
    // Arrange: two members paid on chain
    let app = App::spawn(kind).await;
    let (alice, bob, carol) = (app.wallet(1), app.wallet(2), app.wallet(3));
    buy(&app, 1, 1).await;
    buy(&app, 2, 3).await;
    let paid = subscription(&app, &alice).await.unwrap();
    assert_eq!((paid.status.as_str(), paid.tier, paid.comp_seconds), ("active", 1, 0));

    // Comp: 10 days on top, kept apart from paid time
    let (status, body) = post(&app, COMP, &format!("/v1/members/{alice}/comp"), Some(json!({ "days": 10, "reason": "outage on 3 May" }))).await;
    assert_eq!(status, 200, "{body}");
    let comped = subscription(&app, &alice).await.unwrap();
    assert_eq!(comped, Row5 { expires_at: paid.expires_at + 10 * DAY, comp_seconds: 10 * DAY, ..paid.clone() });
    assert_eq!((body["seconds"].as_u64(), body["subscription"]["expires_at"].as_u64()), (Some(10 * DAY), Some(comped.expires_at)));
    let alice_address: Address = alice.parse().unwrap();
    assert_eq!(last_job(&app).await, (alice_address, "update".into(), Some(1), Some(comped.expires_at as i64), None));
    let granted = app.h.events("subscription.comp_granted").await;
    assert_eq!(granted.len(), 1);
    let data = &granted[0].payload["data"];
    assert_eq!((data["days"].as_u64(), data["reason"].as_str(), data["expires_at"].as_u64()), (Some(10), Some("outage on 3 May"), Some(comped.expires_at)));
    assert_eq!(app.count("SELECT COUNT(*) FROM comp_grants WHERE days = 10 AND seconds = 864000 AND reason = 'outage on 3 May'").await, 1);

    // Cancel: no renewal, access to the end of the period, no badge job
    let jobs = app.count("SELECT COUNT(*) FROM badge_jobs").await;
    let (status, body) = post(&app, CANCEL, &format!("/v1/members/{alice}/cancel"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("canceled")), "{body}");
    assert_eq!(subscription(&app, &alice).await.unwrap(), Row5 { status: "canceled".into(), ..comped.clone() });
    assert_eq!(app.count("SELECT COUNT(*) FROM badge_jobs").await, jobs);
    let canceled = app.h.events("subscription.canceled").await;
    assert_eq!((canceled.len(), canceled[0].payload["data"]["expires_at"].as_u64()), (1, Some(comped.expires_at)));
    let before = counts(&app).await;
    let (status, error) = post(&app, CANCEL, &format!("/v1/members/{alice}/cancel"), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conflict")));
    assert!(error["error"]["message"].as_str().unwrap().contains("already canceled"), "{error}");
    assert_eq!(counts(&app).await, before);

    // Revoke: ends now, badge revoked, subscription.expired (revoked)
    let (status, body) = post(&app, REVOKE, &format!("/v1/members/{bob}/revoke"), None).await;
    assert_eq!(status, 200, "{body}");
    let now = tmai_pay::store::unix_now() as u64;
    let revoked = subscription(&app, &bob).await.unwrap();
    assert_eq!(revoked.status, "expired");
    assert!((now - 2..=now).contains(&revoked.expires_at), "{} vs {now}", revoked.expires_at);
    let job = last_job(&app).await;
    assert_eq!((job.0, job.1.as_str()), (bob.parse().unwrap(), "revoke"));
    let expired = app.h.events("subscription.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].payload["data"]["reason"].as_str(), expired[0].payload["data"]["expires_at"].as_u64()), (Some("revoked"), Some(revoked.expires_at)));
    // Nothing more can be done to an expired subscription.
    let before = counts(&app).await;
    for (route, path, body) in [
        (REVOKE, format!("/v1/members/{bob}/revoke"), None),
        (CANCEL, format!("/v1/members/{bob}/cancel"), None),
        (COMP, format!("/v1/members/{bob}/comp"), Some(json!({ "days": 5, "reason": "sorry" }))),
        (MOVE, format!("/v1/members/{bob}/move"), Some(json!({ "new_wallet": carol }))),
    ] {
        let (status, error) = post(&app, route, &path, body).await;
        assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conflict")), "{path}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains("already expired"), "{error}");
    }
    assert_eq!(counts(&app).await, before);

    // Move: alice lost her key; the subscription and badge go to carol
    let (status, body) = post(&app, MOVE, &format!("/v1/members/{alice}/move"), Some(json!({ "new_wallet": carol }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(subscription(&app, &alice).await, None);
    assert_eq!(subscription(&app, &carol).await.unwrap(), Row5 { status: "canceled".into(), ..comped.clone() });
    let carol_address: Address = carol.parse().unwrap();
    assert_eq!(last_job(&app).await, (alice_address, "move".into(), Some(1), Some(comped.expires_at as i64), Some(carol_address)));
    let moved = app.h.events("subscription.moved").await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].payload["data"]["to"].as_str().unwrap().to_lowercase(), carol.to_lowercase());
    assert_eq!(moved[0].payload["data"]["from"].as_str().unwrap().to_lowercase(), alice.to_lowercase());
    assert_eq!(app.count("SELECT COUNT(*) FROM comp_grants").await, 1, "the ledger keeps its history");
    // Onto a wallet that has a subscription (bob's, expired): refused.
    let before = counts(&app).await;
    let (status, error) = post(&app, MOVE, &format!("/v1/members/{carol}/move"), Some(json!({ "new_wallet": bob }))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conflict")), "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("already has a subscription"), "{error}");
    assert_eq!(counts(&app).await, before);
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(member_actions_change_the_subscription_badge_and_events);

/// A wallet without a subscription (404), bad input (400) and a missing key (401): the one
/// error shape, and nothing changed.
async fn member_actions_refuse_bad_requests_and_change_nothing(kind: DbKind) {
    let app = App::spawn(kind).await;
    let member = app.wallet(1);
    buy(&app, 1, 2).await;
    let nobody = app.wallet(5);
    let before = counts(&app).await;

    let comp = |days: Value, reason: Value| Some(json!({ "days": days, "reason": reason }));
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        (COMP, format!("/v1/members/{nobody}/comp"), comp(json!(5), json!("x")), 404, "has no subscription"),
        (CANCEL, format!("/v1/members/{nobody}/cancel"), None, 404, "has no subscription"),
        (REVOKE, format!("/v1/members/{nobody}/revoke"), None, 404, "has no subscription"),
        (MOVE, format!("/v1/members/{nobody}/move"), Some(json!({ "new_wallet": app.wallet(6) })), 404, "has no subscription"),
        (COMP, format!("/v1/members/{member}/comp"), comp(json!(0), json!("x")), 400, "days must be between 1 and 3650"),
        (COMP, format!("/v1/members/{member}/comp"), comp(json!(3651), json!("x")), 400, "days must be between 1 and 3650"),
        (COMP, format!("/v1/members/{member}/comp"), comp(json!(-1), json!("x")), 400, "days"),
        (COMP, format!("/v1/members/{member}/comp"), comp(json!(5), json!("  ")), 400, "reason must not be empty"),
        (COMP, format!("/v1/members/{member}/comp"), comp(json!(5), json!("x".repeat(501))), 400, "at most 500"),
        (COMP, format!("/v1/members/{member}/comp"), Some(json!({ "days": 5 })), 400, "missing field `reason`"),
        (COMP, format!("/v1/members/{member}/comp"), Some(json!({ "days": 5, "reason": "x", "hours": 1 })), 400, "unknown field `hours`"),
        (COMP, "/v1/members/0x1234/comp".into(), comp(json!(5), json!("x")), 400, "is not an address"),
        (CANCEL, "/v1/members/not-a-wallet/cancel".into(), None, 400, "is not an address"),
        (MOVE, format!("/v1/members/{member}/move"), Some(json!({ "new_wallet": "0x12" })), 400, "new_wallet"),
        (MOVE, format!("/v1/members/{member}/move"), Some(json!({ "new_wallet": member })), 409, "already on"),
        (REFUND, "/v1/payments/999/refund".into(), Some(json!({ "note": "x" })), 404, "no payment 999"),
        (REFUND, "/v1/payments/abc/refund".into(), Some(json!({ "note": "x" })), 400, "is not a number"),
        (REFUND, "/v1/payments/1/refund".into(), Some(json!({ "note": "" })), 400, "note must not be empty"),
    ];
    for (route, path, body, status, message) in cases {
        let (got, error) = post(&app, route, &path, body.clone()).await;
        assert_eq!(got, status, "{path} {body:?}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{path}: {message:?} not in {error}");
    }
    // Without a key (or with a wrong one), every route is 401.
    for (route, path, body) in [
        (COMP, format!("/v1/members/{member}/comp"), comp(json!(5), json!("x"))),
        (CANCEL, format!("/v1/members/{member}/cancel"), None),
        (REVOKE, format!("/v1/members/{member}/revoke"), None),
        (MOVE, format!("/v1/members/{member}/move"), Some(json!({ "new_wallet": app.wallet(6) }))),
        (REFUND, "/v1/payments/1/refund".into(), Some(json!({ "note": "x" }))),
    ] {
        let (status, error) = app.call("POST", route, &path, body.clone(), None).await;
        assert_eq!((status, error["error"]["code"].as_str()), (401, Some("unauthorized")), "{path}");
        let (status, _) = app.call("POST", route, &path, body, Some("tmai_sk_wrong")).await;
        assert_eq!(status, 401, "{path}");
    }
    assert_eq!(counts(&app).await, before);
    // The routes are in the served OpenAPI document, under the API key.
    for route in [COMP, CANCEL, REVOKE, MOVE, REFUND, "/v1/card/webhook"] {
        assert!(app.doc["paths"][route]["post"].is_object(), "{route} missing from /openapi.json");
    }
    assert_eq!(app.doc["paths"][REFUND]["post"]["security"][0]["api_key"], json!([]));
}
on_both_databases!(member_actions_refuse_bad_requests_and_change_nothing);

/// A refund marks the confirmed payment refunded and ends the plan it bought (badge revoked,
/// `payment.refunded` and `subscription.expired`); a second refund and a refund of a payment
/// not yet confirmed are 409 with nothing changed.
pub(crate) async fn a_refund_ends_the_plan_the_payment_bought(kind: DbKind) {
    let app = App::spawn(kind).await;
    let payer = app.wallet(4);
    buy(&app, 4, 3).await;
    let (_, page) = app.call("GET", "/v1/payments", "/v1/payments", None, Some(&app.key)).await;
    let id = page["payments"][0]["id"].as_i64().unwrap();
    assert_eq!(page["payments"][0]["status"], "confirmed");

    let (status, body) = post(&app, REFUND, &format!("/v1/payments/{id}/refund"), Some(json!({ "note": "customer asked within 14 days" }))).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!((body["payment_id"].as_i64(), body["note"].as_str()), (Some(id), Some("customer asked within 14 days")));
    assert_eq!(body["subscription"]["status"], "expired");
    let row = sqlx::query("SELECT status, refunded_at, refund_note FROM payments WHERE id = $1").bind(id).fetch_one(app.h.test_db.db.pool()).await.unwrap();
    assert_eq!(row.try_get::<String, _>("status").unwrap(), "confirmed", "the status stays; refunded_at says it");
    assert_eq!(row.try_get::<Option<i64>, _>("refunded_at").unwrap().map(|v| v as u64), body["refunded_at"].as_u64());
    assert_eq!(row.try_get::<Option<String>, _>("refund_note").unwrap().as_deref(), Some("customer asked within 14 days"));
    let sub = subscription(&app, &payer).await.unwrap();
    assert_eq!((sub.status.as_str(), sub.expires_at), ("expired", body["refunded_at"].as_u64().unwrap()));
    let job = last_job(&app).await;
    assert_eq!((job.0, job.1.as_str()), (payer.parse().unwrap(), "revoke"));
    let refunded = app.h.events("payment.refunded").await;
    assert_eq!(refunded.len(), 1);
    assert_eq!((refunded[0].payload["data"]["payment_id"].as_i64(), refunded[0].payload["data"]["amount"].as_str()), (Some(id), Some("400000000000000000000")));
    // The refund names the order and checkout the payment paid, like every event about it.
    let order_id = page["payments"][0]["order_id"].as_str().unwrap();
    let confirmed = app.h.events("payment.confirmed").await;
    let paid = confirmed.iter().find(|e| e.payload["data"]["order_id"] == order_id).expect("the payment's confirmation");
    assert_eq!(refunded[0].payload["data"]["order_id"], order_id);
    assert_eq!(refunded[0].payload["data"]["checkout_id"], paid.payload["data"]["checkout_id"]);
    assert!(refunded[0].payload["data"]["checkout_id"].as_str().is_some_and(|c| c.starts_with("chk_")), "{}", refunded[0].payload);
    let expired = app.h.events("subscription.expired").await;
    assert_eq!((expired.len(), expired[0].payload["data"]["reason"].as_str()), (1, Some("refunded")));

    // Again: 409, nothing changed.
    let before = counts(&app).await;
    let (status, error) = post(&app, REFUND, &format!("/v1/payments/{id}/refund"), Some(json!({ "note": "twice" }))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conflict")));
    assert!(error["error"]["message"].as_str().unwrap().contains("already refunded"), "{error}");
    assert_eq!(counts(&app).await, before);

    // A payment seen but not yet confirmed: 409.
    let quote = app.h.quote(6, 2, "TMAI", 1).await;
    app.h.pay(6, &quote).await;
    app.h.catch_up().await;
    let (_, page) = app.call("GET", "/v1/payments", "/v1/payments?status=detected", None, Some(&app.key)).await;
    let detected = page["payments"][0]["id"].as_i64().unwrap();
    let before = counts(&app).await;
    let (status, error) = post(&app, REFUND, &format!("/v1/payments/{detected}/refund"), Some(json!({ "note": "early" }))).await;
    assert_eq!(status, 409, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("not confirmed"), "{error}");
    assert_eq!(counts(&app).await, before);
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_refund_ends_the_plan_the_payment_bought);

/// Comp time then an on-chain upgrade: only the paid time is credited at the price ratio;
/// the comp days carry over as they are.
async fn comp_time_is_not_credited_at_the_paid_price(kind: DbKind) {
    let app = App::spawn(kind).await;
    let wallet = app.wallet(7);
    buy(&app, 7, 1).await;
    let basic = subscription(&app, &wallet).await.unwrap();
    let (status, _) = post(&app, COMP, &format!("/v1/members/{wallet}/comp"), Some(json!({ "days": 30, "reason": "beta tester" }))).await;
    assert_eq!(status, 200);

    buy(&app, 7, 3).await;

    // Basic ($9 card price: what its TMAI payment was worth) → Premium ($49), both monthly:
    // paid time left × 9/49.
    let row = sqlx::query("SELECT kind, credit_seconds, new_expires_at, created_at FROM activations ORDER BY payment_id DESC LIMIT 1")
        .fetch_one(app.h.test_db.db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("kind").unwrap(), "subscription.upgraded");
    let (credit, new_end, at) = (
        row.try_get::<i64, _>("credit_seconds").unwrap() as u64,
        row.try_get::<i64, _>("new_expires_at").unwrap() as u64,
        row.try_get::<i64, _>("created_at").unwrap() as u64,
    );
    let paid_left = basic.expires_at - at;
    assert_eq!(credit, paid_left * 9 / 49, "only the paid {paid_left} s are credited");
    assert!(credit <= MONTH_SECS * 9 / 49, "comp time was credited at a price: {credit}");
    assert_eq!(new_end, at + MONTH_SECS + credit + 30 * DAY);
    let after = subscription(&app, &wallet).await.unwrap();
    assert_eq!(after, Row5 { status: "active".into(), tier: 3, expires_at: new_end, comp_seconds: 30 * DAY });
}
on_both_databases!(comp_time_is_not_credited_at_the_paid_price);
