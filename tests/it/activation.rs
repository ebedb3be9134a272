//! Plan changes (renew, upgrade credit, downgrade) and catalog validation, as pure
//! functions, plus the scheduled downgrade applied in the database.

use alloy::primitives::Address;
use tmai_pay::{
    billing::{
        activation::{self, ChangeKind, Subscription, plan_change},
        plans::{Catalog, MONTH_SECS, YEAR_SECS},
    },
    chain::deployment::TokenInfo,
    config::PlanConfig,
    money::Usd,
};

use crate::{
    db::{DbKind, fresh_db, on_both_databases},
    harness::{plan_configs, units},
};

const TMAI: Address = Address::repeat_byte(0x7a);
const USD: Address = Address::repeat_byte(0x05);
const WALLET: Address = Address::repeat_byte(0xaa);
const NOW: u64 = 1_800_000_000;

fn tokens() -> Vec<TokenInfo> {
    vec![
        TokenInfo { symbol: "TMAI".into(), address: TMAI, decimals: 18, permit: true },
        TokenInfo { symbol: "USD".into(), address: USD, decimals: 6, permit: true },
    ]
}

fn catalog() -> Catalog {
    Catalog::new(&plan_configs(), &tokens()).unwrap()
}

fn subscription(plan_id: u32, tier: u8, expires_at: u64) -> Subscription {
    Subscription {
        wallet: WALLET,
        plan_id,
        tier,
        status: "active".parse().unwrap(),
        started_at: NOW - 1_000,
        expires_at,
        next_plan_id: None,
        next_expires_at: None,
        comp_seconds: 0,
        paid_rate: None,
    }
}

#[test]
fn a_first_payment_activates_for_the_periods_bought() {
    let c = catalog();
    let change = plan_change(None, &c, WALLET, c.get(13).unwrap(), 2, usd("980"), NOW);
    assert_eq!(change.kind, ChangeKind::Activated);
    assert_eq!(change.after.expires_at, NOW + 2 * YEAR_SECS);
    assert_eq!(change.after.tier, 3);
}

#[test]
fn a_renewal_extends_from_the_later_of_now_and_expiry() {
    let c = catalog();
    let early = subscription(1, 1, NOW + 10 * 86_400);
    assert_eq!(plan_change(Some(&early), &c, WALLET, c.get(1).unwrap(), 1, list_worth(&c, 1, 1), NOW).after.expires_at, NOW + 10 * 86_400 + MONTH_SECS);
    let lapsed = subscription(1, 1, NOW - 5);
    let change = plan_change(Some(&lapsed), &c, WALLET, c.get(1).unwrap(), 1, list_worth(&c, 1, 1), NOW);
    assert_eq!(change.kind, ChangeKind::Activated);
    assert_eq!(change.after.expires_at, NOW + MONTH_SECS);
}

/// `periods` of plan `id` at its list price (the test catalog's card prices).
fn list_worth(c: &Catalog, id: u32, periods: u32) -> Usd {
    c.get(id).unwrap().list_worth().unwrap().checked_mul(periods).unwrap()
}

fn usd(text: &str) -> Usd {
    Usd::parse(text).unwrap()
}

#[test]
fn an_upgrade_credits_unused_time_by_price_to_the_second() {
    // Basic ($9 / 30 d, a row with no paid rate: its list price) with 12 days left,
    // upgraded to Premium ($49 / 30 d): 12 d × 9/49 = 190,432.6… s of Premium.
    let c = catalog();
    let current = subscription(1, 1, NOW + 12 * 86_400);
    let change = plan_change(Some(&current), &c, WALLET, c.get(3).unwrap(), 1, list_worth(&c, 3, 1), NOW);
    assert_eq!(change.kind, ChangeKind::Upgraded);
    assert_eq!(change.credit_seconds, 190_432);
    assert_eq!(change.after.expires_at, NOW + MONTH_SECS + 190_432);
    assert_eq!(change.after.tier, 3);

    // Premium monthly ($49 / 30 d) → VIP ($99 / 30 d) with 1,000,001 s left: × 49/99.
    let premium = subscription(3, 3, NOW + 1_000_001);
    assert_eq!(plan_change(Some(&premium), &c, WALLET, c.get(4).unwrap(), 1, list_worth(&c, 4, 1), NOW).credit_seconds, 494_949);

    // Across periods, in USD: Premium yearly (490 USD / 365 d) → VIP monthly (99 USD / 30 d),
    // 100 days left: 8,640,000 × 490 × 2,592,000 / (31,536,000 × 99) = 3,514,819.4… → 3,514,819.
    let yearly = subscription(13, 3, NOW + 100 * 86_400);
    assert_eq!(plan_change(Some(&yearly), &c, WALLET, c.get(4).unwrap(), 1, list_worth(&c, 4, 1), NOW).credit_seconds, 3_514_819);
}

