//! The upgrade-credit property (README "Upgrade credit"): **no sequence of purchases buys
//! more time of any tier than what was paid for it is worth at that tier's price.**
//!
//! Random purchase sequences — on-chain in TMAI (with its discount) and in the USD token,
//! orders priced in dollars at a locked rate, card checkouts; renewals, upgrades,
//! downgrades, monthly and yearly, time passing, scheduled downgrades taking effect, lapses
//! and catalog price changes between purchases — go through activation on a real database
//! (the subscription is read from and written to it at every step, on SQLite and
//! PostgreSQL; card purchases through the card event handler). Beside them a reference
//! model keeps every paid second as a segment with the exact price it was paid at, consumed
//! in order; at every upgrade the credit must be worth no more than what the model says the
//! remaining paid time was paid, and after every step the service's expiry must be the
//! model's.

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, U256};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use sqlx::Row;
use tmai_pay::{
    billing::{
        activation::{self, PaidOrder, Subscription},
        card::{self, CardEvent},
        plans::{Catalog, MONTH_SECS, YEAR_SECS},
    },
    chain::deployment::TokenInfo,
    config::{CardSettings, PlanConfig},
    money::Usd,
    store::badges::Cause,
};

use crate::db::{DbKind, fresh_db, on_both_databases};

const TMAI: Address = Address::repeat_byte(0x7a);
const USD: Address = Address::repeat_byte(0x05);
const START: u64 = 1_800_000_000;
const DAY: u64 = 86_400;
const SEQUENCES: u64 = 24;
const STEPS: usize = 10;

fn tokens() -> Vec<TokenInfo> {
    vec![
        TokenInfo { symbol: "TMAI".into(), address: TMAI, decimals: 18, permit: true },
        TokenInfo { symbol: "USD".into(), address: USD, decimals: 6, permit: true },
    ]
}

/// A catalog of four tiers monthly and two yearly, at list prices scaled by `percent`, the
/// TMAI prices `discount` % off.
fn priced_catalog(percent: u64, discount: u8) -> Catalog {
    let plan = |id: u32, tier: u8, period: &str, cents: u64| PlanConfig {
        id,
        name: format!("plan {id}"),
        tier,
        period: period.into(),
        prices: [("TMAI".to_string(), "100".to_string()), ("USD".to_string(), "10".to_string())].into(),
        card_price_cents: Some(cents * percent / 100),
        card_price_id: Some(format!("price_{id}")),
        trial_days: 0,
        tmai_discount_percent: (discount > 0).then_some(discount),
        price_usd: None,
    };
    let configs = [
        plan(1, 1, "monthly", 900),
        plan(2, 2, "monthly", 1_900),
        plan(3, 3, "monthly", 4_900),
        plan(4, 4, "monthly", 9_900),
        plan(13, 3, "yearly", 49_000),
        plan(14, 4, "yearly", 99_000),
    ];
    Catalog::new(&configs, &tokens()).unwrap()
}

/// Paid time: `seconds` bought for `micro` micro-dollars.
#[derive(Debug, Clone, Copy)]
struct Segment {
    seconds: u64,
    micro: u128,
}

/// What the member holds, second by second, with what each second was paid.
#[derive(Debug, Default)]
struct Model {
    /// The current tier's paid time from now on, in order.
    current: Vec<Segment>,
    /// A scheduled downgrade's time after it.
    next: Vec<Segment>,
    /// Whether anything is held.
    live: bool,
    /// Up to when time has been consumed.
    at: u64,
}

impl Model {
    /// Consumes time up to `now`: the current tier's segments in order, then the scheduled
    /// plan's (a downgrade that took effect), then nothing (a lapse).
    fn advance(&mut self, now: u64) {
        let mut elapsed = now.saturating_sub(self.at);
        self.at = now;
        while elapsed > 0 && self.live {
            if self.current.is_empty() {
                if self.next.is_empty() {
                    self.live = false;
                    break;
                }
                self.current = std::mem::take(&mut self.next);
                continue;
            }
            let first = &mut self.current[0];
            let used = elapsed.min(first.seconds);
            // What is left keeps its share of the price, rounded up (never under-valued).
            let left = first.seconds - used;
            first.micro = (first.micro * u128::from(left)).div_ceil(u128::from(first.seconds.max(1)));
            first.seconds = left;
            elapsed -= used;
            if first.seconds == 0 {
                self.current.remove(0);
            }
        }
        if self.live && self.current.is_empty() && !self.next.is_empty() {
            self.current = std::mem::take(&mut self.next);
        }
        if self.current.is_empty() && self.next.is_empty() {
            self.live = false;
        }
    }

    fn seconds(segments: &[Segment]) -> u64 {
        segments.iter().map(|s| s.seconds).sum()
    }

