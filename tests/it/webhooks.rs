//! Webhooks out, end to end: real payments on a real anvil write the events, the delivery
//! worker signs and sends them, and a receiver verifies every signature with the
//! independent `standardwebhooks` package. The service's clock is moved to live through a
//! day of downtime in seconds.

use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};
use tmai_pay::{
    clock::Clock,
    config::{HttpSettings, WebhookSettings},
    notify::delivery::Deliverer,
};
use tokio::io::AsyncBufReadExt;

use crate::{
    api::App,
    db::{DbKind, on_both_databases},
    harness::CONFIRMATIONS,
};

/// The node receiver (tests/receiver/receiver.mjs), killed on drop.
pub(crate) struct Receiver {
    pub(crate) base: String,
    client: reqwest::Client,
    _child: tokio::process::Child,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/receiver/receiver.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the test receiver (tools/install.sh installs node and standardwebhooks)");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
        let port = line.strip_prefix("listening ").unwrap_or_else(|| panic!("receiver said {line:?}"));
        Self { base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new(), _child: child }
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    pub(crate) async fn set(&self, name: &str, control: Value) {
        let mut control = control;
        control["name"] = json!(name);
        self.client.post(format!("{}/_control", self.base)).json(&control).send().await.unwrap().error_for_status().unwrap();
    }

    pub(crate) async fn follow(&self, clock: &Clock) {
        self.client.post(format!("{}/_clock", self.base)).json(&json!({ "offset_ms": clock.offset_ms() })).send().await.unwrap();
    }

    pub(crate) async fn state(&self, name: &str) -> Value {
        let state: Value = self.client.get(format!("{}/_state", self.base)).send().await.unwrap().json().await.unwrap();
        state.get(name).cloned().unwrap_or(json!({ "received": [], "attempts": [], "rejected": 0 }))
    }

    /// Ids of the verified deliveries, in arrival order.
    pub(crate) async fn received_ids(&self, name: &str) -> Vec<String> {
        self.state(name).await["received"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    }
}

pub(crate) fn settings(allow_private: bool) -> WebhookSettings {
    WebhookSettings { allow_private_targets: allow_private, poll_interval_ms: 20, ..Default::default() }
}

async fn app(kind: DbKind, clock: &Clock, allow_private: bool) -> App {
    let clock = clock.clone();
    App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| {
        state.with_clock(clock).with_webhooks(settings(allow_private))
    })
    .await
}

async fn register(app: &App, url: &str, filter: Option<Value>) -> (String, String) {
    let mut body = json!({ "url": url, "description": "test receiver" });
    if let Some(filter) = filter {
        body["event_types"] = filter;
    }
    let (status, created) = app.call("POST", "/v1/webhook-endpoints", "/v1/webhook-endpoints", Some(body), Some(&app.key)).await;
    assert_eq!(status, 201, "{created}");
    (created["endpoint"]["id"].as_str().unwrap().to_string(), created["secret"].as_str().unwrap().to_string())
}

/// Pays `n` checkouts from wallets 1…n and confirms them: each writes checkout.created,
/// payment.detected, payment.confirmed and subscription.activated.
async fn pay_checkouts(app: &App, first_wallet: usize, n: usize) {
    for i in 0..n {
        let quote = app.h.quote(first_wallet + i, 1, "TMAI", 1).await;
        app.h.pay(first_wallet + i, &quote).await;
    }
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
}

/// Ids of the events of `types` (all when empty), in outbox order.
async fn event_ids(app: &App, family: Option<&str>) -> Vec<String> {
    let events = tmai_pay::store::outbox::all(app.h.test_db.db.pool()).await.unwrap();
    events.into_iter().filter(|e| family.is_none_or(|f| e.event_type.starts_with(f))).map(|e| e.id).collect()
}

