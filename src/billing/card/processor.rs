//! The card processor's API out (Stripe, through `async-stripe` 1.0's request crates): the
//! two calls the service makes itself — create a Checkout Session in `subscription` mode, and set a card
//! subscription to end at its period end. Everything else about card payments comes in as
//! signed webhooks ([`super::handle`]).
//!
//! The requests are the crate's typed builders (`CreateCheckoutSession`,
//! `UpdateSubscription`), so their form encoding is the crate's, generated from Stripe's
//! published API description. The answers are read into small types holding only the
//! fields the service uses: a processor that adds fields, or a test double that omits the
//! ones the service never reads, does not break the call.
//!
//! The requests go out through the crate family's client seam (`StripeClient`) implemented
//! on the service's own `reqwest` client (rustls), with the API version the builders were
//! generated for (`Stripe-Version`); the crate's own client would add a second HTTP and TLS
//! stack. The secret key stays in the client (`Authorization: Bearer`); errors carry the
//! processor's message and status, never the key or the request.

use std::{collections::HashMap, future::Future, time::Duration};

use axum::body::Bytes;
use secrecy::{ExposeSecret, SecretString};
use stripe_billing::subscription::UpdateSubscription;
use stripe_checkout::{
    CheckoutSessionMode,
    checkout_session::{CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData},
};
use stripe_client_core::{CustomizedStripeRequest, StripeClient, StripeClientErr, StripeMethod, StripeRequest};

use crate::config::CardSettings;

/// Seconds to wait for one answer from the processor.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Why a processor call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The processor answered with an error (its status and message).
    #[error("the card processor refused the request ({status}): {message}")]
    Refused {
        /// HTTP status of the answer.
        status: u16,
        /// The processor's message.
        message: String,
    },
    /// The processor could not be reached, or its answer could not be read.
    #[error("the card processor could not be reached or answered something unreadable: {0}")]
    Unreachable(String),
}

impl StripeClientErr for ProcessorError {
    fn deserialize_err(msg: impl std::fmt::Display) -> Self {
        Self::Unreachable(format!("its answer does not have the documented shape ({msg})"))
    }
}

/// A Checkout Session to create: one plan's processor price, for one wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The plan's `card_price_id`.
    pub price_id: String,
    /// Metadata on the session and on the subscription it creates (`wallet`, `plan_id`,
    /// `customer_ref`).
    pub metadata: Vec<(String, String)>,
    /// `client_reference_id`: the wallet.
    pub client_reference_id: String,
    /// A returning card customer (`cus_…`), to keep one customer per member (only for a
    /// signed-in member's switch: the processor's page shows the customer's details).
    pub customer: Option<String>,
    /// The plan's free trial, in days (a new member from the checkout page).
    pub trial_period_days: Option<u32>,
    /// When the first charge falls (a switch from crypto: the end of the paid time).
    pub trial_end: Option<u64>,
    /// Where the processor sends the member after paying.
    pub success_url: String,
    /// Where the processor sends the member who turns back.
    pub cancel_url: String,
}

/// A created Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq, miniserde::Deserialize)]
pub struct CreatedSession {
    /// `cs_…`.
    pub id: String,
    /// The processor's hosted page to send the member to.
    pub url: Option<String>,
}

/// A card subscription as the processor answers an update.
#[derive(Debug, Clone, PartialEq, Eq, miniserde::Deserialize)]
pub struct UpdatedSubscription {
    /// `sub_…`.
    pub id: String,
    /// Whether it ends at the period end.
    pub cancel_at_period_end: bool,
    /// When the current period ends (older API versions name it on the subscription).
    pub current_period_end: Option<i64>,
    /// When it ends, once set to.
    pub cancel_at: Option<i64>,
}

/// The processor's API with the merchant's secret key.
#[derive(Clone)]
pub struct Processor {
    http: reqwest::Client,
    /// `card.api_base_url`, without a trailing slash.
    base: String,
    key: SecretString,
}

/// Stripe's error body: `{"error": {"message": …}}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

impl StripeClient for Processor {
    type Err = ProcessorError;

    fn execute(&self, req: CustomizedStripeRequest) -> impl Future<Output = Result<Bytes, ProcessorError>> + Send {
        let (request, _) = req.into_pieces();
        let query = request.query.map(|q| format!("?{q}")).unwrap_or_default();
        let url = format!("{}/v1{}{query}", self.base, request.path);
        let method = match request.method {
            StripeMethod::Get => reqwest::Method::GET,
            StripeMethod::Post => reqwest::Method::POST,
            StripeMethod::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.http.request(method, url).bearer_auth(self.key.expose_secret()).header("Stripe-Version", stripe_client_core::VERSION.as_str());
        if let Some(body) = request.body {
            builder = builder.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        }
        async move {
            let unreachable = |e: reqwest::Error| ProcessorError::Unreachable(crate::config::scrubbed_urls(&e.without_url().to_string()));
            let response = builder.send().await.map_err(unreachable)?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(unreachable)?;
            if !status.is_success() {
                let message = serde_json::from_slice::<ErrorBody>(&bytes)
                    .ok()
                    .and_then(|b| b.error.message)
                    .unwrap_or_else(|| format!("an answer without the documented error body ({} bytes)", bytes.len()));
                return Err(ProcessorError::Refused { status: status.as_u16(), message });
            }
            Ok(bytes)
        }
    }
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Processor { key: *** }")
    }
}

impl Processor {
    /// Returns the processor client for `settings`, or `None` without `card.api_key`.
    pub fn from_settings(settings: &CardSettings) -> Result<Option<Self>, ProcessorError> {
        let Some(key) = &settings.api_key else { return Ok(None) };
        let http =
            reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| ProcessorError::Unreachable(format!("the HTTP client cannot be built: {e}")))?;
        Ok(Some(Self { http, base: settings.api_base_url.trim_end_matches('/').to_string(), key: key.clone() }))
    }

    /// Creates a Checkout Session in `subscription` mode for `request`.
    pub async fn create_session(&self, request: &SessionRequest) -> Result<CreatedSession, ProcessorError> {
        let metadata: HashMap<String, String> = request.metadata.iter().cloned().collect();
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(request.price_id.clone());
        item.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(metadata.clone());
        subscription.trial_period_days = request.trial_period_days;
        subscription.trial_end = request.trial_end.map(|t| t as i64);
        let mut create = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .line_items(vec![item])
            .metadata(metadata)
            .subscription_data(subscription)
            .client_reference_id(request.client_reference_id.clone())
            .success_url(request.success_url.clone())
            .cancel_url(request.cancel_url.clone());
        if let Some(customer) = &request.customer {
            create = create.customer(customer.clone());
        }
        let session: CreatedSession = create.build().customize().send(self).await?;
        if session.url.is_none() {
            return Err(ProcessorError::Unreachable(format!("Checkout Session {} came back without a url", session.id)));
        }
        Ok(session)
    }

    /// Sets card subscription `id` to end at its period end (`cancel_at_period_end=true`):
    /// the period paid for runs out, nothing more is charged.
    pub async fn cancel_at_period_end(&self, id: &str) -> Result<UpdatedSubscription, ProcessorError> {
        let update = UpdateSubscription::new(id).cancel_at_period_end(true);
        update.build().customize().send(self).await
    }
}
