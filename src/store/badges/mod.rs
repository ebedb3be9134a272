//! The badge tables (`badge_jobs`, `badge_batches`, `badge_batch_txs`, `minter_state`):
//! every statement that reads or writes them. Producers (activation, the watcher, card
//! billing, members) queue jobs through [`jobs`]; from there on the minter
//! ([`crate::chain::minter`]) moves them through their states with [`minter_jobs`] and
//! records the transactions that carry them with [`batches`], then settles the confirmed
//! ones that a reorg deeper than the confirmations removed with [`confirmed`]. Every
//! function takes the time it writes from the caller's clock, and binds the states it
//! writes or selects from [`BadgeJobStatus`] and [`BatchStatus`].

use crate::{
    states::{BadgeJobStatus, text_enum},
    store::AnyQuery,
};

pub mod batches;
pub mod confirmed;
pub mod jobs;
pub mod minter_jobs;

pub use batches::*;
pub use confirmed::*;
pub use jobs::*;
pub use minter_jobs::*;

text_enum! {
    /// A batch transaction's progress (`badge_batches.status`).
    BatchStatus {
        /// Signed and stored, not yet taken by the node.
        Signed => "signed",
        /// The node took it.
        Sent => "sent",
        /// In a block, not yet confirmations deep.
        Mined => "mined",
        /// Confirmations deep; its jobs are confirmed. Still checked against the chain while
        /// within the reorg window: a deeper reorg sends it again or queues its jobs again.
        Confirmed => "confirmed",
        /// Mined and reverted; its jobs failed.
        Reverted => "reverted",
        /// Its nonce was used by another transaction; its jobs were queued again.
        Dropped => "dropped",
    }
}

/// Batch statuses still in flight (the minter tracks them every tick).
const OPEN: [BatchStatus; 3] = [BatchStatus::Signed, BatchStatus::Sent, BatchStatus::Mined];

/// Job statuses of a job a batch carries.
const IN_FLIGHT: [BadgeJobStatus; 2] = [BadgeJobStatus::Sent, BadgeJobStatus::Mined];

/// Job statuses of a job waiting to be sent (queued, or failed and to be retried).
const WAITING: [BadgeJobStatus; 2] = [BadgeJobStatus::Queued, BadgeJobStatus::Failed];

/// Binds each of `texts` in turn (the values of an `IN ($n, …)` list of states).
fn bind_each<'q>(query: AnyQuery<'q>, texts: impl IntoIterator<Item = &'static str>) -> AnyQuery<'q> {
    texts.into_iter().fold(query, |query, text| query.bind(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_statuses_parse_back_and_serialize_as_stored() {
        // The texts of migrations/*/0002_minter.sql's CHECK constraint, in its order.
        let stored = ["signed", "sent", "mined", "confirmed", "reverted", "dropped"];
        assert_eq!(BatchStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(), stored);
        for s in BatchStatus::ALL {
            assert_eq!(s.as_str().parse::<BatchStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("pending".parse::<BatchStatus>().is_err());
    }
}
