//! Membership tokens: JWTs signed ES256 with the configured keys, verifiable by any JWT
//! library against `/.well-known/jwks.json`.

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{Jwk, JwkSet, PublicKeyUse},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{AuthSettings, SigningKeyConfig};

/// Why the keys could not be loaded or a token not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A configured key is unusable (the message names the key id, never its text).
    #[error("auth.keys[{kid}]: {reason}")]
    Key {
        /// The key's id.
        kid: String,
        /// What is wrong.
        reason: String,
    },
    /// Another `[auth]` setting is out of range (the message names it).
    #[error("{0}")]
    Setting(String),
    /// No key is configured, or every key is retired.
    #[error("no signing key: add one to auth.keys")]
    NoKey,
    /// The token is not one of ours, or is malformed, expired or signed by an unknown key.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// What a membership token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer (`auth.issuer`).
    pub iss: String,
    /// The member's wallet, checksummed.
    pub sub: String,
    /// Audience (`auth.audience`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expires at (unix seconds): the session's limit or the subscription's end, whichever
    /// is first.
    pub exp: u64,
    /// Token id (the sign-in's nonce).
    pub jti: String,
    /// The member's tier (0: none).
    pub tier: u8,
    /// The member's plan id, when a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<u32>,
    /// `trialing`, `active`, `past_due`, `canceled`, `expired` or `none`.
    pub status: String,
    /// The subscription's end (unix seconds), when a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<u64>,
    /// When the member signed the message (unix seconds): account actions need it recent.
    pub auth_time: u64,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    retired_at: Option<u64>,
}

/// Tokens whose signature was checked, at most (a few hundred bytes each).
const VERIFIED_TOKENS: usize = 100_000;

/// The loaded signing keys.
pub struct TokenKeys {
    keys: Vec<Key>,
    session_secs: u64,
    issuer: String,
    audience: Option<String>,
    /// Tokens already verified, by the SHA-256 of their text: the signing key's id and the
    /// claims. A merchant's app sends the same token with each page for its whole life;
    /// an ES256 verification costs ~50 µs, the hash ~1 µs. A hit is still checked for
    /// expiry and for its key being published at that moment.
    verified: quick_cache::sync::Cache<[u8; 32], (String, Claims)>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("TokenKeys").field("kids", &kids).finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Loads the configured keys (reading `private_key_env` variables).
    pub fn load(settings: &AuthSettings) -> Result<Self, TokenError> {
        let mut keys = Vec::new();
        for config in &settings.keys {
            keys.push(load_key(config)?);
        }
        let mut seen = std::collections::HashSet::new();
        for key in &keys {
            if !seen.insert(key.kid.clone()) {
                return Err(TokenError::Key { kid: key.kid.clone(), reason: "two keys have this id".into() });
            }
        }
        if keys.is_empty() {
            return Err(TokenError::NoKey);
        }
        Ok(Self {
            keys,
            session_secs: settings.session_secs,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
        })
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let key = self.keys.iter().find(|k| k.retired_at.is_none()).ok_or(TokenError::NoKey)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(TokenError::Sign)
    }

    /// Returns the claims of `token` when one of the published keys signed it, for this
    /// issuer (and audience), and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some((kid, claims)) = self.verified.get(&digest) {
            if claims.exp <= now {
                return Err(TokenError::Invalid("expired".into()));
            }
            if self.published(now).any(|k| k.kid == kid) {
                return Ok(claims);
            }
            return Err(TokenError::Invalid("unknown or withdrawn key".into()));
        }
        let (kid, claims) = self.verify_signature(token, now)?;
        self.verified.insert(digest, (kid, claims.clone()));
        Ok(claims)
    }

    /// [`Self::verify`] without the cache: the signature, issuer, audience and expiry.
    fn verify_signature(&self, token: &str, now: u64) -> Result<(String, Claims), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let kid = header.kid.ok_or_else(|| TokenError::Invalid("no key id".into()))?;
        let key = self.published(now).find(|k| k.kid == kid).ok_or_else(|| TokenError::Invalid("unknown or withdrawn key".into()))?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Expiry is checked below against the service's clock.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "sub", "iss"].into_iter().map(String::from).collect();
        validation.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|e| TokenError::Invalid(e.to_string()))?.claims;
        if claims.exp <= now {
            return Err(TokenError::Invalid("expired".into()));
        }
        Ok((kid, claims))
    }

    /// Returns the public keys to publish at `now`: every key not retired, and retired ones
    /// until their last tokens have expired.
    pub fn jwks(&self, now: u64) -> JwkSet {
        JwkSet { keys: self.published(now).map(|k| k.jwk.clone()).collect() }
    }

    /// The token issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token audience, when configured.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    fn published(&self, now: u64) -> impl Iterator<Item = &Key> {
        let session = self.session_secs;
        self.keys.iter().filter(move |k| k.retired_at.is_none_or(|at| at.saturating_add(session) > now))
    }
}

