//! Confirmed batches that a reorg deeper than the confirmations removed.
//!
//! A batch counts once it is `N` blocks deep, but a deeper reorg can still take its
//! transaction off the canonical chain (anvil drops an orphaned block's transactions; a
//! node returns them to its pool and may drop them later). Its jobs are then not on chain
//! although the database says confirmed, and while its nonce stays unused every later
//! issuer transaction waits behind the gap. So each tick, before tracking, the batches
//! confirmed within [`MinterConfig::reorg_window`](super::MinterConfig::reorg_window) are
//! checked newest block first, stopping at the first whose block is still canonical (every
//! block below it is then canonical too: each block hash commits to its parent). For each
//! one whose block is gone:
//!
//! - its transaction (any signed version) is on the chain elsewhere, mined again: the batch
//!   records where and stays confirmed if it succeeded; if it reverted there, its jobs are
//!   queued again;
//! - it is gone and the issuer's nonce on chain has not passed it: the batch goes back in
//!   flight (`sent`) and tracking broadcasts its stored bytes again at the same nonce, so
//!   no gap is left and later batches go through; confirmed again `N` deep, it writes no
//!   event twice (events have stable ids);
//! - it is gone and another transaction took the nonce: its jobs are queued again (those a
//!   later job for the same wallet replaces are superseded) and planned afresh against the
//!   badge contract, which turns an issue into an update where a badge exists.
//!
//! Each outcome is one database transaction, so a crash between any two steps leaves a
//! state the next tick reads and finishes.

use alloy::{primitives::B256, providers::Provider, rpc::types::TransactionReceipt};

use super::{MintError, Minter, TickReport, track::mined_at, types::Batch};
use crate::store::badges::{self, BatchStatus};

/// The last block read from the chain: its number and canonical hash (None: no such block).
type BlockSeen = Option<(u64, Option<B256>)>;

impl Minter {
    /// Checks the batches confirmed within the reorg window against the canonical chain and
    /// settles those a reorg removed.
    pub(super) async fn recheck_confirmed(&self, head: u64, latest_nonce: u64, report: &mut TickReport) -> Result<(), MintError> {
        let from = head.saturating_sub(self.config.reorg_window);
        let recent = badges::recent_confirmed(&self.db, self.config.chain_id, self.issuer, from).await?;
        let mut seen: BlockSeen = None;
        for batch in &recent {
            if self.still_canonical(batch, &mut seen).await? {
                break;
            }
            self.settle_reorged(batch, latest_nonce, report).await?;
        }
        Ok(())
    }

    /// Whether the block `batch` was confirmed in is still the canonical one at its height
    /// (a batch recorded without a block hash is settled by its receipt instead).
    async fn still_canonical(&self, batch: &Batch, seen: &mut BlockSeen) -> Result<bool, MintError> {
        let (Some(number), Some(hash)) = (batch.mined_block, batch.mined_block_hash) else { return Ok(false) };
        let canonical = match *seen {
            Some((n, canonical)) if n == number => canonical,
            _ => {
                let canonical = self.provider.get_block_by_number(number.into()).await?.map(|b| b.header.hash);
                *seen = Some((number, canonical));
                canonical
            }
        };
        Ok(canonical == Some(hash))
    }

    /// Settles a confirmed batch whose block is no longer canonical.
    async fn settle_reorged(&self, batch: &Batch, latest_nonce: u64, report: &mut TickReport) -> Result<(), MintError> {
        if let Some(receipt) = self.find_receipt(batch.id).await? {
            return self.mined_again(batch, &receipt, report).await;
        }
        report.reorged_confirmed += 1;
        metrics::counter!("tmai_badge_batches_reorged_after_confirmation_total").increment(1);
        let (id, nonce, block) = (batch.id, batch.nonce, batch.mined_block);
        if !self.nonce_taken(nonce, latest_nonce).await? && badges::reopen_confirmed(&self.db, id, self.now()).await? {
            tracing::error!(
                batch = id,
                nonce,
                block,
                confirmations = self.config.confirmations,
                "a confirmed badge batch was reorged out; sending it again at its nonce"
            );
            return Ok(());
        }
        let queued =
            badges::requeue_confirmed(&self.db, id, BatchStatus::Dropped, "reorged out after confirmation; nonce used by another transaction", self.now())
                .await?;
        tracing::error!(
            batch = id,
            nonce,
            block,
            latest_nonce,
            queued,
            "a confirmed badge batch was reorged out and another transaction took its nonce; its jobs are queued again"
        );
        Ok(())
    }

    /// Records a confirmed batch's transaction found again on the canonical chain (or first
    /// seen with its block hash); one that reverted there has its jobs queued again.
    async fn mined_again(&self, batch: &Batch, receipt: &TransactionReceipt, report: &mut TickReport) -> Result<(), MintError> {
        let at = mined_at(receipt, batch.mined_block.unwrap_or_default());
        if receipt.status() {
            if batch.mined_block_hash.is_some() {
                tracing::warn!(batch = batch.id, nonce = batch.nonce, old_block = batch.mined_block, block = at.block, tx = %at.tx_hash, "a confirmed badge batch was reorged out and mined again");
            }
            badges::confirmed_at(&self.db, batch.id, at, self.now()).await?;
            return Ok(());
        }
        report.reorged_confirmed += 1;
        metrics::counter!("tmai_badge_batches_reorged_after_confirmation_total").increment(1);
        let reason = format!("reorged out after confirmation, mined again in block {} and reverted", at.block);
        let queued = badges::requeue_confirmed(&self.db, batch.id, BatchStatus::Reverted, &reason, self.now()).await?;
        tracing::error!(batch = batch.id, nonce = batch.nonce, block = at.block, tx = %at.tx_hash, queued, "a confirmed badge batch was mined again after a reorg and reverted; its jobs are queued again");
        Ok(())
    }
}
