//! The merchant's member management: comp time, cancel, revoke, move to a new wallet, and
//! refunds of on-chain payments. Each action runs inside the caller's write transaction,
//! checks everything before it writes (an error leaves nothing behind once the caller drops
//! the transaction), and writes its outbox events and, where the badge changes, its badge
//! job.
//!
//! Comp time is kept apart from paid time: `subscriptions.comp_seconds` is the comped part
//! of the current expiry (counted as the last part of the period) and `comp_grants` the
//! ledger; an upgrade credits only the paid part at a price and carries comp time over
//! ([`super::activation::plan_change`]).

use alloy::primitives::Address;
use serde::Serialize;
use sqlx::AnyConnection;

use super::{
    activation::{self, Subscription},
    plans::{Catalog, Plan},
};
use crate::{
    chain::paid_log::payment_key,
    events::{
        ChangeSource, CompGranted, EventType, ExpiredReason, MemberCanceled, MemberEnded, Moved, PaymentRefunded, SubscriptionCanceled, SubscriptionExpired,
        SubscriptionSwitchCanceled, SubscriptionSwitchScheduled, SubscriptionUncanceled,
    },
    states::{BadgeAction, PaymentStatus, SubscriptionStatus},
    store::{
        StoreError,
        badges::{self, NewBadgeJob},
        card,
        comp_grants::{self, NewCompGrant},
        ledger::payments,
        outbox, subscriptions,
        switches::{self, PlanSwitch},
    },
};

/// Seconds in a comp day.
pub const DAY_SECS: u64 = 86_400;
/// Most comp days in one grant.
pub const MAX_COMP_DAYS: u32 = 3_650;
/// Longest reason or note kept.
pub const MAX_NOTE_CHARS: usize = 500;

/// Why an action was refused. Nothing was changed for any of them.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// Well-formed, but not something sold here: a token or plan the catalog does not take
    /// for this (422 `unsupported_token`, as a checkout answers).
    #[error("{0}")]
    NotSold(String),
    /// No such subscription or payment (404).
    #[error("{0}")]
    NotFound(String),
    /// The subscription or payment is not in a state that allows the action (409).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn text_field(field: &str, text: &str) -> Result<String, MemberError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MemberError::Invalid(format!("{field} must not be empty: say why, for the record")));
    }
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(MemberError::Invalid(format!("{field} must be at most {MAX_NOTE_CHARS} characters")));
    }
    Ok(text.to_string())
}

/// Loads `wallet`'s subscription, or 404.
async fn existing(conn: &mut AnyConnection, wallet: Address) -> Result<Subscription, MemberError> {
    activation::load(conn, wallet).await?.ok_or_else(|| MemberError::NotFound(format!("{wallet} has no subscription")))
}

/// Whether the subscription has ended (expired by status or by time).
fn ended(sub: &Subscription, now: u64) -> bool {
    sub.status == SubscriptionStatus::Expired || sub.expires_at <= now
}

/// A comp grant and the subscription after it.
#[derive(Debug, Clone, Serialize)]
pub struct CompGrant {
    /// Ledger id (`comp_grants.id`).
    pub grant_id: i64,
    /// Seconds granted.
    pub seconds: u64,
    /// The subscription afterwards.
    pub subscription: Subscription,
}

/// Grants `days` of comp time to `wallet`'s live subscription: its expiry (and any
/// scheduled downgrade after it) moves by the days, the comped part grows, the grant goes
/// into the ledger; badge job `update`, event `subscription.comp_granted`.
pub async fn grant_comp(conn: &mut AnyConnection, wallet: Address, days: u32, reason: &str, now: u64) -> Result<CompGrant, MemberError> {
    if !(1..=MAX_COMP_DAYS).contains(&days) {
        return Err(MemberError::Invalid(format!("days must be between 1 and {MAX_COMP_DAYS}")));
    }
    let reason = text_field("reason", reason)?;
    let mut sub = existing(conn, wallet).await?;
    if ended(&sub, now) {
        return Err(MemberError::Conflict(format!(
            "{wallet}'s subscription has already expired (at {}); comp time extends a live subscription only",
            sub.expires_at
        )));
    }
    let seconds = u64::from(days) * DAY_SECS;
    let previous = sub.expires_at;
    sub.expires_at += seconds;
    sub.comp_seconds += seconds;
    if let Some(next) = sub.next_expires_at.as_mut() {
        *next += seconds;
    }
    activation::save(conn, &sub, now).await?;
    let grant = NewCompGrant { wallet, days, seconds, reason: &reason, old_expires_at: previous, new_expires_at: sub.expires_at };
    let grant_id = comp_grants::record(conn, &grant, now).await?;
    activation::queue_badge(conn, wallet, BadgeAction::Update, sub.tier, sub.expires_at, now).await?;
    let data = CompGranted {
        comp_seconds: sub.comp_seconds,
        days,
        expires_at: sub.expires_at,
        grant_id,
        next_expires_at: sub.next_expires_at,
        next_plan_id: sub.next_plan_id,
        plan_id: sub.plan_id,
        previous_expires_at: previous,
        reason,
        seconds,
        status: sub.status,
        tier: sub.tier,
        wallet: sub.wallet,
    };
    let id = outbox::event_id(&[EventType::SubscriptionCompGranted.as_str(), &wallet.to_string(), &grant_id.to_string()]);
    outbox::write_for_member(conn, &id, data, sub.wallet, now as i64).await?;
    Ok(CompGrant { grant_id, seconds, subscription: sub })
}

