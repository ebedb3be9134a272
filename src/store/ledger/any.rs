//! The pass's operations in sqlx: set-based statements, one per table per chunk
//! ([`crate::store::bulk`]), on PostgreSQL (and on SQLite without a file of its own).

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, B256};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{BlockRow, Move, NewPayment, PastActivation, Reversal, StoredOrder, StoredPayment, order_id_of, order_keys, payment_status, sql};
pub(super) use crate::store::subscriptions::due_downgrades;
use crate::{
    billing::{activation::Writes, customers::CustomerRef, receipts::reorg_credit},
    ids::{CheckoutId, OrderId},
    states::PaymentStatus,
    store::{
        StoreError, address_bytes, b256_bytes, badges,
        bulk::{Value, execute_in, fetch_in, insert},
        customers, orders, outbox, receipts,
        subscriptions::{self, Subscription},
        to_address, to_b256, u256_bytes,
    },
};

/// A state's stored text, as a bound value.
fn state(status: PaymentStatus) -> Value {
    Value::Text(status.as_str().to_string())
}

pub(super) async fn position(pool: &sqlx::AnyPool, chain_id: u64) -> Result<(Option<u64>, Vec<(u64, B256)>), StoreError> {
    let mut conn = pool.acquire().await?;
    let cursor = cursor(&mut conn, chain_id).await?;
    let rows =
        sqlx::query("SELECT number, hash FROM chain_blocks WHERE chain_id = $1 ORDER BY number DESC").bind(chain_id as i64).fetch_all(&mut *conn).await?;
    let blocks = rows
        .iter()
        .map(|r| Ok((r.try_get::<i64, _>("number")? as u64, to_b256(&r.try_get::<Vec<u8>, _>("hash")?, "chain_blocks.hash")?)))
        .collect::<Result<_, StoreError>>()?;
    Ok((cursor, blocks))
}

pub(super) async fn cursor(conn: &mut AnyConnection, chain_id: u64) -> Result<Option<u64>, StoreError> {
    let row = sqlx::query(sql::CURSOR).bind(chain_id as i64).fetch_optional(conn).await?;
    Ok(row.map(|r| r.try_get::<i64, _>("next_block")).transpose()?.map(|n| n as u64))
}

fn payment_from(r: &AnyRow) -> Result<StoredPayment, StoreError> {
    Ok(StoredPayment {
        id: r.try_get("id")?,
        tx_hash: to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?,
        log_index: r.try_get::<i64, _>("log_index")? as u64,
        block_number: r.try_get::<i64, _>("block_number")? as u64,
        block_hash: to_b256(&r.try_get::<Vec<u8>, _>("block_hash")?, "payments.block_hash")?,
        order_id: order_id_of(&r.try_get::<Vec<u8>, _>("order_id")?)?,
        payer: to_address(&r.try_get::<Vec<u8>, _>("payer")?, "payments.payer")?,
        token: to_address(&r.try_get::<Vec<u8>, _>("token")?, "payments.token")?,
        plan_id: r.try_get::<i64, _>("plan_id")? as u32,
        periods: r.try_get::<i64, _>("periods")? as u32,
        matched_order: r.try_get::<Option<i64>, _>("matched_order")?.map(OrderId::issued),
        status: payment_status(&r.try_get::<String, _>("status")?)?,
        revision: r.try_get::<i64, _>("revision")? as u32,
        confirmed_at: r.try_get::<Option<i64>, _>("confirmed_at")?.map(|v| v as u64),
        orphaned_at: r.try_get::<Option<i64>, _>("orphaned_at")?.map(|v| v as u64),
        checkout_id: r.try_get::<Option<String>, _>("checkout_id")?.map(CheckoutId::from_stored),
        usd: crate::store::orders::OrderUsd::from_columns(r.try_get("usd_micro")?, r.try_get("rate_usd")?),
        customer_ref: r.try_get::<Option<String>, _>("customer_ref")?.map(crate::billing::customers::CustomerRef::stored),
        amount: crate::store::to_u256(&r.try_get::<Vec<u8>, _>("amount")?, "payments.amount")?,
    })
}

pub(super) async fn roll_back(conn: &mut AnyConnection, chain_id: u64, fork: u64, now: u64) -> Result<Vec<StoredPayment>, StoreError> {
    let (chain, fork) = (chain_id as i64, fork as i64);
    let (detected, confirmed) = (PaymentStatus::Detected.as_str(), PaymentStatus::Confirmed.as_str());
    let rows = sqlx::query(&sql::rolled_back()).bind(chain).bind(fork).bind(detected).bind(confirmed).fetch_all(&mut *conn).await?;
    let payments = rows.iter().map(payment_from).collect::<Result<Vec<_>, _>>()?;
    sqlx::query(sql::ROLL_BACK)
        .bind(PaymentStatus::Reorged.as_str())
        .bind(now as i64)
        .bind(chain)
        .bind(fork)
        .bind(detected)
        .bind(confirmed)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sql::FORGET_BLOCKS_ABOVE).bind(chain).bind(fork).execute(&mut *conn).await?;
    Ok(payments)
}

