//! Identifiers, parsed once where they enter (the API, a log, a row) and carried unchanged
//! to storage and back: an order id is an [`OrderId`] from the checkout handler to the
//! webhook body, never an `i64` here and a `String` there. (A plan id is the `u32` the
//! configuration, the catalog, the quote's `uint32 planId` and every row and event carry
//! alike; it never changes type on its way, so it has no wrapper.)

use std::{fmt, str::FromStr};

use alloy::primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An order's id: the `uint256` a quote and its `OrderPaid` log carry.
///
/// Ids this service issues fit in 63 bits (the `orders` table keys them as `BIGINT`); a
/// payment can name any `uint256` (an order nobody issued), so the type holds the full
/// width. JSON carries it as a decimal string, as wallets and explorers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OrderId(U256);

impl OrderId {
    /// The id of an order this service issued (a reserved database id).
    pub fn issued(id: i64) -> Self {
        Self(U256::from(id.max(0) as u64))
    }

    /// The id as the contract carries it.
    pub const fn as_u256(self) -> U256 {
        self.0
    }

    /// The `orders` table's key for this id; `None` for an id too wide to be one this
    /// service issued (then no order matches it).
    pub fn db_key(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    /// The id as 32 big-endian bytes (`payments.order_id`).
    pub fn to_be_bytes(self) -> [u8; 32] {
        self.0.to_be_bytes::<32>()
    }

    /// Reads 32 big-endian bytes (`payments.order_id`); `None` for another length.
    pub fn from_be_slice(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 32).then(|| Self(U256::from_be_slice(bytes)))
    }

    /// The id as the first 8 bytes of the events it causes sort by (its low 64 bits).
    pub fn sort_key(self) -> u64 {
        self.0.as_limbs()[0]
    }
}

impl From<U256> for OrderId {
    fn from(id: U256) -> Self {
        Self(id)
    }
}

impl From<OrderId> for U256 {
    fn from(id: OrderId) -> Self {
        id.0
    }
}

impl PartialEq<u64> for OrderId {
    fn eq(&self, other: &u64) -> bool {
        self.0 == U256::from(*other)
    }
}

impl PartialOrd<u64> for OrderId {
    fn partial_cmp(&self, other: &u64) -> Option<std::cmp::Ordering> {
        self.0.partial_cmp(&U256::from(*other))
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(String);

impl FromStr for OrderId {
    type Err = IdError;

    /// Parses a decimal id (as JSON and the `cause_order_id` column carry it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > 78 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError(format!("{text:?} is not an order id (a decimal number)")));
        }
        U256::from_str_radix(text, 10).map(Self).map_err(|_| IdError(format!("{text:?} is out of range for an order id")))
    }
}

impl Serialize for OrderId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A checkout's public id: `chk_`, its order id as 16 hex digits, and 32 random hex
/// digits. The random part makes it unguessable; the order id in front makes new ids sort
/// after older ones, so storing one appends to the index instead of rewriting a random
/// page of it (as sequence-first ids such as UUIDv7 do).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CheckoutId(String);

impl CheckoutId {
    /// A new id for the order `order`.
    pub fn new(order: OrderId) -> Self {
        use rand::Rng;
        let bytes: [u8; 16] = rand::rng().random();
        Self(format!("chk_{:016x}{}", order.sort_key(), alloy::hex::encode(bytes)))
    }

    /// Takes an id as stored (rows written by this service hold only ids it made).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CheckoutId {
    type Err = IdError;

    /// Parses an id of the shape [`CheckoutId::new`] makes: `chk_` and 48 lowercase hex digits.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = text.strip_prefix("chk_").is_some_and(|hex| hex.len() == 48 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        if valid { Ok(Self(text.to_string())) } else { Err(IdError(format!("{text:?} is not a checkout id (chk_ and 48 hex digits)"))) }
    }
}

impl fmt::Display for CheckoutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CheckoutId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_id_round_trips_through_json_bytes_and_the_orders_key() {
        let id = OrderId::issued(4_242);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"4242\"");
        assert_eq!(serde_json::from_str::<OrderId>("\"4242\"").unwrap(), id);
        assert_eq!(OrderId::from_be_slice(&id.to_be_bytes()), Some(id));
        assert_eq!(id.db_key(), Some(4_242));
        let wide = OrderId::from(U256::MAX);
        assert_eq!(wide.db_key(), None, "an id wider than 63 bits is no issued order's");
        assert_eq!(wide.to_string().parse::<OrderId>().unwrap(), wide);
    }

    #[test]
    fn bad_order_ids_are_refused_with_the_text() {
        for bad in ["", "-1", "0x10", "1e3", " 7", &"9".repeat(79)] {
            let err = bad.parse::<OrderId>().unwrap_err();
            assert!(err.to_string().contains("order id"), "{bad:?}: {err}");
        }
        assert!(serde_json::from_str::<OrderId>("7").is_err(), "JSON carries it as a string");
    }

    #[test]
    fn a_checkout_id_sorts_by_its_order_and_is_unguessable() {
        let a = CheckoutId::new(OrderId::issued(1));
        let b = CheckoutId::new(OrderId::issued(2));
        assert!(a < b);
        assert_eq!(a.as_str().len(), 4 + 16 + 32);
        assert!(a.as_str().starts_with("chk_0000000000000001"));
        assert_ne!(CheckoutId::new(OrderId::issued(1)), a);
        assert_eq!(a.as_str().parse::<CheckoutId>().unwrap(), a);
        for bad in ["chk_", "chk_XYZ", "evt_0000000000000001", &format!("{a}0")] {
            assert!(bad.parse::<CheckoutId>().is_err(), "{bad}");
        }
    }
}
