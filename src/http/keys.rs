//! Merchant routes take `Authorization: Bearer <key>`: the middleware here checks the key
//! against `api_keys` ([`crate::store::api_keys`], which also creates, lists and revokes
//! them for `tmai-pay api-key …`).

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};

use super::{AppState, error::ApiError};
pub use crate::store::api_keys::{ApiKeyInfo, create, list, revoke, verify};

/// Returns the key `Authorization: Bearer <key>` carries, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|h| h.strip_prefix("Bearer ")).map(str::trim)
}

/// Middleware: lets the request through only with a live key in `Authorization: Bearer`.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(key) = bearer(request.headers()) else {
        return Err(ApiError::unauthorized("this route needs an API key: send Authorization: Bearer <key> (create one with `tmai-pay api-key create`)"));
    };
    match verify(&state.db, key).await? {
        Some(_) => Ok(next.run(request).await),
        None => Err(ApiError::unauthorized("the API key is unknown or revoked")),
    }
}
