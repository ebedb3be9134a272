//! The store's set-based statements (`store::bulk`) on both databases: every kind of value
//! survives the trip (SQLite's one JSON parameter per chunk, PostgreSQL's numbered
//! placeholders: extreme integers, NULLs, text JSON must escape, bytes with zeros), rows
//! keep the order they were given across chunk boundaries, an upsert tail still applies,
//! and `IN` lists of integers, text and bytes find exactly their rows.

use sqlx::Row;
use tmai_pay::store::bulk::{Value, execute_in, fetch_in, insert};

use crate::db::{DbKind, fresh_db, on_both_databases};

/// More rows than one statement carries, so chunk boundaries are crossed.
const ROWS: i64 = 12_001;

fn text_of(i: i64) -> String {
    match i % 5 {
        0 => format!("plain {i}"),
        1 => format!("quote \" backslash \\ slash / {i}"),
        2 => format!("line\nbreak\ttab\r{i}"),
        3 => format!("ünïcødé ✓ 🦀 {i}"),
        _ => format!("{{\"json\": [{i}]}}"),
    }
}

fn bytes_of(i: i64) -> Vec<u8> {
    match i % 4 {
        0 => Vec::new(),
        1 => vec![0; 32],
        2 => i.to_be_bytes().to_vec(),
        _ => (0..=255u8).collect(),
    }
}

fn number_of(i: i64) -> i64 {
    match i % 4 {
        0 => i64::MIN + i,
        1 => i64::MAX - i,
        2 => -i,
        _ => i,
    }
}

fn row(i: i64) -> Vec<Value> {
    vec![
        Value::I64(number_of(i)),
        Value::OptI64((i % 3 != 0).then_some(i)),
        Value::Text(text_of(i)),
        Value::OptText((i % 2 == 0).then(|| text_of(i + 1))),
        Value::Bytes(bytes_of(i)),
        Value::OptBytes((i % 7 != 0).then(|| bytes_of(i + 1))),
        Value::I64(i),
    ]
}

async fn bulk_statements_keep_every_value_and_the_order(kind: DbKind) {
    // Arrange: a table with a column of each kind and ids from a sequence
    let test_db = fresh_db(kind).await;
    let ddl = match kind {
        DbKind::Sqlite => {
            "CREATE TABLE probe (id INTEGER PRIMARY KEY AUTOINCREMENT, n BIGINT NOT NULL, on_ BIGINT, t TEXT NOT NULL, ot TEXT, \
             b BLOB NOT NULL, ob BLOB, k INTEGER NOT NULL UNIQUE)"
        }
        DbKind::Postgres => {
            "CREATE TABLE probe (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, on_ BIGINT, t TEXT NOT NULL, ot TEXT, \
             b BYTEA NOT NULL, ob BYTEA, k INTEGER NOT NULL UNIQUE)"
        }
    };
    sqlx::query(ddl).execute(test_db.db.pool()).await.unwrap();
    let rows: Vec<Vec<Value>> = (0..ROWS).map(row).collect();
    let head = "INSERT INTO probe (n, on_, t, ot, b, ob, k)";
    let mut tx = test_db.db.begin_write().await.unwrap();

    // Act: insert them all, returning what was written
    let (returned, written) = insert(&mut tx, head, &rows, "RETURNING id, k").await.unwrap();

    // Assert: every row written, returned and numbered in the order given
    assert_eq!(written, ROWS as u64);
    let keys: Vec<i64> = returned.iter().map(|r| r.try_get::<i64, _>("k").unwrap()).collect();
    assert_eq!(keys, (0..ROWS).collect::<Vec<_>>(), "rows returned out of order");
    let ids: Vec<i64> = returned.iter().map(|r| r.try_get::<i64, _>("id").unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids do not follow the order the rows were given in");

    // Assert: each value reads back as it went in
    let stored = sqlx::query("SELECT n, on_, t, ot, b, ob, k FROM probe ORDER BY id").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(stored.len(), ROWS as usize);
    for (i, r) in stored.iter().enumerate() {
        let i = i as i64;
        assert_eq!(r.try_get::<i64, _>("k").unwrap(), i);
        assert_eq!(r.try_get::<i64, _>("n").unwrap(), number_of(i), "row {i}: n");
        assert_eq!(r.try_get::<Option<i64>, _>("on_").unwrap(), (i % 3 != 0).then_some(i), "row {i}: on_");
        assert_eq!(r.try_get::<String, _>("t").unwrap(), text_of(i), "row {i}: t");
        assert_eq!(r.try_get::<Option<String>, _>("ot").unwrap(), (i % 2 == 0).then(|| text_of(i + 1)), "row {i}: ot");
        assert_eq!(r.try_get::<Vec<u8>, _>("b").unwrap(), bytes_of(i), "row {i}: b");
        assert_eq!(r.try_get::<Option<Vec<u8>>, _>("ob").unwrap(), (i % 7 != 0).then(|| bytes_of(i + 1)), "row {i}: ob");
    }

    // Act: the same rows again behind an upsert tail that skips what exists, plus one new
    let mut again = rows.clone();
    again.push(row(ROWS));
    let (_, added) = insert(&mut tx, head, &again, "ON CONFLICT (k) DO NOTHING").await.unwrap();

    // Assert: only the new row
    assert_eq!(added, 1);

    // Act: IN lists of integers, text and bytes, each across a chunk boundary, with a
    // leading bound value before the list
    let wanted: Vec<i64> = (0..ROWS).filter(|i| i % 3 == 1).collect();
    let by_key = fetch_in(
        &mut tx,
        "SELECT k FROM probe WHERE k >= $1 AND k IN",
        "ORDER BY k",
        &[Value::I64(0)],
        &wanted.iter().map(|&k| Value::I64(k)).chain([Value::I64(-5)]).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let by_text =
        fetch_in(&mut tx, "SELECT k FROM probe WHERE t IN", "", &[], &wanted.iter().map(|&k| Value::Text(text_of(k))).collect::<Vec<_>>()).await.unwrap();
    let by_bytes = fetch_in(&mut tx, "SELECT DISTINCT b FROM probe WHERE b IN", "", &[], &[Value::Bytes(bytes_of(2)), Value::Bytes(vec![9, 9])]).await.unwrap();
    let updated = execute_in(
        &mut tx,
        "UPDATE probe SET ot = $1 WHERE k IN",
        "",
        &[Value::Text("marked".into())],
        &wanted.iter().map(|&k| Value::I64(k)).collect::<Vec<_>>(),
    )
    .await
    .unwrap();

    // Assert: exactly the rows asked for
    let keys: Vec<i64> = by_key.iter().map(|r| r.try_get::<i64, _>("k").unwrap()).collect();
    assert_eq!(keys, wanted);
    let mut keys: Vec<i64> = by_text.iter().map(|r| r.try_get::<i64, _>("k").unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(keys, wanted);
    let found: Vec<Vec<u8>> = by_bytes.iter().map(|r| r.try_get::<Vec<u8>, _>("b").unwrap()).collect();
    assert_eq!(found, vec![bytes_of(2)]);
    assert_eq!(updated, wanted.len() as u64);
    let marked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM probe WHERE ot = 'marked'").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(marked, wanted.len() as i64);
    tx.commit().await.unwrap();
}

on_both_databases!(bulk_statements_keep_every_value_and_the_order);