pub(super) async fn reorged_of(conn: &mut AnyConnection, chain_id: u64, tx_hashes: Vec<B256>) -> Result<Vec<StoredPayment>, StoreError> {
    let hashes: Vec<Value> = tx_hashes.into_iter().map(|h| Value::Bytes(b256_bytes(h))).collect();
    let rows = fetch_in(conn, &sql::reorged_of("IN"), "", &[Value::I64(chain_id as i64), state(PaymentStatus::Reorged)], &hashes).await?;
    rows.iter().map(payment_from).collect()
}

pub(super) async fn relocate(conn: &mut AnyConnection, moves: Vec<Move>) -> Result<(), StoreError> {
    // Off their keys first: logs of one transaction can move onto each other's old index.
    for m in &moves {
        sqlx::query(sql::PARK).bind(m.id).execute(&mut *conn).await?;
    }
    for m in &moves {
        sqlx::query(sql::RELOCATE)
            .bind(m.status.as_str())
            .bind(m.confirmed_at.map(|v| v as i64))
            .bind(m.log_index as i64)
            .bind(m.block_number as i64)
            .bind(b256_bytes(m.block_hash))
            .bind(m.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn paid_by(conn: &mut AnyConnection, chain_id: u64, ids: Vec<OrderId>) -> Result<HashMap<OrderId, B256>, StoreError> {
    let ids: Vec<Value> = order_keys(&ids).into_iter().map(Value::I64).collect();
    let rows = fetch_in(
        conn,
        "SELECT matched_order, tx_hash FROM payments WHERE chain_id = $1 AND status = $2 AND matched_order IN",
        "",
        &[Value::I64(chain_id as i64), state(PaymentStatus::Confirmed)],
        &ids,
    )
    .await?;
    rows.iter()
        .map(|r| Ok((OrderId::issued(r.try_get::<i64, _>("matched_order")?), to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?)))
        .collect()
}

pub(super) async fn orphans_up_to(conn: &mut AnyConnection, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
    let rows = sqlx::query(&sql::orphans_up_to()).bind(chain_id as i64).bind(PaymentStatus::Reorged.as_str()).bind(deep as i64).fetch_all(conn).await?;
    rows.iter().map(payment_from).collect()
}

pub(super) async fn activations_of(conn: &mut AnyConnection, payment_ids: Vec<i64>) -> Result<HashMap<i64, PastActivation>, StoreError> {
    subscriptions::activations_of(conn, &payment_ids).await
}

pub(super) async fn take_back(conn: &mut AnyConnection, chain_id: u64, reversals: Vec<Reversal>, now: u64) -> Result<(), StoreError> {
    for r in &reversals {
        sqlx::query(sql::RECORD_REVERSAL)
            .bind(r.payment_id)
            .bind(i64::from(r.revision))
            .bind(address_bytes(r.wallet))
            .bind(r.kind.map(|k| k.as_str()))
            .bind(r.plan_id.map(i64::from))
            .bind(r.activated_expires_at.map(|v| v as i64))
            .bind(r.expires_before.map(|v| v as i64))
            .bind(r.expires_after.map(|v| v as i64))
            .bind(PaymentStatus::Reorged.as_str())
            .bind(now as i64)
            .execute(&mut *conn)
            .await?;
        subscriptions::drop_activation(conn, r.payment_id).await?;
        if let Some(receipt) = receipts::live_of_payment(conn, r.payment_id).await? {
            receipts::credit(conn, &receipt, &reorg_credit(&receipt, r.revision), now).await?;
        }
        sqlx::query(sql::FORGET_CONFIRMATION).bind(r.payment_id).execute(&mut *conn).await?;
        if let Some(order) = r.order {
            orders::reopen(conn, order, chain_id).await?;
        }
    }
    Ok(())
}

pub(super) async fn detected_up_to(conn: &mut AnyConnection, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
    let rows = sqlx::query(&sql::detected_up_to()).bind(chain_id as i64).bind(PaymentStatus::Detected.as_str()).bind(deep as i64).fetch_all(conn).await?;
    rows.iter().map(payment_from).collect()
}

pub(super) async fn confirm(conn: &mut AnyConnection, ids: Vec<i64>, now: u64) -> Result<u64, StoreError> {
    let ids: Vec<Value> = ids.into_iter().map(Value::I64).collect();
    execute_in(
        conn,
        "UPDATE payments SET status = $1, confirmed_at = COALESCE(confirmed_at, $2) WHERE status = $3 AND id IN",
        "",
        &[state(PaymentStatus::Confirmed), Value::I64(now as i64), state(PaymentStatus::Detected)],
        &ids,
    )
    .await
}

pub(super) async fn orders(conn: &mut AnyConnection, ids: Vec<OrderId>) -> Result<HashMap<OrderId, StoredOrder>, StoreError> {
    orders::terms(conn, &ids).await
}

pub(super) async fn insert_payments(conn: &mut AnyConnection, chain_id: u64, rows: Vec<NewPayment>, now: u64) -> Result<Vec<Option<i64>>, StoreError> {
    let values: Vec<Vec<Value>> = rows
        .iter()
        .map(|p| {
            let (log, e) = (&p.log, &p.log.event);
            vec![
                Value::I64(chain_id as i64),
                Value::Bytes(b256_bytes(log.tx_hash)),
                Value::I64(log.log_index as i64),
                Value::I64(log.block_number as i64),
                Value::Bytes(b256_bytes(log.block_hash)),
                Value::Bytes(OrderId::from(e.orderId).to_be_bytes().to_vec()),
                Value::Bytes(address_bytes(e.payer)),
                Value::Bytes(address_bytes(e.token)),
                Value::Bytes(u256_bytes(e.amount)),
                Value::I64(i64::from(e.planId)),
                Value::I64(i64::from(e.periods)),
                state(if p.confirmed { PaymentStatus::Confirmed } else { PaymentStatus::Detected }),
                Value::OptI64(p.matched_order.and_then(OrderId::db_key)),
                Value::OptText(p.unmatched_reason.map(str::to_string)),
                Value::I64(now as i64),
                Value::OptI64(p.confirmed.then_some(now as i64)),
            ]
        })
        .collect();
    // The multi-row insert binds only its rows, so the state that lets a log recorded
    // before take its new block is written into the text, from the enum.
    let tail = format!(
        "ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET status = excluded.status, confirmed_at = excluded.confirmed_at, \
         block_number = excluded.block_number, block_hash = excluded.block_hash WHERE payments.status = '{}' \
         RETURNING id, tx_hash, log_index",
        PaymentStatus::Reorged.as_str()
    );
    let (returned, _) = insert(conn, sql::INSERT_PAYMENT, &values, &tail).await?;
    let mut ids = HashMap::with_capacity(returned.len());
    for r in &returned {
        let key = (to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?, r.try_get::<i64, _>("log_index")? as u64);
        ids.insert(key, r.try_get::<i64, _>("id")?);
    }
    Ok(rows.iter().map(|p| ids.get(&(p.log.tx_hash, p.log.log_index)).copied()).collect())
}

pub(super) async fn orders_paid(conn: &mut AnyConnection, ids: Vec<OrderId>) -> Result<(), StoreError> {
    orders::mark_paid(conn, &ids).await
}

pub(super) async fn activated(conn: &mut AnyConnection, payment_ids: Vec<i64>) -> Result<HashSet<i64>, StoreError> {
    subscriptions::activated(conn, &payment_ids).await
}

pub(super) async fn subscriptions(conn: &mut AnyConnection, wallets: Vec<Address>) -> Result<Vec<Subscription>, StoreError> {
    subscriptions::load_many(conn, &wallets).await
}

pub(super) async fn customers(conn: &mut AnyConnection, wallets: Vec<Address>) -> Result<HashMap<Address, CustomerRef>, StoreError> {
    customers::of_wallets(conn, &wallets).await
}

pub(super) async fn write(conn: &mut AnyConnection, writes: Writes, now: u64) -> Result<(), StoreError> {
    for (wallet, customer) in &writes.customers {
        customers::bind(conn, *wallet, customer, now).await?;
    }
    subscriptions::record_activations(conn, &writes.activations, now).await?;
    subscriptions::save_all(conn, &writes.subscriptions, now).await?;
    badges::queue_all(conn, &writes.jobs, now).await?;
    receipts::issue_all(conn, &writes.receipts, now).await?;
    outbox::write_all(conn, &writes.events, now as i64).await?;
    Ok(())
}

pub(super) async fn save_blocks(conn: &mut AnyConnection, chain_id: u64, blocks: Vec<BlockRow>, keep_from: u64) -> Result<(), StoreError> {
    let chain = chain_id as i64;
    let rows: Vec<Vec<Value>> = blocks
        .iter()
        .map(|b| vec![Value::I64(chain), Value::I64(b.number as i64), Value::Bytes(b256_bytes(b.hash)), Value::Bytes(b256_bytes(b.parent_hash))])
        .collect();
    insert(conn, sql::SAVE_BLOCK_HEAD, &rows, sql::SAVE_BLOCK_TAIL).await?;
    sqlx::query(sql::FORGET_BLOCKS_BELOW).bind(chain).bind(keep_from as i64).execute(conn).await?;
    Ok(())
}

pub(super) async fn set_cursor(conn: &mut AnyConnection, chain_id: u64, next: u64) -> Result<(), StoreError> {
    sqlx::query(sql::SET_CURSOR).bind(chain_id as i64).bind(next as i64).execute(conn).await?;
    Ok(())
}
