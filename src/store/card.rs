//! `card_events`, `card_subscriptions` and `card_trials`: every statement that reads or
//! writes them, and their states. What a card event does to a member is decided in
//! [`crate::billing::card`]; this module only stores what it decided.
//!
//! - `card_events`: each processor event once, keyed by its id. A delivery claims the id
//!   first ([`claim_event`], outcome [`CardOutcome::Pending`]) and records what it did
//!   before its transaction commits ([`finish_event`]); a replay finds the row.
//! - `card_subscriptions`: the processor's subscription (`sub_…`), the wallet and plan it
//!   pays for, and whether the processor has it set to end ([`CardSubscriptionStatus`]).
//! - `card_trials`: one row per wallet that had its card trial (a wallet gets one, ever).

use std::{fmt, str::FromStr};

use alloy::primitives::Address;
use serde::{Serialize, Serializer};
use sqlx::{AnyConnection, Row};

use super::{StoreError, address_bytes, to_address};
use crate::states::{UnknownState, text_enum};

text_enum! {
    /// What a card event did (`card_events.outcome`, and the webhook's answer).
    CardOutcome {
        /// Claimed, not yet applied; or a Checkout Session not paid yet (its async payment
        /// decides).
        Pending => "pending",
        /// An event type not handled.
        Ignored => "ignored",
        /// A card trial started.
        Trialing => "trialing",
        /// A new subscription.
        Activated => "activated",
        /// A period added to the subscription.
        Renewed => "renewed",
        /// A higher tier at once.
        Upgraded => "upgraded",
        /// A lower tier at the end of the period.
        DowngradeScheduled => "downgrade_scheduled",
        /// A plan of the same tier.
        PlanChanged => "plan_changed",
        /// The card subscription's new plan, recorded for when a subscription runs again.
        PlanRecorded => "plan_recorded",
        /// Canceled at the processor.
        Canceled => "canceled",
        /// A cancel at the processor undone.
        Uncanceled => "uncanceled",
        /// A renewal failed.
        PastDue => "past_due",
        /// A Checkout Session's payment failed.
        PaymentFailed => "payment_failed",
        /// A trial checkout for a wallet that had its trial.
        TrialAlreadyUsed => "trial_already_used",
        /// A trial checkout for a wallet with a live subscription.
        TrialWhileSubscribed => "trial_while_subscribed",
        /// A switch from crypto to card completed: the card subscription starts when the
        /// paid crypto time ends; nothing granted now.
        DeferredStart => "deferred_start",
        /// A subscription's first invoice (the Checkout Session covered it).
        FirstInvoice => "first_invoice",
        /// An invoice that is not a renewal.
        NotARenewal => "not_a_renewal",
        /// A subscription update that changes nothing here.
        Unchanged => "unchanged",
        /// A card subscription never activated here.
        UnknownSubscription => "unknown_subscription",
        /// The subscription was canceled before.
        AlreadyCanceled => "already_canceled",
        /// The subscription had ended.
        AlreadyEnded => "already_ended",
        /// An un-cancel of a subscription that is not canceled.
        NotCanceled => "not_canceled",
        /// The wallet has no subscription.
        NoSubscription => "no_subscription",
        /// A renewal invoice that collected nothing for the plan (a credit paid it all).
        NothingCollected => "nothing_collected",
        /// A refund or dispute took back time a card payment bought.
        TakenBack => "taken_back",
        /// A dispute closed in the merchant's favour gave the time back.
        Restored => "restored",
        /// A refund or dispute of a charge no card payment here was granted for.
        UnknownCharge => "unknown_charge",
    }
}

/// What a card event did: one [`CardOutcome`], or several for a subscription update that
/// did several things. Stored and answered as their texts joined by commas
/// (`downgrade_scheduled,canceled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOutcomes(Vec<CardOutcome>);

impl CardOutcomes {
    /// Returns the outcomes of the steps of one event, in order; an event with no step is
    /// [`CardOutcome::Unchanged`].
    pub fn of_steps(steps: Vec<CardOutcome>) -> Self {
        if steps.is_empty() { Self(vec![CardOutcome::Unchanged]) } else { Self(steps) }
    }

    /// Returns the outcomes, in order.
    pub fn as_slice(&self) -> &[CardOutcome] {
        &self.0
    }
}

impl From<CardOutcome> for CardOutcomes {
    fn from(outcome: CardOutcome) -> Self {
        Self(vec![outcome])
    }
}

impl fmt::Display for CardOutcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, outcome) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(outcome.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for CardOutcomes {
    type Err = UnknownState;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',').map(str::parse).collect::<Result<Vec<_>, _>>().map(Self)
    }
}

