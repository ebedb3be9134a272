//! Planning new batches: supersede older jobs per wallet, reconcile each job with the badge
//! contract, group them per call under the count and gas bounds, simulate, price, sign,
//! write ahead, broadcast.

use std::collections::{BTreeMap, HashSet};

use alloy::{
    eips::BlockId,
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use futures::{StreamExt, TryStreamExt, stream};

use super::{
    super::bindings::MembershipBadge::{self, MembershipBadgeErrors},
    MintError, Minter, TickReport,
    send::{explain_refusal, first_fees},
    types::{Broadcast, Call, CallCosts, Decision, Job, Planned, Signed, badge_event, encode},
};
use crate::store::{
    address_bytes,
    badges::{self, NewBatch},
};

/// The gas limit a batch is sent with: its `eth_estimateGas` figure and a tenth more. The
/// estimate is the least limit the call succeeds with on the state it was simulated on;
/// only the issuer writes the badge contract and a wallet has at most one job in flight, so
/// the state a batch meets when mined differs from that one by little. A block builder
/// admits a transaction only while its limit fits the gas the block has left, so the margin
/// decides how many batches share a block: with a fifth more (this was `gas / 5`), the
/// last of four 250-badge batches (7.2 M gas each) no longer fitted a 30 M block and 1,000
/// badges took three blocks instead of two (benches/minter.rs). A batch that still runs
/// out reverts and its jobs are queued again (`badges::mark_reverted`).
fn gas_limit(estimate: u64) -> u64 {
    estimate + estimate / 10
}

/// Returns, per wallet, the job to act on (a later issue/update/revoke replaces the earlier
/// unsent ones; a move is a barrier: what follows it waits for it), skipping wallets with a
/// job in flight; and the ids of the jobs replaced.
fn supersede(jobs: &[Job], busy: &HashSet<Vec<u8>>) -> (Vec<Job>, Vec<i64>) {
    let mut per_wallet: BTreeMap<Address, Vec<&Job>> = BTreeMap::new();
    for job in jobs {
        per_wallet.entry(job.wallet).or_default().push(job);
    }
    let (mut effective, mut superseded) = (Vec::new(), Vec::new());
    let mut claimed: HashSet<Address> = HashSet::new();
    let mut order: Vec<(i64, Address)> = per_wallet.iter().map(|(w, js)| (js[0].id, *w)).collect();
    order.sort();
    for (_, wallet) in order {
        let list = &per_wallet[&wallet];
        let chosen = if list[0].action == Call::Move {
            list[0]
        } else {
            let run = list.iter().take_while(|j| j.action != Call::Move).count();
            superseded.extend(list[..run - 1].iter().map(|j| j.id));
            list[run - 1]
        };
        let targets = [Some(chosen.wallet), chosen.new_wallet];
        if targets.iter().flatten().any(|a| busy.contains(&address_bytes(*a)) || claimed.contains(a)) {
            continue;
        }
        claimed.extend(targets.iter().flatten());
        effective.push(chosen.clone());
    }
    (effective, superseded)
}

/// Returns what the store writes ahead of `signed`'s broadcast.
fn new_batches(signed: &[Signed]) -> Vec<NewBatch<'_>> {
    signed
        .iter()
        .map(|s| NewBatch {
            nonce: s.nonce,
            call: s.planned.call,
            input: &s.planned.input,
            gas_limit: s.planned.gas_limit,
            max_fee: s.fees.max_fee,
            priority_fee: s.fees.priority,
            tx_hash: s.hash,
            raw: &s.raw,
            job_ids: s.planned.jobs.iter().map(|j| j.id).collect(),
        })
        .collect()
}

