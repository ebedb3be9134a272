//! The events the service writes to its outbox (and webhooks deliver): every name is
//! written once, here, and used by every producer, by the endpoints' filters and by the
//! API's event-type checks; every event's `data` is one typed payload ([`Payload`]),
//! serialized in one place ([`Payload::body`]) and published in the OpenAPI document
//! ([`schema`]).

use std::{fmt, str::FromStr};

use crate::billing::customers::CustomerRef;

mod badge;
mod payment;
pub mod schema;
mod subscription;

pub use badge::{BadgeCause, BadgeChanged, BadgeJobDone, BadgeMinted, BadgeMoved, BadgeRevoked, BadgeUpdated};
pub use payment::{CheckoutCreated, PaymentConfirmed, PaymentDetected, PaymentRefunded, PaymentReorged, PaymentUnmatched};
pub use subscription::{
    CardChange, CardRenewalFailed, CardStatus, CardTakenBack, ChangeShape, ChangeSource, CompGranted, DowngradeTookEffect, ExpiredReason, MandateChange,
    MandateRenewalFailed, MemberCanceled, MemberEnded, Moved, PaymentChange, PaymentTakenBack, PeriodEnded, PlanSwitch, RenewalFailure, RenewalNotice,
    RenewalOffReason, SubscriptionActivated, SubscriptionCanceled, SubscriptionCompGranted, SubscriptionDowngradeScheduled, SubscriptionExpired,
    SubscriptionExpiring, SubscriptionMoved, SubscriptionRenewalAtRisk, SubscriptionRenewalDisabled, SubscriptionRenewalEnabled, SubscriptionRenewalFailed,
    SubscriptionRenewalUpcoming, SubscriptionRenewed, SubscriptionReversed, SubscriptionSwitchCanceled, SubscriptionSwitchScheduled, SubscriptionUncanceled,
    SubscriptionUpgraded, TakeBackReason,
};

macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// An event's type, as its body's `type` and the webhook's filter name it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$doc])* $variant,)+
        }

        impl EventType {
            /// Every event type, in the order the README documents them.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The event's name (`payment.confirmed`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }

        /// An event's `data`: one variant per event type, holding the payload type of the
        /// same name. A payload is part of the contract with the merchant's application:
        /// from now on it only gains fields; none is renamed, retyped or removed.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Payload {
            $($(#[$doc])* $variant($variant),)+
        }

        impl Payload {
            /// The event type this payload is the `data` of.
            pub const fn event_type(&self) -> EventType {
                match self {
                    $(Self::$variant(_) => EventType::$variant,)+
                }
            }

            /// Returns the stored (and delivered) body of event `id` with this payload:
            /// `{"id", "type", "data"}`. The one place an event body is serialized.
            pub fn body(&self, id: &str) -> String {
                self.body_for(id, None)
            }

            /// [`Self::body`] with the merchant's customer reference added to `data` as
            /// `customer_ref` (left out when there is none): every event a checkout, a
            /// payment or a member causes carries the customer it belongs to
            /// ([`crate::billing::customers`]).
            pub fn body_for(&self, id: &str, customer: Option<&CustomerRef>) -> String {
                let event_type = self.event_type().as_str();
                match self {
                    $(Self::$variant(data) => envelope(id, event_type, &ForCustomer { data, customer_ref: customer }),)+
                }
            }
        }

        $(impl From<$variant> for Payload {
            fn from(data: $variant) -> Self {
                Self::$variant(data)
            }
        })+

        /// Adds each event type's payload schema (and the schemas it refers to) to `out`,
        /// with its event type and its schema's name.
        fn payload_schemas(out: &mut Vec<(EventType, String)>, components: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
            use utoipa::{PartialSchema, ToSchema};
            $(
                out.push((EventType::$variant, <$variant as ToSchema>::name().into_owned()));
                components.push((<$variant as ToSchema>::name().into_owned(), <$variant as PartialSchema>::schema()));
                <$variant as ToSchema>::schemas(components);
            )+
        }
    };
}

