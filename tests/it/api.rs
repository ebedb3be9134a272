//! The HTTP API on a real anvil and a real database, served on port 0: every route, bad
//! input for each, API keys, rate limits, the progress stream, and every response checked
//! against the OpenAPI document the server itself serves.

use std::time::Duration;

use alloy::{
    network::EthereumWallet,
    providers::{DynProvider, Provider, ProviderBuilder},
};
use futures::StreamExt;
use serde_json::{Value, json};
use tmai_pay::{
    chain::{
        devnet,
        minter::{Minter, MinterConfig},
    },
    config::HttpSettings,
    http::{AppState, keys, ops_router, router, serve},
};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{DbKind, on_both_databases},
    harness::{CONFIRMATIONS, Harness},
};

pub(crate) struct App {
    pub(crate) h: Harness,
    pub(crate) base: String,
    /// The operations listener (`/metrics`, `/readyz`).
    pub(crate) ops: String,
    pub(crate) client: reqwest::Client,
    pub(crate) key: String,
    pub(crate) doc: Value,
    pub(crate) state: AppState,
    cancel: CancellationToken,
}

impl Drop for App {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl App {
    pub(crate) async fn spawn(kind: DbKind) -> Self {
        Self::spawn_with(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }).await
    }

    pub(crate) async fn spawn_with(kind: DbKind, http: HttpSettings) -> Self {
        Self::spawn_configured(kind, http, |state| state).await
    }

    /// Spawns the API with the state adjusted by `configure` (clock, webhook and card settings).
    pub(crate) async fn spawn_configured(kind: DbKind, http: HttpSettings, configure: impl FnOnce(AppState) -> AppState) -> Self {
        Self::spawn_through(kind, http, |h| h.rpc.clone(), configure).await
    }

    /// Spawns the API reading the chain through the provider `provider` makes (a proxy in
    /// front of the harness's anvil, say), with the state adjusted by `configure`.
    pub(crate) async fn spawn_through(
        kind: DbKind,
        http: HttpSettings,
        provider: impl FnOnce(&Harness) -> DynProvider,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::spawn_on(kind, http, listener, provider, configure).await
    }

    /// [`Self::spawn_through`] on `listener`, bound by the caller (whose origin a browser
    /// test must allow before the service starts).
    pub(crate) async fn spawn_on(
        kind: DbKind,
        http: HttpSettings,
        listener: tokio::net::TcpListener,
        provider: impl FnOnce(&Harness) -> DynProvider,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let h = Harness::start(kind).await;
        let cancel = CancellationToken::new();
        let d = h.chain.deployment.clone();
        let mut http = http;
        http.public_rpc_url = Some(h.chain.anvil.endpoint());
        let state =
            AppState::new(h.test_db.db.clone(), h.catalog.clone(), d, provider(&h), CONFIRMATIONS, http, cancel.clone()).with_quotes(Some(h.quotes.clone()));
        let state = configure(state);
        let base = format!("http://{}", listener.local_addr().unwrap());
        let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops = format!("http://{}", ops_listener.local_addr().unwrap());
        tokio::spawn(serve(listener, router(state.clone()), cancel.clone()));
        tokio::spawn(serve(ops_listener, ops_router(state.clone()), cancel.clone()));
        let (_, key) = keys::create(&h.test_db.db, "tests", state.clock.now() as i64).await.unwrap();
        let client = reqwest::Client::new();
        let doc: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
        Self { h, base, ops, client, key, doc, state, cancel }
    }

    pub(crate) fn minter(&self) -> Minter {
        let d = &self.h.chain.deployment;
        let mut config = MinterConfig::new(d.chain_id, d.badge, CONFIRMATIONS);
        config.poll_interval = Duration::from_millis(50);
        let provider = ProviderBuilder::new().connect_http(self.h.chain.anvil.endpoint_url()).erased();
        Minter::new(self.h.test_db.db.clone(), provider, EthereumWallet::from(devnet::key(&self.h.chain.anvil, devnet::ISSUER)), config)
    }

    /// Sends a request; returns the status and the JSON body, after checking the body
    /// against the OpenAPI document's schema for that route, method and status.
    pub(crate) async fn call(&self, method: &str, route: &str, path: &str, body: Option<Value>, key: Option<&str>) -> (u16, Value) {
        let mut request = self.client.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        self.check(method, route, status, &body);
        (status, body)
    }

