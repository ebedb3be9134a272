//! The pass's operations in sqlx: set-based statements, one per table per chunk
//! ([`crate::store::bulk`]), on PostgreSQL (and on SQLite without a file of its own).

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, B256};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{BlockRow, Move, NewPayment, PAYMENT_COLUMNS, PastActivation, Reversal, StoredOrder, StoredPayment, sql};
pub(super) use crate::billing::activation::due_downgrades;
use crate::{
    billing::activation::{SAVE_HEAD, SAVE_TAIL, SUBSCRIPTION_COLUMNS, Subscription, Writes, subscription_from},
    store::{
        StoreError, address_bytes, b256_bytes,
        bulk::{Value, column_i64, execute_in, fetch_in, insert},
        outbox, to_address, to_b256, to_u256, u256_bytes,
    },
};

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
    let row = sqlx::query("SELECT next_block FROM chain_cursor WHERE chain_id = $1").bind(chain_id as i64).fetch_optional(conn).await?;
    Ok(row.map(|r| r.try_get::<i64, _>("next_block")).transpose()?.map(|n| n as u64))
}

fn payment_from(r: &AnyRow) -> Result<StoredPayment, StoreError> {
    Ok(StoredPayment {
        id: r.try_get("id")?,
        tx_hash: to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?,
        log_index: r.try_get::<i64, _>("log_index")? as u64,
        block_number: r.try_get::<i64, _>("block_number")? as u64,
        block_hash: to_b256(&r.try_get::<Vec<u8>, _>("block_hash")?, "payments.block_hash")?,
        order_id: to_u256(&r.try_get::<Vec<u8>, _>("order_id")?, "payments.order_id")?,
        payer: to_address(&r.try_get::<Vec<u8>, _>("payer")?, "payments.payer")?,
        token: to_address(&r.try_get::<Vec<u8>, _>("token")?, "payments.token")?,
        plan_id: r.try_get::<i64, _>("plan_id")? as u32,
        periods: r.try_get::<i64, _>("periods")? as u32,
        matched_order: r.try_get("matched_order")?,
        status: r.try_get("status")?,
        revision: r.try_get::<i64, _>("revision")? as u32,
        confirmed_at: r.try_get::<Option<i64>, _>("confirmed_at")?.map(|v| v as u64),
        orphaned_at: r.try_get::<Option<i64>, _>("orphaned_at")?.map(|v| v as u64),
        checkout_id: r.try_get("checkout_id")?,
    })
}

pub(super) async fn roll_back(conn: &mut AnyConnection, chain_id: u64, fork: u64, now: u64) -> Result<Vec<StoredPayment>, StoreError> {
    let (chain, fork) = (chain_id as i64, fork as i64);
    let rows = sqlx::query(&sql::rolled_back()).bind(chain).bind(fork).fetch_all(&mut *conn).await?;
    let payments = rows.iter().map(payment_from).collect::<Result<Vec<_>, _>>()?;
    sqlx::query(sql::ROLL_BACK).bind(now as i64).bind(chain).bind(fork).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM chain_blocks WHERE chain_id = $1 AND number > $2").bind(chain).bind(fork).execute(&mut *conn).await?;
    Ok(payments)
}

pub(super) async fn reorged_of(conn: &mut AnyConnection, chain_id: u64, tx_hashes: Vec<B256>) -> Result<Vec<StoredPayment>, StoreError> {
    let hashes: Vec<Value> = tx_hashes.into_iter().map(|h| Value::Bytes(b256_bytes(h))).collect();
    let rows = fetch_in(conn, &sql::reorged_of("IN"), "", &[Value::I64(chain_id as i64)], &hashes).await?;
    rows.iter().map(payment_from).collect()
}

