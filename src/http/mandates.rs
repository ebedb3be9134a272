//! Automatic renewal from the member's account: `GET /v1/me/mandate/proposal` (the
//! EIP-712 `RenewalMandate` the service proposes, and the bounded allowance to approve),
//! `POST /v1/me/mandate` (the signed mandate back: checked against the plan and by the chain,
//! then stored for the renewer), `GET /v1/me/mandate` (its state, the next charge and the
//! last failure with its fix) and `DELETE /v1/me/mandate` (turned off; the page also revokes
//! it on-chain and sets the allowance back to zero). Under the membership token or the
//! account session (changes need the session's CSRF token and an allowed origin).

use std::str::FromStr;

use alloy::primitives::{Address, Bytes, U256};
use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
};
use crate::{
    billing::{
        activation::Subscription,
        members,
        plans::Plan,
        renewals::{
            self,
            mandate::{self, DAY},
        },
    },
    chain::bindings::IRenewalMandates::RenewalMandate,
    config::RenewalSettings,
    events::{EventType, RenewalFailure, SubscriptionRenewalEnabled},
    money::TokenAmount,
    store::{
        self,
        mandates::{MandateStatus, StoredMandate},
    },
};

/// `GET /v1/me/mandate/proposal` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProposalQuery {
    /// Token symbol the renewals are paid in.
    #[param(max_length = 32)]
    pub token: String,
    /// Charges to allow, 1–120 (default `renewals.default_max_charges`).
    #[param(minimum = 1, maximum = 120)]
    pub max_charges: Option<u32>,
}

/// The mandate the service proposes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalView {
    /// EIP-712 typed data for `eth_signTypedData_v4` (domain, types, primaryType, message).
    #[schema(value_type = Object)]
    pub typed_data: serde_json::Value,
    /// The plan each charge renews (the scheduled switch's, if one is set).
    pub plan_id: u32,
    /// Its name.
    pub plan_name: String,
    /// The token charged.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: String,
    /// Its symbol.
    pub token_symbol: String,
    /// Today's price of one period, in the token's smallest unit.
    pub price: String,
    /// The most one charge may take (today's price plus `renewals.cap_headroom_percent`,
    /// rounded up to a whole token), smallest unit.
    pub cap: String,
    /// The cap in whole tokens.
    pub cap_display: String,
    /// Charges allowed.
    pub max_charges: u32,
    /// The allowance to approve to `spender`: cap × charges (never unlimited).
    pub approve_amount: String,
    /// The checkout contract (the allowance's spender).
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub spender: String,
    /// When the first charge is taken (`renewals.charge_days_before` before the period ends).
    pub first_charge_at: u64,
}

/// `POST /v1/me/mandate` body: the proposal's `typed_data.message`, signed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MandateBody {
    /// The signed mandate, exactly as proposed (integers as decimal strings or numbers).
    pub mandate: MandateFields,
    /// The payer's signature of its EIP-712 digest (`0x…`, 65 bytes; or what the wallet
    /// contract's ERC-1271 check accepts).
    #[schema(pattern = "^0x([0-9a-fA-F]{2})+$", max_length = 4096)]
    pub signature: String,
}

/// The fields of a `RenewalMandate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MandateFields {
    /// The payer.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub payer: String,
    /// The token charged.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: String,
    /// The most one charge may take (decimal).
    #[schema(pattern = "^[0-9]{1,78}$")]
    pub max_amount: String,
    /// Seconds in a period.
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    pub period: u32,
    /// The most charges.
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    pub max_charges: u32,
    /// When period 0 begins (decimal unix seconds).
    #[schema(pattern = "^[0-9]{1,20}$")]
    pub start: String,
    /// When no charge is possible any more (decimal unix seconds).
    #[schema(pattern = "^[0-9]{1,20}$")]
    pub valid_until: String,
    /// Seconds before a period from which its charge may be taken.
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    pub early_window: u32,
    /// The plan charged for.
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    pub plan_id: u32,
    /// The salt (decimal).
    #[schema(pattern = "^[0-9]{1,78}$")]
    pub salt: String,
}

/// The last failure of the current period's charge.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureView {
    /// Why (`insufficient_balance`, `insufficient_allowance`, `price_above_cap`, …).
    pub reason: RenewalFailure,
    /// What the member can do about it.
    pub fix: String,
    /// When the renewer tries again (null: only the member can fix it).
    pub next_attempt_at: Option<u64>,
    /// Attempts so far this period.
    pub attempts: u64,
}