    /// Fails unless `body` validates against the documented schema of the response.
    pub(crate) fn check(&self, method: &str, route: &str, status: u16, body: &Value) {
        let op = &self.doc["paths"][route][method.to_lowercase()];
        assert!(op.is_object(), "{method} {route} is not in the OpenAPI document");
        let response = &op["responses"][status.to_string()];
        assert!(response.is_object(), "{method} {route} answered {status}, which the OpenAPI document does not list: {body}");
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            return;
        }
        let root = json!({ "$ref": "#/x", "x": schema, "components": self.doc["components"] });
        let validator = jsonschema::validator_for(&root).unwrap();
        let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{method} {route} {status}: body does not match the OpenAPI schema: {errors:?}\n{body}");
    }

    pub(crate) fn wallet(&self, i: usize) -> String {
        self.h.wallet(i).to_string()
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        self.h.count(sql).await
    }
}

pub(crate) fn checkout_body(app: &App, wallet: usize) -> Value {
    json!({ "plan_id": 3, "token": "TMAI", "wallet": app.wallet(wallet), "periods": 1 })
}

/// A checkout from quote to badge through the API, every response checked against the
/// served OpenAPI document.
async fn a_checkout_goes_from_quote_to_badge_through_the_api(kind: DbKind) {
    // Arrange
    let app = App::spawn(kind).await;
    assert_eq!(app.doc["openapi"], "3.1.0");
    let (status, plans) = app.call("GET", "/v1/plans", "/v1/plans", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(plans["plans"].as_array().unwrap().len(), 5);
    assert_eq!(plans["chain"]["id"], 31337);

    // Act 1: create a checkout
    let (status, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 1)), None).await;
    assert_eq!(status, 201, "{checkout}");
    let id = checkout["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chk_"));
    assert_eq!(checkout["amount"], "400000000000000000000");
    assert_eq!(checkout["progress"]["stage"], "open");
    let route = "/v1/checkouts/{id}";
    let (status, again) = app.call("GET", route, &format!("/v1/checkouts/{id}"), None, None).await;
    assert_eq!((status, &again["signature"]), (200, &checkout["signature"]));

    // Act 2: pay (approve + pay, as the page does without permit), watch, mint
    let stored = fetch_quote(&app, &checkout);
    app.h.pay(1, &stored).await;
    app.h.catch_up().await;
    let (_, detected) = app.call("GET", route, &format!("/v1/checkouts/{id}"), None, None).await;
    assert!(["detected", "confirming"].contains(&detected["progress"]["stage"].as_str().unwrap()), "{detected}");
    assert!(detected["progress"]["tx_hash"].is_string());
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
    let (_, active) = app.call("GET", route, &format!("/v1/checkouts/{id}"), None, None).await;
    assert_eq!(active["progress"]["stage"], "active");
    assert_eq!(active["status"], "paid");
    let minter = app.minter();
    for _ in 0..50 {
        if minter.tick().await.unwrap().idle() {
            break;
        }
        app.h.mine(1).await;
    }
    let (_, issued) = app.call("GET", route, &format!("/v1/checkouts/{id}"), None, None).await;
    assert_eq!(issued["progress"]["stage"], "badge_issued", "{issued}");
    assert!(issued["progress"]["badge_tx_hash"].is_string());

    // Assert: the subscription, the badge, the payments list
    let wallet = app.wallet(1);
    let (status, sub) = app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{wallet}"), None, None).await;
    assert_eq!((status, sub["tier"].as_u64(), sub["status"].as_str()), (200, Some(3), Some("active")));
    let (status, badge) = app.call("GET", "/v1/badges/{wallet}", &format!("/v1/badges/{wallet}"), None, None).await;
    assert_eq!(status, 200, "{badge}");
    assert_eq!(badge["expires_at"], sub["expires_at"]);
    assert_eq!(badge["active"], true);
    assert!(badge["token_uri"].as_str().unwrap().starts_with("data:application/json;base64,"));
    let (status, page) = app.call("GET", "/v1/payments", "/v1/payments", None, Some(&app.key)).await;
    assert_eq!(status, 200);
    assert_eq!(page["payments"].as_array().unwrap().len(), 1);
    assert_eq!(page["payments"][0]["status"], "confirmed");
    let (status, _) = app.call("GET", "/v1/payments", "/v1/payments?status=reorged&limit=5", None, Some(&app.key)).await;
    assert_eq!(status, 200);
    let (status, health) = app.call("GET", "/healthz", "/healthz", None, None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let response = app.client.get(format!("{}/readyz", app.ops)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let ready: Value = response.json().await.unwrap();
    // `/readyz` is on the operations listener, so not in the API's served document; its
    // body is the document's `Ready` schema.
    let root = json!({ "$ref": "#/components/schemas/Ready", "components": app.doc["components"] });
    assert!(jsonschema::validator_for(&root).unwrap().is_valid(&ready), "{ready}");
    assert_eq!(ready["rpc"].as_bool(), Some(true));
}
on_both_databases!(a_checkout_goes_from_quote_to_badge_through_the_api);

/// Every event a payment caused names its order, its checkout and its transaction, so a
/// merchant's app needs no join to `payment.confirmed`.
async fn every_event_a_payment_caused_carries_its_order_checkout_and_transaction(kind: DbKind) {
    // Arrange: a checkout paid, confirmed and its badge minted
    let app = App::spawn(kind).await;
    let (_, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 2)), None).await;
    let receipt = app.h.pay(2, &fetch_quote(&app, &checkout)).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
    let minter = app.minter();
    for _ in 0..50 {
        if minter.tick().await.unwrap().idle() {
            break;
        }
        app.h.mine(1).await;
    }

    // Assert
    let events = tmai_pay::store::outbox::all(app.h.test_db.db.pool()).await.unwrap();
    let tx = receipt.transaction_hash.to_string();
    let mut seen = Vec::new();
    for event in events.iter().filter(|e| e.event_type != "checkout.created") {
        let data = &event.payload["data"];
        assert_eq!(data["order_id"], checkout["order_id"], "{}: {data}", event.event_type);
        assert_eq!(data["checkout_id"], checkout["id"], "{}: {data}", event.event_type);
        let payment_tx = if event.event_type.starts_with("badge.") { &data["payment_tx_hash"] } else { &data["tx_hash"] };
        assert_eq!(payment_tx.as_str(), Some(tx.as_str()), "{}: {data}", event.event_type);
        seen.push(event.event_type.clone());
    }
    assert_eq!(seen, ["payment.detected", "payment.confirmed", "subscription.activated", "badge.minted"]);
}
on_both_databases!(every_event_a_payment_caused_carries_its_order_checkout_and_transaction);

