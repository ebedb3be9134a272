//! Tracking the open batches: receipts, confirmations `N` deep with their events, batches
//! reorged out, forgotten by the node, stuck, refused, or whose nonce another transaction
//! took.

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionReceipt,
};

use super::{
    super::bindings::MembershipBadge::{BadgeMoved, SubscriptionUpdate, Transfer},
    MintError, Minter, TickReport,
    send::{explain_refusal, is_fee_refusal},
    types::{Batch, Broadcast, Call, badge_event},
};
use crate::{
    states::BadgeJobStatus,
    store::badges::{self, BatchStatus},
};

impl Minter {
    /// Tracks every open batch; returns whether new batches may be sent (no earlier nonce
    /// is waiting to be accepted by the node).
    pub(super) async fn track(&self, head: u64, latest_nonce: u64, report: &mut TickReport) -> Result<bool, MintError> {
        let open = badges::open_batches(&self.db, self.config.chain_id, self.issuer).await?;
        let mut sends_ok = true;
        for (i, batch) in open.iter().enumerate() {
            if let Some(receipt) = self.find_receipt(batch.id).await? {
                self.track_mined(batch, &receipt, head, report).await?;
                continue;
            }
            if batch.status == BatchStatus::Mined {
                tracing::warn!(batch = batch.id, nonce = batch.nonce, "badge batch reorged out; sending it again");
                report.reorged += 1;
                badges::set_batch_status(&self.db, batch.id, BatchStatus::Sent, BadgeJobStatus::Sent, self.now()).await?;
            }
            if self.nonce_taken(batch.nonce, latest_nonce).await? {
                tracing::warn!(batch = batch.id, nonce = batch.nonce, "issuer nonce used by another transaction; queueing the batch's jobs again");
                badges::drop_batch(&self.db, batch.id, self.now()).await?;
                report.dropped += 1;
                continue;
            }
            if !sends_ok {
                continue;
            }
            if self.provider.get_transaction_by_hash(batch.tx_hash).await?.is_none() {
                sends_ok = self.resend(&open[i..], report).await?;
                continue;
            }
            if batch.status == BatchStatus::Signed {
                badges::mark_sent(&self.db, batch.id, self.now()).await?;
                continue;
            }
            let waited = self.now() - batch.sent_at.unwrap_or(0);
            let limit = self.config.stuck_after.as_secs_f64() * 2f64.powi(batch.bumps.min(6) as i32);
            if waited as f64 >= limit.max(1.0) {
                self.count_replacement(self.replace(batch).await?, report);
            }
        }
        Ok(sends_ok)
    }

    /// Records a mined batch and, `N` deep, confirms or fails it.
    async fn track_mined(&self, batch: &Batch, receipt: &TransactionReceipt, head: u64, report: &mut TickReport) -> Result<(), MintError> {
        let at = mined_at(receipt, head);
        let block = at.block;
        if batch.status != BatchStatus::Mined || batch.mined_block != Some(block) || batch.mined_block_hash != Some(at.block_hash) {
            badges::mark_mined(&self.db, batch.id, at, self.now()).await?;
        }
        if head + 1 >= block + self.config.confirmations {
            if receipt.status() {
                report.confirmed += self.confirm(batch, receipt).await?;
            } else {
                let reason = format!("batch transaction {} reverted in block {block}", receipt.transaction_hash);
                report.failed += badges::mark_reverted(&self.db, batch.id, &reason, self.backoff(), self.now()).await?;
            }
        }
        Ok(())
    }

    /// Broadcasts again the first of `batches`, which the node does not know; returns
    /// whether later batches may be sent this tick.
    async fn resend(&self, batches: &[Batch], report: &mut TickReport) -> Result<bool, MintError> {
        let batch = &batches[0];
        match self.broadcast(&batch.raw).await? {
            Broadcast::Accepted => {
                if batch.status == BatchStatus::Signed {
                    report.sent += 1;
                } else {
                    report.rebroadcast += 1;
                }
                badges::mark_sent(&self.db, batch.id, self.now()).await?;
                Ok(true)
            }
            Broadcast::NonceUsed => Ok(false),
            Broadcast::Refused(reason) if batch.status != BatchStatus::Signed && is_fee_refusal(&reason) => {
                // The node dropped it as underpriced and will not take it back at that
                // price: replace it now rather than after the stuck timeout.
                self.count_replacement(self.replace(batch).await?, report);
                Ok(false)
            }
            Broadcast::Refused(reason) => {
                report.failed += self.refused(batches, &reason).await?;
                Ok(false)
            }
        }
    }

    fn count_replacement(&self, outcome: Option<bool>, report: &mut TickReport) {
        match outcome {
            Some(true) => report.replaced += 1,
            Some(false) => report.fee_capped = true,
            None => {}
        }
    }