/// Runs the worker; then, while an endpoint's oldest pending delivery waits on a retry,
/// jumps the clock to the next such time (never past `until_ms`) and runs it again.
async fn live_through(app: &App, deliverer: &Deliverer, clock: &Clock, receiver: &Receiver, until_ms: i64) {
    loop {
        deliverer.tick().await.unwrap();
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(d.next_attempt_ms) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND e.enabled = 1 \
             AND d.id = (SELECT MIN(x.id) FROM webhook_deliveries x WHERE x.endpoint_id = d.endpoint_id AND x.status = 'pending')",
        )
        .fetch_one(app.h.test_db.db.pool())
        .await
        .unwrap();
        let Some(next) = next else { return };
        if next > until_ms {
            return;
        }
        let now = clock.now_ms();
        if next > now {
            clock.advance(Duration::from_millis((next - now) as u64));
            receiver.follow(clock).await;
        }
    }
}

/// The receiver is down for a day: retries follow the schedule with the same webhook-id;
/// when it is back every event arrives once, in order. Another endpoint is not held up, a
/// filtered one gets only its events, and one answering 410 is disabled.
async fn a_day_of_downtime_loses_nothing_and_keeps_order(kind: DbKind) {
    let clock = Clock::system();
    let app = app(kind, &clock, true).await;
    let receiver = Receiver::start().await;
    let (down, down_secret) = register(&app, &receiver.url("down"), None).await;
    let (_, filtered_secret) = register(&app, &receiver.url("filtered"), Some(json!(["subscription.*", "payment.confirmed"]))).await;
    let (gone, gone_secret) = register(&app, &receiver.url("gone"), None).await;
    receiver.set("down", json!({ "secret": down_secret, "mode": "down" })).await;
    receiver.set("filtered", json!({ "secret": filtered_secret })).await;
    receiver.set("gone", json!({ "secret": gone_secret, "mode": "gone" })).await;

    pay_checkouts(&app, 1, 3).await;
    let all = event_ids(&app, None).await;
    assert_eq!(all.len(), 12, "3 × checkout.created, payment.detected, payment.confirmed, subscription.activated");
    let start = clock.now_ms();
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), settings(true), clock.clone()).unwrap();
    live_through(&app, &deliverer, &clock, &receiver, start + 86_400_000).await;

    // A day later: the filtered endpoint has its events, in order, at once.
    let mut wanted = event_ids(&app, Some("subscription.")).await;
    wanted.extend(event_ids(&app, Some("payment.confirmed")).await);
    let order: Vec<String> = all.iter().filter(|id| wanted.contains(id)).cloned().collect();
    assert_eq!(receiver.received_ids("filtered").await, order);
    // The gone endpoint answered 410 once and was disabled.
    let gone_state = receiver.state("gone").await;
    assert_eq!(gone_state["attempts"].as_array().unwrap().len(), 1);
    let (_, endpoint) = app.call("GET", "/v1/webhook-endpoints/{id}", &format!("/v1/webhook-endpoints/{gone}"), None, Some(&app.key)).await;
    assert_eq!(endpoint["enabled"], false);
    assert!(endpoint["disabled_reason"].as_str().unwrap().contains("410"), "{endpoint}");
    // The down endpoint's first event was tried on the schedule, always with the same id.
    let attempts = receiver.state("down").await["attempts"].as_array().unwrap().clone();
    assert!(attempts.len() >= 6, "a day holds attempts at 0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h: {attempts:?}");
    assert!(attempts.iter().all(|a| a["id"] == json!(all[0])), "only the oldest event is tried while it fails");
    assert!(receiver.received_ids("down").await.is_empty());
    let times: Vec<i64> = attempts.iter().map(|a| a["at"].as_i64().unwrap()).collect();
    let schedule = settings(true).schedule_secs;
    for (i, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let want = schedule[i + 1] as i64 * 1000;
        assert!(gap >= want - 1_000 && gap <= want + want / 10 + 2_000, "gap {i}: {gap} ms, schedule {want} ms ± 10 %");
    }
    // Events written while it is down queue behind the first.
    pay_checkouts(&app, 4, 1).await;
    let all = event_ids(&app, None).await;
    assert_eq!(all.len(), 16);

    // A restart: a new worker carries on from the database.
    drop(deliverer);
    receiver.set("down", json!({ "mode": "up" })).await;
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), settings(true), clock.clone()).unwrap();
    live_through(&app, &deliverer, &clock, &receiver, i64::MAX).await;
    let received = receiver.received_ids("down").await;
    assert_eq!(received, all, "every event once, in order");
    let ids: HashSet<&String> = received.iter().collect();
    assert_eq!(ids.len(), received.len());
    assert_eq!(receiver.state("down").await["rejected"], 0, "every signature verified");
    assert_eq!(receiver.state("filtered").await["rejected"], 0);
    assert_eq!(receiver.received_ids("gone").await.len(), 0);
    assert_eq!(receiver.state("gone").await["attempts"].as_array().unwrap().len(), 1, "a disabled endpoint gets nothing more");
    let bodies = receiver.state("down").await["received"].clone();
    assert_eq!(bodies[0]["body"]["type"], "checkout.created");
    assert_eq!(bodies[0]["body"]["id"], json!(all[0]));

    // The delivery log has every attempt of the first event, with what the endpoint said.
    let (status, log) = app
        .call("GET", "/v1/webhook-endpoints/{id}/attempts", &format!("/v1/webhook-endpoints/{down}/attempts?event_id={}", all[0]), None, Some(&app.key))
        .await;
    assert_eq!(status, 200);
    let log = log["attempts"].as_array().unwrap();
    assert_eq!(log.len(), attempts.len() + 1);
    assert_eq!(log[0]["status_code"], 200, "newest first: the success");
    assert!(log[1..].iter().all(|a| a["status_code"] == 503 && a["response_excerpt"] == "down for maintenance"), "{log:?}");
    let (_, deliveries) = app
        .call("GET", "/v1/webhook-endpoints/{id}/deliveries", &format!("/v1/webhook-endpoints/{down}/deliveries?status=delivered"), None, Some(&app.key))
        .await;
    assert_eq!(deliveries["deliveries"].as_array().unwrap().len(), 16);
    let pending: i64 = app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").await;
    assert_eq!(pending, 0);
    let canceled = app.count(&format!("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = '{gone}' AND status = 'canceled'")).await;
    assert_eq!(canceled, 11, "the disabled endpoint's queue was canceled (it can be redelivered)");

    // Redelivery sends an event again with its original id.
    let (status, body) =
        app.call("POST", "/v1/events/{id}/redeliver", &format!("/v1/events/{}/redeliver", all[3]), Some(json!({ "endpoint_id": down })), Some(&app.key)).await;
    assert_eq!(status, 202, "{body}");
    deliverer.tick().await.unwrap();
    let received = receiver.received_ids("down").await;
    assert_eq!(received.len(), 17);
    assert_eq!(received[16], all[3]);
    // To a disabled endpoint, or of an unknown event: refused, nothing queued.
    let before = app.count("SELECT COUNT(*) FROM webhook_deliveries").await;
    let (status, _) =
        app.call("POST", "/v1/events/{id}/redeliver", &format!("/v1/events/{}/redeliver", all[3]), Some(json!({ "endpoint_id": gone })), Some(&app.key)).await;
    assert_eq!(status, 409);
    let (status, _) = app.call("POST", "/v1/events/{id}/redeliver", "/v1/events/evt_nope/redeliver", None, Some(&app.key)).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call("POST", "/v1/events/{id}/redeliver", &format!("/v1/events/{}/redeliver", all[3]), Some(json!({ "endpoint_id": "ep_nope" })), Some(&app.key))
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_deliveries").await, before);

    // Enabled again, the 410 endpoint receives what is written from then on.
    receiver.set("gone", json!({ "mode": "up" })).await;
    let (status, endpoint) =
        app.call("PATCH", "/v1/webhook-endpoints/{id}", &format!("/v1/webhook-endpoints/{gone}"), Some(json!({ "enabled": true })), Some(&app.key)).await;
    assert_eq!((status, endpoint["enabled"].clone()), (200, json!(true)));
    pay_checkouts(&app, 5, 1).await;
    live_through(&app, &deliverer, &clock, &receiver, i64::MAX).await;
    // The failed first event stays failed; the four new ones arrive, and only they.
    let (_, failed) =
        app.call("GET", "/v1/webhook-endpoints/{id}/deliveries", &format!("/v1/webhook-endpoints/{gone}/deliveries?status=failed"), None, Some(&app.key)).await;
    assert_eq!(failed["deliveries"].as_array().unwrap().len(), 1);
    let got = receiver.received_ids("gone").await;
    let all = event_ids(&app, None).await;
    assert_eq!(got, all[all.len() - 4..]);
}
on_both_databases!(a_day_of_downtime_loses_nothing_and_keeps_order);

