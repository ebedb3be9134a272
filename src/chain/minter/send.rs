//! Sending and fees: signing a batch for its nonce, broadcasting it and reading the node's
//! answer, pricing first versions under the cap and replacements above the last price.

use alloy::{
    eips::Encodable2718,
    network::{NetworkTransactionBuilder, TransactionBuilder},
    primitives::{B256, Bytes},
    providers::Provider,
    rpc::types::TransactionRequest,
};

use super::{
    MintError, Minter,
    types::{Batch, Broadcast, Fees},
};
use crate::store::badges;

/// Returns the first price of a new batch: what the node suggests, under 10/11 of the cap
/// (less a wei, so one replacement at +10 % and a wei always fits under it).
pub(super) fn first_fees(suggested: Fees, fee_cap: u128) -> Fees {
    let max_fee = suggested.max_fee.min(fee_cap.saturating_sub(1) * 10 / 11);
    Fees { max_fee, priority: suggested.priority.min(max_fee) }
}

/// What a replacement of a stuck transaction may pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bump {
    /// Replace at these fees (`capped`: at the cap).
    To { fees: Fees, capped: bool },
    /// The cap allows no replacement the node would take (at least +10 %).
    Capped,
}

/// Returns the replacement price of a transaction priced `last`: at least 10 % more on
/// both fees (what nodes require) and at least what the node suggests now, never above
/// `fee_cap`.
pub(super) fn bump(last: Fees, suggested: Fees, fee_cap: u128) -> Bump {
    let min_priority = last.priority + last.priority / 10 + 1;
    let min_max = last.max_fee + last.max_fee / 10 + 1;
    let mut priority = min_priority.max(suggested.priority);
    let mut max_fee = min_max.max(suggested.max_fee).max(priority);
    if max_fee > fee_cap {
        max_fee = fee_cap;
        if max_fee < min_max {
            return Bump::Capped;
        }
        priority = priority.min(max_fee);
    }
    if priority < min_priority {
        priority = min_priority.min(max_fee);
    }
    Bump::To { fees: Fees { max_fee, priority }, capped: max_fee == fee_cap }
}

/// Whether the node refused a transaction for its price. Nodes answer with free text under
/// one generic JSON-RPC code, so the text is all there is to go by.
pub(super) fn is_fee_refusal(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("fee cap") || lower.contains("base fee") || lower.contains("underpriced") || lower.contains("fee too low")
}

/// Returns a person-readable reason for a refused broadcast.
pub(super) fn explain_refusal(message: &str, issuer: alloy::primitives::Address) -> String {
    let lower = message.to_lowercase();
    if lower.contains("insufficient funds") || lower.contains("insufficient balance") {
        format!("the issuer account {issuer} cannot pay for gas (node: {message}); fund it with ETH and the jobs will drain")
    } else if is_fee_refusal(message) {
        format!("fee too low for the node (node: {message}); raise minter.fee_cap_gwei")
    } else {
        format!("node refused the transaction: {message}")
    }
}

/// Reads the node's answer to a broadcast that it refused (see [`is_fee_refusal`] on why
/// this reads text).
fn classify(message: &str) -> Broadcast {
    let lower = message.to_lowercase();
    if lower.contains("already known") || lower.contains("already imported") || lower.contains("already exists") {
        Broadcast::Accepted
    } else if lower.contains("nonce too low") || lower.contains("nonce has already been used") {
        Broadcast::NonceUsed
    } else {
        Broadcast::Refused(message.to_string())
    }
}

impl Minter {
    /// Returns what the node suggests paying now.
    pub(super) async fn suggested_fees(&self) -> Result<Fees, MintError> {
        let fees = self.provider.estimate_eip1559_fees().await?;
        Ok(Fees { max_fee: fees.max_fee_per_gas, priority: fees.max_priority_fee_per_gas })
    }

    /// Signs the badge call `input` for `nonce` at `fees`; returns its hash and bytes.
    pub(super) async fn sign(&self, nonce: u64, input: &Bytes, gas_limit: u64, fees: Fees) -> Result<(B256, Vec<u8>), MintError> {
        let request = TransactionRequest::default()
            .with_from(self.issuer)
            .with_to(self.config.badge)
            .with_input(input.clone())
            .with_nonce(nonce)
            .with_chain_id(self.config.chain_id)
            .with_gas_limit(gas_limit)
            .with_max_fee_per_gas(fees.max_fee)
            .with_max_priority_fee_per_gas(fees.priority);
        let envelope = request.build(&self.wallet).await.map_err(|e| MintError::Signing(Box::new(e)))?;
        Ok((*envelope.tx_hash(), envelope.encoded_2718()))
    }

