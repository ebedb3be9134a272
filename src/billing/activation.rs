//! What a confirmed payment does to the payer's subscription, applied in the transaction
//! that confirms the payment: create or extend it, queue the badge job, write the events.
//!
//! Rules (DESIGN.md flow 4):
//! - no subscription, or an expired one: **activated** for `periods` from now;
//! - same tier: **renewed** from the later of now and the current expiry;
//! - higher tier: **upgraded** at once; the unused *paid* time of the old tier (and of a
//!   scheduled downgrade) is credited at what was paid for it: the subscription keeps the
//!   lowest price per second among the payments whose time it runs on
//!   ([`Subscription::paid_rate`]), and the credit is that time's worth at the new plan's
//!   list price per second, rounded down. A payment's worth is its order's USD value at
//!   the locked rate (after the TMAI discount), for plans priced in tokens the plan's dollar
//!   or card price less its TMAI discount when paid in TMAI, for cards what was collected.
//!   Unused comp time (granted, not bought) is carried over as it is, never priced, and the
//!   rest of a (card) trial is not credited;
//! - lower tier: **downgrade scheduled**; it takes effect when the current period ends.
//!
//! Exactly once: the `activations` row is keyed by the payment; if it exists, nothing runs.

use std::collections::{HashMap, HashSet};

use alloy::primitives::Address;
use serde::Serialize;
use sqlx::AnyConnection;

use super::{
    plans::{Catalog, Plan},
    receipts,
};
pub use crate::store::{
    badges::{Cause, NewBadgeJob as BadgeJob},
    subscriptions::{ActivationKind, ActivationRow, Subscription, load, save},
};
use crate::{
    billing::customers::CustomerRef,
    events::{
        ChangeShape, DowngradeTookEffect, EventType, Payload, PaymentChange, SubscriptionActivated, SubscriptionDowngradeScheduled, SubscriptionRenewed,
        SubscriptionUpgraded,
    },
    money::{PaidRate, Usd},
    states::{BadgeAction, SubscriptionStatus},
    store::{
        StoreError, badges,
        outbox::{self, NewEvent},
        subscriptions,
    },
};

/// What kind of change a payment made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new (or lapsed) subscription.
    Activated,
    /// More time at the same tier.
    Renewed,
    /// A higher tier at once, with credit.
    Upgraded,
    /// A lower tier from the end of the current period.
    DowngradeScheduled,
}

impl ChangeKind {
    /// Returns the outbox event.
    pub fn event(self) -> EventType {
        match self {
            Self::Activated => EventType::SubscriptionActivated,
            Self::Renewed => EventType::SubscriptionRenewed,
            Self::Upgraded => EventType::SubscriptionUpgraded,
            Self::DowngradeScheduled => EventType::SubscriptionDowngradeScheduled,
        }
    }

    /// Returns the outbox event's payload: `shape` as this kind's event.
    pub fn payload(self, shape: ChangeShape) -> Payload {
        match self {
            Self::Activated => SubscriptionActivated::from(shape).into(),
            Self::Renewed => SubscriptionRenewed::from(shape).into(),
            Self::Upgraded => SubscriptionUpgraded::from(shape).into(),
            Self::DowngradeScheduled => SubscriptionDowngradeScheduled::from(shape).into(),
        }
    }
}

impl From<ChangeKind> for ActivationKind {
    /// The `activations` row's kind (stored as the change's event name).
    fn from(kind: ChangeKind) -> Self {
        match kind {
            ChangeKind::Activated => Self::Activated,
            ChangeKind::Renewed => Self::Renewed,
            ChangeKind::Upgraded => Self::Upgraded,
            ChangeKind::DowngradeScheduled => Self::DowngradeScheduled,
        }
    }
}

/// The subscription after a payment, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Kind of change.
    pub kind: ChangeKind,
    /// The subscription afterwards.
    pub after: Subscription,
    /// Expiry before the payment (None for a new subscription).
    pub old_expires_at: Option<u64>,
    /// Seconds credited from unused time (upgrades).
    pub credit_seconds: u64,
}

