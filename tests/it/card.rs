//! Card payments in: `POST /v1/card/webhook` on a real service and database, with events
//! signed the way the processor signs them (HMAC-SHA256 of `t.body`), a movable clock for
//! trials and signature ages, and every response checked against the OpenAPI document.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Row;
use tmai_pay::{billing::plans::MONTH_SECS, clock::Clock, config::CardSettings, config::HttpSettings};

use crate::{
    api::App,
    db::{DbKind, on_both_databases},
};

pub(crate) const SECRET: &str = "whsec_it_card_secret";
const ROUTE: &str = "/v1/card/webhook";
const DAY: u64 = 86_400;

/// The processor's side: `t=<t>,v1=<hex HMAC-SHA256 of "t.body">`.
fn signature(body: &[u8], secret: &str, t: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", alloy::hex::encode(mac.finalize().into_bytes()))
}

pub(crate) struct Card {
    pub(crate) app: App,
    pub(crate) clock: Clock,
}

impl Card {
    pub(crate) async fn spawn(kind: DbKind) -> Self {
        Self::spawn_with(kind, Some(SECRET)).await
    }

    async fn spawn_with(kind: DbKind, secret: Option<&str>) -> Self {
        let clock = Clock::system();
        let card = CardSettings { webhook_secret: secret.map(|s| SecretString::from(s.to_string())), ..Default::default() };
        let state_clock = clock.clone();
        let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| {
            state.with_card(card).with_clock(state_clock)
        })
        .await;
        Self { app, clock }
    }

    /// Posts `event` signed now with the endpoint secret.
    pub(crate) async fn send(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string();
        let header = signature(body.as_bytes(), SECRET, self.clock.now());
        self.send_raw(body, Some(header)).await
    }

    /// Posts `body` with `header` as Stripe-Signature (none when None).
    async fn send_raw(&self, body: String, header: Option<String>) -> (u16, Value) {
        let mut request = self.app.client.post(format!("{}{ROUTE}", self.app.base)).header("content-type", "application/json").body(body);
        if let Some(header) = header {
            request = request.header("Stripe-Signature", header);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        self.app.check("POST", ROUTE, status, &body);
        (status, body)
    }

    async fn counts(&self) -> [i64; 5] {
        let mut out = [0; 5];
        for (i, table) in ["subscriptions", "badge_jobs", "outbox_events", "card_events", "card_subscriptions"].iter().enumerate() {
            out[i] = self.app.count(&format!("SELECT COUNT(*) FROM {table}")).await;
        }
        out
    }

    /// (status, tier, expires_at, started_at) of `wallet`'s subscription.
    pub(crate) async fn subscription(&self, wallet: &str) -> (String, i64, u64, u64) {
        let wallet: alloy::primitives::Address = wallet.parse().unwrap();
        let row = sqlx::query("SELECT status, tier, expires_at, started_at FROM subscriptions WHERE wallet = $1")
            .bind(wallet.to_vec())
            .fetch_one(self.app.h.test_db.db.pool())
            .await
            .unwrap();
        (
            row.try_get("status").unwrap(),
            row.try_get("tier").unwrap(),
            row.try_get::<i64, _>("expires_at").unwrap() as u64,
            row.try_get::<i64, _>("started_at").unwrap() as u64,
        )
    }

    /// The badge jobs as (action, tier, expires_at), in order.
    pub(crate) async fn badge_jobs(&self) -> Vec<(String, i64, u64)> {
        sqlx::query("SELECT action, tier, expires_at FROM badge_jobs ORDER BY id")
            .fetch_all(self.app.h.test_db.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get("action").unwrap(), r.try_get("tier").unwrap(), r.try_get::<i64, _>("expires_at").unwrap() as u64))
            .collect()
    }
}

/// The card price of each test plan, in cents (`harness::plan_configs`).
pub(crate) fn cents(plan_id: u32) -> u64 {
    match plan_id {
        1 => 900,
        2 => 1900,
        3 => 4900,
        4 => 9900,
        13 => 49000,
        other => panic!("no test plan {other}"),
    }
}

/// A `checkout.session.completed` as Stripe sends it for a subscription checkout whose
/// first period is the plan's trial: nothing charged (`amount_total` 0,
/// `payment_status` `no_payment_required`).
fn session(id: &str, wallet: &str, plan_id: Value, subscription: &str) -> Value {
    checkout_event(id, "checkout.session.completed", wallet, plan_id, subscription, 0, "no_payment_required")
}

/// A `checkout.session.completed` charged `amount_total` cents, paid.
pub(crate) fn paid_session(id: &str, wallet: &str, plan_id: u32, subscription: &str, amount_total: u64) -> Value {
    checkout_event(id, "checkout.session.completed", wallet, json!(plan_id.to_string()), subscription, amount_total, "paid")
}

/// A Checkout Session event (`type`) in Stripe's shape.
fn checkout_event(id: &str, event_type: &str, wallet: &str, plan_id: Value, subscription: &str, amount_total: u64, payment_status: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": 1_764_000_000,
        "livemode": false,
        "pending_webhooks": 1,
        "type": event_type,
        "data": { "object": {
            "id": format!("cs_test_{id}"),
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "amount_subtotal": amount_total,
            "amount_total": amount_total,
            "currency": "usd",
            "customer": "cus_it_1",
            "payment_status": payment_status,
            "subscription": subscription,
            "invoice": format!("in_{id}"),
            "metadata": { "wallet": wallet, "plan_id": plan_id },
        }},
    })
}

/// An `invoice.paid` as Stripe sends it (API 2025-03-31.basil: the subscription under
/// `parent`, the line's price under `pricing.price_details`) for one period of plan
/// `plan_id` (price `price_<id>`), paid its card price (nothing for the first invoice of a
/// trial).
fn invoice(id: &str, subscription: &str, reason: &str, plan_id: u32) -> Value {
    let amount = if reason == "subscription_create" { 0 } else { cents(plan_id) };
    invoice_event(id, "invoice.paid", subscription, reason, &format!("price_{plan_id}"), amount)
}

/// An invoice event (`type`) in Stripe's shape with one subscription line at `price`,
/// `amount_paid` cents paid of as much due.
fn invoice_event(id: &str, event_type: &str, subscription: &str, reason: &str, price: &str, amount_paid: u64) -> Value {
    let paid = event_type == "invoice.paid";
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "type": event_type,
        "data": { "object": {
            "id": format!("in_{id}"),
            "object": "invoice",
            "billing_reason": reason,
            "currency": "usd",
            "customer": "cus_it_1",
            "status": if paid { "paid" } else { "open" },
            "amount_due": amount_paid,
            "amount_paid": if paid { amount_paid } else { 0 },
            "amount_remaining": if paid { 0 } else { amount_paid },
            "attempt_count": 1,
            "parent": { "type": "subscription_details", "subscription_details": { "metadata": {}, "subscription": subscription }},
            "lines": { "object": "list", "has_more": false, "total_count": 1, "data": [{
                "id": format!("il_{id}"),
                "object": "line_item",
                "amount": amount_paid,
                "currency": "usd",
                "quantity": 1,
                "parent": { "type": "subscription_item_details", "subscription_item_details": {
                    "proration": false, "subscription": subscription, "subscription_item": "si_it_1",
                }},
                "pricing": { "type": "price_details", "price_details": { "price": price, "product": "prod_it" }, "unit_amount_decimal": amount_paid.to_string() },
            }]},
        }},
    })
}

