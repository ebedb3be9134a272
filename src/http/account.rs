//! The member's own account: `GET /v1/me/account`, everything the account page shows in
//! one answer — the subscription (plan, status, period end, days left, a scheduled change),
//! the badge as the chain renders it, the reminders still to come, and every payment with
//! its receipt. Under the membership token or the account session; never cached.

use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
    plans::tier_name,
    receipts::ReceiptView,
    subscriptions::BadgeView,
};
use crate::{
    billing::{
        activation::{self, Subscription},
        members,
        quotes::MAX_PERIODS,
    },
    states::SubscriptionStatus,
    store::{self, subscriptions::ActivationKind, switches::PlanSwitch},
};

/// Seconds in a day.
const DAY: u64 = 86_400;
/// Receipts an account answer lists at most (newest first).
const RECEIPTS: u32 = 100;

/// The member's subscription, as the account page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountSubscription {
    /// Current plan.
    pub plan_id: u32,
    /// Its name.
    pub plan_name: String,
    /// Current tier.
    pub tier: u8,
    /// Tier name.
    pub tier_name: String,
    /// `trialing`, `active`, `past_due`, `canceled` (access to `expires_at`, no renewal) or
    /// `expired` (also once `expires_at` has passed).
    pub status: SubscriptionStatus,
    /// Unix time it started.
    pub started_at: u64,
    /// Unix time the current period ends.
    pub expires_at: u64,
    /// Whole days left, rounded up (0 once ended).
    pub days_left: u64,
    /// A scheduled change: the plan that takes over at `expires_at`.
    pub next_plan_id: Option<u32>,
    /// Its name.
    pub next_plan_name: Option<String>,
    /// When the next plan's time ends.
    pub next_expires_at: Option<u64>,
    /// A switch the member scheduled (`PUT /v1/me/switch`): what the next renewal buys from
    /// `expires_at`. Nothing was paid for it; null when none is in force.
    pub switch: Option<SwitchView>,
}

/// A scheduled switch, as the account shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SwitchView {
    /// The plan the next renewal buys.
    pub plan_id: u32,
    /// Its name.
    pub plan_name: String,
    /// The token symbol it is paid in.
    pub token: String,
    /// When it takes effect: the end of the current period.
    pub takes_effect_at: u64,
}

/// `PUT /v1/me/switch` body: what the next renewal buys.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// Plan id from `GET /v1/plans`: another period of the current tier, or a lower tier (a
    /// higher tier is an upgrade, paid for now). The current plan with another token
    /// switches only the token.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    pub plan_id: u32,
    /// Token symbol the renewal is paid in.
    #[schema(min_length = 1, max_length = 32)]
    pub token: String,
}

/// A reminder still to come.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReminderView {
    /// Days before the end of the period.
    pub days_before: u32,
    /// Unix time it is due (`subscription.expiring`; the merchant's app tells the member).
    pub at: u64,
}

/// The member's account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// The member's wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: String,
    /// The merchant's customer the wallet belongs to.
    pub customer_ref: Option<String>,
    /// The subscription (null: none yet).
    pub subscription: Option<AccountSubscription>,
    /// The badge as the chain holds and renders it (null: none, or the chain could not be
    /// read: `badge_unavailable`).
    pub badge: Option<BadgeView>,
    /// Whether the chain could not be read for the badge just now.
    pub badge_unavailable: bool,
    /// Reminders still to come this period, soonest first.
    pub reminders: Vec<ReminderView>,
    /// Payments with their receipts, and credit notes, newest first (at most 100).
    pub receipts: Vec<ReceiptView>,
}

/// The subscription `sub` as the account shows it at `now`.
fn subscription_view(state: &AppState, sub: &Subscription, switch: Option<&PlanSwitch>, now: u64) -> AccountSubscription {
    let name = |id: u32| state.catalog.get(id).map_or_else(|| format!("plan {id}"), |p| p.name.clone());
    let mut status = sub.status;
    if sub.expires_at <= now && status != SubscriptionStatus::PastDue {
        status = SubscriptionStatus::Expired;
    }
    AccountSubscription {
        plan_id: sub.plan_id,
        plan_name: name(sub.plan_id),
        tier: sub.tier,
        tier_name: tier_name(sub.tier).into(),
        status,
        started_at: sub.started_at,
        expires_at: sub.expires_at,
        days_left: sub.expires_at.saturating_sub(now).div_ceil(DAY),
        next_plan_id: sub.next_plan_id,
        next_plan_name: sub.next_plan_id.map(name),
        next_expires_at: sub.next_expires_at,
        switch: switch.map(|s| SwitchView { plan_id: s.plan_id, plan_name: name(s.plan_id), token: s.token.clone(), takes_effect_at: s.for_expires_at }),
    }
}