/// Returns the rate `sub`'s unused paid time is valued at: what was paid for it
/// ([`Subscription::paid_rate`]), or for a row written before that was kept, its plan's
/// list price ([`Plan::list_rate`]); time with no dollar worth is worth nothing.
pub(crate) fn held_rate(sub: &Subscription, catalog: &Catalog) -> PaidRate {
    sub.paid_rate.or_else(|| catalog.get(sub.plan_id).and_then(Plan::list_rate)).unwrap_or(PaidRate::ZERO)
}

/// Returns `seconds` of time held at `rate` converted into `new`'s time at its list
/// price, rounded down; 0 when `new` has no dollar worth.
pub fn credit(seconds: u64, rate: PaidRate, new: &Plan) -> u64 {
    new.list_rate().map_or(0, |to| rate.convert(seconds, to))
}

/// Computes what paying `periods` of `plan`, worth `paid` dollars, at `now` does to
/// `current`.
///
/// `paid` is what the payment was worth ([`purchase_worth`]; a card payment's collected
/// amount); the subscription keeps the lowest price per second among the payments whose
/// time it runs on, and an upgrade credits the unused paid time at that price.
pub fn plan_change(current: Option<&Subscription>, catalog: &Catalog, wallet: Address, plan: &Plan, periods: u32, paid: Usd, now: u64) -> Change {
    change_for_time(current, catalog, wallet, plan, plan.period.seconds() * u64::from(periods), paid, now)
}

/// [`plan_change`] for `bought` seconds of `plan` (a card invoice that collected more or
/// less than one period's price buys that share of a period).
pub fn change_for_time(current: Option<&Subscription>, catalog: &Catalog, wallet: Address, plan: &Plan, bought: u64, paid: Usd, now: u64) -> Change {
    let bought_rate = PaidRate::new(paid, bought);
    let fresh = |kind| Change {
        kind,
        after: Subscription {
            wallet,
            plan_id: plan.id,
            tier: plan.tier,
            status: SubscriptionStatus::Active,
            started_at: now,
            expires_at: now + bought,
            next_plan_id: None,
            next_expires_at: None,
            comp_seconds: 0,
            paid_rate: bought_rate,
        },
        old_expires_at: current.map(|c| c.expires_at),
        credit_seconds: 0,
    };
    let Some(cur) = current.filter(|c| c.expires_at > now && c.status != SubscriptionStatus::Expired) else {
        return fresh(ChangeKind::Activated);
    };
    let mut after = cur.clone();
    after.status = SubscriptionStatus::Active;
    if plan.tier == cur.tier {
        after.plan_id = plan.id;
        after.expires_at = cur.expires_at.max(now) + bought;
        if let Some(next) = after.next_expires_at.as_mut() {
            *next += bought;
        }
        after.paid_rate = PaidRate::lower(Some(held_rate(cur, catalog)), bought_rate);
        return Change { kind: ChangeKind::Renewed, after, old_expires_at: Some(cur.expires_at), credit_seconds: 0 };
    }
    if plan.tier > cur.tier {
        // Comp time sits at the end of the period: what is left of it is carried over as is,
        // and only the paid rest (and a scheduled downgrade's paid time) is credited, at the
        // lowest price per second it was paid at. A trial was not paid for: upgrading from
        // one credits nothing.
        let left = cur.expires_at - now;
        let comp_left = cur.comp_seconds.min(left);
        let paid_left = if cur.status == SubscriptionStatus::Trialing { 0 } else { left - comp_left };
        let scheduled = match (cur.next_plan_id, cur.next_expires_at) {
            (Some(_), Some(next_end)) => next_end.saturating_sub(cur.expires_at),
            _ => 0,
        };
        let credit_seconds = credit(paid_left.saturating_add(scheduled), held_rate(cur, catalog), plan);
        // The credited time is worth the new plan's list price (what it was converted at).
        let credited_rate = plan.list_rate().filter(|_| credit_seconds > 0);
        after.plan_id = plan.id;
        after.tier = plan.tier;
        after.expires_at = now + bought + credit_seconds + comp_left;
        after.comp_seconds = comp_left;
        after.next_plan_id = None;
        after.next_expires_at = None;
        after.paid_rate = Some(PaidRate::lower(bought_rate, credited_rate).unwrap_or(PaidRate::ZERO));
        return Change { kind: ChangeKind::Upgraded, after, old_expires_at: Some(cur.expires_at), credit_seconds };
    }
    // A downgrade: queue the lower plan after the current (and any already scheduled) time.
    let start = cur.next_expires_at.unwrap_or(cur.expires_at);
    after.next_plan_id = Some(plan.id);
    after.next_expires_at = Some(start + bought);
    after.paid_rate = PaidRate::lower(Some(held_rate(cur, catalog)), bought_rate);
    Change { kind: ChangeKind::DowngradeScheduled, after, old_expires_at: Some(cur.expires_at), credit_seconds: 0 }
}

