//! The states of orders, checkouts, payments, subscriptions and badge jobs, and a badge
//! job's action: enums whose names are written once, here, and stored as the same text
//! the tables' `CHECK` constraints list.

/// Declares a state enum stored as text: serde snake case, `as_str`, `Display` and
/// `FromStr` all give the same text, which is the one the table's `CHECK` constraint lists.
/// Used here and by the store modules that own a state column.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        // Stored and serialized as the variant's name in snake case (`PastDue` is
        // `past_due`); the test below checks that it equals the text written here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The stored text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::states::UnknownState;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::states::UnknownState { kind: stringify!($name), text: text.to_string() }),
                }
            }
        }
    };
}
// State enums that live with their store owner (`store::subscriptions`, `store::badges`, …)
// are declared with it too.
pub(crate) use text_enum;

/// A stored text that is none of a state's values (a corrupt row, or a row written by a
/// newer version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: unknown value {text:?}")]
pub struct UnknownState {
    /// The state's type.
    pub kind: &'static str,
    /// The text.
    pub text: String,
}

text_enum! {
    /// An order as stored (an open order past its deadline is still `open`; its checkout
    /// shows it `expired`).
    OrderStatus {
        /// Waiting for its payment.
        Open => "open",
        /// A payment matched it.
        Paid => "paid",
        /// Kept for older rows.
        Expired => "expired",
    }
}

text_enum! {
    /// A checkout as its page and the API show it.
    CheckoutStatus {
        /// The quote can be paid.
        Open => "open",
        /// A payment matched it.
        Paid => "paid",
        /// The quote expired unpaid.
        Expired => "expired",
    }
}

text_enum! {
    /// A payment as the watcher recorded it.
    PaymentStatus {
        /// Seen, not yet confirmations deep.
        Detected => "detected",
        /// Confirmations deep.
        Confirmed => "confirmed",
        /// Its block left the canonical chain.
        Reorged => "reorged",
    }
}

text_enum! {
    /// A subscription's state.
    SubscriptionStatus {
        /// A card trial.
        Trialing => "trialing",
        /// Paid time runs.
        Active => "active",
        /// A card renewal failed; access runs to the period's end.
        PastDue => "past_due",
        /// Ended.
        Expired => "expired",
        /// Will not renew; access runs to the period's end.
        Canceled => "canceled",
    }
}

text_enum! {
    /// What a badge job asks of the badge contract.
    BadgeAction {
        /// Mint a badge.
        Issue => "issue",
        /// Change a badge's tier or expiry.
        Update => "update",
        /// Revoke a badge.
        Revoke => "revoke",
        /// Move a badge to another wallet.
        Move => "move",
    }
}

text_enum! {
    /// A badge job's progress.
    BadgeJobStatus {
        /// Waiting for a batch.
        Queued => "queued",
        /// In a broadcast batch.
        Sent => "sent",
        /// Its batch is mined, not yet confirmations deep.
        Mined => "mined",
        /// Done.
        Confirmed => "confirmed",
        /// Failed; retried later.
        Failed => "failed",
        /// The contract refuses it; not retried.
        Rejected => "rejected",
        /// A later job for the same wallet replaced it.
        Superseded => "superseded",
    }
}

#[cfg(test)]
mod tests {
    use std::{fmt, str::FromStr};

    use serde::Serialize;

    use super::*;

    #[test]
    fn every_state_parses_back_and_serializes_as_stored() {
        for s in SubscriptionStatus::ALL {
            assert_eq!(s.as_str().parse::<SubscriptionStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        fn same<T: Serialize + FromStr + PartialEq + fmt::Debug + Copy>(all: &[T], text: fn(T) -> &'static str) {
            for s in all {
                assert_eq!(serde_json::to_value(s).unwrap(), text(*s), "{s:?} serializes as it is stored");
                assert!(text(*s).parse::<T>().ok() == Some(*s), "{s:?} parses back");
            }
        }
        same(OrderStatus::ALL, OrderStatus::as_str);
        same(CheckoutStatus::ALL, CheckoutStatus::as_str);
        same(PaymentStatus::ALL, PaymentStatus::as_str);
        same(SubscriptionStatus::ALL, SubscriptionStatus::as_str);
        same(BadgeAction::ALL, BadgeAction::as_str);
        same(BadgeJobStatus::ALL, BadgeJobStatus::as_str);
        assert_eq!(SubscriptionStatus::PastDue.as_str(), "past_due");
        let err = "paused".parse::<SubscriptionStatus>().unwrap_err();
        assert_eq!(err.to_string(), "SubscriptionStatus: unknown value \"paused\"");
    }
}
