//! A checkout's progress: from the open quote to the badge on chain. Computed in one
//! place ([`progress`]) for the checkout view and its event stream alike, from the order,
//! the payment matched to it (`payments`), the activation it made (`activations`) and the
//! badge job that followed (`badge_jobs`).

use std::future::Future;

use alloy::primitives::B256;
use serde::Serialize;

use crate::{
    states::{CheckoutStatus, OrderStatus},
    store::{
        Db, StoreError, badges,
        ledger::payments::{self, OrderPayment},
        orders::StoredOrder,
        subscriptions::{self, ActivationKind},
    },
};

/// Where a checkout stands (serialized as [`Stage::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Quoted, not paid (yet).
    Open,
    /// The quote's deadline passed unpaid.
    Expired,
    /// A payment is in a block without confirmations past its own.
    Detected,
    /// A payment is gathering confirmations.
    Confirming,
    /// The payment is confirmed and the plan active.
    Active,
    /// The badge change for the plan is on chain.
    BadgeIssued,
}

impl Stage {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Expired => "expired",
            Self::Detected => "detected",
            Self::Confirming => "confirming",
            Self::Active => "active",
            Self::BadgeIssued => "badge_issued",
        }
    }
}

/// A checkout's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutProgress {
    /// Where it stands.
    pub stage: Stage,
    /// Confirmations the payment has.
    pub confirmations: u64,
    /// Confirmations required.
    pub required: u64,
    /// Payment transaction.
    pub tx_hash: Option<B256>,
    /// Badge transaction, once issued.
    pub badge_tx_hash: Option<B256>,
    /// Plan expiry, once active.
    pub expires_at: Option<u64>,
    /// Nothing more will change: the badge is issued, the plan is active and no badge
    /// change is due (a scheduled downgrade), or the quote expired unpaid.
    pub done: bool,
}

impl CheckoutProgress {
    /// The progress of a checkout just quoted.
    pub fn open(required: u64) -> Self {
        Self { stage: Stage::Open, confirmations: 0, required, tx_hash: None, badge_tx_hash: None, expires_at: None, done: false }
    }
}

/// Returns the checkout's status at `now`: the stored one, except that an open order past
/// its deadline is `expired`.
pub fn status(order: &StoredOrder, now: u64) -> CheckoutStatus {
    match order.status {
        OrderStatus::Open if order.deadline < now => CheckoutStatus::Expired,
        OrderStatus::Open => CheckoutStatus::Open,
        OrderStatus::Paid => CheckoutStatus::Paid,
        OrderStatus::Expired => CheckoutStatus::Expired,
    }
}

/// Returns `order`'s progress at `now` with `required` confirmations; `head` gives the
/// chain's head block, asked only while a payment waits for confirmations (`None`: the
/// chain cannot be read, the payment's block counts as the head).
pub async fn progress<F, Fut>(db: &Db, order: &StoredOrder, required: u64, now: u64, head: F) -> Result<CheckoutProgress, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<u64>>,
{
    let mut progress = CheckoutProgress::open(required);
    let Some(payment) = payments::latest_for_order(db, order.order_id).await? else {
        if order.deadline < now {
            progress.stage = Stage::Expired;
            progress.done = true;
        }
        return Ok(progress);
    };
    let OrderPayment { id, tx_hash, block_number, confirmed } = payment;
    progress.tx_hash = Some(tx_hash);
    if !confirmed {
        let head = head().await.unwrap_or(block_number);
        progress.confirmations = (head + 1).saturating_sub(block_number).min(required);
        progress.stage = if progress.confirmations == 0 { Stage::Detected } else { Stage::Confirming };
        return Ok(progress);
    }
    progress.confirmations = required;
    progress.stage = Stage::Active;
    if let Some(activation) = subscriptions::activation_of(db, id).await? {
        progress.expires_at = Some(activation.new_expires_at);
        // A scheduled downgrade changes no badge now: no badge job comes for it.
        if activation.kind == ActivationKind::DowngradeScheduled {
            progress.done = true;
            return Ok(progress);
        }
        if let Some(badge_tx_hash) = badges::confirmed_since(db, order.payer, activation.created_at).await? {
            progress.stage = Stage::BadgeIssued;
            progress.done = true;
            progress.badge_tx_hash = badge_tx_hash;
        }
    }
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::Stage;

    #[test]
    fn a_stage_serializes_as_the_name_the_api_shows() {
        for stage in [Stage::Open, Stage::Expired, Stage::Detected, Stage::Confirming, Stage::Active, Stage::BadgeIssued] {
            assert_eq!(serde_json::to_value(stage).unwrap(), stage.as_str());
        }
    }
}
