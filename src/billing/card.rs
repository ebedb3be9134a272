//! Card payments in (DESIGN.md flow 8): the processor's signed webhook activates, renews or
//! cancels a plan for the wallet named in its metadata, and queues the same badge job and
//! events as an on-chain payment. Only what the processor was paid is credited: every
//! event that grants time is checked against the plan's card price.
//!
//! - [`verify_signature`] checks Stripe's `Stripe-Signature` header (`t=<unix>,v1=<hex>…`,
//!   HMAC-SHA256 of `"{t}.{body}"`), a pure function of the header, body, secret and time.
//! - [`handle`] applies one parsed event inside the caller's write transaction. The event
//!   id goes into `card_events` in that transaction, so each processor event applies once:
//!   a replay finds the row and changes nothing. An event that is refused ([`CardError`])
//!   records nothing, so the processor's retry applies it once the cause is fixed.
//!
//! Events handled (Stripe's shapes, old and new API versions):
//! - `checkout.session.completed` and `checkout.session.async_payment_succeeded`
//!   ([`session`]): `metadata.wallet` and `metadata.plan_id` name the member and plan;
//!   `amount_total`/`currency` must be the plan's card price (or 0 for the plan's trial);
//!   `payment_status` `unpaid` is only acknowledged (`pending`); a wallet gets one trial
//!   ever (`card_trials`); a paid session is one period by the on-chain rules; a session
//!   the service created for a switch from crypto ([`sessions`]) completes with nothing
//!   paid and grants nothing (`deferred_start`): its first invoice, at the end of the paid
//!   crypto time, renews the plan;
//! - `checkout.session.async_payment_failed`: acknowledged, nothing granted;
//! - `invoice.paid` ([`invoice`]): only `billing_reason` `subscription_cycle` renews, for the
//!   plan of the invoice line's processor price (`card_price_id`, whose line amount must be
//!   the plan's card price), granting only what the invoice collected for the plan
//!   (prorations and credit counted) at that price; other reasons (the first invoice,
//!   prorations, manual and threshold invoices) are acknowledged with nothing granted;
//! - `invoice.payment_failed`: a failed renewal makes the subscription `past_due` (access
//!   to the end of the paid period) and writes `subscription.renewal_failed`;
//! - `customer.subscription.updated` ([`subscription`]): a new price is a plan change by
//!   the on-chain rules (upgrade at once with the unused paid time credited, downgrade at
//!   the end of the period); `cancel_at_period_end` cancels and un-cancels;
//! - `customer.subscription.deleted`: the subscription is `canceled` (no renewal; access to
//!   the end of the paid period);
//! - `charge.refunded`, `charge.dispute.created` and `charge.dispute.closed` ([`refunds`]):
//!   a refund or dispute takes back its share of the time the payment bought; a won
//!   dispute gives it back;
//! - anything else is recorded as `ignored`.

mod apply;
mod invoice;
pub mod processor;
mod refunds;
mod session;
pub mod sessions;
mod subscription;

use alloy::primitives::Address;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use sqlx::AnyConnection;

use super::plans::Catalog;
use crate::{
    config::CardSettings,
    store::{
        self, StoreError,
        card::{CardOutcome, CardOutcomes},
    },
};

/// Why a `Stripe-Signature` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header.
    #[error("missing Stripe-Signature header")]
    Missing,
    /// The header has no usable `t=` timestamp.
    #[error("malformed Stripe-Signature header: no t=<unix time>")]
    NoTimestamp,
    /// The header has no `v1=` signature.
    #[error("Stripe-Signature header has no v1 signature")]
    NoSignature,
    /// The timestamp is too far from now.
    #[error("Stripe-Signature timestamp {timestamp} is {distance} s away from now (tolerance {tolerance} s); a replay or a wrong clock")]
    Stale {
        /// `t=` of the header.
        timestamp: u64,
        /// Seconds between it and now.
        distance: u64,
        /// Seconds allowed.
        tolerance: u64,
    },
    /// No `v1` signature matches the body with the configured secret.
    #[error("no v1 signature in Stripe-Signature matches the body (wrong endpoint secret, or a changed body)")]
    Mismatch,
}