#[test]
fn an_upgrade_credits_paid_time_at_price_and_carries_comp_time_over() {
    // Basic with 12 days left, of which the last 5 were comped: only the 7 paid days are
    // credited at 9/49 (111,085.7… s); the 5 comp days carry over as they are.
    let c = catalog();
    let mut current = subscription(1, 1, NOW + 12 * 86_400);
    current.comp_seconds = 5 * 86_400;
    let change = plan_change(Some(&current), &c, WALLET, c.get(3).unwrap(), 1, list_worth(&c, 3, 1), NOW);
    assert_eq!(change.kind, ChangeKind::Upgraded);
    assert_eq!(change.credit_seconds, 111_085);
    assert_eq!(change.after.comp_seconds, 5 * 86_400);
    assert_eq!(change.after.expires_at, NOW + MONTH_SECS + 111_085 + 5 * 86_400);

    // Less time left than was comped: all of what is left is comp, nothing is credited.
    current.expires_at = NOW + 2 * 86_400;
    let change = plan_change(Some(&current), &c, WALLET, c.get(3).unwrap(), 1, list_worth(&c, 3, 1), NOW);
    assert_eq!((change.credit_seconds, change.after.comp_seconds), (0, 2 * 86_400));
    assert_eq!(change.after.expires_at, NOW + MONTH_SECS + 2 * 86_400);

    // A renewal keeps the comp time; a fresh activation has none.
    current.expires_at = NOW + 12 * 86_400;
    let renewed = plan_change(Some(&current), &c, WALLET, c.get(1).unwrap(), 1, list_worth(&c, 1, 1), NOW);
    assert_eq!((renewed.kind, renewed.after.comp_seconds), (ChangeKind::Renewed, 5 * 86_400));
    assert_eq!(plan_change(None, &c, WALLET, c.get(1).unwrap(), 1, list_worth(&c, 1, 1), NOW).after.comp_seconds, 0);
}

#[test]
fn an_upgrade_from_a_trial_credits_nothing() {
    let c = catalog();
    let mut trial = subscription(1, 1, NOW + 5 * 86_400);
    trial.status = "trialing".parse().unwrap();
    let change = plan_change(Some(&trial), &c, WALLET, c.get(3).unwrap(), 1, list_worth(&c, 3, 1), NOW);
    assert_eq!((change.kind, change.credit_seconds), (ChangeKind::Upgraded, 0));
    assert_eq!((change.after.status.as_str(), change.after.expires_at), ("active", NOW + MONTH_SECS));
}

/// The review's case: Premium yearly ($490), then one Premium monthly ($49, which makes
/// the monthly plan the current one), then VIP monthly. The remaining time is worth what
/// was paid for it, at most the yearly price per second, not the monthly plan's.
#[test]
fn upgrade_credit_is_worth_what_was_paid_not_the_last_plan_bought() {
    let c = catalog();
    let yearly = plan_change(None, &c, WALLET, c.get(13).unwrap(), 1, usd("490"), NOW);
    let later = NOW + 5 * 86_400;
    let renewed = plan_change(Some(&yearly.after), &c, WALLET, c.get(3).unwrap(), 1, usd("49"), later);
    assert_eq!((renewed.kind, renewed.after.plan_id), (ChangeKind::Renewed, 3));
    let upgraded = plan_change(Some(&renewed.after), &c, WALLET, c.get(4).unwrap(), 1, usd("99"), later);
    let left = renewed.after.expires_at - later;
    assert_eq!(left, 390 * 86_400);
    // At the lowest price paid ($490 / 365 d): 390 d × (490/365) / (99/30) = 158.7… days.
    let fair = u64::try_from(u128::from(left) * 490 * u128::from(MONTH_SECS) / (u128::from(YEAR_SECS) * 99)).unwrap();
    assert_eq!(upgraded.credit_seconds, fair);
    // What the monthly rate would have given: 390 d × 49/99 = 193 days.
    let at_monthly = left * 49 / 99;
    assert!(at_monthly - upgraded.credit_seconds > 34 * 86_400, "{} vs {at_monthly}", upgraded.credit_seconds);
    // The credited time keeps the price it was converted at; the VIP month its own.
    assert_eq!(upgraded.after.paid_rate, c.get(4).unwrap().list_rate());
}

/// A TMAI payment's discount is not credited as money: a plan whose TMAI price is 20 %
/// off is worth 80 % of its dollar price when paid in TMAI.
#[test]
fn the_tmai_discount_is_not_credited() {
    let mut configs = plan_configs();
    configs[0].tmai_discount_percent = Some(20);
    let c = Catalog::new(&configs, &tokens()).unwrap();
    let basic = c.get(1).unwrap();
    assert_eq!(c.token_payment_worth(basic, 2, TMAI), usd("14.40"));
    assert_eq!(c.token_payment_worth(basic, 2, USD), usd("18"));
    let change = plan_change(None, &c, WALLET, basic, 1, c.token_payment_worth(basic, 1, TMAI), NOW);
    let credit = plan_change(Some(&change.after), &c, WALLET, c.get(3).unwrap(), 0, Usd::ZERO, NOW).credit_seconds;
    // 30 days at $7.20 are worth 30 × 7.2/49 days of Premium.
    assert_eq!(credit, MONTH_SECS * 72 / 490);
}

