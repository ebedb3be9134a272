//! What a pass writes, computed without the database: matching logs to orders, the
//! payment rows, and the `payment.*` events.

use std::collections::HashMap;

use alloy::primitives::B256;

use crate::{
    billing::{
        activation::{Cause, PaidOrder, revised},
        receipts,
    },
    chain::paid_log::{PaidLog, payment_key},
    events::{EventType, PaymentConfirmed, PaymentDetected, PaymentReorged},
    ids::OrderId,
    states::PaymentStatus,
    store::{
        ledger::{NewPayment, StoredOrder, StoredPayment},
        outbox::{self, NewEvent},
    },
};

/// Returns the order a log pays, or `None` with the reason it matches none. `paid_by` holds
/// the transactions of confirmed payments of orders already paid: a log of another
/// transaction for one of them pays nothing (the chain pays an order once, so the stored
/// payment is stale or this log is; either way it must not activate twice).
pub(super) fn match_order(
    chain_id: u64,
    orders: &HashMap<OrderId, StoredOrder>,
    paid_by: &HashMap<OrderId, B256>,
    log: &PaidLog,
) -> (Option<OrderId>, Option<&'static str>) {
    let e = &log.event;
    let id = OrderId::from(e.orderId);
    let Some(order) = orders.get(&id) else {
        return (None, Some("unknown order"));
    };
    let same = order.chain_id == chain_id
        && order.payer == e.payer
        && order.token == e.token
        && order.amount == e.amount
        && order.plan_id == e.planId
        && order.periods == e.periods;
    if !same {
        return (None, Some("payment does not match its order"));
    }
    match paid_by.get(&id) {
        Some(tx) if *tx != log.tx_hash => (None, Some("order already paid by another transaction")),
        _ => (Some(id), None),
    }
}

/// Returns the ids of the orders among `orders` that are marked paid.
pub(super) fn paid_orders(orders: &HashMap<OrderId, StoredOrder>) -> Vec<OrderId> {
    orders.iter().filter(|(_, o)| o.paid).map(|(id, _)| *id).collect()
}

/// Returns the order ids the logs name.
pub(super) fn order_ids(logs: &[PaidLog]) -> Vec<OrderId> {
    logs.iter().map(|l| OrderId::from(l.event.orderId)).collect()
}

/// Returns the payment rows for `logs`, matched against `orders`; those at or below
/// `deep` are recorded as confirmed at once.
pub(super) fn new_payments(
    chain_id: u64,
    logs: Vec<PaidLog>,
    orders: &HashMap<OrderId, StoredOrder>,
    paid_by: &HashMap<OrderId, B256>,
    deep: u64,
) -> Vec<NewPayment> {
    logs.into_iter()
        .map(|log| {
            let (matched_order, unmatched_reason) = match_order(chain_id, orders, paid_by, &log);
            let confirmed = log.block_number <= deep;
            let order = matched_order.and_then(|id| orders.get(&id));
            let (checkout_id, usd) = (order.map(|o| o.checkout_id.clone()), order.and_then(|o| o.usd.clone()));
            let customer_ref = order.and_then(|o| o.customer_ref.clone());
            NewPayment { log, matched_order, unmatched_reason, confirmed, checkout_id, usd, customer_ref }
        })
        .collect()
}

/// Returns `payment.detected` for a recorded payment, and `payment.unmatched` after it
/// when it pays no order.
pub(super) fn detected_events(chain_id: u64, p: &NewPayment, confirmations: u64, out: &mut Vec<NewEvent>) {
    let (log, e) = (&p.log, &p.log.event);
    let key = payment_key(chain_id, log.tx_hash, log.log_index);
    let data = PaymentDetected {
        amount: e.amount.to_string(),
        block_hash: log.block_hash,
        block_number: log.block_number,
        checkout_id: p.checkout_id.clone(),
        confirmations_required: confirmations,
        order_id: OrderId::from(e.orderId),
        payer: e.payer,
        payment: key.clone(),
        periods: e.periods,
        plan_id: e.planId,
        token: e.token,
        tx_hash: log.tx_hash,
    };
    let unmatched = p.unmatched_reason.map(|reason| data.unmatched(reason));
    let customer = p.customer_ref.as_ref();
    out.push(NewEvent::for_customer(outbox::event_id(&[EventType::PaymentDetected.as_str(), &key, &log.block_hash.to_string()]), data, customer));
    if let Some(data) = unmatched {
        out.push(NewEvent::for_customer(outbox::event_id(&[EventType::PaymentUnmatched.as_str(), &key]), data, customer));
    }
}