/// A rotated secret: both sign during the overlap, so a receiver still on the old one and a
/// receiver on the new one both verify; after the overlap only the new one does.
async fn secret_rotation_signs_with_both_during_the_overlap(kind: DbKind) {
    let clock = Clock::system();
    let app = app(kind, &clock, true).await;
    let receiver = Receiver::start().await;
    let (id, old) = register(&app, &receiver.url("old"), None).await;
    let before = clock.now() as i64;
    let (_, rotated) =
        app.call("POST", "/v1/webhook-endpoints/{id}/rotate-secret", &format!("/v1/webhook-endpoints/{id}/rotate-secret"), None, Some(&app.key)).await;
    let after = clock.now() as i64;
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    // A day from the rotation (a second may tick while it is handled).
    let until = rotated["previous_secret_until"].as_i64().unwrap();
    assert!((before + 86_400..=after + 86_400).contains(&until), "{until} not a day after {before}..={after}");
    receiver.set("old", json!({ "secret": old })).await;
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), settings(true), clock.clone()).unwrap();
    pay_checkouts(&app, 1, 1).await;
    deliverer.tick().await.unwrap();
    assert_eq!(receiver.received_ids("old").await.len(), 4, "the old secret still verifies");
    receiver.set("old", json!({ "secret": new })).await;
    pay_checkouts(&app, 2, 1).await;
    deliverer.tick().await.unwrap();
    assert_eq!(receiver.received_ids("old").await.len(), 8, "the new secret verifies");
    // After the overlap a receiver on the old secret rejects what is signed.
    clock.advance(Duration::from_secs(86_401));
    receiver.follow(&clock).await;
    receiver.set("old", json!({ "secret": old })).await;
    pay_checkouts(&app, 3, 1).await;
    deliverer.tick().await.unwrap();
    let state = receiver.state("old").await;
    assert_eq!(state["received"].as_array().unwrap().len(), 8);
    assert_eq!(state["rejected"], 1, "the old secret no longer signs; the next attempt waits for the retry");
    // Secrets are never listed.
    let (_, list) = app.call("GET", "/v1/webhook-endpoints", "/v1/webhook-endpoints", None, Some(&app.key)).await;
    assert!(!list.to_string().contains("whsec_"), "{list}");
}
on_both_databases!(secret_rotation_signs_with_both_during_the_overlap);

