//! Checkout Sessions: `checkout.session.completed`, and for payment methods that settle
//! later (bank debits) `checkout.session.async_payment_succeeded` / `…_failed`.
//!
//! A session grants only what it was paid for: `amount_total`/`currency` must be the
//! plan's card price in `[card] currency`, or 0 for the plan's trial; `payment_status` must
//! be `paid` or `no_payment_required` (`unpaid` waits for the async outcome, recorded as
//! `pending`). A wallet gets one trial ever; a trial session for a wallet that had its
//! trial, or that has a live subscription, grants nothing (the processor charges at the
//! trial's end, and that invoice activates the plan).
//!
//! A session the service created for a switch from crypto (`card_sessions`, purpose
//! `switch`) defers the card start to the end of the paid crypto time (`trial_end`): it
//! completes with nothing paid, which is neither a trial nor a period. It grants nothing,
//! leaves the one trial untouched, and only maps the card subscription, whose first
//! invoice (`subscription_cycle`, at `trial_end`) renews the plan from there.

use serde_json::Value;
use sqlx::AnyConnection;

use super::{
    CardError, Ctx, Handled,
    apply::{self, Grant, Payment, text_at},
};
use crate::{
    billing::activation,
    store::{self, card::CardOutcome},
};

/// What a session's amount pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paid {
    /// Nothing paid, on a plan with trial days: its trial.
    Trial,
    /// The plan's card price: one period.
    Period,
}

/// `checkout.session.completed` and `checkout.session.async_payment_succeeded`.
pub(super) async fn completed(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let object = &ctx.event.object;
    let metadata = object.get("metadata").filter(|m| m.is_object()).ok_or_else(|| {
        CardError::MissingMetadata(format!(
            "{}: data.object.metadata is missing; create the Checkout Session with metadata {{\"wallet\": \"0x…\", \"plan_id\": <id>}}",
            ctx.name()
        ))
    })?;
    let (wallet, plan) = apply::member_from(metadata, ctx, "data.object.metadata")?;
    let acknowledged = |outcome: CardOutcome| Handled { status: "acknowledged", outcome: outcome.into(), wallet: Some(wallet) };
    if let Some(handled) = deferred_start(conn, ctx, object, wallet, plan).await? {
        return Ok(handled);
    }
    let paid = paid_for(ctx, object, plan)?;
    match text_at(object, "/payment_status") {
        Some("paid") => {}
        Some("no_payment_required") if paid == Paid::Trial => {}
        Some("no_payment_required") => {
            return Err(CardError::AmountMismatch(format!(
                "{}: payment_status no_payment_required with amount_total {}: nothing was paid for plan {}",
                ctx.name(),
                object["amount_total"],
                plan.id
            )));
        }
        Some("unpaid") => {
            tracing::info!(event = %ctx.event.id, %wallet, plan_id = plan.id, "card checkout not paid yet; waiting for its async payment");
            return Ok(acknowledged(CardOutcome::Pending));
        }
        other => {
            return Err(CardError::BadRequest(format!("{}: data.object.payment_status {other:?} is not paid, unpaid or no_payment_required", ctx.name())));
        }
    }
    let subscription = text_at(object, "/subscription");
    let handled = match paid {
        Paid::Period => {
            let outcome = apply::apply_payment(
                conn,
                ctx,
                Payment { wallet, plan, grant: Grant::Checkout, card_subscription: subscription, collected: apply::card_price(ctx, plan)? },
            )
            .await?;
            Handled { status: "processed", outcome: outcome.into(), wallet: Some(wallet) }
        }
        Paid::Trial => {
            let current = activation::load(conn, wallet).await?;
            if current.as_ref().is_some_and(|c| apply::live(c, ctx.now)) {
                tracing::warn!(event = %ctx.event.id, %wallet, "card trial checkout for a wallet with a live subscription; no trial granted");
                acknowledged(CardOutcome::TrialWhileSubscribed)
            } else if store::card::trial_used(conn, wallet).await? {
                tracing::warn!(event = %ctx.event.id, %wallet, "card trial checkout for a wallet that had its trial; no trial granted");
                acknowledged(CardOutcome::TrialAlreadyUsed)
            } else {
                let outcome =
                    apply::apply_payment(conn, ctx, Payment { wallet, plan, grant: Grant::Trial, card_subscription: subscription, collected: 0 }).await?;
                Handled { status: "processed", outcome: outcome.into(), wallet: Some(wallet) }
            }
        }
    };
    // Mapped even when nothing was granted: the invoice at the trial's end names only the
    // card subscription.
    if let Some(id) = subscription {
        store::card::map_card_subscription(conn, id, wallet, plan.id, text_at(object, "/customer"), ctx.now).await?;
    }
    Ok(handled)
}

