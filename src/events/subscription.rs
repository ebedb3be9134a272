//! The `data` of the `subscription.*` events. An event that several flows write (a payment,
//! a card, the merchant, the reminder pass) has one shape per flow, as it always had: its
//! payload is an enum of those shapes, serialized as the shape itself (published as
//! `oneOf`). Fields are declared in the order the stored JSON has always had them (sorted
//! by name); each shape only gains fields from now on.

use alloy::primitives::{Address, B256};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    ids::{CheckoutId, OrderId},
    states::SubscriptionStatus,
};

/// Who changed a subscription, for the shapes that say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// The card processor's webhook.
    Card,
    /// The merchant's API.
    Merchant,
    /// The member, from their account (`/v1/me/…`).
    Member,
    /// The service's renewer, charging a member's renewal mandate.
    Mandate,
}

/// Why a subscription ended (`subscription.expired`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpiredReason {
    /// Its paid period ran out.
    PeriodEnded,
    /// It was canceled and its period ran out.
    Canceled,
    /// A card renewal failed and its period ran out.
    RenewalFailed,
    /// The merchant revoked it.
    Revoked,
    /// The merchant refunded the payment that bought it.
    Refunded,
    /// The payment that bought it left the chain (a deep reorg).
    Reorged,
}

impl ExpiredReason {
    /// The reason's text (as serialized).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PeriodEnded => "period_ended",
            Self::Canceled => "canceled",
            Self::RenewalFailed => "renewal_failed",
            Self::Revoked => "revoked",
            Self::Refunded => "refunded",
            Self::Reorged => "reorged",
        }
    }
}

/// `activated`, `renewed`, `upgraded` or `downgrade_scheduled` by a confirmed payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentChange {
    /// The checkout of the order paid (null for an order not issued here).
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// Seconds credited from the old tier's unused time (upgrades).
    pub credit_seconds: u64,
    /// When the current tier's time ends (unix seconds).
    pub expires_at: u64,
    /// When a scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
    /// The order paid (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The payment's stable key (`chain:tx:log`).
    pub payment: String,
    /// Current plan.
    pub plan_id: u32,
    /// Expiry before the payment (null for a new subscription).
    pub previous_expires_at: Option<u64>,
    /// Current tier.
    pub tier: u8,
    /// The payment's transaction.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: B256,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `activated`, `renewed`, `upgraded` or `downgrade_scheduled` by a card event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CardChange {
    /// The processor's event id.
    pub card_event: String,
    /// The processor's subscription id, when the event names one.
    pub card_subscription: Option<String>,
    /// Seconds credited from the old tier's unused time (upgrades).
    pub credit_seconds: u64,
    /// When the current tier's time ends (unix seconds).
    pub expires_at: u64,
    /// When a scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
    /// Current plan.
    pub plan_id: u32,
    /// Expiry before the event (null for a new subscription).
    pub previous_expires_at: Option<u64>,
    /// The paid period's receipt (`GET /v1/receipts/{id}`, under `http.public_url` when
    /// set); absent for a free trial and for a plan change that paid nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_url: Option<String>,
    /// Always `card`.
    pub source: ChangeSource,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `renewed` when a scheduled downgrade took over at the end of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DowngradeTookEffect {
    /// Always `downgrade`.
    pub change: &'static str,
    /// When the new plan's time ends (unix seconds).
    pub expires_at: u64,
    /// The plan now current.
    pub plan_id: u32,
    /// When the previous plan's time ended.
    pub previous_expires_at: u64,
    /// The tier now current.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// A plan change, by a payment or a card event (the four change events' common shapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeShape {
    /// By a confirmed payment.
    Payment(PaymentChange),
    /// By a card event.
    Card(CardChange),
}

macro_rules! change_event {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident($shape:ty),)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(untagged)]
        pub enum $name {
            /// By a confirmed payment.
            Payment(PaymentChange),
            /// By a card event.
            Card(CardChange),
            $($(#[$vdoc])* $variant($shape),)*
        }

        impl From<ChangeShape> for $name {
            fn from(shape: ChangeShape) -> Self {
                match shape {
                    ChangeShape::Payment(data) => Self::Payment(data),
                    ChangeShape::Card(data) => Self::Card(data),
                }
            }
        }
    };
}

