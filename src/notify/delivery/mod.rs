//! The delivery worker. Two steps, both safe to repeat after a crash:
//!
//! 1. **Fan-out**: outbox events not yet fanned out become one pending delivery per enabled
//!    endpoint whose filter takes them, and are flagged, in one transaction.
//! 2. **Delivery**, per endpoint and strictly in order: the oldest pending delivery goes
//!    first and the next waits until it is delivered or given up. A batch of deliveries is
//!    sent one after the other and the results (delivery state and one attempt row each)
//!    are written in one transaction. A failure schedules the next attempt by
//!    `schedule_secs` with jitter and stops the endpoint's batch; after the last entry the
//!    delivery is given up (`failed`) and the next one proceeds. A 410 answer disables the
//!    endpoint. A disabled endpoint receives nothing: its pending deliveries are canceled
//!    and new events are not queued for it (each can be redelivered once it is enabled).
//!
//! Killed between sending and recording, a delivery is sent again with the same
//! `webhook-id`: delivery is at least once, and receivers dedupe on the id (as the
//! Standard Webhooks specification asks). Endpoints are served concurrently, each by at
//! most one task; on PostgreSQL one instance delivers (leader election).

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::{filter_matches, signing::SigningTarget};

mod send;
use crate::{
    clock::Clock,
    config::WebhookSettings,
    store::{
        Db, StoreError, outbox,
        webhooks::{
            deliveries::{self, NewDelivery, Outcome},
            endpoints,
        },
    },
};
use send::{Sender, Sent};

/// Events fanned out per transaction.
const FAN_OUT_BATCH: i64 = 2_000;
/// Longest wait for event writers in flight before a fan-out gives up until the next poll.
const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Deliveries created from new events.
    pub queued: u64,
    /// Deliveries acknowledged with a 2xx.
    pub delivered: u64,
    /// Attempts that failed (to be retried, or given up).
    pub failed_attempts: u64,
    /// Deliveries given up (schedule exhausted, or the endpoint answered 410).
    pub given_up: u64,
    /// Endpoints disabled by a 410 answer.
    pub disabled: u64,
}

impl Report {
    fn add(&mut self, other: Self) {
        self.queued += other.queued;
        self.delivered += other.delivered;
        self.failed_attempts += other.failed_attempts;
        self.given_up += other.given_up;
        self.disabled += other.disabled;
    }

    /// Whether anything happened.
    pub fn idle(&self) -> bool {
        *self == Self::default()
    }
}

/// The delivery worker; clones share their state.
#[derive(Debug, Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    sender: Sender,
    settings: WebhookSettings,
    clock: Clock,
    busy: Mutex<HashSet<String>>,
    /// A position every event up to which is fanned out: the last event of this process's
    /// last batch. Once a batch up to `settled` is fanned out no event at or below its last
    /// can appear unfanned (every writer holding a lower number has finished), so later
    /// scans start after it. Another instance's fan-outs only leave it lower than it could
    /// be; a new process starts from 0.
    fanned_through: AtomicI64,
}

impl Deliverer {
    /// Returns a worker for `db` with `settings`, reading time from `clock`.
    pub fn new(db: Db, settings: WebhookSettings, clock: Clock) -> anyhow::Result<Self> {
        let sender = Sender::new(&settings)?;
        Ok(Self { inner: Arc::new(Inner { db, sender, settings, clock, busy: Mutex::default(), fanned_through: AtomicI64::new(0) }) })
    }

    /// Fans out every new event, then serves every endpoint with due deliveries until its
    /// queue is empty or waiting; returns what was done.
    pub async fn tick(&self) -> Result<Report, StoreError> {
        let mut report = Report { queued: self.fan_out().await?, ..Default::default() };
        let due = self.due_endpoints().await?;
        let never = CancellationToken::new();
        let results: Vec<_> = futures::stream::iter(due)
            .map(|id| {
                let never = never.clone();
                async move { self.serve_endpoint(&id, &never).await }
            })
            .buffer_unordered(self.inner.settings.max_concurrent_endpoints)
            .collect()
            .await;
        for result in results {
            report.add(result?);
        }
        Ok(report)
    }

