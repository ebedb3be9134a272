//! The process's own SQLite write connection, for the hot write paths (the order writer
//! and the watcher's pass): rusqlite with statements prepared once and bound row by row,
//! run on a blocking thread, several statements per hand-over.
//!
//! sqlx runs every SQLite statement on a worker thread of its own and hands it over and
//! back, and its `Any` driver copies every row it returns; on a pass that writes tens of
//! thousands of rows that, not SQLite, was the cost. Writers still take the process's
//! write gate ([`super::Db::sqlite_write_gate`]), so this connection and the pool's never
//! write at the same time. Like the pool's connections it never checkpoints the WAL
//! inside a commit (`wal_autocheckpoint = 0`); committers wake the database's background
//! checkpointer instead.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use super::StoreError;

/// A lazily opened rusqlite connection to the database file, shared by the writers of one
/// [`super::Db`].
#[derive(Debug, Clone)]
pub(crate) struct SqliteConn {
    path: PathBuf,
    conn: Arc<Mutex<Option<rusqlite::Connection>>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e.to_string())
    }
}

fn open(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // The same settings as the pool's connections (WAL is a property of the file).
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -32768)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 67_108_864)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteConn {
    /// Returns the connection of the SQLite file at `path` (opened on first use).
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, conn: Default::default() }
    }

    /// Closes the connection (the pool is closing); a later call opens it again.
    pub(crate) fn close(&self) {
        if let Ok(mut conn) = self.conn.lock() {
            *conn = None;
        }
    }

    /// Runs `work` on the connection on a blocking thread. A failed `work` closes the
    /// connection, rolling back whatever it left open: the next call starts on a fresh one.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (path, conn) = (self.path.clone(), self.conn.clone());
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if guard.is_none() {
                *guard = Some(open(&path)?);
            }
            let result = work(guard.as_mut().expect("opened above"));
            if result.is_err() {
                *guard = None;
            }
            result
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("the SQLite writer thread failed: {e}")))?
    }

    /// Runs `work` in one write transaction (`BEGIN IMMEDIATE` … `COMMIT`) in a single
    /// hand-over to the blocking thread; `gate` is the process's write gate, held until it
    /// ends. A failed `work` is rolled back (the connection is closed).
    pub(crate) async fn transaction<R: Send + 'static>(
        &self,
        gate: tokio::sync::OwnedMutexGuard<()>,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let result = self
            .run(|conn| {
                if !conn.is_autocommit() {
                    conn.execute_batch("ROLLBACK")?;
                }
                conn.execute_batch("BEGIN IMMEDIATE")?;
                let out = work(conn)?;
                conn.execute_batch("COMMIT")?;
                Ok(out)
            })
            .await;
        drop(gate);
        result
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`) that later calls continue; `gate` is
    /// the process's write gate, held until the transaction ends.
    pub(crate) async fn begin(&self, gate: tokio::sync::OwnedMutexGuard<()>) -> Result<SqliteTx, StoreError> {
        self.run(|conn| {
            if !conn.is_autocommit() {
                // A transaction an aborted caller left open (its rollback is on its way, but
                // this connection is ours now).
                conn.execute_batch("ROLLBACK")?;
            }
            conn.execute_batch("BEGIN IMMEDIATE")?;
            Ok(())
        })
        .await?;
        Ok(SqliteTx { conn: self.clone(), gate: Some(gate), open: true })
    }
}

/// A write transaction on the [`SqliteConn`], spanning several [`SqliteTx::run`] calls.
/// Dropped without [`SqliteTx::commit`] (an error, or a cancelled task) it is rolled back
/// on a blocking thread, and the write gate opens only after that.
#[derive(Debug)]
pub(crate) struct SqliteTx {
    conn: SqliteConn,
    gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    open: bool,
}

impl SqliteTx {
    /// Runs `work` inside the transaction.
    pub(crate) async fn run<R: Send + 'static>(
        &mut self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let result = self
            .conn
            .run(|conn| {
                if conn.is_autocommit() {
                    return Err(StoreError::Sqlite("the transaction ended early (its connection was reset)".into()));
                }
                work(conn)
            })
            .await;
        if result.is_err() {
            // The connection was closed, which rolled the transaction back.
            self.open = false;
        }
        result
    }

    /// Commits the transaction.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.run(|conn| Ok(conn.execute_batch("COMMIT")?)).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let (conn, gate) = (self.conn.conn.clone(), self.gate.take());
        let roll_back = move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(c) = guard.as_ref()
                && !c.is_autocommit()
                && c.execute_batch("ROLLBACK").is_err()
            {
                *guard = None;
            }
            drop(gate);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(roll_back);
            }
            Err(_) => roll_back(),
        }
    }
}
