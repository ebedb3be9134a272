//! Webhooks out: merchant endpoints, and the delivery worker that turns every outbox event
//! into signed (Standard Webhooks) deliveries, retried on a schedule of about three days,
//! strictly in order per endpoint, every attempt logged.
//!
//! - [`endpoints`]: registering endpoints (id and secret), secret rotation, redelivery.
//! - [`delivery`]: fan-out of the outbox into deliveries and the sending itself.
//! - [`signing`]: `webhook-signature` per the Standard Webhooks specification, and the
//!   keys that sign for an endpoint.
//! - [`targets`]: the SSRF guard (public addresses only unless the operator allows more).
//!
//! Storage (endpoints, deliveries, attempts and the delivery log) is
//! [`crate::store::webhooks`]'s; nothing here holds SQL.

pub mod delivery;
pub mod endpoints;
pub mod signing;
pub mod targets;

use crate::events::EventType;

/// Returns whether an endpoint with `filter` (None: every event) takes `event_type`. A
/// filter entry is an event name or a family such as `subscription.*`.
pub fn filter_matches(filter: Option<&[String]>, event_type: &str) -> bool {
    let Some(filter) = filter else { return true };
    filter.iter().any(|f| match f.strip_suffix(".*") {
        Some(family) => event_type.strip_prefix(family).is_some_and(|rest| rest.starts_with('.')),
        None => f == event_type,
    })
}

/// Checks an event filter: known names or families, no duplicates, not empty.
pub fn check_filter(filter: &[String]) -> Result<Vec<String>, String> {
    if filter.is_empty() {
        return Err("event_types must name at least one event (leave it out to receive every event)".into());
    }
    let mut out: Vec<String> = Vec::new();
    for f in filter {
        let known = match f.strip_suffix(".*") {
            Some(family) => EventType::is_family(family),
            None => f.parse::<EventType>().is_ok(),
        };
        if !known {
            return Err(format!("event_types: unknown event {f:?}; known events: {}", EventType::names().collect::<Vec<_>>().join(", ")));
        }
        if !out.contains(f) {
            out.push(f.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_names_and_families() {
        let f = vec!["payment.confirmed".to_string(), "badge.*".to_string()];
        assert!(filter_matches(Some(&f), "payment.confirmed"));
        assert!(filter_matches(Some(&f), "badge.minted"));
        assert!(!filter_matches(Some(&f), "payment.detected"));
        assert!(!filter_matches(Some(&f), "badgex.minted"));
        assert!(filter_matches(None, "anything"));
        assert!(check_filter(&f).is_ok());
        assert!(check_filter(&["payment.nope".into()]).unwrap_err().contains("payment.nope"));
        assert!(check_filter(&["nope.*".into()]).is_err());
        assert!(check_filter(&[]).is_err());
    }
}
