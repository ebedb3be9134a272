//! The outbox: events written in the same transaction as the state change they report,
//! each with a stable id derived from what happened, so a retried transaction or a
//! re-run after a crash writes the same id and the insert is a no-op.

use alloy::primitives::keccak256;
use serde::Serialize;
use sqlx::AnyConnection;

use super::{Db, StoreError};
use crate::events::EventType;

/// Returns a stable event id: `evt_` and 24 hex digits of the hash of the parts.
pub fn event_id<S: AsRef<str>>(parts: &[S]) -> String {
    let joined = parts.iter().map(AsRef::as_ref).collect::<Vec<&str>>().join("|");
    let digest = keccak256(joined.as_bytes());
    format!("evt_{}", alloy::hex::encode(&digest[..12]))
}

/// Returns a stable event id for an event that has a sequence number of its own (an order
/// id): `evt_`, the number as 12 hex digits, and 12 hex digits of the same digest as
/// [`event_id`]. Same length and alphabet as [`event_id`]'s, and new ones sort after older
/// ones, so storing one appends to the id index instead of rewriting a random page of it.
pub fn ordered_event_id(sequence: u64, parts: &[&str]) -> String {
    let digest = keccak256(parts.join("|").as_bytes());
    format!("evt_{sequence:012x}{}", alloy::hex::encode(&digest[..6]))
}

/// An event to write with [`write_all`], its body serialized once when it is made.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Stable id.
    pub id: String,
    /// Event type.
    pub event_type: EventType,
    /// The stored body: `{"id", "type", "data"}`.
    pub body: String,
}

impl NewEvent {
    /// Returns the event `id` of `event_type` with `data` as its body's `data`.
    pub fn new(id: String, event_type: EventType, data: &impl Serialize) -> Self {
        let body = body(&id, event_type.as_str(), data);
        Self { id, event_type, body }
    }
}

/// An event body as stored and delivered: `{"id", "type", "data"}`.
#[derive(Serialize)]
struct Body<'a, D: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a D,
}

/// Returns the stored body of an event, serialized from borrowed parts (no copy of `data`).
pub(crate) fn body(id: &str, event_type: &str, data: &impl Serialize) -> String {
    serde_json::to_string(&Body { id, event_type, data }).expect("an event body serializes")
}

/// Writes events in bulk with `now` (unix seconds) as their time, skipping ids that
/// exist; returns how many were written.
pub async fn write_all(conn: &mut AnyConnection, events: &[NewEvent], now: i64) -> Result<u64, StoreError> {
    use super::bulk::{Value, insert};
    let rows: Vec<Vec<Value>> =
        events.iter().map(|e| vec![Value::Text(e.id.clone()), Value::Text(e.event_type.to_string()), Value::Text(e.body.clone()), Value::I64(now)]).collect();
    let (_, written) = insert(conn, "INSERT INTO outbox_events (id, event_type, payload, created_at)", &rows, "ON CONFLICT (id) DO NOTHING").await?;
    Ok(written)
}

/// Writes events on the process's own SQLite connection ([`super::sqlite`]) inside its
/// transaction, skipping ids that exist, with `now` as their time.
pub(crate) fn write_all_sqlite<'a>(conn: &rusqlite::Connection, events: impl IntoIterator<Item = &'a NewEvent>, now: i64) -> rusqlite::Result<()> {
    let mut insert =
        conn.prepare_cached("INSERT INTO outbox_events (id, event_type, payload, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING")?;
    for e in events {
        insert.execute(rusqlite::params![e.id, e.event_type.as_str(), e.body, now])?;
    }
    Ok(())
}

/// Writes one event with `now` (unix seconds) as its time unless an event with the same
/// id exists; returns whether it wrote.
pub async fn write(conn: &mut AnyConnection, id: &str, event_type: EventType, payload: &impl Serialize, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("INSERT INTO outbox_events (id, event_type, payload, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING")
        .bind(id)
        .bind(event_type.as_str())
        .bind(body(id, event_type.as_str(), payload))
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position in the outbox.
    pub seq: i64,
    /// Stable id.
    pub id: String,
    /// Event name (`payment.confirmed`, …).
    pub event_type: String,
    /// JSON body: `{"id", "type", "data"}`.
    pub payload: serde_json::Value,
    /// Unix time written.
    pub created_at: i64,
}

fn stored_event(r: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
    use sqlx::Row;
    let payload: String = r.try_get("payload")?;
    Ok(StoredEvent {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        event_type: r.try_get("event_type")?,
        payload: serde_json::from_str(&payload).map_err(|_| StoreError::Corrupt("outbox_events.payload"))?,
        created_at: r.try_get("created_at")?,
    })
}

/// Returns up to `limit` events after position `after`, of `event_type` when given, in
/// order (the merchant's event list).
pub async fn page(db: &Db, after: i64, event_type: Option<&str>, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows =
        sqlx::query("SELECT seq, id, event_type, payload, created_at FROM outbox_events WHERE seq > $1 AND ($2 = '' OR event_type = $2) ORDER BY seq LIMIT $3")
            .bind(after)
            .bind(event_type.unwrap_or_default().to_string())
            .bind(limit)
            .fetch_all(db.pool())
            .await?;
    rows.iter().map(stored_event).collect()
}

/// Returns every event in order (tests and the future delivery worker's backfill).
pub async fn all(pool: &sqlx::AnyPool) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query("SELECT seq, id, event_type, payload, created_at FROM outbox_events ORDER BY seq").fetch_all(pool).await?;
    rows.iter().map(stored_event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_have_the_usual_shape_and_sort_by_sequence() {
        let plain = event_id(&["checkout.created", "chk_a"]);
        let ids: Vec<String> = [1u64, 2, 255, 256, 70_000, 0xffff_ffff_ffff].iter().map(|&n| ordered_event_id(n, &["checkout.created", "chk_a"])).collect();
        for id in &ids {
            assert_eq!(id.len(), plain.len(), "{id} against {plain}");
            assert!(id.starts_with("evt_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // Stable: the same inputs give the same id; other parts give another.
        assert_eq!(ordered_event_id(7, &["checkout.created", "chk_a"]), ordered_event_id(7, &["checkout.created", "chk_a"]));
        assert_ne!(ordered_event_id(7, &["checkout.created", "chk_a"]), ordered_event_id(7, &["checkout.created", "chk_b"]));
        assert_eq!(&ids[0][16..], &plain[4..16], "the tail is the digest's first six bytes");
    }
}