    /// Sends signed bytes; an error that is not the node's answer (transport) fails the tick.
    pub(super) async fn broadcast(&self, raw: &[u8]) -> Result<Broadcast, MintError> {
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(Broadcast::Accepted),
            Err(error) => match error.as_error_resp() {
                Some(payload) => Ok(classify(&payload.message)),
                None => Err(error.into()),
            },
        }
    }

    /// Replaces a stuck batch with the same call at a bumped fee ([`bump`]). Returns
    /// `Some(true)` when replaced, `Some(false)` when the cap prevents it, `None` when the
    /// node refused.
    pub(super) async fn replace(&self, batch: &Batch) -> Result<Option<bool>, MintError> {
        let last = Fees { max_fee: batch.max_fee, priority: batch.priority_fee };
        let (fees, capped) = match bump(last, self.suggested_fees().await?, self.config.fee_cap) {
            Bump::To { fees, capped } => (fees, capped),
            Bump::Capped => {
                tracing::warn!(
                    batch = batch.id,
                    nonce = batch.nonce,
                    max_fee = batch.max_fee,
                    fee_cap = self.config.fee_cap,
                    "badge transaction stuck and the fee cap allows no further replacement; raise minter.fee_cap_gwei"
                );
                badges::note_error(&self.db, batch.id, "stuck at the fee cap", false, self.now()).await?;
                return Ok(Some(false));
            }
        };
        let (hash, raw) = self.sign(batch.nonce, &batch.input, batch.gas_limit, fees).await?;
        // Write ahead: the new version is known before it is broadcast (any version may be
        // the one mined); it becomes the batch's current version once the node takes it.
        badges::write_version(&self.db, batch.id, hash, fees.max_fee, fees.priority, self.now()).await?;
        match self.broadcast(&raw).await? {
            Broadcast::Accepted => {
                badges::replaced(&self.db, batch.id, hash, &raw, fees.max_fee, fees.priority, self.now()).await?;
                metrics::counter!("tmai_badge_replacements_total").increment(1);
                tracing::info!(batch = batch.id, nonce = batch.nonce, old_max_fee = batch.max_fee, max_fee = fees.max_fee, tx = %hash, "replaced a stuck badge transaction");
                Ok(Some(true))
            }
            Broadcast::NonceUsed => Ok(None),
            Broadcast::Refused(reason) => {
                let reason = explain_refusal(&reason, self.issuer);
                tracing::warn!(batch = batch.id, nonce = batch.nonce, max_fee = fees.max_fee, fee_cap = self.config.fee_cap, %reason, "node refused the replacement");
                badges::note_error(&self.db, batch.id, &reason, true, self.now()).await?;
                Ok(if capped { Some(false) } else { None })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_pays_at_least_ten_percent_more_and_never_above_the_cap() {
        let last = Fees { max_fee: 100, priority: 10 };
        let low = Fees { max_fee: 50, priority: 1 };
        assert_eq!(bump(last, low, 1_000), Bump::To { fees: Fees { max_fee: 111, priority: 12 }, capped: false });
        assert_eq!(bump(last, Fees { max_fee: 500, priority: 40 }, 1_000), Bump::To { fees: Fees { max_fee: 500, priority: 40 }, capped: false });
        assert_eq!(bump(last, Fees { max_fee: 5_000, priority: 40 }, 1_000), Bump::To { fees: Fees { max_fee: 1_000, priority: 40 }, capped: true });
        assert_eq!(bump(last, low, 110), Bump::Capped);
        // The first price leaves room for one replacement under the cap.
        let first = first_fees(Fees { max_fee: 10_000, priority: 10_000 }, 1_100);
        assert_eq!(first, Fees { max_fee: 999, priority: 999 });
        assert!(matches!(bump(first, first, 1_100), Bump::To { .. }));
    }

    #[test]
    fn node_answers_are_read_as_accepted_nonce_used_or_refused() {
        assert!(matches!(classify("already known"), Broadcast::Accepted));
        assert!(matches!(classify("Nonce too low"), Broadcast::NonceUsed));
        assert!(matches!(classify("insufficient funds for gas * price + value"), Broadcast::Refused(_)));
        assert!(is_fee_refusal("max fee per gas less than block base fee"));
        assert!(!is_fee_refusal("insufficient funds"));
    }
}
