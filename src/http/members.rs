//! Member management (merchant API key): comp time, cancel, revoke, move (a payment's
//! refund is in [`super::payments`]). Each request is one write transaction
//! ([`crate::billing::members`]); any error leaves nothing changed.

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
    params::parse_wallet,
    plans::tier_name,
};
use crate::{
    billing::{activation::Subscription, customers::CustomerRef, members},
    store::{customers, subscriptions},
};

/// A member's subscription after an action.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// Member wallet.
    pub wallet: String,
    /// Current plan.
    pub plan_id: u32,
    /// Current tier.
    pub tier: u8,
    /// Tier name.
    pub tier_name: String,
    /// `trialing`, `active`, `past_due` (a renewal failed; access runs to `expires_at`),
    /// `expired` or `canceled`.
    pub status: crate::states::SubscriptionStatus,
    /// Unix time access ends.
    pub expires_at: u64,
    /// The comped part of the time to `expires_at`, in seconds.
    pub comp_seconds: u64,
    /// Plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
    /// When the scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The merchant's customer the membership belongs to (README "Customer references").
    pub customer_ref: Option<String>,
}

impl MemberView {
    /// Returns the view of `sub`, whose wallet belongs to `customer`.
    fn with_customer(sub: &Subscription, customer: Option<&CustomerRef>) -> Self {
        Self { customer_ref: customer.map(ToString::to_string), ..Self::from(sub) }
    }

    /// Returns the view of `sub` with the customer its wallet belongs to (read).
    pub(super) async fn of(state: &AppState, sub: &Subscription) -> Result<Self, ApiError> {
        let customer = customers::of_wallet_in(&state.db, sub.wallet).await?;
        Ok(Self::with_customer(sub, customer.as_ref()))
    }
}

impl From<&Subscription> for MemberView {
    fn from(s: &Subscription) -> Self {
        Self {
            wallet: s.wallet.to_string(),
            plan_id: s.plan_id,
            tier: s.tier,
            tier_name: tier_name(s.tier).into(),
            status: s.status,
            expires_at: s.expires_at,
            comp_seconds: s.comp_seconds,
            next_plan_id: s.next_plan_id,
            next_expires_at: s.next_expires_at,
            customer_ref: None,
        }
    }
}

/// `POST /v1/members/{wallet}/comp` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompRequest {
    /// Days to grant, 1–3650.
    #[serde(deserialize_with = "super::numbers::u32_integral")]
    #[schema(minimum = 1, maximum = 3650)]
    pub days: u32,
    /// Why (kept in the ledger and the event), up to 500 characters, not blank.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// A comp grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompResponse {
    /// Ledger id of the grant.
    pub grant_id: i64,
    /// Seconds granted.
    pub seconds: u64,
    /// The subscription afterwards.
    pub subscription: MemberView,
}

/// `POST /v1/members/{wallet}/move` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The wallet that takes over the subscription and badge (0x address, without one).
    #[schema(pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")]
    pub new_wallet: String,
}

/// Grants comp time: the expiry moves by `days`, kept apart from paid time (an upgrade
/// never credits it at a paid price); badge job `update`; event `subscription.comp_granted`.
#[utoipa::path(post, path = "/v1/members/{wallet}/comp", tag = "merchant", security(("api_key" = [])),
    params(("wallet" = String, Path, description = "0x address", pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")), request_body = CompRequest, responses(
    (status = 200, body = CompResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
))]
pub async fn comp(State(state): State<AppState>, Path(wallet): Path<String>, ApiJson(body): ApiJson<CompRequest>) -> Result<Json<CompResponse>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    let mut tx = state.db.begin_write().await?;
    let grant = members::grant_comp(&mut tx, wallet, body.days, &body.reason, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Json(CompResponse { grant_id: grant.grant_id, seconds: grant.seconds, subscription: MemberView::of(&state, &grant.subscription).await? }))
}

/// Cancels: no renewal, access to the end of the paid period; event `subscription.canceled`.
#[utoipa::path(post, path = "/v1/members/{wallet}/cancel", tag = "merchant", security(("api_key" = [])),
    params(("wallet" = String, Path, description = "0x address", pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")), responses(
    (status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
))]
pub async fn cancel(State(state): State<AppState>, Path(wallet): Path<String>) -> Result<Json<MemberView>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    let mut tx = state.db.begin_write().await?;
    let sub = members::cancel(&mut tx, wallet, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Json(MemberView::of(&state, &sub).await?))
}

/// Revokes: the subscription ends now and the badge is revoked; badge job `revoke`; event
/// `subscription.expired` with reason `revoked`.
#[utoipa::path(post, path = "/v1/members/{wallet}/revoke", tag = "merchant", security(("api_key" = [])),
    params(("wallet" = String, Path, description = "0x address", pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")), responses(
    (status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
))]
pub async fn revoke(State(state): State<AppState>, Path(wallet): Path<String>) -> Result<Json<MemberView>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    let mut tx = state.db.begin_write().await?;
    let sub = members::revoke(&mut tx, wallet, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Json(MemberView::of(&state, &sub).await?))
}