/// By default webhooks go to public addresses only: private targets are refused when
/// registered and, for an endpoint registered while they were allowed, at delivery.
async fn private_targets_are_refused_unless_allowed(kind: DbKind) {
    let clock = Clock::system();
    let app = app(kind, &clock, false).await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url("x"),
        "http://localhost:9/x".into(),
        "http://[::1]/x".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://10.0.0.1/hook".into(),
        "http://192.168.1.10/hook".into(),
    ] {
        let (status, body) = app.call("POST", "/v1/webhook-endpoints", "/v1/webhook-endpoints", Some(json!({ "url": url })), Some(&app.key)).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("private"), "{body}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_endpoints").await, 0);
    // Registered directly (as with allow_private_targets on), then delivered with it off.
    let (id, secret) = tmai_pay::notify::endpoints::create(&app.h.test_db.db, &receiver.url("x"), "", None, clock.now() as i64).await.unwrap();
    receiver.set("x", json!({ "secret": secret })).await;
    let _ = id;
    pay_checkouts(&app, 1, 1).await;
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), settings(false), clock.clone()).unwrap();
    deliverer.tick().await.unwrap();
    assert_eq!(receiver.state("x").await["attempts"].as_array().unwrap().len(), 0, "no request left the service");
    let error: String = sqlx::query_scalar("SELECT error FROM webhook_attempts ORDER BY id LIMIT 1").fetch_one(app.h.test_db.db.pool()).await.unwrap();
    assert!(error.contains("127.0.0.1") && error.contains("public"), "{error}");
}
on_both_databases!(private_targets_are_refused_unless_allowed);

