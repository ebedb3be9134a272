//! The terms of a renewal mandate: what the account page proposes for the member to sign
//! (every field computed here, the page computes nothing), and the check of what comes back
//! signed. The chain checks the signature itself: the mandate is registered by simulating
//! the contract's `registerMandate` (ECDSA, or ERC-1271 for a contract wallet).

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::DynProvider,
    sol_types::SolStruct,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    billing::{
        activation::Subscription,
        plans::{Catalog, Plan},
    },
    chain::{
        bindings::{IRenewalMandates::RenewalMandate, SubscriptionCheckout},
        deployment::TokenInfo,
        signing::quote_domain,
    },
    config::RenewalSettings,
    money::TokenAmount,
    store::mandates::{MandateStatus, StoredMandate},
};

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// Why a mandate was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum MandateError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// The subscription is not in a state a mandate can renew, or the terms no longer fit it
    /// (409).
    #[error("{0}")]
    Conflict(String),
    /// The chain could not be read (503).
    #[error("the chain cannot be read right now: {0}")]
    Chain(String),
}

/// The cap a proposal offers: today's price plus the configured headroom, rounded up to a
/// whole token (a dollar-priced plan's token amount moves with the market).
pub fn proposed_cap(price: TokenAmount, token: &TokenInfo, headroom_percent: u32) -> U256 {
    let with_room = (price.units() * U256::from(100 + headroom_percent)).div_ceil(U256::from(100));
    let whole = U256::from(10).pow(U256::from(token.decimals));
    with_room.div_ceil(whole) * whole
}

/// The mandate the member is asked to sign for `sub`'s next renewals of `plan` in `token`:
/// period 0 begins at the end of the current period, one charge per period of the plan, at
/// most `max_charges`, each at most `max_amount`, valid until the last period's start.
pub fn propose(
    sub: &Subscription,
    plan: &Plan,
    token: &TokenInfo,
    max_amount: U256,
    max_charges: u32,
    settings: &RenewalSettings,
    salt: U256,
) -> RenewalMandate {
    let period = plan.period.seconds();
    RenewalMandate {
        payer: sub.wallet,
        token: token.address,
        maxAmount: max_amount,
        period: period as u32,
        maxCharges: max_charges,
        start: sub.expires_at,
        validUntil: sub.expires_at + u64::from(max_charges.saturating_sub(1)) * period + (period - 1),
        earlyWindow: (u64::from(settings.early_window_days) * DAY) as u32,
        planId: plan.id,
        salt,
    }
}

/// The EIP-712 typed data of `mandate` for `eth_signTypedData_v4` (viem's `signTypedData`):
/// integers as decimal strings.
pub fn typed_data(mandate: &RenewalMandate, chain_id: u64, checkout: Address) -> Value {
    json!({
        "domain": { "name": "TMAI Checkout", "version": "1", "chainId": chain_id, "verifyingContract": checkout.to_string() },
        "primaryType": "RenewalMandate",
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" }, { "name": "version", "type": "string" },
                { "name": "chainId", "type": "uint256" }, { "name": "verifyingContract", "type": "address" }
            ],
            "RenewalMandate": [
                { "name": "payer", "type": "address" }, { "name": "token", "type": "address" },
                { "name": "maxAmount", "type": "uint256" }, { "name": "period", "type": "uint32" },
                { "name": "maxCharges", "type": "uint32" }, { "name": "start", "type": "uint64" },
                { "name": "validUntil", "type": "uint64" }, { "name": "earlyWindow", "type": "uint32" },
                { "name": "planId", "type": "uint32" }, { "name": "salt", "type": "uint256" }
            ]
        },
        "message": message(mandate),
    })
}

/// The mandate's fields as the typed data's `message` (and `POST /v1/me/mandate`'s body).
pub fn message(m: &RenewalMandate) -> Value {
    json!({
        "payer": m.payer.to_string(), "token": m.token.to_string(), "maxAmount": m.maxAmount.to_string(),
        "period": m.period, "maxCharges": m.maxCharges, "start": m.start.to_string(), "validUntil": m.validUntil.to_string(),
        "earlyWindow": m.earlyWindow, "planId": m.planId, "salt": m.salt.to_string(),
    })
}

/// The mandate's id: its EIP-712 digest under the checkout's domain (what the contract's
/// `mandateDigest` returns).
pub fn mandate_id(m: &RenewalMandate, chain_id: u64, checkout: Address) -> B256 {
    m.eip712_signing_hash(&quote_domain(chain_id, checkout))
}

/// A mandate as signed, kept with its signature.
pub fn stored(m: &RenewalMandate, id: B256, signature: &[u8], now: u64) -> StoredMandate {
    StoredMandate {
        mandate_id: id,
        wallet: m.payer,
        token: m.token,
        max_amount: m.maxAmount,
        period: m.period,
        max_charges: m.maxCharges,
        start: m.start,
        valid_until: m.validUntil,
        early_window: m.earlyWindow,
        plan_id: m.planId,
        salt: m.salt,
        signature: signature.to_vec(),
        status: MandateStatus::Active,
        ended_reason: None,
        created_at: now,
    }
}

