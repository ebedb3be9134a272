//! Riding out a faulty node: start-up waits for an RPC endpoint that does not answer (not
//! ready meanwhile) and still stops at once on a configuration error; the watcher's pass
//! rides out a node that fails a fifth of its calls; a fallback node takes over from one
//! that keeps failing; and a fallback that lags is not taken for a reorg.

use std::time::{Duration, Instant};

use alloy::{node_bindings::Anvil, providers::Provider};
use tmai_pay::chain::{devnet, rpc::Nodes};

use crate::{
    db::{DbKind, fresh_db, on_both_databases},
    harness::{CONFIRMATIONS, Harness},
    helpers::{free_port, text, tmai_pay, toolchain},
    rpc_proxy::{KEY, RpcProxy},
    service::{Instance, key_hex, request, wait_for_count, write_config},
};

/// Returns `config` with `line` added to its `[chain]` table.
fn with_chain_line(config: &std::path::Path, line: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, text.replacen("[chain]\n", &format!("[chain]\n{line}\n"), 1)).unwrap();
    config.to_path_buf()
}

/// Returns the nodes at `urls`, as the service builds them.
fn nodes(urls: &[String]) -> Nodes {
    Nodes::new(urls.iter().map(|u| u.parse().unwrap()).collect(), urls.iter().map(|u| tmai_pay::config::redacted(u)).collect())
}

/// `tmai-pay run` against a node that fails every call: the operations listener is up and
/// says not ready (and what start-up waits for), the log says it too, without the URL's
/// key; when the node recovers, the service starts, becomes ready and takes a payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_waits_for_a_node_that_fails_every_call_and_is_not_ready_meanwhile() {
    // Arrange: the node behind a proxy that fails every request
    let h = Harness::start(DbKind::Sqlite).await;
    let proxy = RpcProxy::start(h.chain.anvil.endpoint());
    proxy.fail_share(100, 7);
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("run.db").display());
    let d = &h.chain.deployment;
    let (port, ops_port) = (free_port(), free_port());
    let http = format!("[http]\nbind = \"127.0.0.1:{port}\"\nops_bind = \"127.0.0.1:{ops_port}\"\n");
    let config = write_config(dir.path(), &db_url, &proxy.url, d.chain_id, d, &http);
    let issuer = key_hex(&h, devnet::ISSUER);
    let instance = Instance::start_with("run", &config, &[("TMAI_PAY__CHAIN__ISSUER_KEY", &issuer)]);
    let ops = format!("http://127.0.0.1:{ops_port}");

    // Act 1: start-up waits
    let waiting = instance.wait_for_line("waiting for the RPC endpoint", Duration::from_secs(60)).expect("start-up never said it waits");
    let readyz = reqwest::get(format!("{ops}/readyz")).await.unwrap();
    let waiting_status = readyz.status().as_u16();
    let waiting_body: serde_json::Value = readyz.json().await.unwrap();
    let alive = reqwest::get(format!("{ops}/healthz")).await.unwrap().status().as_u16();

    // Act 2: the node recovers
    proxy.fail_share(0, 0);
    assert!(instance.wait_for("watcher and minter starting", Duration::from_secs(90)), "start-up did not go on when the node recovered");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = 0;
    while ready != 200 && Instant::now() < deadline {
        ready = reqwest::get(format!("{ops}/readyz")).await.unwrap().status().as_u16();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let db = tmai_pay::store::Db::connect(&db_url).await.unwrap();
    let quote = h.quotes.issue(&db, &h.catalog, &request(&h, 2), h.chain_now().await).await.unwrap();
    h.pay(2, &quote).await;
    h.mine(CONFIRMATIONS).await;
    let activated = wait_for_count(db.pool(), "SELECT COUNT(*) FROM activations", 1, Duration::from_secs(30)).await;

    // Assert
    assert!(waiting.contains("the chain id") && waiting.contains("/v3/***"), "{waiting}");
    assert!(!waiting.contains(KEY), "the RPC key was logged: {waiting}");
    assert_eq!(waiting_status, 503, "{waiting_body}");
    assert_eq!(waiting_body["status"], "not_ready", "{waiting_body}");
    let starting = waiting_body["starting"].as_str().unwrap_or_default();
    assert!(starting.contains("the chain id") && !starting.contains(KEY), "{waiting_body}");
    assert_eq!(alive, 200);
    assert!(proxy.failed() > 0);
    assert_eq!(ready, 200, "never ready after the node recovered");
    assert_eq!(activated, 1);
}

