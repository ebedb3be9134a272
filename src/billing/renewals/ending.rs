//! Turning mandates off: by the member (renewal off, plan canceled) or by the service when
//! the next renewal is no longer the mandate's plan or token; each with its
//! `subscription.renewal_disabled` event in the same transaction.

use alloy::primitives::Address;

use crate::{
    billing::activation,
    events::{ChangeSource, EventType, RenewalOffReason},
    store::{
        Db, StoreError,
        mandates::{self, MandateStatus, StoredMandate},
        outbox,
    },
};

/// The event body of turning `m` on (`subscription.renewal_enabled`, `reason` null) or off
/// (`subscription.renewal_disabled`, with why) for `sub`.
pub fn mandate_change(m: &StoredMandate, sub: &activation::Subscription, reason: Option<RenewalOffReason>) -> crate::events::MandateChange {
    let by_service = matches!(reason, Some(RenewalOffReason::PlanChanged | RenewalOffReason::TokenChanged));
    crate::events::MandateChange {
        expires_at: sub.expires_at,
        mandate_id: m.mandate_id.to_string(),
        max_amount: m.max_amount.to_string(),
        max_charges: m.max_charges,
        plan_id: m.plan_id,
        reason,
        source: if by_service { ChangeSource::Mandate } else { ChangeSource::Member },
        status: sub.status,
        tier: sub.tier,
        token: m.token,
        valid_until: m.valid_until,
        wallet: m.wallet,
    }
}

/// Turns `wallet`'s active mandate off inside the caller's transaction, for `reason`: the
/// member turned automatic renewal off or canceled the plan (`off`: a canceled plan does not
/// renew), or the next renewal became another plan or token than the mandate's (`ended`
/// with that reason: the renewer never charges a mandate for a plan the member no longer
/// renews); `subscription.renewal_disabled`. Returns the mandate, `None` when none was on.
pub async fn turn_off(conn: &mut sqlx::AnyConnection, wallet: Address, reason: RenewalOffReason, now: u64) -> Result<Option<StoredMandate>, StoreError> {
    let Some(mut m) = mandates::active_of(conn, wallet).await? else { return Ok(None) };
    let (status, ended) = match reason {
        RenewalOffReason::TurnedOff | RenewalOffReason::Canceled => (MandateStatus::Off, None),
        RenewalOffReason::PlanChanged | RenewalOffReason::TokenChanged => (MandateStatus::Ended, Some(reason.as_str())),
    };
    mandates::set_status(conn, m.mandate_id, status, ended, now).await?;
    m.status = status;
    m.ended_reason = ended.map(str::to_string);
    if let Some(sub) = activation::load(conn, wallet).await? {
        let id = outbox::event_id(&[EventType::SubscriptionRenewalDisabled.as_str(), &m.mandate_id.to_string()]);
        outbox::write_for_member(conn, &id, crate::events::SubscriptionRenewalDisabled(mandate_change(&m, &sub, Some(reason))), wallet, now as i64).await?;
    }
    Ok(Some(m))
}

/// Ends the active mandates whose plan is no longer the one the member's next renewal buys
/// (an upgrade, a paid lower plan or a scheduled switch since it was signed; at most `limit`
/// per call), each with `subscription.renewal_disabled` (`plan_changed`); returns how many.
pub async fn end_outdated(db: &Db, limit: u32, now: u64) -> Result<usize, StoreError> {
    let wallets = mandates::for_another_plan(db, limit).await?;
    for wallet in &wallets {
        let mut tx = db.begin_write().await?;
        turn_off(&mut tx, *wallet, RenewalOffReason::PlanChanged, now).await?;
        tx.commit().await?;
        tracing::info!(%wallet, "automatic renewal ended: the next renewal is another plan than the mandate's");
    }
    Ok(wallets.len())
}
