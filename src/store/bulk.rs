//! Set-based SQL for hot paths: multi-row inserts and `IN (…)` lists, one statement per
//! chunk instead of one per row, which is what lets a backfill keep up with the node.
//!
//! PostgreSQL gets `VALUES (…), (…)` with numbered placeholders. SQLite gets the whole
//! chunk as **one** JSON text parameter unpacked by `json_each` (blobs as hex, `unhex`):
//! sqlx binds SQLite parameters one by one, and binding cost, not SQL, dominated the
//! backfill (measured: hundreds of thousands of bound values per 10,000 payments).
//! PostgreSQL keeps its placeholders: the same one-JSON-parameter statements there
//! (`json_array_elements`, integers cast, blobs through `decode`) made the growth bench's
//! seeding of 100,000 members slower, not faster (the payments' writes 29.7 s against
//! 16.4 s, the fan-out 17.1 s against 15.0 s; 2026-12-07): the server's JSON unpacking
//! costs more than the binding it saves.

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::StoreError;

/// Parameters per statement: PostgreSQL takes up to 65,535; SQLite's binding of numbered
/// parameters slows down sharply with thousands per statement (measured: 2,000 rows × 15
/// columns in one statement took 25× longer than in chunks), so it gets its classic 999.
fn max_params(conn: &AnyConnection) -> usize {
    if is_sqlite(conn) { 999 } else { 30_000 }
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
    /// Bytes or NULL.
    OptBytes(Option<Vec<u8>>),
    /// Text.
    Text(String),
    /// Text or NULL.
    OptText(Option<String>),
}

fn bind<'q>(query: super::AnyQuery<'q>, value: &Value) -> super::AnyQuery<'q> {
    match value {
        Value::I64(v) => query.bind(*v),
        Value::OptI64(v) => query.bind(*v),
        Value::Bytes(v) => query.bind(v.clone()),
        Value::OptBytes(v) => query.bind(v.clone()),
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
pub async fn insert(conn: &mut AnyConnection, head: &str, rows: &[Vec<Value>], tail: &str) -> Result<(Vec<AnyRow>, u64), StoreError> {
    let Some(width) = rows.first().map(Vec::len) else { return Ok((Vec::new(), 0)) };
    if is_sqlite(conn) {
        return insert_json(conn, head, rows, tail, width).await;
    }
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
        affected += run(conn, query, tail.contains("RETURNING"), &mut returned).await?;
    }
    Ok((returned, affected))
}

/// Runs one chunk's statement: fetches the rows of a `RETURNING` clause into `returned`;
/// returns the rows affected.
async fn run<'q>(conn: &mut AnyConnection, query: super::AnyQuery<'q>, returning: bool, returned: &mut Vec<AnyRow>) -> Result<u64, StoreError> {
    if returning {
        let rows = query.fetch_all(&mut *conn).await?;
        let n = rows.len() as u64;
        returned.extend(rows);
        Ok(n)
    } else {
        Ok(query.execute(&mut *conn).await?.rows_affected())
    }
}

/// Rows per SQLite statement on the JSON path.
const JSON_CHUNK: usize = 5_000;

/// Whether `conn` is SQLite's (the store's statements differ by backend in a few places).
pub(crate) fn is_sqlite(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("sqlite")
}

/// Appends `value` to `out` as JSON (bytes as a hex string).
fn push_json(out: &mut String, value: &Value) {
    use std::fmt::Write;
    match value {
        Value::I64(v) | Value::OptI64(Some(v)) => {
            let _ = write!(out, "{v}");
        }
        Value::OptI64(None) | Value::OptText(None) | Value::OptBytes(None) => out.push_str("null"),
        Value::Bytes(b) | Value::OptBytes(Some(b)) => {
            out.push('"');
            out.push_str(&alloy::hex::encode(b));
            out.push('"');
        }
        Value::Text(t) | Value::OptText(Some(t)) => out.push_str(&serde_json::to_string(t.as_str()).expect("a string serializes")),
    }
}

