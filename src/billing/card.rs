//! Card payments in (DESIGN.md flow 8): the processor's signed webhook activates, renews or
//! cancels a plan for the wallet named in its metadata, and queues the same badge job and
//! events as an on-chain payment.
//!
//! - [`verify_signature`] checks Stripe's `Stripe-Signature` header (`t=<unix>,v1=<hex>…`,
//!   HMAC-SHA256 of `"{t}.{body}"`), a pure function of the header, body, secret and time.
//! - [`handle`] applies one parsed event inside the caller's write transaction. The event
//!   id goes into `card_events` in that transaction, so each processor event applies once:
//!   a replay finds the row and changes nothing.
//!
//! Events handled:
//! - `checkout.session.completed`: `metadata.wallet` and `metadata.plan_id` name the member
//!   and plan; a wallet without a live subscription starts the plan's trial (card payments
//!   only), otherwise one period follows the on-chain rules ([`plan_change`]);
//! - `invoice.paid`: the first invoice (`billing_reason` `subscription_create`) is covered by
//!   the session and only acknowledged; later ones renew by one period from the later of
//!   now and the expiry (a trial or period that just ran out is continued, not restarted);
//! - `customer.subscription.deleted`: the subscription is `canceled` (no renewal; access to
//!   the end of the paid period);
//! - anything else is recorded as `ignored`.

use alloy::primitives::Address;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use sqlx::{AnyConnection, Row};

use super::{
    activation::{self, ChangeKind, Subscription, plan_change},
    plans::{Catalog, Plan},
};
use crate::store::{StoreError, address_bytes, outbox, to_address};

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
    let matches = signatures
        .iter()
        .filter_map(|hex| alloy::hex::decode(hex).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
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
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CardError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// What handling an event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handled {
    /// `processed`, `acknowledged` (valid, nothing to change), `ignored` (a type not
    /// handled) or `duplicate` (handled before; nothing changed now).
    pub status: &'static str,
    /// What it did: `trialing`, `activated`, `renewed`, `upgraded`, `downgrade_scheduled`,
    /// `canceled`, `first_invoice`, `unknown_subscription`, … (for a duplicate, what the
    /// first delivery did).
    pub outcome: String,
    /// The member's wallet, when the event named one.
    pub wallet: Option<Address>,
}