/// Bad input on every route: a 4xx in the one error shape, with an actionable message,
/// and nothing changed.
async fn bad_input_gets_a_clear_error_and_changes_nothing(kind: DbKind) {
    let app = App::spawn(kind).await;
    let post = |body: Value| app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body), None);
    let wallet = app.wallet(2);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({ "plan_id": 99, "token": "TMAI", "wallet": wallet }), 422, "unknown plan 99"),
        (json!({ "plan_id": 3, "token": "DOGE", "wallet": wallet }), 422, "unsupported token"),
        (json!({ "plan_id": 3, "token": "TMAI", "wallet": "0x1234" }), 400, "wallet: \"0x1234\" is not an address"),
        (json!({ "plan_id": 3, "token": "TMAI", "wallet": "0x0000000000000000000000000000000000000000" }), 400, "zero address"),
        (json!({ "plan_id": 3, "token": "TMAI", "wallet": wallet, "periods": 0 }), 400, "periods must be between"),
        (json!({ "plan_id": 3, "token": "TMAI", "wallet": wallet, "periods": 1000 }), 400, "periods must be between"),
        (json!({ "plan_id": "three", "token": "TMAI", "wallet": wallet }), 400, "plan_id"),
        (json!({ "plan_id": 3, "token": "TMAI", "wallet": wallet, "coupon": "X" }), 400, "unknown field `coupon`"),
        (json!({ "token": "TMAI", "wallet": wallet }), 400, "missing field `plan_id`"),
        (json!([1, 2]), 400, "invalid request body"),
    ];
    for (body, status, message) in cases {
        let (got, error) = post(body.clone()).await;
        assert_eq!(got, status, "{body} -> {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{body}: {error}");
    }
    // Malformed JSON, the wrong content type, an oversize body
    let raw =
        |body: String, content_type: &'static str| app.client.post(format!("{}/v1/checkouts", app.base)).header("content-type", content_type).body(body).send();
    for (body, content_type, status, code) in [
        ("{\"plan_id\": 3,".to_string(), "application/json", 400, "invalid_request"),
        ("plan_id=3".to_string(), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (format!("{{\"plan_id\": 3, \"token\": \"{}\"}}", "A".repeat(40_000)), "application/json", 413, "payload_too_large"),
    ] {
        let response = raw(body, content_type).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let error: Value = response.json().await.unwrap();
        app.check("POST", "/v1/checkouts", status, &error);
        assert_eq!(error["error"]["code"], code);
    }
    // Unknown ids, bad addresses in paths, no subscription, no badge
    let (status, _) = app.call("GET", "/v1/checkouts/{id}", "/v1/checkouts/chk_nope", None, None).await;
    assert_eq!(status, 404);
    let (status, _) = app.call("GET", "/v1/checkouts/{id}/events", "/v1/checkouts/chk_nope/events", None, None).await;
    assert_eq!(status, 404);
    let (status, error) = app.call("GET", "/v1/subscriptions/{wallet}", "/v1/subscriptions/not-a-wallet", None, None).await;
    assert_eq!(status, 400, "{error}");
    let (status, error) = app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{wallet}"), None, None).await;
    assert_eq!(status, 404);
    assert!(error["error"]["message"].as_str().unwrap().contains("has no subscription"));
    let (status, _) = app.call("GET", "/v1/badges/{wallet}", &format!("/v1/badges/{wallet}"), None, None).await;
    assert_eq!(status, 404);
    let (status, _) = app.call("GET", "/v1/badges/{wallet}", "/v1/badges/0xZZ", None, None).await;
    assert_eq!(status, 400);
    // Merchant route: missing, wrong and revoked keys; bad paging
    let (status, error) = app.call("GET", "/v1/payments", "/v1/payments", None, None).await;
    assert_eq!(status, 401);
    assert!(error["error"]["message"].as_str().unwrap().contains("Authorization: Bearer"));
    let (status, _) = app.call("GET", "/v1/payments", "/v1/payments", None, Some("tmai_sk_wrong")).await;
    assert_eq!(status, 401);
    let (status, _) = app.call("GET", "/v1/payments", "/v1/payments?limit=0", None, Some(&app.key)).await;
    assert_eq!(status, 400);
    let (status, _) = app.call("GET", "/v1/payments", "/v1/payments?status=lost", None, Some(&app.key)).await;
    assert_eq!(status, 400);
    let (status, _) = app.call("GET", "/v1/payments", "/v1/payments?limit=abc", None, Some(&app.key)).await;
    assert_eq!(status, 400);
    let (id, second) = keys::create(&app.h.test_db.db, "second", app.state.clock.now() as i64).await.unwrap();
    assert_eq!(app.call("GET", "/v1/payments", "/v1/payments", None, Some(&second)).await.0, 200);
    assert!(keys::revoke(&app.h.test_db.db, id, app.state.clock.now() as i64).await.unwrap());
    assert_eq!(app.call("GET", "/v1/payments", "/v1/payments", None, Some(&second)).await.0, 401);
    assert_eq!(app.call("GET", "/v1/payments", "/v1/payments", None, Some(&app.key)).await.0, 200, "other keys still work");
    // Unknown route and method, in the same shape
    let response = app.client.get(format!("{}/v2/nothing", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let response = app.client.delete(format!("{}/v1/plans", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "method_not_allowed");

    // Nothing was created by any of it
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox_events").await, 0);
}
on_both_databases!(bad_input_gets_a_clear_error_and_changes_nothing);

/// The event stream reports each stage once, in order, and ends with the badge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_reports_progress_until_the_badge_is_issued() {
    // Arrange
    let app = App::spawn(DbKind::Sqlite).await;
    let (_, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 3)), None).await;
    let events_url = format!("{}{}", app.base, checkout["events_url"].as_str().unwrap());
    let response = app.client.get(&events_url).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let _ = tx.send(serde_json::from_str(data).unwrap());
                }
            }
        }
    });

    // Act and assert: each step shows up on the stream before the next one is taken
    let mut stages = Vec::new();
    let mut wait_for = async |wanted: &[&str], stages: &mut Vec<Value>| loop {
        let progress = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a progress event").expect("stream open");
        app.check_schema("Progress", &progress);
        let stage = progress["stage"].as_str().unwrap().to_string();
        stages.push(progress.clone());
        if wanted.contains(&stage.as_str()) {
            return progress;
        }
    };
    wait_for(&["open"], &mut stages).await;
    let quote = fetch_quote(&app, &checkout);
    app.h.pay(3, &quote).await;
    app.h.catch_up().await;
    let seen = wait_for(&["detected", "confirming"], &mut stages).await;
    assert!(seen["tx_hash"].is_string());
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
    let active = wait_for(&["active"], &mut stages).await;
    assert!(active["expires_at"].is_u64());
    let minter = app.minter();
    for _ in 0..50 {
        if minter.tick().await.unwrap().idle() {
            break;
        }
        app.h.mine(1).await;
    }
    let issued = wait_for(&["badge_issued"], &mut stages).await;
    assert!(issued["badge_tx_hash"].is_string());
    reader.abort();
    // An event is sent when the progress changes: "confirming" may come once per new
    // confirmation, every other stage once, and never backwards.
    let order = ["open", "detected", "confirming", "active", "badge_issued"];
    let rank = |p: &Value| order.iter().position(|s| p["stage"] == *s).unwrap_or_else(|| panic!("unexpected stage in {p}"));
    assert_eq!(stages.first().map(rank), Some(0), "{stages:?}");
    assert_eq!(stages.last().map(rank), Some(4), "{stages:?}");
    for pair in stages.windows(2) {
        assert_ne!(pair[0], pair[1], "the same progress twice: {stages:?}");
        let (a, b) = (rank(&pair[0]), rank(&pair[1]));
        assert!(a < b || (a == 2 && b == 2 && pair[0]["confirmations"].as_u64() < pair[1]["confirmations"].as_u64()), "out of order: {stages:?}");
    }
}