    fn worth(&self) -> u128 {
        self.current.iter().chain(&self.next).map(|s| s.micro).sum()
    }
}

/// A card checkout (one period of `plan_id` at `cents`) as the processor sends it.
fn card_checkout(id: &str, wallet: Address, plan_id: u32, cents: u64) -> CardEvent {
    let body = json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "type": "checkout.session.completed",
        "data": { "object": {
            "id": format!("cs_{id}"),
            "object": "checkout.session",
            "mode": "payment",
            "status": "complete",
            "amount_total": cents,
            "currency": "usd",
            "payment_status": "paid",
            "payment_intent": format!("pi_{id}"),
            "metadata": { "wallet": wallet.to_string(), "plan_id": plan_id.to_string() },
        }},
    });
    CardEvent::parse(body.to_string().as_bytes()).unwrap()
}

/// An on-chain payment as the watcher activates it.
struct OnChain {
    wallet: Address,
    plan: u32,
    periods: u32,
    token: Address,
    usd: Option<Usd>,
    key: (u64, usize),
}

/// Activates `p` on `before` (the stored subscription) and stores the result.
async fn pay_on_chain(conn: &mut sqlx::AnyConnection, catalog: &Catalog, before: Option<&Subscription>, p: OnChain, now: u64) {
    let (seed, step) = p.key;
    let paid = PaidOrder {
        payment_id: (seed * 100 + step as u64) as i64,
        cause: Cause { order_id: U256::from(1).into(), checkout_id: None, tx_hash: Default::default() },
        payment_key: format!("31337:{seed}:{step}"),
        revision: 0,
        wallet: p.wallet,
        plan_id: p.plan,
        periods: p.periods,
        token: p.token,
        usd: p.usd,
        customer_ref: None,
        chain_id: 31337,
        block_number: 1,
        amount: U256::from(1),
        rate_usd: None,
    };
    let mut current: HashMap<Address, Subscription> = before.map(|s| (s.wallet, s.clone())).into_iter().collect();
    let writes = activation::plan_activations(catalog, &[paid], &mut current, &mut HashMap::new(), &HashSet::new(), now);
    for s in &writes.subscriptions {
        activation::save(conn, s, now).await.unwrap();
    }
}

