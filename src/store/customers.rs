//! `customers`: the merchant's customer reference a wallet's membership belongs to, bound
//! by the first confirmed payment (or card event) that carried one and never changed after
//! ([`crate::billing::customers`] has the rules). Every statement on the table, for both
//! connections the service uses.

use std::collections::HashMap;

use alloy::primitives::Address;
use sqlx::{AnyConnection, Row};

use super::{Db, StoreError, address_bytes, bulk::Value, to_address};
use crate::billing::customers::CustomerRef;

const BIND: &str = "INSERT INTO customers (wallet, customer_ref, bound_at) VALUES ($1, $2, $3) ON CONFLICT (wallet) DO NOTHING";

/// Binds `wallet` to `customer` unless it is bound already (an earlier binding stays).
pub async fn bind(conn: &mut AnyConnection, wallet: Address, customer: &CustomerRef, now: u64) -> Result<(), StoreError> {
    sqlx::query(BIND).bind(address_bytes(wallet)).bind(customer.as_str()).bind(now as i64).execute(conn).await?;
    Ok(())
}

/// [`bind`] on the process's SQLite connection.
pub fn bind_sqlite(conn: &rusqlite::Connection, wallet: Address, customer: &CustomerRef, now: u64) -> Result<(), StoreError> {
    conn.prepare_cached(&BIND.replace('$', "?"))?.execute(rusqlite::params![address_bytes(wallet), customer.as_str(), now as i64])?;
    Ok(())
}

/// Returns the reference `wallet` belongs to.
pub async fn of_wallet(conn: &mut AnyConnection, wallet: Address) -> Result<Option<CustomerRef>, StoreError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT customer_ref FROM customers WHERE wallet = $1").bind(address_bytes(wallet)).fetch_optional(conn).await?;
    Ok(found.map(CustomerRef::stored))
}

/// [`of_wallet`] on the process's SQLite connection.
pub fn of_wallet_sqlite(conn: &rusqlite::Connection, wallet: Address) -> Result<Option<CustomerRef>, StoreError> {
    let mut read = conn.prepare_cached("SELECT customer_ref FROM customers WHERE wallet = ?1")?;
    let mut rows = read.query([address_bytes(wallet)])?;
    Ok(rows.next()?.map(|r| r.get::<_, String>(0)).transpose()?.map(CustomerRef::stored))
}

/// Returns the references of those of `wallets` that belong to one.
pub async fn of_wallets(conn: &mut AnyConnection, wallets: &[Address]) -> Result<HashMap<Address, CustomerRef>, StoreError> {
    if wallets.is_empty() {
        return Ok(HashMap::new());
    }
    let list: Vec<Value> = wallets.iter().map(|w| Value::Bytes(address_bytes(*w))).collect();
    let rows = super::bulk::fetch_in(conn, "SELECT wallet, customer_ref FROM customers WHERE wallet IN", "", &[], &list).await?;
    rows.iter().map(|r| Ok((to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "customers.wallet")?, CustomerRef::stored(r.try_get("customer_ref")?)))).collect()
}

/// Returns the wallets that belong to `customer`, oldest binding first.
pub async fn wallets_of(db: &Db, customer: &CustomerRef) -> Result<Vec<Address>, StoreError> {
    let rows =
        sqlx::query("SELECT wallet FROM customers WHERE customer_ref = $1 ORDER BY bound_at, wallet").bind(customer.as_str()).fetch_all(db.pool()).await?;
    rows.iter().map(|r| to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "customers.wallet")).collect()
}

/// Returns the reference `wallet` belongs to (outside any transaction).
pub async fn of_wallet_in(db: &Db, wallet: Address) -> Result<Option<CustomerRef>, StoreError> {
    of_wallet(&mut *db.pool().acquire().await?, wallet).await
}
