//! Configuration in layers: a TOML file (default `tmai-pay.toml`), then environment
//! variables `TMAI_PAY__SECTION__FIELD` (for example `TMAI_PAY__CHAIN__RPC_URL`). Keys and
//! secrets are [`SecretString`] and never printed. Every field is documented here or in
//! this module's files (one per larger table: plans, pricing, auth, webhooks); the example
//! file `tmai-pay.example.toml` shows them all. Every settings type of the crate lives
//! here, and this module imports nothing else of the crate.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

mod auth;
mod plans;
mod pricing;
mod redact;
mod renewals;
mod webhooks;

pub use auth::{AuthSettings, SigningKeyConfig};
pub use plans::PlanConfig;
pub use pricing::{FeedConfig, PricingSettings, RateSourceConfig, SequencerFeedConfig, SwapRoute, SwapSettings};
pub use redact::{redacted, scrubbed, scrubbed_urls};
pub use renewals::RenewalSettings;
pub use webhooks::{CardSettings, WebhookSettings};

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://path/to/file.db` (created when missing) or `postgres://user@host/db`.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Deployment file written by `tmai-pay deploy` (contracts, roles, tokens).
    #[serde(default = "default_deployment_file")]
    pub deployment_file: PathBuf,
    /// Chain connection and watcher settings.
    pub chain: ChainSettings,
    /// The plans catalog.
    #[serde(default)]
    pub plans: Vec<PlanConfig>,
    /// Badge minter settings.
    #[serde(default)]
    pub minter: MinterSettings,
    /// HTTP API settings.
    #[serde(default)]
    pub http: HttpSettings,
    /// Outgoing webhook delivery.
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// Renewal reminders and expiry.
    #[serde(default)]
    pub reminders: ReminderSettings,
    /// Incoming card-processor webhooks.
    #[serde(default)]
    pub card: CardSettings,
    /// Sign-In with Ethereum and membership tokens.
    #[serde(default)]
    pub auth: AuthSettings,
    /// The merchant: what receipts show, and the secret its signed customer references use.
    #[serde(default)]
    pub merchant: MerchantSettings,
    /// USD pricing: rate sources per token, rounding, the discount token.
    #[serde(default)]
    pub pricing: PricingSettings,
    /// How long unpaid checkouts are kept.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Automatic renewal by signed mandates.
    #[serde(default)]
    pub renewals: RenewalSettings,
}

/// The merchant (the `[merchant]` table); every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MerchantSettings {
    /// The merchant's name, as receipts show it.
    pub name: Option<String>,
    /// The merchant's postal address, as receipts show it (lines separated by newlines).
    pub address: Option<String>,
    /// The merchant's tax id (VAT number, EIN, …), as receipts show it.
    pub tax_id: Option<String>,
    /// The key of the MAC of a signed customer reference (`<ref>.<expires_at>.<mac>`, README
    /// "Customer references"): the merchant's server signs with it, the service checks.
    /// Without it, public routes take no customer reference (the API key still may).
    pub customer_ref_secret: Option<SecretString>,
}

/// Retention of what anonymous clients create (the `[retention]` table); every field has a
/// default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Days after its quote's deadline that a never-paid checkout (its order, its
    /// `checkout.created` event and that event's finished deliveries) is kept; then it is
    /// deleted.
    pub unpaid_checkouts_days: u32,
    /// Seconds between pruning passes.
    pub interval_secs: u64,
    /// Checkouts deleted per write transaction at most (each batch takes the write gate
    /// once, briefly).
    pub batch_size: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { unpaid_checkouts_days: 30, interval_secs: 3_600, batch_size: 1_000 }
    }
}

/// Renewal reminders (the `[reminders]` table); every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReminderSettings {
    /// Days before expiry at which `subscription.expiring` is sent, once each per period.
    pub expiring_days: Vec<u32>,
    /// Seconds between looks for subscriptions that are expiring or have expired.
    pub interval_secs: u64,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        Self { expiring_days: vec![7, 1], interval_secs: 30 }
    }
}