/// Bad input to the endpoint routes: a clear 4xx, nothing stored.
async fn endpoint_routes_refuse_bad_input(kind: DbKind) {
    let clock = Clock::system();
    let app = app(kind, &clock, true).await;
    let route = "/v1/webhook-endpoints";
    for (body, needle) in [
        (json!({ "url": "ftp://example.com/x" }), "https://"),
        (json!({ "url": "not a url" }), "valid URL"),
        (json!({ "url": "https://user:pw@example.com/x" }), "credentials"),
        (json!({ "url": "https://251.227.240.252*" }), "host name"),
        (json!({ "url": "https://[2001:db8::1]/x" }), "host name"),
        (json!({ "url": "https://example.com/x", "event_types": ["payment.nope"] }), "payment.nope"),
        (json!({ "url": "https://example.com/x", "event_types": [] }), "at least one"),
        (json!({ "url": "https://example.com/x", "colour": "red" }), "colour"),
        (json!({ "event_types": ["badge.*"] }), "url"),
    ] {
        let (status, answer) = app.call("POST", route, route, Some(body.clone()), Some(&app.key)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(needle), "{body}: {answer}");
    }
    let (status, _) = app.call("POST", route, route, Some(json!({ "url": "https://example.com/x" })), None).await;
    assert_eq!(status, 401);
    let (status, _) = app.call("POST", route, route, Some(json!({ "url": "https://example.com/x" })), Some("tmai_sk_wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_endpoints").await, 0);
    for (method, path, template) in [
        ("GET", "/v1/webhook-endpoints/ep_nope", "/v1/webhook-endpoints/{id}"),
        ("DELETE", "/v1/webhook-endpoints/ep_nope", "/v1/webhook-endpoints/{id}"),
        ("POST", "/v1/webhook-endpoints/ep_nope/rotate-secret", "/v1/webhook-endpoints/{id}/rotate-secret"),
        ("GET", "/v1/webhook-endpoints/ep_nope/attempts", "/v1/webhook-endpoints/{id}/attempts"),
        ("GET", "/v1/webhook-endpoints/ep_nope/deliveries", "/v1/webhook-endpoints/{id}/deliveries"),
    ] {
        let (status, _) = app.call(method, template, path, None, Some(&app.key)).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (id, _) = register(&app, "https://example.com/hook", Some(json!(["badge.*"]))).await;
    let path = format!("/v1/webhook-endpoints/{id}");
    let template = "/v1/webhook-endpoints/{id}";
    let (status, _) = app.call("PATCH", template, &path, Some(json!({ "event_types": ["nope"] })), Some(&app.key)).await;
    assert_eq!(status, 400);
    let (status, _) = app.call("GET", "/v1/webhook-endpoints/{id}/deliveries", &format!("{path}/deliveries?status=lost"), None, Some(&app.key)).await;
    assert_eq!(status, 400);
    let (status, _) = app.call("GET", "/v1/webhook-endpoints/{id}/attempts", &format!("{path}/attempts?limit=0"), None, Some(&app.key)).await;
    assert_eq!(status, 400);
    let (_, unchanged) = app.call("GET", template, &path, None, Some(&app.key)).await;
    assert_eq!(unchanged["event_types"], json!(["badge.*"]));
    let (status, updated) = app.call("PATCH", template, &path, Some(json!({ "event_types": null, "description": "all" })), Some(&app.key)).await;
    assert_eq!(status, 200);
    assert_eq!((updated["event_types"].clone(), updated["description"].clone()), (Value::Null, json!("all")));
    // Deleting cancels what is pending and hides the endpoint; its log stays readable.
    app.h.quote(1, 1, "TMAI", 1).await;
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), settings(true), clock.clone()).unwrap();
    deliverer.fan_out().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").await, 1);
    let (status, _) = app.call("DELETE", template, &path, None, Some(&app.key)).await;
    assert_eq!(status, 204);
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'canceled'").await, 1);
    let (_, list) = app.call("GET", "/v1/webhook-endpoints", "/v1/webhook-endpoints", None, Some(&app.key)).await;
    assert_eq!(list["endpoints"], json!([]));
    let (status, _) = app.call("GET", "/v1/webhook-endpoints/{id}/deliveries", &format!("{path}/deliveries"), None, Some(&app.key)).await;
    assert_eq!(status, 200);
    // The event list pages in order.
    let (status, events) = app.call("GET", "/v1/events", "/v1/events?limit=1", None, Some(&app.key)).await;
    assert_eq!(status, 200);
    assert_eq!(events["events"][0]["type"], "checkout.created");
    let (status, _) = app.call("GET", "/v1/events", "/v1/events?type=nope", None, Some(&app.key)).await;
    assert_eq!(status, 400);
}
on_both_databases!(endpoint_routes_refuse_bad_input);