/// A card checkout starts the plan's trial (subscription, issue badge job, event), the first
/// invoice does not extend it, later invoices renew from the later of now and the expiry,
/// and the processor's deletion cancels without shortening the paid period.
pub(crate) async fn a_card_checkout_starts_a_trial_renews_and_cancels(kind: DbKind) {
    // Arrange
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);

    // Act 1: the checkout session completes
    let before = card.clock.now();
    let (status, body) = card.send(&session("evt_cs_1", &wallet, json!("3"), "sub_it_1")).await;
    let after = card.clock.now();

    // Assert 1: trialing for the plan's 7 trial days, badge issued, event written
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["status"].as_str(), body["outcome"].as_str()), (Some("processed"), Some("trialing")));
    assert_eq!(body["wallet"].as_str().unwrap().to_lowercase(), wallet.to_lowercase());
    let (sub_status, tier, trial_end, started) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier), ("trialing", 3));
    assert!((before..=after).contains(&started), "{started} not in {before}..={after}");
    assert_eq!(trial_end, started + 7 * DAY);
    assert_eq!(card.badge_jobs().await, vec![("issue".to_string(), 3, trial_end)]);
    let activated = card.app.h.events("subscription.activated").await;
    assert_eq!(activated.len(), 1);
    let data = &activated[0].payload["data"];
    assert_eq!((data["status"].as_str(), data["source"].as_str(), data["expires_at"].as_u64()), (Some("trialing"), Some("card"), Some(trial_end)));
    assert_eq!(data["card_subscription"], "sub_it_1");
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_subscriptions WHERE card_subscription_id = 'sub_it_1' AND plan_id = 3").await, 1);
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_events WHERE event_id = 'evt_cs_1' AND outcome = 'trialing'").await, 1);

    // Act 2: the first invoice (Stripe sends it beside the session)
    let (status, body) = card.send(&invoice("evt_in_1", "sub_it_1", "subscription_create", 3)).await;

    // Assert 2: acknowledged, nothing extended, no job, no event
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("first_invoice")), "{body}");
    assert_eq!(card.subscription(&wallet).await.2, trial_end);
    assert_eq!(card.badge_jobs().await.len(), 1);
    assert_eq!(card.app.count("SELECT COUNT(*) FROM outbox_events").await, 1);

    // Act 3: the trial ends; a day later the first paid cycle
    card.clock.advance(Duration::from_secs(8 * DAY));
    let cycle_at = card.clock.now();
    let (status, body) = card.send(&invoice("evt_in_2", "sub_it_1", "subscription_cycle", 3)).await;

    // Assert 3: renewed from now (later than the trial's end), active
    assert_eq!((status, body["outcome"].as_str()), (200, Some("renewed")), "{body}");
    let (sub_status, _, renewed_end, _) = card.subscription(&wallet).await;
    assert_eq!(sub_status, "active");
    assert!((cycle_at + MONTH_SECS..=cycle_at + MONTH_SECS + 2).contains(&renewed_end), "{renewed_end} vs now {cycle_at}");
    assert_eq!(card.badge_jobs().await.last().unwrap(), &("update".to_string(), 3, renewed_end));
    let renewed = card.app.h.events("subscription.renewed").await;
    assert_eq!(renewed.len(), 1);
    assert_eq!((renewed[0].payload["data"]["source"].as_str(), renewed[0].payload["data"]["expires_at"].as_u64()), (Some("card"), Some(renewed_end)));

    // Act 4: an early cycle (before the expiry) renews from the expiry
    let (status, _) = card.send(&invoice("evt_in_3", "sub_it_1", "subscription_cycle", 3)).await;
    assert_eq!(status, 200);
    assert_eq!(card.subscription(&wallet).await.2, renewed_end + MONTH_SECS);

    // Act 5: the processor deletes the subscription
    let jobs_before = card.badge_jobs().await.len();
    let deleted = json!({ "id": "evt_del_1", "type": "customer.subscription.deleted", "data": { "object": { "id": "sub_it_1", "object": "subscription" }}});
    let (status, body) = card.send(&deleted).await;

    // Assert 5: canceled, access to the end of the paid period, event, no badge job
    assert_eq!((status, body["outcome"].as_str()), (200, Some("canceled")), "{body}");
    let (sub_status, _, end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), end), ("canceled", renewed_end + MONTH_SECS));
    assert_eq!(card.badge_jobs().await.len(), jobs_before);
    let canceled = card.app.h.events("subscription.canceled").await;
    assert_eq!(canceled.len(), 1);
    assert_eq!((canceled[0].payload["data"]["expires_at"].as_u64(), canceled[0].payload["data"]["source"].as_str()), (Some(end), Some("card")));
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_subscriptions WHERE status = 'canceled'").await, 1);

    // A deletion of a card subscription never activated here is acknowledged and recorded.
    let unknown = json!({ "id": "evt_del_2", "type": "customer.subscription.deleted", "data": { "object": { "id": "sub_nobody" }}});
    let (status, body) = card.send(&unknown).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("unknown_subscription")));
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_events WHERE event_id = 'evt_del_2' AND outcome = 'unknown_subscription'").await, 1);
    crate::event_schemas::check_outbox(&card.app.h.test_db.db).await;
}
on_both_databases!(a_card_checkout_starts_a_trial_renews_and_cancels);

/// A member who already has a live plan gets a paid period, not a trial: same tier renews;
/// a higher tier upgrades at once, crediting paid time only (the rest of a trial was not
/// paid for); a numeric plan_id is taken too.
async fn a_card_payment_by_a_member_follows_the_on_chain_rules(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(2);
    assert_eq!(card.send(&session("evt_a", &wallet, json!(1), "sub_a")).await.0, 200);

    // Premium during the Basic trial: upgraded at once, the rest of the trial not credited.
    let (status, body) = card.send(&paid_session("evt_b", &wallet, 3, "sub_b", 4900)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("upgraded")), "{body}");
    let now = card.clock.now();
    let (sub_status, tier, premium_end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier), ("active", 3));
    assert!((now + MONTH_SECS - 2..=now + MONTH_SECS).contains(&premium_end), "{premium_end} vs {now}");
    assert_eq!(card.app.h.events("subscription.upgraded").await[0].payload["data"]["credit_seconds"], 0);

    // Ten days later VIP: the paid Premium time left is credited at 4900/9900 (card cents).
    card.clock.advance(Duration::from_secs(10 * DAY));
    let (status, body) = card.send(&paid_session("evt_c", &wallet, 4, "sub_c", 9900)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("upgraded")), "{body}");
    let (sub_status, tier, vip_end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier), ("active", 4));
    let upgraded = card.app.h.events("subscription.upgraded").await;
    let credit = upgraded[1].payload["data"]["credit_seconds"].as_u64().unwrap();
    let now = card.clock.now();
    let paid_left = premium_end - now;
    let expected = paid_left * 4900 / 9900;
    assert!((expected - 1..=expected + 1).contains(&credit), "credit {credit}, expected {expected} for {paid_left} s of paid Premium");
    assert!((now + MONTH_SECS + credit - 2..=now + MONTH_SECS + credit).contains(&vip_end));
    assert_eq!(card.badge_jobs().await.iter().map(|j| (j.0.as_str(), j.1)).collect::<Vec<_>>(), [("issue", 1), ("update", 3), ("update", 4)]);
}
on_both_databases!(a_card_payment_by_a_member_follows_the_on_chain_rules);

