//! What the card events share: reading Stripe objects (metadata, prices, amounts), the card
//! subscription map, the trial ledger, and applying a paid period or a plan change to the
//! member's subscription with its badge job and event.

use alloy::primitives::Address;
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::{CardError, Ctx};
use crate::{
    billing::{
        activation::{self, Change, ChangeKind, Subscription, plan_change},
        plans::Plan,
    },
    events::EventType,
    states::{BadgeAction, SubscriptionStatus},
    store::{address_bytes, badge_jobs, outbox, to_address},
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
    plan.card_price_cents.ok_or_else(|| CardError::AmountMismatch(format!("{}: plan {} has no card_price_cents: it is not sold by card", ctx.name(), plan.id)))
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

/// A card subscription (`card_subscriptions`): the wallet, plan and processor-side state.
pub(super) struct CardSubscription {
    pub(super) wallet: Address,
    pub(super) plan_id: u32,
    /// `active`, or `canceled` (deleted, or set to cancel at the period end, at the processor).
    pub(super) status: String,
}

/// Loads the card subscription `id`.
pub(super) async fn card_subscription(conn: &mut AnyConnection, id: &str) -> Result<Option<CardSubscription>, CardError> {
    let row = sqlx::query("SELECT wallet, plan_id, status FROM card_subscriptions WHERE card_subscription_id = $1").bind(id).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(CardSubscription {
        wallet: to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "card_subscriptions.wallet")?,
        plan_id: row.try_get::<i64, _>("plan_id")? as u32,
        status: row.try_get("status")?,
    }))
}

/// Records that card subscription `id` pays `plan_id` for `wallet` (insert or update).
pub(super) async fn map_card_subscription(
    conn: &mut AnyConnection,
    id: &str,
    wallet: Address,
    plan_id: u32,
    customer: Option<&str>,
    now: u64,
) -> Result<(), CardError> {
    sqlx::query(
        "INSERT INTO card_subscriptions (card_subscription_id, wallet, plan_id, customer, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'active', $5, $5) ON CONFLICT (card_subscription_id) DO UPDATE SET wallet = excluded.wallet, \
         plan_id = excluded.plan_id, customer = excluded.customer, status = 'active', updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(address_bytes(wallet))
    .bind(i64::from(plan_id))
    .bind(customer)
    .bind(now as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets the plan and/or processor-side status of card subscription `id`.
pub(super) async fn update_card_subscription(conn: &mut AnyConnection, id: &str, plan_id: u32, status: &str, now: u64) -> Result<(), CardError> {
    sqlx::query("UPDATE card_subscriptions SET plan_id = $1, status = $2, updated_at = $3 WHERE card_subscription_id = $4")
        .bind(i64::from(plan_id))
        .bind(status)
        .bind(now as i64)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether `wallet` has had its card trial (a wallet gets one, ever).
pub(super) async fn trial_used(conn: &mut AnyConnection, wallet: Address) -> Result<bool, CardError> {
    let row = sqlx::query("SELECT 1 FROM card_trials WHERE wallet = $1").bind(address_bytes(wallet)).fetch_optional(&mut *conn).await?;
    Ok(row.is_some())
}

async fn record_trial(conn: &mut AnyConnection, wallet: Address, plan_id: u32, ctx: &Ctx<'_>) -> Result<(), CardError> {
    sqlx::query("INSERT INTO card_trials (wallet, plan_id, card_event, started_at) VALUES ($1, $2, $3, $4) ON CONFLICT (wallet) DO NOTHING")
        .bind(address_bytes(wallet))
        .bind(i64::from(plan_id))
        .bind(&ctx.event.id)
        .bind(ctx.now as i64)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Copies `from`'s trial record to `to` (a member moved to a new wallet keeps having had
/// the trial), inside the caller's transaction.
pub async fn carry_trial(conn: &mut AnyConnection, from: Address, to: Address) -> Result<(), crate::store::StoreError> {
    sqlx::query(
        "INSERT INTO card_trials (wallet, plan_id, card_event, started_at) SELECT $1, plan_id, card_event, started_at \
         FROM card_trials WHERE wallet = $2 ON CONFLICT (wallet) DO NOTHING",
    )
    .bind(address_bytes(to))
    .bind(address_bytes(from))
    .execute(&mut *conn)
    .await?;
    Ok(())
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

/// A card payment for one period of a plan.
pub(super) struct Payment<'a> {
    pub(super) wallet: Address,
    pub(super) plan: &'a Plan,
    pub(super) grant: Grant,
    pub(super) card_subscription: Option<&'a str>,
}

/// Returns the outcome name of a change.
fn outcome_of(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Activated => "activated",
        ChangeKind::Renewed => "renewed",
        ChangeKind::Upgraded => "upgraded",
        ChangeKind::DowngradeScheduled => "downgrade_scheduled",
    }
}

/// Applies one card-paid period of the plan (or its trial) to the wallet, queues the badge
/// job and writes the event; returns the outcome.
pub(super) async fn apply_payment(conn: &mut AnyConnection, ctx: &Ctx<'_>, payment: Payment<'_>) -> Result<&'static str, CardError> {
    let Payment { wallet, plan, grant, card_subscription } = payment;
    let now = ctx.now;
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
        };
        record_trial(conn, wallet, plan.id, ctx).await?;
        let old = current.as_ref().map(|c| c.expires_at);
        (Change { kind: ChangeKind::Activated, after, old_expires_at: old, credit_seconds: 0 }, "trialing")
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
        after.expires_at = now + plan.period.seconds();
        after.comp_seconds = 0;
        (Change { kind: ChangeKind::Renewed, after, old_expires_at: Some(cur.expires_at), credit_seconds: 0 }, "renewed")
    } else {
        // A card payment has no token: credit on upgrades is priced in card cents.
        let change = plan_change(current.as_ref(), ctx.catalog, wallet, plan, 1, Address::ZERO, now);
        let outcome = outcome_of(change.kind);
        (change, outcome)
    };
    write_change(conn, ctx, current.is_none(), &change, card_subscription).await?;
    Ok(outcome)
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
) -> Result<&'static str, CardError> {
    let now = ctx.now;
    let loaded = activation::load(conn, wallet).await?;
    let current = settle_due_downgrade(conn, ctx, loaded).await?;
    let Some(cur) = current.filter(|c| live(c, now)) else {
        // Nothing runs now: the next paid invoice (for the new price) starts it.
        return Ok("plan_recorded");
    };
    if plan.tier == cur.tier {
        let mut after = cur.clone();
        after.plan_id = plan.id;
        activation::save(conn, &after, now).await?;
        return Ok("plan_changed");
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
        let mut change = plan_change(Some(&cur), ctx.catalog, wallet, plan, 0, Address::ZERO, now);
        change.after.status = cur.status;
        change
    };
    write_change(conn, ctx, false, &change, Some(card_subscription)).await?;
    Ok(outcome_of(change.kind))
}