change_event!(
    /// `subscription.activated`: a first (or lapsed) plan began.
    SubscriptionActivated {}
);
change_event!(
    /// `subscription.renewed`: a plan was extended, or a scheduled downgrade took over.
    SubscriptionRenewed {
        /// A scheduled downgrade took over.
        Downgrade(DowngradeTookEffect),
    }
);
change_event!(
    /// `subscription.upgraded`: a plan moved to a higher tier at once.
    SubscriptionUpgraded {}
);
change_event!(
    /// `subscription.downgrade_scheduled`: a lower plan takes over at the period's end.
    SubscriptionDowngradeScheduled {}
);

/// `subscription.expiring`: a plan ends soon (a reminder, once per offset and period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SubscriptionExpiring {
    /// The reminder's offset: days before the end.
    pub days_before: u32,
    /// When the plan ends (unix seconds).
    pub expires_at: u64,
    /// Current plan.
    pub plan_id: u32,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `expired` by the reminder pass: the period ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PeriodEnded {
    /// When it ended (unix seconds).
    pub expired_at: u64,
    /// The plan that ended.
    pub plan_id: u32,
    /// `period_ended`, `canceled` or `renewal_failed`.
    pub reason: ExpiredReason,
    /// With `renewal_failed` after an automatic renewal: why its last charge failed
    /// (`insufficient_balance`, …, as in `subscription.renewal_failed`); null otherwise.
    pub renewal_failure: Option<RenewalFailure>,
    /// Its tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `expired` by the merchant: revoked, or the payment refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MemberEnded {
    /// Comped part of the expiry (0 once ended).
    pub comp_seconds: u64,
    /// When it ended (now; unix seconds).
    pub expires_at: u64,
    /// Always null once ended.
    pub next_expires_at: Option<u64>,
    /// Always null once ended.
    pub next_plan_id: Option<u32>,
    /// The plan that ended.
    pub plan_id: u32,
    /// The expiry it had.
    pub previous_expires_at: u64,
    /// `revoked` or `refunded`.
    pub reason: ExpiredReason,
    /// `expired`.
    pub status: SubscriptionStatus,
    /// Its tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// Why a payment's effects were taken back (`subscription.reversed`, and `expired` when
/// nothing was left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TakeBackReason {
    /// The payment left the chain (a reorg deeper than the confirmations).
    Reorged,
    /// The card processor refunded (part of) the payment.
    Refunded,
    /// The cardholder disputed the payment: the processor withdrew the disputed amount.
    Disputed,
    /// A dispute was closed in the merchant's favour: the time it took back is restored.
    DisputeWon,
}

/// A card payment's time taken back (a refund or a dispute) or given back (a dispute won),
/// in proportion to the amount: `subscription.reversed`, or `subscription.expired` when
/// nothing was left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CardTakenBack {
    /// The processor's event that did it (`evt_…`).
    pub card_event: String,
    /// The refunded charge or the dispute (`ch_…`, `dp_…`).
    pub card_object: String,
    /// The expiry afterwards (now when it ended; unix seconds).
    pub expires_at: u64,
    /// When a scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
    /// Current plan.
    pub plan_id: u32,
    /// The expiry before.
    pub previous_expires_at: u64,
    /// `refunded`, `disputed` or `dispute_won`.
    pub reason: TakeBackReason,
    /// Seconds taken back (`refunded`, `disputed`) or given back (`dispute_won`).
    pub seconds: u64,
    /// Always `card`.
    pub source: ChangeSource,
    /// The subscription's status afterwards.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `reversed` (or `expired`, when nothing was left): what a vanished payment bought was
/// taken back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentTakenBack {
    /// The checkout of the vanished payment's order (null for an order not issued here).
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// The expiry afterwards (now when it ended; unix seconds).
    pub expires_at: u64,
    /// When a scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The plan that takes over at `expires_at` (a scheduled downgrade).
    pub next_plan_id: Option<u32>,
    /// The vanished payment's order (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The vanished payment's stable key (`chain:tx:log`).
    pub payment: String,
    /// Current plan.
    pub plan_id: u32,
    /// The expiry before.
    pub previous_expires_at: u64,
    /// `reorged`.
    pub reason: TakeBackReason,
    /// The subscription's status afterwards.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The vanished payment's transaction.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: B256,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `subscription.expired`: a plan ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubscriptionExpired {
    /// Its period ran out (the reminder pass).
    PeriodEnded(PeriodEnded),
    /// The merchant ended it.
    Ended(MemberEnded),
    /// A vanished payment left nothing.
    TakenBack(PaymentTakenBack),
    /// A card refund or dispute left nothing.
    CardTakenBack(CardTakenBack),
}

/// `subscription.reversed`: what a payment bought was taken back (or a won dispute gave it
/// back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubscriptionReversed {
    /// An on-chain payment the chain no longer holds.
    Payment(PaymentTakenBack),
    /// A card refund or dispute.
    Card(CardTakenBack),
}

