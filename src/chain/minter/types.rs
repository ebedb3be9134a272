//! The minter's values: what a job asks for, what reconciling a job decided, how a
//! broadcast went, and the calls and events they make. The jobs and batches as stored are
//! the store's ([`crate::store::badges`]).

use alloy::{
    primitives::{B256, Bytes, U256},
    sol_types::SolCall,
};

use super::super::bindings::{IMembershipBadge::Membership, MembershipBadge};
use crate::{
    events::{BadgeCause, BadgeJobDone, EventType, Payload},
    store::outbox::{self, NewEvent},
};

/// What a job asks for.
pub(super) use crate::states::BadgeAction as Call;
/// The jobs and batches as the store holds them.
pub(super) use crate::store::badges::{Batch, Job};

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
    let done = BadgeJobDone {
        job_id: job.id,
        wallet: job.wallet,
        token_id,
        tx_hash,
        block_number: block,
        cause: job.cause.as_ref().map(|c| BadgeCause { order_id: c.order_id, checkout_id: c.checkout_id.clone(), payment_tx_hash: c.tx_hash }),
    };
    let payload: Payload = match (event_type, job.action) {
        (_, Call::Move) => done.moved(job.new_wallet).into(),
        (EventType::BadgeMinted, _) => done.minted(job.tier, job.expires_at).into(),
        (EventType::BadgeRevoked, _) => done.revoked().into(),
        _ => done.changed(job.tier, job.expires_at).into(),
    };
    NewEvent::for_customer(outbox::event_id(&[event_type.as_str(), &job.id.to_string()]), payload, job.customer_ref.as_ref())
}
