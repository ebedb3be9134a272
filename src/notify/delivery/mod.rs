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
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use rand::Rng;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::{endpoints, filter_matches};

mod send;
use crate::{
    clock::Clock,
    config::WebhookSettings,
    store::{
        Db, StoreError,
        bulk::{Value, execute_in, insert},
    },
};
use send::{Sent, client};

/// Events fanned out per transaction.
const FAN_OUT_BATCH: i64 = 2_000;

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
    client: reqwest::Client,
    settings: WebhookSettings,
    clock: Clock,
    busy: Mutex<HashSet<String>>,
}

impl Deliverer {
    /// Returns a worker for `db` with `settings`, reading time from `clock`.
    pub fn new(db: Db, settings: WebhookSettings, clock: Clock) -> anyhow::Result<Self> {
        let client = client(&settings)?;
        Ok(Self { inner: Arc::new(Inner { db, client, settings, clock, busy: Mutex::default() }) })
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
            let waiting: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM outbox_events WHERE fanned_out = 0 LIMIT 1").fetch_optional(self.inner.db.pool()).await?;
            if waiting.is_none() {
                return Ok(queued);
            }
            let now_ms = self.inner.clock.now_ms();
            let first_delay = self.inner.settings.schedule_secs[0] as i64 * 1000;
            let mut tx = self.inner.db.begin_write().await?;
            let events = sqlx::query("SELECT seq, id, event_type FROM outbox_events WHERE fanned_out = 0 ORDER BY seq LIMIT $1")
                .bind(FAN_OUT_BATCH)
                .fetch_all(&mut *tx)
                .await?;
            if events.is_empty() {
                tx.commit().await?;
                return Ok(queued);
            }
            let endpoints = sqlx::query("SELECT id, event_types, from_seq FROM webhook_endpoints WHERE enabled = 1 AND deleted_at IS NULL ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
            let mut targets = Vec::new();
            for row in &endpoints {
                let filter: Option<Vec<String>> = row
                    .try_get::<Option<String>, _>("event_types")?
                    .map(|f| serde_json::from_str(&f).map_err(|_| StoreError::Corrupt("webhook_endpoints.event_types")))
                    .transpose()?;
                targets.push((row.try_get::<String, _>("id")?, filter, row.try_get::<i64, _>("from_seq")?));
            }
            let (mut rows, mut seqs) = (Vec::new(), Vec::new());
            for event in &events {
                let seq: i64 = event.try_get("seq")?;
                let id: String = event.try_get("id")?;
                let event_type: String = event.try_get("event_type")?;
                seqs.push(Value::I64(seq));
                for (endpoint, filter, from) in &targets {
                    if seq >= *from && filter_matches(filter.as_deref(), &event_type) {
                        rows.push(vec![
                            Value::Text(endpoint.clone()),
                            Value::I64(seq),
                            Value::Text(id.clone()),
                            Value::Text(event_type.clone()),
                            Value::I64(now_ms + first_delay),
                            Value::I64(now_ms),
                        ]);
                    }
                }
            }
            insert(&mut tx, "INSERT INTO webhook_deliveries (endpoint_id, event_seq, event_id, event_type, next_attempt_ms, created_ms)", &rows, "").await?;
            execute_in(&mut tx, "UPDATE outbox_events SET fanned_out = 1 WHERE seq IN", "", &[], &seqs).await?;
            tx.commit().await?;
            queued += rows.len() as u64;
            metrics::counter!("tmai_webhook_deliveries_queued_total").increment(rows.len() as u64);
            if (events.len() as i64) < FAN_OUT_BATCH {
                return Ok(queued);
            }
        }
    }

    /// Returns the enabled endpoints whose oldest pending delivery is due.
    async fn due_endpoints(&self) -> Result<Vec<String>, StoreError> {
        let now_ms = self.inner.clock.now_ms();
        let pool = self.inner.db.pool();
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM webhook_endpoints WHERE enabled = 1 AND deleted_at IS NULL ORDER BY id").fetch_all(pool).await?;
        let mut due = Vec::new();
        for id in ids {
            let head: Option<i64> =
                sqlx::query_scalar("SELECT next_attempt_ms FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending' ORDER BY id LIMIT 1")
                    .bind(&id)
                    .fetch_optional(pool)
                    .await?;
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
                let Some(target) = endpoints::signing_target(&mut conn, endpoint, now_ms / 1000).await? else { return Ok(report) };
                if !target.enabled {
                    return Ok(report);
                }
                let batch = sqlx::query(
                    "SELECT d.id, d.event_id, d.attempts, d.next_attempt_ms, o.payload FROM webhook_deliveries d \
                     JOIN outbox_events o ON o.seq = d.event_seq \
                     WHERE d.endpoint_id = $1 AND d.status = 'pending' ORDER BY d.id LIMIT $2",
                )
                .bind(endpoint)
                .bind(inner.settings.batch_size as i64)
                .fetch_all(&mut *conn)
                .await?;
                (target, batch)
            };
            let mut sent = Vec::new();
            let mut stop = false;
            let mut gone = false;
            for row in &batch {
                let next: i64 = row.try_get("next_attempt_ms")?;
                if next > inner.clock.now_ms() || cancel.is_cancelled() {
                    stop = true;
                    break;
                }
                let attempts: i64 = row.try_get("attempts")?;
                let payload: String = row.try_get("payload")?;
                let result = self.send(&target, row.try_get("id")?, row.try_get("event_id")?, attempts + 1, payload).await;
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
            report.add(self.record(endpoint, &sent, gone).await?);
            if stop || batch.len() < inner.settings.batch_size {
                return Ok(report);
            }
        }
    }

