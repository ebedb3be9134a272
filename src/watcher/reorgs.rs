//! Reorgs: finding the fork, rolling back what it removed, moving payments the new branch
//! mined again to where they are now, and taking back what confirmed payments that did not
//! come back had bought. A payment is its transaction and order, not its position: see the
//! README's watcher section for the rules.

use alloy::{
    primitives::{Address, B256},
    providers::Provider,
};

use super::{Known, WatchError, Watcher, effects};
use crate::{
    billing::{activation, reversal},
    chain::paid_log::PaidLog,
    ids::OrderId,
    states::PaymentStatus,
    store::{
        ledger::{self, Move, PassTx, Reversal, StoredPayment},
        outbox::NewEvent,
    },
};

impl Watcher {
    /// Returns the highest stored block that is still canonical, when the stored tip is not
    /// (`stored`: highest first).
    pub(super) async fn find_fork(&self, stored: &[(u64, B256)]) -> Result<Option<u64>, WatchError> {
        let mut lowest = None;
        for (i, (number, hash)) in stored.iter().enumerate() {
            let block = self.provider.get_block_by_number((*number).into()).await?;
            if block.is_some_and(|b| b.header.hash == *hash) {
                return Ok((i > 0).then_some(*number));
            }
            lowest = Some(*number);
        }
        if let Some(lowest) = lowest {
            tracing::error!(lowest, "reorg deeper than the stored window; rolling back all of it");
            return Ok(Some(lowest.saturating_sub(1)));
        }
        Ok(None)
    }

    /// Marks the payments above `fork` reorged (with `payment.reorged` for those never
    /// confirmed) and forgets the blocks above it; confirmed ones are orphaned, keeping
    /// their effects until the chain mines them again or [`Self::take_back`] takes them
    /// back. Returns how many detected payments were marked.
    pub(super) async fn roll_back(&self, tx: &mut PassTx, fork: u64, now: u64, events: &mut Vec<NewEvent>) -> Result<usize, WatchError> {
        let mut reorged = 0;
        for p in tx.roll_back(self.config.chain_id, fork, now).await? {
            if p.was_confirmed() {
                tracing::warn!(
                    tx_hash = %p.tx_hash, order_id = %p.order_id, block = p.block_number, fork, confirmations = self.config.confirmations,
                    "a confirmed payment was reorged out; keeping what it bought until the new branch is N deep without it"
                );
                continue;
            }
            events.push(effects::reorged_event(self.config.chain_id, &p, false));
            reorged += 1;
        }
        tracing::warn!(fork, reorged, "reorg rolled back");
        Ok(reorged)
    }

    /// Takes back what orphaned payments (confirmed, then reorged out, not found again)
    /// at or below `deep` bought ([`reversal::take_back`]): `payment.reorged` with
    /// `after_confirmation`, the subscription change, its badge job and event, an error
    /// log line and the `tmai_watcher_confirmed_reorged_total` counter. `pending` (what the
    /// pass has planned so far) is written first; returns what to write next.
    pub(super) async fn take_back(
        &self,
        tx: &mut PassTx,
        deep: u64,
        pending: activation::Writes,
        known: &mut Known,
        now: u64,
    ) -> Result<activation::Writes, WatchError> {
        let chain = self.config.chain_id;
        let orphans = tx.orphans_up_to(chain, deep).await?;
        if orphans.is_empty() {
            return Ok(pending);
        }
        tx.write(pending, now).await?;
        let bought = tx.activations_of(orphans.iter().map(|p| p.id).collect()).await?;
        let mut unread: Vec<Address> = orphans.iter().map(|p| p.payer).filter(|w| !known.read.contains(w)).collect();
        unread.sort();
        unread.dedup();
        if !unread.is_empty() {
            known.subscriptions.extend(tx.subscriptions(unread.clone()).await?.into_iter().map(|s| (s.wallet, s)));
            known.customers.extend(tx.customers(unread.clone()).await?);
            known.read.extend(unread);
        }
        let mut writes = activation::Writes::default();
        let mut reversals = Vec::with_capacity(orphans.len());
        for p in &orphans {
            let key = crate::chain::paid_log::payment_key(chain, p.tx_hash, p.log_index);
            tracing::error!(
                order_id = %p.order_id, tx_hash = %p.tx_hash, block = p.block_number, payment = %key, confirmations = self.config.confirmations,
                "a confirmed payment is gone from the chain (a reorg deeper than the confirmations); taking back what it bought"
            );
            metrics::counter!("tmai_watcher_confirmed_reorged_total").increment(1);
            writes.events.push(effects::reorged_event(chain, p, true));
            let mut reversal = Reversal {
                payment_id: p.id,
                revision: p.revision,
                wallet: p.payer,
                order: p.matched_order,
                kind: None,
                plan_id: None,
                activated_expires_at: None,
                expires_before: None,
                expires_after: None,
            };
            let (Some(b), Some(current)) = (bought.get(&p.id), known.subscriptions.get(&p.payer)) else {
                reversals.push(reversal);
                continue;
            };
            let vanished = reversal::Vanished {
                wallet: p.payer,
                periods: p.periods,
                payment_key: &key,
                cause: effects::cause_of(p),
                revision: p.revision,
                customer: known.customers.get(&p.payer),
            };
            let paid = reversal::Bought {
                kind: b.kind,
                plan_id: b.plan_id,
                new_expires_at: b.new_expires_at,
                credit_seconds: b.credit_seconds,
                previous: b.previous.clone(),
            };
            let out = reversal::take_back(&self.catalog, &vanished, &paid, current, now);
            (reversal.kind, reversal.plan_id, reversal.activated_expires_at) = (Some(b.kind), Some(b.plan_id), Some(b.new_expires_at));
            (reversal.expires_before, reversal.expires_after) = (Some(current.expires_at), Some(out.after.expires_at));
            reversals.push(reversal);
            writes.jobs.push(out.job);
            writes.events.push(out.event);
            writes.subscriptions.retain(|s| s.wallet != p.payer);
            writes.subscriptions.push(out.after.clone());
            known.subscriptions.insert(p.payer, out.after);
        }
        tx.take_back(chain, reversals, now).await?;
        Ok(writes)
    }

