//! A checkout's progress: from the open quote to the badge on chain. Computed in one
//! place ([`progress`]) for the checkout view and its event stream alike, from the order,
//! the payment matched to it (`payments`), the activation it made (`activations`) and the
//! badge job that followed (`badge_jobs`).

use std::future::Future;

use alloy::primitives::{Address, B256};
use sqlx::Row;

use super::activation::ChangeKind;
use crate::{
    states::{CheckoutStatus, OrderStatus},
    store::{
        Db, StoreError, address_bytes,
        orders::StoredOrder,
        payments::{self, OrderPayment},
        to_b256,
    },
};

/// Where a checkout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    if let Some(activation) = activation_of(db, id).await? {
        progress.expires_at = Some(activation.new_expires_at);
        // A scheduled downgrade changes no badge now: no badge job comes for it.
        if activation.kind == ChangeKind::DowngradeScheduled.event().as_str() {
            progress.done = true;
            return Ok(progress);
        }
        if let Some(badge_tx_hash) = confirmed_badge_job(db, order.payer, activation.created_at).await? {
            progress.stage = Stage::BadgeIssued;
            progress.done = true;
            progress.badge_tx_hash = badge_tx_hash;
        }
    }
    Ok(progress)
}

/// What a payment's activation did, as progress needs it.
struct PaymentActivation {
    kind: String,
    new_expires_at: u64,
    created_at: i64,
}

async fn activation_of(db: &Db, payment_id: i64) -> Result<Option<PaymentActivation>, StoreError> {
    let row = sqlx::query("SELECT kind, new_expires_at, created_at FROM activations WHERE payment_id = $1").bind(payment_id).fetch_optional(db.pool()).await?;
    let Some(a) = row else { return Ok(None) };
    Ok(Some(PaymentActivation {
        kind: a.try_get("kind")?,
        new_expires_at: a.try_get::<i64, _>("new_expires_at")? as u64,
        created_at: a.try_get("created_at")?,
    }))
}

/// Returns the transaction of the newest confirmed badge job of `wallet` created at or
/// after `since` (`Some(None)`: confirmed without a stored hash), if there is one.
async fn confirmed_badge_job(db: &Db, wallet: Address, since: i64) -> Result<Option<Option<B256>>, StoreError> {
    let row = sqlx::query("SELECT tx_hash FROM badge_jobs WHERE wallet = $1 AND created_at >= $2 AND status = 'confirmed' ORDER BY id DESC LIMIT 1")
        .bind(address_bytes(wallet))
        .bind(since)
        .fetch_optional(db.pool())
        .await?;
    let Some(job) = row else { return Ok(None) };
    Ok(Some(job.try_get::<Option<Vec<u8>>, _>("tx_hash")?.map(|h| to_b256(&h, "badge_jobs.tx_hash")).transpose()?))
}