/// Returns what an on-chain payment of `periods` of `plan` in `token` was worth in dollars:
/// the order's USD value at its locked rate (`usd`, set for orders priced in dollars: the
/// amount after the TMAI discount), else the plan's own dollar or card price for those
/// periods, less its TMAI discount when paid in TMAI ([`Catalog::token_payment_worth`]).
pub fn purchase_worth(catalog: &Catalog, plan: &Plan, periods: u32, token: Address, usd: Option<Usd>) -> Usd {
    usd.unwrap_or_else(|| catalog.token_payment_worth(plan, periods, token))
}

/// Ends `sub` at `now` (what was taken back left it no time): `expired`, nothing scheduled,
/// no comp time left.
pub(crate) fn end_now(sub: &mut Subscription, now: u64) {
    sub.status = SubscriptionStatus::Expired;
    sub.expires_at = now;
    sub.next_plan_id = None;
    sub.next_expires_at = None;
    sub.comp_seconds = 0;
}

/// Queues a badge job setting `wallet`'s badge to `tier` until `expires_at` (no payment
/// behind it: a merchant's action or a card event).
pub async fn queue_badge(conn: &mut AnyConnection, wallet: Address, action: BadgeAction, tier: u8, expires_at: u64, now: u64) -> Result<(), StoreError> {
    badges::queue(conn, &BadgeJob { wallet, action, tier, expires_at, new_wallet: None, cause: None }, now).await
}

/// The confirmed, matched payment being activated.
#[derive(Debug, Clone)]
pub struct PaidOrder {
    /// `payments.id`.
    pub payment_id: i64,
    /// Its order, checkout and transaction.
    pub cause: Cause,
    /// Stable key of the payment for event ids (`chain:tx:log`).
    pub payment_key: String,
    /// Times the payment's effects were taken back before (a reorg deeper than the
    /// confirmations); part of the event ids from the first on, so a payment that comes
    /// back after that activates with events of its own.
    pub revision: u32,
    /// The payer, who receives the plan.
    pub wallet: Address,
    /// Plan bought.
    pub plan_id: u32,
    /// Periods bought.
    pub periods: u32,
    /// Token paid in.
    pub token: Address,
    /// The order's USD value at its locked rate (orders priced in dollars).
    pub usd: Option<Usd>,
    /// The order's customer: binds the wallet to it unless the wallet is bound already.
    pub customer_ref: Option<CustomerRef>,
    /// Chain id.
    pub chain_id: u64,
    /// The payment's block.
    pub block_number: u64,
    /// Amount paid, in the token's smallest unit.
    pub amount: alloy::primitives::U256,
    /// The locked rate of a dollar-priced order (decimal text), for its receipt.
    pub rate_usd: Option<String>,
}

/// What a run of activations (or applied downgrades) writes, planned in memory; the
/// caller writes it in its transaction.
#[derive(Debug, Default)]
pub struct Writes {
    /// Rows for `activations`.
    pub activations: Vec<ActivationRow>,
    /// Subscriptions as they end up (one per wallet touched).
    pub subscriptions: Vec<Subscription>,
    /// Badge jobs, in order.
    pub jobs: Vec<BadgeJob>,
    /// Events, in order.
    pub events: Vec<NewEvent>,
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// Wallets to bind to their first customer reference (`customers`).
    pub customers: Vec<(Address, CustomerRef)>,
    /// Receipts of the confirmed payments ([`crate::billing::receipts`]).
    pub receipts: Vec<crate::store::receipts::NewReceipt>,
}

