//! `receipts`, `receipt_numbers` and `buyer_details`: the receipts and credit notes of
//! confirmed payments, numbered from one gap-free sequence ([`crate::billing::receipts`]
//! has the rules). Every statement on the tables, for both connections the service uses:
//! the watcher issues receipts in its pass (rusqlite on an SQLite file), card events and
//! refunds through sqlx.
//!
//! A number is taken by an `UPDATE` of the sequence's row in the transaction that issues
//! the document: a transaction that rolls back gives its number back, and a second issuer
//! waits on the row until the first commits, so numbers are neither skipped nor repeated.
//! A document already issued (its id is derived from what it documents) is not issued
//! again, and takes no number.

use alloy::primitives::{Address, B256, U256};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{Db, StoreError, address_bytes, b256_bytes, bulk::Value, to_address, to_b256};

/// A receipt, or a credit note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A confirmed payment's receipt.
    Receipt,
    /// A credit note cancelling (part of) a receipt.
    CreditNote,
}

impl DocumentKind {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::CreditNote => "credit_note",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "receipt" => Ok(Self::Receipt),
            "credit_note" => Ok(Self::CreditNote),
            _ => Err(StoreError::Corrupt("receipts.kind")),
        }
    }
}

/// How a payment was made, as its receipt shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaidWith {
    /// On chain: the `OrderPaid` log's transaction, in `amount` of the token's smallest unit.
    Chain {
        /// `payments.id`.
        payment_id: i64,
        /// Chain id.
        chain_id: u64,
        /// The transaction.
        tx_hash: B256,
        /// Its block.
        block_number: u64,
        /// The token paid in.
        token: Address,
        /// Its symbol (as the catalog names it when the receipt was issued).
        symbol: String,
        /// Its decimals.
        decimals: u8,
        /// Amount paid, smallest unit.
        amount: U256,
    },
    /// By card: the processor's payment, in cents of `currency`.
    Card {
        /// The card event that granted the time (`card_grants.event_id`).
        grant: String,
        /// The processor's payment (payment intent, invoice or charge id).
        payment: Option<String>,
        /// Amount collected, in cents.
        cents: u64,
        /// ISO currency code, lower case.
        currency: String,
    },
}

/// A receipt to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReceipt {
    /// Its id (derived from the payment and its revision: issuing twice issues once).
    pub id: String,
    /// The member.
    pub wallet: Address,
    /// The merchant's customer the wallet belongs to.
    pub customer_ref: Option<String>,
    /// Plan bought.
    pub plan_id: u32,
    /// Its name.
    pub plan_name: String,
    /// Periods bought.
    pub periods: u32,
    /// The time the payment covers: from.
    pub period_start: u64,
    /// To.
    pub period_end: u64,
    /// The payment.
    pub paid_with: PaidWith,
    /// Its value in micro-dollars at the quote's locked rate (dollar-priced orders; card
    /// payments in USD).
    pub usd_micro: Option<i64>,
    /// The locked rate (USD per token, decimal text).
    pub rate_usd: Option<String>,
}

/// A stored receipt or credit note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Its id.
    pub id: String,
    /// Its number in the merchant's sequence.
    pub number: u64,
    /// Receipt or credit note.
    pub kind: DocumentKind,
    /// A credit note: the receipt it credits.
    pub credits: Option<String>,
    /// A credit note: why (`reorged`, `refunded`).
    pub reason: Option<String>,
    /// A receipt: the credit note that cancelled it in full.
    pub cancelled_by: Option<String>,
    /// What it documents (a credit note: what it credits).
    pub issued: NewReceipt,
    /// The buyer's own details: name, address, tax id.
    pub buyer: BuyerDetails,
    /// When it was issued.
    pub issued_at: u64,
}

/// What a member may add to their receipts (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuyerDetails {
    /// Name or company.
    pub name: Option<String>,
    /// Postal address.
    pub address: Option<String>,
    /// Tax id (VAT number and the like).
    pub tax_id: Option<String>,
}

impl BuyerDetails {
    /// Whether none is given.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.address.is_none() && self.tax_id.is_none()
    }
}

