//! Read caches that never serve a value older than the last committed write they could
//! have seen.
//!
//! Every [`super::WriteTx`] of this process moves a generation counter after it commits.
//! On PostgreSQL, where other instances write too, a trigger on `subscriptions` sends a
//! `NOTIFY` at every commit that changes it and a listener here moves the same counter;
//! while that listener is not connected (starting, or reconnecting after a lost
//! connection, when notifications may have been missed) caching is off. A cache entry
//! carries the generation read *before* its database read, so an entry that raced a
//! write is already stale when it is stored.
//!
//! The same counter wakes what waits for commits ([`Changes::subscribe`]): checkout event
//! streams re-read a checkout only after a commit that could have moved it.
//!
//! SQLite has one process writing (leader election and several instances need
//! PostgreSQL); a write to the file from another process — nothing in `tmai-pay` writes
//! subscriptions outside the service — is seen by caches only at the next write here.

use std::{
    hash::Hash,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// The PostgreSQL channel the `subscriptions` trigger notifies (migration 0006).
pub const CHANNEL: &str = "tmai_pay_changes";

/// The generation counter and whether it can be trusted.
#[derive(Debug)]
pub(crate) struct Changes {
    generation: AtomicU64,
    coherent: AtomicBool,
    /// PostgreSQL URL for the listener (none on SQLite, where this process is the writer).
    listen_url: Option<String>,
    listener: OnceLock<ListenerTask>,
    /// Sends the generation after each move, to whoever waits for commits.
    wake: tokio::sync::watch::Sender<u64>,
    /// Counts every commit that may have written events (this process's commits, those that
    /// keep read caches too, and on PostgreSQL other instances' `outbox_events` inserts):
    /// the webhook sender waits on it instead of polling.
    written: tokio::sync::watch::Sender<u64>,
}

/// Aborts the listener when the last handle to the database is dropped.
#[derive(Debug)]
struct ListenerTask(tokio::task::JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Changes {
    pub(crate) fn new(listen_url: Option<String>) -> Self {
        Self {
            generation: AtomicU64::new(0),
            coherent: AtomicBool::new(listen_url.is_none()),
            listen_url,
            listener: OnceLock::new(),
            wake: tokio::sync::watch::channel(0).0,
            written: tokio::sync::watch::channel(0).0,
        }
    }

    /// Records a committed write that leaves read caches valid (it may still have written
    /// events).
    pub(crate) fn wrote(&self) {
        self.written.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Returns a receiver that sees every commit that may have written events ([`Self::wrote`],
    /// [`Self::bump`]). Starts the listener.
    pub(crate) fn subscribe_writes(self: &Arc<Self>) -> tokio::sync::watch::Receiver<u64> {
        let _ = self.generation();
        self.written.subscribe()
    }

    /// Records a committed write.
    pub(crate) fn bump(&self) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.send_replace(generation);
        self.wrote();
    }

    /// Returns a receiver that sees every move of the generation (commits of this process,
    /// and on PostgreSQL the `subscriptions` commits of others). Starts the listener.
    pub(crate) fn subscribe(self: &Arc<Self>) -> tokio::sync::watch::Receiver<u64> {
        let _ = self.generation();
        self.wake.subscribe()
    }

    /// Returns the generation to tag a read with, or `None` when caching is off. Starts
    /// the PostgreSQL listener on first use, so processes that never read through a cache
    /// hold no extra connection.
    pub(crate) fn generation(self: &Arc<Self>) -> Option<u64> {
        if let Some(url) = &self.listen_url {
            self.listener.get_or_init(|| ListenerTask(tokio::spawn(listen(url.clone(), Arc::downgrade(self)))));
        }
        // Read the generation first: a write committed after this read moves it on.
        let generation = self.generation.load(Ordering::Acquire);
        self.coherent.load(Ordering::Acquire).then_some(generation)
    }

    /// Stops the listener (the pool is closing).
    pub(crate) fn stop(&self) {
        self.coherent.store(self.listen_url.is_none(), Ordering::Release);
        if let Some(task) = self.listener.get() {
            task.0.abort();
        }
    }
}

/// The payload of the `NOTIFY` an `outbox_events` insert sends (migration 0021): events to
/// deliver, nothing a read cache holds.
const OUTBOX_PAYLOAD: &str = "outbox";

/// Follows `NOTIFY`s on [`CHANNEL`]; caching is on only while it is connected.
async fn listen(url: String, changes: std::sync::Weak<Changes>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "read cache listener cannot connect; caching stays off");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "read cache listener cannot LISTEN; caching stays off");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        {
            let Some(changes) = changes.upgrade() else { return };
            // Anything committed before LISTEN was missed: start a new generation.
            changes.bump();
            changes.coherent.store(true, Ordering::Release);
        }
        loop {
            let received = listener.try_recv().await;
            let Some(changes) = changes.upgrade() else { return };
            match received {
                Ok(Some(n)) if n.payload() == OUTBOX_PAYLOAD => changes.wrote(),
                Ok(Some(_)) => changes.bump(),
                Ok(None) | Err(_) => {
                    // Notifications may have been lost: nothing cached can be trusted.
                    changes.coherent.store(false, Ordering::Release);
                    changes.bump();
                    tracing::warn!("read cache listener lost its connection; caching is off until it reconnects");
                    break;
                }
            }
        }
    }
}

/// A bounded cache whose entries are valid for one generation of [`Changes`].
#[derive(Debug, Clone)]
pub struct ReadCache<K: Eq + Hash + Clone, V: Clone> {
    entries: Arc<quick_cache::sync::Cache<K, (u64, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> ReadCache<K, V> {
    /// Returns a cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { entries: Arc::new(quick_cache::sync::Cache::new(capacity.max(1))) }
    }

    /// Returns the value for `key` if it was read in `generation`.
    pub fn get(&self, key: &K, generation: u64) -> Option<V> {
        self.entries.get(key).and_then(|(at, value)| (at == generation).then_some(value))
    }

    /// Stores `value`, read in `generation`.
    pub fn insert(&self, key: K, generation: u64, value: V) {
        self.entries.insert(key, (generation, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_valid_only_in_the_generation_it_was_read() {
        let changes = Arc::new(Changes::new(None));
        let cache: ReadCache<u32, &str> = ReadCache::new(10);
        let read_at = changes.generation().expect("SQLite caches at once");
        cache.insert(1, read_at, "before");
        assert_eq!(cache.get(&1, changes.generation().unwrap()), Some("before"));

        // A write commits while a read is in flight: the read was tagged before the write,
        // so what it stores is stale on arrival.
        let in_flight = changes.generation().unwrap();
        changes.bump();
        cache.insert(2, in_flight, "raced");
        assert_eq!(cache.get(&2, changes.generation().unwrap()), None);
        assert_eq!(cache.get(&1, changes.generation().unwrap()), None, "every entry is stale after a write");
    }

    #[tokio::test]
    async fn a_commit_wakes_those_waiting_for_one() {
        let changes = Arc::new(Changes::new(None));
        let mut commits = changes.subscribe();
        let waiting = tokio::spawn(async move { commits.changed().await.is_ok() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "woken without a commit");
        changes.bump();
        assert!(tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn postgres_caching_is_off_until_the_listener_is_connected() {
        // Nothing listens on port 9: the listener never connects, caching never turns on.
        let changes = Arc::new(Changes::new(Some("postgres://postgres@127.0.0.1:9/none".into())));
        assert_eq!(changes.generation(), None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(changes.generation(), None);
        changes.stop();
    }
}