/// Moves the subscription and badge to a new wallet (a member who lost a key); badge job
/// `move`; event `subscription.moved`.
#[utoipa::path(post, path = "/v1/members/{wallet}/move", tag = "merchant", security(("api_key" = [])),
    params(("wallet" = String, Path, description = "0x address", pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")), request_body = MoveRequest, responses(
    (status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
))]
pub async fn move_member(State(state): State<AppState>, Path(wallet): Path<String>, ApiJson(body): ApiJson<MoveRequest>) -> Result<Json<MemberView>, ApiError> {
    let from = parse_wallet("wallet", &wallet)?;
    let to = parse_wallet("new_wallet", &body.new_wallet)?;
    let mut tx = state.db.begin_write().await?;
    let sub = members::move_member(&mut tx, from, to, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Json(MemberView::of(&state, &sub).await?))
}

/// A member as the merchant looks them up: the wallet, the customer it belongs to and its
/// subscription (none yet: bound by a payment whose plan has not started, or ended long ago
/// and pruned — not today).
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// Member wallet.
    pub wallet: String,
    /// The merchant's customer the wallet belongs to.
    pub customer_ref: Option<String>,
    /// The wallet's subscription.
    pub subscription: Option<MemberView>,
    /// Its newest automatic-renewal mandate (null: never turned on, and always null in
    /// `GET /v1/members`): state, cap, next charge, the current period's last failure.
    pub mandate: Option<super::mandates::MandateView>,
}

/// `GET /v1/members` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    /// The merchant's customer reference (1–64 characters of `A-Z a-z 0-9 _ : @ -`).
    #[param(pattern = "^[A-Za-z0-9_:@-]{1,64}$")]
    pub customer_ref: String,
}

/// The wallets of one of the merchant's customers.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// The customer reference asked for.
    pub customer_ref: String,
    /// Its wallets, first bound first (empty: no payment carried the reference yet).
    pub members: Vec<Member>,
}

/// Returns the members that belong to one of the merchant's customers: every wallet a
/// confirmed payment (or card event) bound to `customer_ref`, with its subscription.
#[utoipa::path(get, path = "/v1/members", tag = "merchant", security(("api_key" = [])), params(MembersQuery), responses(
    (status = 200, body = MemberList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
))]
pub async fn list_members(State(state): State<AppState>, query: Result<Query<MembersQuery>, QueryRejection>) -> Result<Json<MemberList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {}; pass ?customer_ref=<the merchant's user id>", e.body_text())))?;
    let customer = CustomerRef::parse(&query.customer_ref).map_err(ApiError::from)?;
    let wallets = customers::wallets_of(&state.db, &customer).await?;
    let subs = subscriptions::load_many(&mut *state.db.pool().acquire().await?, &wallets).await?;
    let members = wallets
        .iter()
        .map(|w| Member {
            wallet: w.to_string(),
            customer_ref: Some(customer.to_string()),
            subscription: subs.iter().find(|s| s.wallet == *w).map(|s| MemberView::with_customer(s, Some(&customer))),
            // The list stays one query per table; one member's mandate is in GET /v1/members/{wallet}.
            mandate: None,
        })
        .collect();
    Ok(Json(MemberList { customer_ref: customer.to_string(), members }))
}

/// Returns one member: the customer the wallet belongs to and its subscription; 404 when
/// the wallet has neither.
#[utoipa::path(get, path = "/v1/members/{wallet}", tag = "merchant", security(("api_key" = [])),
    params(("wallet" = String, Path, description = "0x address", pattern = "^(?!0x0{40}$)0x[0-9a-fA-F]{40}$")), responses(
    (status = 200, body = Member), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn get_member(State(state): State<AppState>, Path(wallet): Path<String>) -> Result<Json<Member>, ApiError> {
    let wallet = parse_wallet("wallet", &wallet)?;
    let mut conn = state.db.pool().acquire().await?;
    let customer = customers::of_wallet(&mut conn, wallet).await?;
    let sub = subscriptions::load(&mut conn, wallet).await?;
    if customer.is_none() && sub.is_none() {
        return Err(ApiError::not_found(format!("{wallet} has no subscription and belongs to no customer")));
    }
    drop(conn);
    let subscription = sub.as_ref().map(|s| MemberView::with_customer(s, customer.as_ref()));
    let mandate = match crate::store::mandates::latest_of(&state.db, wallet).await? {
        Some(m) => {
            let settings = state.renewals.as_deref().cloned().unwrap_or_default();
            Some(super::mandates::view_of(&state, &m, sub.as_ref(), &settings).await?)
        }
        None => None,
    };
    Ok(Json(Member { wallet: wallet.to_string(), customer_ref: customer.map(|c| c.to_string()), subscription, mandate }))
}

/// Returns the member routes (merchant: behind the API key).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/members", get(list_members))
        .route("/v1/members/{wallet}", get(get_member))
        .route("/v1/members/{wallet}/comp", post(comp))
        .route("/v1/members/{wallet}/cancel", post(cancel))
        .route("/v1/members/{wallet}/revoke", post(revoke))
        .route("/v1/members/{wallet}/move", post(move_member))
}

/// The member routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list_members, get_member, comp, cancel, revoke, move_member))]
pub(super) struct Api;
