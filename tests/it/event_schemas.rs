//! Every event body the service writes matches the schema the served OpenAPI document
//! publishes for its type under `webhooks`. [`check_outbox`] validates every outbox row of
//! a test's database; the tests whose flows cause each event call it at their end, and
//! [`every_event_type_is_produced_and_matches_its_schema`] runs those flows and checks that
//! together they produced, and validated, every event type.

use std::{cell::RefCell, collections::BTreeSet, sync::OnceLock};

use alloy::primitives::Address;
use serde_json::{Value, json};
use tmai_pay::{
    billing::plans::Catalog,
    chain::deployment::TokenInfo,
    events::{EventType, schema},
    store::{Db, outbox},
};
use utoipa::OpenApi;

use crate::{
    db::{DbKind, on_both_databases},
    harness::plan_configs,
};

tokio::task_local! {
    /// The event types validated within the current scope (the union test's).
    static VALIDATED: RefCell<BTreeSet<String>>;
}

/// The served document (what `GET /openapi.json` answers, from the same function), with
/// every object schema of the events closed (`additionalProperties: false`): the published
/// schemas leave them open, since a payload may gain fields, but a field the service sends
/// today and the document does not describe is a failure here.
fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let token = |symbol: &str, byte: u8, decimals: u8| TokenInfo { symbol: symbol.into(), address: Address::repeat_byte(byte), decimals, permit: true };
        let tokens = [token("TMAI", 1, 18), token("USD", 2, 6)];
        let catalog = Catalog::new(&plan_configs(), &tokens).unwrap();
        let base = serde_json::to_value(tmai_pay::http::ApiDoc::openapi()).unwrap();
        let mut doc = tmai_pay::http::document::served(&base, &catalog, &tokens);
        for (name, _) in schema::components() {
            close(&mut doc["components"]["schemas"][name.as_str()]);
        }
        doc
    })
}

/// Sets `additionalProperties: false` on every object schema with properties in `schema`.
fn close(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close);
        }
        Value::Array(items) => items.iter_mut().for_each(close),
        _ => {}
    }
}

/// Returns the errors of `body` (a stored event body) against the document's webhook of
/// `event_type`.
pub(crate) fn errors(doc: &Value, event_type: &str, body: &Value) -> Vec<String> {
    let hook = &doc["webhooks"][event_type]["post"];
    assert!(hook.is_object(), "the document publishes no webhook {event_type}");
    let schema = &hook["requestBody"]["content"]["application/json"]["schema"];
    let root = json!({ "$ref": "#/x", "x": schema, "components": doc["components"] });
    let validator = jsonschema::validator_for(&root).unwrap();
    let mut errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path)).collect();
    // `data` is the payload's fields (closed above) and the `customer_ref` beside them (the
    // second member of its `allOf`): checked on its own, and the payload without it.
    if let Some(customer_ref) = body["data"].get("customer_ref") {
        let member = &schema_of(doc, schema)["properties"]["data"]["allOf"][1];
        let only = json!({ "customer_ref": customer_ref });
        errors = jsonschema::validator_for(member).unwrap().iter_errors(&only).map(|e| format!("{e} at /data{}", e.instance_path)).collect();
        let mut rest = body.clone();
        rest["data"].as_object_mut().unwrap().remove("customer_ref");
        errors.extend(validator.iter_errors(&rest).map(|e| format!("{e} at {}", e.instance_path)));
    }
    errors
}

/// Returns the envelope schema a webhook's body `$ref`s.
fn schema_of<'a>(doc: &'a Value, schema: &Value) -> &'a Value {
    let name = schema["$ref"].as_str().unwrap().trim_start_matches("#/components/schemas/");
    &doc["components"]["schemas"][name]
}

/// Validates every event in `db` against the served document's webhook schema of its type
/// (failing the test at the first that does not match); returns the types seen.
pub(crate) async fn check_outbox(db: &Db) -> BTreeSet<String> {
    let events = outbox::all(db.pool()).await.unwrap();
    let mut seen = BTreeSet::new();
    for e in &events {
        let errors = errors(document(), &e.event_type, &e.payload);
        assert!(errors.is_empty(), "event {} ({}) does not match its published schema: {errors:?}\n{}", e.id, e.event_type, e.payload);
        seen.insert(e.event_type.clone());
    }
    let _ = VALIDATED.try_with(|v| v.borrow_mut().extend(seen.iter().cloned()));
    seen
}

