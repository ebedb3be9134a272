//! How cost grows with the business: the reminder and expiry pass, `GET
//! /v1/subscriptions/{wallet}` and `POST /v1/checkouts` with 10,000, 100,000 and 1,000,000
//! members already in the database, on SQLite and on PostgreSQL.
//!
//! **What is seeded, and how.** Each member is a wallet that bought one plan (monthly or
//! yearly, alternating by group) at some moment of the year before the bench's present,
//! spread evenly over it, through the service's own paths, in the order time passed:
//! - a checkout: `QuoteIssuer::issue` (an order id from `id_blocks`, a signed quote, the
//!   order and its `checkout.created` event through the order writer's batches);
//! - its payment: `Watcher::record_deep`, the pass's own writes for a log already deep
//!   enough (the payment, `payment.detected`/`payment.confirmed`, the order marked paid, the
//!   activation, the subscription, the badge job, the receipt, `subscription.activated`);
//! - the reminder pass (`Reminders::tick`) as the year goes by, daily: `subscription.expiring`
//!   7 and 1 days before each end, `subscription.expired` after it (a monthly plan bought
//!   more than a month ago has ended; its member stays in the tables);
//! - every event fanned out to one webhook endpoint (`Deliverer::fan_out`) and marked
//!   delivered with an attempt row (`deliveries::record`, the sender's write without HTTP).
//!
//! About 20 rows per member in all. Sizes grow in place (10,000 → 100,000 → 1,000,000): the
//! members added for a size get a history of their own ending a day after the last size's
//! present, so the passes measured at one size find fresh work at the next.
//!
//! **What is measured** at each size, after seeding: the reminder pass five times, each after
//! one hour of the clock (its median time, and the notices it wrote: the work, which grows
//! with members); then the service's router served in this process, driven by wrk for
//! `ROUTE_SECONDS` each: hello-world (the baseline), `GET /v1/subscriptions/{wallet}` for
//! a member drawn at random from all of them (the read cache holds 100,000, so past that
//! most reads miss it), and `POST /v1/checkouts`. Recorded as `growth.<db>.<members>.*`;
//! each figure at a larger size is also given as a ratio to the same figure at the
//! smallest size of the run.
//!
//! Run: `cargo bench --bench growth`; `GROWTH_MEMBERS=10000,100000` for other sizes,
//! `ONLY=SQLite` or `ONLY=PostgreSQL`, `ROUTE_SECONDS=…` (default 5), `GROWTH_SEED_ONLY=1`
//! to seed (or find kept) and measure nothing. `scripts/bench-report` seeds both databases
//! at once before its first round, then runs it in each round (sizes 10k and 100k in its
//! short mode).

#[path = "support/fixture.rs"]
#[allow(dead_code, unreachable_pub)]
mod fixture;
#[path = "support/record.rs"]
#[allow(dead_code, unreachable_pub)]
mod record;
#[path = "support/wrk.rs"]
#[allow(dead_code, unreachable_pub)]
mod wrk;

use std::{path::PathBuf, sync::Arc, time::Instant};

use alloy::{
    primitives::{Address, keccak256},
    providers::DynProvider,
};
use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use tmai_pay::{
    billing::{
        plans::Catalog,
        quotes::{QuoteIssuer, QuoteRequest},
        reminders::Reminders,
    },
    chain::{bindings::SubscriptionCheckout::OrderPaid, deployment::Deployment, devnet, paid_log::PaidLog},
    clock::Clock,
    config::{HttpSettings, PlanConfig, ReminderSettings, WebhookSettings},
    http::{AppState, router, serve},
    notify::{delivery::Deliverer, endpoints},
    store::{
        Db,
        webhooks::deliveries::{self, AttemptRecord, Outcome},
    },
    watcher::{Watcher, WatcherConfig},
};
use tokio_util::sync::CancellationToken;

/// Moments of purchase in a size's year of history (about one a day): the members added
/// for a size are split evenly among them (one pass's transaction each).
const MOMENTS: u64 = 400;
/// Checkouts issued at once while seeding.
const IN_FLIGHT: usize = 256;
/// Reminder passes measured at each size.
const PASSES: u64 = 5;
const DAY: u64 = 86_400;
const YEAR: u64 = 365 * DAY;

