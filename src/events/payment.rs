//! The `data` of `checkout.created` and the `payment.*` events. Fields are declared in the
//! order the stored JSON has always had them (sorted by name); each payload only gains
//! fields from now on.

use alloy::primitives::{Address, B256};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::{CheckoutId, OrderId};

/// `checkout.created`: a checkout was created and its quote signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CheckoutCreated {
    /// Amount quoted, in the token's smallest unit (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub amount: String,
    /// The checkout's id.
    #[schema(value_type = String)]
    pub checkout_id: CheckoutId,
    /// When the quote expires (unix seconds).
    pub expires_at: u64,
    /// The on-chain order id (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The wallet that must pay.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub payer: Address,
    /// Periods bought.
    pub periods: u32,
    /// Plan bought.
    pub plan_id: u32,
    /// Where the token's USD rate came from (USD-priced plans only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_source: Option<&'static str>,
    /// The token's USD rate used (USD-priced plans only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_usd: Option<String>,
    /// The token paid in.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// The quote's value in US dollars (USD-priced plans only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_value: Option<String>,
}

/// `payment.detected`: a payment's log was seen (not yet confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentDetected {
    /// Amount paid, in the token's smallest unit (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub amount: String,
    /// Block holding the payment.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub block_hash: B256,
    /// Its number.
    pub block_number: u64,
    /// The checkout of the order paid (null when it matches none stored here).
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// Confirmations before the payment counts.
    pub confirmations_required: u64,
    /// The order id the payment names (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The paying wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub payer: Address,
    /// The payment's stable key (`chain:tx:log`).
    pub payment: String,
    /// Periods paid for.
    pub periods: u32,
    /// Plan paid for.
    pub plan_id: u32,
    /// The token paid in.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// The payment's transaction.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: B256,
}

/// `payment.unmatched`: a payment matched no order; [`PaymentDetected`]'s fields and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentUnmatched {
    /// Amount paid, in the token's smallest unit (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub amount: String,
    /// Block holding the payment.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub block_hash: B256,
    /// Its number.
    pub block_number: u64,
    /// Always null: the payment matches no checkout.
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// Confirmations before the payment counts.
    pub confirmations_required: u64,
    /// The order id the payment names (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The paying wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub payer: Address,
    /// The payment's stable key (`chain:tx:log`).
    pub payment: String,
    /// Periods paid for.
    pub periods: u32,
    /// Plan paid for.
    pub plan_id: u32,
    /// Why it matches no order.
    pub reason: &'static str,
    /// The token paid in.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// The payment's transaction.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: B256,
}

impl PaymentDetected {
    /// Returns `payment.unmatched` for this payment, which matches no order for `reason`.
    pub fn unmatched(&self, reason: &'static str) -> PaymentUnmatched {
        PaymentUnmatched {
            amount: self.amount.clone(),
            block_hash: self.block_hash,
            block_number: self.block_number,
            checkout_id: self.checkout_id.clone(),
            confirmations_required: self.confirmations_required,
            order_id: self.order_id,
            payer: self.payer,
            payment: self.payment.clone(),
            periods: self.periods,
            plan_id: self.plan_id,
            reason,
            token: self.token,
            tx_hash: self.tx_hash,
        }
    }
}

/// `payment.confirmed`: a payment is confirmations deep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentConfirmed {
    /// Block holding the payment.
    pub block_number: u64,
    /// The checkout of the order paid (null when it matches none stored here).
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// Confirmations it has.
    pub confirmations: u64,
    /// The order id (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The paying wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub payer: Address,
    /// The payment's stable key (`chain:tx:log`).
    pub payment: String,
    /// The token's USD rate the quote used (USD-priced orders only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_usd: Option<String>,
    /// The payment's receipt (`GET /v1/receipts/{id}`, under `http.public_url` when set),
    /// issued in the same transaction; absent for a payment that matches no order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_url: Option<String>,
    /// The payment's transaction.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: B256,
    /// The payment's value in US dollars (USD-priced orders only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_value: Option<String>,
}

/// `payment.reorged`: a payment's block left the canonical chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentReorged {
    /// Whether the payment had been confirmed (a reorg deeper than the confirmations).
    pub after_confirmation: bool,
    /// The block that held it.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub block_hash: B256,
    /// Its number.
    pub block_number: u64,
    /// The checkout of the order paid (null when it matched none stored here).
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// The order id (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The paying wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub payer: Address,
    /// The payment's stable key (`chain:tx:log`).
    pub payment: String,
    /// The payment's transaction.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: B256,
}

/// `payment.refunded`: the merchant refunded a confirmed payment (outside the service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaymentRefunded {
    /// Amount paid, in the token's smallest unit (decimal text).
    #[schema(pattern = "^[0-9]+$")]
    pub amount: String,
    /// The checkout of the order paid (null when it matched none stored here).
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// The merchant's note.
    pub note: String,
    /// The order id (decimal text).
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub order_id: OrderId,
    /// The paying wallet.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub payer: Address,
    /// The payment's stable key (`chain:tx:log`).
    pub payment: String,
    /// The payment's id (as in `GET /v1/payments`).
    pub payment_id: i64,
    /// Plan paid for.
    pub plan_id: u32,
    /// When it was marked refunded (unix seconds).
    pub refunded_at: u64,
    /// The token paid in.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token: Address,
    /// The payment's transaction.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub tx_hash: B256,
}