/// Returns a `payment.confirmed` payload numbered `n` whose payment key carries `pad`
/// characters more, for tests of storage and delivery that need some event.
pub(crate) fn sample(n: u64, pad: usize) -> tmai_pay::events::PaymentConfirmed {
    tmai_pay::events::PaymentConfirmed {
        block_number: n,
        checkout_id: None,
        confirmations: 3,
        order_id: tmai_pay::ids::OrderId::issued(n as i64),
        payer: Address::repeat_byte(0xaa),
        payment: format!("31337:{n}:{}", "x".repeat(pad)),
        rate_usd: None,
        receipt_url: None,
        tx_hash: alloy::primitives::B256::repeat_byte(1),
        usd_value: None,
    }
}

/// The flows that cause the events, run one after the other, each validating its outbox;
/// together they produce every event type.
async fn every_event_type_is_produced_and_matches_its_schema(kind: DbKind) {
    let validated = VALIDATED
        .scope(RefCell::new(BTreeSet::new()), async move {
            crate::watcher::a_paid_checkout_confirms_after_n_blocks_and_activates_the_plan(kind).await;
            crate::watcher::a_renewal_extends_from_the_current_expiry(kind).await;
            crate::watcher::a_reorg_that_drops_a_detected_payment_never_activates_it(kind).await;
            crate::watcher::a_payment_for_an_unknown_order_is_recorded_and_reported_not_activated(kind).await;
            crate::api::a_downgrade_checkouts_stream_ends_when_the_plan_is_active(kind).await;
            crate::members::member_actions_change_the_subscription_badge_and_events(kind).await;
            crate::members::a_refund_ends_the_plan_the_payment_bought(kind).await;
            crate::account::a_member_schedules_a_switch_and_undoes_it(kind).await;
            crate::renewals::a_mandate_renews_the_plan_once_per_period(kind).await;
            crate::renewals::a_failing_renewal_says_why_and_a_revoked_mandate_ends(kind).await;
            crate::renewals::bad_mandates_are_refused_and_turning_off_stops_the_renewer(kind).await;
            crate::reminders::reminders_fire_once_per_period(kind).await;
            crate::card::a_card_checkout_starts_a_trial_renews_and_cancels(kind).await;
            crate::card::a_failed_card_renewal_is_past_due_until_paid_or_expired(kind).await;
            crate::card::a_card_subscription_update_changes_the_plan_and_cancels(kind).await;
            crate::deep_reorgs::a_confirmed_payment_the_chain_drops_is_reported_and_what_it_bought_taken_back(kind).await;
            crate::minter::revoke_move_and_impossible_jobs(kind).await;
            crate::minter::a_thousand_wallets_get_one_badge_each(kind).await;
            VALIDATED.with(|v| v.borrow().clone())
        })
        .await;
    let all: BTreeSet<String> = EventType::names().map(str::to_string).collect();
    let missing: Vec<&String> = all.difference(&validated).collect();
    assert!(missing.is_empty(), "no flow produced (and validated) {missing:?}");
}
on_both_databases!(every_event_type_is_produced_and_matches_its_schema);

/// The running service serves the webhooks this module validates against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_publishes_every_webhook() {
    let app = crate::api::App::spawn(DbKind::Sqlite).await;
    let mut served = app.doc.clone();
    for (name, _) in schema::components() {
        close(&mut served["components"]["schemas"][name.as_str()]);
    }
    assert_eq!(served["webhooks"], document()["webhooks"]);
    for (name, _) in schema::components() {
        assert_eq!(served["components"]["schemas"][name.as_str()], document()["components"]["schemas"][name.as_str()], "{name}");
    }
    let names: BTreeSet<&str> = served["webhooks"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names, EventType::names().collect::<BTreeSet<_>>());
}

/// The check can fail: a body that lacks a field, has one of the wrong type, or has one
/// the schema does not describe is refused.
#[test]
fn a_body_unlike_its_schema_is_refused() {
    let body = json!({
        "id": "evt_000000000001aaaaaaaaaaaa",
        "type": "payment.refunded",
        "data": {
            "amount": "1000", "checkout_id": null, "note": "goodwill", "order_id": "1",
            "payer": format!("{}", Address::repeat_byte(3)), "payment": "31337:0x01:0", "payment_id": 1, "plan_id": 1,
            "refunded_at": 1_700_000_000u64, "token": format!("{}", Address::repeat_byte(1)),
            "tx_hash": format!("{}", alloy::primitives::B256::repeat_byte(4)),
        }
    });
    assert_eq!(errors(document(), "payment.refunded", &body), Vec::<String>::new());
    let mut missing = body.clone();
    missing["data"].as_object_mut().unwrap().remove("note");
    let mut retyped = body.clone();
    retyped["data"]["payment_id"] = json!("1");
    let mut extra = body.clone();
    extra["data"]["surprise"] = json!(true);
    let mut renamed = body.clone();
    renamed["type"] = json!("payment.confirmed");
    for bad in [missing, retyped, extra, renamed] {
        assert!(!errors(document(), "payment.refunded", &bad).is_empty(), "{bad}");
    }
}