const EXISTS: &str = "SELECT 1 FROM receipts WHERE id = $1";
const NEXT_NUMBER: &str = "UPDATE receipt_numbers SET last = last + 1 WHERE series = 'documents' RETURNING last";
const INSERT: &str = "INSERT INTO receipts (id, number, kind, wallet, customer_ref, plan_id, plan_name, periods, period_start, period_end, \
    payment_id, chain_id, tx_hash, block_number, token, token_symbol, token_decimals, amount, card_grant, card_payment, cents, currency, \
    usd_micro, rate_usd, issued_at, buyer_name, buyer_address, buyer_tax_id) \
    SELECT $1, $2, 'receipt', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, \
    b.name, b.address, b.tax_id FROM (SELECT 1 AS one) x LEFT JOIN buyer_details b ON b.wallet = $3";
/// A credit note copying the receipt `$6` it credits, for `$4` cents (NULL: all of it).
const CREDIT: &str = "INSERT INTO receipts (id, number, kind, credits, reason, wallet, customer_ref, plan_id, plan_name, periods, period_start, \
    period_end, payment_id, chain_id, tx_hash, block_number, token, token_symbol, token_decimals, amount, card_grant, card_payment, cents, \
    currency, usd_micro, rate_usd, buyer_name, buyer_address, buyer_tax_id, issued_at) \
    SELECT $1, $2, 'credit_note', id, $3, wallet, customer_ref, plan_id, plan_name, periods, period_start, period_end, payment_id, chain_id, \
    tx_hash, block_number, token, token_symbol, token_decimals, amount, card_grant, card_payment, COALESCE($4, cents), currency, \
    CASE WHEN $4 IS NULL THEN usd_micro ELSE NULL END, rate_usd, buyer_name, buyer_address, buyer_tax_id, $5 FROM receipts WHERE id = $6";
const CANCEL: &str = "UPDATE receipts SET cancelled_by = $1 WHERE id = $2";
const LIVE_OF_PAYMENT: &str = "SELECT id FROM receipts WHERE payment_id = $1 AND kind = 'receipt' AND cancelled_by IS NULL ORDER BY number DESC LIMIT 1";
const COLUMNS: &str = "id, number, kind, credits, reason, cancelled_by, wallet, customer_ref, plan_id, plan_name, periods, period_start, period_end, \
    payment_id, chain_id, tx_hash, block_number, token, token_symbol, token_decimals, amount, card_grant, card_payment, cents, currency, \
    usd_micro, rate_usd, buyer_name, buyer_address, buyer_tax_id, issued_at";

/// The bound values of [`INSERT`] for `r` at `now`, after `$1` and `$2`.
fn insert_values(r: &NewReceipt, now: u64) -> Vec<Value> {
    let none_i = Value::OptI64(None);
    let none_b = Value::OptBytes(None);
    let none_t = Value::OptText(None);
    let (chain, card) = match &r.paid_with {
        PaidWith::Chain { payment_id, chain_id, tx_hash, block_number, token, symbol, decimals, amount } => (
            vec![
                Value::OptI64(Some(*payment_id)),
                Value::OptI64(Some(*chain_id as i64)),
                Value::OptBytes(Some(b256_bytes(*tx_hash))),
                Value::OptI64(Some(*block_number as i64)),
                Value::OptBytes(Some(address_bytes(*token))),
                Value::OptText(Some(symbol.clone())),
                Value::OptI64(Some(i64::from(*decimals))),
                Value::OptText(Some(amount.to_string())),
            ],
            vec![none_t.clone(), none_t.clone(), none_i.clone(), none_t.clone()],
        ),
        PaidWith::Card { grant, payment, cents, currency } => (
            vec![none_i.clone(), none_i.clone(), none_b.clone(), none_i.clone(), none_b, none_t.clone(), none_i.clone(), none_t.clone()],
            vec![
                Value::OptText(Some(grant.clone())),
                Value::OptText(payment.clone()),
                Value::OptI64(Some(*cents as i64)),
                Value::OptText(Some(currency.clone())),
            ],
        ),
    };
    let mut values = vec![
        Value::Bytes(address_bytes(r.wallet)),
        Value::OptText(r.customer_ref.clone()),
        Value::I64(i64::from(r.plan_id)),
        Value::Text(r.plan_name.clone()),
        Value::I64(i64::from(r.periods)),
        Value::I64(r.period_start as i64),
        Value::I64(r.period_end as i64),
    ];
    values.extend(chain);
    values.extend(card);
    values.extend([Value::OptI64(r.usd_micro), Value::OptText(r.rate_usd.clone()), Value::I64(now as i64)]);
    values
}