/// Plans the activation of confirmed payments, in order: `current` holds the
/// subscriptions of their wallets (a wallet paying twice sees its first change) and
/// `customers` the references they are bound to (a payment with a reference binds an
/// unbound wallet; the `subscription.*` event carries the wallet's reference), `done` the
/// payments activated before, which are skipped, so planning a run twice plans nothing the
/// second time.
pub fn plan_activations(
    catalog: &Catalog,
    paid: &[PaidOrder],
    current: &mut HashMap<Address, Subscription>,
    customers: &mut HashMap<Address, CustomerRef>,
    done: &HashSet<i64>,
    now: u64,
) -> Writes {
    let mut writes = Writes::default();
    let mut touched = Vec::new();
    for p in paid {
        if done.contains(&p.payment_id) {
            continue;
        }
        let Some(plan) = catalog.get(p.plan_id) else {
            tracing::error!(plan_id = p.plan_id, payment = %p.payment_key, "paid plan is not in the catalog; not activated");
            continue;
        };
        let existing = current.get(&p.wallet);
        let paid = purchase_worth(catalog, plan, p.periods, p.token, p.usd);
        let change = plan_change(existing, catalog, p.wallet, plan, p.periods, paid, now);
        writes.activations.push(ActivationRow {
            payment_id: p.payment_id,
            wallet: p.wallet,
            kind: change.kind.into(),
            plan_id: plan.id,
            old_expires_at: change.old_expires_at,
            new_expires_at: change.after.expires_at,
            credit_seconds: change.credit_seconds,
            previous: existing.filter(|_| change.kind == ChangeKind::Upgraded).map(|s| serde_json::to_string(s).expect("a subscription serializes")),
        });
        if change.kind != ChangeKind::DowngradeScheduled {
            let action = if existing.is_none() { BadgeAction::Issue } else { BadgeAction::Update };
            writes.jobs.push(BadgeJob {
                wallet: p.wallet,
                action,
                tier: change.after.tier,
                expires_at: change.after.expires_at,
                new_wallet: None,
                cause: Some(p.cause.clone()),
            });
        }
        if let Some(customer) = &p.customer_ref
            && !customers.contains_key(&p.wallet)
        {
            customers.insert(p.wallet, customer.clone());
            writes.customers.push((p.wallet, customer.clone()));
        }
        let bought = receipts::ChainPayment {
            payment_id: p.payment_id,
            payment_key: &p.payment_key,
            revision: p.revision,
            chain_id: p.chain_id,
            tx_hash: p.cause.tx_hash,
            block_number: p.block_number,
            token: p.token,
            amount: p.amount,
            periods: p.periods,
            usd: p.usd.zip(p.rate_usd.clone()),
        };
        // The receipt names the order's customer, else the wallet's.
        let customer = p.customer_ref.as_ref().or_else(|| customers.get(&p.wallet));
        writes.receipts.push(receipts::for_chain_payment(catalog, plan, &bought, p.wallet, customer, &change, now));
        let after = &change.after;
        writes.events.push(NewEvent::for_customer(
            outbox::event_id(&revised(&[change.kind.event().as_str(), &p.payment_key], p.revision)),
            change.kind.payload(ChangeShape::Payment(PaymentChange {
                checkout_id: p.cause.checkout_id.clone(),
                order_id: p.cause.order_id,
                tx_hash: p.cause.tx_hash,
                credit_seconds: change.credit_seconds,
                expires_at: after.expires_at,
                next_expires_at: after.next_expires_at,
                next_plan_id: after.next_plan_id,
                payment: p.payment_key.clone(),
                plan_id: after.plan_id,
                previous_expires_at: change.old_expires_at,
                tier: after.tier,
                wallet: p.wallet,
            })),
            customers.get(&p.wallet),
        ));
        if !touched.contains(&p.wallet) {
            touched.push(p.wallet);
        }
        current.insert(p.wallet, change.after.clone());
        writes.changes.push(change);
    }
    writes.subscriptions = touched.iter().filter_map(|w| current.get(w).cloned()).collect();
    writes
}

/// Returns the parts of an event id for a payment's `revision`: as they were for the first,
/// with the revision after them for later ones.
pub fn revised<'a>(parts: &[&'a str], revision: u32) -> Vec<std::borrow::Cow<'a, str>> {
    let mut out: Vec<std::borrow::Cow<'a, str>> = parts.iter().map(|p| std::borrow::Cow::Borrowed(*p)).collect();
    if revision > 0 {
        out.push(std::borrow::Cow::Owned(format!("r{revision}")));
    }
    out
}