/// Applies `event` inside the caller's write transaction at `now`. The caller commits.
pub async fn handle(conn: &mut AnyConnection, catalog: &Catalog, event: &CardEvent, now: u64) -> Result<Handled, CardError> {
    // Claim the event id first: a concurrent delivery of the same event waits here (on
    // PostgreSQL, on the row lock) and then finds it taken.
    let claimed = sqlx::query(
        "INSERT INTO card_events (event_id, event_type, outcome, received_at) VALUES ($1, $2, 'pending', $3) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.event_type)
    .bind(now as i64)
    .execute(&mut *conn)
    .await?;
    if claimed.rows_affected() == 0 {
        let row = sqlx::query("SELECT outcome, wallet FROM card_events WHERE event_id = $1").bind(&event.id).fetch_one(&mut *conn).await?;
        let wallet = row.try_get::<Option<Vec<u8>>, _>("wallet")?.map(|b| to_address(&b, "card_events.wallet")).transpose()?;
        return Ok(Handled { status: "duplicate", outcome: row.try_get("outcome")?, wallet });
    }
    let handled = match event.event_type.as_str() {
        "checkout.session.completed" => session_completed(conn, catalog, event, now).await?,
        "invoice.paid" => invoice_paid(conn, catalog, event, now).await?,
        "customer.subscription.deleted" => subscription_deleted(conn, event, now).await?,
        _ => Handled { status: "ignored", outcome: "ignored".into(), wallet: None },
    };
    sqlx::query("UPDATE card_events SET outcome = $1, wallet = $2 WHERE event_id = $3")
        .bind(&handled.outcome)
        .bind(handled.wallet.map(address_bytes))
        .bind(&event.id)
        .execute(&mut *conn)
        .await?;
    Ok(handled)
}

/// Reads a string field at `pointer` (None when absent, null or empty).
fn text_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The wallet and plan a card purchase is for, from metadata the merchant set when creating
/// the Checkout Session (or subscription).
fn member_from(metadata: &Value, catalog: &Catalog, event: &CardEvent, place: &str) -> Result<(Address, u32), CardError> {
    let hint = "create the Checkout Session with metadata {\"wallet\": \"0x…\", \"plan_id\": <id from GET /v1/plans>}";
    let wallet_text = metadata.get("wallet").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        CardError::MissingMetadata(format!("{} {}: {place}.wallet is missing; {hint}", event.event_type, event.id))
    })?;
    let wallet = parse_wallet(wallet_text).ok_or_else(|| {
        CardError::BadWallet(format!(
            "{} {}: {place}.wallet {wallet_text:?} is not a wallet address (0x and 40 hex digits, not zero); {hint}",
            event.event_type, event.id
        ))
    })?;
    let plan_id = match metadata.get("plan_id") {
        None | Some(Value::Null) => {
            return Err(CardError::MissingMetadata(format!("{} {}: {place}.plan_id is missing; {hint}", event.event_type, event.id)));
        }
        Some(Value::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
        Some(_) => None,
    };
    let Some(plan_id) = plan_id else {
        return Err(CardError::UnknownPlan(format!(
            "{} {}: {place}.plan_id {} is not a plan id; {hint}",
            event.event_type, event.id, metadata["plan_id"]
        )));
    };
    if catalog.get(plan_id).is_none() {
        return Err(CardError::UnknownPlan(format!(
            "{} {}: {place}.plan_id {plan_id} is not a plan of the catalog (see GET /v1/plans)",
            event.event_type, event.id
        )));
    }
    Ok((wallet, plan_id))
}

fn parse_wallet(text: &str) -> Option<Address> {
    if !(text.len() == 42 && text.starts_with("0x")) {
        return None;
    }
    text.parse::<Address>().ok().filter(|a| *a != Address::ZERO)
}

/// Loads the card subscription `id`: its wallet and plan.
async fn card_subscription(conn: &mut AnyConnection, id: &str) -> Result<Option<(Address, u32)>, CardError> {
    let row = sqlx::query("SELECT wallet, plan_id FROM card_subscriptions WHERE card_subscription_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let wallet = to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "card_subscriptions.wallet")?;
    Ok(Some((wallet, row.try_get::<i64, _>("plan_id")? as u32)))
}

/// The subscription after a card payment, and the event name and outcome to report.
struct Applied {
    change_kind: ChangeKind,
    outcome: &'static str,
    after: Subscription,
    old_expires_at: Option<u64>,
    credit_seconds: u64,
}

/// A card payment for one period of a plan.
struct Payment<'a> {
    wallet: Address,
    plan: &'a Plan,
    /// Whether a wallet without a live subscription starts with the plan's trial (a new
    /// checkout); otherwise it is a renewal of a card subscription.
    trial: bool,
    card_subscription: Option<&'a str>,
}