/// Lets a scheduled downgrade whose time has come take effect before a card event changes
/// the subscription (a renewal can arrive before the reminder pass applied it).
async fn settle_due_downgrade(conn: &mut AnyConnection, ctx: &Ctx<'_>, current: Option<Subscription>) -> Result<Option<Subscription>, CardError> {
    let Some(cur) = current else { return Ok(None) };
    if cur.next_plan_id.is_none() || cur.expires_at > ctx.now {
        return Ok(Some(cur));
    }
    let writes = activation::plan_downgrades(ctx.catalog, vec![cur.clone()]);
    let Some(after) = writes.subscriptions.first().cloned() else { return Ok(Some(cur)) };
    activation::save(conn, &after, ctx.now).await?;
    badge_jobs::queue_all(conn, &writes.jobs, ctx.now).await?;
    outbox::write_all(conn, &writes.events, ctx.now as i64).await?;
    Ok(Some(after))
}

/// Saves `change`, queues its badge job (none for a scheduled downgrade) and writes its
/// event.
async fn write_change(conn: &mut AnyConnection, ctx: &Ctx<'_>, new: bool, change: &Change, card_subscription: Option<&str>) -> Result<(), CardError> {
    let a = &change.after;
    activation::save(conn, a, ctx.now).await?;
    if change.kind != ChangeKind::DowngradeScheduled {
        let action = if new { BadgeAction::Issue } else { BadgeAction::Update };
        activation::queue_badge(conn, a.wallet, action, a.tier, a.expires_at, ctx.now).await?;
    }
    let name = change.kind.event();
    outbox::write(
        conn,
        &outbox::event_id(&[name.as_str(), "card", &ctx.event.id]),
        name,
        &serde_json::json!({
            "wallet": a.wallet,
            "plan_id": a.plan_id,
            "tier": a.tier,
            "status": a.status,
            "expires_at": a.expires_at,
            "previous_expires_at": change.old_expires_at,
            "credit_seconds": change.credit_seconds,
            "next_plan_id": a.next_plan_id,
            "next_expires_at": a.next_expires_at,
            "source": "card",
            "card_event": ctx.event.id,
            "card_subscription": card_subscription,
        }),
        ctx.now as i64,
    )
    .await?;
    Ok(())
}

/// Writes a card status event (`subscription.canceled`, `.uncanceled`, `.renewal_failed`)
/// for `sub`, with `extra` fields.
pub(super) async fn write_status_event(
    conn: &mut AnyConnection,
    ctx: &Ctx<'_>,
    name: EventType,
    sub: &Subscription,
    card_subscription: &str,
    extra: serde_json::Value,
) -> Result<(), CardError> {
    let mut data = serde_json::json!({
        "wallet": sub.wallet,
        "plan_id": sub.plan_id,
        "tier": sub.tier,
        "status": sub.status,
        "expires_at": sub.expires_at,
        "source": "card",
        "card_event": ctx.event.id,
        "card_subscription": card_subscription,
    });
    if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    outbox::write(conn, &outbox::event_id(&[name.as_str(), "card", &ctx.event.id]), name, &data, ctx.now as i64).await?;
    Ok(())
}
