//! Reorgs deeper than the confirmations, on a real anvil (`anvil_reorg`), on SQLite and
//! PostgreSQL: a confirmed payment mined again keeps what it bought and moves to its new
//! place; one that does not come back is reported and what it bought is taken back; the
//! watcher carries on either way, and a later payment still activates.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256},
    providers::{Provider, ext::AnvilApi},
    rpc::types::{
        TransactionRequest,
        anvil::{ReorgOptions, TransactionData},
    },
    sol_types::{SolCall, SolEvent},
};
use sqlx::Row;
use tmai_pay::{
    billing::{
        activation::{self, Subscription},
        plans::MONTH_SECS,
        quotes::IssuedQuote,
    },
    chain::bindings::{SubscriptionCheckout, TestToken},
};

use crate::{
    db::{DbKind, on_both_databases},
    harness::{CONFIRMATIONS, Harness},
};

/// A payment's signed transactions, kept to mine them again on another branch.
struct Paid {
    approve: Bytes,
    pay: Bytes,
    tx_hash: B256,
}

/// Approves and pays `quote` from wallet `index` with explicit gas limits (so the same
/// signed transactions fit on another branch); returns their raw bytes.
async fn pay_keeping_raw(h: &Harness, index: usize, quote: &IssuedQuote) -> Paid {
    let (approval, receipt) = h.approve_and_pay_with_gas(index, quote, Some((100_000, 400_000))).await;
    let raw = |hash| async move { h.rpc.get_raw_transaction_by_hash(hash).await.unwrap().unwrap() };
    Paid { approve: raw(approval.transaction_hash).await, pay: raw(receipt.transaction_hash).await, tx_hash: receipt.transaction_hash }
}

/// Returns `(block, log index)` of the `OrderPaid` log of `tx` on the canonical chain, if
/// the chain holds it.
async fn position(h: &Harness, tx: B256) -> Option<(u64, u64)> {
    let receipt = h.rpc.get_transaction_receipt(tx).await.unwrap()?;
    let log = receipt.inner.logs().iter().find(|l| l.topic0() == Some(&SubscriptionCheckout::OrderPaid::SIGNATURE_HASH))?.clone();
    Some((log.block_number?, log.log_index?))
}

/// A transaction that emits a log of its own (a TMAI transfer from wallet 9), to shift the
/// log indexes of what follows it in a block.
fn unrelated_transfer(h: &Harness) -> TransactionData {
    let tmai = h.chain.deployment.tokens.iter().find(|t| t.symbol == "TMAI").unwrap().address;
    let call = TestToken::transferCall { to: h.wallet(8), value: U256::from(1u64) };
    TransactionData::JSON(TransactionRequest::default().with_from(h.wallet(9)).with_to(tmai).with_input(call.abi_encode()).with_gas_limit(100_000))
}

async fn reorg(h: &Harness, depth: u64, txs: Vec<(TransactionData, u64)>) {
    h.rpc.anvil_reorg(ReorgOptions { depth, tx_block_pairs: txs }).await.unwrap();
}

async fn subscription(h: &Harness, wallet: Address) -> Option<Subscription> {
    let mut conn = h.test_db.db.pool().acquire().await.unwrap();
    activation::load(&mut conn, wallet).await.unwrap()
}

/// Returns `(status, block_number, log_index, block_hash)` of the payment row of `tx`.
async fn payment_row(h: &Harness, tx: B256) -> (String, i64, i64, Vec<u8>) {
    let rows = sqlx::query("SELECT status, block_number, log_index, block_hash FROM payments WHERE tx_hash = $1")
        .bind(tx.to_vec())
        .fetch_all(h.test_db.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one row per payment, whatever the reorgs");
    let r = &rows[0];
    (r.get("status"), r.get("block_number"), r.get("log_index"), r.get("block_hash"))
}

/// Pays a fresh quote from wallet `index` and waits until it activates: the watcher still
/// works after whatever came before.
async fn a_later_payment_still_activates(h: &Harness, index: usize) {
    let before = h.count("SELECT COUNT(*) FROM activations").await;
    h.pay(index, &h.quote(index, 2, "USD", 1).await).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, before + 1, "a later payment activates");
    let sub = subscription(h, h.wallet(index)).await.expect("the later payment's subscription");
    assert_ne!(sub.status, tmai_pay::states::SubscriptionStatus::Expired);
}