async fn no_purchase_sequence_buys_unpaid_time(kind: DbKind) {
    let test_db = fresh_db(kind).await;
    let mut conn = test_db.db.pool().acquire().await.unwrap();
    let settings = CardSettings::default();
    let (mut upgrades, mut credited) = (0, 0);
    for seed in 0..SEQUENCES {
        let mut rng = StdRng::seed_from_u64(seed);
        let wallet = Address::left_padding_from(&(seed + 1).to_be_bytes());
        let mut catalog = priced_catalog(100, 0);
        let mut model = Model { at: START, ..Default::default() };
        let mut now = START;
        for step in 0..STEPS {
            now += match rng.random_range(0..4) {
                0 => 0,
                1 => rng.random_range(0..DAY),
                2 => rng.random_range(1..20) * DAY,
                _ => rng.random_range(20..200) * DAY,
            };
            if rng.random_bool(0.2) {
                // The merchant changes prices between purchases.
                catalog = priced_catalog(rng.random_range(50..200), rng.random_range(0..40));
            }
            activation::apply_due_downgrades(&mut conn, &catalog, now).await.unwrap();
            model.advance(now);

            let plan = *[1, 2, 3, 4, 13, 14].get(rng.random_range(0..6)).unwrap();
            let plan = catalog.get(plan).unwrap();
            let before = activation::load(&mut conn, wallet).await.unwrap();
            let list = plan.list_worth().unwrap();
            let (periods, worth) = match rng.random_range(0..4) {
                // On-chain at the plan's token price, in TMAI (less its discount) or USD.
                0 | 1 => {
                    let token = if rng.random_bool(0.5) { TMAI } else { USD };
                    let periods = rng.random_range(1..=3);
                    let worth = activation::purchase_worth(&catalog, plan, periods, token, None);
                    pay_on_chain(&mut conn, &catalog, before.as_ref(), OnChain { wallet, plan: plan.id, periods, token, usd: None, key: (seed, step) }, now)
                        .await;
                    (periods, worth)
                }
                // On-chain, an order priced in dollars: its value at the locked rate.
                2 => {
                    let periods = rng.random_range(1..=2);
                    let value = Usd::from_micro(list.micro() * u64::from(periods) * rng.random_range(70..=100) / 100).unwrap();
                    pay_on_chain(
                        &mut conn,
                        &catalog,
                        before.as_ref(),
                        OnChain { wallet, plan: plan.id, periods, token: TMAI, usd: Some(value), key: (seed, step) },
                        now,
                    )
                    .await;
                    (periods, value)
                }
                // A card checkout of one period at the plan's card price.
                _ => {
                    let cents = plan.card_price.unwrap().minor();
                    let event = card_checkout(&format!("evt_{seed}_{step}"), wallet, plan.id, cents);
                    let handled = card::handle(&mut conn, &catalog, &settings, &event, "", now).await.unwrap();
                    assert_eq!(handled.status, "processed", "{handled:?}");
                    (1, Usd::from_micro(cents * 10_000).unwrap())
                }
            };
            let after = activation::load(&mut conn, wallet).await.unwrap().unwrap();
            let bought = plan.period.seconds() * u64::from(periods);
            let bought_segment = Segment { seconds: bought, micro: u128::from(worth.micro()) };
            let context = format!("seed {seed} step {step}: plan {} ×{periods} for {worth} at {now}; before {before:?}; after {after:?}", plan.id);
            let live_before = before.as_ref().is_some_and(|b| b.expires_at > now && b.status.as_str() != "expired");
            assert_eq!(live_before, model.live, "{context}: the model and the service disagree on a live subscription");
            if !live_before {
                model = Model { current: vec![bought_segment], next: vec![], live: true, at: now };
            } else {
                let before = before.unwrap();
                match plan.tier.cmp(&before.tier) {
                    std::cmp::Ordering::Equal => model.current.push(bought_segment),
                    std::cmp::Ordering::Less => model.next.push(bought_segment),
                    std::cmp::Ordering::Greater => {
                        // The property: the credit is worth at most what the remaining paid
                        // time was paid, at the new plan's price per second.
                        let credit = after.expires_at - now - bought;
                        let worth_left = model.worth();
                        let list = plan.list_worth().unwrap().micro();
                        assert!(
                            u128::from(credit) * u128::from(list) <= worth_left * u128::from(plan.period.seconds()),
                            "{context}: {credit} s credited are worth more than the {worth_left} µ$ paid for the time left"
                        );
                        upgrades += 1;
                        credited += u64::from(credit > 0);
                        let credit_worth = (u128::from(credit) * u128::from(list)).div_ceil(u128::from(plan.period.seconds()));
                        model.current = vec![bought_segment, Segment { seconds: credit, micro: credit_worth }];
                        model.next.clear();
                    }
                }
            }
            // The service holds exactly the model's time.
            assert_eq!(after.expires_at - now, Model::seconds(&model.current), "{context}: current period");
            let next = after.next_expires_at.map_or(0, |n| n - after.expires_at);
            assert_eq!(next, Model::seconds(&model.next), "{context}: scheduled plan");
        }
    }
    // The sequences did exercise upgrades with credit.
    assert!(upgrades > 20 && credited > 10, "{upgrades} upgrades, {credited} with credit");
}
on_both_databases!(no_purchase_sequence_buys_unpaid_time);

/// The review's case end to end, through the real watcher on a real chain: Premium yearly
/// ($490), then one Premium month ($49: the monthly plan becomes the current one), then VIP
/// monthly. The remaining 395 days are credited at the yearly price per second.
async fn a_yearly_member_who_renews_monthly_upgrades_at_the_yearly_price(kind: DbKind) {
    let app = crate::api::App::spawn(kind).await;
    for plan in [13, 3, 4] {
        let quote = app.h.quote(5, plan, "TMAI", 1).await;
        app.h.pay(5, &quote).await;
        app.h.mine(crate::harness::CONFIRMATIONS).await;
        app.h.catch_up().await;
    }
    let pool = app.h.test_db.db.pool();
    let row =
        sqlx::query("SELECT kind, credit_seconds, old_expires_at, created_at FROM activations ORDER BY payment_id DESC LIMIT 1").fetch_one(pool).await.unwrap();
    assert_eq!(row.try_get::<String, _>("kind").unwrap(), "subscription.upgraded");
    let credit = row.try_get::<i64, _>("credit_seconds").unwrap() as u128;
    let left = (row.try_get::<i64, _>("old_expires_at").unwrap() - row.try_get::<i64, _>("created_at").unwrap()) as u128;
    assert!(left > 394 * u128::from(DAY), "{left}");
    let (month, year) = (u128::from(MONTH_SECS), u128::from(YEAR_SECS));
    assert_eq!(credit, left * 490 * month / (year * 99), "credited at the yearly price");
    assert!(credit < left * 49 / 99 - 30 * u128::from(DAY), "the monthly price would have given a month more");
    // The new plan's time is worth the VIP month's price.
    let rate = sqlx::query("SELECT paid_micro, paid_seconds FROM subscriptions").fetch_one(pool).await.unwrap();
    assert_eq!((rate.try_get::<i64, _>("paid_micro").unwrap(), rate.try_get::<i64, _>("paid_seconds").unwrap()), (99_000_000, MONTH_SECS as i64));
}
on_both_databases!(a_yearly_member_who_renews_monthly_upgrades_at_the_yearly_price);
