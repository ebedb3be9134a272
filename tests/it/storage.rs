//! SQLite's write-ahead log under a steady stream of commits.

use std::time::{Duration, Instant};

use sqlx::Row;
use tmai_pay::store::outbox;

use crate::db::{DbKind, fresh_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_log_starts_over_under_steady_commits() {
    // Arrange: a fresh SQLite file
    let test_db = fresh_db(DbKind::Sqlite).await;

    // Act: commits back to back for three seconds, the checkpointer running beside them
    let (started, mut commits) = (Instant::now(), 0i64);
    while started.elapsed() < Duration::from_secs(3) {
        let mut tx = test_db.db.begin_write().await.unwrap();
        let id = format!("evt_steady_{commits}");
        outbox::write(&mut tx, &id, crate::event_schemas::sample(commits as u64, 300), tmai_pay::store::unix_now()).await.unwrap();
        tx.commit().await.unwrap();
        commits += 1;
    }

    // Assert: each commit appends at least one frame, so a log that never started over
    // would hold at least as many frames as there were commits
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(test_db.db.pool()).await.unwrap();
    let frames: i64 = row.try_get(1).unwrap();
    assert!(commits > 300, "only {commits} commits in three seconds");
    assert!(frames < commits / 2, "the log holds {frames} frames after {commits} commits: it never started over");
}

#[tokio::test]
async fn an_in_memory_sqlite_database_is_refused() {
    // Arrange: URLs of an in-memory database; the service writes through a second
    // connection to the same file, which such a database does not have
    for url in ["sqlite::memory:", "sqlite://:memory:", "sqlite://orders.db?mode=memory"] {
        // Act
        let refused = tmai_pay::store::Db::connect(url).await;

        // Assert
        let error = refused.expect_err(url);
        assert!(error.to_string().contains("in-memory SQLite database is not supported"), "{url}: {error}");
    }
}