/// Pays, confirms and activates; returns the payment and the subscription it made.
async fn confirmed_payment(h: &Harness, index: usize, plan_id: u32) -> (Paid, Subscription) {
    let paid = pay_keeping_raw(h, index, &h.quote(index, plan_id, "TMAI", 1).await).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    assert_eq!(h.payment_status(paid.tx_hash).await, "confirmed");
    (paid, subscription(h, h.wallet(index)).await.expect("activated"))
}

async fn a_confirmed_payment_mined_again_at_a_new_log_index_keeps_its_effects(kind: DbKind) {
    // Arrange: a confirmed, activated payment
    let h = Harness::start(kind).await;
    let (paid, before) = confirmed_payment(&h, 0, 3).await;
    let old = position(&h, paid.tx_hash).await.unwrap();

    // Act: a reorg N+2 deep mines an unrelated transfer, then the same approval and payment
    reorg(&h, CONFIRMATIONS + 2, vec![(unrelated_transfer(&h), 0), (TransactionData::Raw(paid.approve), 0), (TransactionData::Raw(paid.pay), 0)]).await;
    h.catch_up().await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;

    // Assert: the row moved with the log; nothing undone, nothing done twice
    let new = position(&h, paid.tx_hash).await.expect("the payment is on the new branch");
    assert_ne!(new.1, old.1, "the test means a new log index: {old:?} -> {new:?}");
    let (status, block, index, _) = payment_row(&h, paid.tx_hash).await;
    assert_eq!((status.as_str(), block as u64, index as u64), ("confirmed", new.0, new.1));
    assert_eq!(subscription(&h, h.wallet(0)).await.unwrap(), before);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs").await, 1);
    assert_eq!(h.events("payment.confirmed").await.len(), 1);
    assert_eq!(h.events("payment.reorged").await.len(), 0);
    assert_eq!(h.events("subscription.activated").await.len(), 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM payment_reversals").await, 0);
    a_later_payment_still_activates(&h, 1).await;
}
on_both_databases!(a_confirmed_payment_mined_again_at_a_new_log_index_keeps_its_effects);

async fn a_confirmed_payment_mined_again_in_the_same_position_keeps_its_effects(kind: DbKind) {
    let h = Harness::start(kind).await;
    let (paid, before) = confirmed_payment(&h, 0, 2).await;
    let old = position(&h, paid.tx_hash).await.unwrap();
    let (_, _, _, old_hash) = payment_row(&h, paid.tx_hash).await;

    // Act: the same transactions in the same blocks of a new branch N+2 deep
    let depth = h.rpc.get_block_number().await.unwrap() + 1 - (old.0 - 1);
    assert!(depth >= CONFIRMATIONS + 2, "depth {depth}");
    reorg(&h, depth, vec![(TransactionData::Raw(paid.approve), 0), (TransactionData::Raw(paid.pay), 1)]).await;
    h.catch_up().await;

    // Assert
    let new = position(&h, paid.tx_hash).await.expect("on the new branch");
    assert_eq!(new, old, "the test means the same position");
    let (status, block, index, hash) = payment_row(&h, paid.tx_hash).await;
    assert_eq!((status.as_str(), block as u64, index as u64), ("confirmed", new.0, new.1));
    assert_ne!(hash, old_hash, "the row holds the new branch's block hash");
    assert_eq!(subscription(&h, h.wallet(0)).await.unwrap(), before);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 1);
    assert_eq!(h.events("payment.confirmed").await.len(), 1);
    assert_eq!(h.events("payment.reorged").await.len(), 0);
    a_later_payment_still_activates(&h, 1).await;
}
on_both_databases!(a_confirmed_payment_mined_again_in_the_same_position_keeps_its_effects);

