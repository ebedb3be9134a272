//! The pass's operations in rusqlite on the process's own SQLite connection: each
//! operation is one hand-over to its thread, with statements prepared once
//! (`prepare_cached`) and bound row by row. SQLite answers an indexed point read or a
//! one-row insert in about a microsecond, so row-at-a-time is the fast path here; sqlx's
//! set-based JSON path ([`super::any`]) measured ~10 µs a row.

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, B256};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{BlockRow, Move, NewPayment, PastActivation, Reversal, StoredOrder, StoredPayment, order_id_of, order_keys, payment_status, sql};
use crate::{
    billing::{activation::Writes, customers::CustomerRef, receipts::reorg_credit},
    ids::{CheckoutId, OrderId},
    states::PaymentStatus,
    store::{
        StoreError, badges, customers, orders, outbox, receipts,
        sqlite::SqliteTx,
        subscriptions::{self, Subscription},
        to_address, to_b256,
    },
};

/// Decodes a row of [`super::PAYMENT_COLUMNS`].
fn payment_from(r: &Row<'_>) -> Result<StoredPayment, StoreError> {
    Ok(StoredPayment {
        id: r.get(0)?,
        tx_hash: to_b256(&r.get::<_, Vec<u8>>(1)?, "payments.tx_hash")?,
        log_index: r.get::<_, i64>(2)? as u64,
        block_number: r.get::<_, i64>(3)? as u64,
        block_hash: to_b256(&r.get::<_, Vec<u8>>(4)?, "payments.block_hash")?,
        order_id: order_id_of(&r.get::<_, Vec<u8>>(5)?)?,
        payer: to_address(&r.get::<_, Vec<u8>>(6)?, "payments.payer")?,
        token: to_address(&r.get::<_, Vec<u8>>(7)?, "payments.token")?,
        plan_id: r.get::<_, i64>(8)? as u32,
        periods: r.get::<_, i64>(9)? as u32,
        matched_order: r.get::<_, Option<i64>>(10)?.map(OrderId::issued),
        status: payment_status(&r.get::<_, String>(11)?)?,
        revision: r.get::<_, i64>(12)? as u32,
        confirmed_at: r.get::<_, Option<i64>>(13)?.map(|v| v as u64),
        orphaned_at: r.get::<_, Option<i64>>(14)?.map(|v| v as u64),
        checkout_id: r.get::<_, Option<String>>(15)?.map(CheckoutId::from_stored),
        usd: crate::store::orders::OrderUsd::from_columns(r.get(16)?, r.get(17)?),
        customer_ref: r.get::<_, Option<String>>(18)?.map(crate::billing::customers::CustomerRef::stored),
        amount: crate::store::to_u256(&r.get::<_, Vec<u8>>(19)?, "payments.amount")?,
    })
}

