//! Receipts and credit notes: what each confirmed payment gets, and the rules they follow.
//!
//! - Every confirmed payment that buys a plan — on chain (matched to its order) or by card
//!   (a paid period; a free trial pays nothing and gets none) — gets a receipt, issued in
//!   the transaction that confirms it, so a payment is never confirmed without one and a
//!   crash never leaves one behind.
//! - Numbers come from one gap-free sequence per merchant ([`crate::store::receipts`]):
//!   receipts and credit notes share it (`R-000001`, `CN-000002`), so the documents a
//!   merchant hands out form one unbroken series. A number is never reused.
//! - A payment a reorg takes back, or the merchant refunds, gets a credit note that cancels
//!   its receipt. A partial card refund gets a credit note for the cents refunded; the one
//!   that brings the refunds to the whole amount cancels the receipt.
//! - A reversed payment the chain mines again is a new confirmation: a new receipt with a
//!   new number (its id carries the payment's revision).
//! - Ids are derived from what a document documents (the payment's key and revision, the
//!   card event, the cause of a credit note), so issuing again — a watcher pass that
//!   retries, a processor that resends — issues nothing twice.
//! - The period covered: a new subscription or upgrade from the confirmation to the new
//!   expiry; a renewal from the old expiry (or now, when it had lapsed) to the new one; a
//!   scheduled downgrade from the end of the current period to the end of the next plan's.

use alloy::primitives::{Address, U256, keccak256};

use crate::{
    billing::{
        activation::{Change, ChangeKind},
        customers::CustomerRef,
        plans::{Catalog, Plan},
    },
    store::receipts::{DocumentKind, NewCredit, NewReceipt, PaidWith},
};

/// A document id: `prefix` and the first 16 bytes of the hash of `parts`, in hex.
fn derived_id(prefix: &str, parts: &[&str]) -> String {
    let hash = keccak256(parts.join("|").as_bytes());
    format!("{prefix}_{}", alloy::hex::encode(&hash[..16]))
}

/// The receipt id of on-chain payment `payment_key` (`chain:tx:log`) at `revision`.
pub fn chain_receipt_id(payment_key: &str, revision: u32) -> String {
    derived_id("rcpt", &["receipt", payment_key, &revision.to_string()])
}

/// The receipt id of the card payment that card event `event_id` granted.
pub fn card_receipt_id(event_id: &str) -> String {
    derived_id("rcpt", &["receipt", "card", event_id])
}

/// The id of the credit note `cause` (a reorg's take-back, a refund's event) issues for
/// receipt `receipt`.
pub fn credit_id(receipt: &str, cause: &str) -> String {
    derived_id("cn", &["credit", receipt, cause])
}

/// The credit note of receipt `receipt` whose payment a reorg took back at `revision`.
pub fn reorg_credit(receipt: &str, revision: u32) -> NewCredit {
    NewCredit { id: credit_id(receipt, &format!("reorged:{revision}")), reason: "reorged", cents: None, cancels: true }
}

/// The credit note of receipt `receipt` whose on-chain payment the merchant refunded.
pub fn refund_credit(receipt: &str) -> NewCredit {
    NewCredit { id: credit_id(receipt, "refunded"), reason: "refunded", cents: None, cancels: true }
}

/// The credit note of card receipt `receipt` (of `total` cents, `credited` credited
/// before) for refund event `event_id`, which brings the refunds to `refunded` cents;
/// `None` when it refunds nothing more.
pub fn card_refund_credit(receipt: &str, event_id: &str, total: u64, credited: u64, refunded: u64) -> Option<NewCredit> {
    let refunded = refunded.min(total);
    (refunded > credited).then(|| NewCredit {
        id: credit_id(receipt, &format!("refunded:{event_id}")),
        reason: "refunded",
        cents: Some(refunded - credited),
        cancels: refunded == total,
    })
}

/// Where receipt `id` is served, under the service's public URL `base` (empty: the path).
pub fn receipt_url(base: &str, id: &str) -> String {
    format!("{}/v1/receipts/{id}", base.trim_end_matches('/'))
}

/// The number as printed: `R-000042` for a receipt, `CN-000043` for a credit note.
pub fn display_number(kind: DocumentKind, number: u64) -> String {
    let prefix = match kind {
        DocumentKind::Receipt => "R",
        DocumentKind::CreditNote => "CN",
    };
    format!("{prefix}-{number:06}")
}

/// The time a change covers (module rules), at `now`.
pub fn covered(change: &Change, now: u64) -> (u64, u64) {
    let after = &change.after;
    match change.kind {
        ChangeKind::Activated | ChangeKind::Upgraded => (now, after.expires_at),
        ChangeKind::Renewed => (change.old_expires_at.unwrap_or(now).max(now), after.expires_at),
        ChangeKind::DowngradeScheduled => (change.old_expires_at.unwrap_or(after.expires_at), after.next_expires_at.unwrap_or(after.expires_at)),
    }
}

/// An on-chain payment, as its receipt needs it.
#[derive(Debug, Clone)]
pub struct ChainPayment<'a> {
    /// `payments.id`.
    pub payment_id: i64,
    /// Its key (`chain:tx:log`).
    pub payment_key: &'a str,
    /// Times it was taken back before.
    pub revision: u32,
    /// Chain id.
    pub chain_id: u64,
    /// The transaction.
    pub tx_hash: alloy::primitives::B256,
    /// Its block.
    pub block_number: u64,
    /// Token paid in.
    pub token: Address,
    /// Amount, smallest unit.
    pub amount: U256,
    /// Periods bought.
    pub periods: u32,
    /// Value at the quote's locked rate, and the rate (dollar-priced orders).
    pub usd: Option<(crate::money::Usd, String)>,
}

