//! Refunds and disputes at the processor take back what the card payment paid for, in
//! proportion to the amount (README "Card payments"):
//!
//! - `charge.refunded`: the charge's `amount_refunded` (cumulative over partial refunds)
//!   takes back that share of the seconds the payment bought, rounded **up** (a member never
//!   keeps time whose money went back);
//! - `charge.dispute.created`: the processor withdraws the disputed `amount` at once, so
//!   its share of the time is taken back at once too;
//! - `charge.dispute.closed`: `won` (or an inquiry closed as `warning_closed`) gives the
//!   time the dispute took back again, added to the current expiry (from now when the
//!   subscription ended meanwhile); `lost` leaves it taken.
//!
//! The payment is found by the payment intent, invoice or charge the object names
//! (`card_grants`); taking back never removes more than the payment bought, counting
//! refunds and disputes together. Time comes off the end of the current period (a
//! scheduled downgrade moves earlier with it); a subscription left with none ends now
//! (`subscription.expired`, badge revoked), otherwise `subscription.reversed` and the
//! badge is updated.

use sqlx::AnyConnection;

use super::{
    CardError, Ctx, Handled,
    apply::{self, text_at},
};
use crate::{
    billing::activation,
    events::{CardTakenBack, ChangeSource, EventType, Payload, SubscriptionExpired, SubscriptionReversed, TakeBackReason},
    states::{BadgeAction, SubscriptionStatus},
    store::{
        self,
        card::{CardGrant, CardOutcome},
        outbox,
    },
};

/// Returns the share `part / whole` of `seconds`, rounded up, at most `seconds`.
fn share_up(seconds: u64, part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return seconds;
    }
    let share = (u128::from(seconds) * u128::from(part.min(whole))).div_ceil(u128::from(whole));
    u64::try_from(share).unwrap_or(seconds).min(seconds)
}

/// Reads the amount in cents at `field`, or refuses the event.
fn cents(ctx: &Ctx<'_>, field: &str) -> Result<u64, CardError> {
    apply::cents_at(ctx, &ctx.event.object, &format!("/{field}"))
}

