//! The merchant's own customer on a purchase: a customer reference (`customer_ref`, the
//! merchant's user id) and the signed form a public page may carry.
//!
//! Rules:
//! - A reference is 1–64 characters of `A-Z a-z 0-9 _ : @ -` ([`CustomerRef::parse`]); no
//!   dot, so the signed form below can never be mistaken for a bare reference.
//! - `POST /v1/checkouts` is public. A bare reference there would let anyone tie their wallet
//!   to another person's account at the merchant, so a request without the merchant's API key
//!   must carry the reference **signed**: `<ref>.<expires_at>.<mac>`, where `expires_at` is
//!   unix seconds and `mac` the lowercase hex HMAC-SHA256, keyed by `merchant.customer_ref_secret`,
//!   of `tmai-pay customer_ref v1|<ref>|<expires_at>` ([`RefSigner`]). The merchant's server makes
//!   it (or `tmai-pay customer-ref <ref>` does) and puts it in the checkout link; an unsigned,
//!   expired or tampered one is refused (400 `invalid_customer_ref`). With the API key a bare
//!   reference is taken as it is, and a signed one is checked the same way.
//! - A wallet's membership belongs to one customer: the first confirmed payment (or card
//!   event) that carries a reference binds the wallet to it (`customers`), and a checkout for
//!   a wallet bound to another reference is refused (409 `customer_ref_conflict`): moving a
//!   paid membership between two of the merchant's users is the merchant's decision, not a
//!   checkout link's. Two checkouts opened at the same moment with different references can
//!   both be paid; then the first to confirm binds, each payment's own `checkout.*` and
//!   `payment.*` events keep the reference its order was created with, and the `subscription.*`
//!   and `badge.*` events carry the bound one.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest reference, in characters.
pub const MAX_LEN: usize = 64;

/// A reference's shape, as the OpenAPI document states it.
pub const PATTERN: &str = "^[A-Za-z0-9_:@-]{1,64}$";

/// What the signed form's MAC covers before the reference and expiry.
const SIGNED_CONTEXT: &str = "tmai-pay customer_ref v1";

/// A merchant's customer reference, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CustomerRef(String);

/// Why a customer reference was refused (each a 400 `invalid_customer_ref`, except
/// [`RefError::NeedsKey`], which is a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Empty, too long or with a character outside the set.
    #[error("customer_ref must be 1-{MAX_LEN} characters of A-Z a-z 0-9 _ : @ -")]
    Malformed,
    /// A bare reference without the merchant's API key.
    #[error(
        "a bare customer_ref needs the merchant's API key; on a public page pass the signed form <ref>.<expires_at>.<mac> the merchant's server made (README \"Customer references\")"
    )]
    NeedsKey,
    /// The signed form does not parse.
    #[error("customer_ref is not in the signed form <ref>.<expires_at>.<mac>")]
    BadSignedForm,
    /// The signed form's time has passed.
    #[error("the signed customer_ref expired at {0}; ask the merchant's site for a new link")]
    Expired(u64),
    /// The MAC does not verify (tampered, or made with another secret).
    #[error("the signed customer_ref does not verify (tampered, or signed with another secret)")]
    BadMac,
    /// The service has no secret to check a signed reference with.
    #[error("signed customer references are not configured: set merchant.customer_ref_secret")]
    NoSecret,
}

impl CustomerRef {
    /// Checks `text` as a bare reference.
    pub fn parse(text: &str) -> Result<Self, RefError> {
        let ok = !text.is_empty() && text.len() <= MAX_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'@' | b'-'));
        if ok { Ok(Self(text.to_string())) } else { Err(RefError::Malformed) }
    }

    /// Takes a stored reference as it is (it was checked when it was stored).
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Signs and checks the signed form of a reference with the merchant's secret.
#[derive(Clone)]
pub struct RefSigner {
    key: Vec<u8>,
}

impl fmt::Debug for RefSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefSigner(…)")
    }
}

impl RefSigner {
    /// Returns a signer keyed by `secret`'s bytes.
    pub fn new(secret: &str) -> Self {
        Self { key: secret.as_bytes().to_vec() }
    }

    fn mac(&self, customer: &str, expires_at: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{SIGNED_CONTEXT}|{customer}|{expires_at}").as_bytes());
        mac
    }

    /// Returns the signed form of `customer`, valid until `expires_at` (unix seconds).
    pub fn sign(&self, customer: &CustomerRef, expires_at: u64) -> String {
        let mac = self.mac(customer.as_str(), expires_at).finalize().into_bytes();
        format!("{customer}.{expires_at}.{}", alloy::hex::encode(mac))
    }