fn bind_all<'q>(mut query: super::AnyQuery<'q>, values: &'q [Value]) -> super::AnyQuery<'q> {
    for v in values {
        query = match v {
            Value::I64(v) => query.bind(*v),
            Value::OptI64(v) => query.bind(*v),
            Value::Bytes(v) => query.bind(v.as_slice()),
            Value::OptBytes(v) => query.bind(v.as_deref()),
            Value::Text(v) => query.bind(v.as_str()),
            Value::OptText(v) => query.bind(v.as_deref()),
        };
    }
    query
}

fn sqlite_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::I64(v) => V::Integer(*v),
        Value::OptI64(v) => v.map_or(V::Null, V::Integer),
        Value::Bytes(v) => V::Blob(v.clone()),
        Value::OptBytes(v) => v.clone().map_or(V::Null, V::Blob),
        Value::Text(v) => V::Text(v.clone()),
        Value::OptText(v) => v.clone().map_or(V::Null, V::Text),
    }
}

fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Takes the next `count` numbers; returns the first.
const TAKE_NUMBERS: &str = "UPDATE receipt_numbers SET last = last + $1 WHERE series = 'documents' RETURNING last";

/// Issues `r` at `now` unless it was issued before; returns its number when issued now.
pub async fn issue(conn: &mut AnyConnection, r: &NewReceipt, now: u64) -> Result<Option<u64>, StoreError> {
    Ok(issue_all(conn, std::slice::from_ref(r), now).await?.pop().flatten())
}

/// Issues the receipts of `batch` not issued before, numbered in their order from one
/// reservation of the sequence; returns each one's number (`None`: issued before). On
/// PostgreSQL one statement per chunk ([`issue_chunk_pg`]): a round trip per receipt made a
/// backfill three times slower.
pub async fn issue_all(conn: &mut AnyConnection, batch: &[NewReceipt], now: u64) -> Result<Vec<Option<u64>>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    if !super::bulk::is_sqlite(conn) {
        let mut numbers = std::collections::HashMap::new();
        for chunk in batch.chunks(PG_CHUNK) {
            numbers.extend(issue_chunk_pg(conn, chunk, now).await?);
        }
        // A receipt named twice in the batch is numbered once, at its first place.
        let mut seen = std::collections::HashSet::new();
        return Ok(batch.iter().map(|r| if seen.insert(r.id.as_str()) { numbers.get(&r.id).copied() } else { None }).collect());
    }
    let mut issued = Vec::with_capacity(batch.len());
    for r in batch {
        issued.push(sqlx::query(EXISTS).bind(r.id.as_str()).fetch_optional(&mut *conn).await?.is_some());
    }
    let fresh = fresh_of(batch, &issued);
    let count = fresh.iter().filter(|f| **f).count() as i64;
    if count == 0 {
        return Ok(vec![None; batch.len()]);
    }
    let last: i64 = sqlx::query_scalar(TAKE_NUMBERS).bind(count).fetch_one(&mut *conn).await?;
    let numbers = numbered(&fresh, last);
    for (r, number) in batch.iter().zip(&numbers) {
        if let Some(number) = number {
            let mut values = vec![Value::Text(r.id.clone()), Value::I64(*number as i64)];
            values.extend(insert_values(r, now));
            bind_all(sqlx::query(INSERT), &values).execute(&mut *conn).await?;
        }
    }
    Ok(numbers)
}

/// Which receipts of `batch` to issue: those not `issued` before, each id once (its first
/// place in the batch).
fn fresh_of(batch: &[NewReceipt], issued: &[bool]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::with_capacity(batch.len());
    batch.iter().zip(issued).map(|(r, issued)| seen.insert(r.id.as_str()) && !issued).collect()
}

/// The numbers of the `fresh` receipts, in their order, when the sequence's reservation for
/// them ended at `last`.
fn numbered(fresh: &[bool], last: i64) -> Vec<Option<u64>> {
    let count = fresh.iter().filter(|f| **f).count() as i64;
    let mut next = last - count;
    fresh
        .iter()
        .map(|f| {
            f.then(|| {
                next += 1;
                next as u64
            })
        })
        .collect()
}

/// Receipts per PostgreSQL statement (23 parameters each, under the protocol's 65,535).
const PG_CHUNK: usize = 1_000;