/// HTTP API settings (the `[http]` table); every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address of the public listener: the API, the checkout page, `/healthz`.
    pub bind: String,
    /// Address of the operations listener: `/metrics`, `/readyz` and `/healthz`. Loopback
    /// by default; expose it only to your monitoring (both routes read the database and the
    /// chain).
    pub ops_bind: String,
    /// Chain name shown to wallets when the page asks them to add the chain.
    pub chain_name: String,
    /// JSON-RPC URL wallets may add for the chain (`GET /v1/plans` shows it). Never
    /// `chain.rpc_url`, which usually carries a provider key: unset, wallets use their own.
    pub public_rpc_url: Option<String>,
    /// A block explorer's transaction page, with `{tx}` where the hash goes
    /// (`https://etherscan.io/tx/{tx}`): the account page links each payment to it. Unset,
    /// hashes are shown without a link.
    pub explorer_tx_url: Option<String>,
    /// The service's own public URL (`https://pay.example.com`): links the service hands
    /// out (a receipt's `receipt_url` in `payment.confirmed`) start with it. Unset, they
    /// are paths (`/v1/receipts/…`) for the merchant's app to put under its own host.
    pub public_url: Option<String>,
    /// Requests per second each client may make to the public routes (0: no limit). A
    /// client is an IPv4 address or an IPv6 /64.
    pub rate_limit_per_second: u32,
    /// Requests a client may make at once before the rate applies.
    pub rate_limit_burst: u32,
    /// Reverse proxies (CIDRs such as `10.0.0.0/8`, or single addresses) whose
    /// `X-Forwarded-For` names the client: the client is the rightmost address in it that is
    /// not a trusted proxy. Empty: the connecting address is the client.
    pub trusted_proxies: Vec<String>,
    /// Checkout event streams open at once, over all clients (beyond: 429).
    pub max_event_streams: usize,
    /// Checkout event streams one client may hold open at once (beyond: 429).
    pub max_event_streams_per_client: usize,
    /// Seconds an event stream stays open at most; a browser's `EventSource` then reconnects.
    pub event_stream_max_secs: u64,
    /// Seconds before a request is answered 408.
    pub request_timeout_secs: u64,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Folder of the built checkout page (`tools/install.sh` builds `web/dist`).
    pub web_dir: PathBuf,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            ops_bind: "127.0.0.1:9090".into(),
            chain_name: "tmai-pay local".into(),
            public_rpc_url: None,
            explorer_tx_url: None,
            public_url: None,
            rate_limit_per_second: 20,
            rate_limit_burst: 40,
            trusted_proxies: Vec::new(),
            max_event_streams: 2_000,
            max_event_streams_per_client: 16,
            event_stream_max_secs: 600,
            request_timeout_secs: 10,
            body_limit_bytes: 16 * 1024,
            web_dir: PathBuf::from("web/dist"),
        }
    }
}

impl HttpSettings {
    /// Returns the public RPC URL, when one is set (an empty value is none).
    pub fn public_rpc_url(&self) -> Option<&str> {
        self.public_rpc_url.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }

    /// Returns the service's public URL without a trailing slash, or "" when unset.
    pub fn public_url(&self) -> &str {
        self.public_url.as_deref().map(str::trim).unwrap_or("").trim_end_matches('/')
    }

    /// Returns the trusted proxies, parsed (a bare address is a single-address range).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("{text:?} is not an address or CIDR range such as 10.0.0.0/8"))
            })
            .collect()
    }
}

/// Badge minter settings (the `[minter]` table); every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinterSettings {
    /// Most jobs in one batch call.
    pub max_batch_size: usize,
    /// Most gas one batch may use.
    pub max_batch_gas: u64,
    /// Most batches in flight (sent, not yet confirmed) at once.
    pub max_in_flight: usize,
    /// Highest `maxFeePerGas` paid, in gwei; a first transaction is priced at most 10/11 of
    /// it so that one replacement always fits under it.
    pub fee_cap_gwei: f64,
    /// Seconds a transaction may stay unmined before it is replaced with a 10 % higher fee;
    /// doubles with each replacement.
    pub stuck_after_secs: u64,
    /// Seconds before the first retry of a failed job; doubles with each attempt.
    pub retry_base_secs: u64,
    /// Longest retry delay in seconds.
    pub retry_max_secs: u64,
}

