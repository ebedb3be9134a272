//! What the card events share: reading Stripe objects (metadata, prices, amounts), the card
//! subscription map, the trial ledger, and applying a paid period or a plan change to the
//! member's subscription with its badge job and event.

use alloy::primitives::Address;
use serde_json::Value;
use sqlx::AnyConnection;

use super::{CardError, Ctx};
use crate::{
    billing::{
        activation::{self, Change, ChangeKind, Subscription, change_for_time, plan_change},
        customers::CustomerRef,
        plans::Plan,
        receipts,
    },
    events::{CardChange, CardStatus, ChangeShape, ChangeSource, Payload},
    money::{Cents, PaidRate, Usd},
    states::{BadgeAction, SubscriptionStatus},
    store::{self, badges, card::CardOutcome, outbox},
};

/// Reads a string field at `pointer` (None when absent, null or empty).
pub(super) fn text_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Whether `sub` still gives access at `now`.
pub(super) fn live(sub: &Subscription, now: u64) -> bool {
    sub.status != SubscriptionStatus::Expired && sub.expires_at > now
}

const METADATA_HINT: &str = "create the Checkout Session with metadata {\"wallet\": \"0x…\", \"plan_id\": <id from GET /v1/plans>}";

/// The wallet a card purchase is for, from `metadata.wallet` (set by the merchant when
/// creating the Checkout Session or subscription); `place` names the metadata in errors.
pub(super) fn wallet_from(metadata: &Value, ctx: &Ctx<'_>, place: &str) -> Result<Address, CardError> {
    let wallet_text = metadata
        .get("wallet")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CardError::MissingMetadata(format!("{}: {place}.wallet is missing; {METADATA_HINT}", ctx.name())))?;
    parse_wallet(wallet_text).ok_or_else(|| {
        CardError::BadWallet(format!(
            "{}: {place}.wallet {wallet_text:?} is not a wallet address (0x and 40 hex digits, not zero); {METADATA_HINT}",
            ctx.name()
        ))
    })
}

/// The wallet and plan a checkout is for, from its metadata.
pub(super) fn member_from<'c>(metadata: &Value, ctx: &Ctx<'c>, place: &str) -> Result<(Address, &'c Plan), CardError> {
    let wallet = wallet_from(metadata, ctx, place)?;
    let plan_id = match metadata.get("plan_id") {
        None | Some(Value::Null) => {
            return Err(CardError::MissingMetadata(format!("{}: {place}.plan_id is missing; {METADATA_HINT}", ctx.name())));
        }
        Some(Value::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
        Some(_) => None,
    };
    let Some(plan_id) = plan_id else {
        return Err(CardError::UnknownPlan(format!("{}: {place}.plan_id {} is not a plan id; {METADATA_HINT}", ctx.name(), metadata["plan_id"])));
    };
    let plan = ctx
        .catalog
        .get(plan_id)
        .ok_or_else(|| CardError::UnknownPlan(format!("{}: {place}.plan_id {plan_id} is not a plan of the catalog (see GET /v1/plans)", ctx.name())))?;
    Ok((wallet, plan))
}

fn parse_wallet(text: &str) -> Option<Address> {
    if !(text.len() == 42 && text.starts_with("0x")) {
        return None;
    }
    text.parse::<Address>().ok().filter(|a| *a != Address::ZERO)
}

/// Returns the processor price id of a subscription item or invoice line: `price` as an
/// object or an id, `pricing.price_details.price` (newer API versions, an id or an
/// object), or the legacy `plan`.
pub(super) fn price_id(item: &Value) -> Option<&str> {
    fn id_of(v: Option<&Value>) -> Option<&str> {
        match v? {
            Value::String(s) if !s.is_empty() => Some(s.as_str()),
            Value::Object(o) => o.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()),
            _ => None,
        }
    }
    id_of(item.pointer("/pricing/price_details/price")).or_else(|| id_of(item.get("price"))).or_else(|| id_of(item.get("plan")))
}