fn load_key(config: &SigningKeyConfig) -> Result<Key, TokenError> {
    let kid = config.kid.trim().to_string();
    let fail = |reason: &str| TokenError::Key { kid: kid.clone(), reason: reason.into() };
    if kid.is_empty() || kid.len() > 64 || !kid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(fail("kid must be 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    let pem = match (&config.private_key_pem, &config.private_key_env) {
        (Some(pem), None) => zeroize::Zeroizing::new(pem.expose_secret().to_string()),
        (None, Some(var)) => zeroize::Zeroizing::new(std::env::var(var).map_err(|_| fail(&format!("environment variable {var} is not set")))?),
        _ => return Err(fail("set exactly one of private_key_pem and private_key_env")),
    };
    let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| fail("not an EC P-256 private key in PKCS#8 PEM"))?;
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|_| fail("not an EC P-256 private key"))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| fail("its public key does not load"))?;
    Ok(Key { kid, encoding, decoding, jwk, retired_at: config.retired_at })
}

/// Returns a new ES256 private key as PKCS#8 PEM (what `auth.keys` takes).
pub fn generate_pem() -> String {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair},
    };
    use base64::Engine;
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).expect("the system random source works");
    let text = base64::engine::general_purpose::STANDARD.encode(document.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SigningKeyConfig;

    fn keys(retired_at: Option<u64>) -> (AuthSettings, TokenKeys) {
        let settings = AuthSettings {
            keys: vec![SigningKeyConfig { kid: "k1".into(), private_key_pem: Some(generate_pem().into()), private_key_env: None, retired_at }],
            ..Default::default()
        };
        let keys = TokenKeys::load(&settings).unwrap();
        (settings, keys)
    }

    fn claims(issuer: &str, exp: u64) -> Claims {
        Claims {
            iss: issuer.into(),
            sub: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8".into(),
            aud: None,
            iat: 1_000,
            exp,
            jti: "j".into(),
            tier: 3,
            plan: Some(3),
            status: "active".into(),
            period_end: Some(9_000),
            auth_time: 1_000,
        }
    }

    #[test]
    fn a_verified_token_is_taken_from_the_cache_but_still_expires_and_a_changed_one_is_checked_again() {
        let (settings, keys) = keys(None);
        let token = keys.sign(&claims(&settings.issuer, 2_000)).unwrap();
        assert_eq!(keys.verify(&token, 1_500).unwrap().tier, 3, "first sight: the signature is checked");
        assert_eq!(keys.verified.len(), 1);
        assert_eq!(keys.verify(&token, 1_600).unwrap().tier, 3, "again: from the cache");
        assert!(keys.verify(&token, 2_000).is_err(), "a cached token still expires");
        // One character of the signature changed: another digest, so the signature is
        // checked, and refused.
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(keys.verify(std::str::from_utf8(&tampered).unwrap(), 1_500).is_err());
        // A token of another key set (same claims) is refused, not served from the cache.
        let (_, other) = self::keys(None);
        assert!(other.verify(&token, 1_500).is_err());
    }

    #[test]
    fn a_cached_token_of_a_withdrawn_key_is_refused() {
        // Retired at 1,000: published until its last sessions' tokens expire (1,000 + a day).
        let (settings, keys) = keys(Some(1_000));
        let mut signing = keys;
        signing.keys[0].retired_at = None;
        let token = signing.sign(&claims(&settings.issuer, 200_000)).unwrap();
        signing.keys[0].retired_at = Some(1_000);
        assert!(signing.verify(&token, 1_500).is_ok());
        let withdrawn = 1_000 + settings.session_secs + 1;
        assert!(signing.verify(&token, withdrawn).is_err(), "the key is no longer published: the cache does not keep it alive");
    }
}
