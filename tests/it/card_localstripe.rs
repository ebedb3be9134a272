//! Card payments in, with the processor's own objects: the invoices, subscriptions and
//! charges come from localstripe (a fake Stripe, tests/it/localstripe.rs), and the events
//! reach `POST /v1/card/webhook` in the order Stripe sends them.
//!
//! What localstripe emits itself (`customer.subscription.created`, `invoice.created`,
//! `invoice.payment_succeeded`, `payment_intent.succeeded`, …) is sent as it is. What it
//! does not emit is its object wrapped in Stripe's event envelope ([`event`]):
//! `invoice.paid` (sent right before each `invoice.payment_succeeded`, with the same
//! invoice, as Stripe sends both; localstripe leaves `billing_reason` null, so it is set),
//! `customer.subscription.updated` (the subscription localstripe returns from the update)
//! and `charge.refunded` (the charge after localstripe's refund). Checkout Sessions are not
//! in localstripe: they are built by hand in Stripe's documented shape, naming localstripe's
//! customer, subscription, invoice and payment intent.

use std::time::Duration;

use serde_json::{Value, json};
use tmai_pay::billing::plans::MONTH_SECS;

use crate::{
    card::{Card, cents, paid_session, payment_session},
    db::{DbKind, on_both_databases},
    localstripe::{LocalStripe, event, id},
};

const DAY: u64 = 86_400;

/// Creates the test catalog's card prices at localstripe (`harness::plan_configs`:
/// `card_price_id` `price_<id>` at `card_price_cents`), so its objects name them.
async fn catalog(stripe: &LocalStripe) {
    for (plan, name) in [(1, "Basic"), (2, "Plus"), (3, "Premium"), (4, "VIP"), (13, "Premium yearly")] {
        stripe.plan(&format!("price_{plan}"), cents(plan), name).await;
    }
}

/// Sends localstripe's events since the last call to the service in localstripe's order,
/// each `invoice.payment_succeeded` preceded by Stripe's `invoice.paid` of the same invoice
/// with `billing_reason` `reason`. Every event localstripe emitted must be answered
/// `ignored` (the service acts on none of those types); returns the answers to the
/// `invoice.paid` events.
async fn deliver(card: &Card, stripe: &LocalStripe, reason: &str) -> Vec<(u16, Value)> {
    let mut paid = Vec::new();
    for own in stripe.new_events().await {
        if own["type"] == "invoice.payment_succeeded" {
            let mut invoice = own["data"]["object"].clone();
            assert_eq!(invoice["billing_reason"], Value::Null, "localstripe now sets billing_reason: {invoice}");
            invoice["billing_reason"] = json!(reason);
            paid.push(card.send(&event(&format!("{}_paid", id(&own, "id")), "invoice.paid", &invoice)).await);
        }
        let (status, body) = card.send(&own).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ignored")), "{} -> {body}", own["type"]);
    }
    paid
}

/// A `checkout.session.completed` (subscription mode, paid `amount_total`) for `wallet` and
/// `plan_id`, naming localstripe's subscription, customer and first invoice.
fn subscription_checkout(id: &str, wallet: &str, plan_id: u32, subscription: &Value, amount_total: u64) -> Value {
    let mut session = paid_session(id, wallet, plan_id, subscription["id"].as_str().unwrap(), amount_total);
    session["data"]["object"]["customer"] = subscription["customer"].clone();
    session["data"]["object"]["invoice"] = subscription["latest_invoice"].clone();
    session
}