/// The worker as `tmai-pay run` runs it: new events reach the endpoint without ticks being
/// driven by hand, and cancelling it returns once the in-flight batch is recorded.
async fn the_running_worker_delivers_and_stops_cleanly(kind: DbKind) {
    let clock = Clock::system();
    let app = app(kind, &clock, true).await;
    let receiver = Receiver::start().await;
    let (_, secret) = register(&app, &receiver.url("live"), None).await;
    receiver.set("live", json!({ "secret": secret })).await;
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), settings(true), clock.clone()).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { deliverer.run(cancel).await }
    });
    pay_checkouts(&app, 1, 2).await;
    let all = event_ids(&app, None).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.received_ids("live").await.len() < all.len() {
        assert!(std::time::Instant::now() < deadline, "not delivered in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.received_ids("live").await, all);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), running).await.expect("the worker stops when cancelled").unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'").await, all.len() as i64);
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_attempts").await, all.len() as i64);
}
on_both_databases!(the_running_worker_delivers_and_stops_cleanly);

/// The sender waits for commits, not for its poll: with a one-minute poll an event goes
/// out within moments of the commit that wrote it — written by this process, and (on
/// PostgreSQL, through the outbox trigger's NOTIFY) by another instance's own connection.
async fn the_sender_wakes_on_commit_not_on_its_poll(kind: DbKind) {
    let clock = Clock::system();
    let app = app(kind, &clock, true).await;
    let receiver = Receiver::start().await;
    let (_, secret) = register(&app, &receiver.url("woken"), None).await;
    receiver.set("woken", json!({ "secret": secret })).await;
    let slow_poll = WebhookSettings { poll_interval_ms: 60_000, ..settings(true) };
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), slow_poll, clock.clone()).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { deliverer.run(cancel).await }
    });
    // The first loop finds nothing and goes to sleep.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let arrives = |count: usize| {
        let receiver = &receiver;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while receiver.received_ids("woken").await.len() < count {
                assert!(std::time::Instant::now() < deadline, "event {count} not delivered within 10 s of its commit (the poll is a minute)");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut tx = app.h.test_db.db.begin_write().await.unwrap();
    tmai_pay::store::outbox::write(&mut tx, "evt_woken_here", crate::event_schemas::sample(1, 0), 1).await.unwrap();
    tx.commit().await.unwrap();
    arrives(1).await;
    if matches!(kind, DbKind::Postgres) {
        // Another instance: a connection of its own, outside this process's Db.
        let mut other = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.h.test_db.url).await.unwrap();
        tmai_pay::store::outbox::write(&mut other, "evt_woken_elsewhere", crate::event_schemas::sample(2, 0), 1).await.unwrap();
        arrives(2).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), running).await.expect("the worker stops when cancelled").unwrap();
}
on_both_databases!(the_sender_wakes_on_commit_not_on_its_poll);