/// The columns of a receipt's row in [`issue_chunk_pg`]'s `VALUES` (after `ord` and `id`,
/// as [`insert_values`] binds them, without `issued_at`).
const PG_COLUMNS: &str = "wallet, customer_ref, plan_id, plan_name, periods, period_start, period_end, payment_id, chain_id, tx_hash, \
    block_number, token, token_symbol, token_decimals, amount, card_grant, card_payment, cents, currency, usd_micro, rate_usd";

/// Issues one chunk on PostgreSQL in one statement: the receipts not issued before (the
/// first of any id named twice) take the next numbers in their order, from one `UPDATE` of
/// the sequence's row; returns the numbers issued, by id.
async fn issue_chunk_pg(conn: &mut AnyConnection, chunk: &[NewReceipt], now: u64) -> Result<std::collections::HashMap<String, u64>, StoreError> {
    let per_row = 23;
    let rows: Vec<String> = (0..chunk.len())
        .map(|i| {
            let first = i * per_row + 1;
            let list: Vec<String> = (first..first + per_row).map(|n| format!("${n}")).collect();
            format!("({})", list.join(", "))
        })
        .collect();
    let issued_at = chunk.len() * per_row + 1;
    let columns = PG_COLUMNS.replace(char::is_whitespace, "");
    let select_columns: Vec<String> = columns.split(',').map(|c| format!("n.{c}")).collect();
    let sql = format!(
        "WITH input (ord, id, {columns}) AS (VALUES {values}), \
         fresh AS (SELECT DISTINCT ON (i.id) i.* FROM input i WHERE NOT EXISTS (SELECT 1 FROM receipts r WHERE r.id = i.id) ORDER BY i.id, i.ord), \
         numbered AS (SELECT f.*, ROW_NUMBER() OVER (ORDER BY f.ord) AS n FROM fresh f), \
         taken AS (UPDATE receipt_numbers SET last = last + (SELECT COUNT(*) FROM numbered) WHERE series = 'documents' RETURNING last) \
         INSERT INTO receipts (id, number, kind, {columns}, issued_at, buyer_name, buyer_address, buyer_tax_id) \
         SELECT n.id, t.last - (SELECT COUNT(*) FROM numbered) + n.n, 'receipt', {selected}, ${issued_at}, b.name, b.address, b.tax_id \
         FROM numbered n CROSS JOIN taken t LEFT JOIN buyer_details b ON b.wallet = n.wallet RETURNING id, number",
        values = rows.join(", "),
        selected = select_columns.join(", "),
    );
    let mut values = Vec::with_capacity(chunk.len() * per_row + 1);
    for (ord, r) in chunk.iter().enumerate() {
        values.push(Value::I64(ord as i64));
        values.push(Value::Text(r.id.clone()));
        let mut row = insert_values(r, now);
        row.pop(); // issued_at, bound once at the end
        values.extend(row);
    }
    values.push(Value::I64(now as i64));
    let returned = bind_all(sqlx::query(&sql), &values).fetch_all(conn).await?;
    returned.iter().map(|r| Ok((r.try_get::<String, _>("id")?, r.try_get::<i64, _>("number")? as u64))).collect()
}

/// [`issue_all`] on the process's SQLite connection (the watcher's pass).
pub fn issue_all_sqlite(conn: &rusqlite::Connection, batch: &[NewReceipt], now: u64) -> Result<Vec<Option<u64>>, StoreError> {
    let mut exists = conn.prepare_cached(&sqlite(EXISTS))?;
    let issued = batch.iter().map(|r| exists.exists([r.id.as_str()])).collect::<Result<Vec<bool>, _>>()?;
    let fresh = fresh_of(batch, &issued);
    let count = fresh.iter().filter(|f| **f).count() as i64;
    if count == 0 {
        return Ok(vec![None; batch.len()]);
    }
    let last: i64 = conn.prepare_cached(&sqlite(TAKE_NUMBERS))?.query_row([count], |row| row.get(0))?;
    let mut insert = conn.prepare_cached(&sqlite(INSERT))?;
    let numbers = numbered(&fresh, last);
    for (r, number) in batch.iter().zip(&numbers) {
        if let Some(number) = number {
            let mut values = vec![Value::Text(r.id.clone()), Value::I64(*number as i64)];
            values.extend(insert_values(r, now));
            insert.execute(rusqlite::params_from_iter(values.iter().map(sqlite_value)))?;
        }
    }
    Ok(numbers)
}