impl App {
    fn check_schema(&self, name: &str, value: &Value) {
        let root = json!({ "$ref": format!("#/components/schemas/{name}"), "components": self.doc["components"] });
        let validator = jsonschema::validator_for(&root).unwrap();
        assert!(validator.is_valid(value), "{value} is not a {name}");
    }
}

pub(crate) fn fetch_quote(app: &App, checkout: &Value) -> tmai_pay::billing::quotes::IssuedQuote {
    let q = &checkout["quote"];
    tmai_pay::billing::quotes::IssuedQuote {
        checkout_id: checkout["id"].as_str().unwrap().parse().unwrap(),
        order_id: checkout["order_id"].as_str().unwrap().parse().unwrap(),
        quote: tmai_pay::chain::bindings::ISubscriptionCheckout::Quote {
            orderId: q["orderId"].as_str().unwrap().parse().unwrap(),
            payer: q["payer"].as_str().unwrap().parse().unwrap(),
            token: q["token"].as_str().unwrap().parse().unwrap(),
            amount: q["amount"].as_str().unwrap().parse().unwrap(),
            planId: q["planId"].as_u64().unwrap() as u32,
            periods: q["periods"].as_u64().unwrap() as u32,
            deadline: q["deadline"].as_u64().unwrap(),
        },
        signature: checkout["signature"].as_str().unwrap().parse().unwrap(),
        checkout: checkout["contract"].as_str().unwrap().parse().unwrap(),
        chain_id: app.h.chain.deployment.chain_id,
        amount: checkout["amount"].as_str().unwrap().parse().unwrap(),
        token: checkout["token"]["address"].as_str().unwrap().parse().unwrap(),
        pricing: None,
        expires_at: checkout["expires_at"].as_u64().unwrap(),
    }
}