/// Applies one card-paid period of the plan to the wallet (or its trial), queues the badge
/// job and writes the event.
async fn apply_payment(conn: &mut AnyConnection, catalog: &Catalog, payment: Payment<'_>, event: &CardEvent, now: u64) -> Result<Applied, CardError> {
    let Payment { wallet, plan, trial, card_subscription } = payment;
    let current = activation::load(conn, wallet).await?;
    let live = current.as_ref().filter(|c| c.status != "expired" && c.expires_at > now);
    let applied = if trial && live.is_none() && plan.trial_days > 0 {
        let after = Subscription {
            wallet,
            plan_id: plan.id,
            tier: plan.tier,
            status: "trialing".into(),
            started_at: now,
            expires_at: now + u64::from(plan.trial_days) * 86_400,
            next_plan_id: None,
            next_expires_at: None,
            comp_seconds: 0,
        };
        Applied { change_kind: ChangeKind::Activated, outcome: "trialing", after, old_expires_at: current.as_ref().map(|c| c.expires_at), credit_seconds: 0 }
    } else if let Some(cur) = current.as_ref().filter(|c| {
        // A card renewal is charged when the trial or period ends, so it usually arrives
        // just after: it continues that subscription (renewed from now) rather than
        // starting a new one, unless the subscription was ended on purpose.
        !trial && c.expires_at <= now && c.tier == plan.tier && c.next_plan_id.is_none() && ["trialing", "active"].contains(&c.status.as_str())
    }) {
        let mut after = cur.clone();
        after.plan_id = plan.id;
        after.status = "active".into();
        after.expires_at = now + plan.period.seconds();
        after.comp_seconds = 0;
        Applied { change_kind: ChangeKind::Renewed, outcome: "renewed", after, old_expires_at: Some(cur.expires_at), credit_seconds: 0 }
    } else {
        // A card payment has no token: credit on upgrades is priced in card cents.
        let change = plan_change(current.as_ref(), catalog, wallet, plan, 1, Address::ZERO, now);
        let outcome = match change.kind {
            ChangeKind::Activated => "activated",
            ChangeKind::Renewed => "renewed",
            ChangeKind::Upgraded => "upgraded",
            ChangeKind::DowngradeScheduled => "downgrade_scheduled",
        };
        Applied { change_kind: change.kind, outcome, after: change.after, old_expires_at: change.old_expires_at, credit_seconds: change.credit_seconds }
    };
    activation::save(conn, &applied.after, now).await?;
    if applied.change_kind != ChangeKind::DowngradeScheduled {
        let action = if current.is_none() { "issue" } else { "update" };
        activation::queue_badge(conn, wallet, action, applied.after.tier, applied.after.expires_at, now).await?;
    }
    let name = applied.change_kind.event();
    let a = &applied.after;
    outbox::write(conn, &outbox::event_id(&[name, "card", &event.id]), name, &serde_json::json!({
        "wallet": wallet,
        "plan_id": a.plan_id,
        "tier": a.tier,
        "status": a.status,
        "expires_at": a.expires_at,
        "previous_expires_at": applied.old_expires_at,
        "credit_seconds": applied.credit_seconds,
        "next_plan_id": a.next_plan_id,
        "next_expires_at": a.next_expires_at,
        "source": "card",
        "card_event": event.id,
        "card_subscription": card_subscription,
    }))
    .await?;
    Ok(applied)
}

