//! Taking back what a payment bought when the chain no longer holds it: a confirmed
//! payment that a reorg deeper than the confirmations removed, and that the new branch,
//! `N` deep where it stood, did not mine again. The rules follow a refund's
//! ([`super::members::refund`]), except that only what this payment added is removed when
//! the subscription holds more (other payments, comp time):
//! - **activated** or **renewed**: the periods it bought come off the expiry (and off a
//!   scheduled downgrade after it, which the renewal had moved);
//! - **upgraded**: the subscription as it was before the upgrade comes back when nothing
//!   changed it since; otherwise the bought periods and the credited time come off;
//! - **downgrade scheduled**: the scheduled plan's time shrinks by the periods (the
//!   schedule goes when nothing is left of it), or, if the downgrade already took over, the
//!   expiry does;
//! - a subscription left with no time ends now (`expired`, badge revoked), otherwise its
//!   badge is updated.
//!
//! Pure: the watcher reads the inputs and writes the result in its pass's transaction.

use alloy::primitives::Address;

use super::{
    activation::{BadgeJob, Subscription, revised},
    plans::Catalog,
};
use crate::{
    events::{EventType, Payload, PaymentTakenBack, SubscriptionExpired, SubscriptionReversed, TakeBackReason},
    states::BadgeAction,
    store::{
        outbox::{self, NewEvent},
        subscriptions::ActivationKind,
    },
};

/// The payment the chain no longer holds.
#[derive(Debug, Clone)]
pub struct Vanished<'a> {
    /// Its payer (the subscription's wallet).
    pub wallet: Address,
    /// Periods it bought.
    pub periods: u32,
    /// Its stable key (`chain:tx:log`).
    pub payment_key: &'a str,
    /// Its order, checkout and transaction.
    pub cause: super::activation::Cause,
    /// Times its effects were taken back before.
    pub revision: u32,
    /// The customer the payer's membership belongs to.
    pub customer: Option<&'a crate::billing::customers::CustomerRef>,
}

/// What its activation did (the stored `activations` row).
#[derive(Debug, Clone)]
pub struct Bought {
    /// The change.
    pub kind: ActivationKind,
    /// The plan it paid for.
    pub plan_id: u32,
    /// The expiry right after it.
    pub new_expires_at: u64,
    /// Seconds an upgrade credited.
    pub credit_seconds: u64,
    /// The subscription before an upgrade.
    pub previous: Option<Subscription>,
}

/// The subscription after the take-back, with its badge job and event.
#[derive(Debug, Clone)]
pub struct TakenBack {
    /// The subscription afterwards.
    pub after: Subscription,
    /// Whether nothing was left (the subscription ended now).
    pub ended: bool,
    /// `update`, or `revoke` when it ended.
    pub job: BadgeJob,
    /// `subscription.reversed`, or `subscription.expired` (reason `reorged`) when it ended.
    pub event: NewEvent,
}

/// Removes `seconds` of paid time from the end of `s` (and from a scheduled plan after it).
fn remove(s: &mut Subscription, seconds: u64, now: u64) {
    s.expires_at = s.expires_at.saturating_sub(seconds);
    if let Some(next) = s.next_expires_at.as_mut() {
        *next = next.saturating_sub(seconds);
    }
    if s.next_expires_at.is_some_and(|next| next <= s.expires_at) {
        s.next_plan_id = None;
        s.next_expires_at = None;
    }
    s.comp_seconds = s.comp_seconds.min(s.expires_at.saturating_sub(now));
}