/// A member's renewal mandate.
#[derive(Debug, Serialize, ToSchema)]
pub struct MandateView {
    /// Its id (the EIP-712 digest).
    pub mandate_id: String,
    /// `active` (charged by the renewer), `off` (turned off), `ended` (see `ended_reason`)
    /// or `replaced` (a newer one took over).
    pub status: String,
    /// Why it ended: a renewal failure's name.
    pub ended_reason: Option<String>,
    /// The plan each charge renews.
    pub plan_id: u32,
    /// The token charged.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: String,
    /// Its symbol.
    pub token_symbol: String,
    /// The cap per charge, smallest unit.
    pub max_amount: String,
    /// The cap in whole tokens.
    pub max_amount_display: String,
    /// Charges allowed.
    pub max_charges: u32,
    /// Seconds in a period.
    pub period: u32,
    /// When no charge is possible any more.
    pub valid_until: u64,
    /// When the next charge is due (active mandates of a running plan).
    pub next_charge_at: Option<u64>,
    /// The current period's last failure, if its charge failed.
    pub last_failure: Option<FailureView>,
    /// The signed fields (the typed data's `message`): what the wallet passes to the
    /// checkout's `revokeMandate` to withdraw it on-chain.
    #[schema(value_type = Object)]
    pub mandate: serde_json::Value,
    /// The checkout contract (where it is charged and revoked, and the allowance's spender).
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub checkout: String,
}

fn settings(state: &AppState) -> Result<&RenewalSettings, ApiError> {
    state
        .renewals
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "renewals_not_configured", "automatic renewal is not offered here (no renewer is configured)"))
}

/// The plan the next renewal buys: the scheduled switch's, else the current plan.
/// Refused while a lower plan the member paid for is queued: that plan renews next, from
/// its own end, and a mandate is proposed for it once it has started.
async fn renewal_plan<'a>(state: &'a AppState, sub: &Subscription) -> Result<&'a Plan, ApiError> {
    if let (Some(next), Some(at)) = (sub.next_plan_id, sub.next_expires_at.map(|_| sub.expires_at)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the lower plan {next} you paid for takes over at {at}: turn on automatic renewal once it has started"),
        ));
    }
    let switch = store::switches::get_in(&state.db, sub.wallet).await?.filter(|s| members::switch_in_force(s, sub));
    let id = switch.map_or(sub.plan_id, |s| s.plan_id);
    state.catalog.get(id).ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "conflict", format!("plan {id} is no longer sold")))
}

async fn running(state: &AppState, wallet: Address) -> Result<std::sync::Arc<Subscription>, ApiError> {
    let sub = super::subscriptions::stored_subscription(state, wallet).await?.ok_or_else(|| ApiError::not_found(format!("{wallet} has no subscription")))?;
    if sub.expires_at <= state.clock.now() || sub.status == crate::states::SubscriptionStatus::Expired {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", "the plan has ended: buy it again, then turn on automatic renewal"));
    }
    Ok(sub)
}

