//! The webhook tables: `[webhooks]`, how events are delivered to the merchant's endpoints,
//! and `[card]`, how the card processor's signed webhooks are checked.

use secrecy::SecretString;
use serde::Deserialize;

/// Outgoing webhook delivery (the `[webhooks]` table); every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Allow endpoints on private, loopback and link-local addresses (local development
    /// only: it lets anyone with an API key make the service call into your network).
    pub allow_private_targets: bool,
    /// Seconds to wait for an endpoint's answer.
    pub timeout_secs: u64,
    /// When each attempt is made, in seconds after the previous one failed; the first entry
    /// is the delay of the first attempt. After the last entry the delivery is given up.
    pub schedule_secs: Vec<u64>,
    /// Random spread added to each retry delay, in percent of it.
    pub jitter_percent: u8,
    /// Endpoints delivered to at once.
    pub max_concurrent_endpoints: usize,
    /// Deliveries sent to one endpoint, in order, before their results are recorded.
    pub batch_size: usize,
    /// Milliseconds between looks at the outbox when idle.
    pub poll_interval_ms: u64,
    /// Seconds the old secret still signs (beside the new one) after a rotation.
    pub rotation_overlap_secs: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout_secs: 15,
            schedule_secs: vec![0, 5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400],
            jitter_percent: 10,
            max_concurrent_endpoints: 16,
            batch_size: 100,
            poll_interval_ms: 100,
            rotation_overlap_secs: 86_400,
        }
    }
}

/// The card processor (the `[card]` table): its signed webhooks in, and the API calls out
/// that create Checkout Sessions and set a card subscription to end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CardSettings {
    /// The processor's endpoint signing secret (`whsec_…` in Stripe's dashboard). Card
    /// webhooks are refused while it is unset.
    pub webhook_secret: Option<SecretString>,
    /// The processor's secret API key (`sk_…`, or a restricted `rk_…` allowed to write
    /// Checkout Sessions and Subscriptions). Without it the service creates no card
    /// checkout: the checkout page offers no "Pay by card" and the card session routes
    /// answer 404 `card_not_configured`.
    pub api_key: Option<SecretString>,
    /// The processor's API base URL, scheme and host only (default
    /// `https://api.stripe.com`); tests point it at a local fake.
    pub api_base_url: String,
    /// Seconds a signed timestamp may be away from now.
    pub tolerance_secs: u64,
    /// The three-letter currency (ISO 4217, as the processor writes it: `usd`) that
    /// `card_price_cents` are in; a payment in another currency is refused.
    pub currency: String,
    /// Largest event body taken, in bytes (413 above it). The events the service acts on
    /// (Checkout Sessions, invoices, subscriptions) are a few KiB; 64 KiB leaves room for
    /// an invoice's first page of lines and metadata, and bounds what an unsigned request
    /// can make the service read and hash.
    pub body_limit_bytes: usize,
    /// Requests per second each client (an IPv4 address or an IPv6 /64, as for the public
    /// routes) may make to the card webhook (0: no limit); over it, 429 with `Retry-After`,
    /// which the processor retries.
    pub rate_limit_per_second: u32,
    /// Requests a client may make to the card webhook at once before the rate applies.
    pub rate_limit_burst: u32,
}

impl CardSettings {
    /// Checks `api_key` (a secret `sk_…` or restricted `rk_…` key, never a publishable
    /// `pk_…` one) and `api_base_url` (http or https, a host, no path); returns the field
    /// and what is wrong, without showing the key.
    pub(crate) fn validate_api(&self) -> Result<(), (&'static str, String)> {
        use secrecy::ExposeSecret;
        if let Some(key) = &self.api_key {
            let key = key.expose_secret();
            let shaped = (key.starts_with("sk_") || key.starts_with("rk_")) && key.len() > 3 && key.bytes().all(|b| b.is_ascii_graphic());
            if !shaped {
                return Err((
                    "card.api_key",
                    "must be the processor's secret key (sk_…) or a restricted key (rk_…) with no spaces; a publishable key (pk_…) cannot create sessions"
                        .into(),
                ));
            }
        }
        let url = url::Url::parse(&self.api_base_url).map_err(|e| ("card.api_base_url", format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(("card.api_base_url", "must be an http or https URL with a host, such as https://api.stripe.com".into()));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(("card.api_base_url", "must have no path, query or fragment (the client adds /v1/…)".into()));
        }
        Ok(())
    }
}

impl Default for CardSettings {
    fn default() -> Self {
        Self {
            webhook_secret: None,
            api_key: None,
            api_base_url: DEFAULT_CARD_API_BASE_URL.into(),
            tolerance_secs: 300,
            currency: "usd".into(),
            body_limit_bytes: 64 * 1024,
            rate_limit_per_second: 25,
            rate_limit_burst: 100,
        }
    }
}

/// The processor's API (Stripe).
pub(crate) const DEFAULT_CARD_API_BASE_URL: &str = "https://api.stripe.com";