/// Plans the scheduled downgrades of `due` (subscriptions whose period has ended with a
/// next plan): the next plan becomes current, its badge job is queued and
/// `subscription.renewed` (change `downgrade`) is written, for the wallet's customer in
/// `customers`.
pub fn plan_downgrades(catalog: &Catalog, due: Vec<Subscription>, customers: &HashMap<Address, CustomerRef>) -> Writes {
    let mut writes = Writes::default();
    for mut sub in due {
        let (Some(next_id), Some(next_end)) = (sub.next_plan_id, sub.next_expires_at) else { continue };
        let Some(next) = catalog.get(next_id) else { continue };
        let previous = sub.expires_at;
        sub.plan_id = next.id;
        sub.tier = next.tier;
        sub.expires_at = next_end;
        sub.next_plan_id = None;
        sub.next_expires_at = None;
        // Comp time belonged to the tier that just ended.
        sub.comp_seconds = 0;
        writes.jobs.push(BadgeJob {
            wallet: sub.wallet,
            action: BadgeAction::Update,
            tier: sub.tier,
            expires_at: sub.expires_at,
            new_wallet: None,
            cause: None,
        });
        writes.events.push(NewEvent::for_customer(
            outbox::event_id(&[EventType::SubscriptionRenewed.as_str(), "downgrade", &sub.wallet.to_string(), &previous.to_string()]),
            SubscriptionRenewed::Downgrade(DowngradeTookEffect {
                change: "downgrade",
                expires_at: sub.expires_at,
                plan_id: sub.plan_id,
                previous_expires_at: previous,
                tier: sub.tier,
                wallet: sub.wallet,
            }),
            customers.get(&sub.wallet),
        ));
        writes.subscriptions.push(sub);
    }
    writes
}

/// Applies the scheduled downgrades due at `now` inside the caller's transaction
/// ([`plan_downgrades`]); returns how many took effect.
pub async fn apply_due_downgrades(conn: &mut AnyConnection, catalog: &Catalog, now: u64) -> Result<usize, StoreError> {
    let due = subscriptions::due_downgrades(conn, now).await?;
    let customers = crate::store::customers::of_wallets(conn, &due.iter().map(|s| s.wallet).collect::<Vec<_>>()).await?;
    let writes = plan_downgrades(catalog, due, &customers);
    subscriptions::save_all(conn, &writes.subscriptions, now).await?;
    badges::queue_all(conn, &writes.jobs, now).await?;
    outbox::write_all(conn, &writes.events, now as i64).await?;
    Ok(writes.subscriptions.len())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use super::credit;
    use crate::{billing::plans::Catalog, chain::deployment::TokenInfo, config::PlanConfig};

    /// An upgrade between plans priced in dollars credits at the USD prices, whatever the
    /// token paid (its amount moves with the market; the plans' worth does not).
    #[test]
    fn upgrade_credit_follows_the_usd_prices() {
        let tmai = TokenInfo { symbol: "TMAI".into(), address: Address::repeat_byte(1), decimals: 18, permit: true };
        let plan = |id: u32, tier: u8, usd: &str, cents: Option<u64>| PlanConfig {
            id,
            name: format!("plan {id}"),
            tier,
            period: "monthly".into(),
            prices: Default::default(),
            price_usd: Some(usd.into()),
            card_price_cents: cents,
            card_price_id: None,
            trial_days: 0,
            tmai_discount_percent: Some(18),
        };
        // Card prices that disagree with the USD prices are not what the credit follows.
        let catalog = Catalog::new(&[plan(1, 1, "9.80", Some(1_000)), plan(3, 3, "49.00", Some(1_000))], std::slice::from_ref(&tmai)).unwrap();
        let (basic, premium) = (catalog.get(1).unwrap(), catalog.get(3).unwrap());
        // 10 days of a $9.80 plan are worth 2 days of a $49.00 plan.
        assert_eq!(credit(10 * 86_400, basic.list_rate().unwrap(), premium), 2 * 86_400);
    }

    /// An activation is stored as the name of the event its change causes (what rows
    /// written before the kind was a type hold).
    #[test]
    fn activation_kinds_are_stored_as_their_event_names() {
        use super::{ActivationKind, ChangeKind};
        for kind in [ChangeKind::Activated, ChangeKind::Renewed, ChangeKind::Upgraded, ChangeKind::DowngradeScheduled] {
            assert_eq!(ActivationKind::from(kind).as_str(), kind.event().as_str());
        }
    }
}
