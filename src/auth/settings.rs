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
    /// Seconds a membership token (and the account page's session) lives at most; it also
    /// ends at the subscription's end, whichever comes first.
    pub session_secs: u64,
    /// The tokens' `iss`.
    pub issuer: String,
    /// The tokens' `aud`, when the merchant's app checks one.
    pub audience: Option<String>,
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
            issuer: "tmai-pay".into(),
            audience: None,
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
