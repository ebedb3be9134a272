//! Recording a business's history without a chain (`test-hooks` only): the growth benchmark
//! (`benches/growth.rs`) seeds hundreds of thousands of members through the pass's own
//! writes instead of mining their payments on anvil.

use super::{Known, WatchError, Watcher};
use crate::{billing::activation, chain::paid_log::PaidLog, store::ledger::PassTx};

impl Watcher {
    /// Records `logs` as a pass records logs already deep enough to count: each payment
    /// matched to its order and confirmed at once, its order marked paid, its plan
    /// activated, with the events, badge jobs and receipts a pass writes, in one
    /// transaction at `now`. Reads no chain and leaves the cursor where it is. Returns the
    /// payments recorded (a log recorded before is skipped, as in a pass).
    pub async fn record_deep(&self, logs: &[PaidLog], now: u64) -> Result<usize, WatchError> {
        let mut tx = PassTx::begin(&self.db).await?;
        let (mut known, mut pending, mut recorded) = (Known::default(), activation::Writes::default(), 0);
        for chunk in logs.chunks(self.chunk) {
            let (count, _, writes) = self.record(&mut tx, chunk, u64::MAX, pending, &mut known, now).await?;
            recorded += count;
            pending = writes;
        }
        tx.write(pending, now).await?;
        tx.commit(&self.db).await?;
        Ok(recorded)
    }
}
