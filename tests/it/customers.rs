//! The merchant's customer on every purchase (README "Customer references"), on a real
//! chain and database: a public checkout takes only a reference the merchant signed, the
//! API key may pass a bare one, bad ones change nothing, and the reference rides from the
//! order through the payment, the subscription and the badge into every event; the
//! merchant finds members by it.

use serde_json::{Value, json};
use tmai_pay::{
    billing::customers::{CustomerRef, RefSigner},
    config::{HttpSettings, MerchantSettings},
};

use crate::{
    api::{App, fetch_quote},
    db::{DbKind, on_both_databases},
    harness::CONFIRMATIONS,
};

const SECRET: &str = "merchant-secret-for-tests";

async fn spawn(kind: DbKind) -> App {
    App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, |state| {
        state.with_merchant(MerchantSettings { customer_ref_secret: Some(SECRET.to_string().into()), ..Default::default() })
    })
    .await
}

fn signed(app: &App, customer: &str, ttl: i64) -> String {
    let now = app.state.clock.now() as i64;
    RefSigner::new(SECRET).sign(&CustomerRef::parse(customer).unwrap(), (now + ttl) as u64)
}

fn body(app: &App, wallet: usize, customer_ref: &str) -> Value {
    json!({ "plan_id": 3, "token": "TMAI", "wallet": app.wallet(wallet), "periods": 1, "customer_ref": customer_ref })
}

async fn state_counts(app: &App) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in ["SELECT COUNT(*) FROM orders", "SELECT COUNT(*) FROM outbox_events", "SELECT COUNT(*) FROM customers"] {
        out.push(app.count(sql).await);
    }
    out
}

/// Every refusal: a bare reference from anyone, one outside the set or the length, an
/// expired, tampered or foreign-keyed signed one, a bad API key. Each is a clear 4xx in the
/// documented shape, and nothing is stored.
async fn a_public_checkout_takes_only_a_reference_the_merchant_signed(kind: DbKind) {
    let app = spawn(kind).await;
    let before = state_counts(&app).await;
    let good = signed(&app, "user_42", 600);
    let foreign = RefSigner::new("another secret").sign(&CustomerRef::parse("user_42").unwrap(), app.state.clock.now() + 600);
    let tampered = good.replacen("user_42", "user_43", 1);
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        ("user_42".into(), None, 401, "customer_ref_needs_signature"),
        ("x".repeat(65), Some(app.key.as_str()), 400, "invalid_customer_ref"),
        ("user 42".into(), Some(app.key.as_str()), 400, "invalid_customer_ref"),
        ("".into(), Some(app.key.as_str()), 400, "invalid_customer_ref"),
        (signed(&app, "user_42", -1), None, 403, "invalid_customer_ref"),
        (tampered, None, 403, "invalid_customer_ref"),
        (foreign, None, 403, "invalid_customer_ref"),
        ("user_42.123.abc".into(), None, 400, "invalid_customer_ref"),
        ("user_42".into(), Some("tmai_sk_not_a_key"), 401, "unauthorized"),
    ];
    for (customer_ref, key, status, code) in cases {
        let (got, answer) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 1, &customer_ref)), key).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{customer_ref:?}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(state_counts(&app).await, before, "a refused checkout stored something");

    // A signed reference from anyone, a bare one with the API key.
    let (status, created) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 1, &good)), None).await;
    assert_eq!(status, 201, "{created}");
    let (status, created) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 2, "acct:9@shop-1")), Some(&app.key)).await;
    assert_eq!(status, 201, "{created}");
    let stored: Vec<Option<String>> = sqlx::query_scalar("SELECT customer_ref FROM orders ORDER BY order_id").fetch_all(app.h.test_db.db.pool()).await.unwrap();
    assert_eq!(stored, [Some("user_42".to_string()), Some("acct:9@shop-1".to_string())]);
    // The checkout.created events carry it.
    let created = app.h.events("checkout.created").await;
    let refs: Vec<&Value> = created.iter().map(|e| &e.payload["data"]["customer_ref"]).collect();
    assert_eq!(refs, [&json!("user_42"), &json!("acct:9@shop-1")]);
}
on_both_databases!(a_public_checkout_takes_only_a_reference_the_merchant_signed);