/// Proposes the mandate for the signed-in member's next renewals: the plan (the scheduled
/// switch's, else the current one), one charge per period from the end of the current
/// period, a cap above today's price in the token, and the allowance to approve (cap ×
/// charges, never unlimited). Nothing is stored.
#[utoipa::path(get, path = "/v1/me/mandate/proposal", tag = "public", security(("membership_token" = [])), params(ProposalQuery), responses(
    (status = 200, body = ProposalView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "No subscription, no such token (or sign-in is not configured)"),
    (status = 409, body = ErrorBody, description = "Ended, no renewer configured, or no price in that token now"), (status = 429, body = ErrorBody),
))]
pub async fn proposal(State(state): State<AppState>, headers: HeaderMap, query: Result<Query<ProposalQuery>, QueryRejection>) -> Result<Response, ApiError> {
    let wallet = super::auth::signed_in_wallet(&state, &headers).await?;
    let Query(q) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let settings = settings(&state)?;
    let charges = q.max_charges.unwrap_or(settings.default_max_charges);
    if !(1..=120).contains(&charges) {
        return Err(ApiError::invalid("max_charges must be between 1 and 120"));
    }
    let token = state.catalog.token(q.token.trim()).ok_or_else(|| ApiError::not_found(format!("no token {:?}; see GET /v1/plans", q.token)))?.clone();
    let sub = running(&state, wallet).await?;
    let plan = renewal_plan(&state, &sub).await?;
    let quotes = state.quotes.as_ref().ok_or_else(|| ApiError::unavailable("quotes are not configured"))?;
    let (price, _) = quotes
        .price(plan, &token, 1)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", format!("{} cannot be priced in {} now: {e}", plan.name, token.symbol)))?;
    let cap = mandate::proposed_cap(price, &token, settings.cap_headroom_percent);
    let salt = U256::from_be_bytes(rand::random::<[u8; 32]>());
    let proposed = mandate::propose(&sub, plan, &token, cap, charges, settings, salt);
    let d = &state.deployment;
    let view = ProposalView {
        typed_data: mandate::typed_data(&proposed, d.chain_id, d.checkout),
        plan_id: plan.id,
        plan_name: plan.name.clone(),
        token: token.address.to_string(),
        token_symbol: token.symbol.clone(),
        price: price.units().to_string(),
        cap: cap.to_string(),
        cap_display: TokenAmount::new(cap, token.decimals).to_string(),
        max_charges: charges,
        approve_amount: (cap * U256::from(charges)).to_string(),
        spender: d.checkout.to_string(),
        first_charge_at: sub.expires_at.saturating_sub(u64::from(settings.charge_days_before) * DAY),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

fn parse_fields(f: &MandateFields) -> Result<RenewalMandate, ApiError> {
    let address = |field: &str, text: &str| Address::from_str(text.trim()).map_err(|_| ApiError::invalid(format!("mandate.{field} is not an address")));
    let number =
        |field: &str, text: &str| U256::from_str_radix(text.trim(), 10).map_err(|_| ApiError::invalid(format!("mandate.{field} is not a decimal number")));
    let time = |field: &str, text: &str| text.trim().parse::<u64>().map_err(|_| ApiError::invalid(format!("mandate.{field} is not a unix time")));
    Ok(RenewalMandate {
        payer: address("payer", &f.payer)?,
        token: address("token", &f.token)?,
        maxAmount: number("maxAmount", &f.max_amount)?,
        period: f.period,
        maxCharges: f.max_charges,
        start: time("start", &f.start)?,
        validUntil: time("validUntil", &f.valid_until)?,
        earlyWindow: f.early_window,
        planId: f.plan_id,
        salt: number("salt", &f.salt)?,
    })
}

/// Turns on automatic renewal with the mandate the member signed: its terms must be the
/// proposal's rules for the plan as it is now (payer, plan, period, start, early window, a
/// cap at least today's price), and the chain must accept its signature. Stored for the
/// renewer; a mandate the wallet had before is replaced.
#[utoipa::path(post, path = "/v1/me/mandate", tag = "public", security(("membership_token" = [])), request_body = MandateBody, responses(
    (status = 201, body = MandateView), (status = 400, body = ErrorBody, description = "Malformed (not JSON, a field that is not an address, number or hex)"),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The terms no longer fit the plan, or no renewer is configured"),
    (status = 415, body = ErrorBody),
    (status = 422, body = ErrorBody, description = "`mandate_refused`: well-formed, but not what the service proposed or what the contract registers (another payer, early window, charge count or end; a token the checkout does not take; a signature that is not the payer's)"),
    (status = 429, body = ErrorBody), (status = 503, body = ErrorBody, description = "The chain cannot be read"),
))]
pub async fn register(State(state): State<AppState>, headers: HeaderMap, ApiJson(body): ApiJson<MandateBody>) -> Result<Response, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let settings = settings(&state)?.clone();
    let signed = parse_fields(&body.mandate)?;
    let signature = Bytes::from_str(body.signature.trim()).map_err(|_| ApiError::invalid("signature is not hex"))?;
    let sub = running(&state, wallet).await?;
    let plan = renewal_plan(&state, &sub).await?;
    let token = state.catalog.token_at(signed.token).ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "mandate_refused", format!("mandate.token {} is not a token the checkout takes", signed.token))
    })?;
    let quotes = state.quotes.as_ref().ok_or_else(|| ApiError::unavailable("quotes are not configured"))?;
    let (price, _) = quotes
        .price(plan, token, 1)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", format!("{} cannot be priced in {} now: {e}", plan.name, token.symbol)))?;
    let now = state.clock.now();
    mandate::check_terms(&signed, &sub, plan, price, &settings, now)?;
    let d = &state.deployment;
    if let Err(refusal) = mandate::check_on_chain(&state.provider, d.checkout, &signed, &signature).await? {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "mandate_refused",
            format!("the checkout contract would not accept this mandate: {refusal}"),
        ));
    }
    let id = mandate::mandate_id(&signed, d.chain_id, d.checkout);
    let stored = mandate::stored(&signed, id, &signature, now);
    let mut tx = state.db.begin_write().await?;
    store::mandates::insert(&mut tx, &stored, now).await?;
    let id = store::outbox::event_id(&[EventType::SubscriptionRenewalEnabled.as_str(), &stored.mandate_id.to_string()]);
    store::outbox::write_for_member(&mut tx, &id, SubscriptionRenewalEnabled(renewals::mandate_change(&stored, &sub, None)), wallet, now as i64).await?;
    tx.commit().await?;
    let view = view_of(&state, &stored, Some(&sub), &settings).await?;
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// The view of `m` for `sub`'s member (also the merchant's, in `GET /v1/members/{wallet}`).
pub(super) async fn view_of(state: &AppState, m: &StoredMandate, sub: Option<&Subscription>, settings: &RenewalSettings) -> Result<MandateView, ApiError> {
    let token = state.catalog.token_at(m.token);
    let decimals = token.map_or(18, |t| t.decimals);
    let next_charge_at = sub
        .filter(|s| m.status == MandateStatus::Active && s.expires_at > state.clock.now())
        .map(|s| s.expires_at.saturating_sub(u64::from(settings.charge_days_before) * DAY));
    let mut last_failure = None;
    if let Some(sub) = sub {
        let index = sub.expires_at.saturating_sub(m.start) / u64::from(m.period.max(1));
        if let Some(record) = store::mandates::charge_of(&state.db, m.mandate_id, index).await?
            && let Some(reason) = record.last_reason.as_deref().and_then(RenewalFailure::parse)
        {
            last_failure = Some(FailureView {
                reason,
                fix: reason.fix().into(),
                next_attempt_at: reason.retryable().then_some(record.next_attempt_at),
                attempts: record.attempts,
            });
        }
    }
    Ok(MandateView {
        mandate_id: m.mandate_id.to_string(),
        status: m.status.as_str().into(),
        ended_reason: m.ended_reason.clone(),
        plan_id: m.plan_id,
        token: m.token.to_string(),
        token_symbol: token.map_or_else(|| m.token.to_string(), |t| t.symbol.clone()),
        max_amount: m.max_amount.to_string(),
        max_amount_display: TokenAmount::new(m.max_amount, decimals).to_string(),
        max_charges: m.max_charges,
        period: m.period,
        valid_until: m.valid_until,
        next_charge_at,
        last_failure,
        mandate: mandate::message(&mandate::signed(m)),
        checkout: state.deployment.checkout.to_string(),
    })
}