/// Returns the stored form of a payment this pass recorded as confirmed, stored as `id`.
pub(super) fn recorded(id: i64, p: &NewPayment) -> StoredPayment {
    let e = &p.log.event;
    StoredPayment {
        id,
        tx_hash: p.log.tx_hash,
        log_index: p.log.log_index,
        block_number: p.log.block_number,
        block_hash: p.log.block_hash,
        order_id: OrderId::from(e.orderId),
        payer: e.payer,
        token: e.token,
        plan_id: e.planId,
        periods: e.periods,
        matched_order: p.matched_order,
        status: PaymentStatus::Confirmed,
        revision: 0,
        confirmed_at: None,
        orphaned_at: None,
        checkout_id: p.checkout_id.clone(),
        usd: p.usd.clone(),
        customer_ref: p.customer_ref.clone(),
        amount: e.amount,
    }
}

/// Returns the paid order to activate, when the confirmed payment `p` matches one.
pub(super) fn paid_order(chain_id: u64, p: &StoredPayment) -> Option<PaidOrder> {
    p.matched_order?;
    Some(PaidOrder {
        payment_id: p.id,
        payment_key: payment_key(chain_id, p.tx_hash, p.log_index),
        cause: cause_of(p),
        revision: p.revision,
        wallet: p.payer,
        plan_id: p.plan_id,
        periods: p.periods,
        token: p.token,
        usd: p.usd.as_ref().map(|u| u.usd_value),
        customer_ref: p.customer_ref.clone(),
        chain_id,
        block_number: p.block_number,
        amount: p.amount,
        rate_usd: p.usd.as_ref().map(|u| u.rate_usd.clone()),
    })
}

/// Returns the order, checkout and transaction of `p`, for the events it causes.
pub(super) fn cause_of(p: &StoredPayment) -> Cause {
    Cause { order_id: p.order_id, checkout_id: p.checkout_id.clone(), tx_hash: p.tx_hash }
}

/// Returns `payment.confirmed` for `c`, with the url of its receipt under `receipt_base`
/// when it pays an order.
pub(super) fn confirmed_event(chain_id: u64, c: &StoredPayment, confirmations: u64, receipt_base: &str) -> NewEvent {
    let key = payment_key(chain_id, c.tx_hash, c.log_index);
    let id = outbox::event_id(&revised(&[EventType::PaymentConfirmed.as_str(), &key], c.revision));
    let receipt_url = c.matched_order.map(|_| receipts::receipt_url(receipt_base, &receipts::chain_receipt_id(&key, c.revision)));
    let data = PaymentConfirmed {
        block_number: c.block_number,
        checkout_id: c.checkout_id.clone(),
        confirmations,
        order_id: c.order_id,
        payer: c.payer,
        payment: key,
        rate_usd: c.usd.as_ref().map(|u| u.rate_usd.clone()),
        receipt_url,
        tx_hash: c.tx_hash,
        usd_value: c.usd.as_ref().map(|u| u.usd_value()),
    };
    NewEvent::for_customer(id, data, c.customer_ref.as_ref())
}

/// Returns `payment.reorged` for a payment a reorg removed: a detected one at once, a
/// confirmed one (`after_confirmation`) once the new branch is `N` deep without it.
pub(super) fn reorged_event(chain_id: u64, p: &StoredPayment, after_confirmation: bool) -> NewEvent {
    let key = payment_key(chain_id, p.tx_hash, p.log_index);
    let id = outbox::event_id(&[EventType::PaymentReorged.as_str(), &key, &p.block_hash.to_string()]);
    let data = PaymentReorged {
        after_confirmation,
        block_hash: p.block_hash,
        block_number: p.block_number,
        checkout_id: p.checkout_id.clone(),
        order_id: p.order_id,
        payer: p.payer,
        payment: key,
        tx_hash: p.tx_hash,
    };
    NewEvent::for_customer(id, data, p.customer_ref.as_ref())
}