impl Default for MinterSettings {
    fn default() -> Self {
        Self {
            max_batch_size: 250,
            max_batch_gas: 12_000_000,
            max_in_flight: 8,
            fee_cap_gwei: 500.0,
            stuck_after_secs: 45,
            retry_base_secs: 2,
            retry_max_secs: 600,
        }
    }
}

impl MinterSettings {
    /// The fee cap in wei.
    pub fn fee_cap_wei(&self) -> u128 {
        (self.fee_cap_gwei * 1e9).round() as u128
    }
}

/// Chain connection and watcher settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    /// HTTP JSON-RPC endpoint.
    pub rpc_url: String,
    /// Further HTTP JSON-RPC endpoints of the same chain, tried in order when `rpc_url`
    /// keeps failing (each call is first retried on its node with backoff); requests return
    /// to `rpc_url` 30 s after leaving it. Each is checked at start-up to report
    /// `chain_id`. A watcher pass reads one node from start to end. Empty: no fallback.
    #[serde(default)]
    pub fallback_rpc_urls: Vec<String>,
    /// WebSocket endpoint for new-head notifications; polling when absent.
    #[serde(default)]
    pub ws_url: Option<String>,
    /// Chain id the endpoint must report (checked at start-up).
    pub chain_id: u64,
    /// Blocks a payment must be deep to count (1 = in the latest block); default by chain.
    #[serde(default)]
    pub confirmations: Option<u64>,
    /// Milliseconds between polls when no new-head subscription is available.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Largest block range asked of `eth_getLogs`; shrunk when the provider refuses.
    #[serde(default = "default_max_block_range")]
    pub max_block_range: u64,
    /// Seconds a quote stays payable.
    #[serde(default = "default_quote_ttl_secs")]
    pub quote_ttl_secs: u64,
    /// Private key (hex) that signs quotes; must match the checkout's quote signer.
    #[serde(default)]
    pub quote_signer_key: Option<SecretString>,
    /// Private key (hex) of the badge issuer; must hold the badge's ISSUER_ROLE. The minter
    /// runs only when it is set.
    #[serde(default)]
    pub issuer_key: Option<SecretString>,
    /// Private key (hex) of the renewer: the checkout's renewer, which charges members'
    /// renewal mandates. Its own key, never the issuer's (whose nonces the minter tracks).
    /// Automatic renewal runs only when it is set.
    #[serde(default)]
    pub renewer_key: Option<SecretString>,
    /// Local chains only (chain ids 31337 and 1337): the service's clock follows the latest
    /// block's time when a test or a person moves the chain ahead (`evm_increaseTime`,
    /// `anvil_setNextBlockTimestamp`), so expiries and renewals can be lived through in
    /// minutes. Refused on any other chain: a public chain's time is the wall clock's.
    #[serde(default)]
    pub follow_chain_time: bool,
}

fn default_database_url() -> String {
    "sqlite://tmai-pay.db".to_string()
}
fn default_deployment_file() -> PathBuf {
    PathBuf::from("deployment.json")
}
fn default_poll_interval_ms() -> u64 {
    500
}
fn default_max_block_range() -> u64 {
    2_000
}
fn default_quote_ttl_secs() -> u64 {
    1_800
}

/// Returns the confirmations to wait for on `chain_id` when none are configured: 12 on
/// Ethereum mainnet and its testnets, fewer on L2s whose sequencer orders blocks, 2 locally.
pub fn default_confirmations(chain_id: u64) -> u64 {
    match chain_id {
        1 | 11_155_111 | 17_000 => 12,
        10 | 8453 | 42_161 | 11_155_420 | 84_532 => 6,
        137 => 64,
        31_337 | 1337 => 2,
        _ => 12,
    }
}

