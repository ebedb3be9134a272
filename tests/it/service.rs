//! `tmai-pay watch` and `tmai-pay run` as an operator runs them: start-up refusals, two
//! instances on one PostgreSQL database where one leads, dies, and the other takes over,
//! and the whole path from payment to badge.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use sqlx::Row;

use crate::{
    db::{DbKind, fresh_db, on_both_databases},
    harness::{CONFIRMATIONS, Harness},
    helpers::{spawn_chain, text, tmai_pay},
};

/// Writes a configuration for `h` (or for a plain chain) and returns its path.
pub(crate) fn write_config(
    parent: &std::path::Path,
    database_url: &str,
    rpc_url: &str,
    chain_id: u64,
    deployment: &tmai_pay::chain::deployment::Deployment,
    extra_plan: &str,
) -> std::path::PathBuf {
    // Each configuration gets its own folder, so several can exist side by side.
    let dir = tempfile::tempdir_in(parent).unwrap().keep();
    let deployment_file = dir.join("deployment.json");
    deployment.write(&deployment_file).unwrap();
    let text = format!(
        r#"database_url = "{database_url}"
deployment_file = "{}"

[chain]
rpc_url = "{rpc_url}"
chain_id = {chain_id}
confirmations = {CONFIRMATIONS}
poll_interval_ms = 100

[[plans]]
id = 3
name = "Premium monthly"
tier = 3
period = "monthly"
prices = {{ TMAI = "400", USD = "49" }}
{extra_plan}
"#,
        deployment_file.display()
    );
    let path = dir.join("tmai-pay.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn watch_refuses_to_start_on_bad_configuration() {
    let chain = spawn_chain().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("w.db").display());
    let d = &chain.deployment;
    let cases: Vec<(String, &str)> = vec![
        (
            write_config(
                dir.path(),
                &db,
                &chain.anvil.endpoint(),
                d.chain_id,
                d,
                "[[plans]]\nid = 4\nname = \"VIP\"\ntier = 4\nperiod = \"monthly\"\nprices = { DOGE = \"1\" }",
            )
            .display()
            .to_string(),
            "plans[1].prices.DOGE: unknown token",
        ),
        (
            write_config(
                dir.path(),
                &db,
                &chain.anvil.endpoint(),
                d.chain_id,
                d,
                "[[plans]]\nid = 4\nname = \"VIP\"\ntier = 4\nperiod = \"monthly\"\nprices = { TMAI = \"0\" }",
            )
            .display()
            .to_string(),
            "plans[1].prices.TMAI: price must be greater than zero",
        ),
        (
            write_config(
                dir.path(),
                &db,
                &chain.anvil.endpoint(),
                d.chain_id,
                d,
                "[[plans]]\nid = 4\nname = \"VIP\"\ntier = 4\nperiod = \"-1\"\nprices = { TMAI = \"1\" }",
            )
            .display()
            .to_string(),
            "plans[1].period",
        ),
        (write_config(dir.path(), &db, "not a url", d.chain_id, d, "").display().to_string(), "chain.rpc_url <not a URL> is not a URL"),
    ];
    for (config, expected) in cases {
        let output = tmai_pay(&["watch", "--config", &config], &[]);
        let (_, stderr) = text(&output);
        assert!(!output.status.success(), "watch should refuse: {expected}");
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
        assert!(!stderr.contains(RPC_KEY), "the RPC key was printed: {stderr}");
    }
    // A deployment for another chain, and an RPC on another chain than configured.
    let mut other = d.clone();
    other.chain_id = 5;
    let config = write_config(dir.path(), &db, &chain.anvil.endpoint(), 5, &other, "");
    let stderr = text(&tmai_pay(&["watch", "--config", config.to_str().unwrap()], &[])).1;
    assert!(stderr.contains("reports chain id 31337, but chain.chain_id is 5"), "{stderr}");
    let config = write_config(dir.path(), &db, &chain.anvil.endpoint(), 5, d, "");
    let stderr = text(&tmai_pay(&["watch", "--config", config.to_str().unwrap()], &[])).1;
    assert!(stderr.contains("is a deployment on chain 31337, but chain.chain_id is 5"), "{stderr}");
}

/// A provider key as it appears in RPC URLs (Infura-style: 32 hex digits).
pub(crate) const RPC_KEY: &str = "0123456789abcdef0123456789abcdef";

/// A running `tmai-pay watch` whose log lines arrive on a channel; killed on drop.
pub(crate) struct Instance {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Instance {
    pub(crate) fn start(config: &std::path::Path) -> Self {
        Self::start_with("watch", config, &[])
    }

    pub(crate) fn start_with(command: &str, config: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tmai-pay"))
            .args([command, "--config", config.to_str().unwrap()])
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// Waits up to `limit` for a log line containing `needle`.
    pub(crate) fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        self.wait_for_line(needle, limit).is_some()
    }