    /// Finds the logs among `logs` that a reorged payment of the same transaction and order
    /// made before, and moves those rows to their new block and log index. One that was
    /// confirmed before keeps its effects and its confirmation (no event again; it waits
    /// to be `N` deep again if it is not); one never confirmed (or taken back since) is
    /// recorded again like a new log. Returns the other logs, still to record, and per
    /// moved row its stored form with its `payment.*` events (detected, confirmed).
    #[allow(clippy::type_complexity)]
    pub(super) async fn relocate(
        &self,
        tx: &mut PassTx,
        logs: &[PaidLog],
        deep: u64,
        now: u64,
    ) -> Result<(Vec<PaidLog>, Vec<(StoredPayment, Vec<NewEvent>, Option<NewEvent>)>), WatchError> {
        let (chain, confirmations) = (self.config.chain_id, self.config.confirmations);
        let mut hashes: Vec<B256> = logs.iter().map(|l| l.tx_hash).collect();
        hashes.dedup();
        let reorged = tx.reorged_of(chain, hashes).await?;
        if reorged.is_empty() {
            return Ok((logs.to_vec(), Vec::new()));
        }
        let mut rest = Vec::with_capacity(logs.len());
        let (mut moves, mut moved) = (Vec::new(), Vec::new());
        for log in logs {
            let Some(old) = reorged.iter().find(|p| p.tx_hash == log.tx_hash && p.order_id == OrderId::from(log.event.orderId)) else {
                rest.push(log.clone());
                continue;
            };
            let deep_enough = log.block_number <= deep;
            let status = if deep_enough { PaymentStatus::Confirmed } else { PaymentStatus::Detected };
            let confirmed_at = old.confirmed_at.or(deep_enough.then_some(now));
            let mut p = old.clone();
            (p.log_index, p.block_number, p.block_hash) = (log.log_index, log.block_number, log.block_hash);
            p.status = status;
            (p.confirmed_at, p.orphaned_at) = (confirmed_at, None);
            moves.push(Move { id: p.id, log_index: p.log_index, block_number: p.block_number, block_hash: p.block_hash, status, confirmed_at });
            if old.was_confirmed() {
                tracing::warn!(tx_hash = %p.tx_hash, order_id = %p.order_id, block = p.block_number, log_index = p.log_index, "a confirmed payment reorged out was mined again; it keeps what it bought");
                continue;
            }
            let mut detected = Vec::with_capacity(1);
            let row = ledger::NewPayment {
                log: log.clone(),
                matched_order: p.matched_order,
                unmatched_reason: None,
                confirmed: deep_enough,
                checkout_id: p.checkout_id.clone(),
                usd: p.usd.clone(),
                customer_ref: p.customer_ref.clone(),
            };
            effects::detected_events(chain, &row, confirmations, &mut detected);
            let confirmed = deep_enough.then(|| effects::confirmed_event(chain, &p, confirmations, &self.receipt_base));
            moved.push((p, detected, confirmed));
        }
        tx.relocate(moves).await?;
        Ok((rest, moved))
    }
}
