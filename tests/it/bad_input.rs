//! What schemathesis (`scripts/schemathesis`) found, kept as regression tests on the real
//! service: the served OpenAPI document states every constraint the API enforces, so a
//! request the document calls valid is accepted and one it calls invalid is refused with
//! a 4xx it documents; the card webhook without a secret answers a documented 404, not a
//! 5xx; the document links the operations that create ids to those that take them.

use serde_json::{Value, json};
use tmai_pay::config::HttpSettings;

use crate::{
    api::App,
    db::{DbKind, on_both_databases},
    webhooks::settings,
};

/// Whether `value` validates against `schema` (which may `$ref` the document's components).
fn valid(doc: &Value, schema: &Value, value: &Value) -> bool {
    let root = json!({ "$ref": "#/x", "x": schema, "components": doc["components"] });
    jsonschema::validator_for(&root).unwrap().is_valid(value)
}

fn body_schema<'a>(doc: &'a Value, route: &str, method: &str) -> &'a Value {
    &doc["paths"][route][method]["requestBody"]["content"]["application/json"]["schema"]
}

fn path_schema<'a>(doc: &'a Value, route: &str, method: &str, name: &str) -> &'a Value {
    let params = doc["paths"][route][method]["parameters"].as_array().unwrap();
    &params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{method} {route} documents no {name}"))["schema"]
}

/// Sends `body` to `route`; asserts the document's verdict is `expect_valid` and the API
/// agrees: a valid body is not refused as bad input, an invalid one is (400 or 422).
async fn agrees(app: &App, method: &str, route: &str, path: &str, body: Value, expect_valid: bool) {
    let doc_valid = valid(&app.doc, body_schema(&app.doc, route, &method.to_lowercase()), &body);
    assert_eq!(doc_valid, expect_valid, "the document's verdict on {method} {route} {body}");
    let (status, answer) = app.call(method, route, path, Some(body.clone()), Some(&app.key)).await;
    if expect_valid {
        assert!(status != 400 && status != 422 && status < 500, "{method} {route} refused valid {body}: {status} {answer}");
    } else {
        assert!(status == 400 || status == 422, "{method} {route} took invalid {body}: {status} {answer}");
    }
}

async fn the_document_states_what_the_api_enforces(kind: DbKind) {
    let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, |state| state.with_webhooks(settings(true))).await;
    let wallet = app.wallet(1);
    let checkout = |plan: Value, token: &str, wallet: &str, periods: Value| json!({ "plan_id": plan, "token": token, "wallet": wallet, "periods": periods });
    let zero = format!("0x{}", "0".repeat(40));

    // Checkouts: plan ids and tokens are the catalog's enums; periods 1–36; a non-zero address.
    for (body, ok) in [
        (checkout(json!(3), "TMAI", &wallet, json!(36)), true),
        (checkout(json!(1), "USD", &wallet, json!(1)), true),
        (checkout(json!(0), "TMAI", &wallet, json!(1)), false),
        (checkout(json!(3), "DOGE", &wallet, json!(1)), false),
        (checkout(json!(3), "TMAI", &wallet, json!(37)), false),
        (checkout(json!(3), "TMAI", &wallet, json!(0)), false),
        (checkout(json!(3), "TMAI", "", json!(1)), false),
        (checkout(json!(3), "TMAI", &zero, json!(1)), false),
    ] {
        agrees(&app, "POST", "/v1/checkouts", "/v1/checkouts", body, ok).await;
    }

    // Wallets in paths: the zero address and non-addresses are outside the pattern and refused.
    let pattern = path_schema(&app.doc, "/v1/subscriptions/{wallet}", "get", "wallet");
    for (text, ok) in [(wallet.as_str(), true), ("0", false), (zero.as_str(), false)] {
        assert_eq!(valid(&app.doc, pattern, &json!(text)), ok, "{text}");
        let (status, body) = app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{text}"), None, None).await;
        assert_eq!(status == 400, !ok, "{text}: {status} {body}");
    }

    // Comp grants: days 1–3650, a reason that is not blank and at most 500 characters.
    let comp = format!("/v1/members/{wallet}/comp");
    for (body, ok) in [
        (json!({ "days": 0, "reason": "x" }), false),
        (json!({ "days": 3651, "reason": "x" }), false),
        (json!({ "days": 1, "reason": "" }), false),
        (json!({ "days": 1, "reason": "   " }), false),
        (json!({ "days": 1, "reason": "x".repeat(501) }), false),
    ] {
        agrees(&app, "POST", "/v1/members/{wallet}/comp", &comp, body, ok).await;
    }
    // Valid per the document; refused only because the wallet has no subscription (404).
    agrees(&app, "POST", "/v1/members/{wallet}/comp", &comp, json!({ "days": 3650, "reason": "x".repeat(500) }), true).await;
    agrees(&app, "POST", "/v1/payments/{id}/refund", "/v1/payments/1/refund", json!({ "note": "" }), false).await;

    // Webhook endpoints: an http(s) URL the service can parse, a filter of known events.
    for (body, ok) in [
        (json!({ "url": "http://127.0.0.1:9/hook", "event_types": ["subscription.*", "payment.confirmed"] }), true),
        (json!({ "url": "https://example.com" }), true),
        (json!({ "url": "x" }), false),
        (json!({ "url": "https://\u{a8}\u{a1}/" }), false),
        // A host the URL parser takes (`*` is no forbidden host character) but the
        // document's pattern does not: found by schemathesis.
        (json!({ "url": "https://251.227.240.252*" }), false),
        (json!({ "url": "http://127.0.0.1:9/", "event_types": [] }), false),
        (json!({ "url": "http://127.0.0.1:9/", "event_types": [""] }), false),
        (json!({ "url": "http://127.0.0.1:9/", "description": "x".repeat(501) }), false),
    ] {
        agrees(&app, "POST", "/v1/webhook-endpoints", "/v1/webhook-endpoints", body, ok).await;
    }
    let (_, created) = app.call("POST", "/v1/webhook-endpoints", "/v1/webhook-endpoints", Some(json!({ "url": "http://127.0.0.1:9/" })), Some(&app.key)).await;
    let endpoint = format!("/v1/webhook-endpoints/{}", created["endpoint"]["id"].as_str().unwrap());
    agrees(&app, "PATCH", "/v1/webhook-endpoints/{id}", &endpoint, json!({ "event_types": [] }), false).await;
    agrees(&app, "PATCH", "/v1/webhook-endpoints/{id}", &endpoint, json!({ "event_types": ["badge.*"] }), true).await;

    // A body that is not JSON answers a documented 415.
    let response = app.client.patch(format!("{}{endpoint}", app.base)).bearer_auth(&app.key).body("{}").send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 415, "{body}");
    app.check("PATCH", "/v1/webhook-endpoints/{id}", status, &body);

    // List routes: page sizes 1–500 and status names, as documented.
    let limit = &app.doc["paths"]["/v1/payments"]["get"]["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap()["schema"];
    assert!(!valid(&app.doc, limit, &json!(501)) && valid(&app.doc, limit, &json!(500)));
    for (query, ok) in [("limit=500", true), ("limit=501", false), ("limit=0", false), ("status=confirmed", true), ("status=paid", false)] {
        let (status, body) = app.call("GET", "/v1/payments", &format!("/v1/payments?{query}"), None, Some(&app.key)).await;
        assert_eq!(status == 200, ok, "{query}: {status} {body}");
    }
}
on_both_databases!(the_document_states_what_the_api_enforces);

