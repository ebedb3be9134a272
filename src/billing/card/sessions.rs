//! The member's payment method (issue 28 §2): the Checkout Sessions the service creates
//! itself, and the way back from card to crypto.
//!
//! One function makes every session ([`start`]): `subscription` mode, the plan's
//! `card_price_id` as the one line item, `wallet`, `plan_id` (and `customer_ref`) in the
//! session's and the subscription's metadata, the wallet as `client_reference_id`, and the
//! return URLs under `http.public_url`. It is recorded in `card_sessions` with what it was
//! for, so its `checkout.session.completed` is judged by that ([`super::session`]).
//!
//! - [`checkout`] ("Pay by card" on the checkout page): paid at once, or with the plan's
//!   free trial (`trial_period_days`) for a wallet that never had one and has no running
//!   plan; the processor charges at the trial's end.
//! - [`switch_to_card`]: the card subscription starts when the paid crypto time ends
//!   (`trial_end` = the subscription's end, or the scheduled plan's end, for that plan), so
//!   nothing is paid twice: the session completes with nothing paid and grants nothing; the
//!   first invoice, at `trial_end`, renews the plan from there. The processor takes a
//!   `trial_end` only 48 hours or more ahead ([`MIN_DEFERRAL_SECS`]); closer to the end the
//!   member renews with "Pay by card" on the checkout page, which also adds its period after
//!   the paid time.
//! - [`back_to_crypto`]: the card subscription is set to end at its period end at the
//!   processor; the paid card period runs out and the member then pays on-chain. The
//!   processor's `customer.subscription.updated` that follows records it here (the plan is
//!   `canceled`: no card renewal, access to the end of the period).

use alloy::primitives::Address;

use super::processor::{CreatedSession, Processor, ProcessorError, SessionRequest, UpdatedSubscription};
use crate::{
    billing::{
        activation::{self, Subscription},
        customers::CustomerRef,
        plans::{Catalog, Plan},
    },
    states::SubscriptionStatus,
    store::{
        self, Db, StoreError,
        card::{CardSubscriptionStatus, WalletCardSubscription},
        card_sessions::{CardSession, SessionPurpose},
    },
};

/// The processor takes a Checkout Session's `subscription_data.trial_end` only this far
/// ahead or more (Stripe: "at least 48 hours in the future").
pub const MIN_DEFERRAL_SECS: u64 = 48 * 3_600;

/// Why a session or a switch was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No `card.api_key` (404 `card_not_configured`).
    #[error("card payments are not configured on this service (card.api_key is not set); pay with crypto")]
    NotConfigured,
    /// No `http.public_url` to send the member back to (404 `card_not_configured`).
    #[error("card payments need http.public_url: the card processor sends the member back there")]
    NoPublicUrl,
    /// No such plan (404).
    #[error("no plan {0}; see GET /v1/plans")]
    UnknownPlan(u32),
    /// The plan has no processor price (409 `card_not_offered`).
    #[error("plan {0} ({1}) is not sold by card (it has no card_price_id); pay with crypto")]
    NotSoldByCard(u32, String),
    /// A card subscription already renews the plan (409 `already_paying_by_card`).
    #[error("your plan already renews by card (card subscription {0}); change or cancel it there, or go back to crypto")]
    AlreadyByCard(String),
    /// Nothing paid runs now to defer the card start to (409 `no_paid_time`).
    #[error("you have no running plan to move to card; buy one with \"Pay by card\" on the checkout page")]
    NoPaidTime,
    /// The paid time ends too soon for the processor to defer the first charge (409
    /// `switch_too_late`).
    #[error(
        "your paid time ends at {0} (unix), less than 48 hours from now: too soon for the card processor to start the card plan then; use \"Pay by card\" on the checkout page, whose period is added after your paid time"
    )]
    TooLate(u64),
    /// No card subscription renews the plan (409 `no_card_subscription`).
    #[error("your plan is not renewed by card, so there is nothing to switch back; you are paying with crypto already")]
    NoCardSubscription,
    /// The processor refused or could not be reached (502 `card_processor`).
    #[error(transparent)]
    Processor(#[from] ProcessorError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a session is made with: the processor, the catalog, the database, the public URL.
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    /// The processor (`None`: card payments are not configured).
    pub processor: Option<&'a Processor>,
    /// The plans.
    pub catalog: &'a Catalog,
    /// The store.
    pub db: &'a Db,
    /// `http.public_url`, which the return URLs start with.
    pub public_url: &'a str,
}