/// The receipt of on-chain payment `p` for `plan`, whose change is `change`, of `wallet`
/// (the merchant's `customer`), confirmed at `now`.
pub fn for_chain_payment(
    catalog: &Catalog,
    plan: &Plan,
    p: &ChainPayment<'_>,
    wallet: Address,
    customer: Option<&CustomerRef>,
    change: &Change,
    now: u64,
) -> NewReceipt {
    let (period_start, period_end) = covered(change, now);
    let token = catalog.token_at(p.token);
    NewReceipt {
        id: chain_receipt_id(p.payment_key, p.revision),
        wallet,
        customer_ref: customer.map(|c| c.as_str().to_string()),
        plan_id: plan.id,
        plan_name: plan.name.clone(),
        periods: p.periods,
        period_start,
        period_end,
        paid_with: PaidWith::Chain {
            payment_id: p.payment_id,
            chain_id: p.chain_id,
            tx_hash: p.tx_hash,
            block_number: p.block_number,
            token: p.token,
            symbol: token.map(|t| t.symbol.clone()).unwrap_or_else(|| p.token.to_string()),
            decimals: token.map_or(0, |t| t.decimals),
            amount: p.amount,
        },
        usd_micro: p.usd.as_ref().map(|(usd, _)| usd.micro() as i64),
        rate_usd: p.usd.as_ref().map(|(_, rate)| rate.clone()),
    }
}

/// A card payment, as its receipt needs it.
#[derive(Debug, Clone)]
pub struct CardPayment<'a> {
    /// The card event that granted the time.
    pub event_id: &'a str,
    /// The processor's payment (payment intent, else invoice, else charge).
    pub payment: Option<&'a str>,
    /// Cents collected for the plan.
    pub cents: u64,
    /// The card prices' currency.
    pub currency: &'a str,
}

/// The receipt of card payment `p` for `plan`, whose change is `change`, of `wallet` (the
/// merchant's `customer`), at `now`. Its dollar value is the cents when the currency is
/// USD.
pub fn for_card_payment(plan: &Plan, p: &CardPayment<'_>, wallet: Address, customer: Option<&CustomerRef>, change: &Change, now: u64) -> NewReceipt {
    let (period_start, period_end) = covered(change, now);
    let usd = p.currency.eq_ignore_ascii_case("usd").then(|| crate::money::Cents::from_minor(p.cents).to_usd()).flatten();
    NewReceipt {
        id: card_receipt_id(p.event_id),
        wallet,
        customer_ref: customer.map(|c| c.as_str().to_string()),
        plan_id: plan.id,
        plan_name: plan.name.clone(),
        periods: 1,
        period_start,
        period_end,
        paid_with: PaidWith::Card {
            grant: p.event_id.to_string(),
            payment: p.payment.map(str::to_string),
            cents: p.cents,
            currency: p.currency.to_ascii_lowercase(),
        },
        usd_micro: usd.map(|u| u.micro() as i64),
        rate_usd: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_derived_and_distinct_per_revision_and_cause() {
        let key = "31337:0x01:0";
        assert_eq!(chain_receipt_id(key, 0), chain_receipt_id(key, 0));
        assert_ne!(chain_receipt_id(key, 0), chain_receipt_id(key, 1));
        assert_ne!(chain_receipt_id(key, 0), card_receipt_id(key));
        let receipt = chain_receipt_id(key, 0);
        assert_ne!(credit_id(&receipt, "reorged"), credit_id(&receipt, "refunded"));
        assert!(receipt.starts_with("rcpt_") && receipt.len() == 5 + 32);
        assert!(credit_id(&receipt, "x").starts_with("cn_"));
    }

    /// Any run of partial refunds (the processor's `amount_refunded` is the total so far,
    /// and may be resent or arrive lower after a higher one): the credit notes never credit
    /// more than the receipt, add up to the largest total refunded, and the one reaching the
    /// whole amount — and only that one — cancels the receipt.
    #[test]
    fn card_credit_notes_add_up_to_what_was_refunded_and_never_more() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(28);
        for _ in 0..2_000 {
            let total = rng.random_range(1..100_000u64);
            let (mut credited, mut cancelled, mut highest) = (0u64, false, 0u64);
            for step in 0..rng.random_range(1..8) {
                let refunded = if rng.random_bool(0.2) { total + rng.random_range(0..10) } else { rng.random_range(0..=total) };
                highest = highest.max(refunded.min(total));
                if let Some(c) = card_refund_credit("rcpt_x", &format!("evt_{step}"), total, credited, refunded) {
                    assert!(!cancelled, "a credit note after the one that cancelled");
                    credited += c.cents.expect("card credit notes name their cents");
                    cancelled = c.cancels;
                    assert_eq!(c.cancels, credited == total);
                }
                assert!(credited <= total);
            }
            assert_eq!(credited, highest);
        }
    }

    #[test]
    fn numbers_print_with_their_kind() {
        assert_eq!(display_number(DocumentKind::Receipt, 42), "R-000042");
        assert_eq!(display_number(DocumentKind::CreditNote, 1_234_567), "CN-1234567");
        assert_eq!(receipt_url("https://pay.example/", "rcpt_1"), "https://pay.example/v1/receipts/rcpt_1");
        assert_eq!(receipt_url("", "rcpt_1"), "/v1/receipts/rcpt_1");
    }
}
