//! Card subscriptions changed at the processor: `customer.subscription.updated` (a new
//! price is a plan change; `cancel_at_period_end` cancels or un-cancels) and
//! `customer.subscription.deleted` (canceled).
//!
//! Whether the processor has the subscription set to end is kept in
//! `card_subscriptions.status` (`canceled`), so an update that repeats the flag changes
//! nothing, and only an un-cancel at the processor undoes a cancel made there.

use serde_json::Value;
use sqlx::AnyConnection;

use super::{
    CardError, Ctx, Handled,
    apply::{self, text_at},
};
use crate::{
    billing::{activation, plans::Plan},
    events::{Payload, SubscriptionCanceled},
    states::SubscriptionStatus,
    store::{
        self,
        card::{CardOutcome, CardOutcomes, CardSubscription, CardSubscriptionStatus},
    },
};

/// Returns the plan a subscription object's items are priced at.
fn plan_of<'c>(ctx: &Ctx<'c>, object: &Value) -> Result<&'c Plan, CardError> {
    let items = object.pointer("/items/data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let ids: Vec<&str> = items.iter().filter_map(apply::price_id).collect();
    apply::plan_of_prices(ctx, &ids, "data.object.items.data[]")
}

/// What one step of an update did: its outcome, and whether it changed anything.
type Step = (CardOutcome, bool);

/// `customer.subscription.updated`.
pub(super) async fn updated(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let object = &ctx.event.object;
    let Some(id) = text_at(object, "/id") else {
        return Err(CardError::BadRequest(format!("{}: data.object.id (the card subscription) is missing", ctx.name())));
    };
    let Some(known) = store::card::card_subscription(conn, id).await? else {
        tracing::warn!(card_subscription = id, event = %ctx.event.id, "card subscription updated that was never activated here");
        return Ok(Handled { status: "acknowledged", outcome: CardOutcome::UnknownSubscription.into(), wallet: None });
    };
    let plan = plan_of(ctx, object)?;
    let mut steps: Vec<Step> = Vec::new();
    if plan.id != known.plan_id {
        store::card::update_card_subscription(conn, id, plan.id, known.status, ctx.now).await?;
        let outcome = apply::switch_plan(conn, ctx, known.wallet, plan, id).await?;
        steps.push((outcome, true));
    }
    match (object.get("cancel_at_period_end").and_then(Value::as_bool), known.status) {
        (Some(true), CardSubscriptionStatus::Active) => steps.push(cancel(conn, ctx, id, &known, plan.id).await?),
        (Some(false), CardSubscriptionStatus::Canceled) => steps.push(uncancel(conn, ctx, id, &known, plan.id).await?),
        _ => {}
    }
    let changed = steps.iter().any(|(_, changed)| *changed);
    let outcome = CardOutcomes::of_steps(steps.iter().map(|(o, _)| *o).collect());
    Ok(Handled { status: if changed { "processed" } else { "acknowledged" }, outcome, wallet: Some(known.wallet) })
}

/// `customer.subscription.deleted`.
pub(super) async fn deleted(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let Some(id) = text_at(&ctx.event.object, "/id") else {
        return Err(CardError::BadRequest(format!("{}: data.object.id (the card subscription) is missing", ctx.name())));
    };
    let Some(known) = store::card::card_subscription(conn, id).await? else {
        tracing::warn!(card_subscription = id, event = %ctx.event.id, "card subscription deleted that was never activated here");
        return Ok(Handled { status: "acknowledged", outcome: CardOutcome::UnknownSubscription.into(), wallet: None });
    };
    let (outcome, changed) = cancel(conn, ctx, id, &known, known.plan_id).await?;
    Ok(Handled { status: if changed { "processed" } else { "acknowledged" }, outcome: outcome.into(), wallet: Some(known.wallet) })
}

/// Cancels at the processor's word: the card subscription is `canceled`, and the member's
/// subscription too (no renewal; access to the end of the paid period), with
/// `subscription.canceled`.
async fn cancel(conn: &mut AnyConnection, ctx: &Ctx<'_>, id: &str, known: &CardSubscription, plan_id: u32) -> Result<Step, CardError> {
    store::card::update_card_subscription(conn, id, plan_id, CardSubscriptionStatus::Canceled, ctx.now).await?;
    let Some(mut sub) = activation::load(conn, known.wallet).await? else { return Ok((CardOutcome::NoSubscription, false)) };
    if !apply::live(&sub, ctx.now) {
        return Ok((CardOutcome::AlreadyEnded, false));
    }
    if sub.status == SubscriptionStatus::Canceled {
        return Ok((CardOutcome::AlreadyCanceled, false));
    }
    sub.status = SubscriptionStatus::Canceled;
    activation::save(conn, &sub, ctx.now).await?;
    apply::write_status_event(conn, ctx, sub.wallet, SubscriptionCanceled::Card(apply::card_status(ctx, &sub, id))).await?;
    Ok((CardOutcome::Canceled, true))
}

/// Undoes a cancel at the processor (`cancel_at_period_end` false again): the subscription
/// takes back the processor's status (`trialing`, `past_due` or `active`), with
/// `subscription.uncanceled`.
async fn uncancel(conn: &mut AnyConnection, ctx: &Ctx<'_>, id: &str, known: &CardSubscription, plan_id: u32) -> Result<Step, CardError> {
    store::card::update_card_subscription(conn, id, plan_id, CardSubscriptionStatus::Active, ctx.now).await?;
    let Some(mut sub) = activation::load(conn, known.wallet).await? else { return Ok((CardOutcome::NoSubscription, false)) };
    if !apply::live(&sub, ctx.now) {
        return Ok((CardOutcome::AlreadyEnded, false));
    }
    if sub.status != SubscriptionStatus::Canceled {
        return Ok((CardOutcome::NotCanceled, false));
    }
    sub.status = match text_at(&ctx.event.object, "/status") {
        Some("trialing") => SubscriptionStatus::Trialing,
        Some("past_due" | "unpaid") => SubscriptionStatus::PastDue,
        _ => SubscriptionStatus::Active,
    };
    activation::save(conn, &sub, ctx.now).await?;
    apply::write_status_event(
        conn,
        ctx,
        sub.wallet,
        Payload::SubscriptionUncanceled(crate::events::SubscriptionUncanceled::Card(apply::card_status(ctx, &sub, id))),
    )
    .await?;
    Ok((CardOutcome::Uncanceled, true))
}
