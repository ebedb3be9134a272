//! Path and query values that several resources take, parsed at the edge: a wallet
//! address and a list's page size. A bad one is a 400 in the one error shape.

use std::str::FromStr;

use alloy::primitives::Address;

use super::error::ApiError;

/// Returns the address `text` names (`field` names it in the error): 0x and 40 hex digits,
/// not the zero address.
pub(crate) fn parse_wallet(field: &str, text: &str) -> Result<Address, ApiError> {
    let text = text.trim();
    if !(text.len() == 42 && text.starts_with("0x")) {
        return Err(ApiError::invalid(format!("{field}: {text:?} is not an address (0x and 40 hex digits)")));
    }
    let address = Address::from_str(text).map_err(|_| ApiError::invalid(format!("{field}: {text:?} is not an address (0x and 40 hex digits)")))?;
    if address == Address::ZERO {
        return Err(ApiError::invalid(format!("{field}: the zero address cannot subscribe")));
    }
    Ok(address)
}

/// Returns a list route's page size: `limit`, 1–500, default 100.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=500).contains(&limit) { Ok(limit) } else { Err(ApiError::invalid("limit must be between 1 and 500")) }
}