/// Cancels `wallet`'s subscription: no renewal, access to the end of the paid period (the
/// badge already expires with it, so no badge job); event `subscription.canceled`.
pub async fn cancel(conn: &mut AnyConnection, wallet: Address, now: u64) -> Result<Subscription, MemberError> {
    cancel_by(conn, wallet, ChangeSource::Merchant, now).await
}

/// Refuses a member's own cancel or undo of a plan a card subscription renews: the processor
/// holds that renewal, and the card's own cancel reaches the service as its event.
async fn not_by_card(conn: &mut AnyConnection, wallet: Address) -> Result<(), MemberError> {
    if card::has_card_subscription(conn, wallet).await? {
        return Err(MemberError::Conflict(format!(
            "{wallet}'s plan is renewed by card: cancel or resume it where the card subscription is managed (the processor's portal)"
        )));
    }
    Ok(())
}

/// The member cancels their own plan from their account ([`cancel`]; `source` `member`).
pub async fn member_cancel(conn: &mut AnyConnection, wallet: Address, now: u64) -> Result<Subscription, MemberError> {
    existing(conn, wallet).await?;
    not_by_card(conn, wallet).await?;
    cancel_by(conn, wallet, ChangeSource::Member, now).await
}

/// The member takes back their cancellation before the period ends: the plan is `active`
/// again (nothing else changes); event `subscription.uncanceled` (`source` `member`).
pub async fn member_uncancel(conn: &mut AnyConnection, wallet: Address, now: u64) -> Result<Subscription, MemberError> {
    let mut sub = existing(conn, wallet).await?;
    not_by_card(conn, wallet).await?;
    if sub.status != SubscriptionStatus::Canceled {
        return Err(MemberError::Conflict(format!("{wallet}'s subscription is {}, not canceled: nothing to undo", sub.status)));
    }
    if sub.expires_at <= now {
        return Err(MemberError::Conflict(format!("{wallet}'s subscription ended at {}: buy the plan again instead", sub.expires_at)));
    }
    sub.status = SubscriptionStatus::Active;
    activation::save(conn, &sub, now).await?;
    let data = SubscriptionUncanceled::Member(canceled_view(&sub, ChangeSource::Member));
    let id = outbox::event_id(&[EventType::SubscriptionUncanceled.as_str(), &wallet.to_string(), &sub.expires_at.to_string(), &now.to_string()]);
    outbox::write_for_member(conn, &id, data, sub.wallet, now as i64).await?;
    Ok(sub)
}

/// Whether `switch` is still in force for `sub`: set for the period end `sub` still has,
/// with no paid lower plan queued after it. A payment that moved the end, or bought the lower
/// plan itself, settled it.
pub fn switch_in_force(switch: &PlanSwitch, sub: &Subscription) -> bool {
    switch.for_expires_at == sub.expires_at && sub.next_plan_id.is_none() && sub.status != SubscriptionStatus::Expired
}

/// `wallet`'s switch if one is in force for `sub` ([`switch_in_force`]).
pub async fn switch_of(conn: &mut AnyConnection, sub: &Subscription) -> Result<Option<PlanSwitch>, StoreError> {
    Ok(switches::get(conn, sub.wallet).await?.filter(|s| switch_in_force(s, sub)))
}

