//! Merchant endpoints, their secrets, redelivery and the delivery log. Secrets are stored
//! as they are (signing needs them) and leave the service only once: in the answer that
//! creates or rotates them.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::{filter_matches, signing};
use crate::store::{Db, StoreError};

/// A registered endpoint, without its secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    /// Endpoint id (`ep_…`).
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Free text for the merchant.
    pub description: String,
    /// Event names or families (`subscription.*`) it receives; absent: every event.
    pub event_types: Option<Vec<String>>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled (for example the endpoint answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// Unix time registered.
    pub created_at: i64,
    /// Until when (unix time) the previous secret also signs, after a rotation.
    pub previous_secret_until: Option<i64>,
}

/// The secrets that sign for an endpoint at a given time.
#[derive(Debug, Clone)]
pub struct SigningTarget {
    /// The endpoint's URL.
    pub url: String,
    /// Keys: the current secret's, then the previous one's during a rotation's overlap.
    pub keys: Vec<Vec<u8>>,
    /// Whether deliveries are made.
    pub enabled: bool,
}

const COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, created_at, previous_secret_until";

fn endpoint_from(row: &sqlx::any::AnyRow) -> Result<Endpoint, StoreError> {
    let filter: Option<String> = row.try_get("event_types")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: filter.map(|f| serde_json::from_str(&f).map_err(|_| StoreError::Corrupt("webhook_endpoints.event_types"))).transpose()?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: row.try_get("created_at")?,
        previous_secret_until: row.try_get("previous_secret_until")?,
    })
}

/// Registers an endpoint (already checked); returns it and its secret. It receives the
/// events written from now on.
pub async fn create(db: &Db, url: &str, description: &str, event_types: Option<Vec<String>>, now: i64) -> Result<(Endpoint, String), StoreError> {
    let id = format!("ep_{}", alloy::hex::encode(rand::random::<[u8; 12]>()));
    let secret = signing::new_secret();
    let filter = event_types.as_ref().map(|f| serde_json::to_string(f).expect("strings serialise"));
    let mut tx = db.begin_write().await?;
    let from: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox_events").fetch_one(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, description, secret, event_types, enabled, from_seq, created_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
    )
    .bind(&id)
    .bind(url)
    .bind(description)
    .bind(&secret)
    .bind(filter)
    .bind(from)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let endpoint = get(db, &id).await?.ok_or(StoreError::Corrupt("webhook_endpoints"))?;
    Ok((endpoint, secret))
}

/// Lists the endpoints that are not deleted, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Endpoint>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY created_at, id")).fetch_all(db.pool()).await?;
    rows.iter().map(endpoint_from).collect()
}

/// Returns whether endpoint `id` exists or existed (a deleted endpoint keeps its log).
pub async fn ever_existed(db: &Db, id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query("SELECT id FROM webhook_endpoints WHERE id = $1").bind(id).fetch_optional(db.pool()).await?.is_some())
}

/// Returns an endpoint that is not deleted.
pub async fn get(db: &Db, id: &str) -> Result<Option<Endpoint>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL")).bind(id).fetch_optional(db.pool()).await?;
    row.as_ref().map(endpoint_from).transpose()
}

/// What an update changes; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct Patch {
    /// New URL (already checked).
    pub url: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New filter: `Some(None)` receives every event.
    pub event_types: Option<Option<Vec<String>>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Applies `patch`; returns the endpoint afterwards, or None when there is no such endpoint.
pub async fn update(db: &Db, id: &str, patch: &Patch, now_ms: i64) -> Result<Option<Endpoint>, StoreError> {
    let mut tx = db.begin_write().await?;
    let exists = sqlx::query("SELECT id FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL").bind(id).fetch_optional(&mut *tx).await?;
    if exists.is_none() {
        tx.commit().await?;
        return Ok(None);
    }
    if let Some(url) = &patch.url {
        sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE id = $2").bind(url).bind(id).execute(&mut *tx).await?;
    }
    if let Some(description) = &patch.description {
        sqlx::query("UPDATE webhook_endpoints SET description = $1 WHERE id = $2").bind(description).bind(id).execute(&mut *tx).await?;
    }
    if let Some(filter) = &patch.event_types {
        let filter = filter.as_ref().map(|f| serde_json::to_string(f).expect("strings serialise"));
        sqlx::query("UPDATE webhook_endpoints SET event_types = $1 WHERE id = $2").bind(filter).bind(id).execute(&mut *tx).await?;
    }
    if let Some(enabled) = patch.enabled {
        sqlx::query(
            "UPDATE webhook_endpoints SET enabled = $1, disabled_reason = CASE WHEN $1 = 1 THEN NULL ELSE 'disabled through the API' END WHERE id = $2",
        )
        .bind(i64::from(enabled))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if !enabled {
            super::delivery::cancel_pending(&mut tx, id, now_ms, "endpoint disabled through the API").await?;
        }
    }
    tx.commit().await?;
    get(db, id).await
}