/// The signed-in member's newest mandate: its state, the next charge, the last failure
/// with its fix. 404 when they never turned automatic renewal on.
#[utoipa::path(get, path = "/v1/me/mandate", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = MandateView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 429, body = ErrorBody),
))]
pub async fn current(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::signed_in_wallet(&state, &headers).await?;
    let settings = settings(&state)?.clone();
    let m = store::mandates::latest_of(&state.db, wallet).await?.ok_or_else(|| ApiError::not_found("automatic renewal was never turned on"))?;
    let sub = super::subscriptions::stored_subscription(&state, wallet).await?;
    let view = view_of(&state, &m, sub.as_deref(), &settings).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// Turns automatic renewal off: the renewer charges the mandate no more. The page also
/// revokes it on-chain (`revokeMandate`, by the payer) and sets the allowance back to zero,
/// so nothing can be charged even by a renewer that ignored this.
#[utoipa::path(delete, path = "/v1/me/mandate", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = MandateView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "A cross-site request (`csrf`)"),
    (status = 404, body = ErrorBody, description = "No active mandate"), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
))]
pub async fn turn_off(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wallet = super::auth::member_changing(&state, &headers).await?;
    let settings = settings(&state)?.clone();
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let m = renewals::turn_off(&mut tx, wallet, crate::events::RenewalOffReason::TurnedOff, now)
        .await?
        .ok_or_else(|| ApiError::not_found("automatic renewal is not on"))?;
    tx.commit().await?;
    let sub = super::subscriptions::stored_subscription(&state, wallet).await?;
    let view = view_of(&state, &m, sub.as_deref(), &settings).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/me/mandate/proposal", get(proposal)).route("/v1/me/mandate", get(current).post(register).delete(turn_off))
}

/// The mandate routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(proposal, register, current, turn_off))]
pub(super) struct Api;
