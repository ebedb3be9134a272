//! Endpoint logic that is more than storage: new endpoints get an id and a secret, a
//! rotation a new secret, and a redelivery chooses its endpoints. Secrets are stored as
//! they are (signing needs them) and leave the service only once: in the answer that
//! creates or rotates them. Reads and plain updates are [`crate::store::webhooks`]'s.

use super::{filter_matches, signing};
use crate::store::{
    Db, StoreError, outbox,
    webhooks::{
        deliveries::{self, NewDelivery},
        endpoints::{self, Endpoint, NewEndpoint},
    },
};

/// Registers an endpoint (already checked); returns it and its secret. It receives the
/// events written from now on.
pub async fn create(db: &Db, url: &str, description: &str, event_types: Option<Vec<String>>, now: i64) -> Result<(Endpoint, String), StoreError> {
    let id = format!("ep_{}", alloy::hex::encode(rand::random::<[u8; 12]>()));
    let secret = signing::new_secret();
    let new = NewEndpoint { id: &id, url, description, secret: &secret, event_types: event_types.as_deref() };
    let endpoint = endpoints::insert(db, &new, now).await?;
    Ok((endpoint, secret))
}

/// Gives an endpoint a new secret; the old one keeps signing until `now + overlap_secs`.
/// Returns the new secret and that time, or None when there is no such endpoint.
pub async fn rotate(db: &Db, id: &str, now: i64, overlap_secs: u64) -> Result<Option<(String, i64)>, StoreError> {
    let secret = signing::new_secret();
    let until = now + overlap_secs as i64;
    Ok(endpoints::rotate(db, id, &secret, until).await?.then_some((secret, until)))
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
    let event = outbox::find_held(&mut tx, event_id, db.backend()).await?.ok_or_else(|| RedeliverError::UnknownEvent(event_id.to_string()))?;
    let mut targets = Vec::new();
    for route in endpoints::routes(&mut tx).await? {
        match endpoint {
            Some(wanted) if wanted == route.id => {
                if !route.enabled {
                    return Err(RedeliverError::NoTarget(format!("webhook endpoint {} is disabled; enable it first", route.id)));
                }
                targets.push(route.id);
            }
            Some(_) => {}
            None if route.enabled && filter_matches(route.event_types.as_deref(), &event.event_type) => targets.push(route.id),
            None => {}
        }
    }
    if targets.is_empty() {
        return Err(match endpoint {
            Some(wanted) => RedeliverError::UnknownEndpoint(wanted.to_string()),
            None => RedeliverError::NoTarget(format!("no enabled webhook endpoint takes {} events", event.event_type)),
        });
    }
    let mut ids = Vec::new();
    for target in targets {
        let delivery = NewDelivery {
            endpoint_id: target,
            event_seq: event.seq,
            event_id: event_id.to_string(),
            event_type: event.event_type.clone(),
            next_attempt_ms: now_ms,
            created_ms: now_ms,
        };
        ids.push(deliveries::queue_one(&mut tx, &delivery).await?);
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(ids)
}