/// (amount, proration, plan id) of each line of a localstripe invoice.
fn lines(invoice: &Value) -> Vec<(i64, bool, String)> {
    invoice["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["amount"].as_i64().unwrap(), l["proration"].as_bool().unwrap(), id(&l["plan"], "id")))
        .collect()
}

/// The localstripe version of `card::a_plan_changed_at_the_processor_is_paid_once`: a
/// Premium member moves to Basic mid-period at the processor; the renewal invoice, whose
/// proration line credits the unused Premium, collects nothing and grants nothing; the next
/// one, charged the Basic price, grants a Basic month; that charge refunded takes it back.
async fn a_plan_changed_at_localstripe_is_paid_once(kind: DbKind) {
    let stripe = LocalStripe::start().await;
    catalog(&stripe).await;
    let card = Card::spawn(kind).await;
    let wallet = card.app.wallet(1);
    let customer = id(&stripe.customer().await, "id");

    // Premium by Checkout: localstripe creates the subscription and charges its first
    // invoice; Stripe sends the invoice's events, then the session.
    let sub = stripe.subscribe(&customer, "price_3").await;
    let sub_id = id(&sub, "id");
    let first = deliver(&card, &stripe, "subscription_create").await;
    assert_eq!(first.len(), 1, "one paid invoice: {first:?}");
    assert_eq!((first[0].0, first[0].1["outcome"].as_str()), (200, Some("first_invoice")), "{:?}", first[0]);
    let (status, body) = card.send(&subscription_checkout("evt_ls_cs", &wallet, 3, &sub, 4900)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let (_, tier, premium_end, _) = card.subscription(&wallet).await;
    assert_eq!(tier, 3);

    // Ten days in, Basic at the processor: the updated subscription names price_1 (as the
    // legacy `plan` of its item); scheduled here for the period's end.
    card.clock.advance(Duration::from_secs(10 * DAY));
    let changed = stripe.change_plan(&sub, "price_1").await;
    assert_eq!(changed["items"]["data"][0]["plan"]["id"], "price_1", "{changed}");
    let (status, body) = card.send(&event("evt_ls_downgrade", "customer.subscription.updated", &changed)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("downgrade_scheduled")), "{body}");
    assert!(deliver(&card, &stripe, "subscription_update").await.is_empty());

    // The renewal at the period's end: localstripe's invoice has the Basic line (900) and the
    // unused Premium credited as a proration line (localstripe credits the whole previous
    // invoice, -4900, where Stripe credits the unused share, -3267 in the hand-made test):
    // nothing charged, and nothing granted.
    card.clock.advance(Duration::from_secs(premium_end - card.clock.now() + 60));
    let renewal = stripe.next_invoice_paid(&customer, &sub_id).await;
    assert_eq!(lines(&renewal), [(900, false, "price_1".into()), (-4900, true, "price_3".into())], "{renewal}");
    assert_eq!(renewal["amount_paid"], 0);
    let answers = deliver(&card, &stripe, "subscription_cycle").await;
    assert_eq!(answers.len(), 1);
    let (status, body) = &answers[0];
    assert_eq!((*status, body["status"].as_str(), body["outcome"].as_str()), (200, Some("acknowledged"), Some("nothing_collected")), "{body}");
    card.assert_the_credit_bought_nothing(&wallet, 1).await;

    // The next cycle is charged the Basic price: a Basic month (the plan had ended, so it
    // starts again).
    card.clock.advance(Duration::from_secs(MONTH_SECS));
    let next = stripe.next_invoice_paid(&customer, &sub_id).await;
    assert_eq!((lines(&next), next["amount_paid"].as_u64()), (vec![(900, false, "price_1".into())], Some(900)), "{next}");
    let answers = deliver(&card, &stripe, "subscription_cycle").await;
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].0, answers[0].1["outcome"].as_str()), (200, Some("activated")), "{:?}", answers[0]);
    let now = card.clock.now();
    let (status, tier, end, _) = card.subscription(&wallet).await;
    assert_eq!((status.as_str(), tier), ("active", 1));
    assert!((now + MONTH_SECS - 1..=now + MONTH_SECS + 1).contains(&end), "{end} vs {now}");

    // That charge refunded in full at localstripe (found by the invoice's payment intent):
    // the month is taken back and the plan ends.
    let charge = id(&next["charge"], "id");
    stripe.refund(&charge, 900).await;
    let refunded = stripe.charge(&charge).await;
    assert_eq!((refunded["amount_refunded"].as_u64(), refunded["refunded"].as_bool()), (Some(900), Some(true)), "{refunded}");
    let (status, body) = card.send(&event("evt_ls_refund", "charge.refunded", &refunded)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("taken_back")), "{body}");
    let (status, _, end, _) = card.subscription(&wallet).await;
    // Ended at the refund's moment: the clock may have ticked a second since.
    assert_eq!(status, "expired");
    assert!(card.clock.now().abs_diff(end) <= 1, "{end} vs {}", card.clock.now());
    crate::event_schemas::check_outbox(&card.app.h.test_db.db).await;
}
on_both_databases!(a_plan_changed_at_localstripe_is_paid_once);