/// The reminders still to come for `sub` at `now`: one per configured offset after now, as
/// the reminder pass sends them ([`crate::billing::reminders`]: a live or canceled plan
/// without a scheduled next plan).
fn reminders(days: &[u32], sub: &Subscription, now: u64) -> Vec<ReminderView> {
    if !store::notices::NOTIFIED.contains(&sub.status) || sub.next_plan_id.is_some() || sub.expires_at <= now {
        return Vec::new();
    }
    let mut out: Vec<ReminderView> = days
        .iter()
        .filter_map(|&d| sub.expires_at.checked_sub(u64::from(d) * DAY).filter(|at| *at > now).map(|at| ReminderView { days_before: d, at }))
        .collect();
    out.sort_by_key(|r| r.at);
    out
}

/// Answers the signed-in member's account.
#[utoipa::path(get, path = "/v1/me/account", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = AccountView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "Sign-in is not configured"),
    (status = 429, body = ErrorBody),
))]
pub async fn account(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::signed_in_wallet(&state, &headers).await?;
    let now = state.clock.now();
    let subscription = super::subscriptions::stored_subscription(&state, wallet).await?;
    let (badge, badge_unavailable) = match super::subscriptions::read_badge(&state, wallet).await {
        Ok(badge) => (badge, false),
        Err(_) => (None, true),
    };
    let customer_ref = store::customers::of_wallet_in(&state.db, wallet).await?;
    let switch = match subscription.as_deref() {
        Some(sub) => store::switches::get_in(&state.db, wallet).await?.filter(|s| members::switch_in_force(s, sub)),
        None => None,
    };
    let base = state.http.public_url();
    let receipts = store::receipts::of_wallet(&state.db, wallet, RECEIPTS).await?.iter().map(|r| ReceiptView::of(r, &state.merchant, base)).collect();
    let view = AccountView {
        wallet: wallet.to_string(),
        customer_ref: customer_ref.map(|c| c.as_str().to_string()),
        reminders: subscription.as_deref().map(|s| reminders(&state.reminders.expiring_days, s, now)).unwrap_or_default(),
        subscription: subscription.as_deref().map(|s| subscription_view(&state, s, switch.as_ref(), now)),
        badge,
        badge_unavailable,
        receipts,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// `GET /v1/me/plan-change` query: the purchase to preview.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlanChangeQuery {
    /// Plan id from `GET /v1/plans`.
    pub plan_id: u32,
    /// Periods to buy, 1–36 (default 1).
    #[param(minimum = 1, maximum = 36)]
    pub periods: Option<u32>,
    /// Token symbol to pay in.
    #[param(max_length = 32)]
    pub token: String,
}

/// What buying a plan now would do to the member's subscription, as the service computes
/// it at activation (the page computes nothing itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanChangePreview {
    /// The change: `subscription.activated` (none, or ended), `subscription.renewed` (same
    /// tier: time added), `subscription.upgraded` (higher tier at once, the unused paid time
    /// credited) or `subscription.downgrade_scheduled` (lower tier from the end of the
    /// current period).
    pub change: ActivationKind,
    /// Plan bought.
    pub plan_id: u32,
    /// Periods bought.
    pub periods: u32,
    /// The current plan's unused paid time, converted into the new plan's time at its list
    /// price (upgrades; rounded down). Comp time is carried over as it is, not credited.
    pub credit_seconds: u64,
    /// The plan in force after the purchase.
    pub after_plan_id: u32,
    /// When the plan in force ends after the purchase.
    pub expires_at: u64,
    /// A downgrade: when the lower plan takes effect (the end of the current period).
    pub takes_effect_at: Option<u64>,
    /// A downgrade: when the lower plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The time the preview was computed for: the credit shrinks as the current period is
    /// used, and is computed again, exactly, when the payment confirms.
    pub as_of: u64,
    /// Automatic renewal after this purchase: `off` (not on), `continues` (the mandate renews
    /// the plan as before, in its own token) or `stops` (the next renewal becomes another plan
    /// than the mandate's: the service ends it when the payment confirms, and the member turns
    /// it on again for the new plan).
    pub automatic_renewal: String,
    /// Whether scheduling this plan and token as a switch instead (`PUT /v1/me/switch`) stops
    /// automatic renewal (a mandate for another plan or token).
    pub switch_stops_renewal: bool,
}