/// Returns the one plan that the processor prices `ids` name (`card_price_id`). `place`
/// names where the ids were read in errors.
pub(super) fn plan_of_prices<'c>(ctx: &Ctx<'c>, ids: &[&str], place: &str) -> Result<&'c Plan, CardError> {
    if ids.is_empty() {
        return Err(CardError::BadRequest(format!("{}: {place} names no price", ctx.name())));
    }
    let mut plans: Vec<&Plan> = ids.iter().filter_map(|id| ctx.catalog.by_card_price(id)).collect();
    plans.dedup_by_key(|p| p.id);
    match plans.as_slice() {
        [plan] => Ok(plan),
        [] => Err(CardError::UnknownPrice(format!(
            "{}: {place} price {} is no plan's card_price_id; set card_price_id of the plan it sells in the catalog",
            ctx.name(),
            ids.join(", ")
        ))),
        several => Err(CardError::UnknownPrice(format!(
            "{}: {place} prices name several plans ({}); a card subscription pays for one plan",
            ctx.name(),
            several.iter().map(|p| p.id.to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Checks that `amount` cents in `currency` (read from `place`) are `plan`'s card price in
/// the configured currency.
pub(super) fn check_price(ctx: &Ctx<'_>, plan: &Plan, amount: u64, currency: &str, place: &str) -> Result<(), CardError> {
    check_currency(ctx, currency, place)?;
    let price = card_price(ctx, plan)?;
    if amount != price {
        return Err(CardError::AmountMismatch(format!(
            "{}: {place} {amount} {currency} is not the card price of plan {} ({price}, card_price_cents); nothing is credited for it",
            ctx.name(),
            plan.id
        )));
    }
    Ok(())
}

/// Checks that `currency` (read from `place`) is `[card] currency`.
pub(super) fn check_currency(ctx: &Ctx<'_>, currency: &str, place: &str) -> Result<(), CardError> {
    if !currency.eq_ignore_ascii_case(ctx.currency) {
        return Err(CardError::AmountMismatch(format!(
            "{}: {place} is {currency:?}, but card prices are in {:?} ([card] currency); nothing is credited for it",
            ctx.name(),
            ctx.currency
        )));
    }
    Ok(())
}

/// Returns `plan`'s card price in cents, or refuses a plan not sold by card.
pub(super) fn card_price(ctx: &Ctx<'_>, plan: &Plan) -> Result<u64, CardError> {
    plan.card_price
        .map(crate::money::Cents::minor)
        .ok_or_else(|| CardError::AmountMismatch(format!("{}: plan {} has no card_price_cents: it is not sold by card", ctx.name(), plan.id)))
}

/// Reads an amount in cents at `pointer`, or refuses the event.
pub(super) fn cents_at(ctx: &Ctx<'_>, object: &Value, pointer: &str) -> Result<u64, CardError> {
    object
        .pointer(pointer)
        .and_then(Value::as_u64)
        .ok_or_else(|| CardError::BadRequest(format!("{}: data.object{} (an amount in cents) is missing", ctx.name(), pointer.replace('/', "."))))
}

/// Reads a currency at `/currency`, or refuses the event.
pub(super) fn currency_of<'a>(ctx: &Ctx<'_>, object: &'a Value) -> Result<&'a str, CardError> {
    text_at(object, "/currency").ok_or_else(|| CardError::BadRequest(format!("{}: data.object.currency is missing", ctx.name())))
}

/// How a card payment grants time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grant {
    /// The plan's trial (the caller checked the wallet may have it).
    Trial,
    /// A paid Checkout Session: one period by the on-chain rules.
    Checkout,
    /// A paid renewal (`subscription_cycle` invoice): one period, continuing a trial or
    /// period that just ran out.
    Cycle,
}

/// A card payment for a plan: what it collected buys that share of the plan's period at
/// its card price ([`bought_seconds`]).
pub(super) struct Payment<'a> {
    pub(super) wallet: Address,
    pub(super) plan: &'a Plan,
    pub(super) grant: Grant,
    pub(super) card_subscription: Option<&'a str>,
    /// What the payment collected for the plan (cents; ignored for a trial).
    pub(super) collected: u64,
}

/// Returns the seconds `collected` cents buy of `plan` at its card price, rounded down:
/// one period when they are the price.
pub(super) fn bought_seconds(plan: &Plan, collected: u64) -> u64 {
    let price = plan.card_price.map_or(0, crate::money::Cents::minor);
    if price == 0 {
        return 0;
    }
    let seconds = u128::from(plan.period.seconds()) * u128::from(collected) / u128::from(price);
    u64::try_from(seconds).unwrap_or(u64::MAX)
}

/// Returns the outcome of a change.
fn outcome_of(kind: ChangeKind) -> CardOutcome {
    match kind {
        ChangeKind::Activated => CardOutcome::Activated,
        ChangeKind::Renewed => CardOutcome::Renewed,
        ChangeKind::Upgraded => CardOutcome::Upgraded,
        ChangeKind::DowngradeScheduled => CardOutcome::DowngradeScheduled,
    }
}

/// Applies one card-paid period of the plan (or its trial) to the wallet, queues the badge
/// job and writes the event; returns the outcome.
pub(super) async fn apply_payment(conn: &mut AnyConnection, ctx: &Ctx<'_>, payment: Payment<'_>) -> Result<CardOutcome, CardError> {
    let Payment { wallet, plan, grant, card_subscription, collected } = payment;
    let now = ctx.now;
    let bought = bought_seconds(plan, collected);
    let paid = Cents::from_minor(collected).to_usd().unwrap_or(Usd::MAX);
    let loaded = activation::load(conn, wallet).await?;
    let current = settle_due_downgrade(conn, ctx, loaded).await?;
    let (change, outcome) = if grant == Grant::Trial {
        let after = Subscription {
            wallet,
            plan_id: plan.id,
            tier: plan.tier,
            status: SubscriptionStatus::Trialing,
            started_at: now,
            expires_at: now + u64::from(plan.trial_days) * 86_400,
            next_plan_id: None,
            next_expires_at: None,
            comp_seconds: 0,
            paid_rate: Some(PaidRate::ZERO),
        };
        store::card::record_trial(conn, wallet, plan.id, &ctx.event.id, now).await?;
        let old = current.as_ref().map(|c| c.expires_at);
        (Change { kind: ChangeKind::Activated, after, old_expires_at: old, credit_seconds: 0 }, CardOutcome::Trialing)
    } else if let Some(cur) = current.as_ref().filter(|c| {
        // A card renewal is charged when the trial or period ends, so it usually arrives
        // just after: it continues that subscription (renewed from now) rather than
        // starting a new one, unless the subscription was ended on purpose.
        grant == Grant::Cycle
            && c.expires_at <= now
            && c.tier == plan.tier
            && c.next_plan_id.is_none()
            && matches!(c.status, SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue)
    }) {
        let mut after = cur.clone();
        after.plan_id = plan.id;
        after.status = SubscriptionStatus::Active;
        after.expires_at = now + bought;
        after.comp_seconds = 0;
        // What ran out was a trial or used-up time: the renewal's own price is the rate.
        after.paid_rate = PaidRate::new(paid, bought).or(Some(PaidRate::ZERO));
        (Change { kind: ChangeKind::Renewed, after, old_expires_at: Some(cur.expires_at), credit_seconds: 0 }, CardOutcome::Renewed)
    } else {
        let change = change_for_time(current.as_ref(), ctx.catalog, wallet, plan, bought, paid, now);
        let outcome = outcome_of(change.kind);
        (change, outcome)
    };
    // A paid period's receipt is issued below, in this transaction; its event names it.
    let receipt_url = (grant != Grant::Trial).then(|| receipts::receipt_url(ctx.receipt_base, &receipts::card_receipt_id(&ctx.event.id)));
    write_change(conn, ctx, current.is_none(), &change, card_subscription, receipt_url).await?;
    if grant != Grant::Trial {
        let refs = payment_refs(&ctx.event.object);
        store::card::record_grant(conn, &ctx.event.id, wallet, refs, collected, bought, now).await?;
        // The paid period's receipt (a trial pays nothing and gets none).
        let customer = store::customers::of_wallet(conn, wallet).await?;
        let paid = receipts::CardPayment {
            event_id: &ctx.event.id,
            payment: refs.payment_intent.or(refs.invoice).or(refs.charge),
            cents: collected,
            currency: ctx.currency,
        };
        store::receipts::issue(conn, &receipts::for_card_payment(plan, &paid, wallet, customer.as_ref(), &change, now), now).await?;
    }
    Ok(outcome)
}

/// The processor objects a Checkout Session, invoice, charge or dispute names: its payment
/// intent, invoice and charge (an object's own id when it is one of them).
pub(super) fn payment_refs(object: &Value) -> store::card::PaymentRefs<'_> {
    let id = text_at(object, "/id");
    let own = |prefix: &str| id.filter(|i| i.starts_with(prefix));
    let id_or_object = |pointer: &str| text_at(object, pointer).or_else(|| text_at(object, &format!("{pointer}/id")));
    store::card::PaymentRefs {
        payment_intent: own("pi_").or_else(|| id_or_object("/payment_intent")).or_else(|| text_at(object, "/payments/data/0/payment/payment_intent")),
        invoice: own("in_").or_else(|| id_or_object("/invoice")),
        charge: own("ch_").or_else(|| id_or_object("/charge")),
    }
}

/// Applies a plan change made at the processor (no payment): a higher tier at once with
/// the unused paid time credited (a trial keeps its end: it was not paid for, and the
/// processor keeps it running on the new price), a lower tier at the end of the period,
/// the same tier by switching the plan. Returns the outcome.
pub(super) async fn switch_plan(
    conn: &mut AnyConnection,
    ctx: &Ctx<'_>,
    wallet: Address,
    plan: &Plan,
    card_subscription: &str,
) -> Result<CardOutcome, CardError> {
    let now = ctx.now;
    let loaded = activation::load(conn, wallet).await?;
    let current = settle_due_downgrade(conn, ctx, loaded).await?;
    let Some(cur) = current.filter(|c| live(c, now)) else {
        // Nothing runs now: the next paid invoice (for the new price) starts it.
        return Ok(CardOutcome::PlanRecorded);
    };
    if plan.tier == cur.tier {
        // Nothing was paid here: the time keeps the price it was paid at (a switch to a
        // plan with a higher list price per second must not raise what it credits).
        let mut after = cur.clone();
        after.paid_rate = Some(activation::held_rate(&cur, ctx.catalog));
        after.plan_id = plan.id;
        activation::save(conn, &after, now).await?;
        return Ok(CardOutcome::PlanChanged);
    }
    let change = if plan.tier > cur.tier && cur.status == SubscriptionStatus::Trialing {
        let mut after = cur.clone();
        after.plan_id = plan.id;
        after.tier = plan.tier;
        after.next_plan_id = None;
        after.next_expires_at = None;
        Change { kind: ChangeKind::Upgraded, after, old_expires_at: Some(cur.expires_at), credit_seconds: 0 }
    } else {
        // Nothing was paid: no period is bought (0 periods), only the rules' credit.
        let mut change = plan_change(Some(&cur), ctx.catalog, wallet, plan, 0, Usd::ZERO, now);
        change.after.status = cur.status;
        change
    };
    write_change(conn, ctx, false, &change, Some(card_subscription), None).await?;
    Ok(outcome_of(change.kind))
}

/// Lets a scheduled downgrade whose time has come take effect before a card event changes
/// the subscription (a renewal can arrive before the reminder pass applied it).
async fn settle_due_downgrade(conn: &mut AnyConnection, ctx: &Ctx<'_>, current: Option<Subscription>) -> Result<Option<Subscription>, CardError> {
    let Some(cur) = current else { return Ok(None) };
    if cur.next_plan_id.is_none() || cur.expires_at > ctx.now {
        return Ok(Some(cur));
    }
    let customers = store::customers::of_wallets(conn, &[cur.wallet]).await?;
    let writes = activation::plan_downgrades(ctx.catalog, vec![cur.clone()], &customers);
    let Some(after) = writes.subscriptions.first().cloned() else { return Ok(Some(cur)) };
    activation::save(conn, &after, ctx.now).await?;
    badges::queue_all(conn, &writes.jobs, ctx.now).await?;
    outbox::write_all(conn, &writes.events, ctx.now as i64).await?;
    Ok(Some(after))
}

/// Saves `change`, queues its badge job (none for a scheduled downgrade) and writes its
/// event (naming the paid period's receipt, when there is one).
async fn write_change(
    conn: &mut AnyConnection,
    ctx: &Ctx<'_>,
    new: bool,
    change: &Change,
    card_subscription: Option<&str>,
    receipt_url: Option<String>,
) -> Result<(), CardError> {
    let a = &change.after;
    activation::save(conn, a, ctx.now).await?;
    if change.kind != ChangeKind::DowngradeScheduled {
        let action = if new { BadgeAction::Issue } else { BadgeAction::Update };
        activation::queue_badge(conn, a.wallet, action, a.tier, a.expires_at, ctx.now).await?;
    }
    let shape = ChangeShape::Card(CardChange {
        card_event: ctx.event.id.clone(),
        card_subscription: card_subscription.map(str::to_string),
        credit_seconds: change.credit_seconds,
        expires_at: a.expires_at,
        next_expires_at: a.next_expires_at,
        next_plan_id: a.next_plan_id,
        plan_id: a.plan_id,
        previous_expires_at: change.old_expires_at,
        receipt_url,
        source: ChangeSource::Card,
        status: a.status,
        tier: a.tier,
        wallet: a.wallet,
    });
    let id = outbox::event_id(&[change.kind.event().as_str(), "card", &ctx.event.id]);
    bind_customer(conn, ctx, a.wallet).await?;
    outbox::write_for_member(conn, &id, change.kind.payload(shape), a.wallet, ctx.now as i64).await?;
    Ok(())
}

/// Returns what a card status event (`subscription.canceled`, `.uncanceled`,
/// `.renewal_failed`) says of `sub`.
pub(super) fn card_status(ctx: &Ctx<'_>, sub: &Subscription, card_subscription: &str) -> CardStatus {
    CardStatus {
        card_event: ctx.event.id.clone(),
        card_subscription: card_subscription.to_string(),
        expires_at: sub.expires_at,
        plan_id: sub.plan_id,
        source: ChangeSource::Card,
        status: sub.status,
        tier: sub.tier,
        wallet: sub.wallet,
    }
}

/// Writes a card status event ([`card_status`], as `payload`) about `wallet`.
pub(super) async fn write_status_event(conn: &mut AnyConnection, ctx: &Ctx<'_>, wallet: Address, payload: impl Into<Payload>) -> Result<(), CardError> {
    let payload = payload.into();
    let id = outbox::event_id(&[payload.event_type().as_str(), "card", &ctx.event.id]);
    outbox::write_for_member(conn, &id, payload, wallet, ctx.now as i64).await?;
    Ok(())
}

/// Where a card object carries the merchant's metadata: a Checkout Session or subscription
/// its own, an invoice its subscription's (older and newer API versions).
const METADATA_PLACES: [&str; 3] =
    ["/metadata/customer_ref", "/subscription_details/metadata/customer_ref", "/parent/subscription_details/metadata/customer_ref"];

/// Binds `wallet` to the customer reference the event's metadata carries (`customer_ref`,
/// set by the merchant, or by the service, when the session was created), unless the wallet
/// is bound already. The processor signed the event and only the merchant's secret key
/// creates sessions, so a bare reference is the merchant's; one outside the documented
/// shape is logged and left out (the payment itself still counts).
async fn bind_customer(conn: &mut AnyConnection, ctx: &Ctx<'_>, wallet: Address) -> Result<(), CardError> {
    let Some(text) = METADATA_PLACES.iter().find_map(|p| text_at(&ctx.event.object, p)) else { return Ok(()) };
    match CustomerRef::parse(text) {
        Ok(customer) => {
            store::customers::bind(conn, wallet, &customer, ctx.now).await?;
        }
        Err(error) => tracing::warn!(event = %ctx.name(), %error, "the card event's metadata.customer_ref is left out"),
    }
    Ok(())
}
