//! "Log in with your subscription": Sign-In with Ethereum (EIP-4361) and the membership
//! tokens the service issues after it.
//!
//! [`siwe`] checks a signed message against the configuration (allowed origins, chain,
//! times, statement) and spends its nonce; [`signature`] decides whether the signature is
//! the wallet's (a plain key, an ERC-1271 contract wallet, or an ERC-6492 wallet not yet
//! deployed); [`tokens`] signs membership JWTs (ES256) with rotating keys and serves their
//! public halves as a JWKS. The HTTP handlers are in `http::auth`.

pub mod settings;
pub mod signature;
pub mod siwe;
pub mod tokens;

pub use settings::AuthSettings;

use std::sync::Arc;

use alloy::primitives::Address;

use crate::store::subscriptions::Subscription;

/// Sign-in as the HTTP layer uses it: the settings and the loaded keys.
#[derive(Debug, Clone)]
pub struct AuthService {
    /// The `[auth]` table.
    pub settings: Arc<AuthSettings>,
    /// The token keys.
    pub keys: Arc<tokens::TokenKeys>,
}

impl AuthService {
    /// Loads the keys of `settings`; `None` when sign-in is not configured (no allowed
    /// origin and no key), an error when it is half or wrongly configured.
    pub fn from_settings(settings: &AuthSettings) -> Result<Option<Self>, tokens::TokenError> {
        if settings.allowed_origins.is_empty() && settings.keys.is_empty() {
            return Ok(None);
        }
        for origin in &settings.allowed_origins {
            let parsed = url::Url::parse(origin).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if parsed.is_none() {
                return Err(tokens::TokenError::Key { kid: "-".into(), reason: format!("auth.allowed_origins: {origin:?} is not an http(s) origin") });
            }
        }
        let keys = tokens::TokenKeys::load(settings)?;
        Ok(Some(Self { settings: Arc::new(settings.clone()), keys: Arc::new(keys) }))
    }

    /// Returns the claims of a membership token for `wallet`, who signed at `auth_time`,
    /// with `subscription` as it stands at `now`. The token ends at the session's limit or
    /// the subscription's end, whichever is first.
    pub fn claims(&self, wallet: Address, subscription: Option<&Subscription>, now: u64, auth_time: u64, jti: &str) -> tokens::Claims {
        let session_end = auth_time.saturating_add(self.settings.session_secs);
        let (tier, plan, status, period_end, exp) = match subscription {
            Some(s) if s.expires_at > now => (s.tier, Some(s.plan_id), s.status.as_str().to_string(), Some(s.expires_at), session_end.min(s.expires_at)),
            Some(s) => (0, Some(s.plan_id), "expired".to_string(), Some(s.expires_at), session_end),
            None => (0, None, "none".to_string(), None, session_end),
        };
        tokens::Claims {
            iss: self.keys.issuer().to_string(),
            sub: wallet.to_checksum(None),
            aud: self.keys.audience().map(str::to_string),
            iat: now,
            exp,
            jti: jti.to_string(),
            tier,
            plan,
            status,
            period_end,
            auth_time,
        }
    }
}
