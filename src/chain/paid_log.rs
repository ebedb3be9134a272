//! `OrderPaid` logs as the watcher reads them: decoding (pure, tested on its own) and the
//! stable key a payment is known by in the database and in events.

use alloy::{
    primitives::{Address, B256},
    rpc::types::Log,
    sol_types::SolEvent,
};

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

/// Decodes the `OrderPaid` logs emitted by `checkout`; logs of another contract (a node's
/// filter is not trusted to have left them out), without a position (pending) or of
/// another shape are skipped. Pure, so it is tested on its own.
pub fn decode_logs(logs: &[Log], checkout: Address) -> Vec<PaidLog> {
    logs.iter()
        .filter(|l| !l.removed && l.address() == checkout)
        .filter_map(|l| {
            let event = OrderPaid::decode_log(&l.inner).ok()?.data;
            Some(PaidLog { block_number: l.block_number?, block_hash: l.block_hash?, tx_hash: l.transaction_hash?, log_index: l.log_index?, event })
        })
        .collect()
}

/// Returns the stable key of a payment: `chain:tx_hash:log_index`.
pub fn payment_key(chain_id: u64, tx_hash: B256, log_index: u64) -> String {
    format!("{chain_id}:{tx_hash}:{log_index}")
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{U256, address};

    use super::*;

    fn log_from(emitter: Address, log_index: u64) -> Log {
        let event = OrderPaid {
            orderId: U256::from(7u64),
            payer: address!("0x00000000000000000000000000000000000000aa"),
            planId: 3,
            token: address!("0x00000000000000000000000000000000000000bb"),
            amount: U256::from(1_000u64),
            periods: 1,
        };
        Log {
            inner: alloy::primitives::Log { address: emitter, data: event.encode_log_data() },
            block_hash: Some(B256::repeat_byte(1)),
            block_number: Some(10),
            transaction_hash: Some(B256::repeat_byte(2)),
            log_index: Some(log_index),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_checkout_contracts_logs_are_decoded() {
        let checkout = address!("0x2238CD68984C23D8D9020E41cb6a0Cef3cAD3703");
        let impostor = address!("0x00000000000000000000000000000000000000cc");
        let decoded = decode_logs(&[log_from(impostor, 0), log_from(checkout, 1)], checkout);
        assert_eq!(decoded.len(), 1);
        assert_eq!((decoded[0].log_index, decoded[0].event.planId), (1, 3));
    }
}