/// A session the member is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedSession {
    /// `cs_…`.
    pub session_id: String,
    /// The processor's page.
    pub url: String,
    /// The plan it sells.
    pub plan_id: u32,
    /// The free trial it offers, in days (0: none).
    pub trial_days: u32,
    /// When the card is first charged, when not at once (the trial's or the paid time's
    /// end).
    pub first_charge_at: Option<u64>,
}

/// What [`start`] creates.
struct Start<'p> {
    wallet: Address,
    plan: &'p Plan,
    purpose: SessionPurpose,
    customer_ref: Option<CustomerRef>,
    customer: Option<String>,
    trial_days: u32,
    trial_end: Option<u64>,
    success_path: String,
    cancel_path: String,
}

/// Returns `plan_id`'s plan and its processor price, or why it cannot be sold by card.
fn card_plan(catalog: &Catalog, plan_id: u32) -> Result<(&Plan, &str), SessionError> {
    let plan = catalog.get(plan_id).ok_or(SessionError::UnknownPlan(plan_id))?;
    let price = plan.card_price_id.as_deref().filter(|_| plan.card_price.is_some()).ok_or_else(|| SessionError::NotSoldByCard(plan.id, plan.name.clone()))?;
    Ok((plan, price))
}

/// Returns the plan a card subscription would renew after `sub` (its plan, or the
/// scheduled one) and when the paid time ends (the subscription's end, or the scheduled
/// plan's end).
pub fn renewal_plan(sub: &Subscription) -> (u32, u64) {
    match (sub.next_plan_id, sub.next_expires_at) {
        (Some(next), Some(end)) => (next, end),
        _ => (sub.plan_id, sub.expires_at),
    }
}

/// The wallet's card subscription that still renews, if any.
async fn renewing(db: &Db, wallet: Address) -> Result<Option<WalletCardSubscription>, StoreError> {
    let mut conn = db.pool().acquire().await?;
    Ok(store::card::newest_card_subscription(&mut conn, wallet).await?.filter(|c| c.subscription.status == CardSubscriptionStatus::Active))
}

/// Whether `sub` gives access at `now`.
fn live(sub: &Subscription, now: u64) -> bool {
    sub.status != SubscriptionStatus::Expired && sub.expires_at > now
}

/// "Pay by card" on the checkout page: a session for `plan_id` and `wallet`, with the
/// plan's free trial when the wallet never had one and has no running plan.
pub async fn checkout(s: Sessions<'_>, wallet: Address, plan_id: u32, customer_ref: Option<CustomerRef>, now: u64) -> Result<StartedSession, SessionError> {
    let processor = s.processor.ok_or(SessionError::NotConfigured)?;
    let (plan, _) = card_plan(s.catalog, plan_id)?;
    if let Some(card) = renewing(s.db, wallet).await? {
        return Err(SessionError::AlreadyByCard(card.id));
    }
    let mut conn = s.db.pool().acquire().await.map_err(StoreError::from)?;
    let running = activation::load(&mut conn, wallet).await?.is_some_and(|sub| live(&sub, now));
    let trial_days = if plan.trial_days > 0 && !running && !store::card::trial_used(&mut conn, wallet).await? { plan.trial_days } else { 0 };
    drop(conn);
    let start = Start {
        wallet,
        plan,
        purpose: SessionPurpose::Checkout,
        customer_ref,
        // Never the wallet's earlier card customer: this route is public, and the
        // processor's page would show that customer's email to whoever opened it.
        customer: None,
        trial_days,
        trial_end: None,
        success_path: "/checkout?card=paid&session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_path: format!("/checkout?plan={}&card=canceled", plan.id),
    };
    let mut started = self::start(s, processor, start, now).await?;
    if trial_days > 0 {
        started.first_charge_at = Some(now + u64::from(trial_days) * 86_400);
    }
    Ok(started)
}

