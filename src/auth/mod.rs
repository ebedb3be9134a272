//! "Log in with your subscription": Sign-In with Ethereum (EIP-4361) and the membership
//! tokens the service issues after it.
//!
//! [`siwe`] checks a signed message against the configuration (allowed origins, chain,
//! times, statement) and spends its nonce; [`signature`] decides whether the signature is
//! the wallet's (a plain key, an ERC-1271 contract wallet, or an ERC-6492 wallet not yet
//! deployed); [`tokens`] signs membership JWTs (ES256) with rotating keys and serves their
//! public halves as a JWKS. The HTTP handlers are in `http::auth`.
//!
//! Sign-in is anonymous, so what it may cost is bounded: contract-wallet checks share a
//! fixed number of places and a gas limit ([`signature::ContractChecks`]), a nonce allows
//! `tries_per_nonce` checks that ask the chain, and at most `max_live_nonces` nonces are
//! live at once.

pub mod signature;
pub mod siwe;
pub mod tokens;

use std::sync::Arc;

use alloy::primitives::Address;

use crate::{config::AuthSettings, store::subscriptions::Subscription};

/// Sign-in as the HTTP layer uses it: the settings and the loaded keys.
#[derive(Debug, Clone)]
pub struct AuthService {
    /// The `[auth]` table.
    pub settings: Arc<AuthSettings>,
    /// The token keys.
    pub keys: Arc<tokens::TokenKeys>,
    /// Sign-in's share of the node (shared by every clone).
    pub checks: Arc<signature::ContractChecks>,
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
        for (field, value) in [
            ("contract_check_gas", settings.contract_check_gas),
            ("contract_checks_in_flight", u64::from(settings.contract_checks_in_flight)),
            ("tries_per_nonce", u64::from(settings.tries_per_nonce)),
            ("max_live_nonces", settings.max_live_nonces),
            ("token_secs", settings.token_secs),
            ("session_secs", settings.session_secs),
        ] {
            if value == 0 {
                return Err(tokens::TokenError::Setting(format!("auth.{field}: must be at least 1")));
            }
        }
        let keys = tokens::TokenKeys::load(settings)?;
        let checks = signature::ContractChecks::new(settings.contract_checks_in_flight, settings.contract_check_gas);
        Ok(Some(Self { settings: Arc::new(settings.clone()), keys: Arc::new(keys), checks: Arc::new(checks) }))
    }

    /// Returns the claims of a membership token for `wallet`, who signed at `auth_time`,
    /// with `subscription` as it stands at `now`. The token ends after `token_secs`, at the
    /// session's limit or at the subscription's end, whichever is first.
    pub fn claims(&self, wallet: Address, subscription: Option<&Subscription>, now: u64, auth_time: u64, jti: &str) -> tokens::Claims {
        let session_end = auth_time.saturating_add(self.settings.session_secs).min(now.saturating_add(self.settings.token_secs));
        let (tier, plan, status, period_end, exp) = match subscription {
            Some(s) if s.expires_at > now => (s.tier, Some(s.plan_id), s.status.as_str().to_string(), Some(s.expires_at), session_end.min(s.expires_at)),
            // Past the paid end: no tier. `past_due` while an automatic renewal is retried in
            // its grace period (it may still renew), else `expired`.
            Some(s) => {
                let status = if s.status == crate::states::SubscriptionStatus::PastDue { "past_due" } else { "expired" };
                (0, Some(s.plan_id), status.to_string(), Some(s.expires_at), session_end)
            }
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