/// The member schedules a switch: the next renewal buys `plan` (another period of the same
/// tier, or a lower tier) in the token `symbol`, from the end of the current period. Nothing
/// is paid and the current plan is unchanged until then; event
/// `subscription.switch_scheduled`. Setting the same switch again changes nothing.
///
/// Refused: no subscription (404); an ended, canceled or card-renewed plan, a paid lower plan
/// already queued, or a higher tier, which is an upgrade paid for now (409); a token the plan
/// is not sold in (400).
pub async fn member_switch(
    conn: &mut AnyConnection,
    catalog: &Catalog,
    wallet: Address,
    plan: &Plan,
    symbol: &str,
    now: u64,
) -> Result<(Subscription, PlanSwitch), MemberError> {
    let sub = existing(conn, wallet).await?;
    not_by_card(conn, wallet).await?;
    if ended(&sub, now) {
        return Err(MemberError::Conflict(format!("{wallet}'s subscription has ended: buy a plan instead")));
    }
    if sub.status == SubscriptionStatus::Canceled {
        return Err(MemberError::Conflict(format!("{wallet}'s subscription is canceled and will not renew: keep the plan first, then switch")));
    }
    if sub.next_plan_id.is_some() {
        return Err(MemberError::Conflict(format!("{wallet} already paid for a lower plan that takes over at {}: it cannot be switched", sub.expires_at)));
    }
    if plan.tier > sub.tier {
        return Err(MemberError::Conflict(format!(
            "plan {} is a higher tier: an upgrade takes effect at once; preview it (GET /v1/me/plan-change) and pay for it",
            plan.id
        )));
    }
    let token = catalog.token(symbol.trim()).ok_or_else(|| MemberError::NotSold(format!("no token {symbol:?}; see GET /v1/plans")))?;
    if plan.price(token.address, 1).is_none() && plan.price_usd.is_none() {
        return Err(MemberError::NotSold(format!("plan {} is not sold in {}; see GET /v1/plans", plan.id, token.symbol)));
    }
    let switch = PlanSwitch { plan_id: plan.id, token: token.symbol.clone(), for_expires_at: sub.expires_at, requested_at: now };
    if let Some(current) = switch_of(conn, &sub).await?
        && (current.plan_id, &current.token) == (switch.plan_id, &switch.token)
    {
        return Ok((sub, current));
    }
    switches::put(conn, wallet, &switch).await?;
    // A mandate signed for another plan or token does not pay the switched renewal: automatic
    // renewal stops here, plainly (`subscription.renewal_disabled`), and the member consents
    // again for the new plan.
    if let Some(m) = crate::store::mandates::active_of(conn, wallet).await? {
        let reason = if m.plan_id != plan.id {
            Some(crate::events::RenewalOffReason::PlanChanged)
        } else if m.token != token.address {
            Some(crate::events::RenewalOffReason::TokenChanged)
        } else {
            None
        };
        if let Some(reason) = reason {
            super::renewals::turn_off(conn, wallet, reason, now).await?;
        }
    }
    let data = SubscriptionSwitchScheduled(switch_view(&sub, &switch, plan.tier));
    let id = outbox::event_id(&[EventType::SubscriptionSwitchScheduled.as_str(), &wallet.to_string(), &sub.expires_at.to_string(), &now.to_string()]);
    outbox::write_for_member(conn, &id, data, wallet, now as i64).await?;
    Ok((sub, switch))
}

/// The member takes back their scheduled switch: the next renewal buys the current plan
/// again; event `subscription.switch_canceled`. No switch in force: 404.
pub async fn member_unswitch(conn: &mut AnyConnection, catalog: &Catalog, wallet: Address, now: u64) -> Result<Subscription, MemberError> {
    let sub = existing(conn, wallet).await?;
    let stored = switches::get(conn, wallet).await?;
    let Some(switch) = stored.filter(|s| switch_in_force(s, &sub)) else {
        return Err(MemberError::NotFound(format!("{wallet} has no scheduled switch")));
    };
    switches::delete(conn, wallet).await?;
    let tier = catalog.get(switch.plan_id).map_or(sub.tier, |p| p.tier);
    let data = SubscriptionSwitchCanceled(switch_view(&sub, &switch, tier));
    let id = outbox::event_id(&[EventType::SubscriptionSwitchCanceled.as_str(), &wallet.to_string(), &sub.expires_at.to_string(), &now.to_string()]);
    outbox::write_for_member(conn, &id, data, wallet, now as i64).await?;
    Ok(sub)
}

fn switch_view(sub: &Subscription, switch: &PlanSwitch, switch_tier: u8) -> crate::events::PlanSwitch {
    crate::events::PlanSwitch {
        expires_at: sub.expires_at,
        plan_id: sub.plan_id,
        source: ChangeSource::Member,
        status: sub.status,
        switch_plan_id: switch.plan_id,
        switch_tier,
        switch_token: switch.token.clone(),
        tier: sub.tier,
        wallet: sub.wallet,
    }
}

