//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by the base64 bytes after `whsec_`.
//! During a secret rotation the header carries one signature per live secret, separated by
//! spaces; receivers accept any that verifies.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::store::{StoreError, webhooks::endpoints::Secrets};

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Returns a new secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// Returns the key bytes of a `whsec_…` secret, or None when it is malformed.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    (!key.is_empty()).then_some(key)
}

/// Returns `v1,<signature>` of `body` sent as `id` at `timestamp` with `key`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Returns the `webhook-signature` header value: one signature per key, space-separated.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: u64, body: &[u8]) -> String {
    keys.iter().map(|key| sign(key, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// The keys that sign for an endpoint at a given time.
#[derive(Debug, Clone)]
pub struct SigningTarget {
    /// The endpoint's URL.
    pub url: String,
    /// Keys: the current secret's, then the previous one's during a rotation's overlap.
    pub keys: Vec<Vec<u8>>,
    /// Whether deliveries are made.
    pub enabled: bool,
}

impl SigningTarget {
    /// Returns what signs with an endpoint's stored `secrets` at `now` (unix time). A
    /// malformed current secret is a corrupt row; a malformed previous one just stops signing.
    pub fn new(secrets: Secrets, now: i64) -> Result<Self, StoreError> {
        let mut keys = vec![secret_key(&secrets.secret).ok_or(StoreError::Corrupt("webhook_endpoints.secret"))?];
        if let (Some(previous), Some(until)) = (&secrets.previous_secret, secrets.previous_secret_until)
            && until > now
            && let Some(key) = secret_key(previous)
        {
            keys.push(key);
        }
        Ok(Self { url: secrets.url, keys, enabled: secrets.enabled })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example in the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_fresh_and_round_trip() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(secret_key(&a).unwrap().len(), 32);
        assert!(secret_key("whsec_").is_none());
        assert!(secret_key("nope").is_none());
        assert!(secret_key("whsec_***").is_none());
    }

    #[test]
    fn a_rotation_header_carries_both_signatures() {
        let keys = vec![vec![1u8; 32], vec![2u8; 32]];
        let header = signature_header(&keys, "evt_1", 5, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&keys[0], "evt_1", 5, b"{}"));
        assert_ne!(parts[0], parts[1]);
    }
}