/// Bad, missing, stale and foreign signatures are refused with 400 before anything is read;
/// several v1 values with one valid are accepted.
async fn card_signatures_are_checked_before_anything_changes(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let event = session("evt_sig", &card.app.wallet(3), json!(3), "sub_sig");
    let body = event.to_string();
    let now = card.clock.now();

    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing Stripe-Signature"),
        (Some(signature(body.as_bytes(), "whsec_someone_else", now)), "no v1 signature in Stripe-Signature matches"),
        (Some(signature(b"{\"id\":\"evt_other\"}", SECRET, now)), "no v1 signature in Stripe-Signature matches"),
        (Some(signature(body.as_bytes(), SECRET, now).replace("v1=", "v0=")), "has no v1 signature"),
        (Some("v1=abcdef".into()), "no t=<unix time>"),
    ];
    for (header, message) in cases {
        let (status, error) = card.send_raw(body.clone(), header.clone()).await;
        assert_eq!(status, 400, "{header:?}: {error}");
        assert_eq!(error["error"]["code"], "invalid_signature");
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{header:?}: {error}");
    }
    assert_eq!(card.counts().await, [0; 5]);

    // Signed six minutes ago: past the five-minute tolerance.
    let old = signature(body.as_bytes(), SECRET, card.clock.now());
    card.clock.advance(Duration::from_secs(360));
    let (status, error) = card.send_raw(body.clone(), Some(old)).await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().contains("tolerance 300 s"), "{error}");
    assert_eq!(card.counts().await, [0; 5]);

    // During a secret rotation the processor sends several v1 values: one valid is enough.
    let now = card.clock.now();
    let good = signature(body.as_bytes(), SECRET, now);
    let other = signature(body.as_bytes(), "whsec_old_secret", now);
    let several = format!("{other},v0=00ff,v1={}", good.split("v1=").nth(1).unwrap());
    let (status, ok) = card.send_raw(body, Some(several)).await;
    assert_eq!((status, ok["outcome"].as_str()), (200, Some("trialing")), "{ok}");
    assert_eq!(card.counts().await, [1, 1, 1, 1, 1]);
}
on_both_databases!(card_signatures_are_checked_before_anything_changes);

/// A replayed event id changes nothing and answers `duplicate`; an event type not handled
/// is recorded as ignored (so its replay is a duplicate too).
async fn a_card_event_is_applied_once(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(4);
    let event = session("evt_once", &wallet, json!(2), "sub_once");
    assert_eq!(card.send(&event).await.0, 200);
    let counts = card.counts().await;
    let subscription = card.subscription(&wallet).await;
    assert_eq!(counts, [1, 1, 1, 1, 1]);

    // The same event again (freshly signed, as the processor retries), later.
    card.clock.advance(Duration::from_secs(60));
    let (status, body) = card.send(&event).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("duplicate"), Some("trialing")), "{body}");
    assert_eq!(card.counts().await, counts);
    assert_eq!(card.subscription(&wallet).await, subscription);

    // A renewal replayed does not renew twice.
    card.clock.advance(Duration::from_secs(8 * DAY));
    let cycle = invoice("evt_cycle_once", "sub_once", "subscription_cycle", 2);
    assert_eq!(card.send(&cycle).await.0, 200);
    let renewed = card.subscription(&wallet).await.2;
    let (status, body) = card.send(&cycle).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(card.subscription(&wallet).await.2, renewed);
    assert_eq!(card.app.h.events("subscription.renewed").await.len(), 1);
    assert_eq!(card.badge_jobs().await.len(), 2);

    // Unknown types: 200 ignored, recorded, replay is a duplicate.
    let other = json!({ "id": "evt_charge", "type": "charge.succeeded", "data": { "object": { "id": "ch_1" }}});
    let counts = card.counts().await;
    let (status, body) = card.send(&other).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")), "{body}");
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_events WHERE event_id = 'evt_charge' AND outcome = 'ignored'").await, 1);
    let (status, body) = card.send(&other).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("duplicate"), Some("ignored")));
    let after = card.counts().await;
    assert_eq!((after[0], after[1], after[2], after[3]), (counts[0], counts[1], counts[2], counts[3] + 1));
}
on_both_databases!(a_card_event_is_applied_once);

/// Metadata naming an unknown plan, a bad wallet, or missing: a 4xx a person can act on and
/// nothing changed or recorded, so the processor's retry succeeds once it is fixed.
async fn card_events_with_bad_metadata_change_nothing(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(5);
    let mut no_metadata = session("evt_bad", &wallet, json!(3), "sub_bad");
    no_metadata["data"]["object"].as_object_mut().unwrap().remove("metadata");
    let mut no_plan = session("evt_bad", &wallet, json!(3), "sub_bad");
    no_plan["data"]["object"]["metadata"].as_object_mut().unwrap().remove("plan_id");
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (session("evt_bad", &wallet, json!("99"), "sub_bad"), 422, "unknown_plan", "plan_id 99 is not a plan of the catalog"),
        (session("evt_bad", &wallet, json!("three"), "sub_bad"), 422, "unknown_plan", "is not a plan id"),
        (session("evt_bad", "0x1234", json!(3), "sub_bad"), 400, "invalid_request", "\"0x1234\" is not a wallet address"),
        (session("evt_bad", "0x0000000000000000000000000000000000000000", json!(3), "sub_bad"), 400, "invalid_request", "not a wallet address"),
        (no_metadata, 422, "missing_metadata", "data.object.metadata is missing"),
        (no_plan, 422, "missing_metadata", "metadata.plan_id is missing"),
        (invoice("evt_bad", "sub_never_seen", "subscription_cycle", 3), 422, "missing_metadata", "sub_never_seen is unknown here"),
        (json!({ "type": "invoice.paid", "data": { "object": {} } }), 400, "invalid_request", "has no \"id\""),
    ];
    for (event, status, code, message) in cases {
        let (got, error) = card.send(&event).await;
        assert_eq!(got, status, "{event} -> {error}");
        assert_eq!(error["error"]["code"], code, "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{message:?} not in {error}");
        assert_eq!(card.counts().await, [0; 5], "{event} changed something");
    }
    let (status, _) = card.send_raw("not json".into(), Some(signature(b"not json", SECRET, card.clock.now()))).await;
    assert_eq!(status, 400);

    // The merchant fixes the metadata; the processor retries the same event id.
    let (status, body) = card.send(&session("evt_bad", &wallet, json!(3), "sub_bad")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("trialing")), "{body}");

    // A renewal whose subscription is unknown here but carries the metadata is applied.
    let mut fallback = invoice("evt_fallback", "sub_elsewhere", "subscription_cycle", 2);
    fallback["data"]["object"]["subscription_details"] = json!({ "metadata": { "wallet": card.app.wallet(6), "plan_id": "2" }});
    let (status, body) = card.send(&fallback).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let (sub_status, tier, end, started) = card.subscription(&card.app.wallet(6)).await;
    assert_eq!((sub_status.as_str(), tier, end - started), ("active", 2, MONTH_SECS));
    // The renewal mapped the card subscription, so its later events find the member.
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_subscriptions WHERE card_subscription_id = 'sub_elsewhere' AND plan_id = 2").await, 1);
}
on_both_databases!(card_events_with_bad_metadata_change_nothing);

