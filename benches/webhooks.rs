//! Webhook delivery benchmark.
//!
//! 10,000 events fanned out to 3 local endpoints (an axum receiver in this process that
//! answers 200), on SQLite and on PostgreSQL:
//! - **burst**: the events are in the outbox before the worker starts; deliveries/s until
//!   all 30,000 are acknowledged;
//! - **steady**: the events are written at a fixed rate while the worker runs; p50 and p99
//!   of the time from the event's commit to the endpoint's acknowledgement.
//!
//! Baseline, measured in the same run: the same 30,000 bodies POSTed by an identically
//! configured HTTP client straight to the receiver, one endpoint per task as the worker
//! does (in order per endpoint), with no database and no signing.
//!
//! Run: `cargo bench --bench webhooks` (`EVENTS=2000` for a quicker run, `RATE=…` events/s
//! for the steady phase).

#[path = "support/profile.rs"]
#[allow(dead_code, unreachable_pub)]
mod profile;

#[path = "support/record.rs"]
#[allow(dead_code, unreachable_pub)]
mod record;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use axum::{Router, extract::State, http::HeaderMap, routing::post};
use tmai_pay::{
    clock::Clock,
    config::WebhookSettings,
    notify::{delivery::Deliverer, endpoints},
    store::{
        Db,
        outbox::{self, NewEvent},
    },
};
use tokio_util::sync::CancellationToken;

const ENDPOINTS: [&str; 3] = ["a", "b", "c"];

/// What the receiver saw: (receive time ms, written time ms).
type Seen = Arc<Mutex<Vec<(i64, i64)>>>;

fn now_ms() -> i64 {
    Clock::system().now_ms()
}

async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: String) -> &'static str {
    let at = now_ms();
    // The signature headers are there; the body says when the event was written.
    debug_assert!(headers.contains_key("webhook-signature"));
    let written =
        body.split("\"block_number\":").nth(1).and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()).and_then(|n| n.parse().ok()).unwrap_or(at);
    seen.lock().unwrap().push((at, written));
    "ok"
}

