//! Sign-In with Ethereum over HTTP: `POST /v1/auth/nonce`, `POST /v1/auth/verify`,
//! `POST /v1/auth/refresh`, `POST /v1/auth/logout`, `GET /v1/me` and the token keys at
//! `/.well-known/jwks.json`. The checks are in [`crate::auth`]; this file maps them to
//! answers and cookies.
//!
//! A sign-in opens an account session: the cookie holds a random secret (the store keeps
//! its SHA-256, `auth_sessions`), and the answer carries a short-lived membership token and
//! the session's cross-site request token. The page renews the token from the session; a
//! change the cookie authorizes (refresh, sign-out) needs the request's `Origin` to be an
//! allowed origin and `X-CSRF-Token` to be the session's token, so a page on another site
//! cannot make the browser act with the cookie.

use alloy::primitives::Address;
use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
};
use crate::{
    auth::{
        AuthService,
        signature::SignatureError,
        siwe::{self, SignInError},
        tokens::Claims,
    },
    store::auth_sessions::{self, Session},
};

/// The account page's session cookie over http (its value is the session's secret).
pub const SESSION_COOKIE: &str = "tmai_session";
/// The session cookie's name over https: the `__Host-` prefix makes browsers refuse it
/// unless it is `Secure`, has `Path=/` and no `Domain` (no other host can set or shadow it).
pub const SECURE_SESSION_COOKIE: &str = "__Host-tmai_session";
/// The header that carries the session's cross-site request token.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        let message = e.to_string();
        match e {
            SignInError::Malformed(_) => Self::invalid(message),
            SignInError::WrongDomain(_) => Self::new(StatusCode::FORBIDDEN, "wrong_domain", message),
            SignInError::WrongChain { .. } => Self::new(StatusCode::BAD_REQUEST, "wrong_chain", message),
            SignInError::WrongStatement(_) => Self::new(StatusCode::BAD_REQUEST, "wrong_statement", message),
            SignInError::Expired(_) => Self::new(StatusCode::UNAUTHORIZED, "expired_message", message),
            SignInError::BadNonce(_) => Self::new(StatusCode::UNAUTHORIZED, "invalid_nonce", message),
            SignInError::Replayed => Self::new(StatusCode::UNAUTHORIZED, "nonce_used", message),
            SignInError::TriesSpent => Self::new(StatusCode::UNAUTHORIZED, "nonce_tries_spent", message),
            SignInError::TooManyNonces { retry_after_secs } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_nonces", message).retry_after(retry_after_secs)
            }
            SignInError::Signature(SignatureError::Busy) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "sign_in_busy", message).retry_after(1),
            SignInError::Signature(SignatureError::OtherSigner(_)) => Self::new(StatusCode::UNAUTHORIZED, "wrong_signer", message),
            SignInError::Signature(SignatureError::Invalid) => Self::new(StatusCode::UNAUTHORIZED, "bad_signature", message),
            SignInError::Signature(SignatureError::Rpc(e)) => {
                tracing::warn!(error = %crate::config::scrubbed_urls(&e.to_string()), "contract wallet check failed");
                Self::unavailable("cannot reach the chain to check a contract wallet's signature; try again")
            }
            SignInError::Store(e) => Self::internal(&e),
        }
    }
}

fn service(state: &AppState) -> Result<&AuthService, ApiError> {
    // Not a 5xx: nothing is failing, the merchant has not turned the feature on.
    state
        .auth
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "sign_in_not_configured", "sign-in is not configured on this service (the [auth] table)"))
}

/// A new sign-in nonce.
#[derive(Debug, Serialize, ToSchema)]
pub struct NonceView {
    /// Put it in the message's `Nonce:` line; it works once.
    pub nonce: String,
    /// Unix time after which it is refused.
    pub expires_at: u64,
    /// The chain the message must name (`Chain ID:`).
    pub chain_id: u64,
    /// The statement the message must carry, when the service requires one.
    pub statement: Option<String>,
    /// The service's time now (unix seconds): a page puts it in the message's `Issued At:`
    /// so a member whose computer clock is off still signs a message the service accepts.
    pub issued_at: u64,
}