/// Without a configured secret, card webhooks are refused with a documented 404 (not a
/// server error: schemathesis counts every 5xx as a fault) and a clear message.
async fn card_webhooks_need_a_secret(kind: DbKind) {
    let card = Card::spawn_with(kind, None).await;
    let (status, error) = card.send(&session("evt_x", &card.app.wallet(1), json!(3), "sub_x")).await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "card_not_configured");
    assert!(error["error"]["message"].as_str().unwrap().contains("[card] webhook_secret"), "{error}");
    assert_eq!(card.counts().await, [0; 5]);
}
on_both_databases!(card_webhooks_need_a_secret);

/// A `customer.subscription.updated` as Stripe sends it: the subscription with its item's
/// price, `cancel_at_period_end` and `status`.
fn subscription_updated(id: &str, subscription: &str, price: &str, cancel_at_period_end: bool, status: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "type": "customer.subscription.updated",
        "data": {
            "object": {
                "id": subscription,
                "object": "subscription",
                "customer": "cus_it_1",
                "status": status,
                "cancel_at_period_end": cancel_at_period_end,
                "items": { "object": "list", "data": [{
                    "id": "si_it_1",
                    "object": "subscription_item",
                    "quantity": 1,
                    "price": { "id": price, "object": "price", "currency": "usd", "recurring": { "interval": "month" } },
                }]},
                "metadata": {},
            },
            "previous_attributes": { "cancel_at_period_end": !cancel_at_period_end },
        },
    })
}

impl Card {
    /// After a renewal invoice paid by a downgrade's proration credit and the reminder
    /// pass: the plan ended on `tier` with no card renewal granted.
    pub(crate) async fn assert_the_credit_bought_nothing(&self, wallet: &str, tier: i64) {
        self.reminder_pass().await;
        let (_, got, end, _) = self.subscription(wallet).await;
        assert!(end <= self.clock.now(), "a renewal paid by the downgrade's credit granted time: {end}");
        assert_eq!(got, tier);
        assert_eq!(self.app.h.events("subscription.renewed").await.iter().filter(|e| e.payload["data"]["source"] == "card").count(), 0);
    }

    /// The member's subscription as `GET /v1/subscriptions/{wallet}` shows it.
    async fn view(&self, wallet: &str) -> Value {
        let (status, body) = self.app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{wallet}"), None, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs one reminder pass (expiry) on the card clock.
    pub(crate) async fn reminder_pass(&self) {
        let h = &self.app.h;
        let reminders = tmai_pay::billing::reminders::Reminders::new(
            h.test_db.db.clone(),
            h.catalog.clone(),
            tmai_pay::config::ReminderSettings::default(),
            self.clock.clone(),
        );
        reminders.tick().await.unwrap();
    }

    /// Sends `event`, which must be refused with `status` and `code`, a message containing
    /// `message`, and nothing changed or recorded.
    async fn refused(&self, event: &Value, status: u16, code: &str, message: &str) {
        let counts = self.counts().await;
        let events = self.app.count("SELECT COUNT(*) FROM outbox_events").await;
        let (got, error) = self.send(event).await;
        assert_eq!((got, error["error"]["code"].as_str()), (status, Some(code)), "{event} -> {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{message:?} not in {error}");
        assert_eq!(self.counts().await, counts, "{event} changed something");
        assert_eq!(self.app.count("SELECT COUNT(*) FROM outbox_events").await, events);
        let id = event["id"].as_str().unwrap();
        assert_eq!(self.app.count(&format!("SELECT COUNT(*) FROM card_events WHERE event_id = '{id}'")).await, 0, "{id} was recorded");
    }
}

/// Only a `subscription_cycle` invoice renews, for the plan of its line's price and only
/// when it was paid that plan's card price: a proration (`subscription_update`, nothing
/// paid), a manual or a threshold invoice moves nothing; a wrong amount, currency or
/// price is refused (422, logged, not recorded) so the processor retries after the fix.
async fn only_a_paid_cycle_invoice_at_the_plans_price_renews(kind: DbKind) {
    // Arrange: a VIP member who paid the VIP price.
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);
    let (status, body) = card.send(&paid_session("evt_vip", &wallet, 4, "sub_vip", 9900)).await;
    assert_eq!(status, 200, "{body}");
    let (_, tier, vip_end, _) = card.subscription(&wallet).await;
    assert_eq!(tier, 4);
    let jobs = card.badge_jobs().await.len();