/// Public routes are rate-limited per client: past the burst, 429 in the error shape with
/// Retry-After; operations routes are not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_are_rate_limited_per_client() {
    let app = App::spawn_with(DbKind::Sqlite, HttpSettings { rate_limit_per_second: 1, rate_limit_burst: 3, ..Default::default() }).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.client.get(format!("{}/v1/plans", app.base)).send().await.unwrap());
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(&codes[..3], &[200, 200, 200], "{codes:?}");
    assert!(codes[3..].contains(&429), "{codes:?}");
    let limited = statuses.into_iter().find(|r| r.status().as_u16() == 429).unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    app.check("GET", "/v1/plans", 429, &body);
    assert_eq!(body["error"]["code"], "rate_limited");
    for _ in 0..5 {
        assert_eq!(app.client.get(format!("{}/healthz", app.base)).send().await.unwrap().status().as_u16(), 200);
    }
}

/// `/metrics` shows request latency histograms, watcher lag and badge queue depths; every
/// response carries a request id (the client's own when it sends one); `/docs` renders the
/// document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_request_ids_and_docs() {
    let app = App::spawn(DbKind::Sqlite).await;
    app.call("GET", "/v1/plans", "/v1/plans", None, None).await;
    app.h.catch_up().await;
    let response = app.client.get(format!("{}/metrics", app.ops)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    for needle in ["tmai_http_request_duration_seconds_bucket", "route=\"/v1/plans\"", "tmai_watcher_lag_blocks", "tmai_badge_jobs{status=\"queued\"}"] {
        assert!(text.contains(needle), "{needle} missing from /metrics:\n{text}");
    }
    let response = app.client.get(format!("{}/healthz", app.base)).header("x-request-id", "req-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-123");
    let response = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 36);
    let docs = app.client.get(format!("{}/docs", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(docs.contains("/openapi.json"));
    // Every route the router serves under /v1 is in the document.
    for route in
        ["/v1/plans", "/v1/checkouts", "/v1/checkouts/{id}", "/v1/checkouts/{id}/events", "/v1/subscriptions/{wallet}", "/v1/badges/{wallet}", "/v1/payments"]
    {
        assert!(app.doc["paths"][route].is_object(), "{route}");
    }
}

/// `/metrics` and `/readyz` (database counts and an RPC call each) are on the operations
/// listener only; the public one answers 404 for them in the one error shape.
async fn operations_routes_are_not_on_the_public_listener(kind: DbKind) {
    let app = App::spawn(kind).await;
    for route in ["/metrics", "/readyz"] {
        let public = app.client.get(format!("{}{route}", app.base)).send().await.unwrap();
        assert_eq!(public.status().as_u16(), 404, "{route} on the public listener");
        assert_eq!(public.json::<Value>().await.unwrap()["error"]["code"], "not_found");
        let ops = app.client.get(format!("{}{route}", app.ops)).send().await.unwrap();
        assert_eq!(ops.status().as_u16(), 200, "{route} on the operations listener");
    }
    for base in [&app.base, &app.ops] {
        assert_eq!(app.client.get(format!("{base}/healthz")).send().await.unwrap().status().as_u16(), 200);
    }
    let ops_v1 = app.client.get(format!("{}/v1/plans", app.ops)).send().await.unwrap();
    assert_eq!(ops_v1.status().as_u16(), 404, "the API is not on the operations listener");
}
on_both_databases!(operations_routes_are_not_on_the_public_listener);

/// hyper takes any token as a method: invented ones are counted as `other`, not as a new
/// metrics series each.
async fn invented_http_methods_do_not_make_new_metrics_series(kind: DbKind) {
    let app = App::spawn(kind).await;
    for i in 0..30 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let response = app.client.request(method, format!("{}/v1/plans", app.base)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405);
    }
    let text = app.client.get(format!("{}/metrics", app.ops)).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("INVENTED"), "invented methods became label values:\n{text}");
    assert!(text.contains("method=\"other\""), "{text}");
    for line in text.lines().filter(|l| l.starts_with("tmai_http_request_duration_seconds_count")) {
        let method = line.split("method=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("");
        assert!(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"].contains(&method), "{line}");
    }
}
on_both_databases!(invented_http_methods_do_not_make_new_metrics_series);

/// The rate limiter counts an IPv6 client by its /64, and believes `X-Forwarded-For` only
/// from a configured proxy (and then its rightmost untrusted entry).
async fn the_rate_limit_counts_clients_by_address_block_behind_trusted_proxies_only(kind: DbKind) {
    let limits = |trusted: Vec<String>| HttpSettings { rate_limit_per_second: 1, rate_limit_burst: 2, trusted_proxies: trusted, ..Default::default() };
    let app = App::spawn_with(kind, limits(vec!["127.0.0.1/32".into()])).await;
    let get = |app: &App, xff: String| {
        let request = app.client.get(format!("{}/v1/plans", app.base)).header("x-forwarded-for", xff);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Behind the trusted proxy (the test itself, on loopback): one client per forwarded address.
    let a: Vec<u16> = futures::future::join_all((0..3).map(|_| get(&app, "198.51.100.1".into()))).await;
    assert_eq!(a.iter().filter(|s| **s == 429).count(), 1, "{a:?}");
    assert_eq!(get(&app, "198.51.100.2".into()).await, 200, "another client has its own budget");
    assert_eq!(get(&app, "6.6.6.6, 198.51.100.1".into()).await, 429, "a spoofed entry on the left changes nothing");
    // One /64 is one client, however many addresses it uses.
    let v6: Vec<u16> = futures::future::join_all((1..=3).map(|i| get(&app, format!("2001:db8:1:2::{i}")))).await;
    assert_eq!(v6.iter().filter(|s| **s == 429).count(), 1, "{v6:?}");
    assert_eq!(get(&app, "2001:db8:1:3::1".into()).await, 200, "the next /64 is another client");

    // Without trusted proxies the header is the client's own word and is ignored.
    let direct = App::spawn_with(kind, limits(Vec::new())).await;
    let spoofed: Vec<u16> = futures::future::join_all((0..4).map(|i| get(&direct, format!("203.0.113.{i}")))).await;
    assert!(spoofed.iter().filter(|s| **s == 429).count() >= 2, "forged X-Forwarded-For escaped the limit: {spoofed:?}");
}
on_both_databases!(the_rate_limit_counts_clients_by_address_block_behind_trusted_proxies_only);

/// Opens `url` as an event stream from `client` (through the trusted loopback proxy);
/// returns the status and, for a stream, its `progress` events and its end (`None`).
async fn open_stream(app: &App, url: &str, client: &str) -> (u16, tokio::sync::mpsc::UnboundedReceiver<Option<Value>>) {
    let response = app.client.get(url).header("x-forwarded-for", client).send().await.unwrap();
    let status = response.status().as_u16();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    if status == 200 {
        let mut stream = response.bytes_stream();
        tokio::spawn(async move {
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                        let _ = tx.send(Some(serde_json::from_str(data).unwrap()));
                    }
                }
            }
            let _ = tx.send(None);
        });
    } else {
        let body: Value = response.json().await.unwrap();
        app.check("GET", "/v1/checkouts/{id}/events", status, &body);
        let _ = tx.send(Some(body));
    }
    (status, rx)
}