pub(super) async fn relocate(conn: &mut AnyConnection, moves: Vec<Move>) -> Result<(), StoreError> {
    // Off their keys first: logs of one transaction can move onto each other's old index.
    for m in &moves {
        sqlx::query(sql::PARK).bind(m.id).execute(&mut *conn).await?;
    }
    for m in &moves {
        sqlx::query(sql::RELOCATE)
            .bind(m.status)
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

pub(super) async fn paid_by(conn: &mut AnyConnection, chain_id: u64, ids: Vec<i64>) -> Result<HashMap<i64, B256>, StoreError> {
    let ids: Vec<Value> = ids.into_iter().map(Value::I64).collect();
    let rows = fetch_in(
        conn,
        "SELECT matched_order, tx_hash FROM payments WHERE chain_id = $1 AND status = 'confirmed' AND matched_order IN",
        "",
        &[Value::I64(chain_id as i64)],
        &ids,
    )
    .await?;
    rows.iter().map(|r| Ok((r.try_get::<i64, _>("matched_order")?, to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?))).collect()
}

pub(super) async fn orphans_up_to(conn: &mut AnyConnection, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
    let rows = sqlx::query(&sql::orphans_up_to()).bind(chain_id as i64).bind(deep as i64).fetch_all(conn).await?;
    rows.iter().map(payment_from).collect()
}

pub(super) async fn activations_of(conn: &mut AnyConnection, payment_ids: Vec<i64>) -> Result<HashMap<i64, PastActivation>, StoreError> {
    let mut out = HashMap::new();
    for id in payment_ids {
        let Some(r) = sqlx::query(sql::ACTIVATION_OF).bind(id).fetch_optional(&mut *conn).await? else { continue };
        let previous: Option<String> = r.try_get("previous")?;
        out.insert(
            id,
            PastActivation {
                kind: r.try_get("kind")?,
                plan_id: r.try_get::<i64, _>("plan_id")? as u32,
                new_expires_at: r.try_get::<i64, _>("new_expires_at")? as u64,
                credit_seconds: r.try_get::<i64, _>("credit_seconds")? as u64,
                previous: previous.as_deref().map(serde_json::from_str).transpose().map_err(|_| StoreError::Corrupt("activations.previous"))?,
            },
        );
    }
    Ok(out)
}

pub(super) async fn take_back(conn: &mut AnyConnection, chain_id: u64, reversals: Vec<Reversal>, now: u64) -> Result<(), StoreError> {
    for r in &reversals {
        sqlx::query(sql::RECORD_REVERSAL)
            .bind(r.payment_id)
            .bind(i64::from(r.revision))
            .bind(address_bytes(r.wallet))
            .bind(r.kind.clone())
            .bind(r.plan_id.map(i64::from))
            .bind(r.activated_expires_at.map(|v| v as i64))
            .bind(r.expires_before.map(|v| v as i64))
            .bind(r.expires_after.map(|v| v as i64))
            .bind(now as i64)
            .execute(&mut *conn)
            .await?;
        sqlx::query(sql::DROP_ACTIVATION).bind(r.payment_id).execute(&mut *conn).await?;
        sqlx::query(sql::FORGET_CONFIRMATION).bind(r.payment_id).execute(&mut *conn).await?;
        if let Some(order) = r.order {
            sqlx::query(sql::REOPEN_ORDER).bind(order).bind(chain_id as i64).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

pub(super) async fn detected_up_to(conn: &mut AnyConnection, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE chain_id = $1 AND status = 'detected' AND block_number <= $2 \
         ORDER BY block_number, log_index"
    ))
    .bind(chain_id as i64)
    .bind(deep as i64)
    .fetch_all(conn)
    .await?;
    rows.iter().map(payment_from).collect()
}

pub(super) async fn confirm(conn: &mut AnyConnection, ids: Vec<i64>, now: u64) -> Result<u64, StoreError> {
    let ids: Vec<Value> = ids.into_iter().map(Value::I64).collect();
    execute_in(
        conn,
        "UPDATE payments SET status = 'confirmed', confirmed_at = COALESCE(confirmed_at, $1) WHERE status = 'detected' AND id IN",
        "",
        &[Value::I64(now as i64)],
        &ids,
    )
    .await
}

pub(super) async fn orders(conn: &mut AnyConnection, ids: Vec<i64>) -> Result<HashMap<i64, StoredOrder>, StoreError> {
    let ids: Vec<Value> = ids.into_iter().map(Value::I64).collect();
    let rows =
        fetch_in(conn, "SELECT order_id, chain_id, payer, token, amount, plan_id, periods, status, checkout_id FROM orders WHERE order_id IN", "", &[], &ids)
            .await?;
    rows.iter()
        .map(|row| {
            let order = StoredOrder {
                chain_id: row.try_get::<i64, _>("chain_id")? as u64,
                payer: to_address(&row.try_get::<Vec<u8>, _>("payer")?, "orders.payer")?,
                token: to_address(&row.try_get::<Vec<u8>, _>("token")?, "orders.token")?,
                amount: to_u256(&row.try_get::<Vec<u8>, _>("amount")?, "orders.amount")?,
                plan_id: row.try_get::<i64, _>("plan_id")? as u32,
                periods: row.try_get::<i64, _>("periods")? as u32,
                paid: row.try_get::<String, _>("status")? == "paid",
                checkout_id: row.try_get("checkout_id")?,
            };
            Ok((row.try_get::<i64, _>("order_id")?, order))
        })
        .collect()
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
                Value::Bytes(u256_bytes(e.orderId)),
                Value::Bytes(address_bytes(e.payer)),
                Value::Bytes(address_bytes(e.token)),
                Value::Bytes(u256_bytes(e.amount)),
                Value::I64(i64::from(e.planId)),
                Value::I64(i64::from(e.periods)),
                Value::Text(if p.confirmed { "confirmed" } else { "detected" }.into()),
                Value::OptI64(p.matched_order),
                Value::OptText(p.unmatched_reason.map(str::to_string)),
                Value::I64(now as i64),
                Value::OptI64(p.confirmed.then_some(now as i64)),
            ]
        })
        .collect();
    let (returned, _) = insert(
        conn,
        "INSERT INTO payments (chain_id, tx_hash, log_index, block_number, block_hash, order_id, payer, token, amount, \
         plan_id, periods, status, matched_order, unmatched_reason, detected_at, confirmed_at)",
        &values,
        "ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET status = excluded.status, confirmed_at = excluded.confirmed_at, \
         block_number = excluded.block_number, block_hash = excluded.block_hash WHERE payments.status = 'reorged' \
         RETURNING id, tx_hash, log_index",
    )
    .await?;
    let mut ids = HashMap::with_capacity(returned.len());
    for r in &returned {
        let key = (to_b256(&r.try_get::<Vec<u8>, _>("tx_hash")?, "payments.tx_hash")?, r.try_get::<i64, _>("log_index")? as u64);
        ids.insert(key, r.try_get::<i64, _>("id")?);
    }
    Ok(rows.iter().map(|p| ids.get(&(p.log.tx_hash, p.log.log_index)).copied()).collect())
}