    // Act 1: a proration invoice (the plan changed mid-period; nothing was charged), and
    // manual and threshold invoices that were paid something.
    let proration = invoice_event("evt_prorate", "invoice.paid", "sub_vip", "subscription_update", "price_4", 0);
    let manual = invoice_event("evt_manual", "invoice.paid", "sub_vip", "manual", "price_4", 9900);
    let threshold = invoice_event("evt_threshold", "invoice.paid", "sub_vip", "subscription_threshold", "price_4", 9900);
    for event in [&proration, &manual, &threshold] {
        let (status, body) = card.send(event).await;

        // Assert 1: acknowledged and recorded, no period granted, no job, no event.
        assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("not_a_renewal")), "{body}");
        assert_eq!(card.subscription(&wallet).await.2, vip_end, "{event}");
        let id = event["id"].as_str().unwrap();
        assert_eq!(card.app.count(&format!("SELECT COUNT(*) FROM card_events WHERE event_id = '{id}' AND outcome = 'not_a_renewal'")).await, 1);
    }
    assert_eq!(card.badge_jobs().await.len(), jobs);
    assert_eq!(card.app.h.events("subscription.renewed").await.len(), 0);

    // Act 2: cycle invoices that do not match the VIP price.
    let mut euros = invoice("evt_bad_cycle", "sub_vip", "subscription_cycle", 4);
    euros["data"]["object"]["currency"] = json!("eur");
    let cases = [
        (
            invoice_event("evt_bad_cycle", "invoice.paid", "sub_vip", "subscription_cycle", "price_4", 900),
            "amount_mismatch",
            "900 usd is not the card price of plan 4 (9900",
        ),
        (
            invoice_event("evt_bad_cycle", "invoice.paid", "sub_vip", "subscription_cycle", "price_4", 0),
            "amount_mismatch",
            "0 usd is not the card price of plan 4",
        ),
        (euros, "amount_mismatch", "card prices are in \"usd\""),
        (
            invoice_event("evt_bad_cycle", "invoice.paid", "sub_vip", "subscription_cycle", "price_elsewhere", 9900),
            "unknown_price",
            "price_elsewhere is no plan's card_price_id",
        ),
    ];
    // Assert 2: refused, nothing changed or recorded.
    for (event, code, message) in cases {
        card.refused(&event, 422, code, message).await;
    }
    assert_eq!(card.subscription(&wallet).await.2, vip_end);

    // Act 3: the processor retries with the cycle as it was charged, in the older API
    // shape (top-level subscription, the line's price object, `proration`), beside a
    // proration line that does not name the plan and moves the total (what a plan change
    // on the processor's defaults leaves on the next invoice): the plan line names the
    // plan, and what was collected for it and the proration buys time at its price.
    let legacy = json!({
        "id": "evt_bad_cycle", "object": "event", "api_version": "2024-06-20", "type": "invoice.paid",
        "data": { "object": {
            "id": "in_legacy", "object": "invoice", "billing_reason": "subscription_cycle", "currency": "usd",
            "amount_due": 12000, "amount_paid": 12000, "subscription": "sub_vip", "subscription_details": { "metadata": {} },
            "lines": { "object": "list", "data": [
                { "id": "il_1", "object": "line_item", "amount": 9900, "currency": "usd", "proration": false, "quantity": 1, "type": "subscription",
                  "price": { "id": "price_4", "object": "price", "unit_amount": 9900, "currency": "usd" } },
                { "id": "il_2", "object": "line_item", "amount": 2100, "currency": "usd", "proration": true, "quantity": 1, "type": "invoiceitem",
                  "price": { "id": "price_3", "object": "price", "unit_amount": 4900, "currency": "usd" } },
            ]},
        }},
    });
    let (status, body) = card.send(&legacy).await;

    // Assert 3: 12000 cents of VIP time more (a period and 2100/9900 of one), from the expiry.
    assert_eq!((status, body["outcome"].as_str()), (200, Some("renewed")), "{body}");
    let (sub_status, tier, end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier, end), ("active", 4, vip_end + MONTH_SECS * 12_000 / 9_900));
    assert_eq!(card.app.h.events("subscription.renewed").await.len(), 1);
}
on_both_databases!(only_a_paid_cycle_invoice_at_the_plans_price_renews);

/// A Checkout Session grants only what it was paid: `unpaid` waits (recorded `pending`,
/// nothing granted) and its `async_payment_succeeded` activates, `async_payment_failed`
/// grants nothing; an amount or currency that is not the plan's card price is refused.
async fn a_checkout_session_grants_only_what_was_paid(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);

    // The Basic price paid with VIP metadata, a wrong currency, a "free" paid plan.
    let mut euros = paid_session("evt_cs_bad", &wallet, 4, "sub_pay", 9900);
    euros["data"]["object"]["currency"] = json!("eur");
    let mut free_but_charged = paid_session("evt_cs_bad", &wallet, 4, "sub_pay", 9900);
    free_but_charged["data"]["object"]["payment_status"] = json!("no_payment_required");
    let mut no_amount = paid_session("evt_cs_bad", &wallet, 4, "sub_pay", 9900);
    no_amount["data"]["object"].as_object_mut().unwrap().remove("amount_total");
    card.refused(&paid_session("evt_cs_bad", &wallet, 4, "sub_pay", 900), 422, "amount_mismatch", "900 usd is not the card price of plan 4 (9900").await;
    card.refused(&euros, 422, "amount_mismatch", "card prices are in \"usd\"").await;
    card.refused(&free_but_charged, 422, "amount_mismatch", "no_payment_required").await;
    card.refused(&no_amount, 400, "invalid_request", "amount_total").await;
    assert_eq!(card.counts().await, [0; 5]);

    // A bank debit: the session completes unpaid.
    let unpaid = checkout_event("evt_cs_unpaid", "checkout.session.completed", &wallet, json!(4), "sub_pay", 9900, "unpaid");
    let (status, body) = card.send(&unpaid).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("pending")), "{body}");
    assert_eq!(card.counts().await, [0, 0, 0, 1, 0]);
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_events WHERE event_id = 'evt_cs_unpaid' AND outcome = 'pending'").await, 1);

    // The debit succeeds: activated as a paid session would.
    let succeeded = checkout_event("evt_cs_ok", "checkout.session.async_payment_succeeded", &wallet, json!(4), "sub_pay", 9900, "paid");
    let (status, body) = card.send(&succeeded).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let (sub_status, tier, end, started) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier, end - started), ("active", 4, MONTH_SECS));
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_subscriptions WHERE card_subscription_id = 'sub_pay' AND plan_id = 4").await, 1);

    // Another member's debit fails: nothing granted, recorded.
    let other = card.app.wallet(2);
    let failed = checkout_event("evt_cs_fail", "checkout.session.async_payment_failed", &other, json!(4), "sub_fail", 9900, "unpaid");
    let (status, body) = card.send(&failed).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("payment_failed")), "{body}");
    assert_eq!(body["wallet"].as_str().unwrap().to_lowercase(), other.to_lowercase());
    assert_eq!(card.app.count("SELECT COUNT(*) FROM subscriptions").await, 1);
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_events WHERE event_id = 'evt_cs_fail' AND outcome = 'payment_failed'").await, 1);
}
on_both_databases!(a_checkout_session_grants_only_what_was_paid);

