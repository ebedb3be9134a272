//! Fresh databases for tests: a temporary SQLite file or a new PostgreSQL database on
//! 127.0.0.1:5432 (trust auth, user postgres), and a macro running a test on both.

use tmai_pay::store::Db;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DbKind {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database; an SQLite file is deleted with the guard.
pub(crate) struct TestDb {
    pub(crate) db: Db,
    pub(crate) url: String,
    _dir: Option<tempfile::TempDir>,
}

/// Returns the PostgreSQL server URL (override with TEST_POSTGRES_URL).
pub(crate) fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// Creates a fresh database of `kind`.
pub(crate) async fn fresh_db(kind: DbKind) -> TestDb {
    match kind {
        DbKind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            TestDb { db: Db::connect(&url).await.unwrap(), url, _dir: Some(dir) }
        }
        DbKind::Postgres => {
            sqlx::any::install_default_drivers();
            let server = postgres_server();
            let name = format!("tmai_test_{}", alloy::hex::encode(rand_bytes()));
            let admin = sqlx::AnyPool::connect(&format!("{server}/postgres")).await.expect("PostgreSQL on 127.0.0.1:5432");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
            admin.close().await;
            let url = format!("{server}/{name}");
            TestDb { db: Db::connect(&url).await.unwrap(), url, _dir: None }
        }
    }
}

fn rand_bytes() -> [u8; 8] {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mix = alloy::primitives::keccak256(format!("{nanos}-{:?}", std::thread::current().id()));
    mix[..8].try_into().unwrap()
}

/// Runs `async fn scenario(kind: DbKind)` as two tests, `sqlite` and `postgres`.
macro_rules! on_both_databases {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::db::DbKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::db::DbKind::Postgres).await
            }
        }
    };
}
pub(crate) use on_both_databases;