impl Minter {
    /// Plans, signs, writes and sends new batches from the due jobs, within the room the
    /// open batches leave.
    pub(super) async fn plan(&self, head: u64, report: &mut TickReport) -> Result<(), MintError> {
        let open = badges::open_batches(&self.db, self.config.chain_id, self.issuer).await?;
        let room = self.config.max_in_flight.saturating_sub(open.len());
        if room == 0 {
            return Ok(());
        }
        let stale = badges::supersede_stale(&self.db, self.now()).await?;
        if stale > 0 {
            tracing::info!(jobs = stale, "badge jobs superseded by a later job for the same wallet already sent");
        }
        let jobs = badges::due_jobs(&self.db, self.now()).await?;
        if jobs.is_empty() {
            return Ok(());
        }
        let (effective, superseded) = supersede(&jobs, &badges::busy_wallets(&self.db).await?);
        badges::supersede(&self.db, &superseded, self.now()).await?;
        let to_send = self.reconcile(effective, head, report).await?;
        let mut planned = Vec::new();
        for (call, jobs) in self.chunks(to_send).into_iter().take(room) {
            report.failed += self.simulate(call, jobs, &mut planned).await?;
        }
        if planned.is_empty() {
            return Ok(());
        }
        // The chain's counts are read now, not at the start of the tick: one read before a
        // reorg that removed issuer transactions would put the new batches above a gap.
        let latest_nonce = self.provider.get_transaction_count(self.issuer).latest().await?;
        let pending_nonce = self.provider.get_transaction_count(self.issuer).pending().await?;
        let first = open.iter().map(|b| b.nonce + 1).max().unwrap_or(0).max(latest_nonce).max(pending_nonce);
        let fees = first_fees(self.suggested_fees().await?, self.config.fee_cap);
        let mut signed = Vec::with_capacity(planned.len());
        for (nonce, planned) in (first..).zip(planned) {
            let (hash, raw) = self.sign(nonce, &planned.input, planned.gas_limit, fees).await?;
            signed.push(Signed { nonce, planned, fees, hash, raw });
        }
        // Write ahead: the batches and their signed bytes are stored before any broadcast.
        let next_nonce = first + signed.len() as u64;
        let batch_ids = badges::write_ahead(&self.db, self.config.chain_id, self.issuer, &new_batches(&signed), next_nonce, self.now()).await?;
        self.send_new(&signed, &batch_ids, report).await
    }