/// A failed renewal makes the subscription `past_due` with `subscription.renewal_failed`;
/// access runs to the end of the paid period; the retried payment's `subscription_cycle`
/// invoice makes it active again; unpaid to the end, it expires (reason `renewal_failed`).
pub(crate) async fn a_failed_card_renewal_is_past_due_until_paid_or_expired(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);
    assert_eq!(card.send(&paid_session("evt_pd_cs", &wallet, 3, "sub_pd", 4900)).await.0, 200);
    let (_, _, end, _) = card.subscription(&wallet).await;

    // The renewal is charged a day before the end and fails.
    card.clock.advance(Duration::from_secs(MONTH_SECS - DAY));
    let failed = invoice_event("evt_pd_fail", "invoice.payment_failed", "sub_pd", "subscription_cycle", "price_3", 4900);
    let (status, body) = card.send(&failed).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("processed"), Some("past_due")), "{body}");
    assert_eq!(card.subscription(&wallet).await, ("past_due".to_string(), 3, end, end - MONTH_SECS));
    let view = card.view(&wallet).await;
    assert_eq!((view["status"].as_str(), view["expires_at"].as_u64()), (Some("past_due"), Some(end)), "still has access: {view}");
    let events = card.app.h.events("subscription.renewal_failed").await;
    assert_eq!(events.len(), 1);
    let data = &events[0].payload["data"];
    assert_eq!((data["status"].as_str(), data["expires_at"].as_u64(), data["card_subscription"].as_str()), (Some("past_due"), Some(end), Some("sub_pd")));
    // A proration that failed is no renewal.
    let proration = invoice_event("evt_pd_prorate", "invoice.payment_failed", "sub_pd", "subscription_update", "price_3", 100);
    assert_eq!(card.send(&proration).await.1["outcome"], "not_a_renewal");

    // The processor's retry two days later (past the end) succeeds: renewed from now, active.
    card.clock.advance(Duration::from_secs(2 * DAY));
    let now = card.clock.now();
    let (status, body) = card.send(&invoice("evt_pd_paid", "sub_pd", "subscription_cycle", 3)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("renewed")), "{body}");
    let (sub_status, _, renewed_end, _) = card.subscription(&wallet).await;
    assert_eq!(sub_status, "active");
    assert!((now + MONTH_SECS..=now + MONTH_SECS + 2).contains(&renewed_end), "{renewed_end} vs {now}");

    // The next renewal fails and is never paid: past_due, then expired at the end.
    card.clock.advance(Duration::from_secs(MONTH_SECS - DAY));
    let failed = invoice_event("evt_pd_fail_2", "invoice.payment_failed", "sub_pd", "subscription_cycle", "price_3", 4900);
    assert_eq!(card.send(&failed).await.1["outcome"], "past_due");
    card.reminder_pass().await;
    assert_eq!(card.subscription(&wallet).await.0, "past_due", "access runs to the end");
    card.clock.advance(Duration::from_secs(2 * DAY));
    card.reminder_pass().await;
    assert_eq!(card.subscription(&wallet).await.0, "expired");
    let expired = card.app.h.events("subscription.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].payload["data"]["reason"].as_str(), expired[0].payload["data"]["expired_at"].as_u64()), (Some("renewal_failed"), Some(renewed_end)));
    crate::event_schemas::check_outbox(&card.app.h.test_db.db).await;
}
on_both_databases!(a_failed_card_renewal_is_past_due_until_paid_or_expired);

/// `customer.subscription.updated`: a new price is a plan change by the on-chain rules (a
/// higher tier at once with the unused paid time credited at the price ratio, a lower tier
/// at the end of the period); `cancel_at_period_end` cancels (access to the end) and,
/// false again, un-cancels; repeating a flag changes nothing.
pub(crate) async fn a_card_subscription_update_changes_the_plan_and_cancels(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);
    assert_eq!(card.send(&paid_session("evt_up_cs", &wallet, 3, "sub_up", 4900)).await.0, 200);
    let (_, _, premium_end, _) = card.subscription(&wallet).await;

    // Ten days later the member switches to VIP at the processor.
    card.clock.advance(Duration::from_secs(10 * DAY));
    let (status, body) = card.send(&subscription_updated("evt_up_1", "sub_up", "price_4", false, "active")).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("processed"), Some("upgraded")), "{body}");
    let now = card.clock.now();
    let (sub_status, tier, vip_end, _) = card.subscription(&wallet).await;
    let expected_credit = (premium_end - now) * 4900 / 9900;
    assert_eq!((sub_status.as_str(), tier), ("active", 4));
    assert!((now + expected_credit - 2..=now + expected_credit + 1).contains(&vip_end), "{vip_end}: no period was paid, only the credit");
    let upgraded = card.app.h.events("subscription.upgraded").await;
    assert_eq!((upgraded.len(), upgraded[0].payload["data"]["source"].as_str()), (1, Some("card")));
    assert_eq!(card.badge_jobs().await.last().unwrap(), &("update".to_string(), 4, vip_end));
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_subscriptions WHERE card_subscription_id = 'sub_up' AND plan_id = 4").await, 1);

    // The member sets it to cancel at the period end; the processor repeats the flag.
    let (status, body) = card.send(&subscription_updated("evt_up_2", "sub_up", "price_4", true, "active")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("canceled")), "{body}");
    assert_eq!(card.subscription(&wallet).await.0, "canceled");
    assert_eq!(card.subscription(&wallet).await.2, vip_end, "access to the end of the paid period");
    let (status, body) = card.send(&subscription_updated("evt_up_3", "sub_up", "price_4", true, "active")).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("unchanged")), "{body}");
    assert_eq!(card.app.h.events("subscription.canceled").await.len(), 1);

    // And changes their mind.
    let (status, body) = card.send(&subscription_updated("evt_up_4", "sub_up", "price_4", false, "active")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("uncanceled")), "{body}");
    assert_eq!(card.subscription(&wallet).await.0, "active");
    let uncanceled = card.app.h.events("subscription.uncanceled").await;
    assert_eq!((uncanceled.len(), uncanceled[0].payload["data"]["status"].as_str()), (1, Some("active")));

    // A switch to Basic waits for the end of the period.
    let jobs = card.badge_jobs().await.len();
    let (status, body) = card.send(&subscription_updated("evt_up_5", "sub_up", "price_1", false, "active")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("downgrade_scheduled")), "{body}");
    let (sub_status, tier, end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier, end), ("active", 4, vip_end));
    assert_eq!(card.badge_jobs().await.len(), jobs);
    // A price no plan has is refused.
    card.refused(&subscription_updated("evt_up_6", "sub_up", "price_unknown", false, "active"), 422, "unknown_price", "price_unknown").await;

    // The Basic renewal at the end: the scheduled downgrade takes effect, then renews.
    card.clock.advance(Duration::from_secs(vip_end - card.clock.now() + 60));
    let now = card.clock.now();
    let (status, body) = card.send(&invoice("evt_up_cycle", "sub_up", "subscription_cycle", 1)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("renewed")), "{body}");
    let (sub_status, tier, end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier), ("active", 1));
    assert!((now + MONTH_SECS..=now + MONTH_SECS + 2).contains(&end), "{end} vs {now}");
    assert_eq!(card.badge_jobs().await.last().unwrap(), &("update".to_string(), 1, end));
    crate::event_schemas::check_outbox(&card.app.h.test_db.db).await;
}
on_both_databases!(a_card_subscription_update_changes_the_plan_and_cancels);

