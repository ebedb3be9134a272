//! The chaos campaign (issue 18): the real `tmai-pay run` binary, as separate processes,
//! against anvil (through a fault proxy) and PostgreSQL, driven by checkouts paid with real
//! signed transactions from many wallets and card webhooks, while it is SIGKILLed and
//! restarted, the chain reorganises deeper than the confirmations, and the webhook receiver
//! goes down. Then it checks the chain, the database and the receiver against each other.
//!
//! `cargo test --test chaos` runs the short campaign (CI); `-- --full` the full one;
//! `--instances 3` the scale-out mode; `--seed N` replays a seed. `scripts/chaos` wraps it.
//! Exits non-zero on a violation, printing the seed and the first violating record. The
//! figures go to target/chaos/summary-<mode>.json.

mod checks;
mod procs;
mod proxy;
mod renewals;
mod traffic;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use alloy::{
    hex,
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ext::AnvilApi},
    rpc::types::{
        TransactionRequest,
        anvil::{ReorgOptions, TransactionData},
    },
    sol_types::SolCall,
};
use rand::{Rng, seq::SliceRandom};
use serde_json::{Value, json};
use sqlx::Row;
use tmai_pay::{
    chain::{
        bindings::TestToken,
        devnet::{self, AnvilOptions},
    },
    toolchain::Toolchain,
};
use tokio::sync::RwLock;

use crate::{
    procs::{Instance, Led, Receiver},
    traffic::{Progress, Traffic},
};

/// Blocks deep before a payment counts; reorgs go up to two deeper.
const CONFIRMATIONS: u64 = 2;

#[derive(Debug, Clone)]
struct Plan {
    mode: &'static str,
    seed: u64,
    checkouts: u64,
    wallets: usize,
    card_wallets: usize,
    /// Wallets that turn automatic renewal on and are charged after the traffic.
    renewal_wallets: usize,
    /// Checkouts of the clean phase before the faults: the same traffic with no fault, kill
    /// or reorg, for the activation rate the faulted phase is set beside.
    clean_checkouts: u64,
    kills: usize,
    reorgs: usize,
    receiver_down: Duration,
    instances: usize,
    concurrency: usize,
    fault_percent: u32,
    max_delay_ms: u64,
    time_limit: Duration,
}

fn plan_from_args() -> Plan {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let full = args.iter().any(|a| a == "--full");
    let seed =
        value("--seed").or_else(|| std::env::var("CHAOS_SEED").ok()).map(|s| s.parse().expect("--seed is a number")).unwrap_or_else(rand::random::<u32>) as u64;
    let instances: usize = value("--instances").map(|s| s.parse().unwrap()).unwrap_or(1);
    let mut plan = if full {
        Plan {
            mode: "full",
            seed,
            checkouts: 1_000,
            wallets: 120,
            card_wallets: 12,
            renewal_wallets: 12,
            clean_checkouts: 240,
            kills: 20,
            reorgs: 50,
            receiver_down: Duration::from_secs(120),
            instances,
            concurrency: 12,
            fault_percent: 20,
            max_delay_ms: 3_000,
            time_limit: Duration::from_secs(40 * 60),
        }
    } else {
        Plan {
            mode: "short",
            seed,
            checkouts: 100,
            wallets: 24,
            card_wallets: 4,
            renewal_wallets: 4,
            clean_checkouts: 24,
            kills: 3,
            reorgs: 6,
            receiver_down: Duration::from_secs(15),
            instances,
            concurrency: 6,
            fault_percent: 20,
            max_delay_ms: 2_000,
            time_limit: Duration::from_secs(6 * 60),
        }
    };
    if let Some(n) = value("--checkouts") {
        plan.checkouts = n.parse().unwrap();
    }
    if instances > 1 {
        plan.mode = if full { "full-scale-out" } else { "short-scale-out" };
    }
    plan
}