/// `canceled` (or `uncanceled`) by the merchant or the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MemberCanceled {
    /// Comped part of the expiry.
    pub comp_seconds: u64,
    /// When access ends (unix seconds).
    pub expires_at: u64,
    /// When a scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The plan that would take over at `expires_at`.
    pub next_plan_id: Option<u32>,
    /// Current plan.
    pub plan_id: u32,
    /// `merchant` or `member`.
    pub source: ChangeSource,
    /// `canceled`, or `active` again once uncanceled.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `canceled` or `uncanceled` by a card event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CardStatus {
    /// The processor's event id.
    pub card_event: String,
    /// The processor's subscription id.
    pub card_subscription: String,
    /// When the paid period ends (unix seconds).
    pub expires_at: u64,
    /// Current plan.
    pub plan_id: u32,
    /// Always `card`.
    pub source: ChangeSource,
    /// The subscription's status afterwards.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

impl CardStatus {
    /// Returns `renewal_failed` of this status with the failed invoice's fields.
    pub fn renewal_failed(
        self,
        amount_due: Option<u64>,
        attempt_count: Option<u64>,
        currency: Option<String>,
        next_payment_attempt: Option<u64>,
    ) -> CardRenewalFailed {
        CardRenewalFailed {
            amount_due,
            attempt_count,
            card_event: self.card_event,
            card_subscription: self.card_subscription,
            currency,
            expires_at: self.expires_at,
            next_payment_attempt,
            plan_id: self.plan_id,
            source: self.source,
            status: self.status,
            tier: self.tier,
            wallet: self.wallet,
        }
    }
}

/// `subscription.canceled`: a plan will not renew (access runs to the period's end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubscriptionCanceled {
    /// By the merchant or the member (`source`).
    Merchant(MemberCanceled),
    /// By the card processor.
    Card(CardStatus),
}

/// `subscription.uncanceled`: a canceled plan runs on again — a card plan the processor
/// renews again, or an on-chain plan whose member took back their cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubscriptionUncanceled {
    /// By the member.
    Member(MemberCanceled),
    /// By the card processor.
    Card(CardStatus),
}

/// A member's scheduled switch: the plan and token the next renewal buys from the end of the
/// current period (`subscription.switch_scheduled`), or the switch they took back
/// (`subscription.switch_canceled`). Nothing was paid and the current plan is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PlanSwitch {
    /// When the current period ends (unix seconds): the switch takes effect then.
    pub expires_at: u64,
    /// Current plan.
    pub plan_id: u32,
    /// `member`.
    pub source: ChangeSource,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// The plan the next renewal buys.
    pub switch_plan_id: u32,
    /// Its tier.
    pub switch_tier: u8,
    /// The token symbol the next renewal is paid in.
    pub switch_token: String,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `subscription.switch_scheduled`: the member chose the plan (another period of the same
/// tier, or a lower tier) and token their next renewal buys, from the period's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct SubscriptionSwitchScheduled(pub PlanSwitch);

/// `subscription.switch_canceled`: the member took back a scheduled switch; the next renewal
/// buys the current plan again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct SubscriptionSwitchCanceled(pub PlanSwitch);

/// `renewal_failed`: a card renewal failed; the plan is `past_due`. The processor's
/// invoice fields are null when the invoice lacks them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CardRenewalFailed {
    /// The invoice's amount due, in the currency's minor unit.
    pub amount_due: Option<u64>,
    /// The processor's attempt count.
    pub attempt_count: Option<u64>,
    /// The processor's event id.
    pub card_event: String,
    /// The processor's subscription id.
    pub card_subscription: String,
    /// The invoice's currency.
    pub currency: Option<String>,
    /// When the paid period ends (unix seconds).
    pub expires_at: u64,
    /// When the processor tries again (unix seconds).
    pub next_payment_attempt: Option<u64>,
    /// Current plan.
    pub plan_id: u32,
    /// Always `card`.
    pub source: ChangeSource,
    /// `past_due`.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// Why an automatic renewal charge failed (or would fail: `subscription.renewal_at_risk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RenewalFailure {
    /// The wallet holds less of the token than the charge.
    InsufficientBalance,
    /// The wallet's allowance to the checkout is below the charge.
    InsufficientAllowance,
    /// The plan's price in the token is above the mandate's cap: the member must consent
    /// again (the service never charges more than signed).
    PriceAboveCap,
    /// The member revoked the mandate.
    MandateRevoked,
    /// The mandate's `validUntil` has passed.
    MandateExpired,
    /// The mandate's charges are all used.
    ChargesExhausted,
    /// No guarded market rate for the token right now.
    RateUnavailable,
    /// The chain refused the charge for another reason (the message is logged).
    ChargeRefused,
}

