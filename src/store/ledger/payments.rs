//! Reads of `payments` for the merchant's list, a checkout's progress and refunds, and
//! the refund mark. The watcher's passes record and confirm payments ([`super::PassTx`]).

use alloy::primitives::{Address, B256, U256};
use sqlx::Row;

use super::{order_id_of, payment_status};
use crate::{
    ids::{CheckoutId, OrderId},
    states::PaymentStatus,
    store::{Db, StoreError, to_address, to_b256, to_u256},
};

/// A recorded payment, as the merchant's list shows it.
#[derive(Debug, Clone)]
pub struct Payment {
    /// Payment id (cursor order).
    pub id: i64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Log index.
    pub log_index: i64,
    /// Block number.
    pub block_number: i64,
    /// Order id.
    pub order_id: OrderId,
    /// Payer.
    pub payer: Address,
    /// Token.
    pub token: Address,
    /// Amount in the token's smallest unit.
    pub amount: U256,
    /// Plan id.
    pub plan_id: u32,
    /// Periods.
    pub periods: u32,
    /// `detected`, `confirmed` or `reorged`.
    pub status: PaymentStatus,
    /// Why the payment matched no open order, if it did not.
    pub unmatched_reason: Option<String>,
    /// Unix time detected.
    pub detected_at: i64,
    /// For a USD-priced order: the USD value of its amount at the rate it was quoted at
    /// (micro-dollars), and that rate (USD per whole token) with its source.
    pub usd: Option<(i64, String, String)>,
}

/// Which payments [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    /// Only ids below this.
    pub before: Option<i64>,
    /// Only this status.
    pub status: Option<PaymentStatus>,
    /// At most this many.
    pub limit: i64,
}

/// Lists payments, newest first.
pub async fn list(db: &Db, filter: &PaymentFilter) -> Result<Vec<Payment>, StoreError> {
    let rows = sqlx::query(
        "SELECT p.id, p.tx_hash, p.log_index, p.block_number, p.order_id, p.payer, p.token, p.amount, p.plan_id, p.periods, p.status, \
         p.unmatched_reason, p.detected_at, o.usd_micro, o.rate_usd, o.rate_source \
         FROM payments p LEFT JOIN orders o ON o.order_id = p.matched_order \
         WHERE p.id < $1 AND ($2 = '' OR p.status = $2) ORDER BY p.id DESC LIMIT $3",
    )
    .bind(filter.before.unwrap_or(i64::MAX))
    .bind(filter.status.map(PaymentStatus::as_str).unwrap_or_default().to_string())
    .bind(filter.limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Payment {
                id: r.try_get("id")?,
                tx_hash: to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?,
                log_index: r.try_get("log_index")?,
                block_number: r.try_get("block_number")?,
                order_id: order_id_of(&r.try_get::<Vec<u8>, _>("order_id")?)?,
                payer: to_address(&r.try_get::<Vec<u8>, _>("payer")?, "payments.payer")?,
                token: to_address(&r.try_get::<Vec<u8>, _>("token")?, "payments.token")?,
                amount: to_u256(&r.try_get::<Vec<u8>, _>("amount")?, "payments.amount")?,
                plan_id: r.try_get::<i64, _>("plan_id")? as u32,
                periods: r.try_get::<i64, _>("periods")? as u32,
                status: payment_status(&r.try_get::<String, _>("status")?)?,
                unmatched_reason: r.try_get("unmatched_reason")?,
                detected_at: r.try_get("detected_at")?,
                usd: match (r.try_get::<Option<i64>, _>("usd_micro")?, r.try_get::<Option<String>, _>("rate_usd")?) {
                    (Some(micro), Some(rate)) => Some((micro, rate, r.try_get::<Option<String>, _>("rate_source")?.unwrap_or_default())),
                    _ => None,
                },
            })
        })
        .collect()
}

/// The payment that matched an order, as its progress needs it.
#[derive(Debug, Clone)]
pub struct OrderPayment {
    /// Payment id.
    pub id: i64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block number.
    pub block_number: u64,
    /// Confirmed (else detected, waiting for confirmations).
    pub confirmed: bool,
}