    /// Delivers until `cancel` fires: fans out and starts a task for each endpoint with due
    /// work that has none running; an in-flight batch is finished and recorded on shutdown.
    pub async fn run(&self, cancel: CancellationToken) {
        let poll = Duration::from_millis(self.inner.settings.poll_interval_ms);
        let limit = Arc::new(tokio::sync::Semaphore::new(self.inner.settings.max_concurrent_endpoints));
        // Woken by every commit that may have written events (in this process, and on
        // PostgreSQL any instance's outbox insert): an event goes out as soon as it is
        // committed, not at the next poll. The poll stays as the floor (retries fall due
        // by time, and a lost notification costs one interval at most).
        let mut writes = self.inner.db.writes();
        let mut tasks = tokio::task::JoinSet::new();
        tracing::info!("webhook delivery started");
        loop {
            while tasks.try_join_next().is_some() {}
            let queued = match self.fan_out().await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "webhook fan-out failed; retrying");
                    0
                }
            };
            match self.due_endpoints().await {
                Ok(due) => {
                    for id in due {
                        if !self.inner.busy.lock().expect("not poisoned").insert(id.clone()) {
                            continue;
                        }
                        let (me, cancel, limit) = (self.clone(), cancel.clone(), limit.clone());
                        tasks.spawn(async move {
                            if let Ok(_permit) = limit.acquire_owned().await
                                && let Err(error) = me.serve_endpoint(&id, &cancel).await
                            {
                                tracing::warn!(%error, endpoint = %id, "webhook delivery failed; retrying");
                            }
                            me.inner.busy.lock().expect("not poisoned").remove(&id);
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, "reading webhook queues failed; retrying"),
            }
            if queued == 0 {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(poll) => {}
                    _ = writes.changed() => {}
                }
            } else if cancel.is_cancelled() {
                break;
            }
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("webhook delivery stopped");
    }

    /// Turns new outbox events into pending deliveries; returns how many were created.
    pub async fn fan_out(&self) -> Result<u64, StoreError> {
        let mut queued = 0;
        loop {
            // A read first: an idle poll must not take the write lock.
            let after = self.inner.fanned_through.load(Ordering::Acquire);
            if !outbox::any_unfanned(&self.inner.db, after).await? {
                return Ok(queued);
            }
            // Deliveries go out in the order they are created: never pass an event whose
            // transaction is still in flight (it may hold a lower number).
            let Some(settled) = outbox::settled_seq(&self.inner.db, SETTLE_WAIT).await? else {
                return Ok(queued);
            };
            let now_ms = self.inner.clock.now_ms();
            let first_delay = self.inner.settings.schedule_secs[0] as i64 * 1000;
            let mut tx = self.inner.db.begin_write().await?;
            let events = outbox::unfanned(&mut tx, after, settled, FAN_OUT_BATCH).await?;
            if events.is_empty() {
                tx.commit().await?;
                return Ok(queued);
            }
            let routes: Vec<_> = endpoints::routes(&mut tx).await?.into_iter().filter(|r| r.enabled).collect();
            let mut new = Vec::new();
            for event in &events {
                for route in &routes {
                    if event.seq >= route.from_seq && filter_matches(route.event_types.as_deref(), &event.event_type) {
                        new.push(NewDelivery {
                            endpoint_id: route.id.clone(),
                            event_seq: event.seq,
                            event_id: event.id.clone(),
                            event_type: event.event_type.clone(),
                            next_attempt_ms: now_ms + first_delay,
                            created_ms: now_ms,
                        });
                    }
                }
            }
            deliveries::queue(&mut tx, &new).await?;
            outbox::mark_fanned_out(&mut tx, &events.iter().map(|e| e.seq).collect::<Vec<_>>()).await?;
            tx.commit().await?;
            if let Some(last) = events.last() {
                self.inner.fanned_through.fetch_max(last.seq, Ordering::AcqRel);
            }
            queued += new.len() as u64;
            metrics::counter!("tmai_webhook_deliveries_queued_total").increment(new.len() as u64);
            if (events.len() as i64) < FAN_OUT_BATCH {
                return Ok(queued);
            }
        }
    }

    /// Returns the enabled endpoints whose oldest pending delivery is due.
    async fn due_endpoints(&self) -> Result<Vec<String>, StoreError> {
        let now_ms = self.inner.clock.now_ms();
        let mut due = Vec::new();
        for id in endpoints::enabled_ids(&self.inner.db).await? {
            let head = deliveries::head_due_ms(&self.inner.db, &id).await?;
            if head.is_some_and(|at| at <= now_ms) {
                due.push(id);
            }
        }
        Ok(due)
    }

    /// Serves one endpoint: batches in order until its queue is empty, waiting on a retry,
    /// or `cancel` fires.
    async fn serve_endpoint(&self, endpoint: &str, cancel: &CancellationToken) -> Result<Report, StoreError> {
        let inner = &self.inner;
        let mut report = Report::default();
        loop {
            let now_ms = inner.clock.now_ms();
            let (target, batch) = {
                let mut conn = inner.db.pool().acquire().await?;
                let Some(secrets) = endpoints::secrets(&mut conn, endpoint).await? else { return Ok(report) };
                let target = SigningTarget::new(secrets, now_ms / 1000)?;
                if !target.enabled {
                    return Ok(report);
                }
                (target, deliveries::pending_batch(&mut conn, endpoint, inner.settings.batch_size as i64).await?)
            };
            let batch_len = batch.len();
            let mut sent = Vec::new();
            let mut stop = false;
            let mut gone = false;
            for delivery in batch {
                if delivery.next_attempt_ms > inner.clock.now_ms() || cancel.is_cancelled() {
                    stop = true;
                    break;
                }
                let attempts = delivery.attempts;
                let result = inner.sender.send(&target, delivery, inner.clock.now_ms()).await;
                let ok = result.ok();
                gone = result.status == Some(410);
                let exhausted = attempts + 1 >= inner.settings.schedule_secs.len() as i64;
                sent.push(result);
                if gone || (!ok && !exhausted) {
                    stop = true;
                    break;
                }
            }
            if sent.is_empty() {
                return Ok(report);
            }
            report.add(self.record(endpoint, sent, gone).await?);
            if stop || batch_len < inner.settings.batch_size {
                return Ok(report);
            }
        }
    }

    /// Writes the results of a batch: delivery states, attempt rows, a 410's disabling.
    async fn record(&self, endpoint: &str, sent: Vec<Sent>, gone: bool) -> Result<Report, StoreError> {
        let inner = &self.inner;
        let schedule = &inner.settings.schedule_secs;
        let mut report = Report::default();
        let mut tx = inner.db.begin_write().await?;
        let now_ms = inner.clock.now_ms();
        let mut records = Vec::with_capacity(sent.len());
        for s in sent {
            let outcome = if s.ok() {
                report.delivered += 1;
                Outcome::Delivered
            } else if s.attempt >= schedule.len() as i64 || s.status == Some(410) {
                report.failed_attempts += 1;
                report.given_up += 1;
                tracing::warn!(endpoint, event = %s.event_id, attempts = s.attempt, error = ?s.error, "webhook delivery given up");
                Outcome::GivenUp
            } else {
                report.failed_attempts += 1;
                Outcome::RetryAt(s.attempted_ms + jittered(schedule[s.attempt as usize], inner.settings.jitter_percent))
            };
            records.push(s.into_record(outcome));
        }
        deliveries::record(&mut tx, endpoint, now_ms, &records).await?;
        if gone {
            let reason = format!("the endpoint answered 410 Gone at {} (unix ms); enable it again to resume", now_ms);
            endpoints::disable(&mut tx, endpoint, &reason).await?;
            deliveries::cancel_pending(&mut tx, endpoint, now_ms, "endpoint disabled: it answered 410 Gone").await?;
            report.disabled += 1;
            tracing::warn!(endpoint, "webhook endpoint answered 410 Gone; disabled");
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// Returns `secs` in milliseconds plus up to `percent` % of it at random.
fn jittered(secs: u64, percent: u8) -> i64 {
    let base = secs as i64 * 1000;
    let spread = base * i64::from(percent) / 100;
    if spread == 0 { base } else { base + rand::rng().random_range(0..=spread) }
}

/// Sets the pending-deliveries gauge.
pub async fn pending_gauge(db: &Db) -> Result<(), StoreError> {
    let pending = deliveries::pending_count(db).await?;
    metrics::gauge!("tmai_webhook_deliveries_pending").set(pending as f64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_share() {
        for _ in 0..100 {
            let d = jittered(300, 10);
            assert!((300_000..=330_000).contains(&d), "{d}");
        }
        assert_eq!(jittered(0, 10), 0);
        assert_eq!(jittered(5, 0), 5_000);
    }
}