impl RenewalFailure {
    /// Every reason, in the order documented.
    pub const ALL: [Self; 8] = [
        Self::InsufficientBalance,
        Self::InsufficientAllowance,
        Self::PriceAboveCap,
        Self::MandateRevoked,
        Self::MandateExpired,
        Self::ChargesExhausted,
        Self::RateUnavailable,
        Self::ChargeRefused,
    ];

    /// The stored and sent name (`insufficient_balance`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientBalance => "insufficient_balance",
            Self::InsufficientAllowance => "insufficient_allowance",
            Self::PriceAboveCap => "price_above_cap",
            Self::MandateRevoked => "mandate_revoked",
            Self::MandateExpired => "mandate_expired",
            Self::ChargesExhausted => "charges_exhausted",
            Self::RateUnavailable => "rate_unavailable",
            Self::ChargeRefused => "charge_refused",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// What the member can do about it, in a sentence.
    pub const fn fix(self) -> &'static str {
        match self {
            Self::InsufficientBalance => "Top up the wallet with the token before the next attempt.",
            Self::InsufficientAllowance => "Approve the checkout again for the renewal's bounded amount (turn automatic renewal off and on).",
            Self::PriceAboveCap => "The price rose above the limit you signed: turn automatic renewal on again to consent to the new price.",
            Self::MandateRevoked => "Automatic renewal was turned off in the wallet: turn it on again to keep renewing.",
            Self::MandateExpired => "The renewal permission ran out: turn automatic renewal on again.",
            Self::ChargesExhausted => "Every renewal you allowed was used: turn automatic renewal on again.",
            Self::RateUnavailable => "Nothing to do: the service tries again when the market rate is back.",
            Self::ChargeRefused => "Renew by hand from your account, or contact the merchant.",
        }
    }

    /// Whether trying again can succeed without the member signing anything new.
    pub const fn retryable(self) -> bool {
        matches!(self, Self::InsufficientBalance | Self::InsufficientAllowance | Self::RateUnavailable | Self::ChargeRefused)
    }
}

/// `renewal_failed` of an automatic renewal: the charge of the member's mandate failed (or
/// was not sent, its simulation failing). The plan is unchanged; it runs to `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MandateRenewalFailed {
    /// The charge it would have taken, in the token's smallest unit (decimal string; null
    /// when no rate gave a price).
    pub amount: Option<String>,
    /// Attempts so far for this period.
    pub attempt_count: u64,
    /// When the paid period ends (unix seconds).
    pub expires_at: u64,
    /// What the member can do about it.
    pub fix: String,
    /// The mandate (its EIP-712 digest, `0x…`).
    pub mandate_id: String,
    /// When the renewer tries again (unix seconds); null when only the member can fix it.
    pub next_attempt_at: Option<u64>,
    /// Current plan.
    pub plan_id: u32,
    /// Why: `insufficient_balance`, `insufficient_allowance`, `price_above_cap`,
    /// `mandate_revoked`, `mandate_expired`, `charges_exhausted`, `rate_unavailable`,
    /// `charge_refused`.
    pub reason: RenewalFailure,
    /// Always `mandate`.
    pub source: ChangeSource,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The token charged.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// A member turned automatic renewal on (`subscription.renewal_enabled`) or off
/// (`subscription.renewal_disabled`): the mandate and its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MandateChange {
    /// When the paid period ends (unix seconds): the first charge is taken before it.
    pub expires_at: u64,
    /// The mandate (its EIP-712 digest, `0x…`).
    pub mandate_id: String,
    /// The most one charge may take, smallest unit (decimal string).
    pub max_amount: String,
    /// Charges the mandate allows.
    pub max_charges: u32,
    /// The plan each charge renews.
    pub plan_id: u32,
    /// Why it went off (`subscription.renewal_disabled`; null in `renewal_enabled`):
    /// `turned_off` (the member), `canceled` (the plan was canceled), `plan_changed` (a
    /// payment or a scheduled switch made the next renewal another plan), `token_changed`
    /// (a scheduled switch to another token).
    pub reason: Option<RenewalOffReason>,
    /// `member`, or `mandate` when the service stopped it after a plan change.
    pub source: ChangeSource,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The token charged.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// When no charge is possible any more (unix seconds).
    pub valid_until: u64,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// Why automatic renewal went off without a failed charge (`subscription.renewal_disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RenewalOffReason {
    /// The member turned it off.
    TurnedOff,
    /// The plan was canceled (by the member or the merchant): a canceled plan does not renew.
    Canceled,
    /// The next renewal is another plan now (an upgrade, a paid lower plan, a scheduled
    /// switch): the mandate signed for the old plan is not charged; the member consents
    /// again for the new one.
    PlanChanged,
    /// A scheduled switch pays the next renewal in another token than the mandate's.
    TokenChanged,
}