async fn session_completed(conn: &mut AnyConnection, catalog: &Catalog, event: &CardEvent, now: u64) -> Result<Handled, CardError> {
    let object = &event.object;
    let metadata = object.get("metadata").filter(|m| m.is_object()).ok_or_else(|| {
        CardError::MissingMetadata(format!(
            "{} {}: data.object.metadata is missing; create the Checkout Session with metadata {{\"wallet\": \"0x…\", \"plan_id\": <id>}}",
            event.event_type, event.id
        ))
    })?;
    let (wallet, plan_id) = member_from(metadata, catalog, event, "data.object.metadata")?;
    let plan = catalog.get(plan_id).expect("checked by member_from");
    let subscription = text_at(object, "/subscription");
    let applied = apply_payment(conn, catalog, Payment { wallet, plan, trial: true, card_subscription: subscription }, event, now).await?;
    if let Some(id) = subscription {
        sqlx::query(
            "INSERT INTO card_subscriptions (card_subscription_id, wallet, plan_id, customer, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $5) ON CONFLICT (card_subscription_id) DO UPDATE SET wallet = excluded.wallet, \
             plan_id = excluded.plan_id, customer = excluded.customer, status = 'active', updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(address_bytes(wallet))
        .bind(i64::from(plan_id))
        .bind(text_at(object, "/customer"))
        .bind(now as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Handled { status: "processed", outcome: applied.outcome.into(), wallet: Some(wallet) })
}

async fn invoice_paid(conn: &mut AnyConnection, catalog: &Catalog, event: &CardEvent, now: u64) -> Result<Handled, CardError> {
    let object = &event.object;
    // `subscription` on the invoice; newer API versions move it under `parent`.
    let subscription = text_at(object, "/subscription").or_else(|| text_at(object, "/parent/subscription_details/subscription"));
    if text_at(object, "/billing_reason") == Some("subscription_create") {
        // The Checkout Session covered the first period; Stripe sends both.
        let wallet = match subscription {
            Some(id) => card_subscription(conn, id).await?.map(|(w, _)| w),
            None => None,
        };
        return Ok(Handled { status: "acknowledged", outcome: "first_invoice".into(), wallet });
    }
    let known = match subscription {
        Some(id) => card_subscription(conn, id).await?,
        None => None,
    };
    let (wallet, plan_id) = match known {
        Some(found) => found,
        None => {
            let metadata = object
                .pointer("/subscription_details/metadata")
                .or_else(|| object.pointer("/parent/subscription_details/metadata"))
                .filter(|m| m.is_object())
                .ok_or_else(|| {
                    CardError::MissingMetadata(format!(
                        "{} {}: card subscription {} is unknown here and the invoice has no subscription_details.metadata \
                         {{wallet, plan_id}}; set that metadata on the subscription (subscription_data.metadata in the Checkout Session)",
                        event.event_type,
                        event.id,
                        subscription.unwrap_or("(none)")
                    ))
                })?;
            member_from(metadata, catalog, event, "data.object.subscription_details.metadata")?
        }
    };
    let plan = catalog.get(plan_id).ok_or_else(|| {
        CardError::UnknownPlan(format!("{} {}: plan {plan_id} of this card subscription is no longer in the catalog", event.event_type, event.id))
    })?;
    let applied = apply_payment(conn, catalog, Payment { wallet, plan, trial: false, card_subscription: subscription }, event, now).await?;
    Ok(Handled { status: "processed", outcome: applied.outcome.into(), wallet: Some(wallet) })
}

async fn subscription_deleted(conn: &mut AnyConnection, event: &CardEvent, now: u64) -> Result<Handled, CardError> {
    let acknowledged = |outcome: &str, wallet| Handled { status: "acknowledged", outcome: outcome.into(), wallet };
    let Some(id) = text_at(&event.object, "/id") else {
        return Err(CardError::BadRequest(format!("{} {}: data.object.id (the card subscription) is missing", event.event_type, event.id)));
    };
    let Some((wallet, _)) = card_subscription(conn, id).await? else {
        tracing::warn!(card_subscription = id, event = %event.id, "card subscription deleted that was never activated here");
        return Ok(acknowledged("unknown_subscription", None));
    };
    sqlx::query("UPDATE card_subscriptions SET status = 'canceled', updated_at = $1 WHERE card_subscription_id = $2")
        .bind(now as i64)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let Some(mut sub) = activation::load(conn, wallet).await? else {
        return Ok(acknowledged("no_subscription", Some(wallet)));
    };
    if sub.status == "expired" || sub.expires_at <= now {
        return Ok(acknowledged("already_ended", Some(wallet)));
    }
    if sub.status == "canceled" {
        return Ok(acknowledged("already_canceled", Some(wallet)));
    }
    sub.status = "canceled".into();
    activation::save(conn, &sub, now).await?;
    outbox::write(conn, &outbox::event_id(&["subscription.canceled", "card", &event.id]), "subscription.canceled", &serde_json::json!({
        "wallet": wallet,
        "plan_id": sub.plan_id,
        "tier": sub.tier,
        "status": "canceled",
        "expires_at": sub.expires_at,
        "source": "card",
        "card_event": event.id,
        "card_subscription": id,
    }))
    .await?;
    Ok(Handled { status: "processed", outcome: "canceled".into(), wallet: Some(wallet) })
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
        assert_eq!(
            verify_signature(Some(&header), BODY, SECRET, T + 301, 300),
            Err(SignatureError::Stale { timestamp: T, distance: 301, tolerance: 300 })
        );
        assert_eq!(
            verify_signature(Some(&header), BODY, SECRET, T - 301, 300),
            Err(SignatureError::Stale { timestamp: T, distance: 301, tolerance: 300 })
        );
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