event_types! {
    /// A checkout was created and its quote signed.
    CheckoutCreated => "checkout.created",
    /// A payment's log was seen (not yet confirmed).
    PaymentDetected => "payment.detected",
    /// A payment is confirmations deep.
    PaymentConfirmed => "payment.confirmed",
    /// A payment's block left the canonical chain.
    PaymentReorged => "payment.reorged",
    /// A payment matched no order.
    PaymentUnmatched => "payment.unmatched",
    /// A payment was refunded by the merchant.
    PaymentRefunded => "payment.refunded",
    /// A first plan began.
    SubscriptionActivated => "subscription.activated",
    /// A plan was extended.
    SubscriptionRenewed => "subscription.renewed",
    /// A plan moved to a higher tier.
    SubscriptionUpgraded => "subscription.upgraded",
    /// A lower plan takes over at the period's end.
    SubscriptionDowngradeScheduled => "subscription.downgrade_scheduled",
    /// A plan ends soon (a reminder).
    SubscriptionExpiring => "subscription.expiring",
    /// A plan ended.
    SubscriptionExpired => "subscription.expired",
    /// A card plan will not renew.
    SubscriptionCanceled => "subscription.canceled",
    /// A canceled card plan renews again.
    SubscriptionUncanceled => "subscription.uncanceled",
    /// A card renewal failed.
    SubscriptionRenewalFailed => "subscription.renewal_failed",
    /// A member turned automatic renewal on (a signed mandate).
    SubscriptionRenewalEnabled => "subscription.renewal_enabled",
    /// A member turned automatic renewal off.
    SubscriptionRenewalDisabled => "subscription.renewal_disabled",
    /// An automatic renewal will be charged soon (date and amount).
    SubscriptionRenewalUpcoming => "subscription.renewal_upcoming",
    /// An automatic renewal's coming charge would fail today (reason and fix).
    SubscriptionRenewalAtRisk => "subscription.renewal_at_risk",
    /// A member scheduled a switch of plan or token for their next renewal.
    SubscriptionSwitchScheduled => "subscription.switch_scheduled",
    /// A member took back a scheduled switch.
    SubscriptionSwitchCanceled => "subscription.switch_canceled",
    /// The merchant gave free time.
    SubscriptionCompGranted => "subscription.comp_granted",
    /// A plan moved to another wallet.
    SubscriptionMoved => "subscription.moved",
    /// What a payment bought was taken back.
    SubscriptionReversed => "subscription.reversed",
    /// A badge was minted.
    BadgeMinted => "badge.minted",
    /// A badge's tier, expiry or holder changed.
    BadgeUpdated => "badge.updated",
    /// A badge was revoked.
    BadgeRevoked => "badge.revoked",
}

/// An event body as stored and delivered: `{"id", "type", "data"}`.
#[derive(serde::Serialize)]
struct Envelope<'a, D: serde::Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a D,
}

/// An event's `data` with the customer it belongs to.
#[derive(serde::Serialize)]
struct ForCustomer<'a, D: serde::Serialize> {
    #[serde(flatten)]
    data: &'a D,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_ref: Option<&'a CustomerRef>,
}

/// Serializes an event body from borrowed parts (no copy of `data`).
fn envelope(id: &str, event_type: &str, data: &impl serde::Serialize) -> String {
    serde_json::to_string(&Envelope { id, event_type, data }).expect("an event body serializes")
}

impl EventType {
    /// Every event name, for messages that list them.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|t| t.as_str())
    }

    /// Whether some event's name is `family` followed by a dot (`badge` for `badge.*`).
    pub fn is_family(family: &str) -> bool {
        Self::names().any(|t| t.strip_prefix(family).is_some_and(|rest| rest.starts_with('.')))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no event's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event {0:?}")]
pub struct UnknownEvent(pub String);

impl FromStr for EventType {
    type Err = UnknownEvent;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|t| t.as_str() == name).ok_or_else(|| UnknownEvent(name.to_string()))
    }
}

impl serde::Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_is_unique() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), *t);
        }
        let mut names: Vec<_> = EventType::names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert!("payment.paid".parse::<EventType>().is_err());
        assert!(EventType::is_family("subscription") && !EventType::is_family("sub"));
    }
}
