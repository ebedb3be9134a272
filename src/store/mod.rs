//! Storage: one sqlx `AnyPool` over SQLite (a file, nothing to install) or PostgreSQL,
//! migrated at start-up. Chain values are stored as fixed-width big-endian bytes so they
//! round-trip without loss; the helpers here convert.

use alloy::primitives::{Address, B256, U256};
use sqlx::{
    AnyPool,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::Migrator,
};

pub mod api_keys;
pub mod auth_nonces;
pub mod auth_sessions;
pub mod badges;
pub mod bulk;
pub mod card;
pub mod card_sessions;
pub mod changes;
pub mod comp_grants;
pub mod customers;
pub mod leader;
pub mod ledger;
pub mod mandates;
pub mod notices;
pub mod order_pricing;
pub mod orders;
pub mod outbox;
pub mod receipts;
pub(crate) mod sqlite;
pub mod subscriptions;
pub mod switches;
pub mod webhooks;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// A statement on the pool's any-database driver, as the store's helpers bind it.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// Migrating the schema failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value does not decode (a corrupted row).
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// A write shared with other requests (a group commit) failed.
    #[error("database write failed: {0}")]
    Batch(String),
    /// The service's own SQLite write connection failed.
    #[error("SQLite write failed: {0}")]
    Sqlite(String),
    /// The URL is not a supported database.
    #[error("unsupported database URL (use sqlite:… or postgres:…)")]
    Unsupported,
}

/// A migrated connection pool.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer: writers queue here, in order, instead of in SQLite's busy
    /// handler (which sleeps and retries, so waiting writers see long tail latencies).
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Moved by every committed write; read caches check it ([`changes`]).
    changes: std::sync::Arc<changes::Changes>,
    /// New orders waiting for their group commit, and the order ids reserved for them.
    orders: std::sync::Arc<orders::OrderQueue>,
    /// SQLite: wakes the checkpointer after each write commit.
    checkpoints: Option<tokio::sync::mpsc::Sender<()>>,
    /// SQLite file: the process's own write connection for the hot write paths.
    sqlite: Option<sqlite::SqliteConn>,
}

/// A write transaction on a connection of its own; on SQLite it also holds the process's
/// write gate. Derefs to the connection. Dropped without [`WriteTx::commit`] (an error, or
/// a cancelled task), the connection is **closed** rather than returned to the pool, which
/// rolls the transaction back: a pooled connection can never be left inside a transaction
/// by a task cancelled at the wrong moment.
#[derive(Debug)]
pub struct WriteTx {
    // Declared first so it is closed before the gate opens.
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    committed: bool,
    /// Told after the commit: that read caches are stale, unless `keep_caches`, and in any
    /// case that something (events, perhaps) was written.
    changes: std::sync::Arc<changes::Changes>,
    keep_caches: bool,
    checkpoints: Option<tokio::sync::mpsc::Sender<()>>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits the transaction; read caches then drop what they hold.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        sqlx::query("COMMIT").execute(&mut *self.conn).await?;
        self.committed = true;
        if self.keep_caches {
            self.changes.wrote();
        } else {
            self.changes.bump();
        }
        if let Some(checkpoints) = &self.checkpoints
            && let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = checkpoints.try_send(())
        {
            // The checkpointer's runtime is gone (a Db outliving the runtime that opened
            // it): checkpoint here, as SQLite's automatic checkpoint would have. Full, on
            // the other hand, means a checkpoint is already due and covers this commit.
            let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *self.conn).await;
        }
        Ok(())
    }

    /// Declares that this transaction writes nothing a read cache holds (today: nothing
    /// in `subscriptions`), so committing it leaves the caches' entries valid. Without
    /// this every commit invalidates them, which is always safe.
    pub fn keep_read_caches(&mut self) {
        self.keep_caches = true;
    }
}