impl ChainSettings {
    /// Returns the confirmations to wait for.
    pub fn confirmations(&self) -> u64 {
        self.confirmations.unwrap_or_else(|| default_confirmations(self.chain_id))
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable is malformed or a field is missing.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("configuration: {field}: {message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Settings {
    /// Loads `file` (optional when it does not exist and `required` is false), then the
    /// `TMAI_PAY__…` environment variables on top.
    pub fn load(file: &Path, required: bool) -> Result<Self, ConfigError> {
        let settings: Self = config::Config::builder()
            .add_source(config::File::from(file).format(config::FileFormat::Toml).required(required))
            .add_source(config::Environment::with_prefix("TMAI_PAY").prefix_separator("__").separator("__"))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses settings from TOML text (tests and embedded defaults).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings: Self = config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml)).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: &str| ConfigError::Invalid { field: field.into(), message: message.into() };
        self.renewals.check().map_err(|(field, message)| invalid(field, message))?;
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres:") || self.database_url.starts_with("postgresql:")) {
            return Err(invalid("database_url", "must start with sqlite: or postgres:"));
        }
        for (i, url) in self.chain.fallback_rpc_urls.iter().enumerate() {
            let field = format!("chain.fallback_rpc_urls[{i}]");
            if !url::Url::parse(url.trim()).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                return Err(invalid(&field, &format!("{} is not an http:// or https:// URL", redacted(url))));
            }
            if url.trim() == self.chain.rpc_url.trim() || self.chain.fallback_rpc_urls[..i].iter().any(|u| u.trim() == url.trim()) {
                return Err(invalid(&field, "repeats another RPC URL of the chain (a fallback must be another node)"));
            }
        }
        if self.chain.max_block_range == 0 {
            return Err(invalid("chain.max_block_range", "must be at least 1"));
        }
        if self.chain.follow_chain_time && !matches!(self.chain.chain_id, 31_337 | 1337) {
            return Err(invalid("chain.follow_chain_time", "is for local chains only (chain ids 31337 and 1337): a public chain's time is the wall clock's"));
        }
        if self.chain.confirmations == Some(0) {
            return Err(invalid("chain.confirmations", "must be at least 1 (1 = in the latest block)"));
        }
        let m = &self.minter;
        if m.max_batch_size == 0 {
            return Err(invalid("minter.max_batch_size", "must be at least 1"));
        }
        if m.max_in_flight == 0 {
            return Err(invalid("minter.max_in_flight", "must be at least 1"));
        }
        if m.max_batch_gas < 100_000 {
            return Err(invalid("minter.max_batch_gas", "must be at least 100000"));
        }
        if !(m.fee_cap_gwei.is_finite() && m.fee_cap_gwei > 0.0) {
            return Err(invalid("minter.fee_cap_gwei", "must be a positive number of gwei"));
        }
        if m.retry_base_secs == 0 || m.retry_max_secs < m.retry_base_secs {
            return Err(invalid("minter.retry_base_secs", "must be at least 1 and at most minter.retry_max_secs"));
        }
        if self.http.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("http.bind", "must be an address and port such as 127.0.0.1:8080"));
        }
        if self.http.ops_bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("http.ops_bind", "must be an address and port such as 127.0.0.1:9090"));
        }
        if self.http.ops_bind == self.http.bind {
            return Err(invalid("http.ops_bind", "must differ from http.bind (the operations routes are not public)"));
        }
        if let Err(message) = self.http.trusted_proxy_nets() {
            return Err(invalid("http.trusted_proxies", &message));
        }
        if let Some(url) = self.http.public_rpc_url()
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(invalid("http.public_rpc_url", "must be an http:// or https:// URL"));
        }
        if let Some(url) = self.http.explorer_tx_url.as_deref().map(str::trim).filter(|u| !u.is_empty())
            && !(url.contains("{tx}") && url::Url::parse(&url.replace("{tx}", "0x00")).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
        {
            return Err(invalid("http.explorer_tx_url", "must be an http:// or https:// URL with {tx} where the transaction hash goes"));
        }
        if !self.http.public_url().is_empty() && !url::Url::parse(self.http.public_url()).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(invalid("http.public_url", "must be an http:// or https:// URL"));
        }
        if self.http.max_event_streams == 0 || self.http.max_event_streams_per_client == 0 {
            return Err(invalid("http.max_event_streams", "max_event_streams and max_event_streams_per_client must be at least 1"));
        }
        if self.http.event_stream_max_secs == 0 {
            return Err(invalid("http.event_stream_max_secs", "must be at least 1"));
        }
        if self.http.request_timeout_secs == 0 {
            return Err(invalid("http.request_timeout_secs", "must be at least 1"));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(invalid("http.body_limit_bytes", "must be at least 1024"));
        }
        let w = &self.webhooks;
        if w.timeout_secs == 0 || w.timeout_secs > 300 {
            return Err(invalid("webhooks.timeout_secs", "must be between 1 and 300"));
        }
        if w.schedule_secs.is_empty() || w.schedule_secs.len() > 50 {
            return Err(invalid("webhooks.schedule_secs", "must list between 1 and 50 delays"));
        }
        if w.jitter_percent > 100 {
            return Err(invalid("webhooks.jitter_percent", "must be at most 100"));
        }
        if w.max_concurrent_endpoints == 0 {
            return Err(invalid("webhooks.max_concurrent_endpoints", "must be at least 1"));
        }
        if w.batch_size == 0 || w.batch_size > 10_000 {
            return Err(invalid("webhooks.batch_size", "must be between 1 and 10000"));
        }
        if w.poll_interval_ms == 0 {
            return Err(invalid("webhooks.poll_interval_ms", "must be at least 1"));
        }
        let r = &self.reminders;
        if r.expiring_days.iter().any(|d| *d == 0 || *d > 365) {
            return Err(invalid("reminders.expiring_days", "each must be between 1 and 365"));
        }
        if r.interval_secs == 0 {
            return Err(invalid("reminders.interval_secs", "must be at least 1"));
        }
        if !(4 * 1024..=16 * 1024 * 1024).contains(&self.card.body_limit_bytes) {
            return Err(invalid("card.body_limit_bytes", "must be between 4096 and 16777216"));
        }
        if self.card.rate_limit_per_second > 0 && self.card.rate_limit_burst == 0 {
            return Err(invalid("card.rate_limit_burst", "must be at least 1 while card.rate_limit_per_second is set"));
        }
        if self.card.tolerance_secs == 0 {
            return Err(invalid("card.tolerance_secs", "must be at least 1"));
        }
        if !(self.card.currency.len() == 3 && self.card.currency.bytes().all(|b| b.is_ascii_alphabetic())) {
            return Err(invalid("card.currency", "must be a three-letter currency code such as usd"));
        }
        if let Err((field, message)) = self.card.validate_api() {
            return Err(invalid(field, &message));
        }
        if self.card.api_key.is_some() && self.http.public_url().is_empty() {
            return Err(invalid(
                "http.public_url",
                "must be set with card.api_key: the card processor sends the member back to the checkout and account pages there",
            ));
        }
        if self.chain.quote_ttl_secs == 0 {
            return Err(invalid("chain.quote_ttl_secs", "must be at least 1"));
        }
        if let Err((field, message)) = self.pricing.validate() {
            return Err(invalid(&field, &message));
        }
        let k = &self.retention;
        if k.unpaid_checkouts_days == 0 || k.unpaid_checkouts_days > 3_650 {
            return Err(invalid("retention.unpaid_checkouts_days", "must be between 1 and 3650"));
        }
        if k.interval_secs == 0 {
            return Err(invalid("retention.interval_secs", "must be at least 1"));
        }
        if k.batch_size == 0 || k.batch_size > 10_000 {
            return Err(invalid("retention.batch_size", "must be between 1 and 10000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_valid_and_documents_the_defaults() {
        let settings = Settings::from_toml(include_str!("../../tmai-pay.example.toml")).unwrap();
        let defaults = MinterSettings::default();
        assert_eq!(settings.minter.fee_cap_wei(), 500_000_000_000);
        assert_eq!(settings.minter.max_batch_size, defaults.max_batch_size);
        assert_eq!(settings.minter.stuck_after_secs, defaults.stuck_after_secs);
        assert_eq!(settings.chain.confirmations(), 2);
        let (retention, defaults) = (&settings.retention, RetentionSettings::default());
        assert_eq!(
            (retention.unpaid_checkouts_days, retention.interval_secs, retention.batch_size),
            (defaults.unpaid_checkouts_days, defaults.interval_secs, defaults.batch_size)
        );
        let (card, defaults) = (&settings.card, CardSettings::default());
        assert_eq!(
            (card.body_limit_bytes, card.rate_limit_per_second, card.rate_limit_burst),
            (defaults.body_limit_bytes, defaults.rate_limit_per_second, defaults.rate_limit_burst)
        );
    }

    #[test]
    fn bad_retention_and_card_limits_name_the_field() {
        let base = "[chain]\nrpc_url = \"http://x\"\nchain_id = 1\n";
        for (extra, field) in [
            ("[retention]\nunpaid_checkouts_days = 0", "retention.unpaid_checkouts_days"),
            ("[retention]\ninterval_secs = 0", "retention.interval_secs"),
            ("[retention]\nbatch_size = 0", "retention.batch_size"),
            ("[card]\nbody_limit_bytes = 100", "card.body_limit_bytes"),
            ("[card]\nrate_limit_burst = 0", "card.rate_limit_burst"),
        ] {
            let error = Settings::from_toml(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(error.contains(field), "{extra}: {error}");
        }
        assert!(Settings::from_toml(&format!("{base}[card]\nrate_limit_per_second = 0\nrate_limit_burst = 0")).is_ok(), "no limit needs no burst");
    }

    #[test]
    fn http_settings_are_checked() {
        let base = "[chain]\nrpc_url = \"http://x\"\nchain_id = 1\n[http]\n";
        for (extra, field) in [
            ("trusted_proxies = [\"10.0.0.0/33\"]", "http.trusted_proxies"),
            ("trusted_proxies = [\"proxy.internal\"]", "http.trusted_proxies"),
            ("ops_bind = \"127.0.0.1:8080\"", "http.ops_bind"),
            ("ops_bind = \"loopback\"", "http.ops_bind"),
            ("public_rpc_url = \"ftp://x\"", "http.public_rpc_url"),
            ("explorer_tx_url = \"https://scan.example/tx/\"", "http.explorer_tx_url"),
            ("explorer_tx_url = \"javascript:alert({tx})\"", "http.explorer_tx_url"),
            ("max_event_streams_per_client = 0", "http.max_event_streams"),
        ] {
            let error = Settings::from_toml(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(error.contains(field), "{extra}: {error}");
        }
        let settings = Settings::from_toml(&format!("{base}trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::1\"]\npublic_rpc_url = \"\"")).unwrap();
        assert_eq!(settings.http.trusted_proxy_nets().unwrap().len(), 2);
        assert_eq!(settings.http.public_rpc_url(), None);
        let explorer = Settings::from_toml(&format!("{base}explorer_tx_url = \"https://scan.example/tx/{{tx}}\"")).unwrap();
        assert_eq!(explorer.http.explorer_tx_url.as_deref(), Some("https://scan.example/tx/{tx}"));
    }

    #[test]
    fn bad_minter_settings_name_the_field() {
        let base = "[chain]\nrpc_url = \"http://x\"\nchain_id = 1\n[minter]\n";
        for (extra, field) in [
            ("max_batch_size = 0", "minter.max_batch_size"),
            ("max_in_flight = 0", "minter.max_in_flight"),
            ("fee_cap_gwei = -1.0", "minter.fee_cap_gwei"),
            ("max_batch_gas = 10", "minter.max_batch_gas"),
            ("retry_base_secs = 0", "minter.retry_base_secs"),
        ] {
            let error = Settings::from_toml(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(error.contains(field), "{extra}: {error}");
        }
        let error = Settings::from_toml(&format!("{base}fee_cap = 1")).unwrap_err().to_string();
        assert!(error.contains("fee_cap"), "{error}");
    }

    #[test]
    fn fallback_rpc_urls_must_be_other_http_urls() {
        let base = "[chain]\nrpc_url = \"http://a:8545/v3/key\"\nchain_id = 1\n";
        let settings = Settings::from_toml(&format!("{base}fallback_rpc_urls = [\"https://b/key2\"]")).unwrap();
        assert_eq!(settings.chain.fallback_rpc_urls, ["https://b/key2"]);
        assert!(Settings::from_toml(base).unwrap().chain.fallback_rpc_urls.is_empty());
        for (list, field) in [
            ("[\"ftp://b\"]", "chain.fallback_rpc_urls[0]"),
            ("[\"https://b\", \"not a url\"]", "chain.fallback_rpc_urls[1]"),
            ("[\"http://a:8545/v3/key\"]", "chain.fallback_rpc_urls[0]"),
            ("[\"https://b\", \"https://b\"]", "chain.fallback_rpc_urls[1]"),
        ] {
            let error = Settings::from_toml(&format!("{base}fallback_rpc_urls = {list}")).unwrap_err().to_string();
            assert!(error.contains(field), "{list}: {error}");
        }
    }

    #[test]
    fn following_the_chains_time_is_for_local_chains_only() {
        let on = |chain_id: u64| Settings::from_toml(&format!("[chain]\nrpc_url = \"http://x\"\nchain_id = {chain_id}\nfollow_chain_time = true\n"));
        assert!(on(31_337).unwrap().chain.follow_chain_time);
        assert!(on(1337).unwrap().chain.follow_chain_time);
        for public in [1, 8453, 11_155_111] {
            let error = on(public).unwrap_err().to_string();
            assert!(error.contains("chain.follow_chain_time"), "{public}: {error}");
        }
        assert!(!Settings::from_toml("[chain]\nrpc_url = \"http://x\"\nchain_id = 31337\n").unwrap().chain.follow_chain_time, "off unless asked");
    }

    #[test]
    fn the_card_api_key_and_base_url_are_checked_and_named() {
        let base = "[chain]\nrpc_url = \"http://127.0.0.1:8545\"\nchain_id = 1\n";
        let public = "[http]\npublic_url = \"https://pay.example\"\n";
        let fine = Settings::from_toml(&format!("{base}{public}[card]\napi_key = \"sk_test_abc\"\napi_base_url = \"http://127.0.0.1:12111\"")).unwrap();
        let no_public = Settings::from_toml(&format!("{base}[card]\napi_key = \"sk_test_abc\"")).unwrap_err().to_string();
        assert!(no_public.contains("http.public_url"), "{no_public}");
        assert_eq!(fine.card.api_base_url, "http://127.0.0.1:12111");
        assert_eq!(Settings::from_toml(base).unwrap().card.api_base_url, "https://api.stripe.com", "the processor's own by default");
        assert!(!format!("{:?}", fine.card).contains("sk_test_abc"), "the key is redacted in Debug");
        for (table, field) in [
            ("api_key = \"pk_test_abc\"", "card.api_key"),
            ("api_key = \"\"", "card.api_key"),
            ("api_key = \"sk_test with space\"", "card.api_key"),
            ("api_base_url = \"ftp://api.stripe.com\"", "card.api_base_url"),
            ("api_base_url = \"https://api.stripe.com/v1\"", "card.api_base_url"),
            ("api_base_url = \"not a url\"", "card.api_base_url"),
        ] {
            let error = Settings::from_toml(&format!("{base}{public}[card]\n{table}")).unwrap_err().to_string();
            assert!(error.contains(field), "{table}: {error}");
            assert!(!error.contains("sk_test"), "the key is not shown: {error}");
        }
    }

    #[test]
    fn the_card_currency_defaults_to_usd_and_must_be_a_code() {
        let base = "[chain]\nrpc_url = \"http://x\"\nchain_id = 1\n";
        assert_eq!(Settings::from_toml(base).unwrap().card.currency, "usd");
        assert_eq!(Settings::from_toml(&format!("{base}[card]\ncurrency = \"eur\"")).unwrap().card.currency, "eur");
        for bad in ["dollars", "", "u$d"] {
            let error = Settings::from_toml(&format!("{base}[card]\ncurrency = \"{bad}\"")).unwrap_err().to_string();
            assert!(error.contains("card.currency"), "{bad}: {error}");
        }
    }
}