impl Serialize for CardOutcomes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

text_enum! {
    /// A card subscription at the processor (`card_subscriptions.status`).
    CardSubscriptionStatus {
        /// Renews at the processor.
        Active => "active",
        /// Deleted, or set to cancel at the period end, at the processor.
        Canceled => "canceled",
    }
}

/// What the first delivery of a card event recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// What it did.
    pub outcome: CardOutcomes,
    /// The member's wallet, when the event named one.
    pub wallet: Option<Address>,
}

/// Claims card event `event_id` inside the caller's transaction (outcome
/// [`CardOutcome::Pending`]). Returns `None` when this call claimed it, or what the
/// delivery that claimed it first recorded. A concurrent delivery of the same event waits
/// here (on PostgreSQL, on the row lock) and then finds it taken.
pub async fn claim_event(conn: &mut AnyConnection, event_id: &str, event_type: &str, now: u64) -> Result<Option<RecordedEvent>, StoreError> {
    let claimed = sqlx::query("INSERT INTO card_events (event_id, event_type, outcome, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING")
        .bind(event_id)
        .bind(event_type)
        .bind(CardOutcome::Pending.as_str())
        .bind(now as i64)
        .execute(&mut *conn)
        .await?;
    if claimed.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT outcome, wallet FROM card_events WHERE event_id = $1").bind(event_id).fetch_one(&mut *conn).await?;
    let outcome = row.try_get::<String, _>("outcome")?.parse().map_err(|_| StoreError::Corrupt("card_events.outcome"))?;
    let wallet = row.try_get::<Option<Vec<u8>>, _>("wallet")?.map(|b| to_address(&b, "card_events.wallet")).transpose()?;
    Ok(Some(RecordedEvent { outcome, wallet }))
}

/// Records what card event `event_id` (claimed by [`claim_event`]) did.
pub async fn finish_event(conn: &mut AnyConnection, event_id: &str, outcome: &CardOutcomes, wallet: Option<Address>) -> Result<(), StoreError> {
    sqlx::query("UPDATE card_events SET outcome = $1, wallet = $2 WHERE event_id = $3")
        .bind(outcome.to_string())
        .bind(wallet.map(address_bytes))
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A card subscription (`card_subscriptions`): the wallet, plan and processor-side state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSubscription {
    /// The member's wallet.
    pub wallet: Address,
    /// The plan it pays for.
    pub plan_id: u32,
    /// Whether the processor renews it.
    pub status: CardSubscriptionStatus,
}

/// Loads card subscription `id`.
pub async fn card_subscription(conn: &mut AnyConnection, id: &str) -> Result<Option<CardSubscription>, StoreError> {
    let row = sqlx::query("SELECT wallet, plan_id, status FROM card_subscriptions WHERE card_subscription_id = $1").bind(id).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(CardSubscription {
        wallet: to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "card_subscriptions.wallet")?,
        plan_id: row.try_get::<i64, _>("plan_id")? as u32,
        status: row.try_get::<String, _>("status")?.parse().map_err(|_| StoreError::Corrupt("card_subscriptions.status"))?,
    }))
}

/// Returns whether a card subscription of `wallet` still renews its plan (`active`): such a
/// plan is the processor's to cancel and resume. One the processor deleted renews nothing
/// (a deleted subscription cannot be resumed there), so the member's own cancel applies.
pub async fn has_card_subscription(conn: &mut AnyConnection, wallet: Address) -> Result<bool, StoreError> {
    let sql = "SELECT 1 FROM card_subscriptions WHERE wallet = $1 AND status = 'active'";
    Ok(sqlx::query(sql).bind(address_bytes(wallet)).fetch_optional(conn).await?.is_some())
}

/// A wallet's newest card subscription: its processor id and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCardSubscription {
    /// The processor's subscription id (`sub_…`).
    pub id: String,
    /// The processor's customer (`cus_…`), when an event named it.
    pub customer: Option<String>,
    /// The wallet, plan and status.
    pub subscription: CardSubscription,
}

/// Returns `wallet`'s newest card subscription (renewing ones first), if any.
pub async fn newest_card_subscription(conn: &mut AnyConnection, wallet: Address) -> Result<Option<WalletCardSubscription>, StoreError> {
    let row = sqlx::query(
        "SELECT card_subscription_id, customer, wallet, plan_id, status FROM card_subscriptions WHERE wallet = $1 \
         ORDER BY CASE WHEN status = $2 THEN 0 ELSE 1 END, updated_at DESC, card_subscription_id DESC LIMIT 1",
    )
    .bind(address_bytes(wallet))
    .bind(CardSubscriptionStatus::Active.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(WalletCardSubscription {
        id: row.try_get("card_subscription_id")?,
        customer: row.try_get("customer")?,
        subscription: CardSubscription {
            wallet: to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "card_subscriptions.wallet")?,
            plan_id: row.try_get::<i64, _>("plan_id")? as u32,
            status: row.try_get::<String, _>("status")?.parse().map_err(|_| StoreError::Corrupt("card_subscriptions.status"))?,
        },
    }))
}

