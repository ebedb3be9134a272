//! The `data` of the `badge.*` events, written when the minter's job is confirmed. Fields
//! are declared in the order the stored JSON has always had them (sorted by name); each
//! payload only gains fields from now on.

use alloy::primitives::{Address, B256};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::{CheckoutId, OrderId};

/// The payment that caused a badge job, as a badge event carries it (all three fields
/// present, or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadgeCause {
    /// The order paid.
    pub order_id: OrderId,
    /// Its checkout (None for an order not issued here).
    pub checkout_id: Option<CheckoutId>,
    /// The payment's transaction.
    pub payment_tx_hash: B256,
}

/// `badge.minted`: a badge was minted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BadgeMinted {
    /// True when the chain already showed the mint (no transaction of this job's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_on_chain: Option<bool>,
    /// The block of the job's transaction (null when already on chain).
    pub block_number: Option<u64>,
    /// The checkout of the payment that caused it (with `order_id`, when a payment did).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<Option<CheckoutId>>,
    /// The badge's expiry (unix seconds).
    pub expires_at: u64,
    /// The badge job's id.
    pub job_id: i64,
    /// The order of the payment that caused it (decimal text).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]+$")]
    pub order_id: Option<OrderId>,
    /// The transaction of the payment that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub payment_tx_hash: Option<B256>,
    /// The badge's tier.
    pub tier: u8,
    /// The badge's token id (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub token_id: String,
    /// The job's transaction (null when already on chain).
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: Option<B256>,
    /// The holder.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `updated` with a new tier or expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BadgeChanged {
    /// True when the chain already showed the update (no transaction of this job's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_on_chain: Option<bool>,
    /// The block of the job's transaction (null when already on chain).
    pub block_number: Option<u64>,
    /// The checkout of the payment that caused it (with `order_id`, when a payment did).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<Option<CheckoutId>>,
    /// The badge's expiry (unix seconds).
    pub expires_at: u64,
    /// The badge job's id.
    pub job_id: i64,
    /// The order of the payment that caused it (decimal text).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]+$")]
    pub order_id: Option<OrderId>,
    /// The transaction of the payment that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub payment_tx_hash: Option<B256>,
    /// The badge's tier.
    pub tier: u8,
    /// The badge's token id (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub token_id: String,
    /// The job's transaction (null when already on chain).
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: Option<B256>,
    /// The holder.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `updated` by a move to another wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BadgeMoved {
    /// True when the chain already showed the move (no transaction of this job's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_on_chain: Option<bool>,
    /// The block of the job's transaction (null when already on chain).
    pub block_number: Option<u64>,
    /// Always `moved`.
    pub change: &'static str,
    /// The checkout of the payment that caused it (with `order_id`, when a payment did).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<Option<CheckoutId>>,
    /// The badge job's id.
    pub job_id: i64,
    /// The order of the payment that caused it (decimal text).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]+$")]
    pub order_id: Option<OrderId>,
    /// The transaction of the payment that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub payment_tx_hash: Option<B256>,
    /// The wallet the badge moved to.
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: Option<Address>,
    /// The badge's token id (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub token_id: String,
    /// The job's transaction (null when already on chain).
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: Option<B256>,
    /// The wallet the badge left.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// `badge.updated`: a badge's tier, expiry or holder changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BadgeUpdated {
    /// New tier or expiry.
    Changed(BadgeChanged),
    /// New holder.
    Moved(BadgeMoved),
}

/// `badge.revoked`: a badge was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BadgeRevoked {
    /// True when the chain already showed the revoke (no transaction of this job's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_on_chain: Option<bool>,
    /// The block of the job's transaction (null when already on chain).
    pub block_number: Option<u64>,
    /// The checkout of the payment that caused it (with `order_id`, when a payment did).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<Option<CheckoutId>>,
    /// The badge job's id.
    pub job_id: i64,
    /// The order of the payment that caused it (decimal text).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]+$")]
    pub order_id: Option<OrderId>,
    /// The transaction of the payment that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub payment_tx_hash: Option<B256>,
    /// The revoked badge's token id (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub token_id: String,
    /// The job's transaction (null when already on chain).
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: Option<B256>,
    /// The former holder.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub wallet: Address,
}

/// The cause fields of a badge event: `(checkout_id, order_id, payment_tx_hash)`, all
/// present or all absent.
type CauseFields = (Option<Option<CheckoutId>>, Option<OrderId>, Option<B256>);

fn cause_fields(cause: Option<BadgeCause>) -> CauseFields {
    match cause {
        Some(c) => (Some(c.checkout_id), Some(c.order_id), Some(c.payment_tx_hash)),
        None => (None, None, None),
    }
}

/// What every badge event says about its job and transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadgeJobDone {
    /// The badge job's id.
    pub job_id: i64,
    /// The wallet the job was for.
    pub wallet: Address,
    /// The badge's token id.
    pub token_id: alloy::primitives::U256,
    /// The job's transaction (None: the chain already showed its effect).
    pub tx_hash: Option<B256>,
    /// Its block.
    pub block_number: Option<u64>,
    /// The payment that caused the job.
    pub cause: Option<BadgeCause>,
}

impl BadgeJobDone {
    /// `badge.minted` of a mint with `tier` and `expires_at`.
    pub fn minted(self, tier: u8, expires_at: u64) -> BadgeMinted {
        let already_on_chain = self.tx_hash.is_none().then_some(true);
        let (checkout_id, order_id, payment_tx_hash) = cause_fields(self.cause);
        BadgeMinted {
            already_on_chain,
            block_number: self.block_number,
            checkout_id,
            expires_at,
            job_id: self.job_id,
            order_id,
            payment_tx_hash,
            tier,
            token_id: self.token_id.to_string(),
            tx_hash: self.tx_hash,
            wallet: self.wallet,
        }
    }

    /// `badge.updated` of an update to `tier` and `expires_at`.
    pub fn changed(self, tier: u8, expires_at: u64) -> BadgeUpdated {
        let already_on_chain = self.tx_hash.is_none().then_some(true);
        let (checkout_id, order_id, payment_tx_hash) = cause_fields(self.cause);
        BadgeUpdated::Changed(BadgeChanged {
            already_on_chain,
            block_number: self.block_number,
            checkout_id,
            expires_at,
            job_id: self.job_id,
            order_id,
            payment_tx_hash,
            tier,
            token_id: self.token_id.to_string(),
            tx_hash: self.tx_hash,
            wallet: self.wallet,
        })
    }

    /// `badge.updated` of a move to `to`.
    pub fn moved(self, to: Option<Address>) -> BadgeUpdated {
        let already_on_chain = self.tx_hash.is_none().then_some(true);
        let (checkout_id, order_id, payment_tx_hash) = cause_fields(self.cause);
        BadgeUpdated::Moved(BadgeMoved {
            already_on_chain,
            block_number: self.block_number,
            change: "moved",
            checkout_id,
            job_id: self.job_id,
            order_id,
            payment_tx_hash,
            to,
            token_id: self.token_id.to_string(),
            tx_hash: self.tx_hash,
            wallet: self.wallet,
        })
    }

    /// `badge.revoked`.
    pub fn revoked(self) -> BadgeRevoked {
        let already_on_chain = self.tx_hash.is_none().then_some(true);
        let (checkout_id, order_id, payment_tx_hash) = cause_fields(self.cause);
        BadgeRevoked {
            already_on_chain,
            block_number: self.block_number,
            checkout_id,
            job_id: self.job_id,
            order_id,
            payment_tx_hash,
            token_id: self.token_id.to_string(),
            tx_hash: self.tx_hash,
            wallet: self.wallet,
        }
    }
}