/// Returns `current` with what `vanished` bought (`bought`) taken back at `now`.
pub fn take_back(catalog: &Catalog, vanished: &Vanished<'_>, bought: &Bought, current: &Subscription, now: u64) -> TakenBack {
    let periods_secs = catalog.get(bought.plan_id).map_or(0, |p| p.period.seconds() * u64::from(vanished.periods));
    let mut after = current.clone();
    match bought.kind {
        ActivationKind::Upgraded => match &bought.previous {
            Some(previous) if after.plan_id == bought.plan_id && after.expires_at == bought.new_expires_at && after.next_plan_id.is_none() => {
                after = previous.clone();
                after.wallet = current.wallet;
            }
            _ => remove(&mut after, periods_secs + bought.credit_seconds, now),
        },
        ActivationKind::DowngradeScheduled if after.next_plan_id == Some(bought.plan_id) => {
            let next = after.next_expires_at.unwrap_or(after.expires_at).saturating_sub(periods_secs);
            if next <= after.expires_at {
                after.next_plan_id = None;
                after.next_expires_at = None;
            } else {
                after.next_expires_at = Some(next);
            }
        }
        _ => remove(&mut after, periods_secs, now),
    }
    let ended = after.expires_at <= now;
    if ended {
        super::activation::end_now(&mut after, now);
    }
    let (event_type, action) =
        if ended { (EventType::SubscriptionExpired, BadgeAction::Revoke) } else { (EventType::SubscriptionReversed, BadgeAction::Update) };
    let data = PaymentTakenBack {
        expires_at: after.expires_at,
        next_expires_at: after.next_expires_at,
        next_plan_id: after.next_plan_id,
        checkout_id: vanished.cause.checkout_id.clone(),
        order_id: vanished.cause.order_id,
        payment: vanished.payment_key.to_string(),
        plan_id: after.plan_id,
        previous_expires_at: current.expires_at,
        reason: TakeBackReason::Reorged,
        status: after.status,
        tier: after.tier,
        tx_hash: vanished.cause.tx_hash,
        wallet: after.wallet,
    };
    let payload: Payload = if ended { SubscriptionExpired::TakenBack(data).into() } else { SubscriptionReversed::Payment(data).into() };
    let event = NewEvent::for_customer(
        outbox::event_id(&revised(&[event_type.as_str(), vanished.payment_key, "reorged"], vanished.revision)),
        payload,
        vanished.customer,
    );
    let job = BadgeJob { wallet: after.wallet, action, tier: after.tier, expires_at: after.expires_at, new_wallet: None, cause: Some(vanished.cause.clone()) };
    TakenBack { after, ended, job, event }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;
    use crate::{
        billing::plans::MONTH_SECS,
        config::PlanConfig,
        ids::{CheckoutId, OrderId},
        states::SubscriptionStatus,
    };

    fn catalog() -> Catalog {
        let plan = |id: u32, tier: u8| PlanConfig {
            id,
            name: format!("plan {id}"),
            tier,
            period: "monthly".into(),
            prices: [("USD".to_string(), "10".to_string())].into(),
            card_price_cents: Some(1_000),
            card_price_id: None,
            trial_days: 0,
            tmai_discount_percent: None,
            price_usd: None,
        };
        let tokens = [crate::chain::deployment::TokenInfo { symbol: "USD".into(), address: Address::repeat_byte(1), decimals: 6, permit: true }];
        Catalog::new(&[plan(1, 1), plan(3, 3)], &tokens).unwrap()
    }

    fn sub(plan_id: u32, tier: u8, expires_at: u64) -> Subscription {
        Subscription {
            wallet: Address::repeat_byte(9),
            plan_id,
            tier,
            status: SubscriptionStatus::Active,
            started_at: 0,
            expires_at,
            next_plan_id: None,
            next_expires_at: None,
            comp_seconds: 0,
            paid_rate: None,
        }
    }

    fn vanished(periods: u32) -> Vanished<'static> {
        let cause = crate::billing::activation::Cause {
            order_id: OrderId::issued(7),
            checkout_id: Some(CheckoutId::from_stored("chk_7".into())),
            tx_hash: B256::repeat_byte(1),
        };
        Vanished { wallet: Address::repeat_byte(9), periods, payment_key: "31337:0x01:1", cause, revision: 0, customer: None }
    }

    fn bought(kind: &str, plan_id: u32, new_expires_at: u64) -> Bought {
        Bought { kind: kind.parse().expect("a stored activation kind"), plan_id, new_expires_at, credit_seconds: 0, previous: None }
    }

    #[test]
    fn a_renewal_taken_back_removes_its_periods_and_keeps_the_rest() {
        let now = 1_000;
        let current = sub(1, 1, now + 3 * MONTH_SECS);
        let out = take_back(&catalog(), &vanished(2), &bought("subscription.renewed", 1, current.expires_at), &current, now);
        assert!(!out.ended);
        assert_eq!(out.after.expires_at, now + MONTH_SECS);
        assert_eq!((out.job.action.as_str(), out.event.event_type.as_str()), ("update", "subscription.reversed"));
    }

    #[test]
    fn the_only_payment_taken_back_ends_the_subscription_and_revokes_the_badge() {
        let now = 1_000 + MONTH_SECS / 2;
        let current = sub(1, 1, 1_000 + MONTH_SECS);
        let out = take_back(&catalog(), &vanished(1), &bought("subscription.activated", 1, current.expires_at), &current, now);
        assert!(out.ended);
        assert_eq!((out.after.status.as_str(), out.after.expires_at), ("expired", now));
        assert_eq!((out.job.action.as_str(), out.event.event_type.as_str()), ("revoke", "subscription.expired"));
        assert!(out.event.body.contains(r#""reason":"reorged""#), "{}", out.event.body);
    }

    #[test]
    fn an_upgrade_taken_back_restores_the_subscription_before_it_when_nothing_changed_since() {
        let now = 5_000;
        let before = sub(1, 1, now + 10 * 86_400);
        let mut current = sub(3, 3, now + MONTH_SECS + 3_000);
        current.started_at = before.started_at;
        let mut b = bought("subscription.upgraded", 3, current.expires_at);
        b.previous = Some(before.clone());
        b.credit_seconds = 3_000;
        let out = take_back(&catalog(), &vanished(1), &b, &current, now);
        assert_eq!(out.after, before);
        // Changed since (renewed again): the bought and credited time comes off instead.
        current.expires_at += MONTH_SECS;
        let out = take_back(&catalog(), &vanished(1), &b, &current, now);
        assert_eq!((out.after.tier, out.after.expires_at), (3, now + MONTH_SECS));
    }

    #[test]
    fn a_scheduled_downgrade_taken_back_shrinks_or_drops_the_schedule() {
        let now = 1_000;
        let mut current = sub(3, 3, now + MONTH_SECS);
        current.next_plan_id = Some(1);
        current.next_expires_at = Some(now + 3 * MONTH_SECS);
        let out = take_back(&catalog(), &vanished(1), &bought("subscription.downgrade_scheduled", 1, current.expires_at), &current, now);
        assert_eq!((out.after.next_plan_id, out.after.next_expires_at), (Some(1), Some(now + 2 * MONTH_SECS)));
        assert_eq!(out.after.expires_at, current.expires_at);
        let out = take_back(&catalog(), &vanished(2), &bought("subscription.downgrade_scheduled", 1, current.expires_at), &current, now);
        assert_eq!((out.after.next_plan_id, out.after.next_expires_at), (None, None));
    }
}