    /// Checks a signed reference at `now`.
    pub fn verify(&self, signed: &str, now: u64) -> Result<CustomerRef, RefError> {
        let mut parts = signed.rsplitn(3, '.');
        let (Some(mac), Some(expires_at), Some(customer)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(RefError::BadSignedForm);
        };
        let customer = CustomerRef::parse(customer)?;
        // Digits beyond u64 are the signed form all the same, just never one a signer made
        // (it signs u64 times): refused as a MAC that does not verify, not as malformed.
        let expires_at: u64 = match expires_at.parse() {
            Ok(t) => t,
            Err(_) if !expires_at.is_empty() && expires_at.bytes().all(|b| b.is_ascii_digit()) => return Err(RefError::BadMac),
            Err(_) => return Err(RefError::BadSignedForm),
        };
        let mac = alloy::hex::decode(mac).ok().filter(|m| m.len() == 32).ok_or(RefError::BadSignedForm)?;
        // Constant-time comparison (hmac's verify_slice).
        self.mac(customer.as_str(), expires_at).verify_slice(&mac).map_err(|_| RefError::BadMac)?;
        if expires_at < now {
            return Err(RefError::Expired(expires_at));
        }
        Ok(customer)
    }
}

/// Reads the `customer_ref` a checkout request carries: with the merchant's API key
/// (`trusted`) a bare reference, and from anyone the signed form checked by `signer` at `now`.
pub fn accept(text: &str, trusted: bool, signer: Option<&RefSigner>, now: u64) -> Result<CustomerRef, RefError> {
    if !text.contains('.') {
        // A bare reference: its own shape is checked first, so a malformed one says so.
        let customer = CustomerRef::parse(text)?;
        return if trusted { Ok(customer) } else { Err(RefError::NeedsKey) };
    }
    signer.ok_or(RefError::NoSecret)?.verify(text, now)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn references_outside_the_set_or_the_length_are_refused() {
        for bad in ["", "a b", "ü", "a.b", "a/b", "a+b", &"x".repeat(MAX_LEN + 1), "a\n"] {
            assert_eq!(CustomerRef::parse(bad), Err(RefError::Malformed), "{bad:?}");
        }
        for good in ["u", "user_42", "acct:9f3@shop-1", &"x".repeat(MAX_LEN)] {
            assert_eq!(CustomerRef::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn a_signed_reference_verifies_until_it_expires_and_not_after_any_change() {
        let signer = RefSigner::new("merchant secret");
        let customer = CustomerRef::parse("user_42").unwrap();
        let signed = signer.sign(&customer, 1_000);
        assert_eq!(signer.verify(&signed, 1_000), Ok(customer.clone()));
        assert_eq!(signer.verify(&signed, 1_001), Err(RefError::Expired(1_000)));
        // Another secret, another reference, a later expiry, a flipped MAC digit.
        assert_eq!(RefSigner::new("other").verify(&signed, 0), Err(RefError::BadMac));
        assert_eq!(signer.verify(&signed.replacen("user_42", "user_43", 1), 0), Err(RefError::BadMac));
        assert_eq!(signer.verify(&signed.replacen(".1000.", ".9999.", 1), 0), Err(RefError::BadMac));
        let mut flipped = signed.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(signer.verify(&flipped, 0), Err(RefError::BadMac));
        assert_eq!(signer.verify("user_42.1000", 0), Err(RefError::BadSignedForm));
        assert_eq!(signer.verify("user_42.soon.00", 0), Err(RefError::BadSignedForm));
        // An expiry of digits past u64 is well-formed (the API's pattern allows 20 digits)
        // but no signer made it: the MAC cannot verify.
        let mac = &signed[signed.rfind('.').unwrap() + 1..];
        assert_eq!(signer.verify(&format!("user_42.20405860904116525080.{mac}"), 0), Err(RefError::BadMac));
    }

    #[test]
    fn only_the_api_key_may_pass_a_bare_reference() {
        let signer = RefSigner::new("s");
        assert_eq!(accept("user_42", false, Some(&signer), 0), Err(RefError::NeedsKey));
        assert_eq!(accept("user_42", true, None, 0).unwrap().as_str(), "user_42");
        assert_eq!(accept("bad ref", true, None, 0), Err(RefError::Malformed));
        let signed = signer.sign(&CustomerRef::parse("user_42").unwrap(), 10);
        assert_eq!(accept(&signed, false, Some(&signer), 5).unwrap().as_str(), "user_42");
        assert_eq!(accept(&signed, false, None, 5), Err(RefError::NoSecret));
    }

    /// Over seeded random references and times: a signed reference checks out as itself
    /// until its expiry and as expired after, and any one changed character fails.
    #[test]
    fn any_reference_round_trips_through_its_signed_form() {
        const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:@-";
        let mut rng = StdRng::seed_from_u64(28);
        let signer = RefSigner::new("k");
        for _ in 0..2_000 {
            let len = rng.random_range(1..=MAX_LEN);
            let text: String = (0..len).map(|_| SET[rng.random_range(0..SET.len())] as char).collect();
            let customer = CustomerRef::parse(&text).unwrap();
            let (expires_at, now) = (rng.random::<u64>() >> rng.random_range(0..64), rng.random::<u64>() >> rng.random_range(0..64));
            let signed = signer.sign(&customer, expires_at);
            let checked = signer.verify(&signed, now);
            if now <= expires_at {
                assert_eq!(checked, Ok(customer))
            } else {
                assert_eq!(checked, Err(RefError::Expired(expires_at)))
            }
            let mut bytes = signed.into_bytes();
            let at = rng.random_range(0..bytes.len());
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(signer.verify(&changed, 0).is_err(), "{changed}");
        }
    }
}