pub(super) async fn orders_paid(conn: &mut AnyConnection, ids: Vec<i64>) -> Result<(), StoreError> {
    let ids: Vec<Value> = ids.into_iter().map(Value::I64).collect();
    execute_in(conn, "UPDATE orders SET status = 'paid' WHERE order_id IN", "", &[], &ids).await?;
    Ok(())
}

pub(super) async fn activated(conn: &mut AnyConnection, payment_ids: Vec<i64>) -> Result<HashSet<i64>, StoreError> {
    let ids: Vec<Value> = payment_ids.into_iter().map(Value::I64).collect();
    let rows = fetch_in(conn, "SELECT payment_id FROM activations WHERE payment_id IN", "", &[], &ids).await?;
    Ok(column_i64(&rows, "payment_id")?.into_iter().collect())
}

pub(super) async fn subscriptions(conn: &mut AnyConnection, wallets: Vec<Address>) -> Result<Vec<Subscription>, StoreError> {
    let list: Vec<Value> = wallets.iter().map(|w| Value::Bytes(address_bytes(*w))).collect();
    let rows = fetch_in(conn, &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE wallet IN"), "", &[], &list).await?;
    rows.iter().map(subscription_from).collect()
}

pub(super) async fn write(conn: &mut AnyConnection, writes: Writes, now: u64) -> Result<(), StoreError> {
    let now = now as i64;
    let activations: Vec<Vec<Value>> = writes
        .activations
        .iter()
        .map(|a| {
            vec![
                Value::I64(a.payment_id),
                Value::Bytes(address_bytes(a.wallet)),
                Value::Text(a.kind.to_string()),
                Value::I64(i64::from(a.plan_id)),
                Value::OptI64(a.old_expires_at.map(|v| v as i64)),
                Value::I64(a.new_expires_at as i64),
                Value::I64(a.credit_seconds as i64),
                Value::I64(now),
                Value::OptText(a.previous.clone()),
            ]
        })
        .collect();
    insert(
        conn,
        "INSERT INTO activations (payment_id, wallet, kind, plan_id, old_expires_at, new_expires_at, credit_seconds, created_at, previous)",
        &activations,
        "",
    )
    .await?;
    let subscriptions: Vec<Vec<Value>> = writes
        .subscriptions
        .iter()
        .map(|s| {
            vec![
                Value::Bytes(address_bytes(s.wallet)),
                Value::I64(i64::from(s.plan_id)),
                Value::I64(i64::from(s.tier)),
                Value::Text(s.status.clone()),
                Value::I64(s.started_at as i64),
                Value::I64(s.expires_at as i64),
                Value::OptI64(s.next_plan_id.map(i64::from)),
                Value::OptI64(s.next_expires_at.map(|v| v as i64)),
                Value::I64(s.comp_seconds as i64),
                Value::I64(now),
            ]
        })
        .collect();
    insert(conn, SAVE_HEAD, &subscriptions, SAVE_TAIL).await?;
    let jobs: Vec<Vec<Value>> = writes
        .jobs
        .iter()
        .map(|j| {
            vec![
                Value::Bytes(address_bytes(j.wallet)),
                Value::Text(j.action.to_string()),
                Value::I64(i64::from(j.tier)),
                Value::I64(j.expires_at as i64),
                Value::I64(now),
                Value::OptText(j.cause.as_ref().map(|c| c.order_id.clone())),
                Value::OptText(j.cause.as_ref().and_then(|c| c.checkout_id.clone())),
                Value::OptBytes(j.cause.as_ref().map(|c| b256_bytes(c.tx_hash))),
            ]
        })
        .collect();
    insert(conn, "INSERT INTO badge_jobs (wallet, action, tier, expires_at, created_at, cause_order_id, cause_checkout_id, cause_tx_hash)", &jobs, "").await?;
    outbox::write_all(conn, &writes.events, now).await?;
    Ok(())
}

pub(super) async fn save_blocks(conn: &mut AnyConnection, chain_id: u64, blocks: Vec<BlockRow>, keep_from: u64) -> Result<(), StoreError> {
    let chain = chain_id as i64;
    let rows: Vec<Vec<Value>> = blocks
        .iter()
        .map(|b| vec![Value::I64(chain), Value::I64(b.number as i64), Value::Bytes(b256_bytes(b.hash)), Value::Bytes(b256_bytes(b.parent_hash))])
        .collect();
    insert(
        conn,
        "INSERT INTO chain_blocks (chain_id, number, hash, parent_hash)",
        &rows,
        "ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash, parent_hash = excluded.parent_hash",
    )
    .await?;
    sqlx::query("DELETE FROM chain_blocks WHERE chain_id = $1 AND number < $2").bind(chain).bind(keep_from as i64).execute(conn).await?;
    Ok(())
}

pub(super) async fn set_cursor(conn: &mut AnyConnection, chain_id: u64, next: u64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO chain_cursor (chain_id, next_block) VALUES ($1, $2) ON CONFLICT (chain_id) DO UPDATE SET next_block = excluded.next_block")
        .bind(chain_id as i64)
        .bind(next as i64)
        .execute(conn)
        .await?;
    Ok(())
}
