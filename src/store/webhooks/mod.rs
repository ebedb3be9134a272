//! Owner of the webhook tables: `webhook_endpoints` ([`endpoints`]), `webhook_deliveries`
//! and `webhook_attempts` ([`deliveries`]). Every statement on them is here, for both
//! databases (one sqlx text serves SQLite and PostgreSQL); `notify` keeps the logic (which
//! endpoint takes which event, signing, the retry schedule, the SSRF guard) and calls these
//! typed functions. A delivery's state is a [`DeliveryStatus`], bound as a parameter and
//! decoded from the row, never compared as text.

pub mod deliveries;
pub mod endpoints;

use crate::states::text_enum;

text_enum! {
    /// A delivery's state (`webhook_deliveries.status`): `pending`, then exactly one of the
    /// others.
    DeliveryStatus {
        /// Queued: sent (again) when it is due and every earlier delivery to its endpoint
        /// is done.
        Pending => "pending",
        /// The endpoint answered 2xx.
        Delivered => "delivered",
        /// Given up: the retry schedule ran out, or the endpoint answered 410 Gone.
        Failed => "failed",
        /// The endpoint was disabled or deleted while it waited.
        Canceled => "canceled",
    }
}

/// Decodes a stored delivery state; a text none of the states have is a corrupt row.
fn delivery_status(text: &str) -> Result<DeliveryStatus, super::StoreError> {
    text.parse().map_err(|_| super::StoreError::Corrupt("webhook_deliveries.status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_states_are_stored_as_the_check_constraint_lists_them() {
        let texts: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["pending", "delivered", "failed", "canceled"]);
        for s in DeliveryStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str(), "{s:?} serializes as it is stored");
            assert_eq!(delivery_status(s.as_str()).unwrap(), *s, "{s:?} decodes back");
        }
        assert!(delivery_status("sent").is_err());
    }
}
