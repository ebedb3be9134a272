//! Paying by card and switching between card and crypto (issue 28 §2), on a real chain and
//! database: the service creates card Checkout Sessions itself (checked by the stand-in in
//! [`crate::card_processor`] against Stripe's documented request), the processor's
//! subscriptions, invoices and cancel-at-period-end live at localstripe, and the events
//! reach `POST /v1/card/webhook` signed as the processor signs them. Every answer is checked
//! against the OpenAPI document.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tmai_pay::{
    auth::AuthService,
    billing::plans::{Catalog, MONTH_SECS},
    clock::Clock,
    config::{CardSettings, HttpSettings},
};

use crate::{
    auth::{ORIGIN, auth_settings, pay_premium},
    card::{Card, SECRET},
    card_processor::{API_KEY, FakeProcessor, Form},
    db::{DbKind, on_both_databases},
    harness::plan_configs,
    localstripe::{LocalStripe, event, id},
    receipts::sign_in,
};

const PUBLIC_URL: &str = "https://pay.example";

/// The member finishing a switch at the processor: localstripe's customer and a
/// subscription as the session's `subscription_data` asked, its trial ending when the paid
/// time ends. Returns the customer's id and the subscription.
async fn finish_at_processor(stripe: &LocalStripe, form: &Form, paid_end: u64) -> (String, Value) {
    let cus = id(&stripe.customer().await, "id");
    let trial_end = paid_end.to_string();
    let sub = stripe
        .post(
            "/v1/subscriptions",
            &[
                ("customer", &cus),
                ("items[0][plan]", "price_3"),
                ("trial_end", &trial_end),
                ("metadata[wallet]", &form["subscription_data[metadata][wallet]"]),
                ("metadata[plan_id]", &form["subscription_data[metadata][plan_id]"]),
            ],
        )
        .await;
    (cus, sub)
}
const PLANS: &str = "/v1/plans";
const CARD_CHECKOUT: &str = "/v1/checkouts/card";
const METHOD: &str = "/v1/me/payment-method";
const TO_CARD: &str = "/v1/me/payment-method/card";
const TO_CRYPTO: &str = "/v1/me/payment-method/crypto";

/// Spawns the service with sign-in, the card webhook secret and, with `processor`, the
/// processor's API key pointed at it; plan 4 (VIP) is sold without a card price, and plan 3
/// (Premium) has no free trial (a switch's session, which completes with nothing paid, must
/// still be taken: it is not a trial).
async fn spawn(kind: DbKind, processor: Option<&FakeProcessor>) -> Card {
    let clock = Clock::system();
    let card = CardSettings {
        webhook_secret: Some(SECRET.to_string().into()),
        api_key: processor.map(|_| API_KEY.to_string().into()),
        api_base_url: processor.map_or_else(|| "https://api.stripe.com".to_string(), |p| p.base.clone()),
        ..Default::default()
    };
    let (state_clock, auth) = (clock.clone(), auth_settings(None));
    let http = HttpSettings { rate_limit_per_second: 0, public_url: Some(PUBLIC_URL.into()), ..Default::default() };
    let app = crate::api::App::spawn_configured(kind, http, move |state| {
        let mut configs = plan_configs();
        configs.iter_mut().filter(|p| p.id == 4).for_each(|p| p.card_price_id = None);
        configs.iter_mut().filter(|p| p.id == 3).for_each(|p| p.trial_days = 0);
        let catalog = Arc::new(Catalog::new(&configs, &state.deployment.tokens).unwrap());
        state.with_catalog(catalog).with_card(card).with_clock(state_clock).with_auth(AuthService::from_settings(&auth).unwrap())
    })
    .await;
    Card { app, clock }
}

/// `POST route` with the session cookie, `origin` and the CSRF token (as the account page
/// sends it); returns the status and body, checked against the document.
async fn post_with_cookie(card: &Card, route: &str, cookie: &str, csrf: &str, origin: &str) -> (u16, Value) {
    let app = &card.app;
    let response =
        app.client.post(format!("{}{route}", app.base)).header("cookie", cookie).header("origin", origin).header("x-csrf-token", csrf).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    app.check("POST", route, status, &body);
    (status, body)
}