/// Returns a single-use nonce for a Sign-In with Ethereum message.
#[utoipa::path(post, path = "/v1/auth/nonce", tag = "public", responses(
    (status = 200, body = NonceView), (status = 404, body = ErrorBody, description = "Sign-in is not configured"), (status = 429, body = ErrorBody),
    (status = 503, body = ErrorBody, description = "As many nonces are live as `auth.max_live_nonces` allows (`too_many_nonces`, with `Retry-After`)"),
))]
pub async fn nonce(State(state): State<AppState>) -> Result<Json<NonceView>, ApiError> {
    let auth = service(&state)?;
    let now = state.clock.now();
    let (nonce, expires_at) = siwe::new_nonce(&state.db, &auth.settings, now).await?;
    Ok(Json(NonceView { nonce, expires_at, chain_id: state.deployment.chain_id, statement: auth.settings.statement.clone(), issued_at: now }))
}

/// A signed Sign-In with Ethereum message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The EIP-4361 message, exactly as signed.
    #[schema(max_length = 4096)]
    pub message: String,
    /// The wallet's signature (`personal_sign`), hex; contract wallets' ERC-1271 or
    /// ERC-6492 signatures are accepted.
    #[schema(max_length = 12000)]
    pub signature: String,
}

/// What a membership token says, and the token itself after a sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Membership {
    /// The member's wallet (the token's `sub`).
    pub wallet: String,
    /// Tier (0: not a member now).
    pub tier: u8,
    /// Plan id, when the wallet has a subscription.
    pub plan_id: Option<u32>,
    /// `trialing`, `active`, `past_due`, `canceled`, `expired` or `none`.
    pub status: String,
    /// Unix time the paid (or comped) time ends, when the wallet has a subscription.
    pub period_end: Option<u64>,
    /// Unix time the token (and session) expires.
    pub expires_at: u64,
    /// Unix time the member signed in.
    pub auth_time: u64,
}

impl Membership {
    fn of(claims: &Claims) -> Self {
        Self {
            wallet: claims.sub.clone(),
            tier: claims.tier,
            plan_id: claims.plan,
            status: claims.status.clone(),
            period_end: claims.period_end,
            expires_at: claims.exp,
            auth_time: claims.auth_time,
        }
    }
}

/// A sign-in's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInView {
    /// The membership token: a JWT signed ES256, verifiable against
    /// `/.well-known/jwks.json`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// How the wallet signed: `eoa`, `erc1271` or `erc6492`.
    pub signer: String,
    /// What the token says.
    pub membership: Membership,
    /// The session's cross-site request token: send it as `X-CSRF-Token` with every change
    /// the session cookie authorizes (`POST /v1/auth/refresh`, `POST /v1/auth/logout`).
    pub csrf_token: String,
}

/// A renewed membership token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshView {
    /// The membership token (as after a sign-in, with a new expiry).
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// What the token says.
    pub membership: Membership,
}

/// Returns a random secret of 32 bytes, base64url without padding.
fn random_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_hash(secret: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes()).to_vec()
}

/// The session cookie: `__Host-` and `Secure` over https.
fn session_cookie(secret: &str, max_age: u64, secure: bool) -> String {
    let name = if secure { SECURE_SESSION_COOKIE } else { SESSION_COOKIE };
    format!("{name}={secret}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}", if secure { "; Secure" } else { "" })
}

/// Checks a signed Sign-In with Ethereum message and answers a membership token; also sets
/// the account page's session cookie (HttpOnly, SameSite=Strict, Secure over https).
#[utoipa::path(post, path = "/v1/auth/verify", tag = "public", request_body = VerifyRequest, responses(
    (status = 200, body = SignInView, description = "Signed in; `Set-Cookie` holds the session"),
    (status = 400, body = ErrorBody, description = "Malformed message or signature, wrong chain or statement"),
    (status = 401, body = ErrorBody, description = "Expired message, unknown or used nonce, a nonce whose tries are spent, bad signature, another wallet's signature"),
    (status = 403, body = ErrorBody, description = "Domain or URI not allowed"),
    (status = 404, body = ErrorBody, description = "Sign-in is not configured"),
    (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
    (status = 503, body = ErrorBody, description = "The node could not be asked about a contract wallet, or sign-in's share of it is in use (`sign_in_busy`, with `Retry-After`)"),
))]
pub async fn verify(State(state): State<AppState>, ApiJson(body): ApiJson<VerifyRequest>) -> Result<Response, ApiError> {
    let auth = service(&state)?;
    let now = state.clock.now();
    let signed = siwe::sign_in(&state.db, &state.provider, auth, state.deployment.chain_id, &body.message, &body.signature, now).await?;
    let subscription = super::subscriptions::stored_subscription(&state, signed.wallet).await?;
    let claims = auth.claims(signed.wallet, subscription.as_deref(), now, now, &signed.nonce);
    let token = auth.keys.sign(&claims).map_err(|e| ApiError::internal(&e))?;
    let secure = signed.origin.scheme() == "https";
    let (secret, csrf) = (random_secret(), random_secret());
    let session = Session { wallet: signed.wallet, csrf: csrf.clone(), auth_time: now, expires_at: now.saturating_add(auth.settings.session_secs) };
    auth_sessions::create(&state.db, &session_hash(&secret), &session, now).await?;
    let cookie = session_cookie(&secret, auth.settings.session_secs, secure);
    let view = SignInView { token, token_type: "Bearer".into(), signer: signed.kind.as_str().into(), membership: Membership::of(&claims), csrf_token: csrf };
    let mut response = Json(view).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(&e))?);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Which sessions a sign-out ends.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogoutParams {
    /// `true`: every session of the wallet (sign out everywhere); otherwise this one.
    pub everywhere: Option<bool>,
}

