//! Automatic renewal: the renewer charges members' signed renewal mandates
//! (`SubscriptionCheckout.charge`) a configured number of days before their period ends, at
//! the plan's current price in the token (the dollar price at the guarded rate), never above
//! the signed cap. The charge emits the checkout's own `OrderPaid` for an order the renewer
//! stored first, so the watcher confirms it and activates the renewal like any payment
//! (receipt included).
//!
//! Before each charge the renewer checks, in this order, what would make it fail and says
//! why in `subscription.renewal_failed` (reason, fix, next attempt): the mandate revoked on
//! the chain, past `validUntil`, its charges used up, no rate, the price above the cap, the
//! balance, the allowance; then it simulates the call. A reason the member must fix by
//! signing again (revoked, expired, exhausted, above the cap) ends the mandate; the others
//! are tried again every `renewals.retry_hours` (a missing rate after
//! `renewals.rate_retry_secs`) until the period has ended.
//!
//! Exactly once: the chain decides. The contract charges a mandate at most once per period
//! and an order at most once; the renewer reads the mandate's state on the chain before
//! every attempt, so a crash between sending and recording, a second instance, or a charge
//! a reorg dropped leads at worst to a second transaction the contract refuses, never to a
//! second charge, and a dropped charge is sent again.

mod ending;
pub mod mandate;

pub use ending::{end_outdated, mandate_change, turn_off};

use std::{sync::Arc, time::Duration};

use alloy::{
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use tokio_util::sync::CancellationToken;

use super::{
    activation,
    plans::Catalog,
    quotes::{QuoteIssuer, QuoteRequest},
};
use crate::{
    chain::bindings::{SubscriptionCheckout, TestToken},
    clock::Clock,
    config::RenewalSettings,
    events::{
        ChangeSource, EventType, MandateRenewalFailed, RenewalFailure, RenewalNotice, SubscriptionRenewalAtRisk, SubscriptionRenewalFailed,
        SubscriptionRenewalUpcoming,
    },
    states::SubscriptionStatus,
    store::{
        Db, StoreError, customers,
        mandates::{self, ChargeRecord, MandateStatus, StoredMandate},
        outbox,
    },
};

/// Mandates looked at per tick.
const BATCH: u32 = 200;

/// Why a tick failed (it is tried again on the next).
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The chain could not be read or written.
    #[error("chain: {0}")]
    Chain(String),
}

/// What one mandate's turn did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A charge was sent.
    Sent(B256),
    /// The chain shows the period charged (the watcher activates it).
    Charged,
    /// It failed, or would: the reason (recorded, and told in an event).
    Failed(RenewalFailure),
    /// Nothing to do yet (an attempt is pending or scheduled later, or the window is not open).
    Waiting,
    /// The pre-flight told the member of the coming charge.
    Told,
    /// The pre-flight found the coming charge would fail: the reason (told with its fix).
    AtRisk(RenewalFailure),
}

/// What a look at a mandate's period found, before anything is sent.
#[derive(Debug)]
enum Assessment {
    /// The chain shows the period charged.
    Charged,
    /// The charge would fail.
    Fails { reason: RenewalFailure, amount: Option<U256>, usd: Option<crate::money::Usd> },
    /// Ready at today's price.
    Ready { plan: u32, token: Address, price: U256, usd: Option<crate::money::Usd> },
}

/// What a tick did, by mandate.
#[derive(Debug, Default)]
pub struct TickReport {
    /// Each due mandate's outcome.
    pub outcomes: Vec<(B256, Outcome)>,
}

/// The renewer: one per service (leader-elected), with its own key.
#[derive(Debug, Clone)]
pub struct Renewer {
    db: Db,
    provider: DynProvider,
    wallet: EthereumWallet,
    renewer: Address,
    chain_id: u64,
    checkout: Address,
    catalog: Arc<Catalog>,
    quotes: QuoteIssuer,
    settings: RenewalSettings,
    clock: Clock,
}