/// Runs `sql` with `params` and decodes every row with `decode`.
fn select<T>(conn: &Connection, sql: &str, params: impl rusqlite::Params, decode: impl Fn(&Row<'_>) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

pub(super) async fn cursor(tx: &mut SqliteTx, chain_id: u64) -> Result<Option<u64>, StoreError> {
    tx.run(move |conn| {
        let next: Option<i64> = conn.prepare_cached(sql::CURSOR)?.query_row([chain_id as i64], |r| r.get(0)).optional()?;
        Ok(next.map(|n| n as u64))
    })
    .await
}

pub(super) async fn roll_back(tx: &mut SqliteTx, chain_id: u64, fork: u64, now: u64) -> Result<Vec<StoredPayment>, StoreError> {
    tx.run(move |conn| {
        let (chain, fork) = (chain_id as i64, fork as i64);
        let (detected, confirmed) = (PaymentStatus::Detected.as_str(), PaymentStatus::Confirmed.as_str());
        let payments = select(conn, &sql::rolled_back(), params![chain, fork, detected, confirmed], payment_from)?;
        conn.prepare_cached(sql::ROLL_BACK)?.execute(params![PaymentStatus::Reorged.as_str(), now as i64, chain, fork, detected, confirmed])?;
        conn.prepare_cached(sql::FORGET_BLOCKS_ABOVE)?.execute(params![chain, fork])?;
        Ok(payments)
    })
    .await
}

pub(super) async fn reorged_of(tx: &mut SqliteTx, chain_id: u64, tx_hashes: Vec<B256>) -> Result<Vec<StoredPayment>, StoreError> {
    tx.run(move |conn| {
        // Usually nothing is reorged: one probe of an empty partial index tells.
        let reorged = PaymentStatus::Reorged.as_str();
        if !conn.prepare_cached(sql::ANY_REORGED)?.exists(params![chain_id as i64, reorged])? {
            return Ok(Vec::new());
        }
        let sql = sql::reorged_of("= $3");
        let mut out = Vec::new();
        for hash in tx_hashes {
            out.extend(select(conn, &sql, params![chain_id as i64, reorged, hash.as_slice()], payment_from)?);
        }
        Ok(out)
    })
    .await
}

pub(super) async fn relocate(tx: &mut SqliteTx, moves: Vec<Move>) -> Result<(), StoreError> {
    tx.run(move |conn| {
        // Off their keys first: logs of one transaction can move onto each other's old index.
        let mut park = conn.prepare_cached(sql::PARK)?;
        for m in &moves {
            park.execute([m.id])?;
        }
        let mut put = conn.prepare_cached(sql::RELOCATE)?;
        for m in &moves {
            put.execute(params![
                m.status.as_str(),
                m.confirmed_at.map(|v| v as i64),
                m.log_index as i64,
                m.block_number as i64,
                m.block_hash.as_slice(),
                m.id
            ])?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn paid_by(tx: &mut SqliteTx, chain_id: u64, ids: Vec<OrderId>) -> Result<HashMap<OrderId, B256>, StoreError> {
    tx.run(move |conn| {
        let mut read = conn.prepare_cached(sql::PAID_BY_ONE)?;
        let mut out = HashMap::new();
        for id in order_keys(&ids) {
            if let Some(hash) = read.query_row(params![chain_id as i64, id, PaymentStatus::Confirmed.as_str()], |r| r.get::<_, Vec<u8>>(0)).optional()? {
                out.insert(OrderId::issued(id), to_b256(&hash, "payments.tx_hash")?);
            }
        }
        Ok(out)
    })
    .await
}

pub(super) async fn orphans_up_to(tx: &mut SqliteTx, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
    tx.run(move |conn| select(conn, &sql::orphans_up_to(), params![chain_id as i64, PaymentStatus::Reorged.as_str(), deep as i64], payment_from)).await
}

pub(super) async fn activations_of(tx: &mut SqliteTx, payment_ids: Vec<i64>) -> Result<HashMap<i64, PastActivation>, StoreError> {
    tx.run(move |conn| subscriptions::activations_of_sqlite(conn, &payment_ids)).await
}

pub(super) async fn take_back(tx: &mut SqliteTx, chain_id: u64, reversals: Vec<Reversal>, now: u64) -> Result<(), StoreError> {
    tx.run(move |conn| {
        for r in &reversals {
            conn.prepare_cached(sql::RECORD_REVERSAL)?.execute(params![
                r.payment_id,
                i64::from(r.revision),
                r.wallet.as_slice(),
                r.kind.map(|k| k.as_str()),
                r.plan_id.map(i64::from),
                r.activated_expires_at.map(|v| v as i64),
                r.expires_before.map(|v| v as i64),
                r.expires_after.map(|v| v as i64),
                PaymentStatus::Reorged.as_str(),
                now as i64
            ])?;
            subscriptions::drop_activation_sqlite(conn, r.payment_id)?;
            if let Some(receipt) = receipts::live_of_payment_sqlite(conn, r.payment_id)? {
                receipts::credit_sqlite(conn, &receipt, &reorg_credit(&receipt, r.revision), now)?;
            }
            conn.prepare_cached(sql::FORGET_CONFIRMATION)?.execute([r.payment_id])?;
            if let Some(order) = r.order {
                orders::reopen_sqlite(conn, order, chain_id)?;
            }
        }
        Ok(())
    })
    .await
}

pub(super) async fn detected_up_to(tx: &mut SqliteTx, chain_id: u64, deep: u64) -> Result<Vec<StoredPayment>, StoreError> {
    tx.run(move |conn| select(conn, &sql::detected_up_to(), params![chain_id as i64, PaymentStatus::Detected.as_str(), deep as i64], payment_from)).await
}

pub(super) async fn confirm(tx: &mut SqliteTx, ids: Vec<i64>, now: u64) -> Result<u64, StoreError> {
    tx.run(move |conn| {
        let mut update = conn.prepare_cached("UPDATE payments SET status = ?1, confirmed_at = COALESCE(confirmed_at, ?2) WHERE id = ?3 AND status = ?4")?;
        let (confirmed, detected) = (PaymentStatus::Confirmed.as_str(), PaymentStatus::Detected.as_str());
        let mut changed = 0;
        for id in ids {
            changed += update.execute(params![confirmed, now as i64, id, detected])? as u64;
        }
        Ok(changed)
    })
    .await
}

pub(super) async fn orders(tx: &mut SqliteTx, ids: Vec<OrderId>) -> Result<HashMap<OrderId, StoredOrder>, StoreError> {
    tx.run(move |conn| orders::terms_sqlite(conn, &ids)).await
}

pub(super) async fn insert_payments(tx: &mut SqliteTx, chain_id: u64, rows: Vec<NewPayment>, now: u64) -> Result<Vec<Option<i64>>, StoreError> {
    tx.run(move |conn| {
        // A plain insert (SQLite's RETURNING and upsert machinery measured ~30% of a row's
        // cost); a log recorded before is the rare case, handled when the key is taken.
        let mut insert =
            conn.prepare_cached(&format!("{} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)", sql::INSERT_PAYMENT))?;
        let mut ids = Vec::with_capacity(rows.len());
        for p in &rows {
            let (log, e) = (&p.log, &p.log.event);
            let status = if p.confirmed { PaymentStatus::Confirmed } else { PaymentStatus::Detected };
            let confirmed_at = p.confirmed.then_some(now as i64);
            let inserted = insert.execute(params![
                chain_id as i64,
                log.tx_hash.as_slice(),
                log.log_index as i64,
                log.block_number as i64,
                log.block_hash.as_slice(),
                &OrderId::from(e.orderId).to_be_bytes()[..],
                e.payer.as_slice(),
                e.token.as_slice(),
                &e.amount.to_be_bytes::<32>()[..],
                i64::from(e.planId),
                i64::from(e.periods),
                status.as_str(),
                p.matched_order.and_then(OrderId::db_key),
                p.unmatched_reason,
                now as i64,
                confirmed_at,
            ]);
            match inserted {
                Ok(_) => ids.push(Some(conn.last_insert_rowid())),
                Err(error) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    ids.push(record_again(conn, chain_id, p, status, confirmed_at).map_err(|_| error)?);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(ids)
    })
    .await
}

/// Handles a log whose insert hit a constraint: recorded before and reorged, it turns
/// back to `status` in its new block (returns its id); recorded and not reorged, it is a
/// duplicate (`None`). `Err` when the log was never recorded (another constraint refused
/// it: the caller reports the insert's own error).
fn record_again(conn: &Connection, chain_id: u64, p: &NewPayment, status: PaymentStatus, confirmed_at: Option<i64>) -> Result<Option<i64>, StoreError> {
    let log = &p.log;
    let existing: Option<(i64, String)> = conn
        .prepare_cached("SELECT id, status FROM payments WHERE chain_id = ?1 AND tx_hash = ?2 AND log_index = ?3")?
        .query_row(params![chain_id as i64, log.tx_hash.as_slice(), log.log_index as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match existing {
        None => Err(StoreError::Corrupt("payments: a new log was refused by a constraint")),
        Some((_, current)) if payment_status(&current)? != PaymentStatus::Reorged => Ok(None),
        Some((id, _)) => {
            conn.prepare_cached("UPDATE payments SET status = ?1, confirmed_at = ?2, block_number = ?3, block_hash = ?4 WHERE id = ?5")?.execute(params![
                status.as_str(),
                confirmed_at,
                log.block_number as i64,
                log.block_hash.as_slice(),
                id
            ])?;
            Ok(Some(id))
        }
    }
}

pub(super) async fn orders_paid(tx: &mut SqliteTx, ids: Vec<OrderId>) -> Result<(), StoreError> {
    tx.run(move |conn| orders::mark_paid_sqlite(conn, &ids)).await
}

pub(super) async fn activated(tx: &mut SqliteTx, payment_ids: Vec<i64>) -> Result<HashSet<i64>, StoreError> {
    tx.run(move |conn| subscriptions::activated_sqlite(conn, &payment_ids)).await
}

pub(super) async fn subscriptions(tx: &mut SqliteTx, wallets: Vec<Address>) -> Result<Vec<Subscription>, StoreError> {
    tx.run(move |conn| subscriptions::load_many_sqlite(conn, &wallets)).await
}

pub(super) async fn due_downgrades(tx: &mut SqliteTx, now: u64) -> Result<Vec<Subscription>, StoreError> {
    tx.run(move |conn| subscriptions::due_downgrades_sqlite(conn, now)).await
}

pub(super) async fn customers(tx: &mut SqliteTx, wallets: Vec<Address>) -> Result<HashMap<Address, CustomerRef>, StoreError> {
    tx.run(move |conn| {
        let mut out = HashMap::new();
        for wallet in wallets {
            if let Some(customer) = customers::of_wallet_sqlite(conn, wallet)? {
                out.insert(wallet, customer);
            }
        }
        Ok(out)
    })
    .await
}

pub(super) async fn write(tx: &mut SqliteTx, writes: Writes, now: u64) -> Result<(), StoreError> {
    tx.run(move |conn| {
        for (wallet, customer) in &writes.customers {
            customers::bind_sqlite(conn, *wallet, customer, now)?;
        }
        subscriptions::record_activations_sqlite(conn, &writes.activations, now)?;
        subscriptions::save_all_sqlite(conn, &writes.subscriptions, now)?;
        badges::queue_all_sqlite(conn, &writes.jobs, now)?;
        receipts::issue_all_sqlite(conn, &writes.receipts, now)?;
        Ok(outbox::write_all_sqlite(conn, &writes.events, now as i64)?)
    })
    .await
}

pub(super) async fn save_blocks(tx: &mut SqliteTx, chain_id: u64, blocks: Vec<BlockRow>, keep_from: u64) -> Result<(), StoreError> {
    tx.run(move |conn| {
        let chain = chain_id as i64;
        let mut save = conn.prepare_cached(&format!("{} VALUES (?1, ?2, ?3, ?4) {}", sql::SAVE_BLOCK_HEAD, sql::SAVE_BLOCK_TAIL))?;
        for b in &blocks {
            save.execute(params![chain, b.number as i64, b.hash.as_slice(), b.parent_hash.as_slice()])?;
        }
        conn.prepare_cached(sql::FORGET_BLOCKS_BELOW)?.execute(params![chain, keep_from as i64])?;
        Ok(())
    })
    .await
}

pub(super) async fn set_cursor(tx: &mut SqliteTx, chain_id: u64, next: u64) -> Result<(), StoreError> {
    tx.run(move |conn| {
        conn.prepare_cached(sql::SET_CURSOR)?.execute(params![chain_id as i64, next as i64])?;
        Ok(())
    })
    .await
}
