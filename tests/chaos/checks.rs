//! The final checks: from the chain, the database and the receiver. Each prints its count;
//! a violation keeps its first record.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::{
    consensus::Transaction as _,
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use serde_json::Value;
use sqlx::{AnyPool, Row};
use tmai_pay::chain::{
    bindings::{MembershipBadge, SubscriptionCheckout},
    deployment::Deployment,
};

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) passed: u32,
    pub(crate) failed: u32,
    pub(crate) first_violation: Option<String>,
    pub(crate) counts: BTreeMap<String, i64>,
}

impl Report {
    pub(crate) fn check(&mut self, name: &str, count: i64, violation: Option<String>) {
        self.counts.insert(name.into(), count);
        match violation {
            None => {
                self.passed += 1;
                println!("  ok    {name}: {count}");
            }
            Some(v) => {
                self.failed += 1;
                println!("  FAIL  {name}: {count}; first violation: {v}");
                self.first_violation.get_or_insert(format!("{name}: {v}"));
            }
        }
    }

    pub(crate) fn note(&mut self, name: &str, count: i64) {
        self.counts.insert(name.into(), count);
        println!("  info  {name}: {count}");
    }
}

async fn rows(pool: &AnyPool, sql: &str) -> Vec<sqlx::any::AnyRow> {
    sqlx::query(sql).fetch_all(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Receipts against payments: a matched payment whose activation stands has exactly one
/// receipt no credit note cancelled, one taken back has none; documents are numbered 1, 2, …
/// with no gap and no repeat, whatever was killed or reorganised.
async fn receipts(report: &mut Report, pool: &AnyPool) {
    let payments = rows(
        pool,
        "SELECT p.id, (SELECT COUNT(*) FROM activations a WHERE a.payment_id = p.id) AS activations,
                (SELECT COUNT(*) FROM receipts r WHERE r.payment_id = p.id AND r.kind = 'receipt' AND r.cancelled_by IS NULL) AS live
         FROM payments p WHERE p.matched_order IS NOT NULL ORDER BY p.id",
    )
    .await;
    let mut violation = None;
    let mut with_receipt = 0;
    for r in &payments {
        let (id, activations, live): (i64, i64, i64) = (r.try_get("id").unwrap(), r.try_get("activations").unwrap(), r.try_get("live").unwrap());
        with_receipt += live;
        if live != activations.min(1) {
            violation.get_or_insert(format!("payment {id}: {activations} activation(s), {live} live receipt(s)"));
        }
    }
    report.check("payments with one live receipt while their activation stands", with_receipt, violation);
    let numbers: Vec<i64> = sqlx::query_scalar("SELECT number FROM receipts ORDER BY number").fetch_all(pool).await.unwrap();
    let gap = numbers.iter().enumerate().find(|(i, n)| **n != *i as i64 + 1).map(|(i, n)| format!("document {} has number {n}", i + 1));
    report.check("receipt and credit note numbers without a gap", numbers.len() as i64, gap);
}

/// A payment row: id, status, matched order, activations, reversals.
type PaymentRow = (i64, String, Option<i64>, i64, i64);

/// Chain against database: payments, activations, badges.
pub(crate) async fn chain_and_db(report: &mut Report, chain: &DynProvider, d: &Deployment, pool: &AnyPool) {
    let filter = Filter::new().address(d.checkout).event_signature(SubscriptionCheckout::OrderPaid::SIGNATURE_HASH).from_block(d.deploy_block);
    let logs = chain.get_logs(&filter).await.unwrap();
    let canonical: HashMap<B256, u64> =
        logs.iter().map(|l| (l.transaction_hash.unwrap(), l.log_decode::<SubscriptionCheckout::OrderPaid>().unwrap().inner.orderId.to::<u64>())).collect();
    report.note("canonical OrderPaid logs on chain", canonical.len() as i64);

    let payments = rows(
        pool,
        "SELECT p.id, p.tx_hash, p.status, p.matched_order, (SELECT COUNT(*) FROM activations a WHERE a.payment_id = p.id) AS activations,
                (SELECT COUNT(*) FROM payment_reversals r WHERE r.payment_id = p.id) AS reversals
         FROM payments p ORDER BY p.id",
    )
    .await;
    let mut by_tx: HashMap<B256, Vec<PaymentRow>> = HashMap::new();
    for r in &payments {
        let tx = B256::from_slice(&r.try_get::<Vec<u8>, _>("tx_hash").unwrap());
        by_tx.entry(tx).or_default().push((
            r.try_get("id").unwrap(),
            r.try_get("status").unwrap(),
            r.try_get("matched_order").ok(),
            r.try_get("activations").unwrap(),
            r.try_get("reversals").unwrap(),
        ));
    }
    let orders: HashSet<i64> = rows(pool, "SELECT order_id FROM orders").await.iter().map(|r| r.try_get::<i64, _>(0).unwrap()).collect();

    // Every canonical payment of a known order: one confirmed row, activated exactly once.
    let mut matched = 0;
    let mut violation = None;
    for (tx, order) in &canonical {
        if !orders.contains(&(*order as i64)) {
            continue;
        }
        matched += 1;
        let rows = by_tx.get(tx).cloned().unwrap_or_default();
        let confirmed: Vec<_> = rows.iter().filter(|r| r.1 == "confirmed").collect();
        if confirmed.len() != 1 || confirmed[0].3 != 1 {
            violation.get_or_insert(format!("tx {tx} order {order}: payment rows {rows:?} (want one confirmed, activated once)"));
        }
    }
    report.check("canonical matched payments activated exactly once", matched, violation);

    // No activation left standing from a payment the chain no longer holds.
    let mut vanished = 0;
    let mut violation = None;
    for (tx, rows) in &by_tx {
        if canonical.contains_key(tx) {
            continue;
        }
        for r in rows {
            if r.3 > 0 {
                vanished += 1;
                if r.1 != "reorged" || r.4 == 0 {
                    violation.get_or_insert(format!("tx {tx}: payment {} is {} with {} activation(s) and {} reversal(s)", r.0, r.1, r.3, r.4));
                }
            } else if r.1 == "confirmed" {
                violation.get_or_insert(format!("tx {tx}: payment {} confirmed but not on the chain", r.0));
            }
        }
    }
    report.check("activations of vanished payments taken back", vanished, violation);
    receipts(report, pool).await;
    let reversals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payment_reversals").fetch_one(pool).await.unwrap();
    report.note("payment reversals (confirmed payments the chain dropped)", reversals);
    let reorged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE status = 'reorged'").fetch_one(pool).await.unwrap();
    report.note("payments marked reorged", reorged);

    // Badges: at most one per wallet; a live subscription's badge shows the database's tier
    // and expiry.
    let badge = MembershipBadge::new(d.badge, chain);
    let subs = rows(pool, "SELECT wallet, tier, status, expires_at FROM subscriptions ORDER BY wallet").await;
    let mut violation = None;
    let mut live = 0;
    for r in &subs {
        let wallet = Address::from_slice(&r.try_get::<Vec<u8>, _>("wallet").unwrap());
        let (tier, status, expires): (i64, String, i64) = (r.try_get("tier").unwrap(), r.try_get("status").unwrap(), r.try_get("expires_at").unwrap());
        let balance = badge.balanceOf(wallet).call().await.unwrap();
        let m = badge.membershipOf(wallet).call().await.unwrap();
        let holds = balance.to::<u64>();
        if holds > 1 {
            violation.get_or_insert(format!("{wallet} holds {holds} badges"));
        }
        if status == "active" || status == "trialing" {
            live += 1;
            if holds != 1 || i64::from(m.tier) != tier || m.expiresAt_ as i64 != expires {
                violation.get_or_insert(format!(
                    "{wallet}: db {status} tier {tier} expires {expires}; chain holds {holds}, tier {} expires {}",
                    m.tier, m.expiresAt_
                ));
            }
        }
    }
    report.check("live subscriptions whose badge matches the database", live, violation);
}

/// The issuer's nonces: every one below its latest count is used by a mined transaction,
/// once and in order (a confirmed badge batch that a reorg dropped was sent again at its
/// nonce, or the nonce went to another transaction), and how many such batches there were.
pub(crate) async fn issuer_nonces(report: &mut Report, chain: &DynProvider, issuer: Address, pool: &AnyPool) {
    let settled: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM badge_batches WHERE last_error LIKE 'reorged out after confirmation%'").fetch_one(pool).await.unwrap();
    report.note("badge batches a deep reorg removed after confirmation (sent again or given up)", settled);
    let latest = chain.get_transaction_count(issuer).latest().await.unwrap();
    let head = chain.get_block_number().await.unwrap();
    let mut nonces = Vec::new();
    for number in 0..=head {
        let block = chain.get_block_by_number(number.into()).full().await.unwrap().unwrap();
        nonces.extend(block.transactions.txns().filter(|tx| tx.inner.signer() == issuer).map(|tx| tx.nonce()));
    }
    let violation = nonces
        .iter()
        .zip(0..)
        .find(|(nonce, expected)| **nonce != *expected)
        .map(|(nonce, expected)| format!("issuer transaction with nonce {nonce} where nonce {expected} was due"))
        .or_else(|| (nonces.len() as u64 != latest).then(|| format!("{} mined issuer transactions, nonce count {latest}", nonces.len())));
    report.check("issuer nonces used by mined transactions, without a gap", latest as i64, violation);
}

/// Outbox against deliveries and the receiver: every event delivered at least once, with its
/// id, in sequence order per endpoint.
pub(crate) async fn events(report: &mut Report, pool: &AnyPool, receiver: &Value, endpoints: &[(String, String)]) {
    let events = rows(pool, "SELECT seq, id, event_type FROM outbox_events ORDER BY seq").await;
    let seq_of: HashMap<String, (i64, String)> =
        events.iter().map(|r| (r.try_get::<String, _>("id").unwrap(), (r.try_get("seq").unwrap(), r.try_get("event_type").unwrap()))).collect();
    report.note("outbox events", events.len() as i64);
    let seqs: Vec<i64> = events.iter().map(|r| r.try_get("seq").unwrap()).collect();
    let gaps = seqs.windows(2).filter(|w| w[1] != w[0] + 1).count();
    // A BIGSERIAL skips the numbers of rolled-back transactions (a kill mid-pass): gaps in
    // the numbers are not lost events; lost events show up below as undelivered ids.
    report.note("outbox seq gaps (rolled-back numbers)", gaps as i64);

    for (endpoint_id, name) in endpoints {
        let deliveries = sqlx::query("SELECT event_id, status FROM webhook_deliveries WHERE endpoint_id = $1").bind(endpoint_id).fetch_all(pool).await.unwrap();
        let delivered: HashMap<String, String> = deliveries.iter().map(|r| (r.try_get("event_id").unwrap(), r.try_get("status").unwrap())).collect();
        let received = receiver[name]["received"].as_array().cloned().unwrap_or_default();
        let mut first_seen: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut violation = None;
        for r in &received {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            match seq_of.get(&id) {
                None => {
                    violation.get_or_insert(format!("{name}: received id {id} is no outbox event"));
                }
                Some((_, t)) if r["type"].as_str() != Some(t) => {
                    violation.get_or_insert(format!("{name}: id {id} came as {:?}, the outbox says {t}", r["type"]));
                }
                _ => {}
            }
            if r["body"]["id"].as_str().is_some_and(|b| b != id) {
                violation.get_or_insert(format!("{name}: webhook-id {id} but body id {}", r["body"]["id"]));
            }
            if seen.insert(id.clone()) {
                first_seen.push(id);
            }
        }
        for (id, (seq, _)) in &seq_of {
            if !seen.contains(id) {
                violation.get_or_insert(format!("{name}: event {id} (seq {seq}) never received; delivery {:?}", delivered.get(id)));
            }
        }
        report.check(&format!("events received by {name} (each at least once, verified)"), seen.len() as i64, violation);
        let order: Vec<i64> = first_seen.iter().filter_map(|id| seq_of.get(id).map(|s| s.0)).collect();
        let violation = order.windows(2).find(|w| w[1] < w[0]).map(|w| format!("{name}: seq {} arrived after seq {}", w[1], w[0]));
        report.check(&format!("events in outbox order at {name}"), order.len() as i64, violation);
        report.note(&format!("redeliveries at {name}"), (received.len() - seen.len()) as i64);
    }
}

/// No duplicate rows where the schema or the design promises one.
pub(crate) async fn duplicates(report: &mut Report, pool: &AnyPool) {
    let queries = [
        ("payments per (chain, tx, log index)", "SELECT COUNT(*) FROM (SELECT 1 FROM payments GROUP BY chain_id, tx_hash, log_index HAVING COUNT(*) > 1) d"),
        (
            "confirmed payments per order",
            "SELECT COUNT(*) FROM (SELECT 1 FROM payments WHERE status = 'confirmed' GROUP BY chain_id, matched_order HAVING COUNT(*) > 1) d",
        ),
        (
            "activations per order",
            "SELECT COUNT(*) FROM (SELECT 1 FROM activations a JOIN payments p ON p.id = a.payment_id WHERE p.status = 'confirmed' GROUP BY p.matched_order HAVING COUNT(*) > 1) d",
        ),
        ("outbox events per id", "SELECT COUNT(*) FROM (SELECT 1 FROM outbox_events GROUP BY id HAVING COUNT(*) > 1) d"),
        ("deliveries per (endpoint, event)", "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries GROUP BY endpoint_id, event_id HAVING COUNT(*) > 1) d"),
        ("card events per processor id", "SELECT COUNT(*) FROM (SELECT 1 FROM card_events GROUP BY event_id HAVING COUNT(*) > 1) d"),
        ("subscriptions per wallet", "SELECT COUNT(*) FROM (SELECT 1 FROM subscriptions GROUP BY wallet HAVING COUNT(*) > 1) d"),
        ("orders per checkout id", "SELECT COUNT(*) FROM (SELECT 1 FROM orders GROUP BY checkout_id HAVING COUNT(*) > 1) d"),
    ];
    for (name, sql) in queries {
        let n: i64 = sqlx::query(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).try_get(0).unwrap();
        report.check(&format!("duplicate {name}"), n, (n > 0).then(|| format!("{n} duplicated key(s): {sql}")));
    }
}

/// No secret in any log line.
pub(crate) fn secrets(report: &mut Report, logs: &[std::path::PathBuf], secrets: &[(&str, String)]) {
    let mut lines = 0;
    let mut violation = None;
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            lines += 1;
            for (what, secret) in secrets {
                if !secret.is_empty() && line.contains(secret.as_str()) {
                    violation.get_or_insert(format!("{what} in {}:{}", path.display(), n + 1));
                }
            }
        }
    }
    report.check("log lines free of secrets", lines, violation);
}
