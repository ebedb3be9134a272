//! The minter's values: what a job asks for, the jobs and batches as stored, what
//! reconciling a job decided, how a broadcast went, and the calls and events they make.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::SolCall,
};

use super::super::bindings::{IMembershipBadge::Membership, MembershipBadge};
use crate::{
    events::EventType,
    ids::{CheckoutId, OrderId},
    store::{
        StoreError,
        badge_jobs::Cause,
        outbox::{self, NewEvent},
        to_address, to_b256, to_u256,
    },
};

/// What a job asks for.
pub(super) use crate::states::BadgeAction as Call;

/// What the minter knows about each call.
pub(super) trait CallCosts {
    /// Gas one job adds to a batch of this call (measured with `scripts/bench-gas`, with a
    /// margin); bounds batches by gas before they are simulated.
    fn gas_per_job(self) -> u64;
    /// Returns the outbox event a confirmed job of this call writes.
    fn event(self) -> EventType;
}

impl CallCosts for Call {
    fn gas_per_job(self) -> u64 {
        match self {
            Self::Issue => 32_000,
            Self::Update => 16_000,
            Self::Revoke => 16_000,
            Self::Move => 90_000,
        }
    }

    fn event(self) -> EventType {
        match self {
            Self::Issue => EventType::BadgeMinted,
            Self::Update | Self::Move => EventType::BadgeUpdated,
            Self::Revoke => EventType::BadgeRevoked,
        }
    }
}

/// One badge job.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) id: i64,
    pub(super) wallet: Address,
    pub(super) action: Call,
    pub(super) tier: u8,
    pub(super) expires_at: u64,
    pub(super) new_wallet: Option<Address>,
    /// The payment that caused the job, for its event.
    pub(super) cause: Option<Cause>,
}

/// The `badge_jobs` columns [`job_of`] reads.
pub(super) const JOB_COLUMNS: &str = "id, wallet, action, tier, expires_at, new_wallet, cause_order_id, cause_checkout_id, cause_tx_hash";

/// One open batch.
#[derive(Debug, Clone)]
pub(super) struct Batch {
    pub(super) id: i64,
    pub(super) nonce: u64,
    pub(super) call: String,
    pub(super) input: Bytes,
    pub(super) gas_limit: u64,
    pub(super) status: String,
    pub(super) bumps: u32,
    pub(super) max_fee: u128,
    pub(super) priority_fee: u128,
    pub(super) tx_hash: B256,
    pub(super) raw: Vec<u8>,
    pub(super) sent_at: Option<i64>,
    pub(super) mined_block: Option<u64>,
}

/// A batch call simulated and ready to be priced and signed.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) call: Call,
    pub(super) jobs: Vec<Job>,
    pub(super) input: Bytes,
    pub(super) gas_limit: u64,
}

/// A transaction's fees (wei).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fees {
    pub(super) max_fee: u128,
    pub(super) priority: u128,
}

/// A planned batch signed for its nonce, written before it is broadcast.
#[derive(Debug, Clone)]
pub(super) struct Signed {
    pub(super) nonce: u64,
    pub(super) planned: Planned,
    pub(super) fees: Fees,
    pub(super) hash: B256,
    pub(super) raw: Vec<u8>,
}

/// What reconciling a job with the badge contract decided.
#[derive(Debug)]
pub(super) enum Decision {
    /// Send this call.
    Send(Call),
    /// The chain already shows the job's effect, deep enough: confirm without a transaction.
    Done { token_id: U256 },
    /// The chain shows the effect only in recent blocks: look again next tick.
    Wait,
    /// The job can never succeed as it stands.
    Reject(String),
}

/// How the node answered a broadcast.
#[derive(Debug)]
pub(super) enum Broadcast {
    Accepted,
    /// The nonce is used (by us or someone else); the next tick's tracking resolves it.
    NonceUsed,
    /// The node refused the transaction itself (funds, fee, gas limit…).
    Refused(String),
}