fn canceled_view(sub: &Subscription, source: ChangeSource) -> MemberCanceled {
    MemberCanceled {
        comp_seconds: sub.comp_seconds,
        expires_at: sub.expires_at,
        next_expires_at: sub.next_expires_at,
        next_plan_id: sub.next_plan_id,
        plan_id: sub.plan_id,
        source,
        status: sub.status,
        tier: sub.tier,
        wallet: sub.wallet,
    }
}

async fn cancel_by(conn: &mut AnyConnection, wallet: Address, source: ChangeSource, now: u64) -> Result<Subscription, MemberError> {
    let mut sub = existing(conn, wallet).await?;
    if sub.status == SubscriptionStatus::Canceled {
        return Err(MemberError::Conflict(format!("{wallet}'s subscription is already canceled (access ends at {})", sub.expires_at)));
    }
    if ended(&sub, now) {
        return Err(MemberError::Conflict(format!("{wallet}'s subscription has already expired (at {})", sub.expires_at)));
    }
    sub.status = SubscriptionStatus::Canceled;
    activation::save(conn, &sub, now).await?;
    // A canceled plan does not renew: automatic renewal goes off with it (undoing the cancel
    // does not turn it on again; the member consents again).
    super::renewals::turn_off(conn, wallet, crate::events::RenewalOffReason::Canceled, now).await?;
    let data = SubscriptionCanceled::Merchant(canceled_view(&sub, source));
    let id = outbox::event_id(&[EventType::SubscriptionCanceled.as_str(), &wallet.to_string(), &sub.expires_at.to_string(), &now.to_string()]);
    outbox::write_for_member(conn, &id, data, sub.wallet, now as i64).await?;
    Ok(sub)
}

/// Ends `sub` now: status `expired`, expiry now, scheduled downgrade and comp time cleared;
/// badge job `revoke`; event `subscription.expired` with `reason`. The caller checked it is
/// live. `key` makes the event id stable (what caused it).
async fn end_now(conn: &mut AnyConnection, mut sub: Subscription, reason: ExpiredReason, key: &str, now: u64) -> Result<Subscription, MemberError> {
    let previous = sub.expires_at;
    activation::end_now(&mut sub, now);
    activation::save(conn, &sub, now).await?;
    // The member's account sessions end with it: their tokens stop renewing.
    crate::store::auth_sessions::end_wallet(conn, sub.wallet, now).await?;
    activation::queue_badge(conn, sub.wallet, BadgeAction::Revoke, sub.tier, now, now).await?;
    let data = SubscriptionExpired::Ended(MemberEnded {
        comp_seconds: sub.comp_seconds,
        expires_at: sub.expires_at,
        next_expires_at: sub.next_expires_at,
        next_plan_id: sub.next_plan_id,
        plan_id: sub.plan_id,
        previous_expires_at: previous,
        reason,
        status: sub.status,
        tier: sub.tier,
        wallet: sub.wallet,
    });
    let id = outbox::event_id(&[EventType::SubscriptionExpired.as_str(), &sub.wallet.to_string(), reason.as_str(), key]);
    outbox::write_for_member(conn, &id, data, sub.wallet, now as i64).await?;
    Ok(sub)
}

/// Revokes `wallet`'s subscription: it ends now and the badge is revoked (badge job
/// `revoke`, event `subscription.expired` with reason `revoked`).
pub async fn revoke(conn: &mut AnyConnection, wallet: Address, now: u64) -> Result<Subscription, MemberError> {
    let sub = existing(conn, wallet).await?;
    if ended(&sub, now) {
        return Err(MemberError::Conflict(format!("{wallet}'s subscription has already expired (at {})", sub.expires_at)));
    }
    end_now(conn, sub, ExpiredReason::Revoked, &now.to_string(), now).await
}