/// Refunds made at localstripe, sent as `charge.refunded` with its charge (whose
/// `amount_refunded` is the total so far): half a refund takes back half the month, the rest
/// ends the plan. Both for a Checkout subscription's first payment (the charge names only
/// its payment intent, which the service learns from the first invoice, sent before the
/// session) and for a one-time Checkout payment.
async fn refunds_at_localstripe_take_back_what_they_paid_for(kind: DbKind) {
    let stripe = LocalStripe::start().await;
    catalog(&stripe).await;
    let card = Card::spawn(kind).await;
    let customer = stripe.customer().await;
    let customer_id = id(&customer, "id");

    // A Checkout subscription to Premium, its first invoice paid 4900.
    let subscribed = card.app.wallet(1);
    let sub = stripe.subscribe(&customer_id, "price_3").await;
    let first = deliver(&card, &stripe, "subscription_create").await;
    assert_eq!((first.len(), first[0].1["outcome"].as_str()), (1, Some("first_invoice")), "{first:?}");
    let (status, body) = card.send(&subscription_checkout("evt_ls_rf_cs", &subscribed, 3, &sub, 4900)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let charge = id(&stripe.invoice(&id(&sub, "latest_invoice")).await["charge"], "id");
    refund_half_then_the_rest(&card, &stripe, &subscribed, &charge, "evt_ls_rf_sub").await;

    // A one-time Checkout payment of the Premium price: Stripe sends the payment intent's
    // events, then the session naming it.
    let paid = card.app.wallet(2);
    let intent = stripe.payment(&customer, 4900).await;
    assert!(deliver(&card, &stripe, "manual").await.is_empty(), "no invoice for a one-time payment");
    let mut session = payment_session("evt_ls_pay", &paid, 3, 4900);
    session["data"]["object"]["payment_intent"] = intent["id"].clone();
    session["data"]["object"]["customer"] = json!(customer_id);
    let (status, body) = card.send(&session).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("activated")), "{body}");
    let charge = id(&intent["latest_charge"], "id");
    refund_half_then_the_rest(&card, &stripe, &paid, &charge, "evt_ls_rf_pay").await;
    crate::event_schemas::check_outbox(&card.app.h.test_db.db).await;
}
on_both_databases!(refunds_at_localstripe_take_back_what_they_paid_for);

/// Refunds half of the Premium `charge` at localstripe, then the rest, each sent as
/// `charge.refunded`: half the month comes off `wallet`'s plan, then the plan ends now.
async fn refund_half_then_the_rest(card: &Card, stripe: &LocalStripe, wallet: &str, charge: &str, event_id: &str) {
    let (_, _, end, _) = card.subscription(wallet).await;
    stripe.refund(charge, 2450).await;
    let half = stripe.charge(charge).await;
    assert_eq!((half["amount"].as_u64(), half["amount_refunded"].as_u64(), half["refunded"].as_bool()), (Some(4900), Some(2450), Some(false)), "{half}");
    let (status, body) = card.send(&event(&format!("{event_id}_1"), "charge.refunded", &half)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("taken_back")), "{body}");
    let (status, _, after_half, _) = card.subscription(wallet).await;
    assert_eq!((status.as_str(), after_half), ("active", end - MONTH_SECS / 2));

    stripe.refund(charge, 2450).await;
    let all = stripe.charge(charge).await;
    assert_eq!((all["amount_refunded"].as_u64(), all["refunded"].as_bool()), (Some(4900), Some(true)), "{all}");
    // The plan ends at the moment the refund is handled: between the clock's readings before
    // and after it (a second may tick in between).
    let before = card.clock.now();
    let (status, body) = card.send(&event(&format!("{event_id}_2"), "charge.refunded", &all)).await;
    let after = card.clock.now();
    assert_eq!((status, body["outcome"].as_str()), (200, Some("taken_back")), "{body}");
    let (status, _, ended, _) = card.subscription(wallet).await;
    assert_eq!(status, "expired");
    assert!((before..=after).contains(&ended), "the plan ends when the refund is handled: {ended} not in {before}..={after}");
    assert_eq!(card.badge_jobs().await.last().unwrap().0, "revoke");
}