impl RenewalOffReason {
    /// The stored and sent name (`plan_changed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TurnedOff => "turned_off",
            Self::Canceled => "canceled",
            Self::PlanChanged => "plan_changed",
            Self::TokenChanged => "token_changed",
        }
    }
}

/// `subscription.renewal_enabled`: the member signed a renewal mandate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct SubscriptionRenewalEnabled(pub MandateChange);

/// `subscription.renewal_disabled`: the member turned automatic renewal off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct SubscriptionRenewalDisabled(pub MandateChange);

/// What the member is told before an automatic renewal's charge: the date and the amount
/// (`subscription.renewal_upcoming`), and when a check shows it would fail, why and how to
/// fix it (`subscription.renewal_at_risk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RenewalNotice {
    /// The charge at today's price, in the token's smallest unit (decimal string; null when
    /// no rate gave a price).
    pub amount: Option<String>,
    /// When the charge is taken (unix seconds).
    pub charge_at: u64,
    /// When the paid period ends (unix seconds).
    pub expires_at: u64,
    /// What the member can do (at risk only).
    pub fix: Option<String>,
    /// The mandate (its EIP-712 digest, `0x…`).
    pub mandate_id: String,
    /// The most the charge may take (the signed cap), smallest unit.
    pub max_amount: String,
    /// The plan the charge renews.
    pub plan_id: u32,
    /// Why the charge would fail (at risk only): a `renewal_failed` reason.
    pub reason: Option<RenewalFailure>,
    /// Always `mandate`.
    pub source: ChangeSource,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The token charged.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// The charge's worth in US dollars at today's rate (decimal string; null without one).
    pub usd_value: Option<String>,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `subscription.renewal_upcoming`: an automatic renewal will be charged on `charge_at`, for
/// `amount` of the token (`usd_value` in dollars), at most the signed cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct SubscriptionRenewalUpcoming(pub RenewalNotice);

/// `subscription.renewal_at_risk`: the coming charge would fail today: `reason` and `fix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct SubscriptionRenewalAtRisk(pub RenewalNotice);

/// `subscription.renewal_failed`: a card renewal failed (the plan is `past_due`), or an
/// automatic renewal's charge failed (with its reason and next attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubscriptionRenewalFailed {
    /// By the card processor.
    Card(CardRenewalFailed),
    /// A renewal mandate's charge.
    Mandate(MandateRenewalFailed),
}

/// `comp_granted`: the merchant gave free time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CompGranted {
    /// Comped part of the expiry, after the grant.
    pub comp_seconds: u64,
    /// Days granted.
    pub days: u32,
    /// The expiry afterwards (unix seconds).
    pub expires_at: u64,
    /// The grant's ledger id.
    pub grant_id: i64,
    /// When a scheduled plan's time ends (moved by the grant too).
    pub next_expires_at: Option<u64>,
    /// The plan that takes over at `expires_at`.
    pub next_plan_id: Option<u32>,
    /// Current plan.
    pub plan_id: u32,
    /// The expiry before.
    pub previous_expires_at: u64,
    /// The merchant's reason.
    pub reason: String,
    /// Seconds granted.
    pub seconds: u64,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The member's wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `comp_granted`: see [`CompGranted`].
pub type SubscriptionCompGranted = CompGranted;

/// `moved`: a plan moved to another wallet (a member who lost a key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Moved {
    /// Comped part of the expiry.
    pub comp_seconds: u64,
    /// When the current tier's time ends (unix seconds).
    pub expires_at: u64,
    /// The wallet it left.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub from: Address,
    /// When a scheduled plan's time ends.
    pub next_expires_at: Option<u64>,
    /// The plan that takes over at `expires_at`.
    pub next_plan_id: Option<u32>,
    /// Current plan.
    pub plan_id: u32,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Current tier.
    pub tier: u8,
    /// The wallet it is on now.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: Address,
    /// The member's wallet (the new one).
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `moved`: see [`Moved`].
pub type SubscriptionMoved = Moved;