/// Checks a Stripe-Signature `header` for `body` with `secret` at `now`: some `v1` value
/// must be the HMAC-SHA256 of `"{t}.{body}"` (compared in constant time), and `t` within
/// `tolerance` seconds of `now`. Other schemes (`v0`) are ignored. Returns `t`.
pub fn verify_signature(header: Option<&str>, body: &[u8], secret: &[u8], now: u64, tolerance: u64) -> Result<u64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else { continue };
        match key.trim() {
            "t" => timestamp = value.trim().parse::<u64>().ok(),
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::NoTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    let distance = now.abs_diff(timestamp);
    if distance > tolerance {
        return Err(SignatureError::Stale { timestamp, distance, tolerance });
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signatures.iter().filter_map(|hex| alloy::hex::decode(hex).ok()).any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if matches { Ok(timestamp) } else { Err(SignatureError::Mismatch) }
}

/// Returns the `Stripe-Signature` header the processor would send for `body` at `timestamp`
/// (for tests and local tools).
pub fn sign(body: &[u8], secret: &[u8], timestamp: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("t={timestamp},v1={}", alloy::hex::encode(mac.finalize().into_bytes()))
}

/// A processor event: its id, type and `data.object`.
#[derive(Debug, Clone)]
pub struct CardEvent {
    /// The processor's event id (`evt_…`).
    pub id: String,
    /// Event type (`checkout.session.completed`, …).
    pub event_type: String,
    /// `data.object`.
    pub object: Value,
}

impl CardEvent {
    /// Parses an event body.
    pub fn parse(body: &[u8]) -> Result<Self, CardError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| CardError::BadRequest(format!("the event is not JSON: {e}")))?;
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
        let id = text("id").ok_or_else(|| CardError::BadRequest("the event has no \"id\"".into()))?;
        if id.len() > 255 {
            return Err(CardError::BadRequest("the event id is longer than 255 characters".into()));
        }
        let event_type = text("type").ok_or_else(|| CardError::BadRequest(format!("event {id} has no \"type\"")))?;
        let object = value.pointer("/data/object").cloned().unwrap_or(Value::Null);
        if !object.is_object() {
            return Err(CardError::BadRequest(format!("event {id} has no data.object")));
        }
        Ok(Self { id, event_type, object })
    }
}

/// Why an event could not be applied. Nothing is recorded for any of them, so the
/// processor's retry can succeed once the cause is fixed.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The body is not an event (400).
    #[error("{0}")]
    BadRequest(String),
    /// The metadata names a wallet that is not an address (400).
    #[error("{0}")]
    BadWallet(String),
    /// The metadata names a plan that is not in the catalog (422).
    #[error("{0}")]
    UnknownPlan(String),
    /// The metadata the event needs is missing (422).
    #[error("{0}")]
    MissingMetadata(String),
    /// The processor price the event names is no plan's `card_price_id` (422).
    #[error("{0}")]
    UnknownPrice(String),
    /// The amount or currency paid is not the plan's card price (422).
    #[error("{0}")]
    AmountMismatch(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What handling an event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handled {
    /// `processed`, `acknowledged` (valid, nothing to change), `ignored` (a type not
    /// handled) or `duplicate` (handled before; nothing changed now).
    pub status: &'static str,
    /// What it did (for a duplicate, what the first delivery did).
    pub outcome: CardOutcomes,
    /// The member's wallet, when the event named one.
    pub wallet: Option<Address>,
}

/// What an event is handled with: the catalog, the card settings, the event and the time.
struct Ctx<'a> {
    catalog: &'a Catalog,
    /// `[card] currency`, the currency of `card_price_cents`.
    currency: &'a str,
    event: &'a CardEvent,
    /// The service's public URL, which a paid period's `receipt_url` starts with.
    receipt_base: &'a str,
    now: u64,
}

impl Ctx<'_> {
    /// Returns `"<type> <id>"`, how refusals and logs name the event.
    fn name(&self) -> String {
        format!("{} {}", self.event.event_type, self.event.id)
    }
}

