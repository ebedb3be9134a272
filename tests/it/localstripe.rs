//! localstripe (PyPI, pinned in tools/localstripe/requirements.txt, installed by
//! tools/install.sh into tools/pyvenv/): a fake Stripe server whose invoices, subscriptions,
//! payment intents and charges are the objects the card webhook tests send as `data.object`.
//!
//! [`LocalStripe::start`] runs `tools/pyvenv/bin/localstripe --port <free port> --from-scratch`
//! (killed on drop) and waits until it answers; the calls are form-encoded as Stripe's API
//! takes them, with a secret key. A missing binary fails the test and says to run
//! tools/install.sh.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};

use crate::helpers::free_port;

/// The secret key localstripe is called with (any `sk_…` is accepted).
const KEY: &str = "sk_test_tmai_pay";

/// A running localstripe, killed on drop.
pub(crate) struct LocalStripe {
    base: String,
    client: reqwest::Client,
    /// How many of localstripe's events [`LocalStripe::new_events`] returned so far.
    seen: std::sync::Mutex<usize>,
    _child: tokio::process::Child,
}

/// Returns `pairs` as an `application/x-www-form-urlencoded` body (Stripe's request
/// encoding: nested parameters as `items[0][plan]`).
fn form(pairs: &[(&str, &str)]) -> String {
    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    }
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Returns the string at `field` of `object`.
pub(crate) fn id(object: &Value, field: &str) -> String {
    object[field].as_str().unwrap_or_else(|| panic!("no {field} in {object}")).to_string()
}

impl LocalStripe {
    /// Starts localstripe on a free port and waits until it answers.
    pub(crate) async fn start() -> Self {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/pyvenv/bin/localstripe");
        assert!(
            binary.is_file(),
            "{} is missing: run tools/install.sh (it installs localstripe, pinned in tools/localstripe/requirements.txt)",
            binary.display()
        );
        let port = free_port();
        // --from-scratch: no state from an earlier run (localstripe keeps one in /tmp).
        let child = tokio::process::Command::new(&binary)
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not run ({e}): run tools/install.sh", binary.display()));
        let stripe = Self { base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new(), seen: Default::default(), _child: child };
        for _ in 0..200 {
            if let Ok(response) = stripe.client.get(format!("{}/v1/plans", stripe.base)).bearer_auth(KEY).send().await
                && response.status().is_success()
            {
                return stripe;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("localstripe did not answer on port {port} within 10 s");
    }

    /// `http://127.0.0.1:<port>`: where it answers.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `POST path` with the form `pairs`; returns the object (fails on an error answer).
    pub(crate) async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Value {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .unwrap();
        Self::object(response, "POST", path).await
    }

    /// `GET path`; returns the object.
    pub(crate) async fn get(&self, path: &str) -> Value {
        let response = self.client.get(format!("{}{path}", self.base)).bearer_auth(KEY).send().await.unwrap();
        Self::object(response, "GET", path).await
    }

    async fn object(response: reqwest::Response, method: &str, path: &str) -> Value {
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "localstripe {method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("localstripe {method} {path}: not JSON ({e}): {text}"))
    }

    /// Creates a monthly plan with the id `id` (the catalog's `card_price_id`) at `cents` USD.
    pub(crate) async fn plan(&self, id: &str, cents: u64, name: &str) -> Value {
        self.post("/v1/plans", &[("id", id), ("amount", &cents.to_string()), ("currency", "usd"), ("interval", "month"), ("product[name]", name)]).await
    }

    /// Creates a customer paying with a card (`4242…`, always accepted) as its default
    /// payment method.
    pub(crate) async fn customer(&self) -> Value {
        let card = self
            .post(
                "/v1/payment_methods",
                &[("type", "card"), ("card[number]", "4242424242424242"), ("card[exp_month]", "12"), ("card[exp_year]", "2040"), ("card[cvc]", "123")],
            )
            .await;
        let pm = id(&card, "id");
        self.post("/v1/customers", &[("email", "member@example.com"), ("payment_method", &pm), ("invoice_settings[default_payment_method]", &pm)]).await
    }

    /// Subscribes `customer` to `plan`; localstripe creates and charges the first invoice.
    pub(crate) async fn subscribe(&self, customer: &str, plan: &str) -> Value {
        self.post("/v1/subscriptions", &[("customer", customer), ("items[0][plan]", plan)]).await
    }

    /// Moves `subscription` to `plan` with prorations (localstripe takes the legacy
    /// `prorate`; it leaves the old plan's unused time as a pending proration item for the
    /// next invoice).
    pub(crate) async fn change_plan(&self, subscription: &Value, plan: &str) -> Value {
        let item = id(&subscription["items"]["data"][0], "id");
        self.post(&format!("/v1/subscriptions/{}", id(subscription, "id")), &[("items[0][id]", &item), ("items[0][plan]", plan), ("prorate", "true")]).await
    }

    /// The subscription's next invoice (its plan line and any pending proration items),
    /// created and paid with the customer's card; returns the paid invoice.
    pub(crate) async fn next_invoice_paid(&self, customer: &str, subscription: &str) -> Value {
        let draft = self.post("/v1/invoices", &[("customer", customer), ("subscription", subscription)]).await;
        let paid = self.post(&format!("/v1/invoices/{}/pay", id(&draft, "id")), &[]).await;
        assert_eq!(paid["status"], "paid", "{paid}");
        paid
    }

    /// A payment of `cents` USD by `customer`'s card, confirmed at once.
    pub(crate) async fn payment(&self, customer: &Value, cents: u64) -> Value {
        let pm = id(&customer["invoice_settings"], "default_payment_method");
        let intent = self
            .post(
                "/v1/payment_intents",
                &[("amount", &cents.to_string()), ("currency", "usd"), ("customer", &id(customer, "id")), ("payment_method", &pm), ("confirm", "true")],
            )
            .await;
        assert_eq!(intent["status"], "succeeded", "{intent}");
        intent
    }

    /// Refunds `cents` of `charge`.
    pub(crate) async fn refund(&self, charge: &str, cents: u64) -> Value {
        self.post("/v1/refunds", &[("charge", charge), ("amount", &cents.to_string())]).await
    }

    /// The charge `id` as it is now.
    pub(crate) async fn charge(&self, id: &str) -> Value {
        self.get(&format!("/v1/charges/{id}")).await
    }

    /// The events localstripe emitted since the last call, in the order it emitted them
    /// (each with the object as it was then).
    pub(crate) async fn new_events(&self) -> Vec<Value> {
        let list = self.get("/v1/events?limit=100").await;
        let all = list["data"].as_array().unwrap().clone();
        assert!(all.len() < 100, "more than 99 localstripe events: page them");
        let mut seen = self.seen.lock().unwrap();
        let new = all[*seen..].to_vec();
        *seen = all.len();
        new
    }

    /// The invoice `id` as it is now.
    pub(crate) async fn invoice(&self, id: &str) -> Value {
        self.get(&format!("/v1/invoices/{id}")).await
    }
}

/// Wraps `object` in Stripe's event envelope as type `event_type`, for the events
/// localstripe does not emit itself (`invoice.paid`, `customer.subscription.updated`,
/// `charge.refunded`): the object is localstripe's, the envelope is Stripe's documented one.
pub(crate) fn event(id: &str, event_type: &str, object: &Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2017-08-15",
        "created": object["created"],
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
        "data": { "object": object },
    })
}
