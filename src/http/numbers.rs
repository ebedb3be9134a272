//! JSON integers as JSON Schema counts them: `1104.0` is the integer 1104 (an `integer`
//! in the OpenAPI document accepts it), so request bodies take integral numbers written
//! with a fraction too; `1.5`, negatives and out-of-range values are refused.

use serde::{Deserialize, Deserializer, de::Error};

fn to_u32<E: Error>(n: &serde_json::Number) -> Result<u32, E> {
    let value = match n.as_u64() {
        Some(u) => Some(u),
        None => n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX)).map(|f| f as u64),
    };
    value.and_then(|u| u32::try_from(u).ok()).ok_or_else(|| E::custom(format!("expected an integer from 0 to {}, got {n}", u32::MAX)))
}

/// A `u32` from any integral JSON number.
pub fn u32_integral<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    to_u32(&serde_json::Number::deserialize(d)?)
}

/// An optional `u32` from any integral JSON number or `null`.
pub fn opt_u32_integral<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map(|n| to_u32(&n)).transpose()
}
