//! Bounds on checkout event streams: how many are open at once over all clients and per
//! client (`http.max_event_streams`, `http.max_event_streams_per_client`; beyond, 429). A
//! stream holds a [`StreamSlot`] for as long as it is open; dropping the stream (the client
//! went away, the stream ended) gives the slot back.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::http::StatusCode;

use super::error::ApiError;

/// Open streams, counted overall and per client.
#[derive(Debug)]
pub struct StreamCaps {
    global: usize,
    per_client: usize,
    open: std::sync::Mutex<Open>,
    /// Reads of a checkout by open streams after their first (each after a wake-up).
    reads: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Clients with at least one open stream (an entry leaves with its last stream).
    by_client: HashMap<IpAddr, usize>,
}

/// One open stream's place; given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    caps: Arc<StreamCaps>,
    client: IpAddr,
}

impl StreamCaps {
    /// Returns caps of `global` streams overall and `per_client` per client.
    pub fn new(global: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self { global: global.max(1), per_client: per_client.max(1), open: Default::default(), reads: AtomicU64::new(0) })
    }

    /// Takes a slot for `client`, or refuses with 429 when the client or the service is at
    /// its cap.
    pub fn acquire(self: &Arc<Self>, client: IpAddr) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().expect("stream counts are never poisoned");
        let mine = open.by_client.get(&client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("your address already has {mine} open event streams (at most {}); close one first", self.per_client),
            )
            .retry_after(5));
        }
        if open.total >= self.global {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "the service has as many event streams open as it takes; retry in a moment or poll GET /v1/checkouts/{id}",
            )
            .retry_after(5));
        }
        open.total += 1;
        *open.by_client.entry(client).or_default() += 1;
        metrics::gauge!("tmai_event_streams_open").set(open.total as f64);
        Ok(StreamSlot { caps: self.clone(), client })
    }

    /// Counts a stream's read of its checkout after a wake-up.
    pub(crate) fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tmai_event_stream_reads_total").increment(1);
    }

    /// Returns how many times open streams have read their checkout after a wake-up.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Returns the number of open streams.
    pub fn open(&self) -> usize {
        self.open.lock().expect("stream counts are never poisoned").total
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().expect("stream counts are never poisoned");
        open.total -= 1;
        metrics::gauge!("tmai_event_streams_open").set(open.total as f64);
        if let Some(count) = open.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_capped_per_client_and_overall_and_slots_come_back() {
        let caps = StreamCaps::new(3, 2);
        let (a, b, c) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap());
        let first = caps.acquire(a).unwrap();
        let _second = caps.acquire(a).unwrap();
        assert!(caps.acquire(a).is_err(), "a third stream for one client");
        let _other = caps.acquire(b).unwrap();
        assert!(caps.acquire(c).is_err(), "a fourth stream overall");
        drop(first);
        assert_eq!(caps.open(), 2);
        let _again = caps.acquire(c).unwrap();
        drop(_other);
        assert!(!caps.open.lock().unwrap().by_client.contains_key(&b), "a client without streams is forgotten");
    }
}
