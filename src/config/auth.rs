//! The `[auth]` table: who may ask members to sign in, and the keys membership tokens are
//! signed with.

use secrecy::SecretString;
use serde::Deserialize;

/// Sign-in and membership token settings (the `[auth]` table). Sign-in is off (503) until
/// `allowed_origins` and at least one key are set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Origins (`https://shop.example`, `http://localhost:8080`) whose pages may ask a
    /// member to sign in: a message's `domain` and `URI` must both belong to one of them.
    pub allowed_origins: Vec<String>,
    /// When set, the statement a message must carry, word for word.
    pub statement: Option<String>,
    /// Seconds a nonce from `POST /v1/auth/nonce` can be used (once).
    pub nonce_ttl_secs: u64,
    /// Seconds a message's `Issued At` may lie in the future (clocks differ).
    pub clock_skew_secs: u64,
    /// Seconds an account session (the page's cookie) lives at most after sign-in.
    pub session_secs: u64,
    /// Seconds a membership token lives at most; it also ends with its session and at the
    /// subscription's end, whichever comes first. The page renews it from the session
    /// (`POST /v1/auth/refresh`), so a revoke, refund, move or expiry reaches the merchant's
    /// app within one token lifetime.
    pub token_secs: u64,
    /// The tokens' `iss`.
    pub issuer: String,
    /// The tokens' `aud`, when the merchant's app checks one.
    pub audience: Option<String>,
    /// Gas limit of each `eth_call` that checks a contract wallet's signature (ERC-1271
    /// `isValidSignature`, or ERC-6492's simulated deployment and check): a wallet that needs
    /// more is refused as not having signed, and no check costs the node more.
    pub contract_check_gas: u64,
    /// Contract-wallet checks in flight at once, service-wide. Sign-in's own share of the
    /// node, apart from the watcher's and the minter's: when it is full, a sign-in that needs
    /// the chain answers 503 `sign_in_busy` with `Retry-After` instead of queueing.
    pub contract_checks_in_flight: u32,
    /// Signature checks that ask the chain (anything but a valid plain-key signature) one
    /// nonce allows; after that many failures the nonce is spent.
    pub tries_per_nonce: u32,
    /// Nonces issued and not yet expired, service-wide; at the cap `POST /v1/auth/nonce`
    /// answers 503 `too_many_nonces` with `Retry-After` until the oldest expires.
    pub max_live_nonces: u64,
    /// Signing keys, newest first. The first key without `retired_at` signs; every key is
    /// published at `/.well-known/jwks.json` until `session_secs` after its `retired_at`
    /// (so tokens it signed stay verifiable until they expire).
    pub keys: Vec<SigningKeyConfig>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            statement: None,
            nonce_ttl_secs: 300,
            clock_skew_secs: 60,
            session_secs: 86_400,
            token_secs: 900,
            issuer: "tmai-pay".into(),
            audience: None,
            contract_check_gas: 1_000_000,
            contract_checks_in_flight: 4,
            tries_per_nonce: 3,
            max_live_nonces: 10_000,
            keys: Vec::new(),
        }
    }
}

/// One token signing key: an ECDSA P-256 private key (ES256) as PKCS#8 PEM, given in the
/// file (`private_key_pem`) or, better, named by the environment variable that holds it
/// (`private_key_env`). Never logged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The key id (`kid`) tokens name and the JWKS lists.
    pub kid: String,
    /// The PEM text.
    #[serde(default)]
    pub private_key_pem: Option<SecretString>,
    /// The environment variable that holds the PEM text.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// Unix seconds at which the key stopped signing (it stays published for
    /// `session_secs` more).
    #[serde(default)]
    pub retired_at: Option<u64>,
}