/// Moves `from`'s subscription to `to` (a member who lost a key): the row, its card
/// subscriptions and its badge (badge job `move`); event `subscription.moved`.
pub async fn move_member(conn: &mut AnyConnection, from: Address, to: Address, now: u64) -> Result<Subscription, MemberError> {
    if from == to {
        return Err(MemberError::Conflict("new_wallet is the wallet the subscription is already on".into()));
    }
    let mut sub = existing(conn, from).await?;
    if ended(&sub, now) {
        return Err(MemberError::Conflict(format!(
            "{from}'s subscription has already expired (at {}); there is nothing to move, a payment from {to} starts a new one",
            sub.expires_at
        )));
    }
    if activation::load(conn, to).await?.is_some() {
        return Err(MemberError::Conflict(format!("{to} already has a subscription; a wallet holds one subscription and one badge")));
    }
    subscriptions::move_wallet(conn, from, to, now).await?;
    // The old wallet's account sessions end: it no longer holds the membership.
    crate::store::auth_sessions::end_wallet(conn, from, now).await?;
    // Card renewals follow the member to the new wallet.
    card::move_card_subscriptions(conn, from, to, now).await?;
    // So does the record of the card trial: the new wallet has had it too.
    card::carry_trial(conn, from, to).await?;
    let job = NewBadgeJob { wallet: from, action: BadgeAction::Move, tier: sub.tier, expires_at: sub.expires_at, new_wallet: Some(to), cause: None };
    badges::queue(conn, &job, now).await?;
    sub.wallet = to;
    let data = Moved {
        comp_seconds: sub.comp_seconds,
        expires_at: sub.expires_at,
        from,
        next_expires_at: sub.next_expires_at,
        next_plan_id: sub.next_plan_id,
        plan_id: sub.plan_id,
        status: sub.status,
        tier: sub.tier,
        to,
        wallet: sub.wallet,
    };
    let id = outbox::event_id(&[EventType::SubscriptionMoved.as_str(), &from.to_string(), &to.to_string(), &now.to_string()]);
    // The customer the membership belongs to follows it (unless the new wallet has one).
    if let Some(customer) = crate::store::customers::of_wallet(conn, from).await? {
        crate::store::customers::bind(conn, to, &customer, now).await?;
    }
    outbox::write_for_member(conn, &id, data, to, now as i64).await?;
    Ok(sub)
}

/// A refunded payment and what it did to the payer's subscription.
#[derive(Debug, Clone, Serialize)]
pub struct Refund {
    /// `payments.id`.
    pub payment_id: i64,
    /// The payer.
    pub payer: Address,
    /// When it was marked refunded.
    pub refunded_at: u64,
    /// The merchant's note.
    pub note: String,
    /// The payer's subscription after it, when the payment had activated one that was
    /// still live (it ends now); None when there was nothing to end.
    pub subscription: Option<Subscription>,
}

/// Marks confirmed on-chain payment `payment_id` refunded (the money goes back outside the
/// service) and, when the payment activated a plan, ends the payer's subscription like a
/// revoke (reason `refunded`); events `payment.refunded` and `subscription.expired`.
pub async fn refund(conn: &mut AnyConnection, payment_id: i64, note: &str, now: u64) -> Result<Refund, MemberError> {
    let note = text_field("note", note)?;
    let paid =
        payments::for_refund(conn, payment_id).await?.ok_or_else(|| MemberError::NotFound(format!("no payment {payment_id} (ids as in GET /v1/payments)")))?;
    if paid.status != PaymentStatus::Confirmed {
        let status = paid.status;
        return Err(MemberError::Conflict(format!("payment {payment_id} is {status}, not confirmed: only a confirmed payment can be refunded")));
    }
    if let Some(at) = paid.refunded_at {
        return Err(MemberError::Conflict(format!("payment {payment_id} was already refunded (at {at})")));
    }
    let (payer, tx_hash, activated) = (paid.payer, paid.tx_hash, paid.activated);
    payments::mark_refunded(conn, payment_id, &note, now).await?;
    // The refund cancels the payment's receipt with a credit note.
    if let Some(receipt) = crate::store::receipts::live_of_payment(conn, payment_id).await? {
        crate::store::receipts::credit(conn, &receipt, &super::receipts::refund_credit(&receipt), now).await?;
    }
    let key = payment_key(paid.chain_id, tx_hash, paid.log_index);
    let id = outbox::event_id(&[EventType::PaymentRefunded.as_str(), &key]);
    let data = PaymentRefunded {
        amount: paid.amount.to_string(),
        checkout_id: paid.checkout_id.clone(),
        note: note.clone(),
        order_id: paid.order_id,
        payer,
        payment: key.clone(),
        payment_id,
        plan_id: paid.plan_id,
        refunded_at: now,
        token: paid.token,
        tx_hash,
    };
    outbox::write_for(conn, &id, data, paid.customer_ref.as_ref(), now as i64).await?;
    // A payment that activated nothing (unmatched) leaves the payer's plan alone.
    let live = match activated {
        true => activation::load(conn, payer).await?.filter(|s| !ended(s, now)),
        false => None,
    };
    let subscription = match live {
        Some(sub) => Some(end_now(conn, sub, ExpiredReason::Refunded, &key, now).await?),
        None => None,
    };
    Ok(Refund { payment_id, payer, refunded_at: now, note, subscription })
}
