//! A stand-in for the card processor's Checkout Sessions API, which localstripe does not
//! have: `POST /v1/checkout/sessions` checks the form body against Stripe's documented
//! request (API reference "Create a Checkout Session": `mode`, `line_items[0][price]`,
//! `line_items[0][quantity]`, `metadata[…]`, `subscription_data[metadata][…]`,
//! `subscription_data[trial_end]` / `[trial_period_days]`, `success_url`, `cancel_url`,
//! `client_reference_id`, a secret key as Bearer, form-encoded) and answers the documented
//! response shape (`id` `cs_test_…`, `object` `checkout.session`, `url`, …). The hosted page
//! the `url` names is served too (`GET /c/pay/{id}`), so a browser can follow to it.
//!
//! Every other request is passed to localstripe, when one is given, as it came: the
//! service's client has one API base URL, and subscriptions live at localstripe.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

/// The secret key the service is configured with in these tests.
pub(crate) const API_KEY: &str = "sk_test_tmai_pay";

/// One session request, as the stand-in received it: the form's keys and values, decoded.
pub(crate) type Form = BTreeMap<String, String>;

#[derive(Clone)]
struct Shared {
    base: String,
    upstream: Option<String>,
    sessions: Arc<Mutex<Vec<Form>>>,
    refusals: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

/// The running stand-in (stopped when the test ends).
pub(crate) struct FakeProcessor {
    /// `http://127.0.0.1:<port>`: the service's `card.api_base_url`.
    pub(crate) base: String,
    shared: Shared,
}

impl FakeProcessor {
    /// Starts the stand-in; requests other than sessions go to `upstream` (localstripe).
    pub(crate) async fn start(upstream: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared {
            base: base.clone(),
            upstream: upstream.map(str::to_string),
            sessions: Default::default(),
            refusals: Default::default(),
            client: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v1/checkout/sessions", axum::routing::post(create_session))
            .route("/c/pay/{id}", get(hosted_page))
            .fallback(pass_on)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, shared }
    }

    /// The session requests received so far, in order.
    pub(crate) fn sessions(&self) -> Vec<Form> {
        self.shared.sessions.lock().unwrap().clone()
    }

    /// What the stand-in refused (a request not in Stripe's documented shape); empty in a
    /// passing test.
    pub(crate) fn refusals(&self) -> Vec<String> {
        self.shared.refusals.lock().unwrap().clone()
    }
}

/// Decodes an `application/x-www-form-urlencoded` body (keys like `line_items[0][price]`).
fn decode(body: &[u8]) -> Result<Form, String> {
    let mut form = Form::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if form.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("{key} sent twice"));
        }
    }
    Ok(form)
}

/// Stripe's error shape.
fn stripe_error(status: StatusCode, message: String, param: Option<&str>) -> Response {
    (status, axum::Json(json!({ "error": { "type": "invalid_request_error", "message": message, "param": param } }))).into_response()
}

/// Checks `form` against the documented request; returns what is wrong.
fn check(form: &Form, headers: &HeaderMap) -> Result<(), (String, Option<&'static str>)> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if auth != format!("Bearer {API_KEY}") {
        return Err((format!("Invalid API Key provided: {auth:?}"), None));
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err((format!("the body must be form-encoded, not {content_type:?}"), None));
    }
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("mode") != Some("subscription") {
        return Err(("mode must be subscription".into(), Some("mode")));
    }
    if !get("line_items[0][price]").is_some_and(|p| p.starts_with("price_")) {
        return Err(("line_items[0][price] must be a price id".into(), Some("line_items[0][price]")));
    }
    if get("line_items[0][quantity]") != Some("1") {
        return Err(("line_items[0][quantity] must be 1".into(), Some("line_items[0][quantity]")));
    }
    if form.keys().any(|k| k.starts_with("line_items[1]")) {
        return Err(("one line item".into(), Some("line_items")));
    }
    for url in ["success_url", "cancel_url"] {
        if !get(url).is_some_and(|u| u.starts_with("https://") || u.starts_with("http://")) {
            return Err((format!("{url} must be an absolute URL"), None));
        }
    }
    match (get("subscription_data[trial_end]"), get("subscription_data[trial_period_days]")) {
        (Some(_), Some(_)) => return Err(("You may only specify one of these parameters: trial_end, trial_period_days.".into(), Some("subscription_data"))),
        (Some(end), None) => {
            let end: i64 = end.parse().map_err(|_| ("subscription_data[trial_end] must be a unix time".to_string(), Some("subscription_data[trial_end]")))?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
            if end < now + 48 * 3600 {
                return Err(("subscription_data[trial_end] must be at least 48 hours in the future".into(), Some("subscription_data[trial_end]")));
            }
        }
        (None, Some(days)) => {
            let days: u32 = days.parse().map_err(|_| ("trial_period_days must be an integer".to_string(), Some("subscription_data[trial_period_days]")))?;
            if !(1..=730).contains(&days) {
                return Err(("trial_period_days must be between 1 and 730".into(), Some("subscription_data[trial_period_days]")));
            }
        }
        (None, None) => {}
    }
    for (key, value) in form {
        if (key.starts_with("metadata[") || key.starts_with("subscription_data[metadata][")) && value.len() > 500 {
            return Err((format!("{key} is longer than 500 characters"), None));
        }
    }
    Ok(())
}

async fn create_session(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match decode(&body) {
        Ok(form) => form,
        Err(e) => return stripe_error(StatusCode::BAD_REQUEST, e, None),
    };
    if let Err((message, param)) = check(&form, &headers) {
        s.refusals.lock().unwrap().push(message.clone());
        let status = if message.starts_with("Invalid API Key") { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
        return stripe_error(status, message, param);
    }
    let number = {
        let mut sessions = s.sessions.lock().unwrap();
        sessions.push(form.clone());
        sessions.len()
    };
    let id = format!("cs_test_a1{number:06}tmaipay");
    let metadata: serde_json::Map<String, Value> =
        form.iter().filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?.to_string(), json!(v)))).collect();
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // The documented object (the fields a session has right after creation).
    axum::Json(json!({
        "id": id,
        "object": "checkout.session",
        "amount_subtotal": null,
        "amount_total": null,
        "cancel_url": form["cancel_url"],
        "client_reference_id": form.get("client_reference_id"),
        "created": created,
        "currency": null,
        "customer": form.get("customer"),
        "expires_at": created + 86_400,
        "livemode": false,
        "metadata": metadata,
        "mode": "subscription",
        "payment_status": "unpaid",
        "status": "open",
        "subscription": null,
        "success_url": form["success_url"],
        "ui_mode": "hosted",
        "url": format!("{}/c/pay/{id}", s.base),
    }))
    .into_response()
}

/// The hosted page a member is sent to.
async fn hosted_page(Path(id): Path<String>) -> Html<String> {
    Html(format!("<!doctype html><title>Card payment</title><h1 data-testid=\"card-page\">Card payment page for {id}</h1>"))
}

/// Passes any other request to localstripe as it came.
async fn pass_on(State(s): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(upstream) = &s.upstream else {
        return stripe_error(StatusCode::NOT_FOUND, format!("Unrecognized request URL ({method}: {uri})"), None);
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = s.client.request(method, format!("{upstream}{path}")).body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, [("content-type", "application/json")], response.bytes().await.unwrap()).into_response()
}