/// Previews what buying `periods` of a plan in a token now would do to the signed-in
/// member's subscription: the change, the credit for unused time, the new end. Computed by
/// the same rules as the activation the payment causes, at this moment.
#[utoipa::path(get, path = "/v1/me/plan-change", tag = "public", security(("membership_token" = [])), params(PlanChangeQuery), responses(
    (status = 200, body = PlanChangePreview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "No such plan or token (or sign-in is not configured)"), (status = 429, body = ErrorBody),
))]
pub async fn plan_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PlanChangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let wallet = super::auth::signed_in_wallet(&state, &headers).await?;
    let Query(q) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let periods = q.periods.unwrap_or(1);
    if periods == 0 || periods > MAX_PERIODS {
        return Err(ApiError::invalid(format!("periods must be between 1 and {MAX_PERIODS}")));
    }
    let plan = state.catalog.get(q.plan_id).ok_or_else(|| ApiError::not_found(format!("no plan {}; see GET /v1/plans", q.plan_id)))?;
    let token = state.catalog.token(q.token.trim()).ok_or_else(|| ApiError::not_found(format!("no token {:?}; see GET /v1/plans", q.token)))?;
    let now = state.clock.now();
    let current = super::subscriptions::stored_subscription(&state, wallet).await?;
    let paid = activation::purchase_worth(&state.catalog, plan, periods, token.address, None);
    let change = activation::plan_change(current.as_deref(), &state.catalog, wallet, plan, periods, paid, now);
    let kind: ActivationKind = change.kind.into();
    let downgrade = kind == ActivationKind::DowngradeScheduled;
    let mut conn = state.db.pool().acquire().await.map_err(crate::store::StoreError::from)?;
    let mandate = crate::store::mandates::active_of(&mut conn, wallet).await?;
    drop(conn);
    let renews = change.after.next_plan_id.unwrap_or(change.after.plan_id);
    let automatic_renewal = match &mandate {
        None => "off",
        Some(m) if m.plan_id == renews => "continues",
        Some(_) => "stops",
    };
    let view = PlanChangePreview {
        change: kind,
        plan_id: plan.id,
        periods,
        credit_seconds: change.credit_seconds,
        after_plan_id: change.after.plan_id,
        expires_at: change.after.expires_at,
        takes_effect_at: downgrade.then(|| change.after.next_expires_at.map(|end| end - plan.period.seconds() * u64::from(periods))).flatten(),
        next_expires_at: change.after.next_expires_at.filter(|_| downgrade),
        as_of: now,
        automatic_renewal: automatic_renewal.into(),
        switch_stops_renewal: mandate.is_some_and(|m| m.plan_id != plan.id || m.token != token.address),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// Cancels the signed-in member's plan: no renewal, access to the end of the period; event
/// `subscription.canceled` (`source` `member`). With the session cookie the request must come
/// from an allowed origin with the session's `X-CSRF-Token`. A plan a card subscription
/// renews is cancelled where that subscription is managed (409).
#[utoipa::path(post, path = "/v1/me/cancel", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = AccountSubscription), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody, description = "No subscription (or sign-in is not configured)"),
    (status = 409, body = ErrorBody, description = "Already canceled, ended, or renewed by card"), (status = 429, body = ErrorBody),
))]
pub async fn cancel(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let sub = members::member_cancel(&mut tx, wallet, now).await?;
    let switch = members::switch_of(&mut tx, &sub).await?;
    tx.commit().await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(subscription_view(&state, &sub, switch.as_ref(), now))).into_response())
}

/// Takes back the signed-in member's cancellation before the period ends: the plan is
/// `active` again; event `subscription.uncanceled` (`source` `member`). Same guard as
/// cancelling.
#[utoipa::path(post, path = "/v1/me/uncancel", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = AccountSubscription), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody, description = "No subscription (or sign-in is not configured)"),
    (status = 409, body = ErrorBody, description = "Not canceled, already ended, or renewed by card"), (status = 429, body = ErrorBody),
))]
pub async fn uncancel(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let sub = members::member_uncancel(&mut tx, wallet, now).await?;
    let switch = members::switch_of(&mut tx, &sub).await?;
    tx.commit().await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(subscription_view(&state, &sub, switch.as_ref(), now))).into_response())
}