    /// Whether another transaction took `nonce`, whose batch has no receipt: the chain's
    /// latest count passed it both at the start of the tick (`latest_nonce`) and now. The
    /// first alone may predate a reorg that removed the batch's own transaction and freed
    /// the nonce (giving the batch up then would leave a gap); the second alone may count
    /// the batch's own transaction mined since its receipt was looked up.
    pub(super) async fn nonce_taken(&self, nonce: u64, latest_nonce: u64) -> Result<bool, MintError> {
        Ok(nonce < latest_nonce && nonce < self.provider.get_transaction_count(self.issuer).latest().await?)
    }

    /// Returns the receipt of whichever signed version of the batch was mined.
    pub(super) async fn find_receipt(&self, batch_id: i64) -> Result<Option<TransactionReceipt>, MintError> {
        for hash in badges::versions(&self.db, batch_id).await? {
            if let Some(receipt) = self.provider.get_transaction_receipt(hash).await?
                && receipt.block_number.is_some()
            {
                return Ok(Some(receipt));
            }
        }
        Ok(None)
    }

    /// The node refused the first of `batches` (ascending nonces): when none of them was
    /// ever accepted, they are all deleted and their jobs fail with the reason (retried
    /// with backoff); otherwise they are kept, to be broadcast again next tick.
    pub(super) async fn refused(&self, batches: &[Batch], reason: &str) -> Result<usize, MintError> {
        let reason = explain_refusal(reason, self.issuer);
        tracing::warn!(nonce = batches[0].nonce, %reason, "node refused a badge transaction");
        if batches.iter().any(|b| b.status != BatchStatus::Signed) {
            badges::note_error(&self.db, batches[0].id, &reason, false, self.now()).await?;
            return Ok(0);
        }
        let ids: Vec<i64> = batches.iter().map(|b| b.id).collect();
        Ok(badges::discard_batches(&self.db, &ids, &reason, self.backoff(), self.now()).await?)
    }

    /// Confirms a successful batch `N` deep: its jobs become `confirmed` with the token
    /// ids read from the receipt's logs, and their events are written, in one transaction.
    async fn confirm(&self, batch: &Batch, receipt: &TransactionReceipt) -> Result<usize, MintError> {
        let call = batch.call;
        let tokens = TokenIds::of(receipt, self.config.badge);
        let now = self.now();
        let mut tx = self.db.begin_write().await?;
        let jobs = badges::batch_jobs(&mut tx, batch.id).await?;
        let mut done = Vec::with_capacity(jobs.len());
        let mut events = Vec::with_capacity(jobs.len());
        for (job, position) in &jobs {
            let token_id = tokens.for_call(call, *position);
            done.push((job.id, token_id));
            events.push(badge_event(job, call, token_id, Some(receipt.transaction_hash), receipt.block_number));
        }
        badges::confirm_jobs(&mut tx, &done, Some(receipt.transaction_hash), &events, now).await?;
        badges::mark_confirmed(&mut tx, batch.id, now).await?;
        tx.commit().await?;
        metrics::counter!("tmai_badge_jobs_confirmed_total").increment(jobs.len() as u64);
        tracing::info!(batch = batch.id, nonce = batch.nonce, call = %batch.call, jobs = jobs.len(), tx = %receipt.transaction_hash, "badge batch confirmed");
        Ok(jobs.len())
    }
}

/// Returns where `receipt`'s transaction was mined (`head` when the node left the block
/// number out).
pub(super) fn mined_at(receipt: &TransactionReceipt, head: u64) -> badges::MinedAt {
    badges::MinedAt {
        tx_hash: receipt.transaction_hash,
        block: receipt.block_number.unwrap_or(head),
        block_hash: receipt.block_hash.unwrap_or_default(),
        gas_used: receipt.gas_used,
    }
}

/// The token ids a batch's receipt reports, per kind of log, in call order.
struct TokenIds {
    minted: Vec<U256>,
    burned: Vec<U256>,
    updated: Vec<U256>,
    moved: Vec<U256>,
}

impl TokenIds {
    /// Reads the badge's logs in `receipt`.
    fn of(receipt: &TransactionReceipt, badge: Address) -> Self {
        let logs: Vec<_> = receipt.inner.logs().iter().filter(|l| l.address() == badge).collect();
        let transfers: Vec<_> = logs.iter().filter_map(|l| l.log_decode::<Transfer>().ok()).collect();
        Self {
            minted: transfers.iter().filter(|l| l.inner.from == Address::ZERO).map(|l| l.inner.tokenId).collect(),
            burned: transfers.iter().filter(|l| l.inner.to == Address::ZERO).map(|l| l.inner.tokenId).collect(),
            updated: logs.iter().filter_map(|l| l.log_decode::<SubscriptionUpdate>().ok()).map(|l| l.inner.tokenId).collect(),
            moved: logs.iter().filter_map(|l| l.log_decode::<BadgeMoved>().ok()).map(|l| l.inner.tokenId).collect(),
        }
    }

    /// Returns the token id of the job at `position` in a `call` batch.
    fn for_call(&self, call: Call, position: usize) -> U256 {
        match call {
            Call::Issue => self.minted.get(position),
            Call::Update => self.updated.get(position),
            Call::Revoke => self.burned.get(position),
            Call::Move => self.moved.first(),
        }
        .copied()
        .unwrap_or_default()
    }
}