/// The card webhook with no secret configured: a documented 404 `card_not_configured` for a
/// signed event, a 400 for an unsigned one; never a 5xx.
async fn an_unconfigured_card_webhook_is_not_a_server_error(kind: DbKind) {
    let app = App::spawn(kind).await;
    let url = format!("{}/v1/card/webhook", app.base);
    let signed = app.client.post(&url).header("Stripe-Signature", "t=1,v1=00").json(&json!({ "id": "evt_1" })).send().await.unwrap();
    let status = signed.status().as_u16();
    let body: Value = signed.json().await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("card_not_configured")), "{body}");
    app.check("POST", "/v1/card/webhook", status, &body);
    let unsigned = app.client.post(&url).json(&json!(null)).send().await.unwrap();
    let status = unsigned.status().as_u16();
    let body: Value = unsigned.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    app.check("POST", "/v1/card/webhook", status, &body);
}
on_both_databases!(an_unconfigured_card_webhook_is_not_a_server_error);

/// The served document: the catalog's plans and tokens, links from the operations that
/// create ids, and no `/readyz` (the operations listener serves it, not this one).
async fn the_served_document_carries_the_running_services_data(kind: DbKind) {
    let app = App::spawn(kind).await;
    let checkout = &app.doc["components"]["schemas"]["CreateCheckout"]["properties"];
    let plans: Vec<u64> = app.h.catalog.plans().map(|p| u64::from(p.id)).collect();
    assert_eq!(checkout["plan_id"]["enum"], json!(plans));
    assert_eq!(checkout["token"]["enum"], json!(["TMAI", "USD"]));
    assert!(app.doc["paths"]["/readyz"].is_null());
    let (status, _) = app.call("GET", "/healthz", "/healthz", None, None).await;
    assert_eq!(status, 200);
    let links = &app.doc["paths"]["/v1/checkouts"]["post"]["responses"]["201"]["links"];
    assert_eq!(links.as_object().map(|l| l.len()), Some(2), "{links}");
    let links = &app.doc["paths"]["/v1/webhook-endpoints"]["post"]["responses"]["201"]["links"];
    assert_eq!(links.as_object().map(|l| l.len()), Some(6), "{links}");
}
on_both_databases!(the_served_document_carries_the_running_services_data);