async fn a_confirmed_payment_mined_again_but_not_yet_deep_waits_without_undoing_anything(kind: DbKind) {
    let h = Harness::start(kind).await;
    let (paid, before) = confirmed_payment(&h, 0, 3).await;

    // Act: the new branch mines the payment in its last block only (less than N deep)
    let depth = CONFIRMATIONS + 2;
    reorg(&h, depth, vec![(TransactionData::Raw(paid.approve), depth - 2), (TransactionData::Raw(paid.pay), depth - 1)]).await;
    h.catch_up().await;

    // Assert: waiting, effects kept, no event
    assert_eq!(h.payment_status(paid.tx_hash).await, "detected");
    assert_eq!(subscription(&h, h.wallet(0)).await.unwrap(), before);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs").await, 1);
    assert_eq!(h.events("payment.reorged").await.len() + h.events("subscription.expired").await.len(), 0);

    // And N deep again it is confirmed, once, with nothing new
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    assert_eq!(h.payment_status(paid.tx_hash).await, "confirmed");
    assert_eq!(subscription(&h, h.wallet(0)).await.unwrap(), before);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 1);
    assert_eq!(h.events("payment.confirmed").await.len(), 1);
    assert_eq!(h.events("payment.detected").await.len(), 1);
    a_later_payment_still_activates(&h, 1).await;
}
on_both_databases!(a_confirmed_payment_mined_again_but_not_yet_deep_waits_without_undoing_anything);