fn plans() -> Vec<PlanConfig> {
    let monthly = PlanConfig {
        id: 1,
        name: "Basic monthly".into(),
        tier: 1,
        period: "monthly".into(),
        prices: [("TMAI".to_string(), "100".to_string())].into(),
        card_price_cents: None,
        card_price_id: None,
        trial_days: 0,
        tmai_discount_percent: None,
        price_usd: None,
    };
    let yearly = PlanConfig {
        id: 2,
        name: "Basic yearly".into(),
        period: "yearly".into(),
        prices: [("TMAI".to_string(), "1000".to_string())].into(),
        ..monthly.clone()
    };
    vec![monthly, yearly]
}

/// Member `i`'s wallet: `0x77` then `i` in hex (the GET load draws the same addresses).
fn member(i: u64) -> Address {
    format!("0x77{i:038x}").parse().expect("a 20-byte address")
}

/// The parts seeding and serving share.
struct Parts {
    deployment: Deployment,
    provider: DynProvider,
    catalog: Arc<Catalog>,
    issuer: QuoteIssuer,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    tmai_pay::telemetry::init_with_default(false, "warn");
    let seconds = wrk::route_seconds();
    let sizes: Vec<u64> = std::env::var("GROWTH_MEMBERS")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().context("GROWTH_MEMBERS: a comma-separated list of member counts"))
        .collect::<Result<_>>()?;
    wrk::require()?;
    let fixture::FixtureChain { deployment, anvil, provider } = fixture::start()?;
    let catalog = Arc::new(Catalog::new(&plans(), &deployment.tokens)?);
    let issuer = QuoteIssuer::new(devnet::key(&anvil, devnet::QUOTE_SIGNER), deployment.chain_id, deployment.checkout, 1_800);
    let parts = Parts { deployment, provider, catalog, issuer };

    let tmp = tempfile::tempdir()?;
    let post = tmp.path().join("post.lua");
    std::fs::write(
        &post,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"plan_id\": 1, \"token\": \"TMAI\", \"wallet\": \"{}\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
            member(0)
        ),
    )?;
    let pg_server = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let backends = ["SQLite", "PostgreSQL"];
    let only = std::env::var("ONLY").ok();
    // Seeding only: `scripts/bench-report` seeds both databases at once before its rounds
    // (seeding is not measured, and SQLite's seeding leaves a core to PostgreSQL's).
    let seed_only = std::env::var_os("GROWTH_SEED_ONLY").is_some_and(|v| v == "1");
    let mut rec = record::Record::new("growth");
    rec.param("members", sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "));
    rec.param("seconds", seconds);
    let seeds = Seeds::open(&pg_server)?;
    println!("Growth: members already in the database (wrk, 1 thread, {} connections, {seconds} s per route)", wrk::connections());
    println!(
        "  seeded databases are kept in {} (and PostgreSQL's tmai_growth_seed_*), reused while the schema and the seeding stay the same",
        seeds.dir.display()
    );
    for name in backends.into_iter().filter(|name| only.as_deref().is_none_or(|o| o.eq_ignore_ascii_case(name))) {
        let key = name.to_lowercase();
        let backend = if name == "SQLite" { Backend::Sqlite } else { Backend::Postgres };
        // The working database seeding grows (None: not opened in this run) and the chain of
        // sizes it holds.
        let mut seeding: Option<(Db, String)> = None;
        let mut present = None;
        let mut first: Option<u64> = None;
        println!("{name}:");
        println!(
            "  {:>9} {:>9} {:>10} {:>12} {:>10} {:>10} {:>10} {:>11} {:>10}",
            "members", "seed (s)", "idle (ms)", "hourly (ms)", "notices", "hello/s", "GET p99", "checkouts/s", "ckout p99"
        );
        for (step, &size) in sizes.iter().enumerate() {
            let chain = sizes[..=step].iter().map(u64::to_string).collect::<Vec<_>>().join("-");
            let started = Instant::now();
            let mut seed_secs = None;
            match seeds.present(backend, &chain).await? {
                Some(at) => present = Some(at),
                None => {
                    // Grow the working database from the last size (restored from its
                    // snapshot when this run did not seed it), then keep a snapshot.
                    let at = *present.get_or_insert(tmai_pay::store::unix_now() as u64 + YEAR + 2 * DAY);
                    let previous = (step > 0).then(|| sizes[..step].iter().map(u64::to_string).collect::<Vec<_>>().join("-"));
                    let db = match seeding.take() {
                        Some((db, held)) if Some(&held) == previous.as_ref() => db,
                        other => {
                            if let Some((db, _)) = other {
                                db.close().await;
                            }
                            let db = Db::connect(&seeds.copy(backend, "work", previous.as_deref()).await?).await?;
                            if previous.is_none() {
                                endpoints::create(&db, "https://merchant.example/hooks", "growth bench", None, at as i64).await?;
                            }
                            db
                        }
                    };
                    let endpoint = tmai_pay::store::webhooks::endpoints::list(&db).await?.into_iter().next().context("the seeded endpoint")?.id;
                    let from = if step == 0 { 0 } else { sizes[step - 1] };
                    seed(&db, &parts, &endpoint, from..size, at + step as u64 * DAY, &Clock::system()).await?;
                    let db = seeds.snapshot(backend, db, &chain, at).await?;
                    seeding = Some((db, chain.clone()));
                    seed_secs = Some(started.elapsed().as_secs_f64());
                }
            }
            if seed_only {
                println!("  {size:>9} {:>9}", seed_secs.map_or("cached".to_string(), |s| format!("{s:.1}")));
                continue;
            }
            let end = present.context("a seeded present")? + step as u64 * DAY;
            let db = Db::connect(&seeds.copy(backend, "measure", Some(&chain)).await?).await?;
            // The reminder pass: five at the configured interval (30 s: little or nothing
            // due, what every pass costs), then five each after an hour (work that grows
            // with members).
            let clock = Clock::system();
            let reminders = Reminders::new(db.clone(), parts.catalog.clone(), ReminderSettings::default(), clock.clone());
            let passes = |step: u64| {
                let (clock, reminders) = (clock.clone(), reminders.clone());
                async move {
                    let (mut times, mut notices) = (Vec::new(), 0);
                    for _ in 0..PASSES {
                        let to = clock.now().max(end) + step;
                        clock.catch_up_to(to);
                        let t = Instant::now();
                        let report = reminders.tick().await?;
                        times.push(t.elapsed().as_secs_f64() * 1e3);
                        notices += report.expiring + report.expired;
                    }
                    times.sort_by(f64::total_cmp);
                    anyhow::Ok((times[times.len() / 2], notices as f64 / PASSES as f64))
                }
            };
            let (idle_ms, _) = passes(30).await?;
            let (pass_ms, notices) = passes(3_600).await?;
            let (hello, read, create) = serve_and_load(&db, &parts, size, seconds, &post, tmp.path()).await?;
            db.close().await;
            seeds.remove(backend, "measure").await?;
            println!(
                "  {:>9} {:>9} {:>10.2} {:>12.2} {:>10.1} {:>10.0} {:>10.2} {:>11.0} {:>10.2}",
                size,
                seed_secs.map_or("cached".to_string(), |s| format!("{s:.1}")),
                idle_ms,
                pass_ms,
                notices,
                hello.rps,
                read.p99_ms,
                create.rps,
                create.p99_ms
            );
            let group = format!("{name}, {size} members");
            let at = |what: &str| format!("growth.{key}.{size}.{what}");
            let against = |fig: record::Figure, what: &str| match first {
                Some(s) => fig.baseline(&format!("growth.{key}.{s}.{what}")),
                None => fig,
            };
            rec.add(
                against(record::figure(&at("idle_ms"), "reminder and expiry pass, 30 s apart (the configured interval)", "ms", idle_ms).lower(), "idle_ms")
                    .group(&group),
            );
            rec.add(against(record::figure(&at("pass_ms"), "reminder and expiry pass, one hour apart", "ms", pass_ms).lower(), "pass_ms").group(&group));
            rec.add(against(record::figure(&at("notices"), "notices an hourly pass writes (its work)", "per pass", notices), "notices").group(&group));
            rec.add(record::figure(&at("hello"), "GET /bench/hello (baseline)", "req/s", hello.rps).group(&group));
            rec.add(
                against(
                    record::figure(&at("read_p99"), "GET /v1/subscriptions/{wallet} p99 (random member, full load)", "ms", read.p99_ms).lower(),
                    "read_p99",
                )
                .group(&group),
            );
            rec.add(record::figure(&at("read"), "GET /v1/subscriptions/{wallet} (random member)", "req/s", read.rps).baseline(&at("hello")).group(&group));
            rec.add(record::figure(&at("checkout"), "POST /v1/checkouts", "req/s", create.rps).baseline(&at("hello")).group(&group));
            rec.add(
                against(record::figure(&at("checkout_p99"), "POST /v1/checkouts p99 (full load)", "ms", create.p99_ms).lower(), "checkout_p99").group(&group),
            );
            first.get_or_insert(size);
        }
        if let Some((db, _)) = seeding {
            db.close().await;
        }
        seeds.remove(backend, "work").await?;
    }
    if !seed_only {
        rec.save()?;
    }
    Ok(())
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn key(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }
}