async fn start_receiver() -> Result<(String, Seen)> {
    let seen: Seen = Arc::default();
    let mut app = Router::new();
    for name in ENDPOINTS {
        app = app.route(&format!("/{name}"), post(receive));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = app.with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((base, seen))
}

async fn postgres_db(tag: &str) -> Result<Db> {
    sqlx::any::install_default_drivers();
    let server = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("tmai_bench_webhooks_{tag}_{}", std::process::id());
    let admin = sqlx::AnyPool::connect(&format!("{server}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
    admin.close().await;
    Ok(Db::connect(&format!("{server}/{name}")).await?)
}

async fn fresh(kind: &str, tag: &str, dir: &std::path::Path) -> Result<Db> {
    match kind {
        "SQLite" => Ok(Db::connect(&format!("sqlite://{}", dir.join(format!("{tag}.db")).display())).await?),
        _ => postgres_db(tag).await,
    }
}

fn settings() -> WebhookSettings {
    WebhookSettings { allow_private_targets: true, ..Default::default() }
}

fn events(from: usize, n: usize) -> Vec<NewEvent> {
    let written = now_ms();
    (from..from + n)
        .map(|i| {
            // The body carries its write time (ms) as `block_number`, for the latency.
            NewEvent::new(
                format!("evt_bench_{i:08}"),
                tmai_pay::events::PaymentConfirmed {
                    block_number: written as u64,
                    checkout_id: None,
                    confirmations: i as u64,
                    order_id: tmai_pay::ids::OrderId::issued(i as i64),
                    payer: alloy::primitives::Address::repeat_byte(0xaa),
                    payment: format!("31337:bench:{i}"),
                    rate_usd: None,
                    receipt_url: None,
                    tx_hash: alloy::primitives::B256::ZERO,
                    usd_value: None,
                },
            )
        })
        .collect()
}

async fn write(db: &Db, batch: &[NewEvent]) -> Result<()> {
    let mut tx = db.begin_write().await?;
    outbox::write_all(&mut tx, batch, tmai_pay::store::unix_now()).await?;
    tx.commit().await?;
    Ok(())
}

async fn register(db: &Db, base: &str) -> Result<()> {
    for name in ENDPOINTS {
        endpoints::create(db, &format!("{base}/{name}"), "bench", None, Clock::system().now() as i64).await?;
    }
    Ok(())
}

async fn wait_for(seen: &Seen, count: usize) {
    while seen.lock().unwrap().len() < count {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Raw: the same bodies straight to the receiver, one task per endpoint, in order.
async fn raw(base: &str, seen: &Seen, n: usize) -> Result<Duration> {
    let s = settings();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(s.timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(4)
        .build()?;
    let bodies: Vec<String> = events(0, n).into_iter().map(|e| e.body).collect();
    let bodies = Arc::new(bodies);
    seen.lock().unwrap().clear();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for name in ENDPOINTS {
        let (client, bodies, url) = (client.clone(), bodies.clone(), format!("{base}/{name}"));
        tasks.push(tokio::spawn(async move {
            for body in bodies.iter() {
                let response = client.post(&url).header("content-type", "application/json").body(body.clone()).send().await.unwrap();
                assert!(response.status().is_success());
                let _ = response.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(started.elapsed())
}

async fn burst(kind: &str, base: &str, seen: &Seen, n: usize, dir: &std::path::Path) -> Result<Duration> {
    let db = fresh(kind, "burst", dir).await?;
    register(&db, base).await?;
    for chunk in events(0, n).chunks(1_000) {
        write(&db, chunk).await?;
    }
    seen.lock().unwrap().clear();
    let deliverer = Deliverer::new(db.clone(), settings(), Clock::system())?;
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move { deliverer.run(cancel).await }
    });
    wait_for(seen, n * ENDPOINTS.len()).await;
    let took = started.elapsed();
    cancel.cancel();
    task.await?;
    db.close().await;
    Ok(took)
}

async fn steady(kind: &str, base: &str, seen: &Seen, n: usize, rate: usize, dir: &std::path::Path) -> Result<(Duration, Vec<i64>)> {
    let db = fresh(kind, "steady", dir).await?;
    register(&db, base).await?;
    seen.lock().unwrap().clear();
    let deliverer = Deliverer::new(db.clone(), settings(), Clock::system())?;
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move { deliverer.run(cancel).await }
    });
    // Batches every 10 ms.
    let per_tick = (rate / 100).max(1);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut i = 0;
    while i < n {
        ticker.tick().await;
        let batch = events(i, per_tick.min(n - i));
        write(&db, &batch).await?;
        i += batch.len();
    }
    wait_for(seen, n * ENDPOINTS.len()).await;
    let took = started.elapsed();
    cancel.cancel();
    task.await?;
    db.close().await;
    let mut latencies: Vec<i64> = seen.lock().unwrap().iter().map(|(at, written)| at - written).collect();
    latencies.sort_unstable();
    Ok((took, latencies))
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::var("EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let rate: usize = std::env::var("RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let deliveries = (n * ENDPOINTS.len()) as f64;
    let dir = tempfile::tempdir()?;
    let (base, seen) = start_receiver().await?;
    println!(
        "webhook delivery: {n} events × {} endpoints, worker defaults (batch {}, poll {} ms)",
        ENDPOINTS.len(),
        settings().batch_size,
        settings().poll_interval_ms
    );
    let raw_time = raw(&base, &seen, n).await?;
    let raw_rate = deliveries / raw_time.as_secs_f64();
    println!("{:<44} {:>14} {:>9}", "", "deliveries/s", "ratio");
    println!("{:<44} {:>14.0} {:>8.3}×", "raw POSTs, no database, no signing", raw_rate, 1.0);
    let mut rec = record::Record::new("webhooks");
    rec.param("events", n);
    rec.param("endpoints", ENDPOINTS.len());
    rec.param("steady_rate", rate);
    rec.add(record::figure("burst.raw", "raw POSTs, no database, no signing (baseline)", "deliveries/s", raw_rate).group("burst"));
    let mut steady_rows = Vec::new();
    for kind in ["SQLite", "PostgreSQL"] {
        let tag = profile::database(kind);
        let took = {
            let _profiled = profile::Section::start(&format!("fanout-{tag}"));
            burst(kind, &base, &seen, n, dir.path()).await?
        };
        let r = deliveries / took.as_secs_f64();
        println!("{:<44} {:>14.0} {:>8.3}×", format!("worker into {kind}, burst of {n}"), r, r / raw_rate);
        rec.add(
            record::figure(&format!("burst.{}", kind.to_lowercase()), &format!("fan-out from {kind}, burst of {n}"), "deliveries/s", r)
                .baseline("burst.raw")
                .target("≥ 0.5× raw")
                .group("burst"),
        );
        let _profiled = profile::Section::start(&format!("steady-{tag}"));
        steady_rows.push((kind, steady(kind, &base, &seen, n, rate, dir.path()).await?));
    }
    println!();
    println!("steady: {rate} events/s written while the worker runs; latency from commit to acknowledgement");
    println!("{:<44} {:>10} {:>10} {:>10} {:>14}", "", "p50 ms", "p99 ms", "max ms", "deliveries/s");
    for (kind, (took, lat)) in steady_rows {
        println!(
            "{:<44} {:>10} {:>10} {:>10} {:>14.0}",
            format!("worker into {kind}"),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(0),
            deliveries / took.as_secs_f64()
        );
        let key = kind.to_lowercase();
        rec.add(
            record::figure(&format!("steady.{key}.p50"), &format!("{kind}: commit → acknowledged, p50"), "ms", pct(&lat, 0.5) as f64).lower().group("steady"),
        );
        rec.add(
            record::figure(&format!("steady.{key}.p99"), &format!("{kind}: commit → acknowledged, p99"), "ms", pct(&lat, 0.99) as f64)
                .lower()
                .target("≤ 20 ms")
                .group("steady"),
        );
        let ms: Vec<f64> = lat.iter().map(|&v| v as f64).collect();
        rec.samples(&format!("steady.{key}"), &format!("commit → acknowledged at {rate} events/s ({kind})"), "ms", &ms);
    }
    rec.save()?;
    Ok(())
}