/// A wallet gets one card trial, ever: a trial checkout after the trial lapsed, or while
/// subscribed, grants nothing (the card subscription is still mapped), and the paid
/// renewal afterwards reads as a paid activation, not as a trial.
async fn a_wallet_gets_one_card_trial_ever(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);
    let (_, body) = card.send(&session("evt_tr_1", &wallet, json!(2), "sub_tr_1")).await;
    assert_eq!(body["outcome"], "trialing");
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_trials").await, 1);

    // The trial lapses unpaid (the member canceled it); a month later a new trial checkout.
    card.clock.advance(Duration::from_secs(8 * DAY));
    card.reminder_pass().await;
    assert_eq!(card.subscription(&wallet).await.0, "expired");
    card.clock.advance(Duration::from_secs(30 * DAY));
    let (status, body) = card.send(&session("evt_tr_2", &wallet, json!(2), "sub_tr_2")).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("trial_already_used")), "{body}");
    assert_eq!(card.subscription(&wallet).await.0, "expired");
    assert_eq!(card.app.h.events("subscription.activated").await.len(), 1);
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_subscriptions WHERE card_subscription_id = 'sub_tr_2'").await, 1);

    // The processor charges at the end of its trial: a paid activation.
    card.clock.advance(Duration::from_secs(7 * DAY));
    let (status, body) = card.send(&invoice("evt_tr_cycle", "sub_tr_2", "subscription_cycle", 2)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let now = card.clock.now();
    let (sub_status, tier, end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier), ("active", 2));
    assert!((now + MONTH_SECS - 2..=now + MONTH_SECS).contains(&end), "{end} vs {now}");
    let activated = card.app.h.events("subscription.activated").await;
    assert_eq!((activated.len(), activated[1].payload["data"]["status"].as_str()), (2, Some("active")));

    // While subscribed, a trial checkout for another plan grants nothing either.
    let (_, body) = card.send(&session("evt_tr_3", &wallet, json!(4), "sub_tr_3")).await;
    assert_eq!((body["status"].as_str(), body["outcome"].as_str()), (Some("acknowledged"), Some("trial_while_subscribed")), "{body}");
    assert_eq!(card.subscription(&wallet).await.1, 2);

    // A new wallet still gets its trial; a member moved to a new wallet brings the record.
    let fresh = card.app.wallet(2);
    assert_eq!(card.send(&session("evt_tr_4", &fresh, json!(1), "sub_tr_4")).await.1["outcome"], "trialing");
    let moved_to = card.app.wallet(3);
    let (status, body) = card
        .app
        .call("POST", "/v1/members/{wallet}/move", &format!("/v1/members/{wallet}/move"), Some(json!({ "new_wallet": moved_to })), Some(&card.app.key))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(card.app.count("SELECT COUNT(*) FROM card_trials").await, 3);
}
on_both_databases!(a_wallet_gets_one_card_trial_ever);

/// A one-time (`mode: payment`) Checkout Session paid `amount_total` cents with payment
/// intent `pi_<id>`, as Stripe sends it.
pub(crate) fn payment_session(id: &str, wallet: &str, plan_id: u32, amount_total: u64) -> Value {
    let mut event = checkout_event(id, "checkout.session.completed", wallet, json!(plan_id.to_string()), "", amount_total, "paid");
    let object = &mut event["data"]["object"];
    object["mode"] = json!("payment");
    object["subscription"] = Value::Null;
    object["invoice"] = Value::Null;
    object["payment_intent"] = json!(format!("pi_{id}"));
    event
}

/// A `charge.refunded` (Stripe's charge object: `amount_refunded` is the total refunded so
/// far) of the payment intent `pi`.
pub(crate) fn charge_refunded(id: &str, pi: &str, amount: u64, amount_refunded: u64) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "type": "charge.refunded",
        "data": { "object": {
            "id": format!("ch_{pi}"), "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": amount_refunded, "captured": true, "currency": "usd", "paid": true,
            "payment_intent": pi, "refunded": amount_refunded == amount, "status": "succeeded",
        }},
    })
}

/// A dispute event (`charge.dispute.created` / `.closed`) of the payment intent `pi`.
fn dispute_event(id: &str, event_type: &str, pi: &str, amount: u64, status: &str) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "type": event_type,
        "data": { "object": {
            "id": format!("dp_{pi}"), "object": "dispute", "amount": amount, "charge": format!("ch_{pi}"),
            "currency": "usd", "payment_intent": pi, "reason": "fraudulent", "status": status, "is_charge_refundable": false,
        }},
    })
}

/// An `invoice.paid` renewal (older API shape) of `price` whose lines are the plan line at
/// `line` cents and the proration lines `prorations`, paid `amount_paid` with the customer
/// balance going from the first to the second of `balance` (negative: credit).
fn invoice_with_prorations(id: &str, subscription: &str, price: &str, line: u64, prorations: &[i64], amount_paid: u64, balance: (i64, i64)) -> Value {
    let (starting, ending) = balance;
    let mut lines = vec![json!({ "id": "il_plan", "object": "line_item", "amount": line, "currency": "usd", "proration": false, "type": "subscription",
        "price": { "id": price, "object": "price", "unit_amount": line, "currency": "usd" } })];
    for (i, amount) in prorations.iter().enumerate() {
        lines.push(json!({ "id": format!("il_pr_{i}"), "object": "line_item", "amount": amount, "currency": "usd", "proration": true, "type": "invoiceitem",
            "price": { "id": "price_3", "object": "price", "unit_amount": 4900, "currency": "usd" } }));
    }
    let total = line as i64 + prorations.iter().sum::<i64>();
    json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "type": "invoice.paid",
        "data": { "object": {
            "id": format!("in_{id}"), "object": "invoice", "billing_reason": "subscription_cycle", "currency": "usd",
            "subtotal": total, "total": total, "amount_due": amount_paid, "amount_paid": amount_paid, "tax": null,
            "starting_balance": starting, "ending_balance": ending, "total_discount_amounts": [],
            "subscription": subscription, "subscription_details": { "metadata": {} },
            "lines": { "object": "list", "data": lines },
        }},
    })
}

