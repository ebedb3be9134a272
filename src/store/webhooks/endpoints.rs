//! `webhook_endpoints`: a merchant's receiving endpoints, their secrets, filters and
//! whether they are enabled. A deleted endpoint keeps its row (`deleted_at`) so its
//! delivery log stays readable. Secrets are stored as they are: signing needs them.

use serde::Serialize;
use sqlx::{AnyConnection, Row, any::AnyRow};
use utoipa::ToSchema;

use super::deliveries;
use crate::store::{Db, StoreError, outbox};

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

/// An endpoint to register with [`insert`] (URL and filter already checked).
#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    /// Endpoint id (`ep_…`).
    pub id: &'a str,
    /// Where deliveries are POSTed.
    pub url: &'a str,
    /// Free text for the merchant.
    pub description: &'a str,
    /// The signing secret.
    pub secret: &'a str,
    /// Event names or families it receives; None: every event.
    pub event_types: Option<&'a [String]>,
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

/// The stored secrets of an endpoint that is not deleted, as signing reads them.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The endpoint's URL.
    pub url: String,
    /// The current secret.
    pub secret: String,
    /// The secret before the last rotation, if any.
    pub previous_secret: Option<String>,
    /// Until when (unix time) the previous secret also signs.
    pub previous_secret_until: Option<i64>,
    /// Whether deliveries are made.
    pub enabled: bool,
}

/// What decides which events an endpoint (not deleted) is sent.
#[derive(Debug, Clone)]
pub struct Route {
    /// Endpoint id.
    pub id: String,
    /// Event names or families it receives; None: every event.
    pub event_types: Option<Vec<String>>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// It receives the events from this outbox position on.
    pub from_seq: i64,
}

const COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, created_at, previous_secret_until";

/// Decodes a stored filter (a JSON array of names, or NULL for every event).
fn filter_from(row: &AnyRow) -> Result<Option<Vec<String>>, StoreError> {
    let filter: Option<String> = row.try_get("event_types")?;
    filter.map(|f| serde_json::from_str(&f).map_err(|_| StoreError::Corrupt("webhook_endpoints.event_types"))).transpose()
}

/// Encodes a filter as it is stored.
fn filter_text(filter: Option<&[String]>) -> Option<String> {
    filter.map(|f| serde_json::to_string(f).expect("strings serialise"))
}

fn endpoint_from(row: &AnyRow) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: filter_from(row)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: row.try_get("created_at")?,
        previous_secret_until: row.try_get("previous_secret_until")?,
    })
}

/// Registers `endpoint` at `now` (unix time), enabled, receiving the events written from
/// now on; returns it.
pub async fn insert(db: &Db, endpoint: &NewEndpoint<'_>, now: i64) -> Result<Endpoint, StoreError> {
    let mut tx = db.begin_write().await?;
    let from = outbox::next_seq(&mut tx).await?;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, description, secret, event_types, enabled, from_seq, created_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
    )
    .bind(endpoint.id)
    .bind(endpoint.url)
    .bind(endpoint.description)
    .bind(endpoint.secret)
    .bind(filter_text(endpoint.event_types))
    .bind(from)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    get(db, endpoint.id).await?.ok_or(StoreError::Corrupt("webhook_endpoints"))
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

/// Applies `patch`; returns the endpoint afterwards, or None when there is no such endpoint.
/// Disabling cancels its pending deliveries in the same transaction.
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
        sqlx::query("UPDATE webhook_endpoints SET event_types = $1 WHERE id = $2").bind(filter_text(filter.as_deref())).bind(id).execute(&mut *tx).await?;
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
            deliveries::cancel_pending(&mut tx, id, now_ms, "endpoint disabled through the API").await?;
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
    deliveries::cancel_pending(&mut tx, id, now_ms, "endpoint deleted").await?;
    tx.commit().await?;
    Ok(true)
}

/// Makes `secret` an endpoint's secret; the one before keeps signing until `until` (unix
/// time). Returns whether there is such an endpoint.
pub async fn rotate(db: &Db, id: &str, secret: &str, until: i64) -> Result<bool, StoreError> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $1, secret = $2 \
         WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(until)
    .bind(secret)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() != 0)
}

/// Disables an endpoint for `reason` (its pending deliveries are the caller's to cancel,
/// in the same transaction: [`deliveries::cancel_pending`]).
pub async fn disable(conn: &mut AnyConnection, id: &str, reason: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1 WHERE id = $2").bind(reason).bind(id).execute(conn).await?;
    Ok(())
}

/// Returns the secrets of endpoint `id`, or None when it is deleted.
pub async fn secrets(conn: &mut AnyConnection, id: &str) -> Result<Option<Secrets>, StoreError> {
    let row = sqlx::query("SELECT url, secret, previous_secret, previous_secret_until, enabled FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Secrets {
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_until: row.try_get("previous_secret_until")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
    }))
}

/// Returns the routes of every endpoint that is not deleted, enabled or not, by id.
pub async fn routes(conn: &mut AnyConnection) -> Result<Vec<Route>, StoreError> {
    let rows = sqlx::query("SELECT id, event_types, enabled, from_seq FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY id").fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(Route {
                id: row.try_get("id")?,
                event_types: filter_from(row)?,
                enabled: row.try_get::<i64, _>("enabled")? != 0,
                from_seq: row.try_get("from_seq")?,
            })
        })
        .collect()
}

/// Returns the ids of the enabled endpoints, in order.
pub async fn enabled_ids(db: &Db) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM webhook_endpoints WHERE enabled = 1 AND deleted_at IS NULL ORDER BY id").fetch_all(db.pool()).await?)
}