/// Ends the account page's session — or, with `everywhere=true`, every session of its
/// wallet — and clears its cookie. With a session cookie the request must come from an
/// allowed origin with the session's `X-CSRF-Token`; without one it only clears cookies.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "public", params(LogoutParams), responses(
    (status = 204, description = "Signed out"),
    (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "A cross-site request: its `Origin` is not allowed or `X-CSRF-Token` is not the session's (`csrf`)"),
    (status = 429, body = ErrorBody),
))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, params: Result<Query<LogoutParams>, QueryRejection>) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))?;
    let now = state.clock.now();
    if let Some(secret) = session_secret(&headers)
        && let Some(auth) = state.auth.as_deref()
        && let Some(session) = auth_sessions::live(&state.db, &session_hash(&secret), now).await?
    {
        check_cross_site(auth, &headers, &session)?;
        if params.everywhere == Some(true) {
            auth_sessions::end_all(&state.db, session.wallet, now).await?;
        } else {
            auth_sessions::end(&state.db, &session_hash(&secret), now).await?;
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, SECURE_SESSION_COOKIE] {
        let secure = if name == SECURE_SESSION_COOKIE { "; Secure" } else { "" };
        let cookie = format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}");
        response.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(&e))?);
    }
    Ok(response)
}

/// Renews the membership token from the account session: a token with the subscription
/// as it stands now, for another `auth.token_secs` (within the session's end). The session
/// cookie, an allowed `Origin` and the session's `X-CSRF-Token` are required.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "public", responses(
    (status = 200, body = RefreshView),
    (status = 401, body = ErrorBody, description = "No session, or it ended (signed out; the wallet was revoked, refunded or moved) or expired: sign in again"),
    (status = 403, body = ErrorBody, description = "A cross-site request: its `Origin` is not allowed or `X-CSRF-Token` is not the session's (`csrf`)"),
    (status = 404, body = ErrorBody, description = "Sign-in is not configured"), (status = 429, body = ErrorBody),
))]
pub async fn refresh(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let auth = service(&state)?;
    let now = state.clock.now();
    let session = live_session(&state, &headers, now).await?.ok_or_else(|| ApiError::unauthorized("no live session: sign in again"))?;
    check_cross_site(auth, &headers, &session)?;
    let subscription = super::subscriptions::stored_subscription(&state, session.wallet).await?;
    let mut claims = auth.claims(session.wallet, subscription.as_deref(), now, session.auth_time, &random_secret());
    claims.exp = claims.exp.min(session.expires_at);
    let token = auth.keys.sign(&claims).map_err(|e| ApiError::internal(&e))?;
    let view = RefreshView { token, token_type: "Bearer".into(), membership: Membership::of(&claims) };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// The session cookie's value (either name).
fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (matches!(name, SESSION_COOKIE | SECURE_SESSION_COOKIE) && !value.is_empty()).then(|| value.to_string())
    })
}

/// The live session the request's cookie names, if any.
async fn live_session(state: &AppState, headers: &HeaderMap, now: u64) -> Result<Option<Session>, ApiError> {
    match session_secret(headers) {
        Some(secret) => Ok(auth_sessions::live(&state.db, &session_hash(&secret), now).await?),
        None => Ok(None),
    }
}