/// A `checkout.session.completed` for the session `session_id` the service created, as
/// Stripe sends it once the member finished on its page: `amount_total` cents, naming the
/// processor's customer and subscription and the metadata the session carried.
fn completed(event_id: &str, session_id: &str, form: &Form, customer: &str, subscription: &str, amount_total: u64, payment_status: &str) -> Value {
    json!({
        "id": event_id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": 1_764_000_000,
        "livemode": false,
        "pending_webhooks": 1,
        "type": "checkout.session.completed",
        "data": { "object": {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "amount_subtotal": amount_total,
            "amount_total": amount_total,
            "currency": "usd",
            "customer": customer,
            "client_reference_id": form["client_reference_id"],
            "payment_status": payment_status,
            "subscription": subscription,
            "metadata": { "wallet": form["metadata[wallet]"], "plan_id": form["metadata[plan_id]"] },
        }},
    })
}

/// Asserts the metadata `form` carries on the session and its subscription.
fn assert_metadata(form: &Form, wallet: &str, plan_id: u32) {
    let price = format!("price_{plan_id}");
    for prefix in ["metadata", "subscription_data[metadata]"] {
        assert!(form[&format!("{prefix}[wallet]")].eq_ignore_ascii_case(wallet), "{prefix}[wallet]: {form:?}");
        assert_eq!(form[&format!("{prefix}[plan_id]")], plan_id.to_string(), "{form:?}");
    }
    assert!(form["client_reference_id"].eq_ignore_ascii_case(wallet), "{form:?}");
    assert_eq!((form["mode"].as_str(), form["line_items[0][price]"].as_str(), form["line_items[0][quantity]"].as_str()), ("subscription", price.as_str(), "1"));
}