/// Switches `wallet` from crypto to card: a session whose subscription's first charge is at
/// the end of the paid crypto time, for the plan that runs then.
pub async fn switch_to_card(s: Sessions<'_>, wallet: Address, now: u64) -> Result<StartedSession, SessionError> {
    let processor = s.processor.ok_or(SessionError::NotConfigured)?;
    if let Some(card) = renewing(s.db, wallet).await? {
        return Err(SessionError::AlreadyByCard(card.id));
    }
    let mut conn = s.db.pool().acquire().await.map_err(StoreError::from)?;
    let sub = activation::load(&mut conn, wallet).await?.filter(|sub| live(sub, now)).ok_or(SessionError::NoPaidTime)?;
    let customer_ref = store::customers::of_wallet(&mut conn, wallet).await?;
    let customer = store::card::newest_card_subscription(&mut conn, wallet).await?.and_then(|c| c.customer);
    drop(conn);
    let (plan_id, paid_end) = renewal_plan(&sub);
    let (plan, _) = card_plan(s.catalog, plan_id)?;
    if paid_end < now + MIN_DEFERRAL_SECS {
        return Err(SessionError::TooLate(paid_end));
    }
    let start = Start {
        wallet,
        plan,
        purpose: SessionPurpose::Switch,
        customer_ref,
        customer,
        trial_days: 0,
        trial_end: Some(paid_end),
        success_path: "/account?card=switched".into(),
        cancel_path: "/account?card=canceled".into(),
    };
    self::start(s, processor, start, now).await
}

/// Creates the session at the processor and records it (one function for both routes).
async fn start(s: Sessions<'_>, processor: &Processor, start: Start<'_>, now: u64) -> Result<StartedSession, SessionError> {
    let (plan, price_id) = card_plan(s.catalog, start.plan.id)?;
    let wallet = start.wallet.to_string();
    let mut metadata = vec![("wallet".to_string(), wallet.clone()), ("plan_id".to_string(), plan.id.to_string())];
    if let Some(customer) = &start.customer_ref {
        metadata.push(("customer_ref".to_string(), customer.as_str().to_string()));
    }
    let base = s.public_url.trim_end_matches('/');
    if base.is_empty() {
        return Err(SessionError::NoPublicUrl);
    }
    let request = SessionRequest {
        price_id: price_id.to_string(),
        metadata,
        client_reference_id: wallet,
        customer: start.customer,
        trial_period_days: (start.trial_days > 0).then_some(start.trial_days),
        trial_end: start.trial_end,
        success_url: format!("{base}{}", start.success_path),
        cancel_url: format!("{base}{}", start.cancel_path),
    };
    let CreatedSession { id, url } = processor.create_session(&request).await?;
    let record = CardSession {
        session_id: id.clone(),
        wallet: start.wallet,
        plan_id: plan.id,
        purpose: start.purpose,
        trial_end: start.trial_end,
        trial_days: start.trial_days,
        created_at: now,
    };
    let mut tx = s.db.begin_write().await?;
    store::card_sessions::record(&mut tx, &record).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(session = %id, wallet = %start.wallet, plan_id = plan.id, purpose = start.purpose.as_str(), trial_end = ?start.trial_end, "card checkout session created");
    Ok(StartedSession { session_id: id, url: url.unwrap_or_default(), plan_id: plan.id, trial_days: start.trial_days, first_charge_at: start.trial_end })
}

/// What going back to crypto did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackToCrypto {
    /// The card subscription set to end.
    pub card_subscription: String,
    /// The processor's answer.
    pub updated: UpdatedSubscription,
    /// When the card-paid time ends and the member pays on-chain (the plan's end).
    pub crypto_from: Option<u64>,
}

/// Sets `wallet`'s renewing card subscription to end at its period end at the processor.
pub async fn back_to_crypto(s: Sessions<'_>, wallet: Address) -> Result<BackToCrypto, SessionError> {
    let processor = s.processor.ok_or(SessionError::NotConfigured)?;
    let card = renewing(s.db, wallet).await?.ok_or(SessionError::NoCardSubscription)?;
    let updated = processor.cancel_at_period_end(&card.id).await?;
    let mut conn = s.db.pool().acquire().await.map_err(StoreError::from)?;
    let crypto_from = activation::load(&mut conn, wallet).await?.map(|sub| renewal_plan(&sub).1);
    tracing::info!(card_subscription = %card.id, %wallet, "card subscription set to end at its period end; the member goes back to crypto");
    Ok(BackToCrypto { card_subscription: card.id, updated, crypto_from })
}