/// A credit note to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredit {
    /// Its id (derived from what caused it: issuing twice issues once).
    pub id: String,
    /// `reorged` or `refunded`.
    pub reason: &'static str,
    /// Cents credited of a card receipt (`None`: all of it).
    pub cents: Option<u64>,
    /// Whether it cancels the receipt in full.
    pub cancels: bool,
}

/// Issues credit note `c` for receipt `receipt` at `now` unless it was issued before.
pub async fn credit(conn: &mut AnyConnection, receipt: &str, c: &NewCredit, now: u64) -> Result<Option<u64>, StoreError> {
    if sqlx::query(EXISTS).bind(c.id.as_str()).fetch_optional(&mut *conn).await?.is_some() {
        return Ok(None);
    }
    let number: i64 = sqlx::query_scalar(NEXT_NUMBER).fetch_one(&mut *conn).await?;
    let cents = c.cents.map(|v| v as i64);
    sqlx::query(CREDIT).bind(c.id.as_str()).bind(number).bind(c.reason).bind(cents).bind(now as i64).bind(receipt).execute(&mut *conn).await?;
    if c.cancels {
        sqlx::query(CANCEL).bind(c.id.as_str()).bind(receipt).execute(conn).await?;
    }
    Ok(Some(number as u64))
}

/// [`credit`] on the process's SQLite connection.
pub fn credit_sqlite(conn: &rusqlite::Connection, receipt: &str, c: &NewCredit, now: u64) -> Result<Option<u64>, StoreError> {
    if conn.prepare_cached(&sqlite(EXISTS))?.exists([c.id.as_str()])? {
        return Ok(None);
    }
    let number: i64 = conn.prepare_cached(NEXT_NUMBER)?.query_row([], |row| row.get(0))?;
    let cents = c.cents.map(|v| v as i64);
    conn.prepare_cached(&sqlite(CREDIT))?.execute(rusqlite::params![c.id, number, c.reason, cents, now as i64, receipt])?;
    if c.cancels {
        conn.prepare_cached(&sqlite(CANCEL))?.execute(rusqlite::params![c.id, receipt])?;
    }
    Ok(Some(number as u64))
}

/// Returns the receipt of on-chain payment `payment_id` that no credit note cancelled.
pub async fn live_of_payment(conn: &mut AnyConnection, payment_id: i64) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(LIVE_OF_PAYMENT).bind(payment_id).fetch_optional(conn).await?)
}

/// [`live_of_payment`] on the process's SQLite connection.
pub fn live_of_payment_sqlite(conn: &rusqlite::Connection, payment_id: i64) -> Result<Option<String>, StoreError> {
    let mut read = conn.prepare_cached(&sqlite(LIVE_OF_PAYMENT))?;
    let mut rows = read.query([payment_id])?;
    Ok(rows.next()?.map(|r| r.get::<_, String>(0)).transpose()?)
}

/// Returns the receipt of the card grant `grant` and the cents credit notes took off it so
/// far.
pub async fn of_card_grant(conn: &mut AnyConnection, grant: &str) -> Result<Option<(String, u64, u64)>, StoreError> {
    let row = sqlx::query(
        "SELECT r.id, r.cents, (SELECT CAST(COALESCE(SUM(c.cents), 0) AS BIGINT) FROM receipts c WHERE c.credits = r.id) AS credited \
         FROM receipts r WHERE r.card_grant = $1 AND r.kind = 'receipt'",
    )
    .bind(grant)
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get::<Option<i64>, _>("cents")?.unwrap_or(0) as u64, r.try_get::<i64, _>("credited")? as u64))).transpose()
}

fn opt_u64(r: &AnyRow, column: &str) -> Result<Option<u64>, StoreError> {
    Ok(r.try_get::<Option<i64>, _>(column)?.map(|v| v as u64))
}