/// Open event streams are capped per client and overall (429 in the one error shape), and
/// each ends at its maximum lifetime, giving its place back.
async fn event_streams_are_capped_and_end_at_their_lifetime(kind: DbKind) {
    // Arrange
    let http = HttpSettings {
        rate_limit_per_second: 0,
        trusted_proxies: vec!["127.0.0.1/32".into()],
        max_event_streams: 3,
        max_event_streams_per_client: 2,
        event_stream_max_secs: 3,
        ..Default::default()
    };
    let app = App::spawn_with(kind, http).await;
    let (_, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 4)), None).await;
    let url = format!("{}{}", app.base, checkout["events_url"].as_str().unwrap());

    // Act and assert: two for client A, a third refused; one for B; none more overall
    let (s1, mut first) = open_stream(&app, &url, "198.51.100.1").await;
    let (s2, _second) = open_stream(&app, &url, "198.51.100.1").await;
    let (s3, mut refused) = open_stream(&app, &url, "198.51.100.1").await;
    assert_eq!((s1, s2, s3), (200, 200, 429));
    let error = refused.recv().await.unwrap().unwrap();
    assert_eq!(error["error"]["code"], "too_many_streams", "{error}");
    let (s4, _third) = open_stream(&app, &url, "198.51.100.2").await;
    let (s5, mut full) = open_stream(&app, &url, "198.51.100.3").await;
    assert_eq!((s4, s5), (200, 429));
    assert_eq!(full.recv().await.unwrap().unwrap()["error"]["code"], "too_many_streams");
    assert_eq!(first.recv().await.unwrap().unwrap()["stage"], "open");

    // The lifetime ends every stream; their places come back.
    let ended = tokio::time::timeout(Duration::from_secs(10), first.recv()).await.expect("the stream outlived its lifetime");
    assert_eq!(ended, Some(None), "the stream ended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (again, _) = open_stream(&app, &url, "198.51.100.3").await;
    assert_eq!(again, 200);
}
on_both_databases!(event_streams_are_capped_and_end_at_their_lifetime);