fn main() {
    let plan = plan_from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        let limit = plan.time_limit;
        match tokio::time::timeout(limit, campaign(plan.clone())).await {
            Ok(result) => result,
            Err(_) => Err(format!("time limit {} s reached", limit.as_secs())),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(passed) => {
            println!("chaos: campaign {} seed {} passed in {:.0} s", plan.mode, plan.seed, started.elapsed().as_secs_f64());
            // The closing line CI reads.
            println!("chaos: {passed} passed, 0 failed");
        }
        Err(e) => {
            eprintln!("chaos: campaign {} FAILED; replay with --seed {}: {e}", plan.mode, plan.seed);
            std::process::exit(1);
        }
    }
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/chaos");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn key_hex(anvil: &alloy::node_bindings::AnvilInstance, index: usize) -> String {
    hex::encode_prefixed(devnet::key(anvil, index).to_bytes())
}

/// Runs the campaign; returns how many checks passed.
async fn campaign(plan: Plan) -> Result<u32, String> {
    println!(
        "chaos: campaign {} seed {} ({} checkouts, {} wallets, {} renewing, {} kills, {} reorgs, {} instance(s), faults {} %)",
        plan.mode, plan.seed, plan.checkouts, plan.wallets, plan.renewal_wallets, plan.kills, plan.reorgs, plan.instances, plan.fault_percent
    );
    let work = tempfile::Builder::new().prefix("tmai-chaos-").tempdir().unwrap();
    let toolchain = Toolchain::locate().map_err(|e| e.to_string())?;
    let anvil = devnet::spawn_anvil(&toolchain, &AnvilOptions::default()).map_err(|e| e.to_string())?;
    let deployment = devnet::deploy_fixture_contracts(&anvil).await.map_err(|e| e.to_string())?;
    let owner = devnet::provider_for(&anvil, devnet::DEPLOYER);
    let proxy = proxy::Proxy::start(anvil.endpoint(), anvil.port(), plan.seed, 0, plan.max_delay_ms).await;

    // One PostgreSQL database for the campaign.
    let server = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&format!("{server}/postgres")).await.map_err(|e| format!("PostgreSQL: {e}"))?;
    let db_name = format!("tmai_chaos_{}_{}", plan.seed, std::process::id());
    sqlx::query(&format!("CREATE DATABASE {db_name}")).execute(&admin).await.map_err(|e| e.to_string())?;
    let db_url = format!("{server}/{db_name}");

    // Secrets: keys from anvil's accounts, the card secret made up here.
    let quote_key = key_hex(&anvil, devnet::QUOTE_SIGNER);
    let issuer_key = key_hex(&anvil, devnet::ISSUER);
    let card_secret = format!("whsec_chaos_card_{}", plan.seed);
    // Automatic renewal: the checkout's renewer (its own key, set by the owner).
    let renewer_key = devnet::enable_renewer(&anvil, &deployment).await.map_err(|e| e.to_string())?;
    let renewer = renewer_key.address();
    let renewer_key = hex::encode_prefixed(renewer_key.to_bytes());
    let token_key = tmai_pay::auth::tokens::generate_pem();
    let deployment_file = work.path().join("deployment.json");
    deployment.write(&deployment_file).unwrap();
    let mut plans_toml = String::new();
    for (id, cents) in traffic::PLANS {
        let (tier, period, tmai, usd) = match id {
            1 => (1, "monthly", 80, 9),
            2 => (2, "monthly", 160, 19),
            3 => (3, "monthly", 400, 49),
            4 => (4, "monthly", 800, 99),
            _ => (3, "yearly", 4000, 490),
        };
        plans_toml.push_str(&format!(
            "[[plans]]\nid = {id}\nname = \"plan {id}\"\ntier = {tier}\nperiod = \"{period}\"\nprices = {{ TMAI = \"{tmai}\", USD = \"{usd}\" }}\ncard_price_cents = {cents}\ncard_price_id = \"price_{id}\"\n\n"
        ));
    }
    let config_for = |i: usize, port: u16, ops: u16| {
        let text = format!(
            r#"database_url = "{db_url}"
deployment_file = "{}"

[chain]
rpc_url = "{}"
ws_url = "{}"
chain_id = {}
confirmations = {CONFIRMATIONS}
poll_interval_ms = 200
follow_chain_time = true

[http]
bind = "127.0.0.1:{port}"
ops_bind = "127.0.0.1:{ops}"
rate_limit_per_second = 0
web_dir = "{}/web/dist"

[minter]
stuck_after_secs = 10
retry_base_secs = 1
retry_max_secs = 5

[webhooks]
allow_private_targets = true
timeout_secs = 5
schedule_secs = [0, 1, 2, 4, 8, 15, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30]
poll_interval_ms = 100

[card]
currency = "usd"

[auth]
allowed_origins = ["{origin}"]
statement = "{statement}"
keys = [{{ kid = "chaos", private_key_env = "TMAI_CHAOS_TOKEN_KEY" }}]

# The renewal phase moves time ~27 days ahead: unpaid checkouts stay (pruning them has its
# own tests), so the receiver's events keep their outbox rows.
[retention]
unpaid_checkouts_days = 90

[renewals]
charge_days_before = {charge_days}
interval_secs = 1
rate_retry_secs = 1
resend_after_secs = 5

{plans_toml}"#,
            deployment_file.display(),
            proxy.http_url,
            proxy.ws_url,
            deployment.chain_id,
            env!("CARGO_MANIFEST_DIR"),
            origin = renewals::ORIGIN,
            statement = renewals::STATEMENT,
            charge_days = renewals::CHARGE_DAYS_BEFORE,
        );
        let path = work.path().join(format!("tmai-pay-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let env = vec![
        ("TMAI_PAY__CHAIN__QUOTE_SIGNER_KEY".to_string(), quote_key.clone()),
        ("TMAI_PAY__CHAIN__ISSUER_KEY".to_string(), issuer_key.clone()),
        ("TMAI_PAY__CARD__WEBHOOK_SECRET".to_string(), card_secret.clone()),
        ("TMAI_PAY__CHAIN__RENEWER_KEY".to_string(), renewer_key.clone()),
        ("TMAI_CHAOS_TOKEN_KEY".to_string(), token_key),
    ];
    let led: Arc<Mutex<Vec<Led>>> = Arc::default();
    let logs_dir = out_dir().join(format!("logs-{}", plan.mode));
    let _ = std::fs::remove_dir_all(&logs_dir);
    std::fs::create_dir_all(&logs_dir).unwrap();
    let mut instances: Vec<Instance> = (0..plan.instances)
        .map(|i| {
            let (port, ops) = (free_port(), free_port());
            let config = config_for(i, port, ops);
            Instance::new(i, format!("http://127.0.0.1:{port}"), config, env.clone(), logs_dir.join(format!("instance-{i}.log")), led.clone())
        })
        .collect();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();

    // The merchant API key, made with the binary as an operator makes it.
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_tmai-pay"))
        .args(["api-key", "create", "--name", "chaos", "--config", work.path().join("tmai-pay-0.toml").to_str().unwrap()])
        .output()
        .unwrap();
    let api_key = String::from_utf8_lossy(&created.stdout).lines().last().unwrap_or_default().trim().to_string();
    if !created.status.success() || api_key.is_empty() {
        return Err(format!("api-key create failed: {}", String::from_utf8_lossy(&created.stderr)));
    }

    for instance in &mut instances {
        instance.start();
        instance.wait_healthy(&client, Duration::from_secs(60)).await.ok_or("an instance did not start")?;
    }

    // The receiver and two endpoints.
    let receiver_log = logs_dir.join("receiver.jsonl");
    let mut receiver = Receiver::new(free_port(), &receiver_log);
    receiver.start().await;
    let mut endpoints = Vec::new();
    let mut webhook_secrets = Vec::new();
    for name in ["ep1", "ep2"] {
        let r = client
            .post(format!("{}/v1/webhook-endpoints", instances[0].base))
            .bearer_auth(&api_key)
            .json(&json!({ "url": receiver.url(&format!("/{name}")), "description": "chaos" }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        let secret = body["secret"].as_str().ok_or(format!("endpoint not created: {body}"))?.to_string();
        client.post(receiver.url("/_control")).json(&json!({ "name": name, "secret": secret })).send().await.map_err(|e| e.to_string())?;
        endpoints.push((body["endpoint"]["id"].as_str().unwrap().to_string(), name.to_string()));
        webhook_secrets.push(secret);
    }

    // Wallets.
    let wallets: Vec<traffic::Wallet> = (0..plan.wallets).map(|i| traffic::wallet(plan.seed, i, &anvil.endpoint())).collect();
    traffic::fund(&owner, &deployment, &wallets).await;
    let card_wallets: Vec<alloy::primitives::Address> =
        (0..plan.card_wallets).map(|i| traffic::wallet(plan.seed, 10_000 + i, &anvil.endpoint()).key.address()).collect();
    println!("chaos: {} wallets funded; service, receiver and proxy up; faults on", wallets.len());

    let pool = sqlx::AnyPool::connect(&db_url).await.map_err(|e| e.to_string())?;

    // Blocks keep coming, as on a live chain, from this miner only (automine off: every block
    // is made under the lock, so a reorg sees the head it removes, and the service's badge
    // transactions wait in the pool meanwhile); reorgs take the lock for writing.
    owner.anvil_set_auto_mine(false).await.map_err(|e| e.to_string())?;
    let chain_lock = Arc::new(RwLock::new(()));
    let mining = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let miner = {
        let (rpc, lock, mining) = (owner.clone(), chain_lock.clone(), mining.clone());
        tokio::spawn(async move {
            while mining.load(Ordering::Relaxed) {
                {
                    let _guard = lock.read().await;
                    let _ = rpc.anvil_mine(Some(1), None).await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let progress = Arc::new(Progress::default());
    let shared = Arc::new(Traffic {
        seed: plan.seed,
        deployment: deployment.clone(),
        instances: instances.iter().map(|i| i.base.clone()).collect(),
        client: client.clone(),
        card_secret: card_secret.clone(),
        progress: progress.clone(),
        chain_lock: chain_lock.clone(),
    });

    // Members who turn automatic renewal on (before the faults: they are charged after the
    // traffic, under them).
    let renewing: Arc<Vec<traffic::Wallet>> = Arc::new((0..plan.renewal_wallets).map(|i| traffic::wallet(plan.seed, 20_000 + i, &anvil.endpoint())).collect());
    traffic::fund(&owner, &deployment, &renewing).await;
    let signing_up: Vec<_> = (0..renewing.len())
        .map(|i| {
            let (shared, renewing) = (shared.clone(), renewing.clone());
            tokio::spawn(async move { renewals::sign_up(&shared, i as u64, &renewing[i]).await })
        })
        .collect();
    let mut mandates = Vec::new();
    for task in signing_up {
        mandates.push(task.await.map_err(|e| e.to_string())??);
    }
    println!("chaos: {} members turned automatic renewal on", mandates.len());

    let payer_addresses: std::collections::HashSet<alloy::primitives::Address> = wallets.iter().map(|w| w.key.address()).collect();
    let wallets = Arc::new(wallets);
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).fetch_one(&pool).await.map(|r| r.try_get::<i64, _>(0).unwrap()).unwrap_or(-1) }
    };
    // The traffic's workers for checkouts `first..end` (`first` a multiple of the
    // concurrency: wallet n mod wallets is driven by task n mod concurrency only).
    let traffic = |first: u64, end: u64| -> Vec<tokio::task::JoinHandle<()>> {
        (0..plan.concurrency)
            .map(|task| {
                let (shared, wallets, card_wallets, plan) = (shared.clone(), wallets.clone(), card_wallets.clone(), plan.clone());
                tokio::spawn(async move {
                    let mut rng = traffic::rng_for(plan.seed, first + task as u64);
                    let mut n = first + task as u64;
                    while n < end {
                        // One in ten is a card subscription; the rest pay on chain.
                        if n % 10 == 9 && !card_wallets.is_empty() {
                            shared.card(n, card_wallets[(n as usize / 10) % card_wallets.len()], &mut rng).await;
                        } else {
                            let w = &wallets[(n as usize) % wallets.len()];
                            shared.checkout(n, w, &mut rng).await;
                        }
                        shared.progress.done.fetch_add(1, Ordering::Relaxed);
                        n += plan.concurrency as u64;
                    }
                })
            })
            .collect()
    };

    // The clean phase: the same traffic, after the faulted phase's checkouts in numbering,
    // with no fault, kill or reorg.
    let clean_first = plan.checkouts.div_ceil(plan.concurrency as u64) * plan.concurrency as u64;
    let (clean_started, clean_before) = (Instant::now(), count("SELECT COUNT(*) FROM activations").await);
    for w in traffic(clean_first, clean_first + plan.clean_checkouts) {
        w.await.map_err(|e| e.to_string())?;
    }
    let clean_secs = clean_started.elapsed().as_secs_f64();
    let clean_activations = count("SELECT COUNT(*) FROM activations").await - clean_before;
    let clean_done = progress.done.load(Ordering::Relaxed);
    println!("chaos: clean phase: {} checkouts in {clean_secs:.1} s, {clean_activations} activations", plan.clean_checkouts);

    // The traffic, under faults.
    proxy.set_share(plan.fault_percent);
    let faulted_before = count("SELECT COUNT(*) FROM activations").await;
    let faults_started = Instant::now();
    let workers = traffic(0, plan.checkouts);
    // Wallet i is paid from tasks i mod concurrency only when wallets is a multiple of it.
    assert_eq!(plan.wallets % plan.concurrency, 0, "wallets must be a multiple of the concurrency");

    // The chaos, at progress points from the seed.
    let mut rng = traffic::rng_for(plan.seed, 1_000_000);
    let mut schedule: Vec<(u64, &'static str)> = Vec::new();
    for _ in 0..plan.kills {
        schedule.push((rng.random_range(plan.checkouts / 20..plan.checkouts * 9 / 10), "kill"));
    }
    for _ in 0..plan.reorgs {
        schedule.push((rng.random_range(plan.checkouts / 20..plan.checkouts * 19 / 20), "reorg"));
    }
    schedule.push((rng.random_range(plan.checkouts / 10..plan.checkouts / 2), "receiver-down"));
    schedule.sort();
    let mut kill_recoveries = Vec::new();
    let mut takeovers = Vec::new();
    let mut reorg_log = Vec::new();
    let mut receiver_back_at: Option<Instant> = None;
    let issuer = anvil.addresses()[devnet::ISSUER];
    let tmai = deployment.token("TMAI").unwrap().address;
    let mut next = 0;
    loop {
        let done = progress.done.load(Ordering::Relaxed) - clean_done;
        if let Some(at) = receiver_back_at
            && Instant::now() >= at
        {
            receiver.start().await;
            receiver_back_at = None;
            println!("chaos: receiver back up");
        }
        if next < schedule.len() && done >= schedule[next].0 {
            let what = schedule[next].1;
            next += 1;
            match what {
                "kill" => {
                    let victim = pick_victim(&mut instances, &led, &mut rng);
                    let killed_at = Instant::now();
                    let before = led.lock().unwrap().len();
                    let held = locks_held_by(&led, victim);
                    instances[victim].kill();
                    if plan.instances > 1 {
                        // Other instances take every leader-held worker of this one over while it is down.
                        let deadline = Instant::now() + Duration::from_secs(30);
                        let all_taken = || {
                            let led = led.lock().unwrap();
                            held.iter().all(|lock| led[before..].iter().any(|l| l.instance != victim && l.lock == *lock))
                        };
                        while Instant::now() < deadline && !all_taken() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if !all_taken() {
                            return Err(format!("instance {victim} held locks {held:?}; not all were taken over within 30 s"));
                        }
                        let taken: Vec<Led> = led.lock().unwrap()[before..].iter().filter(|l| l.instance != victim).cloned().collect();
                        if let Some(max) = taken.iter().map(|l| l.at.duration_since(killed_at)).max() {
                            takeovers.push(max.as_millis() as u64);
                            let locks: Vec<String> = taken.iter().map(|l| format!("lock {} by instance {}", l.lock, l.instance)).collect();
                            println!("chaos: taken over in {} ms: {}", max.as_millis(), locks.join(", "));
                        }
                        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
                    }
                    instances[victim].start();
                    let recovered = instances[victim].wait_healthy(&client, Duration::from_secs(60)).await.ok_or("a restarted instance did not come up")?;
                    kill_recoveries.push(killed_at.elapsed().as_millis() as u64);
                    println!("chaos: SIGKILL instance {victim} at {done} checkouts; serving again after {} ms", recovered.as_millis());
                }
                "reorg" => {
                    let mut depth = rng.random_range(1..=CONFIRMATIONS + 2);
                    let remine = rng.random_bool(0.5);
                    let _guard = chain_lock.write().await;
                    let head = owner.get_block_number().await.map_err(|e| e.to_string())?;
                    let mut watcher_at = None;
                    if !remine && depth > CONFIRMATIONS {
                        // Let the watcher read up to the head and the minter confirm what is
                        // deep enough (no block comes while the lock is held), so the deepest
                        // dropped payments were confirmed and activated and the dropped badge
                        // batches confirmed: the take-back and re-send paths, not only the
                        // unconfirmed ones.
                        let deadline = Instant::now() + Duration::from_secs(15);
                        while Instant::now() < deadline {
                            let read: Option<i64> = sqlx::query_scalar("SELECT next_block FROM chain_cursor").fetch_optional(&pool).await.ok().flatten();
                            watcher_at = read;
                            let unconfirmed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM badge_batches WHERE status = 'mined' AND mined_block < $1")
                                .bind(head as i64)
                                .fetch_one(&pool)
                                .await
                                .unwrap_or(1);
                            if read.is_some_and(|n| n > head as i64) && unconfirmed == 0 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        // Reach back to the newest confirmed badge batch when it lies within
                        // the deepest reorg the campaign makes, so its transaction is dropped.
                        let newest: Option<i64> =
                            sqlx::query_scalar("SELECT MAX(mined_block) FROM badge_batches WHERE status = 'confirmed'").fetch_one(&pool).await.ok().flatten();
                        if let Some(block) = newest.map(|b| b as u64)
                            && block <= head
                            && head + 1 - block <= CONFIRMATIONS + 2
                        {
                            depth = depth.max(head + 1 - block);
                        }
                    }
                    let confirmed_batches: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM badge_batches WHERE status = 'confirmed' AND mined_block > $1")
                        .bind((head - depth) as i64)
                        .fetch_one(&pool)
                        .await
                        .unwrap_or(-1);
                    // "Dropped" means the wallets' payments (approvals, payments, permits) and the
                    // issuer's badge transactions, confirmed ones included: the minter must send
                    // those again at their nonces by itself.
                    let senders = reorg(&owner, depth, filler(&anvil, tmai), |s| !remine && (payer_addresses.contains(&s) || s == issuer)).await?;
                    let payment_txs = senders.iter().filter(|s| payer_addresses.contains(*s)).count();
                    let issuer_txs = senders.iter().filter(|s| **s == issuer).count();
                    reorg_log.push(json!({ "at_checkouts": done, "depth": depth, "remined": remine, "payer_txs": payment_txs, "issuer_txs": issuer_txs, "confirmed_badge_batches": confirmed_batches }));
                    println!(
                        "chaos: reorg depth {depth} at {done} checkouts (head {head}, watcher at {watcher_at:?}), {payment_txs} payer and {issuer_txs} issuer tx(s) ({confirmed_batches} confirmed badge batch(es)) {}",
                        if remine { "re-mined" } else { "dropped" }
                    );
                }
                _ => {
                    receiver.kill();
                    receiver_back_at = Some(Instant::now() + plan.receiver_down);
                    println!("chaos: receiver down for {} s", plan.receiver_down.as_secs());
                }
            }
            continue;
        }
        if workers.iter().all(|w| w.is_finished()) && next >= schedule.len() && receiver_back_at.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    let fault_secs = faults_started.elapsed().as_secs_f64();
    let activations_under_faults = count("SELECT COUNT(*) FROM activations").await - faulted_before;
    println!(
        "chaos: traffic done in {fault_secs:.0} s: {} checkouts, {} paid ({} by permit), {} failed or lost, {} card events; {activations_under_faults} activations",
        progress.done.load(Ordering::Relaxed),
        progress.paid.load(Ordering::Relaxed),
        progress.permit.load(Ordering::Relaxed),
        progress.failed.load(Ordering::Relaxed),
        progress.card_events.load(Ordering::Relaxed)
    );

    // Renewals, faults still on: the chain's time moves into the charge window (the service's
    // clock follows), the service is killed while the renewer sends, and once every charge is
    // confirmed a reorg below the oldest drops them.
    let renewal = renewals::phase(
        &owner,
        &anvil,
        &deployment,
        &pool,
        &chain_lock,
        &mut instances,
        &led,
        &client,
        &mandates,
        &receiver.url("/_clock"),
        [renewer, issuer],
        &mut rng,
    )
    .await?;

    // Settle: faults off, every instance up, blocks still coming, until nothing is pending.
    proxy.set_share(0);
    for instance in &mut instances {
        if !instance.running() {
            instance.start();
        }
    }
    let settle_started = Instant::now();
    let mut settled = false;
    while settle_started.elapsed() < Duration::from_secs(240) {
        let pending = count("SELECT COUNT(*) FROM payments WHERE status = 'detected'").await
            + count("SELECT COUNT(*) FROM badge_jobs WHERE status NOT IN ('confirmed', 'rejected', 'superseded')").await
            + count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").await
            + count("SELECT COUNT(*) FROM outbox_events WHERE fanned_out = 0").await
            + renewals::pending(&owner, deployment.checkout, &pool, &mandates).await;
        if pending == 0 && settle_started.elapsed() > Duration::from_secs(5) {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("chaos: settled={settled} after {:.0} s", settle_started.elapsed().as_secs_f64());
    mining.store(false, Ordering::Relaxed);
    let _ = miner.await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Checks.
    println!("chaos: checks (seed {})", plan.seed);
    let mut report = checks::Report::default();
    checks::chain_and_db(&mut report, &owner, &deployment, &pool).await;
    checks::issuer_nonces(&mut report, &owner, issuer, &pool).await;
    let state: Value = client.get(receiver.url("/_state")).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    checks::events(&mut report, &pool, &state, &endpoints).await;
    checks::duplicates(&mut report, &pool).await;
    renewals::check(&mut report, &owner, deployment.checkout, &pool, &mandates).await;
    for instance in &mut instances {
        instance.kill();
    }
    receiver.kill();
    let mut secrets = vec![
        ("quote signer key", quote_key.trim_start_matches("0x").to_string()),
        ("issuer key", issuer_key.trim_start_matches("0x").to_string()),
        ("API key", api_key.clone()),
        ("card webhook secret", card_secret.clone()),
        ("renewer key", renewer_key.trim_start_matches("0x").to_string()),
    ];
    for s in &webhook_secrets {
        secrets.push(("webhook endpoint secret", s.trim_start_matches("whsec_").to_string()));
    }
    let log_files: Vec<PathBuf> = (0..plan.instances).map(|i| logs_dir.join(format!("instance-{i}.log"))).collect();
    checks::secrets(&mut report, &log_files, &secrets);
    if !settled {
        report.failed += 1;
        report.first_violation.get_or_insert("the service did not settle within 240 s (pending payments, badge jobs or deliveries)".into());
        println!("  FAIL  settled within 240 s");
    }

    // The figures, for the benchmark report.
    let mut sorted = kill_recoveries.clone();
    sorted.sort();
    let summary = json!({
        "mode": plan.mode,
        "seed": plan.seed,
        "instances": plan.instances,
        "checkouts": progress.done.load(Ordering::Relaxed),
        "paid": progress.paid.load(Ordering::Relaxed),
        "paid_by_permit": progress.permit.load(Ordering::Relaxed),
        "failed_or_lost": progress.failed.load(Ordering::Relaxed),
        "card_events": progress.card_events.load(Ordering::Relaxed),
        "fault_percent": plan.fault_percent,
        "fault_phase_secs": fault_secs,
        "activations_under_faults": activations_under_faults,
        "activations_per_sec_under_faults": activations_under_faults as f64 / fault_secs,
        "clean_phase_secs": clean_secs,
        "clean_checkouts": plan.clean_checkouts,
        "activations_clean": clean_activations,
        "activations_per_sec_clean": clean_activations as f64 / clean_secs,
        "kills": kill_recoveries.len(),
        "kill_recovery_ms": kill_recoveries,
        "kill_recovery_ms_max": sorted.last(),
        "kill_recovery_ms_median": sorted.get(sorted.len() / 2),
        "takeover_ms": takeovers,
        "takeover_ms_max": takeovers.iter().max(),
        "reorgs": reorg_log,
        "renewals": renewal,
        "starts_refused_on_rpc_faults": instances.iter().map(|i| i.failed_starts).sum::<u32>(),
        "proxy": proxy.counts(),
        "settle_secs": settle_started.elapsed().as_secs_f64(),
        "checks": report.counts,
        "passed": report.passed,
        "failed": report.failed,
        "first_violation": report.first_violation,
    });
    let path = out_dir().join(format!("summary-{}.json", plan.mode));
    std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    println!("chaos: figures in {}", path.display());
    println!("chaos: checks: {} passed, {} failed", report.passed, report.failed);
    drop(anvil);
    if report.failed == 0 {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")).execute(&admin).await;
        Ok(report.passed)
    } else {
        Err(format!("first violation: {} (database {db_name} and logs in {} kept)", report.first_violation.unwrap_or_default(), logs_dir.display()))
    }
}

/// Replaces the newest `depth` blocks with a new branch whose first block holds `filler` (so
/// it always differs). A real node puts an orphaned block's transactions back in its pool;
/// anvil drops those it is not given again: the transactions whose sender `drop` picks are
/// left out, the rest are mined again. Returns the senders of the removed blocks'
/// transactions.
async fn reorg(owner: &DynProvider, depth: u64, filler: TransactionRequest, drop: impl Fn(Address) -> bool) -> Result<Vec<Address>, String> {
    let head = owner.get_block_number().await.map_err(|e| e.to_string())?;
    let mut pairs = vec![(TransactionData::JSON(filler), 0)];
    let mut senders = Vec::new();
    for (i, number) in (head + 1 - depth..=head).enumerate() {
        let block = owner.get_block_by_number(number.into()).await.map_err(|e| e.to_string())?.ok_or("no block")?;
        for tx in block.transactions.hashes() {
            let Some(sender) = owner.get_transaction_by_hash(tx).await.map_err(|e| e.to_string())?.map(|t| t.inner.signer()) else { continue };
            senders.push(sender);
            if !drop(sender)
                && let Some(raw) = owner.get_raw_transaction_by_hash(tx).await.map_err(|e| e.to_string())?
            {
                pairs.push((TransactionData::Raw(raw), i as u64));
            }
        }
    }
    owner.anvil_reorg(ReorgOptions { depth, tx_block_pairs: pairs }).await.map_err(|e| format!("anvil_reorg: {e}"))?;
    Ok(senders)
}

/// An unrelated transfer (account 9 to 8, one unit of `token`): what makes a new branch differ.
fn filler(anvil: &alloy::node_bindings::AnvilInstance, token: Address) -> TransactionRequest {
    let call = TestToken::transferCall { to: anvil.addresses()[8], value: U256::from(1u64) };
    TransactionRequest::default().with_from(anvil.addresses()[9]).with_to(token).with_input(call.abi_encode()).with_gas_limit(100_000)
}

/// The instance to kill: with several, one that leads (it holds the workers), else any.
fn pick_victim(instances: &mut [Instance], led: &Arc<Mutex<Vec<Led>>>, rng: &mut impl Rng) -> usize {
    if instances.len() == 1 {
        return 0;
    }
    // The last instance to gain a lock and still running leads it.
    let last: Vec<usize> = led.lock().unwrap().iter().rev().map(|l| l.instance).collect();
    for i in last {
        if instances[i].running() {
            return i;
        }
    }
    let mut order: Vec<usize> = (0..instances.len()).collect();
    order.shuffle(rng);
    order[0]
}

/// Locks whose latest leader is `instance`.
fn locks_held_by(led: &Arc<Mutex<Vec<Led>>>, instance: usize) -> Vec<i64> {
    let mut latest = std::collections::HashMap::new();
    for l in led.lock().unwrap().iter() {
        latest.insert(l.lock, l.instance);
    }
    latest.into_iter().filter(|(_, i)| *i == instance).map(|(lock, _)| lock).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