/// Returns the SQL that reads element `index` of a `json_each` row as `like`'s type.
fn json_column(index: usize, like: &Value, source: &str) -> String {
    match like {
        Value::Bytes(_) | Value::OptBytes(_) => format!("unhex({source} ->> {index})"),
        _ => format!("{source} ->> {index}"),
    }
}

async fn insert_json(conn: &mut AnyConnection, head: &str, rows: &[Vec<Value>], tail: &str, width: usize) -> Result<(Vec<AnyRow>, u64), StoreError> {
    let columns: Vec<String> = (0..width).map(|i| json_column(i, &rows[0][i], "value")).collect();
    // `WHERE true` keeps SQLite from reading an upsert's ON CONFLICT as a join constraint.
    let sql = format!("{head} SELECT {} FROM json_each($1) WHERE true {tail}", columns.join(", "));
    let (mut returned, mut affected) = (Vec::new(), 0);
    for chunk in rows.chunks(JSON_CHUNK) {
        let mut json = String::with_capacity(chunk.len() * width * 24);
        json.push('[');
        for (r, row) in chunk.iter().enumerate() {
            if r > 0 {
                json.push(',');
            }
            json.push('[');
            for (i, value) in row.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                push_json(&mut json, value);
            }
            json.push(']');
        }
        json.push(']');
        let query = sqlx::query(&sql).bind(json);
        affected += run(conn, query, tail.contains("RETURNING"), &mut returned).await?;
    }
    Ok((returned, affected))
}

/// Returns `(SELECT … FROM json_each($n))` for a SQLite `IN` list and the JSON to bind.
fn json_list(list: &[Value], parameter: usize) -> (String, String) {
    let mut json = String::from("[");
    for (i, value) in list.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json(&mut json, value);
    }
    json.push(']');
    let column = match list.first() {
        Some(Value::Bytes(_)) => "unhex(value)",
        _ => "value",
    };
    (format!("(SELECT {column} FROM json_each(${parameter}))"), json)
}

/// Returns the statements `before (…) after` over the `IN` list in chunks, each with its
/// values to bind (`leading` first): numbered placeholders on PostgreSQL, one JSON
/// parameter unpacked by `json_each` on SQLite.
fn in_list_statements(conn: &AnyConnection, before: &str, after: &str, leading: &[Value], list: &[Value]) -> Vec<(String, Vec<Value>)> {
    if is_sqlite(conn) {
        return list
            .chunks(JSON_CHUNK)
            .map(|chunk| {
                let (subquery, json) = json_list(chunk, leading.len() + 1);
                (format!("{before} {subquery} {after}"), leading.iter().cloned().chain([Value::Text(json)]).collect())
            })
            .collect();
    }
    list.chunks(max_params(conn) - leading.len())
        .map(|chunk| {
            let sql = format!("{before} {} {after}", placeholders(leading.len() + 1, chunk.len()));
            (sql, leading.iter().chain(chunk).cloned().collect())
        })
        .collect()
}

/// Runs `before (…) after` with the values as an `IN` list, in chunks, binding `leading`
/// first (`$1…`) and the list after it; returns the fetched rows.
pub async fn fetch_in(conn: &mut AnyConnection, before: &str, after: &str, leading: &[Value], list: &[Value]) -> Result<Vec<AnyRow>, StoreError> {
    let mut out = Vec::new();
    for (sql, values) in in_list_statements(conn, before, after, leading, list) {
        let query = values.iter().fold(sqlx::query(&sql), bind);
        out.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// Runs `before (…) after` (an UPDATE or DELETE) over the `IN` list in chunks; returns
/// the rows affected.
pub async fn execute_in(conn: &mut AnyConnection, before: &str, after: &str, leading: &[Value], list: &[Value]) -> Result<u64, StoreError> {
    let mut affected = 0;
    for (sql, values) in in_list_statements(conn, before, after, leading, list) {
        let query = values.iter().fold(sqlx::query(&sql), bind);
        affected += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(affected)
}

/// Reads an `i64` column from each row.
pub fn column_i64(rows: &[AnyRow], column: &str) -> Result<Vec<i64>, StoreError> {
    rows.iter().map(|r| r.try_get::<i64, _>(column).map_err(StoreError::from)).collect()
}