    /// Writes the results of a batch: delivery states, attempt rows, a 410's disabling.
    async fn record(&self, endpoint: &str, sent: &[Sent], gone: bool) -> Result<Report, StoreError> {
        let inner = &self.inner;
        let schedule = &inner.settings.schedule_secs;
        let mut report = Report::default();
        let mut tx = inner.db.begin_write().await?;
        let now_ms = inner.clock.now_ms();
        let mut delivered = Vec::new();
        for s in sent {
            if s.ok() {
                delivered.push(Value::I64(s.delivery_id));
                report.delivered += 1;
                continue;
            }
            report.failed_attempts += 1;
            let exhausted = s.attempt >= schedule.len() as i64;
            if exhausted || s.status == Some(410) {
                report.given_up += 1;
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', attempts = $1, finished_ms = $2, last_status = $3, last_error = $4 WHERE id = $5",
                )
                .bind(s.attempt)
                .bind(now_ms)
                .bind(s.status.map(i64::from))
                .bind(&s.error)
                .bind(s.delivery_id)
                .execute(&mut *tx)
                .await?;
                tracing::warn!(endpoint, event = %s.event_id, attempts = s.attempt, error = ?s.error, "webhook delivery given up");
            } else {
                let delay_ms = jittered(schedule[s.attempt as usize], inner.settings.jitter_percent);
                sqlx::query("UPDATE webhook_deliveries SET attempts = $1, next_attempt_ms = $2, last_status = $3, last_error = $4 WHERE id = $5")
                    .bind(s.attempt)
                    .bind(s.attempted_ms + delay_ms)
                    .bind(s.status.map(i64::from))
                    .bind(&s.error)
                    .bind(s.delivery_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        execute_in(
            &mut tx,
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, finished_ms = $1, last_error = NULL, \
             last_status = 200 WHERE id IN",
            "",
            &[Value::I64(now_ms)],
            &delivered,
        )
        .await?;
        // The real status of each delivered attempt is in its attempt row; the delivery keeps
        // 200 unless it was something else.
        for s in sent.iter().filter(|s| s.ok() && s.status != Some(200)) {
            sqlx::query("UPDATE webhook_deliveries SET last_status = $1 WHERE id = $2")
                .bind(s.status.map(i64::from))
                .bind(s.delivery_id)
                .execute(&mut *tx)
                .await?;
        }
        let rows: Vec<Vec<Value>> = sent
            .iter()
            .map(|s| {
                vec![
                    Value::I64(s.delivery_id),
                    Value::Text(endpoint.to_string()),
                    Value::Text(s.event_id.clone()),
                    Value::I64(s.attempt),
                    Value::I64(s.attempted_ms),
                    Value::OptI64(s.status.map(i64::from)),
                    Value::I64(s.latency_ms),
                    Value::OptText(s.error.clone()),
                    Value::OptText(s.excerpt.clone()),
                ]
            })
            .collect();
        insert(
            &mut tx,
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, attempted_ms, status_code, latency_ms, error, response_excerpt)",
            &rows,
            "",
        )
        .await?;
        if gone {
            sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1 WHERE id = $2")
                .bind(format!("the endpoint answered 410 Gone at {} (unix ms); enable it again to resume", now_ms))
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
            cancel_pending(&mut tx, endpoint, now_ms, "endpoint disabled: it answered 410 Gone").await?;
            report.disabled += 1;
            tracing::warn!(endpoint, "webhook endpoint answered 410 Gone; disabled");
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// Cancels an endpoint's pending deliveries (it was disabled or deleted): a disabled endpoint
/// receives nothing, and what it missed can be redelivered from the event list.
pub(crate) async fn cancel_pending(conn: &mut sqlx::AnyConnection, endpoint: &str, now_ms: i64, why: &str) -> Result<u64, StoreError> {
    let done =
        sqlx::query("UPDATE webhook_deliveries SET status = 'canceled', finished_ms = $1, last_error = $2 WHERE endpoint_id = $3 AND status = 'pending'")
            .bind(now_ms)
            .bind(why)
            .bind(endpoint)
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

/// Returns `secs` in milliseconds plus up to `percent` % of it at random.
fn jittered(secs: u64, percent: u8) -> i64 {
    let base = secs as i64 * 1000;
    let spread = base * i64::from(percent) / 100;
    if spread == 0 { base } else { base + rand::rng().random_range(0..=spread) }
}

/// Sets the pending-deliveries gauge.
pub async fn pending_gauge(db: &Db) -> Result<(), StoreError> {
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").fetch_one(db.pool()).await?;
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
