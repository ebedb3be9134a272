//! Sign-In with Ethereum over HTTP: `POST /v1/auth/nonce`, `POST /v1/auth/verify`,
//! `POST /v1/auth/logout`, `GET /v1/me` and the token keys at `/.well-known/jwks.json`.
//! The checks are in [`crate::auth`]; this file maps them to answers and cookies.

use alloy::primitives::Address;
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AppState,
    error::{ApiError, ApiJson, ErrorBody},
};
use crate::auth::{
    AuthService,
    signature::SignatureError,
    siwe::{self, SignInError},
    tokens::Claims,
};

/// The account page's session cookie (its value is a membership token).
pub const SESSION_COOKIE: &str = "tmai_session";

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
            SignInError::Signature(SignatureError::OtherSigner(_)) => Self::new(StatusCode::UNAUTHORIZED, "wrong_signer", message),
            SignInError::Signature(SignatureError::Invalid) => Self::new(StatusCode::UNAUTHORIZED, "bad_signature", message),
            SignInError::Signature(SignatureError::Rpc(e)) => {
                tracing::warn!(error = %e, "contract wallet check failed");
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
}

/// Returns a single-use nonce for a Sign-In with Ethereum message.
#[utoipa::path(post, path = "/v1/auth/nonce", tag = "public", responses(
    (status = 200, body = NonceView), (status = 404, body = ErrorBody, description = "Sign-in is not configured"), (status = 429, body = ErrorBody),
))]
pub async fn nonce(State(state): State<AppState>) -> Result<Json<NonceView>, ApiError> {
    let auth = service(&state)?;
    let (nonce, expires_at) = siwe::new_nonce(&state.db, &auth.settings, state.clock.now()).await?;
    Ok(Json(NonceView { nonce, expires_at, chain_id: state.deployment.chain_id, statement: auth.settings.statement.clone() }))
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
}

/// Checks a signed Sign-In with Ethereum message and answers a membership token; also sets
/// the account page's session cookie (HttpOnly, SameSite=Strict, Secure over https).
#[utoipa::path(post, path = "/v1/auth/verify", tag = "public", request_body = VerifyRequest, responses(
    (status = 200, body = SignInView, description = "Signed in; `Set-Cookie` holds the session"),
    (status = 400, body = ErrorBody, description = "Malformed message or signature, wrong chain or statement"),
    (status = 401, body = ErrorBody, description = "Expired message, unknown or used nonce, bad signature, another wallet's signature"),
    (status = 403, body = ErrorBody, description = "Domain or URI not allowed"),
    (status = 404, body = ErrorBody, description = "Sign-in is not configured"),
    (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
    (status = 503, body = ErrorBody, description = "The node could not be asked about a contract wallet"),
))]
pub async fn verify(State(state): State<AppState>, ApiJson(body): ApiJson<VerifyRequest>) -> Result<Response, ApiError> {
    let auth = service(&state)?;
    let now = state.clock.now();
    let signed = siwe::sign_in(&state.db, &state.provider, &auth.settings, state.deployment.chain_id, &body.message, &body.signature, now).await?;
    let subscription = load_subscription(&state, signed.wallet).await?;
    let claims = auth.claims(signed.wallet, subscription.as_ref(), now, now, &signed.nonce);
    let token = auth.keys.sign(&claims).map_err(|e| ApiError::internal(&e))?;
    let secure = signed.origin.scheme() == "https";
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        claims.exp.saturating_sub(now),
        if secure { "; Secure" } else { "" }
    );
    let view = SignInView { token, token_type: "Bearer".into(), signer: signed.kind.as_str().into(), membership: Membership::of(&claims) };
    let mut response = Json(view).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(&e))?);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Ends the account page's session (clears its cookie).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "public", responses((status = 204, description = "Signed out")))]
pub async fn logout() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// The token of a request: `Authorization: Bearer …` or the session cookie.
pub(crate) fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_string());
    }
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_string())
    })
}

/// Returns the verified claims of the request's token, or 401.
pub(crate) fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    // No token is a 401 whether or not sign-in is configured: the request lacks what the
    // document says it needs.
    let token = request_token(headers).ok_or_else(|| ApiError::unauthorized("sign in first: send the membership token as a Bearer token"))?;
    let auth = service(state)?;
    auth.keys.verify(&token, state.clock.now()).map_err(|e| ApiError::unauthorized(format!("{e}; sign in again")))
}

/// Answers what the request's membership token says, with the subscription as it stands
/// now (a renewal or cancellation since sign-in shows here, not in the token).
#[utoipa::path(get, path = "/v1/me", tag = "public", security(("membership_token" = [])), responses(
    (status = 200, body = Membership), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "Sign-in is not configured"), (status = 429, body = ErrorBody),
))]
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Membership>, ApiError> {
    let claims = signed_in(&state, &headers)?;
    let wallet: Address = claims.sub.parse().map_err(|_| ApiError::unauthorized("the token's subject is not a wallet"))?;
    let auth = service(&state)?;
    let subscription = load_subscription(&state, wallet).await?;
    let now = state.clock.now();
    let mut current = auth.claims(wallet, subscription.as_ref(), now, claims.auth_time, &claims.jti);
    // The token's own expiry is what the session has left.
    current.exp = claims.exp;
    Ok(Json(Membership::of(&current)))
}

async fn load_subscription(state: &AppState, wallet: Address) -> Result<Option<crate::store::subscriptions::Subscription>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(crate::store::subscriptions::load(&mut conn, wallet).await?)
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