pub(crate) async fn a_confirmed_payment_the_chain_drops_is_reported_and_what_it_bought_taken_back(kind: DbKind) {
    // Arrange: wallet 0's only payment, and wallet 1's renewal on top of an older payment
    let h = Harness::start(kind).await;
    let (_, first) = confirmed_payment(&h, 1, 1).await;
    h.mine(CONFIRMATIONS + 3).await;
    h.catch_up().await;
    let (only, _) = confirmed_payment(&h, 0, 3).await;
    let renewal = pay_keeping_raw(&h, 1, &h.quote(1, 1, "TMAI", 1).await).await;
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    assert_eq!(subscription(&h, h.wallet(1)).await.unwrap().expires_at, first.expires_at + MONTH_SECS);
    let jobs_before = h.count("SELECT COUNT(*) FROM badge_jobs").await;

    // Act: a reorg N+2 deep drops both recent payments (the first of wallet 1 stays)
    let depth = h.rpc.get_block_number().await.unwrap() + 2 - position(&h, only.tx_hash).await.unwrap().0;
    assert!((CONFIRMATIONS + 2..CONFIRMATIONS + 8).contains(&depth), "depth {depth}");
    reorg(&h, depth, vec![(unrelated_transfer(&h), 0)]).await;
    h.catch_up().await;

    // Assert: reported loudly, taken back by the refund's rules
    assert!(position(&h, only.tx_hash).await.is_none() && position(&h, renewal.tx_hash).await.is_none());
    for tx in [only.tx_hash, renewal.tx_hash] {
        assert_eq!(h.payment_status(tx).await, "reorged");
    }
    let reorged = h.events("payment.reorged").await;
    assert_eq!(reorged.len(), 2);
    assert!(reorged.iter().all(|e| e.payload["data"]["after_confirmation"] == true), "{reorged:?}");
    let gone = subscription(&h, h.wallet(0)).await.unwrap();
    assert_eq!(gone.status, tmai_pay::states::SubscriptionStatus::Expired);
    let expired = h.events("subscription.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].payload["data"]["reason"], "reorged");
    let kept = subscription(&h, h.wallet(1)).await.unwrap();
    assert_eq!((kept.status.as_str(), kept.expires_at), ("active", first.expires_at), "the renewal's month came off");
    assert_eq!(h.events("subscription.reversed").await.len(), 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs").await, jobs_before + 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs WHERE action = 'revoke'").await, 1);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 1, "only wallet 1's first payment still counts");
    assert_eq!(h.count("SELECT COUNT(*) FROM payment_reversals").await, 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM orders WHERE status = 'open'").await, 2, "both orders can be paid again");
    // Their receipts are cancelled by numbered credit notes; the older receipt stands.
    assert_eq!(h.count("SELECT COUNT(*) FROM receipts WHERE kind = 'credit_note' AND reason = 'reorged'").await, 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM receipts WHERE kind = 'receipt' AND cancelled_by IS NOT NULL").await, 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM receipts WHERE kind = 'receipt' AND cancelled_by IS NULL").await, 1);

    // A pass more changes nothing (taken back once)
    h.mine(1).await;
    h.catch_up().await;
    assert_eq!(h.events("payment.reorged").await.len(), 2);
    assert_eq!(h.count("SELECT COUNT(*) FROM payment_reversals").await, 2);

    // The same order paid again later (the same signed transactions) activates as usual
    for raw in [only.approve, only.pay] {
        h.rpc.send_raw_transaction(&raw).await.unwrap().get_receipt().await.unwrap();
    }
    h.mine(CONFIRMATIONS).await;
    h.catch_up().await;
    assert_eq!(h.payment_status(only.tx_hash).await, "confirmed");
    let back = subscription(&h, h.wallet(0)).await.unwrap();
    assert_eq!((back.status.as_str(), back.tier), ("active", 3));
    assert_eq!(h.events("subscription.activated").await.len(), 3, "wallet 1, wallet 0, and wallet 0 again");
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, 2);
    // Mined again, it is confirmed anew: a new receipt with the next number; no number is
    // skipped or reused over the whole story (3 receipts, 2 credit notes, 1 new receipt).
    let live: Vec<String> = sqlx::query_scalar("SELECT id FROM receipts WHERE kind = 'receipt' AND cancelled_by IS NULL ORDER BY number")
        .fetch_all(h.test_db.db.pool())
        .await
        .unwrap();
    assert_eq!(live.len(), 2);
    let confirmed = h.events("payment.confirmed").await;
    let last = confirmed.last().unwrap().payload["data"]["receipt_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!(&last, live.last().unwrap(), "the new confirmation names the new receipt");
    let numbers = tmai_pay::store::receipts::numbers(&h.test_db.db).await.unwrap();
    assert_eq!(numbers, (1..=6).collect::<Vec<u64>>());
    a_later_payment_still_activates(&h, 2).await;
    crate::event_schemas::check_outbox(&h.test_db.db).await;
}
on_both_databases!(a_confirmed_payment_the_chain_drops_is_reported_and_what_it_bought_taken_back);