/// Applies `event` inside the caller's write transaction at `now`; receipt urls start with
/// `receipt_base` (`http.public_url`). The caller commits.
pub async fn handle(
    conn: &mut AnyConnection,
    catalog: &Catalog,
    settings: &CardSettings,
    event: &CardEvent,
    receipt_base: &str,
    now: u64,
) -> Result<Handled, CardError> {
    // Claim the event id first: a concurrent delivery of the same event waits there and
    // then finds it taken.
    if let Some(first) = store::card::claim_event(conn, &event.id, &event.event_type, now).await? {
        return Ok(Handled { status: "duplicate", outcome: first.outcome, wallet: first.wallet });
    }
    let ctx = Ctx { catalog, currency: &settings.currency, event, receipt_base, now };
    let handled = match event.event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => session::completed(conn, &ctx).await?,
        "checkout.session.async_payment_failed" => session::failed(&ctx),
        "invoice.paid" => invoice::paid(conn, &ctx).await?,
        "invoice.payment_failed" => invoice::payment_failed(conn, &ctx).await?,
        "customer.subscription.updated" => subscription::updated(conn, &ctx).await?,
        "customer.subscription.deleted" => subscription::deleted(conn, &ctx).await?,
        "charge.refunded" => refunds::refunded(conn, &ctx).await?,
        "charge.dispute.created" => refunds::dispute_created(conn, &ctx).await?,
        "charge.dispute.closed" => refunds::dispute_closed(conn, &ctx).await?,
        _ => Handled { status: "ignored", outcome: CardOutcome::Ignored.into(), wallet: None },
    };
    store::card::finish_event(conn, &event.id, &handled.outcome, handled.wallet).await?;
    Ok(handled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    const T: u64 = 1_800_000_000;

    #[test]
    fn a_signature_made_with_the_secret_is_accepted() {
        let header = sign(BODY, SECRET, T);
        assert_eq!(verify_signature(Some(&header), BODY, SECRET, T + 10, 300), Ok(T));
        // Stripe's own example shape: v0 ignored, several v1 of which one matches.
        let good = header.split("v1=").nth(1).unwrap();
        let several = format!("t={T},v0=deadbeef,v1={},v1={good}", "00".repeat(32));
        assert_eq!(verify_signature(Some(&several), BODY, SECRET, T, 300), Ok(T));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '%s' '1800000000.{"id":"evt_1","type":"invoice.paid"}' |
        // openssl dgst -sha256 -hmac whsec_test_secret
        let header = sign(BODY, SECRET, T);
        assert_eq!(header, format!("t={T},v1=f19b688b6c808f2a3c035f501cb82562fd2eb237fd8c2e2df4503a54f42345fb"));
    }

    #[test]
    fn bad_missing_or_stale_signatures_are_refused() {
        let header = sign(BODY, SECRET, T);
        assert_eq!(verify_signature(None, BODY, SECRET, T, 300), Err(SignatureError::Missing));
        assert_eq!(verify_signature(Some(&header), BODY, b"whsec_other", T, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(Some(&header), br#"{"id":"evt_2"}"#, SECRET, T, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(Some(&header), BODY, SECRET, T + 301, 300), Err(SignatureError::Stale { timestamp: T, distance: 301, tolerance: 300 }));
        assert_eq!(verify_signature(Some(&header), BODY, SECRET, T - 301, 300), Err(SignatureError::Stale { timestamp: T, distance: 301, tolerance: 300 }));
        assert_eq!(verify_signature(Some(&header), BODY, SECRET, T + 300, 300), Ok(T), "the edge of the tolerance is accepted");
        let v0_only = header.replace("v1=", "v0=");
        assert_eq!(verify_signature(Some(&v0_only), BODY, SECRET, T, 300), Err(SignatureError::NoSignature));
        let no_t = header.replace(&format!("t={T},"), "");
        assert_eq!(verify_signature(Some(&no_t), BODY, SECRET, T, 300), Err(SignatureError::NoTimestamp));
        assert_eq!(verify_signature(Some("t=abc,v1=00"), BODY, SECRET, T, 300), Err(SignatureError::NoTimestamp));
        assert_eq!(verify_signature(Some(&format!("t={T},v1=not-hex")), BODY, SECRET, T, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn an_event_without_id_type_or_object_is_refused() {
        assert!(matches!(CardEvent::parse(b"not json"), Err(CardError::BadRequest(_))));
        assert!(matches!(CardEvent::parse(br#"{"type":"x","data":{"object":{}}}"#), Err(CardError::BadRequest(m)) if m.contains("\"id\"")));
        assert!(matches!(CardEvent::parse(br#"{"id":"evt_1","data":{"object":{}}}"#), Err(CardError::BadRequest(m)) if m.contains("\"type\"")));
        assert!(matches!(CardEvent::parse(br#"{"id":"evt_1","type":"x"}"#), Err(CardError::BadRequest(m)) if m.contains("data.object")));
        let event = CardEvent::parse(br#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1"}}}"#).unwrap();
        assert_eq!((event.id.as_str(), event.event_type.as_str(), event.object["id"].as_str()), ("evt_1", "invoice.paid", Some("in_1")));
    }
}