/// `tmai-pay watch` against an address where nothing listens waits (saying so, without the
/// URL's key) instead of exiting, and stops cleanly on SIGTERM meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_waits_for_an_unreachable_rpc_endpoint_and_stops_on_sigterm() {
    // Arrange
    let h = Harness::start(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("w.db").display());
    let d = &h.chain.deployment;
    let url = format!("http://127.0.0.1:{}/v3/{KEY}", free_port());
    let config = write_config(dir.path(), &db, &url, d.chain_id, d, "");
    let mut instance = Instance::start(&config);

    // Act
    let waiting = instance.wait_for_line("waiting for the RPC endpoint", Duration::from_secs(60));
    let status = instance.terminate();

    // Assert
    let waiting = waiting.expect("watch never said it waits");
    assert!(waiting.contains("the chain id") && waiting.contains("/v3/***") && !waiting.contains(KEY), "{waiting}");
    assert!(status.success(), "watch exited with {status} on SIGTERM while waiting");
}

/// A node on another chain stops start-up at once, naming the field: the first node with
/// `chain.chain_id`, a fallback with its own field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_chain_stops_start_up_at_once_naming_the_field() {
    // Arrange: the right chain, and another on chain id 5
    let h = Harness::start(DbKind::Sqlite).await;
    let other = Anvil::at(toolchain().anvil()).chain_id(5).try_spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("w.db").display());
    let d = &h.chain.deployment;
    let first_wrong = write_config(dir.path(), &db, &other.endpoint(), d.chain_id, d, "");
    let fallback_wrong = write_config(dir.path(), &db, &h.chain.anvil.endpoint(), d.chain_id, d, "");
    let fallback_wrong = with_chain_line(&fallback_wrong, &format!("fallback_rpc_urls = [\"{}\"]", other.endpoint()));

    // Act: both return (a wait would hang the test)
    let first = tmai_pay(&["watch", "--config", first_wrong.to_str().unwrap()], &[]);
    let fallback = tmai_pay(&["watch", "--config", fallback_wrong.to_str().unwrap()], &[]);

    // Assert
    let (first_err, fallback_err) = (text(&first).1, text(&fallback).1);
    assert!(!first.status.success() && first_err.contains("reports chain id 5, but chain.chain_id is 31337"), "{first_err}");
    assert!(!fallback.status.success() && fallback_err.contains("chain.fallback_rpc_urls[0]"), "{fallback_err}");
    assert!(fallback_err.contains("reports chain id 5"), "{fallback_err}");
}

/// A backlog of payments already on the chain all activate, exactly once, through a node
/// that fails a fifth of all calls (connections reset, 503s, answers cut in half): every
/// call is retried inside its pass, so no pass fails.
async fn payments_already_on_chain_all_activate_through_a_node_failing_a_fifth_of_calls(kind: DbKind) {
    // Arrange: ten payments mined and confirmed before the watcher starts
    let h = Harness::start(kind).await;
    let payments = 10;
    for i in 0..payments {
        let token = if i % 2 == 0 { "TMAI" } else { "USD" };
        let quote = h.quote(i, 1 + (i as u32 % 4), token, 1).await;
        h.pay(i, &quote).await;
    }
    h.mine(CONFIRMATIONS).await;
    let proxy = RpcProxy::start(h.chain.anvil.endpoint());
    proxy.fail_share(20, 30);
    let nodes = nodes(std::slice::from_ref(&proxy.url));
    // A small range: many passes, many range reads.
    let watcher = h.watcher_with_range(&h.test_db.db, nodes.provider.clone(), 4).with_nodes(nodes);

    // Act
    let mut passes = 0;
    loop {
        passes += 1;
        let report = watcher.pass().await.unwrap_or_else(|e| panic!("pass {passes} failed under a fifth of calls failing: {e}"));
        if report.caught_up {
            break;
        }
    }

    // Assert
    assert!(proxy.failed() >= 10, "the proxy failed only {} of {} requests", proxy.failed(), proxy.requests());
    assert!(passes > 5, "{passes} passes");
    assert_eq!(h.count("SELECT COUNT(*) FROM payments WHERE status = 'confirmed'").await, payments as i64);
    assert_eq!(h.count("SELECT COUNT(*) FROM activations").await, payments as i64);
    assert_eq!(h.count("SELECT COUNT(*) FROM badge_jobs").await, payments as i64);
    assert_eq!(h.events("payment.confirmed").await.len(), payments);
    assert_eq!(h.events("subscription.activated").await.len(), payments);
    assert!(h.events("payment.reorged").await.is_empty());
    crate::event_schemas::check_outbox(&h.test_db.db).await;
}
on_both_databases!(payments_already_on_chain_all_activate_through_a_node_failing_a_fifth_of_calls);