    /// Reconciles each job with the badge contract: confirms the jobs the chain already
    /// shows deep enough, rejects those that can never succeed, and returns the rest per
    /// call to send.
    async fn reconcile(&self, jobs: Vec<Job>, head: u64, report: &mut TickReport) -> Result<BTreeMap<Call, Vec<Job>>, MintError> {
        let safe_block = (head + 1).saturating_sub(self.config.confirmations);
        let decisions: Vec<(Job, Decision)> = stream::iter(jobs.into_iter().map(|job| async move {
            let decision = self.decide(&job, safe_block).await?;
            Ok::<_, MintError>((job, decision))
        }))
        .buffered(32)
        .try_collect()
        .await?;
        let mut to_send: BTreeMap<Call, Vec<Job>> = BTreeMap::new();
        let (mut done, mut events, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
        for (job, decision) in decisions {
            match decision {
                Decision::Send(call) => to_send.entry(call).or_default().push(job),
                Decision::Done { token_id } => {
                    events.push(badge_event(&job, job.action, token_id, None, None));
                    done.push((job.id, token_id));
                }
                Decision::Wait => {}
                Decision::Reject(reason) => {
                    tracing::error!(job = job.id, wallet = %job.wallet, reason, "badge job rejected");
                    rejected.push((job.id, reason));
                }
            }
        }
        if !done.is_empty() || !rejected.is_empty() {
            let now = self.now();
            let mut tx = self.db.begin_write().await?;
            badges::reject_jobs(&mut tx, &rejected, now).await?;
            badges::confirm_jobs(&mut tx, &done, None, &events, now).await?;
            tx.commit().await?;
            report.confirmed += done.len();
        }
        Ok(to_send)
    }

    /// Splits the jobs per call into batches bounded by `max_batch_size` and
    /// `max_batch_gas` (a move goes alone).
    fn chunks(&self, to_send: BTreeMap<Call, Vec<Job>>) -> Vec<(Call, Vec<Job>)> {
        let mut chunks = Vec::new();
        for (call, jobs) in to_send {
            let size = match call {
                Call::Move => 1,
                _ => self.config.max_batch_size.min((self.config.max_batch_gas / call.gas_per_job()) as usize).max(1),
            };
            chunks.extend(jobs.chunks(size).map(|chunk| (call, chunk.to_vec())));
        }
        chunks
    }

    /// Broadcasts newly written batches in nonce order, stopping at the first the node
    /// does not take.
    async fn send_new(&self, signed: &[Signed], batch_ids: &[i64], report: &mut TickReport) -> Result<(), MintError> {
        for (s, id) in signed.iter().zip(batch_ids) {
            match self.broadcast(&s.raw).await? {
                Broadcast::Accepted => {
                    #[cfg(feature = "test-hooks")]
                    if self.config.fail_after_broadcast {
                        return Err(MintError::FailPoint);
                    }
                    badges::mark_sent(&self.db, *id, self.now()).await?;
                    report.sent += 1;
                    metrics::counter!("tmai_badge_batches_sent_total").increment(1);
                    tracing::info!(nonce = s.nonce, call = s.planned.call.as_str(), jobs = s.planned.jobs.len(), tx = %s.hash, "badge batch sent");
                }
                Broadcast::NonceUsed => break,
                Broadcast::Refused(reason) => {
                    let open = badges::open_batches(&self.db, self.config.chain_id, self.issuer).await?;
                    let rest: Vec<_> = open.into_iter().filter(|b| b.nonce >= s.nonce).collect();
                    report.failed += self.refused(&rest, &reason).await?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Decides what `job` needs given the badge contract's state.
    async fn decide(&self, job: &Job, safe_block: u64) -> Result<Decision, MintError> {
        let badge = MembershipBadge::new(self.config.badge, &self.provider);
        let state = |wallet: Address, block: Option<u64>| {
            let badge = badge.clone();
            async move {
                let call = badge.membershipOf(wallet);
                let call = match block {
                    Some(n) => call.block(BlockId::number(n)),
                    None => call,
                };
                call.call().await.map_err(MintError::from)
            }
        };
        match job.action {
            Call::Issue | Call::Update => {
                if job.tier == 0 {
                    return Ok(Decision::Reject("tier 0 is not a membership".into()));
                }
                if job.wallet == Address::ZERO {
                    return Ok(Decision::Reject("the zero address cannot hold a badge".into()));
                }
                let now = state(job.wallet, None).await?;
                let wanted = |tier: u8, expiry: u64| tier == job.tier && expiry == job.expires_at;
                if now.tokenId.is_zero() {
                    return Ok(Decision::Send(Call::Issue));
                }
                if !wanted(now.tier, now.expiresAt_) {
                    return Ok(Decision::Send(Call::Update));
                }
                let safe = state(job.wallet, Some(safe_block)).await?;
                Ok(if !safe.tokenId.is_zero() && wanted(safe.tier, safe.expiresAt_) { Decision::Done { token_id: safe.tokenId } } else { Decision::Wait })
            }
            Call::Revoke => {
                if !state(job.wallet, None).await?.tokenId.is_zero() {
                    return Ok(Decision::Send(Call::Revoke));
                }
                let safe = state(job.wallet, Some(safe_block)).await?;
                Ok(if safe.tokenId.is_zero() { Decision::Done { token_id: U256::ZERO } } else { Decision::Wait })
            }
            Call::Move => {
                let Some(to) = job.new_wallet else { return Ok(Decision::Reject("move without a new wallet".into())) };
                if to == Address::ZERO || to == job.wallet {
                    return Ok(Decision::Reject(format!("cannot move a badge to {to}")));
                }
                let (from_now, to_now) = (state(job.wallet, None).await?, state(to, None).await?);
                match (from_now.tokenId.is_zero(), to_now.tokenId.is_zero()) {
                    (false, true) => Ok(Decision::Send(Call::Move)),
                    (true, false) => {
                        let (from_safe, to_safe) = (state(job.wallet, Some(safe_block)).await?, state(to, Some(safe_block)).await?);
                        Ok(if from_safe.tokenId.is_zero() && !to_safe.tokenId.is_zero() {
                            Decision::Done { token_id: to_safe.tokenId }
                        } else {
                            Decision::Wait
                        })
                    }
                    (false, false) => Ok(Decision::Reject(format!("{to} already holds a badge"))),
                    (true, true) => Ok(Decision::Reject(format!("{} holds no badge to move", job.wallet))),
                }
            }
        }
    }

    /// Simulates the batch call with `eth_estimateGas`. Jobs the contract refuses by name
    /// (`AlreadyHasBadge`, `NoBadge`) fail and are left out; an unexplained refusal splits
    /// the batch until the failing job is alone. Appends what will be sent to `planned`;
    /// returns how many jobs failed.
    async fn simulate(&self, call: Call, jobs: Vec<Job>, planned: &mut Vec<Planned>) -> Result<usize, MintError> {
        let mut failed = 0;
        let mut pending = vec![jobs];
        while let Some(jobs) = pending.pop() {
            if jobs.is_empty() {
                continue;
            }
            let input = encode(call, &jobs);
            let request = TransactionRequest::default().with_from(self.issuer).with_to(self.config.badge).with_input(input.clone());
            let error = match self.provider.estimate_gas(request).await {
                Ok(gas) => {
                    planned.push(Planned { call, jobs, input, gas_limit: gas_limit(gas) });
                    continue;
                }
                Err(error) => error,
            };
            let Some(payload) = error.as_error_resp() else { return Err(error.into()) };
            let decoded = payload.as_decoded_interface_error::<MembershipBadgeErrors>();
            let named = match &decoded {
                Some(MembershipBadgeErrors::MembershipBadge__AlreadyHasBadge(e)) => Some(e.wallet),
                Some(MembershipBadgeErrors::MembershipBadge__NoBadge(e)) => Some(e.wallet),
                _ => None,
            };
            let reason = match &decoded {
                Some(e) => format!("the badge contract refuses the {} call: {e:?}", call.as_str()),
                None => explain_refusal(&format!("simulating the {} call failed: {error}", call.as_str()), self.issuer),
            };
            let guilty: Vec<i64> = match named {
                Some(wallet) => jobs.iter().filter(|j| j.wallet == wallet || j.new_wallet == Some(wallet)).map(|j| j.id).collect(),
                None if jobs.len() == 1 => vec![jobs[0].id],
                None => {
                    let (a, b) = jobs.split_at(jobs.len() / 2);
                    pending.push(a.to_vec());
                    pending.push(b.to_vec());
                    continue;
                }
            };
            if guilty.is_empty() {
                return Err(MintError::Refused(reason));
            }
            failed += badges::fail_alone(&self.db, &guilty, &reason, self.backoff(), self.now()).await?;
            pending.push(jobs.into_iter().filter(|j| !guilty.contains(&j.id)).collect());
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_full_batches_of_badges_fit_one_block_with_their_margin() {
        // 250 badges a batch at ~28,900 gas each (benches/minter.rs), a 30 M block: the
        // last batch's limit must fit what the first three used.
        let used = 250 * 28_911u64;
        assert!(3 * used + gas_limit(used) <= 30_000_000);
        assert_eq!(gas_limit(1_000_000), 1_100_000);
    }

    fn job(id: i64, wallet: u8, action: Call) -> Job {
        Job {
            id,
            wallet: Address::repeat_byte(wallet),
            action,
            tier: 1,
            expires_at: 1,
            new_wallet: (action == Call::Move).then(|| Address::repeat_byte(99)),
            cause: None,
            customer_ref: None,
        }
    }

    #[test]
    fn a_later_job_for_a_wallet_supersedes_earlier_ones_up_to_a_move() {
        let jobs = [job(1, 1, Call::Issue), job(2, 2, Call::Issue), job(3, 1, Call::Update), job(4, 1, Call::Move), job(5, 1, Call::Update)];
        let (effective, superseded) = supersede(&jobs, &HashSet::new());
        assert_eq!(effective.iter().map(|j| j.id).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(superseded, vec![1]);
        // A wallet with a job in flight waits.
        let busy: HashSet<Vec<u8>> = [address_bytes(Address::repeat_byte(2))].into();
        let (effective, _) = supersede(&jobs, &busy);
        assert_eq!(effective.iter().map(|j| j.id).collect::<Vec<_>>(), vec![3]);
    }
}