/// Changes whenever what `seed` writes changes, so older snapshots are seeded again.
const SEED_VERSION: &str = "1";

/// Seeded databases kept between runs: seeding a million members takes minutes, so each
/// size is seeded once, kept (an SQLite file written with `VACUUM INTO`, a PostgreSQL
/// database used as a template), and every run measures on a fresh copy of it. A snapshot
/// is named by the chain of sizes that built it and marked with the seeding's version and
/// the number of migrations; any change to either seeds again.
struct Seeds {
    dir: PathBuf,
    pg: String,
    version: String,
    pid: u32,
}

impl Seeds {
    fn open(pg: &str) -> Result<Self> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("GROWTH_SEED_DIR").map_or_else(|| root.join("target/bench/growth-seed"), PathBuf::from);
        std::fs::create_dir_all(&dir)?;
        let migrations = std::fs::read_dir(root.join("migrations/sqlite"))?.count();
        Ok(Self { dir, pg: pg.to_string(), version: format!("{SEED_VERSION}.{migrations}.{MOMENTS}"), pid: std::process::id() })
    }

    fn marker(&self, b: Backend, chain: &str) -> PathBuf {
        self.dir.join(format!("{}-{chain}.json", b.key()))
    }

    fn sqlite_snapshot(&self, chain: &str) -> PathBuf {
        self.dir.join(format!("sqlite-{chain}.db"))
    }

    fn pg_snapshot(chain: &str) -> String {
        format!("tmai_growth_seed_{}", chain.replace('-', "_"))
    }

    /// The working database's name (a file for SQLite) for `role`.
    fn name(&self, b: Backend, role: &str) -> String {
        match b {
            Backend::Sqlite => self.dir.join(format!("{role}-{}.db", self.pid)).display().to_string(),
            Backend::Postgres => format!("tmai_growth_{role}_{}", self.pid),
        }
    }

    fn url(&self, b: Backend, role: &str) -> String {
        match b {
            Backend::Sqlite => format!("sqlite://{}", self.name(b, role)),
            Backend::Postgres => format!("{}/{}", self.pg, self.name(b, role)),
        }
    }

    async fn admin(&self, sql: &str) -> Result<Vec<sqlx::any::AnyRow>> {
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&format!("{}/postgres", self.pg)).await.context("PostgreSQL at 127.0.0.1:5432")?;
        let rows = sqlx::query(sql).fetch_all(&admin).await?;
        admin.close().await;
        Ok(rows)
    }

    /// The present of the snapshot for `chain`, when a usable one is kept.
    async fn present(&self, b: Backend, chain: &str) -> Result<Option<u64>> {
        let Ok(text) = std::fs::read_to_string(self.marker(b, chain)) else { return Ok(None) };
        let marker: serde_json::Value = serde_json::from_str(&text)?;
        if marker["version"].as_str() != Some(&self.version) {
            return Ok(None);
        }
        let kept = match b {
            Backend::Sqlite => self.sqlite_snapshot(chain).exists(),
            Backend::Postgres => !self.admin(&format!("SELECT 1 FROM pg_database WHERE datname = '{}'", Self::pg_snapshot(chain))).await?.is_empty(),
        };
        Ok(kept.then(|| marker["present"].as_u64()).flatten())
    }

    /// Makes `role`'s database (`work`: the one seeding grows; `measure`: a run's copy) a copy
    /// of the snapshot of `chain` (empty for None); returns its URL.
    async fn copy(&self, b: Backend, role: &str, chain: Option<&str>) -> Result<String> {
        self.remove(b, role).await?;
        match (b, chain) {
            (Backend::Sqlite, Some(chain)) => {
                std::fs::copy(self.sqlite_snapshot(chain), self.name(b, role))?;
            }
            (Backend::Sqlite, None) => {}
            (Backend::Postgres, chain) => {
                let template = chain.map(|c| format!(" TEMPLATE {}", Self::pg_snapshot(c))).unwrap_or_default();
                self.admin(&format!("CREATE DATABASE {}{template}", self.name(b, role))).await?;
            }
        }
        Ok(self.url(b, role))
    }

    /// Drops `role`'s database.
    async fn remove(&self, b: Backend, role: &str) -> Result<()> {
        match b {
            Backend::Sqlite => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", self.name(b, role)));
                }
            }
            Backend::Postgres => {
                self.admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name(b, role))).await?;
            }
        }
        Ok(())
    }

    /// Keeps the working database `db` as the snapshot of `chain`; returns it open again.
    async fn snapshot(&self, b: Backend, db: Db, chain: &str, present: u64) -> Result<Db> {
        let db = match b {
            Backend::Sqlite => {
                let path = self.sqlite_snapshot(chain);
                let _ = std::fs::remove_file(&path);
                sqlx::query(&format!("VACUUM INTO '{}'", path.display())).execute(db.pool()).await?;
                db
            }
            Backend::Postgres => {
                // What autovacuum does to a live database between writes and reads: without
                // it the seed's updated rows leave dead index entries (a 1,000,000-member
                // seed's ended-plans lookup read 412,000 of them: 285 ms, 0.15 ms after) and
                // stale statistics that mislead the planner.
                sqlx::query("VACUUM ANALYZE").execute(db.pool()).await?;
                // A template must have no sessions: close, copy, open again. A session the
                // server has not yet seen go (a closed pool's last connection, the change
                // listener's) would fail the copy after five seconds: end those first.
                db.close().await;
                let snapshot = Self::pg_snapshot(chain);
                let work = self.name(b, "work");
                self.admin(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{work}' AND pid <> pg_backend_pid()")).await?;
                self.admin(&format!("DROP DATABASE IF EXISTS {snapshot} WITH (FORCE)")).await?;
                self.admin(&format!("CREATE DATABASE {snapshot} TEMPLATE {work}")).await?;
                Db::connect(&self.url(b, "work")).await?
            }
        };
        std::fs::write(self.marker(b, chain), serde_json::to_vec(&serde_json::json!({ "version": self.version, "present": present }))?)?;
        Ok(db)
    }
}