fn receipt_from(r: &AnyRow) -> Result<Receipt, StoreError> {
    let chain_id = opt_u64(r, "chain_id")?;
    let paid_with = match chain_id {
        Some(chain_id) => PaidWith::Chain {
            payment_id: r.try_get::<Option<i64>, _>("payment_id")?.ok_or(StoreError::Corrupt("receipts.payment_id"))?,
            chain_id,
            tx_hash: to_b256(&r.try_get::<Option<Vec<u8>>, _>("tx_hash")?.unwrap_or_default(), "receipts.tx_hash")?,
            block_number: opt_u64(r, "block_number")?.unwrap_or(0),
            token: to_address(&r.try_get::<Option<Vec<u8>>, _>("token")?.unwrap_or_default(), "receipts.token")?,
            symbol: r.try_get::<Option<String>, _>("token_symbol")?.unwrap_or_default(),
            decimals: opt_u64(r, "token_decimals")?.unwrap_or(0) as u8,
            amount: r.try_get::<Option<String>, _>("amount")?.unwrap_or_default().parse().map_err(|_| StoreError::Corrupt("receipts.amount"))?,
        },
        None => PaidWith::Card {
            grant: r.try_get::<Option<String>, _>("card_grant")?.ok_or(StoreError::Corrupt("receipts.card_grant"))?,
            payment: r.try_get("card_payment")?,
            cents: opt_u64(r, "cents")?.unwrap_or(0),
            currency: r.try_get::<Option<String>, _>("currency")?.unwrap_or_default(),
        },
    };
    Ok(Receipt {
        id: r.try_get("id")?,
        number: r.try_get::<i64, _>("number")? as u64,
        kind: DocumentKind::parse(&r.try_get::<String, _>("kind")?)?,
        credits: r.try_get("credits")?,
        reason: r.try_get("reason")?,
        cancelled_by: r.try_get("cancelled_by")?,
        issued: NewReceipt {
            id: r.try_get("id")?,
            wallet: to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "receipts.wallet")?,
            customer_ref: r.try_get("customer_ref")?,
            plan_id: r.try_get::<i64, _>("plan_id")? as u32,
            plan_name: r.try_get("plan_name")?,
            periods: r.try_get::<i64, _>("periods")? as u32,
            period_start: r.try_get::<i64, _>("period_start")? as u64,
            period_end: r.try_get::<i64, _>("period_end")? as u64,
            paid_with,
            usd_micro: r.try_get("usd_micro")?,
            rate_usd: r.try_get("rate_usd")?,
        },
        buyer: BuyerDetails { name: r.try_get("buyer_name")?, address: r.try_get("buyer_address")?, tax_id: r.try_get("buyer_tax_id")? },
        issued_at: r.try_get::<i64, _>("issued_at")? as u64,
    })
}

/// Returns receipt or credit note `id`.
pub async fn get(db: &Db, id: &str) -> Result<Option<Receipt>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM receipts WHERE id = $1")).bind(id).fetch_optional(db.pool()).await?;
    row.as_ref().map(receipt_from).transpose()
}

/// Returns the receipts and credit notes of `wallet`, newest first (at most `limit`).
pub async fn of_wallet(db: &Db, wallet: Address, limit: u32) -> Result<Vec<Receipt>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM receipts WHERE wallet = $1 ORDER BY number DESC LIMIT $2"))
        .bind(address_bytes(wallet))
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(receipt_from).collect()
}

/// Returns every document's number, in order (what the gap-free checks read).
pub async fn numbers(db: &Db) -> Result<Vec<u64>, StoreError> {
    let numbers: Vec<i64> = sqlx::query_scalar("SELECT number FROM receipts ORDER BY number").fetch_all(db.pool()).await?;
    Ok(numbers.into_iter().map(|n| n as u64).collect())
}

/// Adds `buyer` to receipt `id` of `wallet` when it has no buyer details yet, and keeps
/// them for the wallet's next receipts; returns whether the receipt took them (`false`:
/// it already has some, or is not that wallet's).
pub async fn add_buyer(db: &Db, id: &str, wallet: Address, buyer: &BuyerDetails, now: u64) -> Result<bool, StoreError> {
    let mut tx = db.begin_write().await?;
    let changed = sqlx::query(
        "UPDATE receipts SET buyer_name = $1, buyer_address = $2, buyer_tax_id = $3 WHERE id = $4 AND wallet = $5 \
         AND buyer_name IS NULL AND buyer_address IS NULL AND buyer_tax_id IS NULL",
    )
    .bind(buyer.name.as_deref())
    .bind(buyer.address.as_deref())
    .bind(buyer.tax_id.as_deref())
    .bind(id)
    .bind(address_bytes(wallet))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 {
        sqlx::query(
            "INSERT INTO buyer_details (wallet, name, address, tax_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (wallet) DO UPDATE SET name = excluded.name, address = excluded.address, tax_id = excluded.tax_id, updated_at = excluded.updated_at",
        )
        .bind(address_bytes(wallet))
        .bind(buyer.name.as_deref())
        .bind(buyer.address.as_deref())
        .bind(buyer.tax_id.as_deref())
        .bind(now as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(changed > 0)
}