/// A plan changed at the processor is paid once: a downgrade waits for the period's end
/// while the processor credits the unused Premium time on the next invoice, so that
/// renewal, paid by the credit, grants nothing; the next one, paid partly from the credit
/// balance, grants its period. A same-tier switch to a plan with a higher price per second
/// does not make the time it holds worth more when it is upgraded later.
async fn a_plan_changed_at_the_processor_is_paid_once(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);
    assert_eq!(card.send(&paid_session("evt_once_cs", &wallet, 3, "sub_once", 4900)).await.0, 200);
    let (_, _, premium_end, _) = card.subscription(&wallet).await;

    // Ten days in, Basic at the processor: scheduled here, prorated there.
    card.clock.advance(Duration::from_secs(10 * DAY));
    let (status, body) = card.send(&subscription_updated("evt_once_dn", "sub_once", "price_1", false, "active")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("downgrade_scheduled")), "{body}");

    // The renewal at the period's end: Basic 900, the unused Premium credited (-3267), the
    // rest of the period at Basic (+600). Nothing is charged; 1767 stay as credit.
    card.clock.advance(Duration::from_secs(premium_end - card.clock.now() + 60));
    let renewal = invoice_with_prorations("evt_once_r1", "sub_once", "price_1", 900, &[-3267, 600], 0, (0, -1767));
    let (status, body) = card.send(&renewal).await;
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("nothing_collected")), "{body}");
    card.assert_the_credit_bought_nothing(&wallet, 1).await;

    // The next cycle takes 900 of the 1767 credit balance: a Basic period, paid (the plan
    // had ended, so it starts again).
    card.clock.advance(Duration::from_secs(MONTH_SECS));
    let next = invoice_with_prorations("evt_once_r2", "sub_once", "price_1", 900, &[], 0, (-1767, -867));
    let (status, body) = card.send(&next).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let now = card.clock.now();
    let (_, tier, end, _) = card.subscription(&wallet).await;
    assert_eq!(tier, 1);
    assert!((now + MONTH_SECS - 1..=now + MONTH_SECS + 1).contains(&end), "{end} vs {now}");

    // A yearly Premium member switches to monthly Premium at the processor (same tier, a
    // higher price per second), then to VIP: the time left is credited at the yearly price
    // they paid, not the monthly one.
    let other = card.app.wallet(2);
    assert_eq!(card.send(&paid_session("evt_year_cs", &other, 13, "sub_year", 49000)).await.0, 200);
    let (status, body) = card.send(&subscription_updated("evt_year_m", "sub_year", "price_3", false, "active")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("plan_changed")), "{body}");
    let (_, _, year_end, _) = card.subscription(&other).await;
    let (status, body) = card.send(&subscription_updated("evt_year_vip", "sub_year", "price_4", false, "active")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("upgraded")), "{body}");
    let now = card.clock.now();
    let credit = card.app.h.events("subscription.upgraded").await.last().unwrap().payload["data"]["credit_seconds"].as_u64().unwrap();
    let left = u128::from(year_end - now);
    let at_yearly = u64::try_from(left * 49_000 * u128::from(MONTH_SECS) / (365 * u128::from(DAY) * 9_900)).unwrap();
    assert!((at_yearly.saturating_sub(20)..=at_yearly).contains(&credit), "credit {credit}, at the yearly price {at_yearly}");
    assert!(credit < u64::try_from(left * 4_900 / 9_900).unwrap() * 9 / 10, "credited at the monthly price: {credit}");
    crate::event_schemas::check_outbox(&card.app.h.test_db.db).await;
}
on_both_databases!(a_plan_changed_at_the_processor_is_paid_once);

/// A refund at the processor takes back its share of the time the payment bought (rounded
/// up), cumulatively over partial refunds, and ends the plan when nothing is left; a
/// dispute takes its share back at once, a won dispute gives it back, a lost one keeps it
/// taken. Charges no payment here was granted for change nothing.
async fn refunds_and_disputes_take_back_what_they_paid_for(kind: DbKind) {
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);
    assert_eq!(card.send(&payment_session("evt_rf", &wallet, 3, 4900)).await.0, 200);
    let (_, _, end, _) = card.subscription(&wallet).await;

    // Half refunded: half the month comes off.
    let (status, body) = card.send(&charge_refunded("evt_rf_1", "pi_evt_rf", 4900, 2450)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("taken_back")), "{body}");
    let (sub_status, _, half, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), half), ("active", end - MONTH_SECS / 2));
    let reversed = card.app.h.events("subscription.reversed").await;
    assert_eq!(reversed[0].payload["data"]["reason"], "refunded");
    assert_eq!(reversed[0].payload["data"]["seconds"], MONTH_SECS / 2);
    assert_eq!(card.badge_jobs().await.last().unwrap(), &("update".to_string(), 3, half));
    // The same refund again (the processor retries) changes nothing.
    let (status, body) = card.send(&charge_refunded("evt_rf_1", "pi_evt_rf", 4900, 2450)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")), "{body}");

    // The rest refunded: the plan ends now, the badge is revoked.
    let sent_at = card.clock.now();
    let (status, body) = card.send(&charge_refunded("evt_rf_2", "pi_evt_rf", 4900, 4900)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("taken_back")), "{body}");
    let (sub_status, _, ended, _) = card.subscription(&wallet).await;
    // Ended at the refund's handling: a second may tick between the send and the reading.
    assert_eq!(sub_status, "expired");
    assert!((sent_at..=card.clock.now()).contains(&ended), "ended {ended}, refund sent at {sent_at}");
    assert_eq!(card.badge_jobs().await.last().unwrap().0, "revoke");
    let expired = card.app.h.events("subscription.expired").await;
    assert_eq!(expired[0].payload["data"]["reason"].as_str(), Some("refunded"));
    let taken = expired[0].payload["data"]["seconds"].as_u64().unwrap();
    assert!((MONTH_SECS / 2 - 5..=MONTH_SECS / 2).contains(&taken), "what was left is what came off: {taken}");

    // A charge nobody was granted time for.
    let (status, body) = card.send(&charge_refunded("evt_rf_x", "pi_elsewhere", 900, 900)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("unknown_charge")), "{body}");

    // A dispute takes the whole month at once; won, it comes back.
    let disputed = card.app.wallet(2);
    assert_eq!(card.send(&payment_session("evt_dp", &disputed, 3, 4900)).await.0, 200);
    let (_, _, paid_end, _) = card.subscription(&disputed).await;
    let disputed_from = card.clock.now();
    let (status, body) = card.send(&dispute_event("evt_dp_1", "charge.dispute.created", "pi_evt_dp", 4900, "needs_response")).await;
    let disputed_to = card.clock.now();
    assert_eq!((status, body["outcome"].as_str()), (200, Some("taken_back")), "{body}");
    assert_eq!(card.subscription(&disputed).await.0, "expired");
    card.clock.advance(Duration::from_secs(3 * DAY));
    let won_from = card.clock.now();
    let (status, body) = card.send(&dispute_event("evt_dp_2", "charge.dispute.closed", "pi_evt_dp", 4900, "won")).await;
    let won_to = card.clock.now();
    assert_eq!((status, body["outcome"].as_str()), (200, Some("restored")), "{body}");
    let (sub_status, tier, restored, _) = card.subscription(&disputed).await;
    // What was left at the dispute comes back at the win: the end moves by the time between
    // them, each taken at its handling (a second of the real clock may tick during a send).
    assert_eq!((sub_status.as_str(), tier), ("active", 3));
    let moved = (paid_end + won_from - disputed_to)..=(paid_end + won_to - disputed_from);
    assert!(moved.contains(&restored), "restored to {restored}, expected within {moved:?}");

    // Half disputed and lost: the half stays taken.
    let lost = card.app.wallet(3);
    assert_eq!(card.send(&payment_session("evt_dl", &lost, 3, 4900)).await.0, 200);
    let (_, _, lost_end, _) = card.subscription(&lost).await;
    assert_eq!(card.send(&dispute_event("evt_dl_1", "charge.dispute.created", "pi_evt_dl", 2450, "needs_response")).await.0, 200);
    let (status, body) = card.send(&dispute_event("evt_dl_2", "charge.dispute.closed", "pi_evt_dl", 2450, "lost")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("unchanged")), "{body}");
    assert_eq!(card.subscription(&lost).await.2, lost_end - MONTH_SECS / 2);
    crate::event_schemas::check_outbox(&card.app.h.test_db.db).await;
}
on_both_databases!(refunds_and_disputes_take_back_what_they_paid_for);