/// Deletes an endpoint (kept for the delivery log) and cancels its pending deliveries;
/// returns whether it existed.
pub async fn delete(db: &Db, id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query("UPDATE webhook_endpoints SET deleted_at = $1, enabled = 0 WHERE id = $2 AND deleted_at IS NULL")
        .bind(now_ms / 1000)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        tx.commit().await?;
        return Ok(false);
    }
    super::delivery::cancel_pending(&mut tx, id, now_ms, "endpoint deleted").await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives an endpoint a new secret; the old one keeps signing until `now + overlap_secs`.
/// Returns the new secret and that time, or None when there is no such endpoint.
pub async fn rotate(db: &Db, id: &str, now: i64, overlap_secs: u64) -> Result<Option<(String, i64)>, StoreError> {
    let secret = signing::new_secret();
    let until = now + overlap_secs as i64;
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $1, secret = $2 \
         WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(until)
    .bind(&secret)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.commit().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some((secret, until)))
}

/// Returns what signs for endpoint `id` at `now`, or None when it is deleted.
pub async fn signing_target(conn: &mut sqlx::AnyConnection, id: &str, now: i64) -> Result<Option<SigningTarget>, StoreError> {
    let row = sqlx::query("SELECT url, secret, previous_secret, previous_secret_until, enabled FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let secret: String = row.try_get("secret")?;
    let mut keys = vec![signing::secret_key(&secret).ok_or(StoreError::Corrupt("webhook_endpoints.secret"))?];
    let previous: Option<String> = row.try_get("previous_secret")?;
    let until: Option<i64> = row.try_get("previous_secret_until")?;
    if let (Some(previous), Some(until)) = (previous, until)
        && until > now
        && let Some(key) = signing::secret_key(&previous)
    {
        keys.push(key);
    }
    Ok(Some(SigningTarget { url: row.try_get("url")?, keys, enabled: row.try_get::<i64, _>("enabled")? != 0 }))
}

/// Why an event could not be queued again.
#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    /// No such event.
    #[error("no event {0}")]
    UnknownEvent(String),
    /// No such endpoint.
    #[error("no webhook endpoint {0}")]
    UnknownEndpoint(String),
    /// The endpoint is disabled, or no enabled endpoint takes the event.
    #[error("{0}")]
    NoTarget(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues event `event_id` again, with the same `webhook-id`, for `endpoint` or for every
/// enabled endpoint whose filter takes it; returns the new delivery ids. A redelivery goes
/// behind what the endpoint already has pending.
pub async fn redeliver(db: &Db, event_id: &str, endpoint: Option<&str>, now_ms: i64) -> Result<Vec<i64>, RedeliverError> {
    let mut tx = db.begin_write().await?;
    let event = sqlx::query("SELECT seq, event_type FROM outbox_events WHERE id = $1")
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .ok_or_else(|| RedeliverError::UnknownEvent(event_id.to_string()))?;
    let seq: i64 = event.try_get("seq").map_err(StoreError::from)?;
    let event_type: String = event.try_get("event_type").map_err(StoreError::from)?;
    let rows = sqlx::query("SELECT id, event_types, enabled FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY id")
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let mut targets = Vec::new();
    for row in &rows {
        let id: String = row.try_get("id").map_err(StoreError::from)?;
        let enabled = row.try_get::<i64, _>("enabled").map_err(StoreError::from)? != 0;
        let filter: Option<Vec<String>> =
            row.try_get::<Option<String>, _>("event_types").map_err(StoreError::from)?.and_then(|f| serde_json::from_str(&f).ok());
        match endpoint {
            Some(wanted) if wanted == id => {
                if !enabled {
                    return Err(RedeliverError::NoTarget(format!("webhook endpoint {id} is disabled; enable it first")));
                }
                targets.push(id);
            }
            Some(_) => {}
            None if enabled && filter_matches(filter.as_deref(), &event_type) => targets.push(id),
            None => {}
        }
    }
    if targets.is_empty() {
        return Err(match endpoint {
            Some(wanted) => RedeliverError::UnknownEndpoint(wanted.to_string()),
            None => RedeliverError::NoTarget(format!("no enabled webhook endpoint takes {event_type} events")),
        });
    }
    let mut ids = Vec::new();
    for target in targets {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (endpoint_id, event_seq, event_id, event_type, status, next_attempt_ms, created_ms) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $5) RETURNING id",
        )
        .bind(&target)
        .bind(seq)
        .bind(event_id)
        .bind(&event_type)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        ids.push(id);
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(ids)
}

/// One delivery attempt, as the delivery log shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    /// Attempt id.
    pub id: i64,
    /// The delivery it belongs to.
    pub delivery_id: i64,
    /// The event (the `webhook-id` header).
    pub event_id: String,
    /// The event's name.
    pub event_type: String,
    /// 1 for the first attempt of the delivery.
    pub attempt: i64,
    /// When it was made, unix milliseconds.
    pub attempted_ms: i64,
    /// The endpoint's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// Milliseconds until the answer (or the failure).
    pub latency_ms: i64,
    /// Why there was no usable answer (timeout, refused, blocked address, …).
    pub error: Option<String>,
    /// The first bytes of the answer's body.
    pub response_excerpt: Option<String>,
}

