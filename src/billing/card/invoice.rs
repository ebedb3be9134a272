//! Invoices: `invoice.paid` renews, `invoice.payment_failed` marks a renewal failed.
//!
//! Only a `billing_reason` `subscription_cycle` invoice is a renewal: the first invoice
//! (`subscription_create`) is covered by the Checkout Session, and prorations
//! (`subscription_update`), `manual`, `subscription_threshold` and other invoices buy no
//! period, so they are acknowledged and recorded with nothing granted. A renewal's plan is
//! the one whose `card_price_id` is the price of the invoice's (non-proration) line; that
//! line's `amount` and the invoice's `currency` must be the plan's card price.
//!
//! A renewal grants only what the invoice collected for the membership, at the plan's card
//! price ([`collected_for_plan`]): the plan line plus the proration lines (a plan change's
//! settlement: positive for an upgrade's rest of period, negative for a downgrade's unused
//! time credited back), and no more than `amount_paid` less tax, plus the merchant's own
//! discounts and any customer credit balance the invoice used. So a renewal funded by a
//! downgrade's proration credit grants only the share paid for, and an upgrade's proration
//! charge buys its share of time.

use alloy::primitives::Address;
use serde_json::Value;
use sqlx::AnyConnection;

use super::{
    CardError, Ctx, Handled,
    apply::{self, Grant, Payment, text_at},
};
use crate::{
    billing::{activation, plans::Plan},
    states::SubscriptionStatus,
    store::{self, card::CardOutcome},
};

/// The card subscription an invoice belongs to: `subscription` (older API versions) or
/// `parent.subscription_details.subscription` (newer).
fn subscription_of(object: &Value) -> Option<&str> {
    text_at(object, "/subscription").or_else(|| text_at(object, "/parent/subscription_details/subscription"))
}

/// Whether an invoice line is a proration (`proration`, or under `parent` in newer API
/// versions).
fn is_proration(line: &Value) -> bool {
    ["/proration", "/parent/subscription_item_details/proration", "/parent/invoice_item_details/proration"]
        .iter()
        .any(|p| line.pointer(p).and_then(Value::as_bool) == Some(true))
}

/// Returns the cents an invoice collected for the membership: the plan line `line` plus the
/// proration lines, capped by what was paid (`amount_paid` less tax, plus the merchant's
/// discounts and the customer credit balance used); never below zero.
pub(super) fn collected_for_plan(object: &Value, line: u64) -> u64 {
    let int = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0);
    let lines = object.pointer("/lines/data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let prorations: i64 = lines.iter().filter(|l| is_proration(l)).map(|l| int(l.get("amount"))).sum();
    let sum = |pointer: &str| -> i64 { object.pointer(pointer).and_then(Value::as_array).map_or(0, |items| items.iter().map(|i| int(i.get("amount"))).sum()) };
    let tax = match object.get("tax").and_then(Value::as_i64) {
        Some(tax) => tax,
        None => sum("/total_taxes"),
    };
    let discounts = sum("/total_discount_amounts");
    // A credit balance is negative; what the invoice used of it is how much it rose.
    let balance_used = (int(object.get("ending_balance")) - int(object.get("starting_balance"))).max(0);
    let paid = int(object.get("amount_paid")) - tax + discounts + balance_used;
    let owed = i64::try_from(line).unwrap_or(i64::MAX).saturating_add(prorations);
    u64::try_from(paid.min(owed).max(0)).unwrap_or(0)
}

/// Returns the plan an invoice pays for, from its lines' processor prices, and the amount
/// of the plan's line (cents).
fn plan_of<'c>(ctx: &Ctx<'c>, object: &Value) -> Result<(&'c Plan, u64), CardError> {
    let lines = object.pointer("/lines/data").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let plan_lines: Vec<&Value> = lines.iter().filter(|l| !is_proration(l)).filter(|l| apply::price_id(l).is_some()).collect();
    let ids: Vec<&str> = plan_lines.iter().filter_map(|l| apply::price_id(l)).collect();
    let plan = apply::plan_of_prices(ctx, &ids, "data.object.lines.data[]")?;
    let line = plan_lines
        .iter()
        .find(|l| apply::price_id(l).is_some_and(|id| ctx.catalog.by_card_price(id).is_some_and(|p| p.id == plan.id)))
        .expect("the plan came from one of these lines");
    let amount = line
        .get("amount")
        .and_then(Value::as_u64)
        .ok_or_else(|| CardError::BadRequest(format!("{}: data.object.lines.data[].amount (the plan line's amount in cents) is missing", ctx.name())))?;
    Ok((plan, amount))
}

/// Returns the wallet an invoice's card subscription pays for: the card subscription
/// mapped at checkout, else the subscription's metadata on the invoice.
async fn wallet_of(conn: &mut AnyConnection, ctx: &Ctx<'_>, subscription: Option<&str>) -> Result<Address, CardError> {
    if let Some(id) = subscription
        && let Some(known) = store::card::card_subscription(conn, id).await?
    {
        return Ok(known.wallet);
    }
    let object = &ctx.event.object;
    let metadata = object
        .pointer("/subscription_details/metadata")
        .or_else(|| object.pointer("/parent/subscription_details/metadata"))
        .filter(|m| m.get("wallet").is_some())
        .ok_or_else(|| {
            CardError::MissingMetadata(format!(
                "{}: card subscription {} is unknown here and the invoice has no subscription_details.metadata \
                 {{wallet, plan_id}}; set that metadata on the subscription (subscription_data.metadata in the Checkout Session)",
                ctx.name(),
                subscription.unwrap_or("(none)")
            ))
        })?;
    apply::wallet_from(metadata, ctx, "data.object.subscription_details.metadata")
}