/// Rebuilds the signed struct from a stored mandate.
pub fn signed(m: &StoredMandate) -> RenewalMandate {
    RenewalMandate {
        payer: m.wallet,
        token: m.token,
        maxAmount: m.max_amount,
        period: m.period,
        maxCharges: m.max_charges,
        start: m.start,
        validUntil: m.valid_until,
        earlyWindow: m.early_window,
        planId: m.plan_id,
        salt: m.salt,
    }
}

/// What a member signs for: checks `m` against the subscription it is to renew and the
/// service's terms. The signature is the chain's to check ([`check_on_chain`]).
pub fn check_terms(m: &RenewalMandate, sub: &Subscription, plan: &Plan, price: TokenAmount, settings: &RenewalSettings, now: u64) -> Result<(), MandateError> {
    let conflict = |text: String| Err(MandateError::Conflict(text));
    if m.payer != sub.wallet {
        return Err(MandateError::Invalid(format!("the mandate's payer {} is not the signed-in wallet {}", m.payer, sub.wallet)));
    }
    if sub.expires_at <= now {
        return conflict("the plan has ended: buy it again, then turn on automatic renewal".into());
    }
    if m.planId != plan.id {
        return conflict(format!("the mandate renews plan {}, but the next renewal is plan {}: ask for a new proposal", m.planId, plan.id));
    }
    if u64::from(m.period) != plan.period.seconds() || m.start != sub.expires_at {
        return conflict("the plan's period changed since the proposal (a payment moved its end): ask for a new proposal and sign again".into());
    }
    if u64::from(m.earlyWindow) != u64::from(settings.early_window_days) * DAY {
        return Err(MandateError::Invalid(format!("earlyWindow must be {} (renewals.early_window_days)", u64::from(settings.early_window_days) * DAY)));
    }
    if !(1..=120).contains(&m.maxCharges) {
        return Err(MandateError::Invalid("maxCharges must be between 1 and 120".into()));
    }
    let last_start = m.start + u64::from(m.maxCharges - 1) * u64::from(m.period);
    if m.validUntil < last_start || m.validUntil >= last_start + u64::from(m.period) {
        return Err(MandateError::Invalid("validUntil must fall within the last charged period".into()));
    }
    if m.maxAmount < price.units() {
        return conflict(format!("the cap {} is below today's price {}: sign a higher cap", m.maxAmount, price.units()));
    }
    Ok(())
}

/// Asks the chain whether `m` with `signature` would register: the payer's signature
/// (ECDSA or ERC-1271), not revoked, not registered, still valid. `Ok(Err(text))` is the
/// contract's refusal in words.
pub async fn check_on_chain(provider: &DynProvider, checkout: Address, m: &RenewalMandate, signature: &Bytes) -> Result<Result<(), String>, MandateError> {
    let contract = SubscriptionCheckout::new(checkout, provider);
    match contract.registerMandate(m.clone(), signature.clone()).from(m.payer).call().await {
        Ok(_) => Ok(Ok(())),
        Err(error) => match error.as_decoded_interface_error::<SubscriptionCheckout::SubscriptionCheckoutErrors>() {
            Some(SubscriptionCheckout::SubscriptionCheckoutErrors::SubscriptionCheckout__MandateAlreadyRegistered(_)) => Ok(Ok(())),
            Some(refusal) => Ok(Err(refusal_text(&refusal))),
            None if error.as_revert_data().is_some() => Ok(Err("the signature is not the payer's".into())),
            None => Err(MandateError::Chain(error.to_string())),
        },
    }
}

/// A contract refusal in words.
pub fn refusal_text(error: &SubscriptionCheckout::SubscriptionCheckoutErrors) -> String {
    use SubscriptionCheckout::SubscriptionCheckoutErrors as E;
    match error {
        E::SubscriptionCheckout__MandateRevoked(_) => "the mandate was revoked".into(),
        E::SubscriptionCheckout__MandateExpired(_) => "the mandate's validUntil has passed".into(),
        E::SubscriptionCheckout__InvalidMandate(_) => "the mandate's fields are out of range".into(),
        E::SubscriptionCheckout__InvalidSignature(_) | E::SubscriptionCheckout__WrongPayer(_) => "the signature is not the payer's".into(),
        other => format!("the checkout refused it ({other:?})"),
    }
}

/// A proposal as the API answers it.
#[derive(Debug, Serialize)]
pub struct Proposal {
    /// The typed data to sign.
    pub typed_data: Value,
    /// The allowance to approve: the cap times the charges, never unlimited.
    pub approve_amount: U256,
}

/// The catalog's plan and token of a stored mandate.
pub fn parts<'a>(catalog: &'a Catalog, m: &StoredMandate) -> Option<(&'a Plan, &'a TokenInfo)> {
    Some((catalog.get(m.plan_id)?, catalog.token_at(m.token)?))
}
