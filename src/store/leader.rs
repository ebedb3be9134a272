//! Leader election for the work that must run once (watcher, later the minter): on
//! PostgreSQL a session advisory lock held on a dedicated connection, so when the leader
//! dies its connection closes, the lock is freed and a standby takes over within one retry
//! interval. SQLite is single-instance: the process is always the leader.

use std::time::Duration;

use sqlx::{Connection, Row};
use tokio_util::sync::CancellationToken;

use super::{Backend, Db, StoreError};

/// Advisory lock key of the watcher ("tmai" in ASCII).
pub const WATCHER_LOCK: i64 = 0x746d_6169;

/// Advisory lock key of the badge minter.
pub const MINTER_LOCK: i64 = 0x746d_6169 + 1;

/// Advisory lock key of the webhook delivery worker.
pub const WEBHOOK_LOCK: i64 = 0x746d_6169 + 2;

/// Advisory lock key of the pruning of unpaid checkouts.
pub const RETENTION_LOCK: i64 = 0x746d_6169 + 3;
/// The renewer's lock (one instance charges renewal mandates).
pub const RENEWER_LOCK: i64 = 0x746d_6169 + 4;

/// Runs `work` while this process holds `lock`; on losing the lock (connection lost) the
/// work's token is cancelled and the election starts again. Returns when `cancel` fires.
pub async fn run_as_leader<F, Fut>(db: &Db, lock: i64, retry: Duration, cancel: CancellationToken, work: F) -> Result<(), StoreError>
where
    F: Fn(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if db.backend() == Backend::Sqlite {
        tracing::info!("SQLite: single instance, running as leader");
        work(cancel.clone()).await;
        return Ok(());
    }
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let attempt = async {
            let mut conn = db.pool().acquire().await?.detach();
            let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)").bind(lock).fetch_one(&mut conn).await?.try_get(0)?;
            Ok::<_, sqlx::Error>(got.then_some(conn))
        };
        match attempt.await {
            Ok(Some(mut conn)) => {
                tracing::info!(lock, "became leader");
                let term = cancel.child_token();
                let watch = term.clone();
                let work_done = work(term.clone());
                let guard = async {
                    loop {
                        tokio::select! {
                            _ = watch.cancelled() => return,
                            _ = tokio::time::sleep(retry) => {}
                        }
                        if conn.ping().await.is_err() {
                            tracing::warn!(lock, "lost the leader connection; stepping down");
                            watch.cancel();
                            return;
                        }
                    }
                };
                tokio::join!(work_done, guard);
                term.cancel();
                let _ = conn.close().await;
            }
            Ok(None) => tracing::debug!(lock, "another instance leads; standing by"),
            Err(error) => tracing::warn!(%error, "leader election failed; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(retry) => {}
        }
    }
}