/// A Premium member who paid on-chain switches to card: the session asks the processor to
/// start the card subscription at the end of the paid crypto time (`trial_end`, no free
/// trial); the processor's subscription is made exactly so at localstripe; the completed
/// session (nothing paid) grants no time and is not the wallet's trial; nothing is charged
/// until the paid time ends, and the first paid invoice then renews the plan by one period
/// from the charge. Back to crypto sets `cancel_at_period_end` at localstripe (refused from
/// another site), and the processor's `customer.subscription.updated` that follows cancels
/// the card renewal here; there is then no card subscription to cancel.
async fn a_member_switched_to_card_is_first_charged_when_the_paid_crypto_time_ends_and_never_twice(kind: DbKind) {
    // Arrange: localstripe behind the session stand-in; a Premium member paid on-chain
    let stripe = LocalStripe::start().await;
    stripe.plan("price_3", 4900, "Premium").await;
    let processor = FakeProcessor::start(Some(stripe.base())).await;
    let card = spawn(kind, Some(&processor)).await;
    let app = &card.app;
    pay_premium(app, 1).await;
    let wallet = app.wallet(1);
    let (status, _, paid_end, _) = card.subscription(&wallet).await;
    assert_eq!(status, "active");
    let (token, _, _) = sign_in(app, 1).await;
    let (code, method) = app.call("GET", METHOD, METHOD, None, Some(&token)).await;
    assert_eq!((code, method["method"].as_str(), method["can_switch_to_card"].as_bool()), (200, Some("crypto"), Some(true)), "{method}");
    assert_eq!(method["paid_until"].as_u64(), Some(paid_end), "{method}");

    // Act: switch to card
    let (code, session) = app.call("POST", TO_CARD, TO_CARD, None, Some(&token)).await;

    // Assert: the session asked for the first charge at the end of the paid time, no trial
    assert_eq!(code, 201, "{session}");
    assert_eq!((session["first_charge_at"].as_u64(), session["trial_days"].as_u64(), session["plan_id"].as_u64()), (Some(paid_end), Some(0), Some(3)));
    let session_id = session["session_id"].as_str().unwrap().to_string();
    assert!(session_id.starts_with("cs_test_"), "{session}");
    assert_eq!(session["url"].as_str().unwrap(), format!("{}/c/pay/{session_id}", processor.base));
    let forms = processor.sessions();
    assert_eq!((forms.len(), processor.refusals()), (1, Vec::<String>::new()));
    let form = &forms[0];
    assert_metadata(form, &wallet, 3);
    assert_eq!(form["subscription_data[trial_end]"], paid_end.to_string(), "{form:?}");
    assert!(!form.contains_key("subscription_data[trial_period_days]"), "no free trial on a switch: {form:?}");
    assert!(!form.contains_key("metadata[customer_ref]"), "{form:?}");
    assert_eq!(
        (form["success_url"].as_str(), form["cancel_url"].as_str()),
        ("https://pay.example/account?card=switched", "https://pay.example/account?card=canceled")
    );

    // The member pays at the processor: its customer and subscription, as subscription_data
    // asked (localstripe creates no invoice for a subscription in trial).
    let (cus, sub) = finish_at_processor(&stripe, form, paid_end).await;
    let sub_id = id(&sub, "id");
    assert_eq!(sub["trial_end"].as_u64(), Some(paid_end), "{sub}");
    let invoices = stripe.get(&format!("/v1/invoices?customer={cus}")).await;
    let charged: u64 = invoices["data"].as_array().unwrap().iter().map(|i| i["amount_paid"].as_u64().unwrap_or(0)).sum();
    assert_eq!(charged, 0, "nothing charged before the paid time ends: {invoices}");
    for own in stripe.new_events().await {
        let (status, body) = card.send(&own).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ignored")), "{} -> {body}", own["type"]);
    }
    let jobs_before = card.badge_jobs().await.len();
    let events_before = app.count("SELECT COUNT(*) FROM outbox_events").await;
    let done = completed("evt_switch_done", &session_id, form, &cus, &sub_id, 0, "no_payment_required");
    let (status, answer) = card.send(&done).await;
    assert_eq!((status, answer["status"].as_str(), answer["outcome"].as_str()), (200, Some("processed"), Some("deferred_start")), "{answer}");
    assert_eq!(card.subscription(&wallet).await.2, paid_end, "the completed switch grants no time");
    assert_eq!(card.badge_jobs().await.len(), jobs_before, "and changes no badge");
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox_events").await, events_before, "and tells nobody of a change");
    assert_eq!(app.count("SELECT COUNT(*) FROM card_trials").await, 0, "nor takes the wallet's one trial");
    let (_, replay) = card.send(&done).await;
    assert_eq!(replay["status"], "duplicate");
    let (_, method) = app.call("GET", METHOD, METHOD, None, Some(&token)).await;
    assert_eq!(
        (method["method"].as_str(), method["card_ending"].as_bool(), method["next_card_charge_at"].as_u64()),
        (Some("card"), Some(false), Some(paid_end))
    );
    let (code, again) = app.call("POST", TO_CARD, TO_CARD, None, Some(&token)).await;
    assert_eq!((code, again["error"]["code"].as_str()), (409, Some("already_paying_by_card")), "{again}");

    // The paid time ends; the processor charges the first period and sends invoice.paid.
    let now = card.clock.now();
    card.clock.advance(Duration::from_secs(paid_end + 30 - now));
    let mut invoice = stripe.next_invoice_paid(&cus, &sub_id).await;
    assert_eq!(invoice["amount_paid"].as_u64(), Some(4900), "{invoice}");
    invoice["billing_reason"] = json!("subscription_cycle");
    let before = card.clock.now();
    let (status, renewed) = card.send(&event("evt_switch_first_charge", "invoice.paid", &invoice)).await;
    let after = card.clock.now();
    assert_eq!((status, renewed["outcome"].as_str()), (200, Some("renewed")), "{renewed}");
    let (status, tier, expires, _) = card.subscription(&wallet).await;
    assert_eq!((status.as_str(), tier), ("active", 3));
    // One period from the charge (a second may tick while it is handled): the crypto time
    // was not paid again.
    assert!((before + MONTH_SECS..=after + MONTH_SECS).contains(&expires), "{expires} not one period after {before}..={after}");
    assert_eq!(app.count("SELECT COUNT(*) FROM card_grants").await, 1, "one card payment, one grant");

    // Back to crypto (signed in again: a month passed): not from another site
    let (token, cookie, csrf) = sign_in(app, 1).await;
    let (code, forged) = post_with_cookie(&card, TO_CRYPTO, &cookie, &csrf, "https://evil.example").await;
    assert_eq!((code, forged["error"]["code"].as_str()), (403, Some("csrf")), "{forged}");
    assert_eq!(stripe.get(&format!("/v1/subscriptions/{sub_id}")).await["cancel_at_period_end"], false, "a refused request changes nothing");
    let (code, back) = post_with_cookie(&card, TO_CRYPTO, &cookie, &csrf, ORIGIN).await;
    assert_eq!(code, 200, "{back}");
    assert_eq!(
        (back["card_subscription"].as_str(), back["cancel_at_period_end"].as_bool(), back["crypto_from"].as_u64()),
        (Some(sub_id.as_str()), Some(true), Some(expires))
    );
    assert_eq!(back["checkout_url"], "https://pay.example/checkout?plan=3");
    let at_processor = stripe.get(&format!("/v1/subscriptions/{sub_id}")).await;
    assert_eq!(at_processor["cancel_at_period_end"], true, "read back from localstripe: {at_processor}");
    let (status, canceled) = card.send(&event("evt_switch_back", "customer.subscription.updated", &at_processor)).await;
    assert_eq!((status, canceled["outcome"].as_str()), (200, Some("canceled")), "{canceled}");
    let (status, _, still, _) = card.subscription(&wallet).await;
    assert_eq!((status.as_str(), still), ("canceled", expires), "the card-paid period runs to its end, not renewed");
    let (_, method) = app.call("GET", METHOD, METHOD, None, Some(&token)).await;
    assert_eq!((method["method"].as_str(), method["card_ending"].as_bool(), method["crypto_from"].as_u64()), (Some("card"), Some(true), Some(expires)));
    let (code, nothing) = app.call("POST", TO_CRYPTO, TO_CRYPTO, None, Some(&token)).await;
    assert_eq!((code, nothing["error"]["code"].as_str()), (409, Some("no_card_subscription")), "{nothing}");

    // Card again later: the member's own processor customer is reused on the signed-in
    // switch (first charge at the new end), never on the public route, whose processor page
    // anyone could open for this wallet.
    let (code, again) = app.call("POST", TO_CARD, TO_CARD, None, Some(&token)).await;
    assert_eq!((code, again["first_charge_at"].as_u64()), (201, Some(expires)), "{again}");
    assert_eq!(processor.sessions().pop().unwrap().get("customer"), Some(&cus));
    let (code, public) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 3, "wallet": wallet })), None).await;
    assert_eq!(code, 201, "{public}");
    assert!(!processor.sessions().pop().unwrap().contains_key("customer"));
    assert!(processor.refusals().is_empty(), "{:?}", processor.refusals());
}
on_both_databases!(a_member_switched_to_card_is_first_charged_when_the_paid_crypto_time_ends_and_never_twice);