/// Finds the grant the event's object names, or answers `unknown_charge`.
async fn grant_of(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Result<CardGrant, Handled>, CardError> {
    match store::card::find_grant(conn, apply::payment_refs(&ctx.event.object)).await? {
        Some(grant) => Ok(Ok(grant)),
        None => {
            tracing::info!(event = %ctx.event.id, "card refund or dispute for a charge no card payment here was granted for; nothing to take back");
            Ok(Err(Handled { status: "acknowledged", outcome: CardOutcome::UnknownCharge.into(), wallet: None }))
        }
    }
}

/// `charge.refunded`.
pub(super) async fn refunded(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let refunded = cents(ctx, "amount_refunded")?;
    take_back(conn, ctx, TakeBackReason::Refunded, refunded).await
}

/// `charge.dispute.created`.
pub(super) async fn dispute_created(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let amount = cents(ctx, "amount")?;
    take_back(conn, ctx, TakeBackReason::Disputed, amount).await
}

/// Takes back the share of the payment's time that `amount` cents refunded or disputed so
/// far pays for, less what earlier events of the same kind took.
async fn take_back(conn: &mut AnyConnection, ctx: &Ctx<'_>, reason: TakeBackReason, amount: u64) -> Result<Handled, CardError> {
    let mut grant = match grant_of(conn, ctx).await? {
        Ok(grant) => grant,
        Err(handled) => return Ok(handled),
    };
    let refund = reason == TakeBackReason::Refunded;
    let (cents_so_far, seconds_so_far) = if refund { (grant.refunded_cents, grant.taken_seconds) } else { (grant.disputed_cents, grant.disputed_seconds) };
    if amount <= cents_so_far {
        return Ok(Handled { status: "acknowledged", outcome: CardOutcome::Unchanged.into(), wallet: Some(grant.wallet) });
    }
    let target = share_up(grant.seconds, amount, grant.collected_cents);
    // Refunds and disputes together never take more than the payment bought.
    let room = grant.seconds.saturating_sub(grant.taken_seconds + grant.disputed_seconds);
    let seconds = target.saturating_sub(seconds_so_far).min(room);
    let (outcome, removed) = shift(conn, ctx, &grant, -(seconds as i128), reason).await?;
    // A refund or dispute ends the member's account sessions (they sign in again to see
    // what is left).
    store::auth_sessions::end_wallet(conn, grant.wallet, ctx.now).await?;
    if refund {
        // The refund's credit note: for the cents refunded now; the one that refunds the
        // whole payment cancels its receipt.
        if let Some((receipt, total, credited)) = store::receipts::of_card_grant(conn, &grant.card_event).await?
            && let Some(credit) = crate::billing::receipts::card_refund_credit(&receipt, &ctx.event.id, total, credited, amount)
        {
            store::receipts::credit(conn, &receipt, &credit, ctx.now).await?;
        }
        grant.refunded_cents = amount;
        grant.taken_seconds += seconds;
    } else {
        // A won dispute gives back what actually came off (time already used is not
        // restored).
        grant.disputed_cents = amount;
        grant.disputed_seconds += removed;
    }
    store::card::update_grant(conn, &grant).await?;
    Ok(Handled { status: "processed", outcome: outcome.into(), wallet: Some(grant.wallet) })
}

/// `charge.dispute.closed`.
pub(super) async fn dispute_closed(conn: &mut AnyConnection, ctx: &Ctx<'_>) -> Result<Handled, CardError> {
    let status = text_at(&ctx.event.object, "/status").unwrap_or_default();
    let mut grant = match grant_of(conn, ctx).await? {
        Ok(grant) => grant,
        Err(handled) => return Ok(handled),
    };
    if !matches!(status, "won" | "warning_closed") || grant.disputed_seconds == 0 {
        // Lost (or nothing was taken): what the dispute took stays taken.
        return Ok(Handled { status: "acknowledged", outcome: CardOutcome::Unchanged.into(), wallet: Some(grant.wallet) });
    }
    let seconds = grant.disputed_seconds;
    grant.disputed_cents = 0;
    grant.disputed_seconds = 0;
    store::card::update_grant(conn, &grant).await?;
    let (outcome, _) = shift(conn, ctx, &grant, i128::from(seconds), TakeBackReason::DisputeWon).await?;
    Ok(Handled { status: "processed", outcome: outcome.into(), wallet: Some(grant.wallet) })
}

/// Moves the end of `grant`'s member's time by `delta` seconds (negative: taken back),
/// queues the badge job and writes the event; returns the outcome and the seconds that
/// actually moved (no more than was left, when taking back).
async fn shift(conn: &mut AnyConnection, ctx: &Ctx<'_>, grant: &CardGrant, delta: i128, reason: TakeBackReason) -> Result<(CardOutcome, u64), CardError> {
    let now = ctx.now;
    let Some(sub) = activation::load(conn, grant.wallet).await? else { return Ok((CardOutcome::NoSubscription, 0)) };
    let live = apply::live(&sub, now);
    if delta == 0 || (delta < 0 && !live) {
        // Nothing to move, or the time already ran out.
        return Ok((CardOutcome::Unchanged, 0));
    }
    let seconds = delta.unsigned_abs() as u64;
    let mut after = sub.clone();
    if delta > 0 {
        let from = if live { sub.expires_at } else { now };
        after.expires_at = from + seconds;
        after.next_expires_at = sub.next_expires_at.filter(|_| live).map(|n| n + seconds);
        if !live {
            after.status = SubscriptionStatus::Active;
            after.next_plan_id = None;
            after.comp_seconds = 0;
        }
    } else {
        after.expires_at = sub.expires_at.saturating_sub(seconds);
        after.next_expires_at = sub.next_expires_at.map(|n| n.saturating_sub(seconds).max(after.expires_at));
    }
    let ended = after.expires_at <= now;
    if ended {
        activation::end_now(&mut after, now);
    } else {
        after.comp_seconds = after.comp_seconds.min(after.expires_at - now);
    }
    let moved = if delta > 0 { seconds } else { sub.expires_at - after.expires_at };
    activation::save(conn, &after, now).await?;
    let action = if ended { BadgeAction::Revoke } else { BadgeAction::Update };
    activation::queue_badge(conn, after.wallet, action, after.tier, after.expires_at, now).await?;
    let data = CardTakenBack {
        card_event: ctx.event.id.clone(),
        card_object: text_at(&ctx.event.object, "/id").unwrap_or_default().to_string(),
        expires_at: after.expires_at,
        next_expires_at: after.next_expires_at,
        next_plan_id: after.next_plan_id,
        plan_id: after.plan_id,
        previous_expires_at: sub.expires_at,
        reason,
        seconds: moved,
        source: ChangeSource::Card,
        status: after.status,
        tier: after.tier,
        wallet: after.wallet,
    };
    let (event_type, payload): (EventType, Payload) = if ended {
        (EventType::SubscriptionExpired, SubscriptionExpired::CardTakenBack(data).into())
    } else {
        (EventType::SubscriptionReversed, SubscriptionReversed::Card(data).into())
    };
    outbox::write_for_member(conn, &outbox::event_id(&[event_type.as_str(), "card", &ctx.event.id]), payload, after.wallet, now as i64).await?;
    Ok((if delta > 0 { CardOutcome::Restored } else { CardOutcome::TakenBack }, moved))
}

#[cfg(test)]
mod tests {
    use super::share_up;

    #[test]
    fn a_refund_takes_back_its_share_rounded_up() {
        assert_eq!(share_up(2_592_000, 4_900, 4_900), 2_592_000);
        assert_eq!(share_up(2_592_000, 2_450, 4_900), 1_296_000);
        // 1 cent of 4900 is 528.97… seconds: 529 are taken.
        assert_eq!(share_up(2_592_000, 1, 4_900), 529);
        // Never more than was bought.
        assert_eq!(share_up(100, 9_999, 4_900), 100);
    }
}