/// Frames of the log left for the checkpoint that holds the write gate, at most (about
/// 1 MiB), unless writers outpace four copies in a row.
const GATED_FRAMES: i64 = 256;

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` after write commits, at most every 200 ms, so
/// that SQLite's automatic checkpoint (disabled on the pool's connections) does not land
/// inside a writer's commit. Durability is unchanged (the WAL holds every committed
/// transaction until it is copied). The task ends when every [`Db`] clone is gone or the
/// pool is closed.
///
/// SQLite starts the WAL over only when a writer begins while the log is fully copied. A
/// checkpoint beside a steady stream of commits never leaves it so (measured: 90,000
/// frames, 350 MB, after 8 s of checkouts, and checkpoints of 100 ms that stalled the
/// writers' appends), so each round copies what is there while writers go on, then
/// copies the few frames committed meanwhile once more while holding the process's write
/// gate: the next writer then finds the log fully copied and starts it over. The copies
/// outside the gate repeat (a few times at most) until fewer than [`GATED_FRAMES`] are
/// left, so writers wait only for a short copy: under a steady stream of checkouts one
/// gated copy of a whole round's backlog and its fsync held the writers up to 60 ms.
fn spawn_checkpointer(pool: AnyPool, gate: std::sync::Arc<tokio::sync::Mutex<()>>) -> tokio::sync::mpsc::Sender<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if pool.is_closed() {
                break;
            }
            let round = async {
                let mut conn = pool.acquire().await?;
                for _ in 0..4 {
                    // (busy, frames in the log, frames copied)
                    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?;
                    let (log, copied): (i64, i64) = (sqlx::Row::try_get(&row, 1)?, sqlx::Row::try_get(&row, 2)?);
                    if log - copied < GATED_FRAMES {
                        break;
                    }
                }
                let _gate = gate.lock().await;
                sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *conn).await
            };
            if let Err(error) = round.await {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(%error, "SQLite checkpoint failed; retrying after the next commit");
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    tx
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl Db {
    /// Connects to `url` (creating an SQLite file when missing) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            // The hot write paths open the file with a connection of their own, which an
            // in-memory database (one per connection, or one shared cache) cannot share.
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Err(StoreError::Connect(sqlx::Error::Configuration(
                    "an in-memory SQLite database is not supported: use a file (sqlite://path.db)".into(),
                )));
            }
            let url = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Unsupported);
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // In WAL mode NORMAL syncs at checkpoints instead of every commit: a
                        // killed process loses nothing committed (only a power cut can lose
                        // the last commits), and a commit no longer waits for fsync.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = NORMAL").await?;
                        // A backfill pass writes tens of MB in one transaction: with the
                        // default 2 MB page cache SQLite spills dirty pages to the WAL and
                        // reads them back mid-transaction. 32 MiB per connection (used only
                        // as pages are touched) holds a 10,000-payment pass.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA cache_size = -32768").await?;
                        sqlx::Executor::execute(&mut *conn, "PRAGMA temp_store = MEMORY").await?;
                        // Checkpoints run on a task of their own (`spawn_checkpointer`), not
                        // inside the commit that happens to cross 1,000 WAL pages: a large
                        // commit no longer waits for a copy and fsync of the whole WAL.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA wal_autocheckpoint = 0").await?;
                        // After a burst (a backfill's pass) the WAL file is cut back to
                        // 64 MiB when the log starts over, instead of keeping its peak size.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA journal_size_limit = 67108864").await?;
                    }
                    Ok(())
                })
            })
            .acquire_timeout(std::time::Duration::from_secs(10));
        let pool = options.connect(&url).await.map_err(StoreError::Connect)?;
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; it is a property of the file.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        let write_gate: std::sync::Arc<tokio::sync::Mutex<()>> = Default::default();
        let checkpoints = (backend == Backend::Sqlite).then(|| spawn_checkpointer(pool.clone(), write_gate.clone()));
        let listen_url = (backend == Backend::Postgres).then(|| url.clone());
        // The hot write paths open the same SQLite file themselves: every SQLite Db has this
        // connection.
        let sqlite = match backend {
            Backend::Sqlite => {
                let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url).map_err(StoreError::Connect)?;
                Some(sqlite::SqliteConn::new(options.get_filename().to_path_buf()))
            }
            Backend::Postgres => None,
        };
        Ok(Self { pool, backend, write_gate, changes: std::sync::Arc::new(changes::Changes::new(listen_url)), orders: Default::default(), checkpoints, sqlite })
    }

    /// Returns the generation a read-through cache tags what it reads now with, or `None`
    /// when caching is off ([`changes`]).
    pub fn cache_generation(&self) -> Option<u64> {
        self.changes.generation()
    }

    /// Returns a receiver woken after each commit that may change what readers see: every
    /// [`WriteTx`] commit except those that keep read caches (new orders), the watcher's
    /// own SQLite commits, and on PostgreSQL other instances' `subscriptions` commits.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Returns a receiver woken after every commit that may have written events: this
    /// process's commits, and on PostgreSQL other instances' `outbox_events` inserts (the
    /// webhook sender waits on it).
    pub fn writes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe_writes()
    }

    /// Begins a write transaction on the process's own SQLite connection ([`sqlite`]),
    /// after this process's other writers (`None` where there is no such connection).
    pub(crate) async fn begin_sqlite(&self) -> Option<Result<sqlite::SqliteTx, StoreError>> {
        let conn = self.sqlite.as_ref()?;
        let gate = self.write_gate.clone().lock_owned().await;
        Some(conn.begin(gate).await)
    }

    /// Runs `work` in one write transaction on the process's own SQLite connection, after
    /// this process's other writers, in one hand-over (`None` where there is no such
    /// connection).
    pub(crate) async fn sqlite_transaction<R: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Option<Result<R, StoreError>> {
        let conn = self.sqlite.as_ref()?;
        let gate = self.write_gate.clone().lock_owned().await;
        Some(conn.transaction(gate, work).await)
    }

    /// Tells read caches and the checkpointer that a write outside [`Db::begin_write`]
    /// committed; `caches`: whether it may have changed what read caches hold.
    pub(crate) fn committed_outside(&self, caches: bool) {
        if caches {
            self.changes.bump();
        } else {
            self.changes.wrote();
        }
        if let Some(checkpoints) = &self.checkpoints {
            let _ = checkpoints.try_send(());
        }
    }

    /// Returns the queue of new orders.
    pub(crate) fn orders(&self) -> &std::sync::Arc<orders::OrderQueue> {
        &self.orders
    }

    /// Returns the pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Returns which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first fails with
    /// `SQLITE_BUSY_SNAPSHOT` when another writer commits before its first write, while an
    /// immediate one waits its turn. Writers of this process queue on an async gate first,
    /// so SQLite's busy handler only sees other processes. PostgreSQL needs nothing special.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let (gate, begin) = match self.backend {
            Backend::Sqlite => (Some(self.write_gate.clone().lock_owned().await), "BEGIN IMMEDIATE"),
            Backend::Postgres => (None, "BEGIN"),
        };
        let mut conn = self.pool.acquire().await?;
        if let Err(error) = sqlx::query(begin).execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(error.into());
        }
        Ok(WriteTx { conn, committed: false, changes: self.changes.clone(), keep_caches: false, checkpoints: self.checkpoints.clone(), _gate: gate })
    }

    /// Returns whether the database answers a query (readiness).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Returns the next block the watcher reads on `chain_id` (`chain_cursor`), if it has
    /// read any.
    pub async fn next_block(&self, chain_id: u64) -> Result<Option<i64>, StoreError> {
        Ok(ledger::next_block(self, chain_id).await?.map(|n| n as i64))
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.changes.stop();
        if let Some(sqlite) = &self.sqlite {
            sqlite.close();
        }
        self.pool.close().await;
    }
}

/// Encodes an address as its 20 bytes.
pub fn address_bytes(a: Address) -> Vec<u8> {
    a.to_vec()
}

/// Encodes a 256-bit value as 32 big-endian bytes.
pub fn u256_bytes(v: U256) -> Vec<u8> {
    v.to_be_bytes::<32>().to_vec()
}

/// Encodes a hash as its 32 bytes.
pub fn b256_bytes(h: B256) -> Vec<u8> {
    h.to_vec()
}

/// Decodes a stored address.
pub fn to_address(bytes: &[u8], column: &'static str) -> Result<Address, StoreError> {
    (bytes.len() == 20).then(|| Address::from_slice(bytes)).ok_or(StoreError::Corrupt(column))
}

/// Decodes a stored 256-bit value.
pub fn to_u256(bytes: &[u8], column: &'static str) -> Result<U256, StoreError> {
    (bytes.len() == 32).then(|| U256::from_be_slice(bytes)).ok_or(StoreError::Corrupt(column))
}

/// Decodes a stored hash.
pub fn to_b256(bytes: &[u8], column: &'static str) -> Result<B256, StoreError> {
    (bytes.len() == 32).then(|| B256::from_slice(bytes)).ok_or(StoreError::Corrupt(column))
}

/// Returns the current unix time in seconds, for tests and benchmarks; the service reads
/// every time from its one clock ([`crate::clock::Clock`]).
#[cfg(feature = "test-hooks")]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
