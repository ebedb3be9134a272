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

const SECRET: &str = "whsec_it_card_secret";
const ROUTE: &str = "/v1/card/webhook";
const DAY: u64 = 86_400;

/// The processor's side: `t=<t>,v1=<hex HMAC-SHA256 of "t.body">`.
fn signature(body: &[u8], secret: &str, t: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", alloy::hex::encode(mac.finalize().into_bytes()))
}

struct Card {
    app: App,
    clock: Clock,
}

impl Card {
    async fn spawn(kind: DbKind) -> Self {
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
    async fn send(&self, event: &Value) -> (u16, Value) {
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
    async fn subscription(&self, wallet: &str) -> (String, i64, u64, u64) {
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
    async fn badge_jobs(&self) -> Vec<(String, i64, u64)> {
        sqlx::query("SELECT action, tier, expires_at FROM badge_jobs ORDER BY id")
            .fetch_all(self.app.h.test_db.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get("action").unwrap(), r.try_get("tier").unwrap(), r.try_get::<i64, _>("expires_at").unwrap() as u64))
            .collect()
    }
}

fn session(id: &str, wallet: &str, plan_id: Value, subscription: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "type": "checkout.session.completed",
        "data": { "object": {
            "id": format!("cs_{id}"),
            "object": "checkout.session",
            "mode": "subscription",
            "customer": "cus_it_1",
            "subscription": subscription,
            "metadata": { "wallet": wallet, "plan_id": plan_id },
        }},
    })
}

fn invoice(id: &str, subscription: &str, reason: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "type": "invoice.paid",
        "data": { "object": { "id": format!("in_{id}"), "object": "invoice", "subscription": subscription, "billing_reason": reason }},
    })
}

/// A card checkout starts the plan's trial (subscription, issue badge job, event), the first
/// invoice does not extend it, later invoices renew from the later of now and the expiry,
/// and the processor's deletion cancels without shortening the paid period.
async fn a_card_checkout_starts_a_trial_renews_and_cancels(kind: DbKind) {
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
    let (status, body) = card.send(&invoice("evt_in_1", "sub_it_1", "subscription_create")).await;

    // Assert 2: acknowledged, nothing extended, no job, no event
    assert_eq!((status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("first_invoice")), "{body}");
    assert_eq!(card.subscription(&wallet).await.2, trial_end);
    assert_eq!(card.badge_jobs().await.len(), 1);
    assert_eq!(card.app.count("SELECT COUNT(*) FROM outbox_events").await, 1);

    // Act 3: the trial ends; a day later the first paid cycle
    card.clock.advance(Duration::from_secs(8 * DAY));
    let cycle_at = card.clock.now();
    let (status, body) = card.send(&invoice("evt_in_2", "sub_it_1", "subscription_cycle")).await;

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
    let (status, _) = card.send(&invoice("evt_in_3", "sub_it_1", "subscription_cycle")).await;
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
    let (status, body) = card.send(&session("evt_b", &wallet, json!("3"), "sub_b")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("upgraded")), "{body}");
    let now = card.clock.now();
    let (sub_status, tier, premium_end, _) = card.subscription(&wallet).await;
    assert_eq!((sub_status.as_str(), tier), ("active", 3));
    assert!((now + MONTH_SECS - 2..=now + MONTH_SECS).contains(&premium_end), "{premium_end} vs {now}");
    assert_eq!(card.app.h.events("subscription.upgraded").await[0].payload["data"]["credit_seconds"], 0);

    // Ten days later VIP: the paid Premium time left is credited at 4900/9900 (card cents).
    card.clock.advance(Duration::from_secs(10 * DAY));
    let (status, body) = card.send(&session("evt_c", &wallet, json!(4), "sub_c")).await;
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
    let cycle = invoice("evt_cycle_once", "sub_once", "subscription_cycle");
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
        (invoice("evt_bad", "sub_never_seen", "subscription_cycle"), 422, "missing_metadata", "sub_never_seen is unknown here"),
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
    let mut fallback = invoice("evt_fallback", "sub_elsewhere", "subscription_cycle");
    fallback["data"]["object"]["subscription_details"] = json!({ "metadata": { "wallet": card.app.wallet(6), "plan_id": "2" }});
    let (status, body) = card.send(&fallback).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let (sub_status, tier, end, started) = card.subscription(&card.app.wallet(6)).await;
    assert_eq!((sub_status.as_str(), tier, end - started), ("active", 2, MONTH_SECS));
}
on_both_databases!(card_events_with_bad_metadata_change_nothing);

/// Without a configured secret, card webhooks are refused with 503 and a clear message.
async fn card_webhooks_need_a_secret(kind: DbKind) {
    let card = Card::spawn_with(kind, None).await;
    let (status, error) = card.send(&session("evt_x", &card.app.wallet(1), json!(3), "sub_x")).await;
    assert_eq!(status, 503);
    assert_eq!(error["error"]["code"], "unavailable");
    assert!(error["error"]["message"].as_str().unwrap().contains("[card] webhook_secret"), "{error}");
    assert_eq!(card.counts().await, [0; 5]);
}
on_both_databases!(card_webhooks_need_a_secret);