/// A signed reference follows the purchase: every event of the checkout, the payment, the
/// subscription and the badge carries it; the merchant finds the member by it; the wallet
/// then belongs to that customer, so a link for another customer is refused while the
/// same customer's next link works; and an unbound wallet paying without a reference stays
/// unbound.
async fn the_reference_rides_from_the_order_to_every_event_and_the_member(kind: DbKind) {
    let app = spawn(kind).await;
    let (status, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 1, &signed(&app, "user_42", 600))), None).await;
    assert_eq!(status, 201, "{checkout}");
    app.h.pay(1, &fetch_quote(&app, &checkout)).await;
    // Another wallet pays without a reference, in the same blocks.
    let plain = app.h.quote(2, 1, "TMAI", 1).await;
    app.h.pay(2, &plain).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
    let minter = app.minter();
    for _ in 0..50 {
        if minter.tick().await.unwrap().idle() {
            break;
        }
        app.h.mine(1).await;
    }

    let wallet = app.h.wallet(1).to_string();
    let events = tmai_pay::store::outbox::all(app.h.test_db.db.pool()).await.unwrap();
    let mine: Vec<_> = events
        .iter()
        .filter(|e| {
            let d = &e.payload["data"];
            [&d["wallet"], &d["payer"]].iter().any(|w| w.as_str().is_some_and(|w| w.eq_ignore_ascii_case(&wallet)))
        })
        .collect();
    let types: Vec<&str> = mine.iter().map(|e| e.event_type.as_str()).collect();
    for expected in ["checkout.created", "payment.detected", "payment.confirmed", "subscription.activated", "badge.minted"] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
    for e in &mine {
        assert_eq!(e.payload["data"]["customer_ref"], "user_42", "{}", e.payload);
    }
    let others: Vec<_> = events.iter().filter(|e| !mine.iter().any(|m| m.id == e.id)).collect();
    assert!(!others.is_empty());
    for e in others {
        assert!(e.payload["data"].get("customer_ref").is_none(), "{}", e.payload);
    }

    // Bodies with the reference match the published schemas.
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;

    // The merchant's look-ups.
    let (status, list) = app.call("GET", "/v1/members", "/v1/members?customer_ref=user_42", None, Some(&app.key)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["members"].as_array().unwrap().len(), 1);
    assert!(list["members"][0]["wallet"].as_str().unwrap().eq_ignore_ascii_case(&wallet));
    assert_eq!(list["members"][0]["subscription"]["status"], "active");
    assert_eq!(list["members"][0]["subscription"]["customer_ref"], "user_42");
    let (status, none) = app.call("GET", "/v1/members", "/v1/members?customer_ref=nobody", None, Some(&app.key)).await;
    assert_eq!((status, none["members"].as_array().unwrap().len()), (200, 0));
    let (status, member) = app.call("GET", "/v1/members/{wallet}", &format!("/v1/members/{wallet}"), None, Some(&app.key)).await;
    assert_eq!((status, member["customer_ref"].as_str()), (200, Some("user_42")), "{member}");
    let unbound = app.h.wallet(2).to_string();
    let (status, member) = app.call("GET", "/v1/members/{wallet}", &format!("/v1/members/{unbound}"), None, Some(&app.key)).await;
    assert_eq!((status, &member["customer_ref"]), (200, &Value::Null), "{member}");
    let stranger = app.h.wallet(7).to_string();
    let (status, _) = app.call("GET", "/v1/members/{wallet}", &format!("/v1/members/{stranger}"), None, Some(&app.key)).await;
    assert_eq!(status, 404);
    for (path, key) in
        [("/v1/members?customer_ref=user_42", None), ("/v1/members?customer_ref=bad%20ref", Some(app.key.as_str())), ("/v1/members", Some(app.key.as_str()))]
    {
        let (status, answer) = app.call("GET", "/v1/members", path, None, key).await;
        assert_eq!(status, if key.is_none() { 401 } else { 400 }, "{path}: {answer}");
    }

    // The wallet now belongs to user_42: another customer's link is refused, theirs works.
    let before = state_counts(&app).await;
    let (status, refused) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 1, &signed(&app, "user_43", 600))), None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("customer_ref_conflict")), "{refused}");
    assert_eq!(state_counts(&app).await, before);
    let (status, _) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 1, &signed(&app, "user_42", 600))), None).await;
    assert_eq!(status, 201);
    // A wallet of nobody's may be bound by its next purchase.
    let (status, _) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 2, &signed(&app, "user_43", 600))), None).await;
    assert_eq!(status, 201);
}
on_both_databases!(the_reference_rides_from_the_order_to_every_event_and_the_member);

/// Two links for different customers opened for one fresh wallet at the same moment can
/// both be paid: the first to confirm binds the wallet; each payment's events keep its own
/// order's reference and the subscription's events carry the bound one.
async fn two_customers_racing_for_one_wallet_bind_the_first_to_confirm(kind: DbKind) {
    let app = spawn(kind).await;
    let (_, first) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 3, &signed(&app, "alice", 600))), None).await;
    let (_, second) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body(&app, 3, &signed(&app, "bob", 600))), None).await;
    app.h.pay(3, &fetch_quote(&app, &first)).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.pay(3, &fetch_quote(&app, &second)).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
    let confirmed = app.h.events("payment.confirmed").await;
    let refs: Vec<&Value> = confirmed.iter().map(|e| &e.payload["data"]["customer_ref"]).collect();
    assert_eq!(refs, [&json!("alice"), &json!("bob")]);
    let mut subscription_refs: Vec<Value> = Vec::new();
    for t in ["subscription.activated", "subscription.renewed"] {
        subscription_refs.extend(app.h.events(t).await.iter().map(|e| e.payload["data"]["customer_ref"].clone()));
    }
    assert_eq!(subscription_refs, [json!("alice"), json!("alice")]);
    let bound: Vec<String> = sqlx::query_scalar("SELECT customer_ref FROM customers").fetch_all(app.h.test_db.db.pool()).await.unwrap();
    assert_eq!(bound, ["alice"]);
}
on_both_databases!(two_customers_racing_for_one_wallet_bind_the_first_to_confirm);
