//! `OrderPaid` logs as the watcher reads them: decoding (pure, tested on its own) and the
//! stable key a payment is known by in the database and in events.

use alloy::{primitives::B256, rpc::types::Log, sol_types::SolEvent};

use super::bindings::SubscriptionCheckout::OrderPaid;

/// A decoded `OrderPaid` log with its position.
#[derive(Debug, Clone)]
pub struct PaidLog {
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Log index in the block.
    pub log_index: u64,
    /// The event.
    pub event: OrderPaid,
}

/// Decodes `OrderPaid` logs; logs without a position (pending) or of another shape are
/// skipped. Pure, so it is tested on its own.
pub fn decode_logs(logs: &[Log]) -> Vec<PaidLog> {
    logs.iter()
        .filter(|l| !l.removed)
        .filter_map(|l| {
            let event = OrderPaid::decode_log(&l.inner).ok()?.data;
            Some(PaidLog {
                block_number: l.block_number?,
                block_hash: l.block_hash?,
                tx_hash: l.transaction_hash?,
                log_index: l.log_index?,
                event,
            })
        })
        .collect()
}

/// Returns the stable key of a payment: `chain:tx_hash:log_index`.
pub fn payment_key(chain_id: u64, tx_hash: B256, log_index: u64) -> String {
    format!("{chain_id}:{tx_hash}:{log_index}")
}