/// "Pay by card" on the checkout page: the catalog says which plans sell by card; a new
/// wallet's session offers the plan's free trial (`trial_period_days`), a wallet with a
/// running plan gets none; the merchant's customer reference rides in the metadata; the
/// completed trial session starts the trial, and that wallet is then refused a second card
/// subscription. Bad inputs are refused in words: unknown plan, a plan without a card
/// price, a bad wallet, a bare customer reference without the API key, a switch with no paid
/// time or too close to its end, back to crypto with no card subscription, no sign-in.
async fn pay_by_card_creates_a_subscription_session_with_the_trial_once_and_refuses_bad_input(kind: DbKind) {
    // Arrange
    let processor = FakeProcessor::start(None).await;
    let card = spawn(kind, Some(&processor)).await;
    let app = &card.app;
    let (_, plans) = app.call("GET", PLANS, PLANS, None, None).await;
    let offered: Vec<(u64, bool)> =
        plans["plans"].as_array().unwrap().iter().map(|p| (p["id"].as_u64().unwrap(), p["card_available"].as_bool().unwrap())).collect();
    assert_eq!(offered, [(1, true), (2, true), (3, true), (4, false), (13, true)], "VIP has no card price");

    // Act: a new wallet pays Basic by card
    let new_wallet = app.wallet(2);
    let (code, session) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 1, "wallet": new_wallet })), None).await;

    // Assert: subscription mode, the plan's price, its free trial
    assert_eq!(code, 201, "{session}");
    let now = card.clock.now();
    assert_eq!(session["trial_days"], 7);
    assert!(session["first_charge_at"].as_u64().unwrap().abs_diff(now + 7 * 86_400) <= 5, "{session}");
    let form = processor.sessions().pop().unwrap();
    assert_metadata(&form, &new_wallet, 1);
    assert_eq!(form["subscription_data[trial_period_days]"], "7");
    assert!(!form.contains_key("subscription_data[trial_end]"), "{form:?}");
    assert_eq!(form["success_url"], "https://pay.example/checkout?card=paid&session_id={CHECKOUT_SESSION_ID}");
    assert_eq!(form["cancel_url"], "https://pay.example/checkout?plan=1&card=canceled");

    // The member finishes the trial checkout at the processor: the trial starts.
    let session_id = session["session_id"].as_str().unwrap();
    let (status, trial) = card.send(&completed("evt_card_trial", session_id, &form, "cus_new", "sub_new", 0, "no_payment_required")).await;
    assert_eq!((status, trial["outcome"].as_str()), (200, Some("trialing")), "{trial}");
    let (code, twice) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 1, "wallet": new_wallet })), None).await;
    assert_eq!((code, twice["error"]["code"].as_str()), (409, Some("already_paying_by_card")), "{twice}");

    // A plan without a free trial offers none, to a new wallet too.
    let (code, no_trial) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 3, "wallet": app.wallet(3) })), None).await;
    assert_eq!((code, no_trial["trial_days"].as_u64()), (201, Some(0)), "{no_trial}");
    assert!(!processor.sessions().pop().unwrap().contains_key("subscription_data[trial_period_days]"));

    // A wallet with a running crypto plan: no free trial; a bare customer_ref with the key.
    pay_premium(app, 1).await;
    let member = app.wallet(1);
    let (code, paid) =
        app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 13, "wallet": member, "customer_ref": "user-42" })), Some(&app.key)).await;
    assert_eq!((code, paid["trial_days"].as_u64(), paid["first_charge_at"].as_u64()), (201, Some(0), None), "{paid}");
    let form = processor.sessions().pop().unwrap();
    assert!(!form.contains_key("subscription_data[trial_period_days]"), "{form:?}");
    assert_eq!((form["metadata[customer_ref]"].as_str(), form["subscription_data[metadata][customer_ref]"].as_str()), ("user-42", "user-42"));
    assert_eq!(form["line_items[0][price]"], "price_13");

    // Bad input on the public route
    let sessions_before = processor.sessions().len();
    for (body, status, code) in [
        (json!({ "plan_id": 99, "wallet": member }), 404, "not_found"),
        (json!({ "plan_id": 4, "wallet": member }), 409, "card_not_offered"),
        (json!({ "plan_id": 3, "wallet": "0x1234" }), 400, "invalid_request"),
        (json!({ "plan_id": 3, "wallet": "0x0000000000000000000000000000000000000000" }), 400, "invalid_request"),
        (json!({ "plan_id": 3, "wallet": member, "customer_ref": "user-42" }), 401, ""),
    ] {
        let (got, answer) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(body.clone()), None).await;
        assert_eq!(got, status, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.contains(API_KEY), "{message}");
        if !code.is_empty() {
            assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        }
    }
    let (got, unknown) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 3, "wallet": member, "extra": 1 })), None).await;
    assert!(got == 400 || got == 422, "{unknown}");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("extra"), "{unknown}");
    let (_, vip) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 4, "wallet": member })), None).await;
    assert!(vip["error"]["message"].as_str().unwrap().contains("not sold by card"), "{vip}");
    assert_eq!(processor.sessions().len(), sessions_before, "no refused request reached the processor");

    // Bad input on the member routes
    for route in [METHOD, TO_CARD, TO_CRYPTO] {
        let method = if route == METHOD { "GET" } else { "POST" };
        let (got, _) = app.call(method, route, route, None, None).await;
        assert_eq!(got, 401, "{route} without sign-in");
    }
    let (member_token, _, _) = sign_in(app, 1).await;
    let (code, none) = app.call("POST", TO_CRYPTO, TO_CRYPTO, None, Some(&member_token)).await;
    assert_eq!((code, none["error"]["code"].as_str()), (409, Some("no_card_subscription")), "{none}");
    let (nobody_token, _, _) = sign_in(app, 4).await;
    let (code, nothing) = app.call("POST", TO_CARD, TO_CARD, None, Some(&nobody_token)).await;
    assert_eq!((code, nothing["error"]["code"].as_str()), (409, Some("no_paid_time")), "{nothing}");
    let (trial_token, _, _) = sign_in(app, 2).await;
    let (code, on_card) = app.call("POST", TO_CARD, TO_CARD, None, Some(&trial_token)).await;
    assert_eq!((code, on_card["error"]["code"].as_str()), (409, Some("already_paying_by_card")), "{on_card}");
    // Less than 48 hours of paid time left: too soon for the processor to start the card then.
    let (_, _, paid_end, _) = card.subscription(&member).await;
    card.clock.advance(Duration::from_secs(paid_end - 47 * 3_600 - card.clock.now()));
    let (member_token, _, _) = sign_in(app, 1).await;
    let (_, method) = app.call("GET", METHOD, METHOD, None, Some(&member_token)).await;
    assert_eq!((method["method"].as_str(), method["can_switch_to_card"].as_bool()), (Some("crypto"), Some(false)), "{method}");
    assert!(method["switch_unavailable_reason"].as_str().unwrap().contains("48 hours"), "{method}");
    let (code, late) = app.call("POST", TO_CARD, TO_CARD, None, Some(&member_token)).await;
    assert_eq!((code, late["error"]["code"].as_str()), (409, Some("switch_too_late")), "{late}");
    assert!(late["error"]["message"].as_str().unwrap().contains("Pay by card"), "{late}");
    assert_eq!(processor.sessions().len(), sessions_before, "no refused switch reached the processor");
    assert!(processor.refusals().is_empty(), "{:?}", processor.refusals());
}
on_both_databases!(pay_by_card_creates_a_subscription_session_with_the_trial_once_and_refuses_bad_input);