/// One event queued for one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// Delivery id.
    pub id: i64,
    /// The event (the `webhook-id` header).
    pub event_id: String,
    /// The event's name.
    pub event_type: String,
    /// `pending`, `delivered`, `failed` (schedule exhausted or 410) or `canceled`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, unix milliseconds (pending deliveries).
    pub next_attempt_ms: Option<i64>,
    /// When it was queued, unix milliseconds.
    pub created_ms: i64,
    /// When it ended, unix milliseconds.
    pub finished_ms: Option<i64>,
    /// The last HTTP status received.
    pub last_status: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
}

/// Returns an endpoint's deliveries, newest first, below `before` (a delivery id).
pub async fn deliveries(db: &Db, endpoint: &str, status: Option<&str>, before: Option<i64>, limit: i64) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, event_id, event_type, status, attempts, next_attempt_ms, created_ms, finished_ms, last_status, last_error \
         FROM webhook_deliveries WHERE endpoint_id = $1 AND id < $2 AND ($3 = '' OR status = $3) ORDER BY id DESC LIMIT $4",
    )
    .bind(endpoint)
    .bind(before.unwrap_or(i64::MAX))
    .bind(status.unwrap_or(""))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(Delivery {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                next_attempt_ms: (status == "pending").then(|| r.try_get("next_attempt_ms")).transpose()?,
                status,
                attempts: r.try_get("attempts")?,
                created_ms: r.try_get("created_ms")?,
                finished_ms: r.try_get("finished_ms")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}

/// Returns an endpoint's attempts, newest first, below `before` (an attempt id), optionally
/// for one event.
pub async fn attempts(db: &Db, endpoint: &str, event_id: Option<&str>, before: Option<i64>, limit: i64) -> Result<Vec<Attempt>, StoreError> {
    let rows = sqlx::query(
        "SELECT a.id, a.delivery_id, a.event_id, d.event_type, a.attempt, a.attempted_ms, a.status_code, a.latency_ms, a.error, a.response_excerpt \
         FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
         WHERE a.endpoint_id = $1 AND a.id < $2 AND ($3 = '' OR a.event_id = $3) ORDER BY a.id DESC LIMIT $4",
    )
    .bind(endpoint)
    .bind(before.unwrap_or(i64::MAX))
    .bind(event_id.unwrap_or(""))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                id: r.try_get("id")?,
                delivery_id: r.try_get("delivery_id")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                attempt: r.try_get("attempt")?,
                attempted_ms: r.try_get("attempted_ms")?,
                status_code: r.try_get("status_code")?,
                latency_ms: r.try_get("latency_ms")?,
                error: r.try_get("error")?,
                response_excerpt: r.try_get("response_excerpt")?,
            })
        })
        .collect()
}