/// A paid checkout whose effect is a scheduled downgrade never gets a badge job: its stream
/// ends at `active` with `done`, and a reconnection is told 204 (nothing more will come).
pub(crate) async fn a_downgrade_checkouts_stream_ends_when_the_plan_is_active(kind: DbKind) {
    // Arrange: wallet 5 holds Premium
    let app = App::spawn(kind).await;
    let premium = app.h.quote(5, 3, "TMAI", 1).await;
    app.h.pay(5, &premium).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
    let body = json!({ "plan_id": 1, "token": "TMAI", "wallet": app.wallet(5), "periods": 1 });
    let (status, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(body), None).await;
    assert_eq!(status, 201, "{checkout}");
    let url = format!("{}{}", app.base, checkout["events_url"].as_str().unwrap());
    let (status, mut events) = open_stream(&app, &url, "198.51.100.9").await;
    assert_eq!(status, 200);

    // Act: pay for Basic (a downgrade) and confirm it
    app.h.pay(5, &fetch_quote(&app, &checkout)).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;

    // Assert
    let mut last = None;
    while let Some(progress) = tokio::time::timeout(Duration::from_secs(15), events.recv()).await.expect("the stream must end at active").unwrap() {
        app.check_schema("Progress", &progress);
        last = Some(progress);
    }
    let last = last.unwrap();
    assert_eq!((last["stage"].as_str(), last["done"].as_bool()), (Some("active"), Some(true)), "{last}");
    assert_eq!(app.count("SELECT COUNT(*) FROM activations WHERE kind = 'subscription.downgrade_scheduled'").await, 1);
    let reconnect = app.client.get(&url).header("last-event-id", "3").send().await.unwrap();
    assert_eq!(reconnect.status().as_u16(), 204, "a reconnection to a finished checkout");
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_downgrade_checkouts_stream_ends_when_the_plan_is_active);