/// Records that card subscription `id` pays `plan_id` for `wallet`, renewing (insert or
/// update).
pub async fn map_card_subscription(
    conn: &mut AnyConnection,
    id: &str,
    wallet: Address,
    plan_id: u32,
    customer: Option<&str>,
    now: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO card_subscriptions (card_subscription_id, wallet, plan_id, customer, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (card_subscription_id) DO UPDATE SET wallet = excluded.wallet, \
         plan_id = excluded.plan_id, customer = excluded.customer, status = excluded.status, updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(address_bytes(wallet))
    .bind(i64::from(plan_id))
    .bind(customer)
    .bind(CardSubscriptionStatus::Active.as_str())
    .bind(now as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets the plan and processor-side status of card subscription `id`.
pub async fn update_card_subscription(conn: &mut AnyConnection, id: &str, plan_id: u32, status: CardSubscriptionStatus, now: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE card_subscriptions SET plan_id = $1, status = $2, updated_at = $3 WHERE card_subscription_id = $4")
        .bind(i64::from(plan_id))
        .bind(status.as_str())
        .bind(now as i64)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves `from`'s card subscriptions to `to` (their renewals follow a member who moved).
pub async fn move_card_subscriptions(conn: &mut AnyConnection, from: Address, to: Address, now: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE card_subscriptions SET wallet = $1, updated_at = $2 WHERE wallet = $3")
        .bind(address_bytes(to))
        .bind(now as i64)
        .bind(address_bytes(from))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Returns whether `wallet` has had its card trial (a wallet gets one, ever).
pub async fn trial_used(conn: &mut AnyConnection, wallet: Address) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM card_trials WHERE wallet = $1").bind(address_bytes(wallet)).fetch_optional(&mut *conn).await?;
    Ok(row.is_some())
}

/// Records that `wallet` started its trial of `plan_id` with card event `card_event` at
/// `now` (a wallet that had one keeps its first record).
pub async fn record_trial(conn: &mut AnyConnection, wallet: Address, plan_id: u32, card_event: &str, now: u64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO card_trials (wallet, plan_id, card_event, started_at) VALUES ($1, $2, $3, $4) ON CONFLICT (wallet) DO NOTHING")
        .bind(address_bytes(wallet))
        .bind(i64::from(plan_id))
        .bind(card_event)
        .bind(now as i64)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Copies `from`'s trial record to `to` (a member moved to a new wallet keeps having had
/// the trial), inside the caller's transaction.
pub async fn carry_trial(conn: &mut AnyConnection, from: Address, to: Address) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO card_trials (wallet, plan_id, card_event, started_at) SELECT $1, plan_id, card_event, started_at \
         FROM card_trials WHERE wallet = $2 ON CONFLICT (wallet) DO NOTHING",
    )
    .bind(address_bytes(to))
    .bind(address_bytes(from))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_states_parse_back_and_serialize_as_stored() {
        for s in CardOutcome::ALL {
            assert_eq!(s.as_str().parse::<CardOutcome>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in CardSubscriptionStatus::ALL {
            assert_eq!(s.as_str().parse::<CardSubscriptionStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(CardOutcome::NotARenewal.as_str(), "not_a_renewal");
    }

    #[test]
    fn several_outcomes_are_stored_comma_separated_and_read_back() {
        let both = CardOutcomes::of_steps(vec![CardOutcome::DowngradeScheduled, CardOutcome::Canceled]);
        assert_eq!(both.to_string(), "downgrade_scheduled,canceled");
        assert_eq!("downgrade_scheduled,canceled".parse::<CardOutcomes>().unwrap(), both);
        assert_eq!(serde_json::to_value(&both).unwrap(), "downgrade_scheduled,canceled");
        assert_eq!(CardOutcomes::of_steps(Vec::new()).to_string(), "unchanged");
        assert_eq!("pending".parse::<CardOutcomes>().unwrap(), CardOutcome::Pending.into());
        assert!("renewed,paused".parse::<CardOutcomes>().is_err());
        assert!("".parse::<CardOutcomes>().is_err());
    }
}

/// The time one card payment bought (`card_grants`), and what refunds and disputes took
/// back of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardGrant {
    /// The processor event that granted it (the row's key).
    pub card_event: String,
    /// The member.
    pub wallet: Address,
    /// Cents collected.
    pub collected_cents: u64,
    /// Seconds bought.
    pub seconds: u64,
    /// Cents refunded so far.
    pub refunded_cents: u64,
    /// Seconds taken back for them.
    pub taken_seconds: u64,
    /// Cents in dispute (withdrawn) now.
    pub disputed_cents: u64,
    /// Seconds taken back for them.
    pub disputed_seconds: u64,
}

/// The processor objects a card payment is found by.
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentRefs<'a> {
    /// `pi_…`.
    pub payment_intent: Option<&'a str>,
    /// `in_…`.
    pub invoice: Option<&'a str>,
    /// `ch_…`.
    pub charge: Option<&'a str>,
}

/// Records the time a card payment bought (once per granting event). A payment that names
/// its invoice but no payment intent (a subscription's Checkout Session) takes the one that
/// invoice's `invoice.paid` named, if it came first ([`link_payment_intent`]).
pub async fn record_grant(
    conn: &mut AnyConnection,
    card_event: &str,
    wallet: Address,
    refs: PaymentRefs<'_>,
    collected_cents: u64,
    seconds: u64,
    now: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO card_grants (card_event, wallet, payment_intent, invoice, charge, collected_cents, seconds, created_at) \
         VALUES ($1, $2, COALESCE($3, (SELECT payment_intent FROM card_invoice_payments WHERE invoice = $4)), $4, $5, $6, $7, $8) \
         ON CONFLICT (card_event) DO NOTHING",
    )
    .bind(card_event)
    .bind(address_bytes(wallet))
    .bind(refs.payment_intent)
    .bind(refs.invoice)
    .bind(refs.charge)
    .bind(collected_cents as i64)
    .bind(seconds as i64)
    .bind(now as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Finds the grant of the card payment `refs` name: by payment intent, then invoice, then
/// charge.
pub async fn find_grant(conn: &mut AnyConnection, refs: PaymentRefs<'_>) -> Result<Option<CardGrant>, StoreError> {
    for (column, value) in [("payment_intent", refs.payment_intent), ("invoice", refs.invoice), ("charge", refs.charge)] {
        let Some(value) = value else { continue };
        let row = sqlx::query(&format!(
            "SELECT card_event, wallet, collected_cents, seconds, refunded_cents, taken_seconds, disputed_cents, disputed_seconds \
             FROM card_grants WHERE {column} = $1 ORDER BY created_at LIMIT 1"
        ))
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(r) = row {
            let n = |c: &str| -> Result<u64, StoreError> { Ok(r.try_get::<i64, _>(c)? as u64) };
            return Ok(Some(CardGrant {
                card_event: r.try_get("card_event")?,
                wallet: to_address(&r.try_get::<Vec<u8>, _>("wallet")?, "card_grants.wallet")?,
                collected_cents: n("collected_cents")?,
                seconds: n("seconds")?,
                refunded_cents: n("refunded_cents")?,
                taken_seconds: n("taken_seconds")?,
                disputed_cents: n("disputed_cents")?,
                disputed_seconds: n("disputed_seconds")?,
            }));
        }
    }
    Ok(None)
}

/// Writes what refunds and disputes have taken of `grant` so far.
pub async fn update_grant(conn: &mut AnyConnection, grant: &CardGrant) -> Result<(), StoreError> {
    sqlx::query("UPDATE card_grants SET refunded_cents = $1, taken_seconds = $2, disputed_cents = $3, disputed_seconds = $4 WHERE card_event = $5")
        .bind(grant.refunded_cents as i64)
        .bind(grant.taken_seconds as i64)
        .bind(grant.disputed_cents as i64)
        .bind(grant.disputed_seconds as i64)
        .bind(&grant.card_event)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Names the payment intent of the grant paid by `invoice` (the first invoice of a card
/// subscription names it; the Checkout Session that granted did not), and keeps it in
/// `card_invoice_payments` for a session that comes after the invoice.
pub async fn link_payment_intent(conn: &mut AnyConnection, invoice: &str, payment_intent: &str, now: u64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO card_invoice_payments (invoice, payment_intent, created_at) VALUES ($1, $2, $3) ON CONFLICT (invoice) DO NOTHING")
        .bind(invoice)
        .bind(payment_intent)
        .bind(now as i64)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE card_grants SET payment_intent = $1 WHERE invoice = $2 AND payment_intent IS NULL")
        .bind(payment_intent)
        .bind(invoice)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