/// Without `card.api_key` the catalog offers no card, and the session routes say card
/// payments are not configured (404 `card_not_configured`) instead of failing.
async fn without_a_processor_key_card_is_not_offered_and_the_routes_say_so(kind: DbKind) {
    let card = spawn(kind, None).await;
    let app = &card.app;
    let (_, plans) = app.call("GET", PLANS, PLANS, None, None).await;
    assert!(plans["plans"].as_array().unwrap().iter().all(|p| p["card_available"] == false), "{plans}");
    let (code, refused) = app.call("POST", CARD_CHECKOUT, CARD_CHECKOUT, Some(json!({ "plan_id": 3, "wallet": app.wallet(2) })), None).await;
    assert_eq!((code, refused["error"]["code"].as_str()), (404, Some("card_not_configured")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("card payments are not configured"), "{refused}");
    let (token, _, _) = sign_in(app, 1).await;
    for route in [TO_CARD, TO_CRYPTO] {
        let (code, refused) = app.call("POST", route, route, None, Some(&token)).await;
        assert_eq!((code, refused["error"]["code"].as_str()), (404, Some("card_not_configured")), "{route}: {refused}");
    }
    let (_, method) = app.call("GET", METHOD, METHOD, None, Some(&token)).await;
    assert_eq!((method["method"].as_str(), method["card_configured"].as_bool()), (Some("none"), Some(false)), "{method}");
}
on_both_databases!(without_a_processor_key_card_is_not_offered_and_the_routes_say_so);

/// The pages in headless Chromium (`web/e2e/card_switch.mjs`): "Pay by card" on the
/// checkout page, with the plan's trial shown, hands the new member to the processor's page
/// of the session the service created; on the account page a member who paid on-chain sees
/// "Paying with crypto" and "Switch to card" hands off the same way, for a session whose
/// first charge is the end of the paid time. Screenshots: `target/e2e/card-choice.png`
/// (`docs/card-choice.png` is a copy) and `target/e2e/account-payment-method.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_hand_the_member_to_the_card_processor_for_pay_by_card_and_switch_to_card() {
    // Arrange: the service on an origin the account page may sign in from
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(root.join("web/dist/checkout.js").exists(), "web/dist is not built: run tools/install.sh");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let stripe = LocalStripe::start().await;
    stripe.plan("price_3", 4900, "Premium").await;
    let processor = FakeProcessor::start(Some(stripe.base())).await;
    let card = CardSettings {
        webhook_secret: Some(SECRET.to_string().into()),
        api_key: Some(API_KEY.to_string().into()),
        api_base_url: processor.base.clone(),
        ..Default::default()
    };
    let auth = auth_settings(Some(&origin));
    let http = HttpSettings { rate_limit_per_second: 0, public_url: Some(origin.clone()), ..Default::default() };
    let app = crate::api::App::spawn_on(
        DbKind::Sqlite,
        http,
        listener,
        |h| h.rpc.clone(),
        move |state| state.with_card(card).with_auth(AuthService::from_settings(&auth).unwrap()),
    )
    .await;
    pay_premium(&app, 1).await;
    let shots = root.join("target/e2e");
    std::fs::create_dir_all(&shots).unwrap();
    let (shot, account_shot) = (shots.join("card-choice.png"), shots.join("account-payment-method.png"));
    for s in [&shot, &account_shot] {
        let _ = std::fs::remove_file(s);
    }

    // Act
    let output = tokio::process::Command::new("node")
        .arg(root.join("web/e2e/card_switch.mjs"))
        .env("BASE_URL", &origin)
        .env("RPC_URL", app.h.chain.anvil.endpoint())
        .env("NEW_ACCOUNT", app.wallet(2))
        .env("MEMBER_ACCOUNT", app.wallet(1))
        .env("HANDOFF", format!("{}/c/pay/cs_test_", processor.base))
        .env("SCREENSHOT", &shot)
        .env("ACCOUNT_SCREENSHOT", &account_shot)
        .output()
        .await
        .expect("node runs");

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && stdout.contains("e2e: ok"), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    println!("{stdout}");
    assert!(stdout.contains("e2e: card choice: Pay by card$49.00 / month7-day free trial, card only"), "{stdout}");
    let forms = processor.sessions();
    assert_eq!(forms.len(), 2, "one session per hand-off: {forms:?}");
    assert!(forms[0]["metadata[wallet]"].eq_ignore_ascii_case(&app.wallet(2)));
    assert_eq!(forms[0]["subscription_data[trial_period_days]"], "7");
    assert!(forms[1]["metadata[wallet]"].eq_ignore_ascii_case(&app.wallet(1)));
    let paid_end =
        app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{}", app.wallet(1)), None, None).await.1["expires_at"].as_u64().unwrap();
    assert_eq!(forms[1]["subscription_data[trial_end]"], paid_end.to_string());
    for s in [&shot, &account_shot] {
        assert_eq!(&std::fs::read(s).expect("the screenshot was saved")[..8], b"\x89PNG\r\n\x1a\n", "{}", s.display());
    }

    // And back: the member finished at the processor (localstripe's subscription, starting
    // when the paid time ends; the completed session), then goes back to crypto on the page;
    // the processor's update that follows is delivered as Stripe sends it.
    let session_id = stdout.lines().find_map(|l| l.strip_prefix("e2e: switch handed off to ")).and_then(|url| url.rsplit('/').next()).unwrap().to_string();
    let form = &forms[1];
    let (cus, sub) = finish_at_processor(&stripe, form, paid_end).await;
    let sub_id = id(&sub, "id");
    let sender = Card { app, clock: Clock::system() };
    for own in stripe.new_events().await {
        assert_eq!(sender.send(&own).await.0, 200);
    }
    let (status, done) = sender.send(&completed("evt_e2e_switch", &session_id, form, &cus, &sub_id, 0, "no_payment_required")).await;
    assert_eq!((status, done["outcome"].as_str()), (200, Some("deferred_start")), "{done}");
    let child = tokio::process::Command::new("node")
        .arg(root.join("web/e2e/card_switch.mjs"))
        .env("PHASE", "back")
        .env("BASE_URL", &origin)
        .env("RPC_URL", sender.app.h.chain.anvil.endpoint())
        .env("NEW_ACCOUNT", sender.app.wallet(2))
        .env("MEMBER_ACCOUNT", sender.app.wallet(1))
        .env("HANDOFF", format!("{}/c/pay/cs_test_", processor.base))
        .env("SCREENSHOT", &shot)
        .env("ACCOUNT_SCREENSHOT", &account_shot)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut delivered = false;
    for _ in 0..120 {
        let at_processor = stripe.get(&format!("/v1/subscriptions/{sub_id}")).await;
        if at_processor["cancel_at_period_end"] == true {
            let (status, canceled) = sender.send(&event("evt_e2e_back", "customer.subscription.updated", &at_processor)).await;
            assert_eq!((status, canceled["outcome"].as_str()), (200, Some("canceled")), "{canceled}");
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        delivered && output.status.success() && stdout.contains("e2e: ok"),
        "back to crypto failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("e2e: back to crypto: Paying by card until the period ends"), "{stdout}");
    println!("{stdout}");
}