/// PostgreSQL numbers an event when it is written, not when its transaction commits: an
/// event whose transaction commits after a later-numbered one must still go out first. Found
/// by the chaos campaign (seed 3: a card webhook's `subscription.downgrade_scheduled`, seq
/// 1188, delivered after a `checkout.created`, seq 1189, at both endpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_late_is_still_delivered_in_order() {
    // Arrange: an endpoint; a writer takes the lower number and holds its transaction open
    let clock = Clock::system();
    let app = app(DbKind::Postgres, &clock, true).await;
    register(&app, "http://127.0.0.1:9/ordered", None).await;
    let pool = app.h.test_db.db.pool().clone();
    let mut slow = pool.begin().await.unwrap();
    tmai_pay::store::outbox::write(&mut slow, "evt_slow", crate::event_schemas::sample(1, 0), 1).await.unwrap();
    let mut fast = pool.acquire().await.unwrap();
    tmai_pay::store::outbox::write(&mut fast, "evt_fast", crate::event_schemas::sample(2, 0), 1).await.unwrap();
    drop(fast);
    let deliverer = Deliverer::new(app.h.test_db.db.clone(), settings(true), clock.clone()).unwrap();

    // Act: fan out while the slow writer is in flight, then after it commits
    let queued_while_open = deliverer.fan_out().await.unwrap();
    slow.commit().await.unwrap();
    deliverer.fan_out().await.unwrap();

    // Assert: nothing passed the writer in flight; the deliveries follow the event numbers
    assert_eq!(queued_while_open, 0, "the later event went out while an earlier one was uncommitted");
    let order: Vec<String> = sqlx::query_scalar("SELECT event_id FROM webhook_deliveries ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(order, ["evt_slow", "evt_fast"]);
}

/// The fan-out starts each scan after the last event it fanned out (on PostgreSQL the
/// events it fanned stay in the unfanned index until vacuum): across batches, for events
/// written after a fan-out, and beside a second instance that starts from the beginning,
/// every event is fanned out once, in order.
async fn every_event_is_fanned_out_once_across_batches_and_instances(kind: DbKind) {
    // Arrange: an endpoint and more events than one fan-out batch (2,000) holds
    let clock = Clock::system();
    let app = app(kind, &clock, true).await;
    register(&app, "http://127.0.0.1:9/once", None).await;
    let db = app.h.test_db.db.clone();
    let write = |from: u64, to: u64| {
        let db = db.clone();
        async move {
            let mut tx = db.begin_write().await.unwrap();
            for i in from..to {
                tmai_pay::store::outbox::write(&mut tx, &format!("evt_once_{i:05}"), crate::event_schemas::sample(i, 0), 1).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
    };
    write(0, 4_500).await;
    let first = Deliverer::new(db.clone(), settings(true), clock.clone()).unwrap();

    // Act: fan out; write more; fan out again; a second instance fans out too; more events
    // that the second instance finds first
    let queued_first = first.fan_out().await.unwrap();
    write(4_500, 4_503).await;
    let queued_later = first.fan_out().await.unwrap();
    let second = Deliverer::new(db.clone(), settings(true), clock.clone()).unwrap();
    let queued_by_second = second.fan_out().await.unwrap();
    write(4_503, 4_510).await;
    let queued_by_second_after = second.fan_out().await.unwrap();
    let queued_first_after = first.fan_out().await.unwrap();

    // Assert: each event once, in the order written
    assert_eq!((queued_first, queued_later, queued_by_second, queued_by_second_after, queued_first_after), (4_500, 3, 0, 7, 0));
    let order: Vec<String> = sqlx::query_scalar("SELECT event_id FROM webhook_deliveries ORDER BY id").fetch_all(db.pool()).await.unwrap();
    let expected: Vec<String> = (0..4_510).map(|i| format!("evt_once_{i:05}")).collect();
    assert_eq!(order, expected);
}
on_both_databases!(every_event_is_fanned_out_once_across_batches_and_instances);