/// An idle event stream does not read the database: it waits for a commit (or the slow
/// fallback poll), then reads once and reports what changed.
async fn an_idle_event_stream_waits_for_a_commit_instead_of_polling(kind: DbKind) {
    // Arrange
    let app = App::spawn(kind).await;
    let (_, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 6)), None).await;
    let url = format!("{}{}", app.base, checkout["events_url"].as_str().unwrap());
    let (status, mut events) = open_stream(&app, &url, "-").await;
    assert_eq!(status, 200);
    assert_eq!(events.recv().await.unwrap().unwrap()["stage"], "open");

    // Act 1: nothing happens for two seconds
    let before = app.state.event_stream_reads();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_reads = app.state.event_stream_reads() - before;

    // Act 2: the payment is committed by the watcher
    app.h.pay(6, &fetch_quote(&app, &checkout)).await;
    app.h.catch_up().await;
    let seen = tokio::time::timeout(Duration::from_secs(3), events.recv()).await.expect("woken by the commit").unwrap().unwrap();

    // Assert: polling every 250 ms read 8 times while idle; PostgreSQL's listener may move
    // the generation once when it connects.
    assert!(idle_reads <= 1, "an idle stream read its checkout {idle_reads} times in 2 s");
    assert!(["detected", "confirming"].contains(&seen["stage"].as_str().unwrap()), "{seen}");
    assert!(app.state.event_stream_reads() > before);
}
on_both_databases!(an_idle_event_stream_waits_for_a_commit_instead_of_polling);

/// A checkout runs on the service's clock: its quote's deadline, its `checkout.created`
/// event's time and its expiry all follow the clock the service was given, not the
/// system's (with the system's, the moved clock left it open and its times a day behind).
async fn a_checkout_runs_on_the_service_clock(kind: DbKind) {
    // Arrange: a service whose clock is a day ahead of the system's
    let clock = tmai_pay::clock::Clock::system();
    let state_clock = clock.clone();
    let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, |state| state.with_clock(state_clock)).await;
    clock.advance(Duration::from_secs(86_400));
    let start = clock.now();

    // Act 1: a checkout is created
    let (status, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 1)), None).await;
    assert_eq!(status, 201, "{checkout}");
    let id = checkout["id"].as_str().unwrap().to_string();
    let (_, events) = app.call("GET", "/v1/events", "/v1/events?type=checkout.created", None, Some(&app.key)).await;

    // Act 2: the clock passes the quote's deadline (30 minutes)
    clock.advance(Duration::from_secs(1_801));
    let (status, later) = app.call("GET", "/v1/checkouts/{id}", &format!("/v1/checkouts/{id}"), None, None).await;

    // Assert
    let expires_at = checkout["expires_at"].as_u64().unwrap();
    assert!((start + 1_800..=start + 1_805).contains(&expires_at), "{expires_at} against {start}");
    let created_at = events["events"][0]["created_at"].as_u64().unwrap();
    assert!((start..=start + 5).contains(&created_at), "{created_at} against {start}");
    assert_eq!(status, 200);
    assert_eq!(
        (later["status"].as_str(), later["progress"]["stage"].as_str(), later["progress"]["done"].as_bool()),
        (Some("expired"), Some("expired"), Some(true)),
        "{later}"
    );
}
on_both_databases!(a_checkout_runs_on_the_service_clock);