/// A switch from crypto the service created: nothing paid now, nothing granted; the card
/// subscription is mapped so its first invoice (at the end of the paid time) renews the
/// plan. `None` for any other session (or a switch session that was paid, which the
/// ordinary rules credit).
async fn deferred_start(
    conn: &mut AnyConnection,
    ctx: &Ctx<'_>,
    object: &Value,
    wallet: alloy::primitives::Address,
    plan: &crate::billing::plans::Plan,
) -> Result<Option<Handled>, CardError> {
    let Some(id) = text_at(object, "/id") else { return Ok(None) };
    let Some(created) = store::card_sessions::find(conn, id).await? else { return Ok(None) };
    if created.purpose != store::card_sessions::SessionPurpose::Switch || apply::cents_at(ctx, object, "/amount_total")? != 0 {
        return Ok(None);
    }
    if created.wallet != wallet || created.plan_id != plan.id {
        return Err(CardError::BadRequest(format!(
            "{}: the session was created for wallet {} and plan {}, but its metadata names {wallet} and plan {}",
            ctx.name(),
            created.wallet,
            created.plan_id,
            plan.id
        )));
    }
    match text_at(object, "/payment_status") {
        Some("no_payment_required" | "paid") => {}
        Some("unpaid") => return Ok(Some(Handled { status: "acknowledged", outcome: CardOutcome::Pending.into(), wallet: Some(wallet) })),
        other => {
            return Err(CardError::BadRequest(format!("{}: data.object.payment_status {other:?} is not paid, unpaid or no_payment_required", ctx.name())));
        }
    }
    let Some(subscription) = text_at(object, "/subscription") else {
        return Err(CardError::BadRequest(format!("{}: a subscription-mode session names no data.object.subscription", ctx.name())));
    };
    store::card::map_card_subscription(conn, subscription, wallet, plan.id, text_at(object, "/customer"), ctx.now).await?;
    tracing::info!(event = %ctx.event.id, %wallet, plan_id = plan.id, card_subscription = subscription, trial_end = ?created.trial_end, "switch to card completed; the card plan starts when the paid time ends");
    Ok(Some(Handled { status: "processed", outcome: CardOutcome::DeferredStart.into(), wallet: Some(wallet) }))
}

/// Checks a session's `amount_total` and `currency` against `plan`'s card price.
fn paid_for(ctx: &Ctx<'_>, object: &Value, plan: &crate::billing::plans::Plan) -> Result<Paid, CardError> {
    let amount = apply::cents_at(ctx, object, "/amount_total")?;
    let currency = apply::currency_of(ctx, object)?;
    if amount == 0 {
        apply::check_currency(ctx, currency, "data.object.currency")?;
        apply::card_price(ctx, plan)?;
        if plan.trial_days == 0 {
            return Err(CardError::AmountMismatch(format!(
                "{}: data.object.amount_total is 0, but plan {} has no trial (trial_days); nothing is credited for it",
                ctx.name(),
                plan.id
            )));
        }
        return Ok(Paid::Trial);
    }
    apply::check_price(ctx, plan, amount, currency, "data.object.amount_total")?;
    Ok(Paid::Period)
}

/// `checkout.session.async_payment_failed`: the payment never arrived; nothing is granted.
pub(super) fn failed(ctx: &Ctx<'_>) -> Handled {
    let wallet = ctx.event.object.get("metadata").and_then(|m| apply::wallet_from(m, ctx, "data.object.metadata").ok());
    tracing::warn!(event = %ctx.event.id, wallet = ?wallet, "card checkout payment failed; nothing granted");
    Handled { status: "acknowledged", outcome: CardOutcome::PaymentFailed.into(), wallet }
}