/// Returns the newest live (`detected` or `confirmed`) payment matched to `order_id`.
pub async fn latest_for_order(db: &Db, order_id: OrderId) -> Result<Option<OrderPayment>, StoreError> {
    let Some(order_id) = order_id.db_key() else { return Ok(None) };
    let row = sqlx::query("SELECT id, tx_hash, block_number, status FROM payments WHERE matched_order = $1 AND status IN ($2, $3) ORDER BY id DESC LIMIT 1")
        .bind(order_id)
        .bind(PaymentStatus::Detected.as_str())
        .bind(PaymentStatus::Confirmed.as_str())
        .fetch_optional(db.pool())
        .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(OrderPayment {
        id: r.try_get("id")?,
        tx_hash: to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?,
        block_number: r.try_get::<i64, _>("block_number")? as u64,
        confirmed: payment_status(&r.try_get::<String, _>("status")?)? != PaymentStatus::Detected,
    }))
}

/// A payment as a refund reads it.
#[derive(Debug, Clone)]
pub struct RefundTarget {
    /// Chain id.
    pub chain_id: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Log index.
    pub log_index: u64,
    /// Payer.
    pub payer: Address,
    /// Token.
    pub token: Address,
    /// Amount in the token's smallest unit.
    pub amount: U256,
    /// Plan id.
    pub plan_id: u32,
    /// Status.
    pub status: PaymentStatus,
    /// When it was refunded, if it was.
    pub refunded_at: Option<i64>,
    /// Whether it activated a plan.
    pub activated: bool,
    /// Its order.
    pub order_id: OrderId,
    /// The checkout of its matched order, if it matched one.
    pub checkout_id: Option<CheckoutId>,
    /// The customer of its matched order, if it had one.
    pub customer_ref: Option<crate::billing::customers::CustomerRef>,
}

/// Reads payment `id` for a refund, inside the caller's transaction.
pub async fn for_refund(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Option<RefundTarget>, StoreError> {
    let row = sqlx::query(
        "SELECT p.chain_id, p.tx_hash, p.log_index, p.payer, p.token, p.amount, p.plan_id, p.status, p.refunded_at, p.order_id, \
         (SELECT COUNT(*) FROM activations a WHERE a.payment_id = p.id) AS activated, \
         (SELECT o.checkout_id FROM orders o WHERE o.order_id = p.matched_order) AS checkout_id, \
         (SELECT o.customer_ref FROM orders o WHERE o.order_id = p.matched_order) AS customer_ref FROM payments p WHERE p.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(RefundTarget {
        chain_id: r.try_get::<i64, _>("chain_id")? as u64,
        tx_hash: to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?,
        log_index: r.try_get::<i64, _>("log_index")? as u64,
        payer: to_address(&r.try_get::<Vec<u8>, _>("payer")?, "payments.payer")?,
        token: to_address(&r.try_get::<Vec<u8>, _>("token")?, "payments.token")?,
        amount: to_u256(&r.try_get::<Vec<u8>, _>("amount")?, "payments.amount")?,
        plan_id: r.try_get::<i64, _>("plan_id")? as u32,
        status: payment_status(&r.try_get::<String, _>("status")?)?,
        refunded_at: r.try_get("refunded_at")?,
        activated: r.try_get::<i64, _>("activated")? > 0,
        order_id: order_id_of(&r.try_get::<Vec<u8>, _>("order_id")?)?,
        checkout_id: r.try_get::<Option<String>, _>("checkout_id")?.map(CheckoutId::from_stored),
        customer_ref: r.try_get::<Option<String>, _>("customer_ref")?.map(crate::billing::customers::CustomerRef::stored),
    }))
}

/// Marks payment `id` refunded at `now` with the merchant's `note`.
pub async fn mark_refunded(conn: &mut sqlx::AnyConnection, id: i64, note: &str, now: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE payments SET refunded_at = $1, refund_note = $2 WHERE id = $3").bind(now as i64).bind(note).bind(id).execute(conn).await?;
    Ok(())
}