impl Renewer {
    /// Returns a renewer charging through `checkout` with `wallet` (the checkout's renewer),
    /// pricing and storing orders with `quotes`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        provider: DynProvider,
        wallet: EthereumWallet,
        chain_id: u64,
        checkout: Address,
        catalog: Arc<Catalog>,
        quotes: QuoteIssuer,
        settings: RenewalSettings,
        clock: Clock,
    ) -> Self {
        let renewer = wallet.default_signer().address();
        Self { db, provider, wallet, renewer, chain_id, checkout, catalog, quotes, settings, clock }
    }

    /// Returns the renewer's address.
    pub fn address(&self) -> Address {
        self.renewer
    }

    /// Looks for due charges every `renewals.interval_secs` until `cancel` fires; a failed
    /// tick is logged and tried again.
    pub async fn run(&self, cancel: CancellationToken) {
        let interval = Duration::from_secs(self.settings.interval_secs);
        loop {
            match self.tick().await {
                Ok(report) => {
                    for (id, outcome) in report.outcomes.iter().filter(|(_, o)| *o != Outcome::Waiting) {
                        tracing::info!(mandate = %id, ?outcome, "renewal");
                    }
                }
                Err(error) => tracing::warn!(%error, "renewal tick failed; trying again"),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One look at the mandates whose period ends within `renewals.charge_days_before`, or
    /// ended less than `renewals.grace_days` ago (a failed charge is still tried).
    pub async fn tick(&self) -> Result<TickReport, RenewError> {
        let now = self.clock.now();
        let lead = u64::from(self.settings.charge_days_before) * mandate::DAY;
        let mut report = TickReport::default();
        let grace = u64::from(self.settings.grace_days) * mandate::DAY;
        let notice = u64::from(self.settings.notice_days_before_charge) * mandate::DAY;
        // A mandate for a plan the member no longer renews is never charged: end it first.
        end_outdated(&self.db, BATCH, now).await?;
        let window = mandates::DueWindow {
            since: now.saturating_sub(grace),
            until: now + lead + notice,
            charge_from: now + lead,
            now,
            sent_after: now.saturating_sub(self.settings.resend_after_secs),
        };
        for (m, expires_at) in mandates::due(&self.db, window, BATCH).await? {
            let outcome = if expires_at <= now + lead { self.renew(&m, expires_at, now).await? } else { self.preflight(&m, expires_at, now).await? };
            report.outcomes.push((m.mandate_id, outcome));
        }
        Ok(report)
    }

    /// One mandate's turn for the period that begins at `expires_at`.
    async fn renew(&self, m: &StoredMandate, expires_at: u64, now: u64) -> Result<Outcome, RenewError> {
        let index = expires_at.saturating_sub(m.start) / u64::from(m.period);
        let record = mandates::charge_of(&self.db, m.mandate_id, index).await?.unwrap_or_default();
        if record.next_attempt_at > now {
            return Ok(Outcome::Waiting);
        }
        // A charge sent (or seen on the chain) lately is given time to land and be confirmed.
        // Seen charged is not final: a reorg deeper than the confirmations can take it back
        // (the watcher then takes back the renewal and the period is due again), so the chain
        // is asked again after the resend delay, as long as the period is still due.
        if record.sent_at.is_some_and(|sent| sent + self.settings.resend_after_secs > now) {
            return Ok(Outcome::Waiting);
        }
        let (plan, token) = match self.assess(m, index).await? {
            Assessment::Charged => {
                let mut tx = self.db.begin_write().await?;
                mandates::put_charge(&mut tx, m.mandate_id, index, &ChargeRecord { charged: true, sent_at: Some(now), ..record }, now).await?;
                tx.commit().await?;
                return Ok(Outcome::Charged);
            }
            Assessment::Fails { reason, amount, .. } => return self.fail(m, index, record, reason, amount, now).await,
            Assessment::Ready { plan, token, .. } => (plan, token),
        };
        let Some(plan) = self.catalog.get(plan) else { return self.fail(m, index, record, RenewalFailure::ChargeRefused, None, now).await };
        let Some(token) = self.catalog.token_at(token) else { return self.fail(m, index, record, RenewalFailure::ChargeRefused, None, now).await };

        // The order the charge pays: priced now, stored before anything is sent.
        let customer = customers::of_wallet_in(&self.db, m.wallet).await?;
        let request = QuoteRequest { plan_id: plan.id, token: token.symbol.clone(), payer: m.wallet, periods: 1 };
        let issued = match self.quotes.issue_for(&self.db, &self.catalog, &request, customer, now).await {
            Ok(issued) => issued,
            Err(_) => return self.fail(m, index, record, RenewalFailure::RateUnavailable, None, now).await,
        };
        if issued.amount > m.max_amount {
            return self.fail(m, index, record, RenewalFailure::PriceAboveCap, Some(issued.amount), now).await;
        }
        let call = SubscriptionCheckout::chargeCall {
            mandate: mandate::signed(m),
            signature: m.signature.clone().into(),
            orderId: issued.order_id.as_u256(),
            amount: issued.amount,
        };
        let request = TransactionRequest::default().with_from(self.renewer).with_to(self.checkout).with_input(call.abi_encode());
        // The simulation: what the chain would answer now.
        let gas = match self.provider.estimate_gas(request.clone()).await {
            Ok(gas) => gas,
            Err(error) => {
                let decoded = error.as_error_resp().and_then(|e| e.as_decoded_interface_error::<SubscriptionCheckout::SubscriptionCheckoutErrors>());
                return match decoded {
                    Some(SubscriptionCheckout::SubscriptionCheckoutErrors::SubscriptionCheckout__ChargeTooEarly(_)) => Ok(Outcome::Waiting),
                    Some(refusal) => {
                        tracing::warn!(mandate = %m.mandate_id, refusal = %mandate::refusal_text(&refusal), "the charge would be refused");
                        self.fail(m, index, record, reason_of(&refusal), Some(issued.amount), now).await
                    }
                    None if error.as_error_resp().is_some() => {
                        tracing::warn!(mandate = %m.mandate_id, %error, "the charge would revert");
                        self.fail(m, index, record, RenewalFailure::ChargeRefused, Some(issued.amount), now).await
                    }
                    None => Err(RenewError::Chain(error.to_string())),
                };
            }
        };
        let tx_hash = self.send(request, gas).await?;
        let record = ChargeRecord {
            order_key: issued.order_id.db_key(),
            tx_hash: Some(tx_hash),
            sent_at: Some(now),
            attempts: record.attempts + 1,
            last_reason: None,
            next_attempt_at: now,
            charged: false,
            preflight_at: record.preflight_at,
        };
        let mut tx = self.db.begin_write().await?;
        mandates::put_charge(&mut tx, m.mandate_id, index, &record, now).await?;
        tx.commit().await?;
        Ok(Outcome::Sent(tx_hash))
    }

    /// What the chain and the price say of `m`'s period `index` now, without sending: charged
    /// already, would fail (why), or ready at today's price.
    async fn assess(&self, m: &StoredMandate, index: u64) -> Result<Assessment, RenewError> {
        let chain = |e: alloy::contract::Error| RenewError::Chain(e.to_string());
        let checkout = SubscriptionCheckout::new(self.checkout, &self.provider);
        let state = checkout.mandateState(m.mandate_id).call().await.map_err(chain)?;
        if state.nextPeriod > index {
            return Ok(Assessment::Charged);
        }
        let now = self.clock.now();
        let fails = |reason, amount: Option<U256>, usd| Ok(Assessment::Fails { reason, amount, usd });
        if state.revoked {
            return fails(RenewalFailure::MandateRevoked, None, None);
        }
        if now > m.valid_until {
            return fails(RenewalFailure::MandateExpired, None, None);
        }
        if state.charges >= m.max_charges {
            return fails(RenewalFailure::ChargesExhausted, None, None);
        }
        let Some((plan, token)) = mandate::parts(&self.catalog, m) else { return fails(RenewalFailure::ChargeRefused, None, None) };
        let (price, usd) = match self.quotes.price(plan, token, 1) {
            Ok((price, pricing)) => (price.units(), Some(pricing.map_or_else(|| self.catalog.token_payment_worth(plan, 1, token.address), |p| p.usd_value))),
            Err(_) => return fails(RenewalFailure::RateUnavailable, None, None),
        };
        if price > m.max_amount {
            return fails(RenewalFailure::PriceAboveCap, Some(price), usd);
        }
        let erc20 = TestToken::new(m.token, &self.provider);
        if erc20.balanceOf(m.wallet).call().await.map_err(chain)? < price {
            return fails(RenewalFailure::InsufficientBalance, Some(price), usd);
        }
        if erc20.allowance(m.wallet, self.checkout).call().await.map_err(chain)? < price {
            return fails(RenewalFailure::InsufficientAllowance, Some(price), usd);
        }
        Ok(Assessment::Ready { plan: plan.id, token: token.address, price, usd })
    }

    /// The pre-flight, once per period, `renewals.notice_days_before_charge` before the
    /// charge: the member is told its date and amount (`subscription.renewal_upcoming`), and
    /// when it would fail today why and how to fix it (`subscription.renewal_at_risk`).
    async fn preflight(&self, m: &StoredMandate, expires_at: u64, now: u64) -> Result<Outcome, RenewError> {
        let index = expires_at.saturating_sub(m.start) / u64::from(m.period);
        let record = mandates::charge_of(&self.db, m.mandate_id, index).await?.unwrap_or_default();
        if record.preflight_at.is_some() || record.charged {
            return Ok(Outcome::Waiting);
        }
        let (amount, usd, reason) = match self.assess(m, index).await? {
            Assessment::Charged => return Ok(Outcome::Waiting),
            Assessment::Fails { reason, amount, usd } => (amount, usd, Some(reason)),
            Assessment::Ready { price, usd, .. } => (Some(price), usd, None),
        };
        let charge_at = expires_at.saturating_sub(u64::from(self.settings.charge_days_before) * mandate::DAY);
        let mut tx = self.db.begin_write().await?;
        let Some(sub) = activation::load(&mut tx, m.wallet).await? else { return Ok(Outcome::Waiting) };
        let notice = RenewalNotice {
            amount: amount.map(|a| a.to_string()),
            charge_at,
            expires_at: sub.expires_at,
            fix: reason.map(|r| r.fix().to_string()),
            mandate_id: m.mandate_id.to_string(),
            max_amount: m.max_amount.to_string(),
            plan_id: m.plan_id,
            reason,
            source: ChangeSource::Mandate,
            status: sub.status,
            tier: sub.tier,
            token: m.token,
            usd_value: usd.map(|u| u.to_string()),
            wallet: m.wallet,
        };
        let key = [m.mandate_id.to_string(), index.to_string()];
        let id = outbox::event_id(&[EventType::SubscriptionRenewalUpcoming.as_str(), &key[0], &key[1]]);
        outbox::write_for_member(&mut tx, &id, SubscriptionRenewalUpcoming(notice.clone()), m.wallet, now as i64).await?;
        if reason.is_some() {
            let id = outbox::event_id(&[EventType::SubscriptionRenewalAtRisk.as_str(), &key[0], &key[1]]);
            outbox::write_for_member(&mut tx, &id, SubscriptionRenewalAtRisk(notice), m.wallet, now as i64).await?;
        }
        mandates::put_charge(&mut tx, m.mandate_id, index, &ChargeRecord { preflight_at: Some(now), ..record }, now).await?;
        tx.commit().await?;
        Ok(match reason {
            Some(reason) => Outcome::AtRisk(reason),
            None => Outcome::Told,
        })
    }

    /// Signs and sends `request` at the pending nonce; returns its hash.
    async fn send(&self, request: TransactionRequest, gas: u64) -> Result<B256, RenewError> {
        let chain = |e: &dyn std::fmt::Display| RenewError::Chain(e.to_string());
        let nonce = self.provider.get_transaction_count(self.renewer).pending().await.map_err(|e| chain(&e))?;
        let fees = self.provider.estimate_eip1559_fees().await.map_err(|e| chain(&e))?;
        let envelope = request
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            .with_gas_limit(gas + gas / 5)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
            .build(&self.wallet)
            .await
            .map_err(|e| chain(&e))?;
        let hash = *envelope.tx_hash();
        let raw = alloy::eips::eip2718::Encodable2718::encoded_2718(&envelope);
        // Not awaited further: the chain's mandate state tells the next tick what happened.
        let _pending = self.provider.send_raw_transaction(&raw).await.map_err(|e| chain(&e))?;
        Ok(hash)
    }

    /// Records a failed (or refused in advance) attempt and tells it: the next attempt, or
    /// for a reason only the member can fix the mandate's end; `subscription.renewal_failed`.
    async fn fail(
        &self,
        m: &StoredMandate,
        index: u64,
        record: ChargeRecord,
        reason: RenewalFailure,
        amount: Option<U256>,
        now: u64,
    ) -> Result<Outcome, RenewError> {
        let attempts = record.attempts + 1;
        let delay = if reason == RenewalFailure::RateUnavailable { self.settings.rate_retry_secs } else { self.settings.retry_hours * 3_600 };
        let next = reason.retryable().then(|| now + delay);
        let mut tx = self.db.begin_write().await?;
        let mut sub = activation::load(&mut tx, m.wallet).await?;
        // The renewal of the current period failed: `past_due`. Access still ends at the paid
        // expiry (nobody paid for more); with retries left the renewer keeps trying for
        // `renewals.grace_days` after it (the reminder pass expires it then, reason
        // `renewal_failed`), and a charge that lands starts a full period from its
        // confirmation.
        if let Some(sub) = sub.as_mut()
            && sub.status == SubscriptionStatus::Active
            && sub.expires_at.saturating_sub(m.start) / u64::from(m.period) == index
        {
            sub.status = SubscriptionStatus::PastDue;
            activation::save(&mut tx, sub, now).await?;
        }
        let record = ChargeRecord { attempts, last_reason: Some(reason.as_str().into()), next_attempt_at: next.unwrap_or(u64::MAX >> 1), ..record };
        mandates::put_charge(&mut tx, m.mandate_id, index, &record, now).await?;
        if next.is_none() {
            mandates::set_status(&mut tx, m.mandate_id, MandateStatus::Ended, Some(reason.as_str()), now).await?;
        }
        if let Some(sub) = sub {
            let data = SubscriptionRenewalFailed::Mandate(MandateRenewalFailed {
                amount: amount.map(|a| a.to_string()),
                attempt_count: attempts,
                expires_at: sub.expires_at,
                fix: reason.fix().into(),
                mandate_id: m.mandate_id.to_string(),
                next_attempt_at: next,
                plan_id: sub.plan_id,
                reason,
                source: ChangeSource::Mandate,
                status: sub.status,
                tier: sub.tier,
                token: m.token,
                wallet: m.wallet,
            });
            let id = outbox::event_id(&[EventType::SubscriptionRenewalFailed.as_str(), &m.mandate_id.to_string(), &index.to_string(), &attempts.to_string()]);
            outbox::write_for_member(&mut tx, &id, data, m.wallet, now as i64).await?;
        }
        tx.commit().await?;
        tracing::warn!(mandate = %m.mandate_id, wallet = %m.wallet, reason = reason.as_str(), ?next, "automatic renewal failed");
        Ok(Outcome::Failed(reason))
    }
}

/// The renewal failure a contract refusal means.
fn reason_of(error: &SubscriptionCheckout::SubscriptionCheckoutErrors) -> RenewalFailure {
    use SubscriptionCheckout::SubscriptionCheckoutErrors as E;
    match error {
        E::SubscriptionCheckout__MandateRevoked(_) => RenewalFailure::MandateRevoked,
        E::SubscriptionCheckout__MandateExpired(_) => RenewalFailure::MandateExpired,
        E::SubscriptionCheckout__MandateExhausted(_) => RenewalFailure::ChargesExhausted,
        E::SubscriptionCheckout__ChargeAboveCap(_) => RenewalFailure::PriceAboveCap,
        _ => RenewalFailure::ChargeRefused,
    }
}