/// `tmai-pay watch` whose first node fails every call starts on the fallback
/// (`chain.fallback_rpc_urls`) and activates the payments on it; when the first node
/// recovers, it joins the rotation again.
async fn a_fallback_node_takes_over_when_the_first_keeps_failing(kind: DbKind) {
    // Arrange: three payments on chain; the first node behind a proxy failing everything
    let h = Harness::start(kind).await;
    let db = fresh_db(kind).await;
    for i in 0..3 {
        let quote = h.quotes.issue(&db.db, &h.catalog, &request(&h, i), h.chain_now().await).await.unwrap();
        h.pay(i, &quote).await;
    }
    h.mine(CONFIRMATIONS).await;
    let proxy = RpcProxy::start(h.chain.anvil.endpoint());
    proxy.fail_share(100, 3);
    let dir = tempfile::tempdir().unwrap();
    let d = &h.chain.deployment;
    let config = write_config(dir.path(), &db.url, &proxy.url, d.chain_id, d, "");
    let config = with_chain_line(&config, &format!("fallback_rpc_urls = [\"{}\"]", h.chain.anvil.endpoint()));

    // Act
    let instance = Instance::start(&config);
    let left_out = instance.wait_for_line("an RPC node does not answer", Duration::from_secs(60));
    let activated = wait_for_count(db.db.pool(), "SELECT COUNT(*) FROM activations", 3, Duration::from_secs(60)).await;
    proxy.fail_share(0, 0);
    let rejoined = instance.wait_for("joins the rotation", Duration::from_secs(60));

    // Assert
    let left_out = left_out.expect("start-up never noticed the first node failing");
    assert!(left_out.contains("chain.rpc_url") && !left_out.contains(KEY), "{left_out}");
    assert_eq!(activated, 3);
    assert!(proxy.failed() > 0);
    assert!(rejoined, "the first node never joined the rotation again");
    let count = |sql: &'static str| {
        let pool = db.db.pool().clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(count("SELECT COUNT(*) FROM payments WHERE status = 'confirmed'").await, 3);
    assert_eq!(count("SELECT COUNT(*) FROM outbox_events WHERE event_type = 'subscription.activated'").await, 3);
}
on_both_databases!(a_fallback_node_takes_over_when_the_first_keeps_failing);

/// A fallback a few blocks behind the first node is not taken for a reorg: when passes move
/// to it, the blocks it does not have yet are not "gone", and a payment the first node
/// showed stays detected.
async fn a_fallback_that_lags_is_not_taken_for_a_reorg(kind: DbKind) {
    // Arrange: the fallback is a fork of the chain at its current head (it never sees the
    // blocks after it); then a payment one block deep on the first node
    let h = Harness::start(kind).await;
    let fork_at = h.rpc.get_block_number().await.unwrap();
    let lagging = Anvil::at(toolchain().anvil()).fork(h.chain.anvil.endpoint()).fork_block_number(fork_at).try_spawn().unwrap();
    let quote = h.quote(0, 3, "TMAI", 1).await;
    let receipt = h.pay(0, &quote).await;
    let proxy = RpcProxy::start(h.chain.anvil.endpoint());
    let nodes = nodes(&[proxy.url.clone(), lagging.endpoint()]);
    let watcher = h.watcher_on(&h.test_db.db, nodes.provider.clone()).with_nodes(nodes.clone());
    h.catch_up_with(&watcher).await;
    let before = h.payment_status(receipt.transaction_hash).await;

    // Act: the first node fails every call; the pass on it fails, the next ones read the
    // lagging fallback
    proxy.fail_share(100, 11);
    let failed = watcher.pass().await;
    let on_fallback = nodes.pinned().0;
    let reports = [watcher.pass().await.unwrap(), watcher.pass().await.unwrap()];

    // Assert
    assert_eq!(before, "detected");
    assert!(failed.is_err(), "a pass on a node failing every call succeeded");
    assert_eq!(on_fallback, 1, "passes did not move to the fallback");
    for report in &reports {
        assert_eq!(report.head, fork_at, "the pass did not read the fallback");
        assert_eq!((report.reorged_to, report.reorged), (None, 0), "{report:?}");
    }
    assert_eq!(h.payment_status(receipt.transaction_hash).await, "detected");
    assert!(h.events("payment.reorged").await.is_empty());
}
on_both_databases!(a_fallback_that_lags_is_not_taken_for_a_reorg);