async fn reorgs_during_the_watchers_own_passes_leave_exactly_the_canonical_payments_active(kind: DbKind) {
    // Arrange: the watcher running on its own, polling often
    let h = Harness::start(kind).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let watcher = h.watcher.clone();
    let stop = cancel.clone();
    let running = tokio::spawn(async move { watcher.run(stop, None).await });

    // Act: payments and reorgs (deep and shallow, re-mining or dropping) while it runs
    let mut txs = Vec::new();
    for round in 0..6u64 {
        let wallet = round as usize;
        let paid = pay_keeping_raw(&h, wallet, &h.quote(wallet, 1 + (round as u32 % 4), "USD", 1).await).await;
        txs.push(paid.tx_hash);
        let again = |first, second| match round % 3 {
            2 => vec![],
            _ => vec![(TransactionData::Raw(paid.approve.clone()), first), (TransactionData::Raw(paid.pay.clone()), second)],
        };
        if round % 2 == 1 {
            // Shallow: the payment is at most detected.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            reorg(&h, 2, again(0, 0)).await;
            h.mine(1).await;
        } else {
            // Deep: N+2 over a payment the watcher may have confirmed meanwhile.
            h.mine(CONFIRMATIONS).await;
            tokio::time::sleep(std::time::Duration::from_millis(60 + 20 * round)).await;
            reorg(&h, CONFIRMATIONS + 2, again(0, 1)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20 * round)).await;
    }
    h.mine(CONFIRMATIONS + 1).await;
    let head = h.rpc.get_block_number().await.unwrap();
    let mut caught_up = false;
    for _ in 0..400 {
        let next: i64 = sqlx::query("SELECT next_block FROM chain_cursor").fetch_one(h.test_db.db.pool()).await.unwrap().get(0);
        if next as u64 > head {
            caught_up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    cancel.cancel();
    running.await.unwrap();

    // Assert: every payment the chain holds is confirmed and activated once; none other is
    assert!(caught_up, "the running watcher caught up with the head");
    let mut canonical = 0;
    for tx in &txs {
        let on_chain = h.rpc.get_transaction_receipt(*tx).await.unwrap().is_some();
        let activated: i64 = sqlx::query("SELECT COUNT(*) FROM activations a JOIN payments p ON p.id = a.payment_id WHERE p.tx_hash = $1")
            .bind(tx.to_vec())
            .fetch_one(h.test_db.db.pool())
            .await
            .unwrap()
            .get(0);
        let status: Option<String> = sqlx::query("SELECT status FROM payments WHERE tx_hash = $1")
            .bind(tx.to_vec())
            .fetch_optional(h.test_db.db.pool())
            .await
            .unwrap()
            .map(|r| r.get("status"));
        if on_chain {
            canonical += 1;
            assert_eq!((status.as_deref(), activated), (Some("confirmed"), 1), "{tx} is on the chain");
        } else {
            // Dropped before the watcher saw it (no row), or reorged.
            assert!(matches!(status.as_deref(), None | Some("reorged")) && activated == 0, "{tx} is not on the chain: {status:?}, {activated}");
        }
    }
    assert_eq!(canonical, 4, "rounds 2 and 5 dropped their payments, the others mined them again");
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, canonical as i64);
    a_later_payment_still_activates(&h, 7).await;
}
on_both_databases!(reorgs_during_the_watchers_own_passes_leave_exactly_the_canonical_payments_active);

async fn a_pass_that_keeps_failing_is_reported_and_the_watcher_carries_on(kind: DbKind) {
    // Arrange: a provider that refuses every eth_getLogs, and a payment waiting behind it
    let h = Harness::start(kind).await;
    let (url, refused, limit) = crate::watcher::range_limited_proxy(h.chain.anvil.endpoint(), 0).await;
    let provider = alloy::providers::ProviderBuilder::new().connect_http(url.parse().unwrap()).erased();
    let watcher = h.watcher_on(&h.test_db.db, provider);
    h.pay(0, &h.quote(0, 1, "USD", 1).await).await;
    h.mine(CONFIRMATIONS).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let (running, stop) = (watcher.clone(), cancel.clone());
    let task = tokio::spawn(async move { running.run(stop, None).await });

    // Act + Assert: failures are counted, with the range the pass tried
    let mut failures = 0;
    for _ in 0..200 {
        failures = watcher.consecutive_failures();
        if failures >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(failures >= 3, "consecutive failures counted: {failures}");
    assert!(refused.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    let (from, to) = watcher.attempted_range();
    assert_eq!(from, h.chain.deployment.deploy_block, "the range the failing pass reads");
    assert!(to >= from);

    // The provider recovers: the watcher carries on by itself and the payment activates
    limit.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    let mut activated = 0;
    for _ in 0..400 {
        activated = h.count("SELECT COUNT(*) FROM activations").await;
        if activated == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(activated, 1);
    assert_eq!(watcher.consecutive_failures(), 0);
    cancel.cancel();
    task.await.unwrap();
}
on_both_databases!(a_pass_that_keeps_failing_is_reported_and_the_watcher_carries_on);