/// Schedules a switch for the signed-in member: the next renewal buys another period of the
/// same tier (monthly ↔ yearly) or a lower tier, in the token named, from the end of the
/// current period. Nothing is paid now and nothing changes before then; the renewal the
/// account page offers buys it. Event `subscription.switch_scheduled`. Same guard as
/// cancelling; setting the same switch again changes nothing.
#[utoipa::path(put, path = "/v1/me/switch", tag = "public", security(("membership_token" = [])), request_body = SwitchRequest, responses(
    (status = 200, body = AccountSubscription), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody, description = "No subscription or no such plan (or sign-in is not configured)"),
    (status = 409, body = ErrorBody, description = "Ended, canceled, renewed by card, a paid lower plan already queued, or a higher tier (an upgrade is paid for now)"),
    (status = 415, body = ErrorBody),
    (status = 422, body = ErrorBody, description = "`unsupported_token`: no such token, or the plan is not sold in it (see GET /v1/plans)"),
    (status = 429, body = ErrorBody),
))]
pub async fn switch(State(state): State<AppState>, headers: HeaderMap, ApiJson(body): ApiJson<SwitchRequest>) -> Result<Response, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let plan = state.catalog.get(body.plan_id).ok_or_else(|| ApiError::not_found(format!("no plan {}; see GET /v1/plans", body.plan_id)))?;
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let (sub, switch) = members::member_switch(&mut tx, &state.catalog, wallet, plan, &body.token, now).await?;
    tx.commit().await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(subscription_view(&state, &sub, Some(&switch), now))).into_response())
}

/// Takes back the signed-in member's scheduled switch: the next renewal buys the current
/// plan again. Event `subscription.switch_canceled`. Same guard as cancelling.
#[utoipa::path(delete, path = "/v1/me/switch", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = AccountSubscription), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody, description = "No scheduled switch (or sign-in is not configured)"), (status = 429, body = ErrorBody),
))]
pub async fn unswitch(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let sub = members::member_unswitch(&mut tx, &state.catalog, wallet, now).await?;
    tx.commit().await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(subscription_view(&state, &sub, None, now))).into_response())
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me/account", get(account))
        .route("/v1/me/plan-change", get(plan_change))
        .route("/v1/me/cancel", axum::routing::post(cancel))
        .route("/v1/me/uncancel", axum::routing::post(uncancel))
        .route("/v1/me/switch", axum::routing::put(switch).delete(unswitch))
}

/// The account routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(account, plan_change, cancel, uncancel, switch, unswitch))]
pub(super) struct Api;

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use super::*;

    fn sub(status: SubscriptionStatus, expires_at: u64) -> Subscription {
        Subscription {
            wallet: Address::ZERO,
            plan_id: 1,
            tier: 1,
            status,
            started_at: 0,
            expires_at,
            next_plan_id: None,
            next_expires_at: None,
            comp_seconds: 0,
            paid_rate: None,
        }
    }

    #[test]
    fn reminders_to_come_are_those_after_now_for_a_running_plan() {
        let now = 1_000 * DAY;
        let live = sub(SubscriptionStatus::Active, now + 3 * DAY);
        let coming = reminders(&[7, 1, 2], &live, now);
        assert_eq!(coming.iter().map(|r| r.days_before).collect::<Vec<_>>(), [2, 1], "7 days before is past; soonest first");
        assert_eq!(coming[0].at, now + DAY);
        assert_eq!(reminders(&[1], &sub(SubscriptionStatus::Canceled, now + 3 * DAY), now).len(), 1, "a canceled plan is reminded of its end");
        assert!(reminders(&[1], &sub(SubscriptionStatus::Expired, now + 3 * DAY), now).is_empty());
        let mut scheduled = sub(SubscriptionStatus::Active, now + 3 * DAY);
        scheduled.next_plan_id = Some(2);
        assert!(reminders(&[1], &scheduled, now).is_empty(), "a scheduled plan takes over: no reminder");
        assert!(reminders(&[1], &sub(SubscriptionStatus::Active, now), now).is_empty());
    }
}
