//! Retention of unpaid checkouts (issue 26 §5: nothing anonymous grows without bound).
//!
//! Anyone may ask for a checkout, and each one stores an order, its `checkout.created`
//! event and, per webhook endpoint, a delivery and its attempts. A checkout never paid is
//! kept for `retention.unpaid_checkouts_days` after its quote's deadline, then this pass
//! deletes the four together, in bounded batches:
//!
//! - only an order still `open` whose deadline is that far past, that no payment row names
//!   (a payment matched to it, even one later reorged, keeps it), and that is not the newest
//!   order (start-up compares the id after the highest stored one with the chain);
//! - only once its event's webhooks are finished: fanned out, and every delivery delivered,
//!   given up or canceled. An order whose event still has a delivery pending (an endpoint
//!   down, retried on its schedule) is kept, with its event, until a later pass;
//! - the event's finished deliveries and their attempts go with it (they are the delivery
//!   log of an event that no longer exists).
//!
//! Kept for audit: every paid order, every payment (matched or not) with the terms the
//! chain logged, every other event and its delivery log, and the order id sequence
//! (`id_blocks`: ids are never reused). A payment that arrives for a pruned order (its
//! quote could only be paid before the deadline, so it was mined long ago and seen late) is
//! recorded `unmatched` (`unknown order`) and reported with `payment.unmatched`, never lost:
//! the watcher's usual path for an order it does not know.
//!
//! Each batch is one write transaction ([`Db::begin_write`]: on SQLite the process's write
//! gate, taken once per batch and held only for the deletes of at most `batch_size`
//! checkouts); the search for candidates is a read outside it. The pass runs once at a
//! time (leader-elected on PostgreSQL).

use std::{collections::HashSet, time::Duration};

use tokio_util::sync::CancellationToken;

use super::quotes::checkout_created_id;
use crate::{
    clock::Clock,
    config::RetentionSettings,
    store::{Db, StoreError, orders, outbox, webhooks::deliveries},
};

/// What one pass deleted, and what it had to keep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Orders deleted.
    pub orders: u64,
    /// `checkout.created` events deleted.
    pub events: u64,
    /// Their finished webhook deliveries deleted.
    pub deliveries: u64,
    /// Those deliveries' attempts deleted.
    pub attempts: u64,
    /// Old unpaid orders kept because their event's webhooks are not finished.
    pub held: u64,
    /// Write transactions (batches) the pass took.
    pub batches: u64,
}

/// The pruning pass over unpaid checkouts.
#[derive(Debug, Clone)]
pub struct Retention {
    db: Db,
    settings: RetentionSettings,
    clock: Clock,
}

impl Retention {
    /// Returns the pass over `db`, reading time from `clock`.
    pub fn new(db: Db, settings: RetentionSettings, clock: Clock) -> Self {
        Self { db, settings, clock }
    }

    /// Runs a pass every `interval_secs` until `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) {
        let interval = Duration::from_secs(self.settings.interval_secs);
        loop {
            match self.tick().await {
                Ok(report) if report.orders > 0 || report.held > 0 => {
                    tracing::info!(
                        orders = report.orders,
                        events = report.events,
                        deliveries = report.deliveries,
                        attempts = report.attempts,
                        held = report.held,
                        "unpaid checkouts pruned"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "pruning unpaid checkouts failed; retrying at the next pass"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// The Unix time before which a never-paid quote's deadline makes its checkout prunable.
    pub fn cutoff(&self) -> i64 {
        self.clock.now() as i64 - i64::from(self.settings.unpaid_checkouts_days) * 86_400
    }

    /// One pass: every unpaid checkout past the retention, a batch per write transaction.
    pub async fn tick(&self) -> Result<Report, StoreError> {
        let cutoff = self.cutoff();
        let limit = self.settings.batch_size;
        let mut report = Report::default();
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let candidates = orders::expired_unpaid(&self.db, cutoff, after, limit).await?;
            let Some(last) = candidates.last() else { break };
            after = (last.deadline, last.order_id.db_key().unwrap_or(i64::MAX));
            let events: Vec<String> = candidates.iter().map(|o| checkout_created_id(o.order_id, &o.checkout_id)).collect();

            let mut tx = self.db.begin_write().await?;
            // Nothing a read cache holds (subscriptions) changes.
            tx.keep_read_caches();
            // Held first, so a redelivery racing this batch is either seen or finds nothing.
            outbox::lock_for_delete(&mut tx, &events, self.db.backend()).await?;
            let unfinished: HashSet<String> = outbox::unfinished(&mut tx, &events).await?;
            let mut ids = Vec::with_capacity(candidates.len());
            for (order, event) in candidates.iter().zip(&events) {
                if unfinished.contains(event) {
                    report.held += 1;
                } else {
                    ids.push(order.order_id);
                }
            }
            // The orders first: only the events of orders actually deleted follow them (an
            // order that a payment names by now stays, and so does its event).
            let deleted: HashSet<_> = orders::delete_unpaid(&mut tx, &ids, cutoff).await?.into_iter().collect();
            let gone: Vec<String> = candidates.iter().zip(events).filter(|(o, _)| deleted.contains(&o.order_id)).map(|(_, e)| e).collect();
            let (deliveries, attempts) = deliveries::delete_finished_of(&mut tx, &gone).await?;
            report.events += outbox::delete_finished(&mut tx, &gone).await?;
            report.orders += deleted.len() as u64;
            tx.commit().await?;
            report.deliveries += deliveries;
            report.attempts += attempts;
            report.batches += 1;
            if candidates.len() < limit as usize {
                break;
            }
            // Let the writers queued behind this batch go first.
            tokio::task::yield_now().await;
        }
        Ok(report)
    }
}