/// The wallet of a known card subscription, for acknowledgements.
async fn known_wallet(conn: &mut AnyConnection, subscription: Option<&str>) -> Result<Option<Address>, CardError> {
    Ok(match subscription {
        Some(id) => store::card::card_subscription(conn, id).await?.map(|s| s.wallet),
        None => None,
    })
}

/// `invoice.paid`.
pub(super) async fn paid(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let object = &ctx.event.object;
    let subscription = subscription_of(object);
    match text_at(object, "/billing_reason") {
        Some("subscription_cycle") => {}
        Some("subscription_create") => {
            // The Checkout Session covered the first period; Stripe sends both, in either
            // order. Its payment intent is only named here: kept with the session's grant
            // (now, or when the session comes later), so a refund or dispute of that charge
            // finds it.
            let refs = apply::payment_refs(object);
            if let (Some(invoice), Some(intent)) = (refs.invoice, refs.payment_intent) {
                store::card::link_payment_intent(conn, invoice, intent, ctx.now).await?;
            }
            let wallet = known_wallet(conn, subscription).await?;
            return Ok(Handled { status: "acknowledged", outcome: CardOutcome::FirstInvoice.into(), wallet });
        }
        reason => {
            let wallet = known_wallet(conn, subscription).await?;
            tracing::info!(event = %ctx.event.id, billing_reason = ?reason, amount_paid = ?object.get("amount_paid"), "card invoice paid that is not a renewal; no period granted");
            return Ok(Handled { status: "acknowledged", outcome: CardOutcome::NotARenewal.into(), wallet });
        }
    }
    let wallet = wallet_of(conn, ctx, subscription).await?;
    let (plan, amount) = plan_of(ctx, object)?;
    apply::check_price(ctx, plan, amount, apply::currency_of(ctx, object)?, "data.object.lines.data[].amount")?;
    let collected = collected_for_plan(object, amount);
    if collected == 0 {
        tracing::warn!(event = %ctx.event.id, %wallet, amount_paid = ?object.get("amount_paid"), "card renewal invoice collected nothing for the plan; no time granted");
        return Ok(Handled { status: "acknowledged", outcome: CardOutcome::NothingCollected.into(), wallet: Some(wallet) });
    }
    let outcome = apply::apply_payment(conn, ctx, Payment { wallet, plan, grant: Grant::Cycle, card_subscription: subscription, collected }).await?;
    // The invoice's price is the plan the card subscription pays for from now on; one seen
    // here first (its metadata named the wallet) is mapped, so its later events find it.
    if let Some(id) = subscription {
        match store::card::card_subscription(conn, id).await? {
            Some(known) if known.plan_id != plan.id => store::card::update_card_subscription(conn, id, plan.id, known.status, ctx.now).await?,
            Some(_) => {}
            None => store::card::map_card_subscription(conn, id, wallet, plan.id, text_at(object, "/customer"), ctx.now).await?,
        }
    }
    Ok(Handled { status: "processed", outcome: outcome.into(), wallet: Some(wallet) })
}

/// `invoice.payment_failed`: a failed renewal makes a live subscription `past_due` (access
/// runs to the end of the paid period; a paid renewal makes it active again) and writes
/// `subscription.renewal_failed` at each failed attempt.
pub(super) async fn payment_failed(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let object = &ctx.event.object;
    let subscription = subscription_of(object);
    let acknowledged = |outcome: CardOutcome, wallet| Handled { status: "acknowledged", outcome: outcome.into(), wallet };
    if text_at(object, "/billing_reason") != Some("subscription_cycle") {
        return Ok(acknowledged(CardOutcome::NotARenewal, known_wallet(conn, subscription).await?));
    }
    let Some(id) = subscription else {
        return Err(CardError::BadRequest(format!("{}: the invoice names no subscription", ctx.name())));
    };
    let Some(known) = store::card::card_subscription(conn, id).await? else {
        tracing::warn!(card_subscription = id, event = %ctx.event.id, "card renewal failed for a card subscription never activated here");
        return Ok(acknowledged(CardOutcome::UnknownSubscription, None));
    };
    let wallet = known.wallet;
    let Some(mut sub) = activation::load(conn, wallet).await? else {
        return Ok(acknowledged(CardOutcome::NoSubscription, Some(wallet)));
    };
    match sub.status {
        SubscriptionStatus::Expired => return Ok(acknowledged(CardOutcome::AlreadyEnded, Some(wallet))),
        SubscriptionStatus::Canceled => return Ok(acknowledged(CardOutcome::AlreadyCanceled, Some(wallet))),
        _ => {}
    }
    sub.status = SubscriptionStatus::PastDue;
    activation::save(conn, &sub, ctx.now).await?;
    let invoice = |field: &str| object.get(field).and_then(Value::as_u64);
    let failed = apply::card_status(ctx, &sub, id).renewal_failed(
        invoice("amount_due"),
        invoice("attempt_count"),
        object.get("currency").and_then(Value::as_str).map(str::to_string),
        invoice("next_payment_attempt"),
    );
    apply::write_status_event(conn, ctx, sub.wallet, crate::events::SubscriptionRenewalFailed::Card(failed)).await?;
    tracing::warn!(event = %ctx.event.id, %wallet, card_subscription = id, "card renewal failed; subscription past_due");
    Ok(Handled { status: "processed", outcome: CardOutcome::PastDue.into(), wallet: Some(wallet) })
}
