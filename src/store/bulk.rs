//! Set-based SQL for hot paths: multi-row `INSERT … VALUES (…), (…)` and `IN (…)` lists
//! with numbered placeholders that both SQLite and PostgreSQL accept, chunked under both
//! databases' parameter limits. One statement per chunk instead of one per row is what
//! lets a backfill keep up with the node.

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::StoreError;

/// Parameters per statement: PostgreSQL takes up to 65,535; SQLite's binding of numbered
/// parameters slows down sharply with thousands per statement (measured: 2,000 rows × 15
/// columns in one statement took 25× longer than in chunks), so it gets its classic 999.
fn max_params(conn: &AnyConnection) -> usize {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") { 999 } else { 30_000 }
}

/// One bound value.
#[derive(Debug, Clone)]
pub enum Value {
    /// An integer.
    I64(i64),
    /// An integer or NULL.
    OptI64(Option<i64>),
    /// Bytes (addresses, hashes, amounts).
    Bytes(Vec<u8>),
    /// Text.
    Text(String),
    /// Text or NULL.
    OptText(Option<String>),
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    value: &Value,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match value {
        Value::I64(v) => query.bind(*v),
        Value::OptI64(v) => query.bind(*v),
        Value::Bytes(v) => query.bind(v.clone()),
        Value::Text(v) => query.bind(v.clone()),
        Value::OptText(v) => query.bind(v.clone()),
    }
}

/// Returns `($first, $first+1, …)` with `n` placeholders.
fn placeholders(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("({})", list.join(", "))
}

/// Runs `head VALUES (…), (…) tail` over `rows` in chunks; returns the rows `tail`'s
/// `RETURNING` clause yields (empty without one) and the total rows affected.
pub async fn insert(
    conn: &mut AnyConnection,
    head: &str,
    rows: &[Vec<Value>],
    tail: &str,
) -> Result<(Vec<AnyRow>, u64), StoreError> {
    let Some(width) = rows.first().map(Vec::len) else { return Ok((Vec::new(), 0)) };
    let per_chunk = (max_params(conn) / width).max(1);
    let (mut returned, mut affected) = (Vec::new(), 0);
    for chunk in rows.chunks(per_chunk) {
        let values: Vec<String> = (0..chunk.len()).map(|r| placeholders(r * width + 1, width)).collect();
        let sql = format!("{head} VALUES {} {tail}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for row in chunk {
            for value in row {
                query = bind(query, value);
            }
        }
        if tail.contains("RETURNING") {
            let rows = query.fetch_all(&mut *conn).await?;
            affected += rows.len() as u64;
            returned.extend(rows);
        } else {
            affected += query.execute(&mut *conn).await?.rows_affected();
        }
    }
    Ok((returned, affected))
}

/// Runs `before (…) after` with the values as an `IN` list, in chunks, binding `leading`
/// first (`$1…`) and the list after it; returns the fetched rows.
pub async fn fetch_in(
    conn: &mut AnyConnection,
    before: &str,
    after: &str,
    leading: &[Value],
    list: &[Value],
) -> Result<Vec<AnyRow>, StoreError> {
    let mut out = Vec::new();
    for chunk in list.chunks(max_params(conn) - leading.len()) {
        let sql = format!("{before} {} {after}", placeholders(leading.len() + 1, chunk.len()));
        let mut query = sqlx::query(&sql);
        for value in leading.iter().chain(chunk) {
            query = bind(query, value);
        }
        out.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// Runs `before (…) after` (an UPDATE or DELETE) over the `IN` list in chunks; returns
/// the rows affected.
pub async fn execute_in(
    conn: &mut AnyConnection,
    before: &str,
    after: &str,
    leading: &[Value],
    list: &[Value],
) -> Result<u64, StoreError> {
    let mut affected = 0;
    for chunk in list.chunks(max_params(conn) - leading.len()) {
        let sql = format!("{before} {} {after}", placeholders(leading.len() + 1, chunk.len()));
        let mut query = sqlx::query(&sql);
        for value in leading.iter().chain(chunk) {
            query = bind(query, value);
        }
        affected += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(affected)
}

/// Reads an `i64` column from each row.
pub fn column_i64(rows: &[AnyRow], column: &str) -> Result<Vec<i64>, StoreError> {
    rows.iter().map(|r| r.try_get::<i64, _>(column).map_err(StoreError::from)).collect()
}