#[test]
fn a_downgrade_is_scheduled_for_the_end_of_the_period() {
    let c = catalog();
    let current = subscription(4, 4, NOW + 20 * 86_400);
    let change = plan_change(Some(&current), &c, WALLET, c.get(2).unwrap(), 3, list_worth(&c, 2, 3), NOW);
    assert_eq!(change.kind, ChangeKind::DowngradeScheduled);
    assert_eq!((change.after.tier, change.after.expires_at), (4, NOW + 20 * 86_400));
    assert_eq!(change.after.next_plan_id, Some(2));
    assert_eq!(change.after.next_expires_at, Some(NOW + 20 * 86_400 + 3 * MONTH_SECS));
}

async fn a_scheduled_downgrade_takes_effect_at_period_end(kind: DbKind) {
    let test_db = fresh_db(kind).await;
    let c = catalog();
    let mut conn = test_db.db.pool().acquire().await.unwrap();
    let mut sub = subscription(4, 4, NOW + 100);
    sub.next_plan_id = Some(2);
    sub.next_expires_at = Some(NOW + 100 + MONTH_SECS);
    activation::save(&mut conn, &sub, NOW).await.unwrap();

    let before = activation::apply_due_downgrades(&mut conn, &c, NOW + 99).await.unwrap();
    let at_end = activation::apply_due_downgrades(&mut conn, &c, NOW + 100).await.unwrap();
    let again = activation::apply_due_downgrades(&mut conn, &c, NOW + 101).await.unwrap();

    assert_eq!((before, at_end, again), (0, 1, 0));
    let after = activation::load(&mut conn, WALLET).await.unwrap().unwrap();
    assert_eq!((after.plan_id, after.tier, after.expires_at), (2, 2, NOW + 100 + MONTH_SECS));
    assert_eq!(after.next_plan_id, None);
}
on_both_databases!(a_scheduled_downgrade_takes_effect_at_period_end);

fn catalog_error(edit: impl FnOnce(&mut Vec<PlanConfig>)) -> String {
    let mut configs = plan_configs();
    edit(&mut configs);
    Catalog::new(&configs, &tokens()).expect_err("catalog must be refused").to_string()
}

#[test]
fn a_bad_catalog_is_refused_with_the_field_named() {
    let unknown = catalog_error(|c| {
        c[1].prices.insert("DOGE".into(), "1".into());
    });
    assert!(unknown.contains("plans[1].prices.DOGE") && unknown.contains("unknown token"), "{unknown}");
    let zero = catalog_error(|c| {
        c[0].prices.insert("USD".into(), "0.00".into());
    });
    assert!(zero.contains("plans[0].prices.USD") && zero.contains("greater than zero"), "{zero}");
    let negative_price = catalog_error(|c| {
        c[2].prices.insert("TMAI".into(), "-5".into());
    });
    assert!(negative_price.contains("plans[2].prices.TMAI") && negative_price.contains("negative"), "{negative_price}");
    let period = catalog_error(|c| c[3].period = "-1 month".into());
    assert!(period.contains("plans[3].period") && period.contains("monthly or yearly"), "{period}");
    let precision = catalog_error(|c| {
        c[0].prices.insert("USD".into(), "9.0000001".into());
    });
    assert!(precision.contains("plans[0].prices.USD"), "{precision}");
    let duplicate = catalog_error(|c| c[4].id = 1);
    assert!(duplicate.contains("plans[4].id"), "{duplicate}");
    let tier = catalog_error(|c| c[0].tier = 0);
    assert!(tier.contains("plans[0].tier"), "{tier}");
    let shared_price = catalog_error(|c| c[3].card_price_id = Some("price_2".into()));
    assert!(shared_price.contains("plans[3].card_price_id") && shared_price.contains("also the card price of plan 2"), "{shared_price}");
    let no_amount = catalog_error(|c| c[1].card_price_cents = None);
    assert!(no_amount.contains("plans[1].card_price_id") && no_amount.contains("needs card_price_cents"), "{no_amount}");
    let empty = catalog_error(|c| c[0].card_price_id = Some(" ".into()));
    assert!(empty.contains("plans[0].card_price_id"), "{empty}");
}

#[test]
fn a_processor_price_id_names_its_plan() {
    let c = catalog();
    assert_eq!(c.by_card_price("price_4").map(|p| p.id), Some(4));
    assert_eq!(c.by_card_price("price_13").map(|p| p.id), Some(13));
    assert!(c.by_card_price("price_99").is_none());
}

#[test]
fn prices_are_kept_in_the_tokens_smallest_unit() {
    let c = catalog();
    assert_eq!(c.get(3).unwrap().price(TMAI, 2).map(|p| p.units()), Some(units(800, 18)));
    assert_eq!(c.get(3).unwrap().price(USD, 1).map(|p| p.units()), Some(units(49, 6)));
}
