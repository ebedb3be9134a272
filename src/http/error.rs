//! The one error shape of the API, `{"error": {"code", "message"}}`, and the JSON body
//! extractor that turns every malformed request into it (never a 500 for bad input).

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid_request`, `not_found`, `unauthorized`, …).
    pub code: String,
    /// A message a person can act on.
    pub message: String,
}

/// An API error: a status, a code and a message. Internal causes are logged, never shown.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header, when the client should come back later.
    retry_after: Option<u64>,
}

impl ApiError {
    /// Returns an error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// Returns the error with a `Retry-After: secs` header.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`: logs `cause` with its chain; the client sees a generic message.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged")
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(&e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as JSON with Content-Type: application/json")
            }
            JsonRejection::JsonSyntaxError(e) => {
                Self::invalid(format!("malformed JSON: {}", e.body_text().trim_start_matches("Failed to parse the request body as JSON: ")))
            }
            JsonRejection::JsonDataError(e) => Self::invalid(format!(
                "invalid request body: {}",
                e.body_text().trim_start_matches("Failed to deserialize the JSON body into the target type: ")
            )),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            }
            other => Self::new(other.status(), "invalid_request", other.body_text()),
        }
    }
}

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

// Domain errors: each maps to the same answer in every handler that meets it.

impl From<crate::billing::customers::RefError> for ApiError {
    fn from(e: crate::billing::customers::RefError) -> Self {
        use crate::billing::customers::RefError;
        match e {
            RefError::NeedsKey => Self::new(StatusCode::UNAUTHORIZED, "customer_ref_needs_signature", e.to_string()),
            // Well-formed, but not the merchant's signature now: refused, not malformed.
            RefError::Expired(_) | RefError::BadMac | RefError::NoSecret => Self::new(StatusCode::FORBIDDEN, "invalid_customer_ref", e.to_string()),
            _ => Self::new(StatusCode::BAD_REQUEST, "invalid_customer_ref", e.to_string()),
        }
    }
}

impl From<crate::billing::quotes::QuoteError> for ApiError {
    fn from(e: crate::billing::quotes::QuoteError) -> Self {
        use crate::billing::quotes::QuoteError;
        match e {
            QuoteError::UnknownPlan(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_plan", format!("{e}; see GET /v1/plans")),
            QuoteError::UnsupportedToken(_) | QuoteError::NotSoldInToken { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_token", format!("{e}; see GET /v1/plans"))
            }
            QuoteError::BadPeriods | QuoteError::ZeroPayer => Self::invalid(e.to_string()),
            QuoteError::RateUnavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "rate_unavailable", format!("{e}; other tokens may still be paid in")).retry_after(5)
            }
            QuoteError::Store(e) => Self::internal(&e),
        }
    }
}

impl From<crate::billing::renewals::mandate::MandateError> for ApiError {
    fn from(e: crate::billing::renewals::mandate::MandateError) -> Self {
        use crate::billing::renewals::mandate::MandateError;
        match e {
            MandateError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "mandate_refused", m),
            MandateError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            chain @ MandateError::Chain(_) => Self::unavailable(chain.to_string()),
        }
    }
}

impl From<crate::billing::members::MemberError> for ApiError {
    fn from(e: crate::billing::members::MemberError) -> Self {
        use crate::billing::members::MemberError;
        match e {
            MemberError::Invalid(m) => Self::invalid(m),
            MemberError::NotSold(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_token", m),
            MemberError::NotFound(m) => Self::not_found(m),
            MemberError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            MemberError::Store(e) => Self::internal(&e),
        }
    }
}

/// A refused card session or switch says what to do instead; a processor failure is a 502
/// whose cause is logged (the processor's own message is shown: it names the bad price or
/// parameter, never the key).
impl From<crate::billing::card::sessions::SessionError> for ApiError {
    fn from(e: crate::billing::card::sessions::SessionError) -> Self {
        use crate::billing::card::{processor::ProcessorError, sessions::SessionError};
        let message = e.to_string();
        match e {
            SessionError::NotConfigured | SessionError::NoPublicUrl => Self::new(StatusCode::NOT_FOUND, "card_not_configured", message),
            SessionError::UnknownPlan(_) => Self::not_found(message),
            SessionError::NotSoldByCard(..) => Self::new(StatusCode::CONFLICT, "card_not_offered", message),
            SessionError::AlreadyByCard(_) => Self::new(StatusCode::CONFLICT, "already_paying_by_card", message),
            SessionError::NoPaidTime => Self::new(StatusCode::CONFLICT, "no_paid_time", message),
            SessionError::TooLate(_) => Self::new(StatusCode::CONFLICT, "switch_too_late", message),
            SessionError::NoCardSubscription => Self::new(StatusCode::CONFLICT, "no_card_subscription", message),
            SessionError::Processor(error) => {
                tracing::error!(%error, "card processor call failed");
                let shown = match &error {
                    ProcessorError::Refused { message, .. } => format!("the card processor refused: {message}; try again later or pay with crypto"),
                    ProcessorError::Unreachable(_) => "the card processor could not be reached; try again in a minute or pay with crypto".to_string(),
                };
                Self::new(StatusCode::BAD_GATEWAY, "card_processor", shown)
            }
            SessionError::Store(e) => Self::internal(&e),
        }
    }
}

/// A refused card event is logged as an error: the processor retries it, and the cause
/// (metadata, prices) is the merchant's to fix.
impl From<crate::billing::card::CardError> for ApiError {
    fn from(e: crate::billing::card::CardError) -> Self {
        use crate::billing::card::CardError;
        let (status, code, m) = match e {
            CardError::Store(e) => return Self::internal(&e),
            CardError::BadRequest(m) | CardError::BadWallet(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            CardError::UnknownPlan(m) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_plan", m),
            CardError::MissingMetadata(m) => (StatusCode::UNPROCESSABLE_ENTITY, "missing_metadata", m),
            CardError::UnknownPrice(m) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_price", m),
            CardError::AmountMismatch(m) => (StatusCode::UNPROCESSABLE_ENTITY, "amount_mismatch", m),
        };
        tracing::error!(error = %m, "card event refused");
        Self::new(status, code, m)
    }
}

impl From<crate::notify::endpoints::RedeliverError> for ApiError {
    fn from(e: crate::notify::endpoints::RedeliverError) -> Self {
        use crate::notify::endpoints::RedeliverError;
        match e {
            RedeliverError::UnknownEvent(_) | RedeliverError::UnknownEndpoint(_) => Self::not_found(e.to_string()),
            RedeliverError::NoTarget(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            RedeliverError::Store(e) => Self::internal(&e),
        }
    }
}

/// A webhook endpoint's `url` that is refused.
impl From<crate::notify::targets::TargetError> for ApiError {
    fn from(e: crate::notify::targets::TargetError) -> Self {
        use crate::notify::targets::TargetError;
        match e {
            TargetError::Malformed(m) => Self::invalid(m),
            other => Self::invalid(format!("url: {other}")),
        }
    }
}