/// Returns the badge contract call for `jobs` (one job for a move).
pub(super) fn encode(call: Call, jobs: &[Job]) -> Bytes {
    let memberships = || -> Vec<Membership> { jobs.iter().map(|j| Membership { wallet: j.wallet, tier: j.tier, expiresAt: j.expires_at }).collect() };
    match call {
        Call::Issue => MembershipBadge::issueCall { memberships: memberships() }.abi_encode().into(),
        Call::Update => MembershipBadge::updateCall { memberships: memberships() }.abi_encode().into(),
        Call::Revoke => MembershipBadge::revokeCall { wallets: jobs.iter().map(|j| j.wallet).collect() }.abi_encode().into(),
        Call::Move => {
            let job = &jobs[0];
            MembershipBadge::moveCall { from: job.wallet, to: job.new_wallet.unwrap_or_default() }.abi_encode().into()
        }
    }
}

/// Returns the `badge.*` event of a confirmed job (`tx_hash` None: the chain already
/// showed its effect).
pub(super) fn badge_event(job: &Job, call: Call, token_id: U256, tx_hash: Option<B256>, block: Option<u64>) -> NewEvent {
    let event_type = call.event();
    let mut data = serde_json::json!({
        "job_id": job.id,
        "wallet": job.wallet,
        "token_id": token_id.to_string(),
        "tx_hash": tx_hash,
        "block_number": block,
    });
    if matches!(job.action, Call::Issue | Call::Update) {
        data["tier"] = job.tier.into();
        data["expires_at"] = job.expires_at.into();
    }
    if job.action == Call::Move {
        data["change"] = "moved".into();
        data["to"] = serde_json::json!(job.new_wallet);
    }
    if tx_hash.is_none() {
        data["already_on_chain"] = true.into();
    }
    if let Some(cause) = &job.cause {
        data["order_id"] = serde_json::json!(cause.order_id);
        data["checkout_id"] = serde_json::json!(cause.checkout_id);
        data["payment_tx_hash"] = serde_json::json!(cause.tx_hash);
    }
    NewEvent::new(outbox::event_id(&[event_type.as_str(), &job.id.to_string()]), event_type, &data)
}

/// Decodes a `badge_jobs` row.
pub(super) fn job_of(row: &sqlx::any::AnyRow) -> Result<Job, StoreError> {
    use sqlx::Row;
    let action: String = row.try_get("action")?;
    Ok(Job {
        id: row.try_get("id")?,
        wallet: to_address(&row.try_get::<Vec<u8>, _>("wallet")?, "badge_jobs.wallet")?,
        action: action.parse().map_err(|_| StoreError::Corrupt("badge_jobs.action"))?,
        tier: row.try_get::<Option<i64>, _>("tier")?.unwrap_or(0).clamp(0, 255) as u8,
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.unwrap_or(0).max(0) as u64,
        new_wallet: row.try_get::<Option<Vec<u8>>, _>("new_wallet")?.map(|b| to_address(&b, "badge_jobs.new_wallet")).transpose()?,
        cause: match row.try_get::<Option<String>, _>("cause_order_id")? {
            Some(order_id) => Some(Cause {
                order_id: order_id.parse::<OrderId>().map_err(|_| StoreError::Corrupt("badge_jobs.cause_order_id"))?,
                checkout_id: row.try_get::<Option<String>, _>("cause_checkout_id")?.map(CheckoutId::from_stored),
                tx_hash: to_b256(&row.try_get::<Vec<u8>, _>("cause_tx_hash")?, "badge_jobs.cause_tx_hash")?,
            }),
            None => None,
        },
    })
}

/// Decodes a stored fee.
pub(super) fn fee_of(bytes: &[u8]) -> Result<u128, StoreError> {
    let value = to_u256(bytes, "badge_batches fee")?;
    u128::try_from(value).map_err(|_| StoreError::Corrupt("badge_batches fee"))
}