/// Seeds members `range` (see the module documentation) with a year of history ending at
/// `end`, the clock following it.
async fn seed(db: &Db, parts: &Parts, endpoint: &str, range: std::ops::Range<u64>, end: u64, clock: &Clock) -> Result<()> {
    let config = WatcherConfig {
        chain_id: parts.deployment.chain_id,
        checkout: parts.deployment.checkout,
        confirmations: 1,
        max_block_range: 1_000,
        start_block: 0,
        poll_interval: std::time::Duration::from_secs(1),
    };
    let watcher = Watcher::new(db.clone(), parts.provider.clone(), parts.catalog.clone(), config);
    let reminders = Reminders::new(db.clone(), parts.catalog.clone(), ReminderSettings::default(), clock.clone());
    let deliverer = Deliverer::new(db.clone(), WebhookSettings::default(), clock.clone())?;
    let group = (range.end - range.start).div_ceil(MOMENTS).max(1);
    let groups = (range.end - range.start).div_ceil(group);
    let (mut t_quotes, mut t_record, mut t_ticks) = (0.0, 0.0, 0.0);
    let token = parts.catalog.token("TMAI").context("TMAI in the catalog")?.address;
    let mut last_tick = 0;
    for g in 0..groups {
        let bought = end - YEAR + (g + 1) * YEAR / groups;
        if bought >= last_tick + DAY {
            // The reminder pass, daily as the year goes by (and at the end, below).
            clock.catch_up_to(bought);
            let t = Instant::now();
            reminders.tick().await?;
            t_ticks += t.elapsed().as_secs_f64();
            last_tick = bought;
        }
        let plan_id = if g % 2 == 0 { 1 } else { 2 };
        let first = range.start + g * group;
        let members = first..(first + group).min(range.end);
        let t = Instant::now();
        let quotes: Vec<_> = futures::stream::iter(members)
            .map(|i| {
                let request = QuoteRequest { plan_id, token: "TMAI".into(), payer: member(i), periods: 1 };
                async move { parts.issuer.issue(db, &parts.catalog, &request, bought).await.map(|q| (i, q)) }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        t_quotes += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let logs: Vec<PaidLog> = quotes
            .iter()
            .map(|(i, q)| PaidLog {
                block_number: g,
                block_hash: keccak256(format!("growth block {} {g}", range.start)),
                tx_hash: keccak256(i.to_be_bytes()),
                log_index: 0,
                event: OrderPaid { orderId: q.quote.orderId, payer: q.quote.payer, planId: plan_id, token, amount: q.amount, periods: 1 },
            })
            .collect();
        let recorded = watcher.record_deep(&logs, bought).await?;
        anyhow::ensure!(recorded == logs.len(), "recorded {recorded} of {} payments", logs.len());
        t_record += t.elapsed().as_secs_f64();
    }
    clock.catch_up_to(end);
    reminders.tick().await?;
    let t = Instant::now();
    deliverer.fan_out().await?;
    let t_fan = t.elapsed().as_secs_f64();
    let t = Instant::now();
    deliver_all(db, endpoint, clock.now_ms()).await?;
    eprintln!(
        "  seeded {}..{}: checkouts {t_quotes:.1} s, payments {t_record:.1} s, reminder passes {t_ticks:.1} s, fan-out {t_fan:.1} s, delivered {:.1} s",
        range.start,
        range.end,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Marks every pending delivery of `endpoint` delivered at `now_ms`, with its attempt row,
/// as the sender records a 2xx answer.
async fn deliver_all(db: &Db, endpoint: &str, now_ms: i64) -> Result<()> {
    loop {
        let mut tx = db.begin_write().await?;
        let batch = deliveries::pending_batch(&mut tx, endpoint, 5_000).await?;
        if batch.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        let attempts: Vec<AttemptRecord> = batch
            .into_iter()
            .map(|d| AttemptRecord {
                delivery_id: d.id,
                event_id: d.event_id,
                attempt: d.attempts + 1,
                attempted_ms: now_ms,
                status_code: Some(200),
                latency_ms: 3,
                error: None,
                response_excerpt: None,
                outcome: Outcome::Delivered,
            })
            .collect();
        deliveries::record(&mut tx, endpoint, now_ms, &attempts).await?;
        tx.commit().await?;
    }
}

/// Serves the router over `db` and drives it with wrk: hello-world, a random member's
/// subscription, checkouts. Returns the three figures.
async fn serve_and_load(
    db: &Db,
    parts: &Parts,
    members: u64,
    seconds: u64,
    post: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(wrk::Figures, wrk::Figures, wrk::Figures)> {
    let get = dir.join("get.lua");
    std::fs::write(
        &get,
        format!(
            "math.randomseed(os.time())\nfunction request()\n  return wrk.format(\"GET\", string.format(\"/v1/subscriptions/0x77%038x\", math.random(0, {})))\nend\n",
            members - 1
        ),
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let cancel = CancellationToken::new();
    let http = HttpSettings { rate_limit_per_second: 0, ..Default::default() };
    let state = AppState::new(db.clone(), parts.catalog.clone(), parts.deployment.clone(), parts.provider.clone(), 2, http, cancel.clone())
        .with_quotes(Some(parts.issuer.clone()));
    let server = tokio::spawn(serve(listener, router(state), cancel.clone()));
    let hello = wrk::wrk(&format!("{base}/bench/hello"), None, seconds).await?;
    let read = wrk::wrk(&format!("{base}/"), Some(&get), seconds).await?;
    let create = wrk::wrk(&format!("{base}/v1/checkouts"), Some(post), seconds).await?;
    cancel.cancel();
    let _ = server.await;
    // Checkouts wrk left in flight finish their order batch before the database closes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    Ok((hello, read, create))
}