    /// Waits up to `limit` for a log line containing `needle`; returns it.
    pub(crate) fn wait_for_line(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Instance {
    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn wait_for_count(pool: &sqlx::AnyPool, sql: &str, want: i64, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let got: i64 = sqlx::query(sql).fetch_one(pool).await.unwrap().try_get(0).unwrap();
        if got >= want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchers_on_one_postgres_elect_one_leader_and_fail_over() {
    // Arrange: one chain, one PostgreSQL database, two instances
    let h = Harness::start(DbKind::Postgres).await;
    let shared = fresh_db(DbKind::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let d = &h.chain.deployment;
    let url = shared.url.clone();
    let config = write_config(dir.path(), &url, &h.chain.anvil.endpoint(), d.chain_id, d, "");
    let first = Instance::start(&config);
    assert!(first.wait_for("became leader", Duration::from_secs(30)), "first instance never led");
    let second = Instance::start(&config);
    assert!(second.wait_for("standing by", Duration::from_secs(30)) || !second.wait_for("became leader", Duration::from_secs(2)));

    // Act 1: a payment while the first leads
    let quote = h.quotes.issue(&shared.db, &h.catalog, &request(&h, 0), h.chain_now().await).await.unwrap();
    h.pay(0, &quote).await;
    h.mine(CONFIRMATIONS).await;
    let activated = wait_for_count(shared.db.pool(), "SELECT COUNT(*) FROM activations", 1, Duration::from_secs(20)).await;

    // Act 2: the leader dies without warning; another payment arrives
    drop(first);
    let quote = h.quotes.issue(&shared.db, &h.catalog, &request(&h, 1), h.chain_now().await).await.unwrap();
    h.pay(1, &quote).await;
    h.mine(CONFIRMATIONS).await;
    assert!(second.wait_for("became leader", Duration::from_secs(15)), "the standby never took over");
    let after_failover = wait_for_count(shared.db.pool(), "SELECT COUNT(*) FROM activations", 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Assert: each payment activated once, no duplicate effects
    assert_eq!(activated, 1);
    assert_eq!(after_failover, 2);
    let count = |sql: &'static str| {
        let pool = shared.db.pool().clone();
        async move { sqlx::query(sql).fetch_one(&pool).await.unwrap().try_get::<i64, _>(0).unwrap() }
    };
    assert_eq!(count("SELECT COUNT(*) FROM payments WHERE status = 'confirmed'").await, 2);
    assert_eq!(count("SELECT COUNT(*) FROM badge_jobs").await, 2);
    assert_eq!(count("SELECT COUNT(*) FROM outbox_events WHERE event_type = 'subscription.activated'").await, 2);
    assert_eq!(count("SELECT COUNT(*) FROM outbox_events WHERE event_type = 'payment.detected'").await, 2);
}

pub(crate) fn request(h: &Harness, index: usize) -> tmai_pay::billing::quotes::QuoteRequest {
    tmai_pay::billing::quotes::QuoteRequest { plan_id: 3, token: "TMAI".into(), payer: h.wallet(index), periods: 1 }
}

pub(crate) fn key_hex(h: &Harness, index: usize) -> String {
    format!("0x{}", alloy::hex::encode(tmai_pay::chain::devnet::key(&h.chain.anvil, index).to_bytes()))
}

/// An `[http]` table with free ports for the public and operations listeners.
fn free_http() -> String {
    let (port, ops_port) = (crate::helpers::free_port(), crate::helpers::free_port());
    format!("[http]\nbind = \"127.0.0.1:{port}\"\nops_bind = \"127.0.0.1:{ops_port}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_to_start_without_a_usable_issuer() {
    let h = Harness::start(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let d = &h.chain.deployment;
    // Ports of its own: `run` binds its listeners before it checks the keys, and other tests
    // run `tmai-pay run` at the same time.
    let config = write_config(dir.path(), &db, &h.chain.anvil.endpoint(), d.chain_id, d, &free_http());
    let config = config.to_str().unwrap();
    let cases = [
        (None, "chain.issuer_key is not set"),
        (Some("0x1234".to_string()), "chain.issuer_key is not a valid private key"),
        (Some(key_hex(&h, tmai_pay::chain::devnet::QUOTE_SIGNER)), "does not hold ISSUER_ROLE"),
    ];
    for (key, expected) in cases {
        let env: Vec<(&str, &str)> = key.iter().map(|k| ("TMAI_PAY__CHAIN__ISSUER_KEY", k.as_str())).collect();
        let output = tmai_pay(&["run", "--config", config], &env);
        let stderr = text(&output).1;
        assert!(!output.status.success(), "run should refuse: {expected}");
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
        if let Some(k) = &key {
            assert!(!stderr.contains(k.trim_start_matches("0x")), "the key must never be printed");
        }
    }
    let issuer = key_hex(&h, tmai_pay::chain::devnet::ISSUER);
    let output = tmai_pay(&["run", "--config", config], &[("TMAI_PAY__CHAIN__ISSUER_KEY", &issuer), ("TMAI_PAY__MINTER__FEE_CAP_GWEI", "0")]);
    let stderr = text(&output).1;
    assert!(stderr.contains("minter.fee_cap_gwei: must be a positive number of gwei"), "{stderr}");
}

/// `tmai-pay run`: a wallet pays, the watcher activates the plan, the minter issues the
/// badge, and the chain shows the database's tier and expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_a_payment_to_a_badge() {
    // Arrange
    let h = Harness::start(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("run.db").display());
    let d = &h.chain.deployment;
    let config = write_config(dir.path(), &db_url, &h.chain.anvil.endpoint(), d.chain_id, d, &free_http());
    let issuer = key_hex(&h, tmai_pay::chain::devnet::ISSUER);
    let instance = Instance::start_with("run", &config, &[("TMAI_PAY__CHAIN__ISSUER_KEY", &issuer)]);
    assert!(instance.wait_for("watcher and minter starting", Duration::from_secs(90)));
    let db = tmai_pay::store::Db::connect(&db_url).await.unwrap();

    // Act: pay; blocks keep coming, as on a live chain
    let quote = h.quotes.issue(&db, &h.catalog, &request(&h, 2), h.chain_now().await).await.unwrap();
    h.pay(2, &quote).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut confirmed = 0;
    while confirmed == 0 && Instant::now() < deadline {
        h.mine(1).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        confirmed = sqlx::query("SELECT COUNT(*) FROM badge_jobs WHERE status = 'confirmed'").fetch_one(db.pool()).await.unwrap().try_get::<i64, _>(0).unwrap();
    }

    // Assert
    assert_eq!(confirmed, 1, "the badge job was not confirmed in time");
    let expires: i64 = sqlx::query("SELECT expires_at FROM subscriptions").fetch_one(db.pool()).await.unwrap().try_get(0).unwrap();
    let badge = tmai_pay::chain::bindings::MembershipBadge::new(d.badge, h.rpc.clone());
    let m = badge.membershipOf(h.wallet(2)).call().await.unwrap();
    assert_eq!((m.tier, m.expiresAt_ as i64), (3, expires));
    let minted = tmai_pay::store::outbox::all(db.pool()).await.unwrap().into_iter().filter(|e| e.event_type == "badge.minted").count();
    assert_eq!(minted, 1);
}

/// A database behind the chain (a new one against a contract whose orders were paid)
/// would sign quotes for order ids already paid: the service refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_behind_the_chain_is_refused_at_start() {
    // Arrange: order 1 paid through the harness's own database
    let h = Harness::start(DbKind::Sqlite).await;
    let quote = h.quote(0, 3, "TMAI", 1).await;
    h.pay(0, &quote).await;
    let dir = tempfile::tempdir().unwrap();
    let fresh = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let d = &h.chain.deployment;
    let config = write_config(dir.path(), &fresh, &h.chain.anvil.endpoint(), d.chain_id, d, "");

    // Act
    let output = tmai_pay(&["watch", "--config", config.to_str().unwrap()], &[]);

    // Assert
    let stderr = text(&output).1;
    assert!(!output.status.success());
    assert!(stderr.contains("the database is behind the checkout contract: order 1"), "{stderr}");
}

/// `tmai-pay run` publishes no RPC URL for wallets unless one is configured (never
/// `chain.rpc_url`), and serves `/metrics` and `/readyz` on the operations listener only.
async fn run_publishes_no_rpc_url_and_serves_operations_apart(kind: DbKind) {
    // Arrange
    let h = Harness::start(DbKind::Sqlite).await;
    let db = fresh_db(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let d = &h.chain.deployment;
    let (port, ops_port) = (crate::helpers::free_port(), crate::helpers::free_port());
    let http = format!("[http]\nbind = \"127.0.0.1:{port}\"\nops_bind = \"127.0.0.1:{ops_port}\"\n");
    let config = write_config(dir.path(), &db.url, &h.chain.anvil.endpoint(), d.chain_id, d, &http);
    let issuer = key_hex(&h, tmai_pay::chain::devnet::ISSUER);
    let instance = Instance::start_with("run", &config, &[("TMAI_PAY__CHAIN__ISSUER_KEY", &issuer)]);
    assert!(instance.wait_for("watcher and minter starting", Duration::from_secs(90)));
    let (api, ops) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{ops_port}"));

    // Act
    let plans: serde_json::Value = reqwest::get(format!("{api}/v1/plans")).await.unwrap().json().await.unwrap();
    let status = |url: String| async move { reqwest::get(url).await.unwrap().status().as_u16() };

    // Assert
    assert!(plans["chain"]["rpc_url"].is_null(), "chain.rpc_url was published: {plans}");
    assert_eq!(plans["chain"]["id"], d.chain_id);
    assert_eq!(status(format!("{ops}/readyz")).await, 200);
    assert_eq!(status(format!("{ops}/metrics")).await, 200);
    assert_eq!(status(format!("{api}/readyz")).await, 404);
    assert_eq!(status(format!("{api}/metrics")).await, 404);
    assert_eq!(status(format!("{api}/healthz")).await, 200);
}
on_both_databases!(run_publishes_no_rpc_url_and_serves_operations_apart);