/// Refuses a change the session cookie would authorize unless the request comes from an
/// allowed origin (`Origin`, which browsers send with every cross-origin and every POST
/// request) and carries the session's `X-CSRF-Token`.
fn check_cross_site(auth: &AuthService, headers: &HeaderMap, session: &Session) -> Result<(), ApiError> {
    let forbidden =
        |why: &str| ApiError::new(StatusCode::FORBIDDEN, "csrf", format!("{why}: a change made with the session cookie must come from the account page"));
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).ok_or_else(|| forbidden("the request has no Origin"))?;
    let allowed = auth.settings.allowed_origins.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin.trim_end_matches('/')));
    if !allowed {
        return Err(forbidden("the request's Origin is not an allowed origin"));
    }
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
        return Err(forbidden("X-CSRF-Token is missing or not the session's"));
    }
    Ok(())
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The membership of a request: its `Authorization: Bearer` token, verified, or its live
/// session cookie; otherwise 401.
pub(crate) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let now = state.clock.now();
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        let auth = service(state)?;
        return auth.keys.verify(token.trim(), now).map_err(|e| ApiError::unauthorized(format!("{e}; sign in again")));
    }
    // No token is a 401 whether or not sign-in is configured: the request lacks what the
    // document says it needs.
    let missing = || ApiError::unauthorized("sign in first: send the membership token as a Bearer token, or the session cookie");
    if session_secret(headers).is_none() {
        return Err(missing());
    }
    let auth = service(state)?;
    let session = live_session(state, headers, now).await?.ok_or_else(|| ApiError::unauthorized("the session ended or expired; sign in again"))?;
    let mut claims = auth.claims(session.wallet, None, now, session.auth_time, "session");
    claims.exp = session.expires_at;
    Ok(claims)
}

/// The wallet of a signed-in request ([`signed_in`]).
pub(crate) async fn signed_in_wallet(state: &AppState, headers: &HeaderMap) -> Result<Address, ApiError> {
    wallet_of(&signed_in(state, headers).await?)
}

/// The wallet a membership token's subject names.
fn wallet_of(claims: &Claims) -> Result<Address, ApiError> {
    claims.sub.parse().map_err(|_| ApiError::unauthorized("the token's subject is not a wallet"))
}

/// The wallet of a request that changes a member's own data: its membership token, or its
/// live session cookie from an allowed origin with the session's `X-CSRF-Token`.
pub(crate) async fn member_changing(state: &AppState, headers: &HeaderMap) -> Result<Address, ApiError> {
    if super::keys::bearer(headers).is_some() || session_secret(headers).is_none() {
        return signed_in_wallet(state, headers).await;
    }
    // The session cookie, which a cross-site request carries too.
    let auth = service(state)?;
    let session =
        live_session(state, headers, state.clock.now()).await?.ok_or_else(|| ApiError::unauthorized("the session ended or expired; sign in again"))?;
    check_cross_site(auth, headers, &session)?;
    Ok(session.wallet)
}

/// Answers what the request's membership token says, with the subscription as it stands
/// now (a renewal or cancellation since sign-in shows here, not in the token).
#[utoipa::path(get, path = "/v1/me", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = Membership), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "Sign-in is not configured"), (status = 429, body = ErrorBody),
))]
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let claims = signed_in(&state, &headers).await?;
    let wallet = wallet_of(&claims)?;
    let auth = service(&state)?;
    let subscription = super::subscriptions::stored_subscription(&state, wallet).await?;
    let now = state.clock.now();
    let mut current = auth.claims(wallet, subscription.as_deref(), now, claims.auth_time, &claims.jti);
    // The token's own expiry is what the session has left.
    current.exp = claims.exp;
    // A membership answer is the member's own: no cache keeps it.
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(Membership::of(&current))).into_response())
}

/// A public key of the membership tokens (JWK, RFC 7517).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JwkView {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// The key's x coordinate, base64url.
    pub x: String,
    /// The key's y coordinate, base64url.
    pub y: String,
    /// The key id tokens name in their header.
    pub kid: String,
    /// `ES256`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// The membership tokens' public keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwksView {
    /// The keys: the current one and retired ones whose tokens may not have expired yet.
    pub keys: Vec<JwkView>,
}

/// The public keys that verify membership tokens (a JWKS, RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "public", responses((status = 200, body = JwksView), (status = 404, body = ErrorBody, description = "Sign-in is not configured")))]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let auth = service(&state)?;
    let set = auth.keys.jwks(state.clock.now());
    let keys = set
        .keys
        .iter()
        .map(|k| serde_json::to_value(k).and_then(serde_json::from_value))
        .collect::<Result<Vec<JwkView>, _>>()
        .map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(JwksView { keys })).into_response())
}

/// Returns the sign-in routes (public, rate-limited per client).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/nonce", post(nonce))
        .route("/v1/auth/verify", post(verify))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The sign-in routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(nonce, verify, refresh, logout, me, jwks))]
pub(super) struct Api;
