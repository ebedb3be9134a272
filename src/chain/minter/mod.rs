//! The badge minter: turns queued badge jobs into `MembershipBadge` state with batched
//! transactions from the issuer key.
//!
//! Every tick does three things, in this order:
//!
//! 1. **Recheck** the batches confirmed within the reorg window ([`MinterConfig::reorg_window`]):
//!    one whose block a reorg deeper than the confirmations removed is sent again at its
//!    nonce, so no nonce gap is left, or, when another transaction took the nonce, its jobs
//!    are queued again (see `reorgs.rs`).
//! 2. **Track** the open batches (one per issuer nonce the minter used): find the receipt
//!    of any signed version; confirm the batch `N` blocks deep and write its events; put a
//!    reorged-out batch back in flight; re-broadcast one the node forgot (the exact signed
//!    bytes are stored); replace one that is stuck with a fee bumped at least 10 %; give up
//!    a nonce another transaction consumed and queue its jobs again.
//! 3. **Plan** new batches from the queued jobs: a later job for a wallet supersedes the
//!    earlier unsent ones (a failed one waiting for its retry too, once the later is
//!    sent); each job is reconciled with the badge contract (a wallet that already holds a
//!    badge gets an update, not a second mint; one whose badge already shows the job's
//!    state, [`MinterConfig::confirmations`] deep, needs no transaction);
//!    jobs are grouped per call, bounded by count and gas, simulated, signed and **written
//!    to the database before they are broadcast**.
//!
//! The minter owns the issuer nonce: nonces are assigned from the open batches and the
//! chain's latest and pending counts, never from a cache, so a transaction sent from the
//! issuer key by anyone else, a node restart or a crash at any point is absorbed by the
//! next tick without manual help.

use std::{collections::BTreeMap, time::Duration};

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{DynProvider, Provider},
    transports::TransportError,
};
use tokio_util::sync::CancellationToken;

use crate::{
    clock::Clock,
    states::BadgeJobStatus,
    store::{Db, StoreError, badges},
};

mod plan;
mod reorgs;
mod send;
mod track;
mod types;

/// Why a minter tick failed. Every failure is retried on the next tick.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The node did not answer, or answered a read with an error.
    #[error("RPC: {0}")]
    Rpc(#[from] TransportError),
    /// A call to the badge contract failed.
    #[error("badge contract call: {0}")]
    Contract(#[from] alloy::contract::Error),
    /// The node refused a batch in a way no single job explains.
    #[error("{0}")]
    Refused(String),
    /// A transaction could not be built or signed.
    #[error("signing: {0}")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A test asked the minter to stop right after broadcasting (crash simulation).
    #[cfg(feature = "test-hooks")]
    #[error("stopped at the after-broadcast fail point")]
    FailPoint,
}

impl From<sqlx::Error> for MintError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

/// Minter settings.
#[derive(Debug, Clone)]
pub struct MinterConfig {
    /// Chain id (transactions are signed for it).
    pub chain_id: u64,
    /// The badge contract.
    pub badge: Address,
    /// Blocks deep a batch must be to count (1 = in the head block).
    pub confirmations: u64,
    /// Blocks below the head within which a confirmed batch is still checked against the
    /// chain (the watcher's window by default: [`super::reorg_window`]).
    pub reorg_window: u64,
    /// Most jobs in one batch call.
    pub max_batch_size: usize,
    /// Most gas one batch may use (bounds the batch size by each call's gas per job).
    pub max_batch_gas: u64,
    /// Most batches in flight (sent, not yet confirmed) at once.
    pub max_in_flight: usize,
    /// Highest `maxFeePerGas` the minter will pay, in wei. The first version of a
    /// transaction is priced at most 10/11 of it, so one replacement always fits under it.
    pub fee_cap: u128,
    /// A transaction not mined this long is replaced with a bumped fee; the wait doubles
    /// with each replacement.
    pub stuck_after: Duration,
    /// First retry delay of a failed job; doubles with each attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Time between ticks when nothing is happening.
    pub poll_interval: Duration,
    /// Tests only (feature `test-hooks`): return [`MintError::FailPoint`] right after the
    /// first broadcast of a tick, before the broadcast is recorded (a crash between
    /// sending and recording).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fail_after_broadcast: bool,
}

impl MinterConfig {
    /// Defaults for `chain_id` and `badge`; the caller sets confirmations and fees.
    pub fn new(chain_id: u64, badge: Address, confirmations: u64) -> Self {
        Self {
            chain_id,
            badge,
            confirmations,
            reorg_window: super::reorg_window(confirmations),
            max_batch_size: 250,
            max_batch_gas: 12_000_000,
            max_in_flight: 8,
            fee_cap: 500_000_000_000,
            stuck_after: Duration::from_secs(45),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
            #[cfg(feature = "test-hooks")]
            fail_after_broadcast: false,
        }
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Head block seen.
    pub head: u64,
    /// Batches broadcast for the first time.
    pub sent: usize,
    /// Fee-bumped replacements broadcast.
    pub replaced: usize,
    /// Batches re-broadcast because the node no longer knew them.
    pub rebroadcast: usize,
    /// Batches whose block was reorged out.
    pub reorged: usize,
    /// Confirmed batches a reorg deeper than the confirmations removed (sent again at their
    /// nonce, or their jobs queued again).
    pub reorged_confirmed: usize,
    /// Batches whose nonce another transaction consumed (their jobs were queued again).
    pub dropped: usize,
    /// Jobs confirmed (with or without a transaction).
    pub confirmed: usize,
    /// Jobs that failed this tick (retried later).
    pub failed: usize,
    /// Batches still open after the tick.
    pub open: usize,
    /// Jobs still waiting to be sent after the tick.
    pub waiting: usize,
    /// Whether the fee cap kept a stuck transaction from being replaced.
    pub fee_capped: bool,
}

impl TickReport {
    /// Whether there is nothing left to do: no open batch, no job waiting.
    pub fn idle(&self) -> bool {
        self.open == 0 && self.waiting == 0
    }
}

/// The minter for one badge contract and issuer key.
#[derive(Debug, Clone)]
pub struct Minter {
    db: Db,
    provider: DynProvider,
    wallet: EthereumWallet,
    issuer: Address,
    config: MinterConfig,
    /// Every time the minter reads or writes comes from it.
    clock: Clock,
}

impl Minter {
    /// Returns a minter sending from `wallet`'s default signer through `provider` (a
    /// provider without a wallet or nonce filler: the minter signs and counts itself).
    pub fn new(db: Db, provider: DynProvider, wallet: EthereumWallet, config: MinterConfig) -> Self {
        let issuer = alloy::network::NetworkWallet::<alloy::network::Ethereum>::default_signer_address(&wallet);
        Self { db, provider, wallet, issuer, config, clock: Clock::system() }
    }

    /// Returns the minter reading time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The issuer address.
    pub fn issuer(&self) -> Address {
        self.issuer
    }

    /// Returns the time in unix seconds, as the minter's tables store it.
    fn now(&self) -> i64 {
        self.clock.now() as i64
    }

    /// Returns how failed jobs are retried.
    fn backoff(&self) -> badges::Backoff {
        badges::Backoff { base_secs: self.config.retry_base.as_secs_f64(), max_secs: self.config.retry_max.as_secs_f64() }
    }

    /// Runs ticks until `cancel` fires: again at once while work is moving, otherwise on
    /// each new head or every poll interval.
    pub async fn run(&self, cancel: CancellationToken, mut heads: Option<tokio::sync::mpsc::Receiver<u64>>) {
        let mut failures = 0u32;
        loop {
            let wait = match self.tick().await {
                Ok(report) => {
                    failures = 0;
                    self.config.poll_interval.min(if report.sent + report.confirmed > 0 { Duration::from_millis(50) } else { Duration::MAX })
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "minter tick failed; retrying");
                    self.config.poll_interval * failures.min(10)
                }
            };
            if !super::wait_for_next_round(&cancel, wait, &mut heads).await {
                return;
            }
        }
    }

    /// Runs one tick: recheck the recently confirmed batches, track the open ones, then
    /// plan and send new ones.
    pub async fn tick(&self) -> Result<TickReport, MintError> {
        let head = self.provider.get_block_number().await?;
        let latest_nonce = self.provider.get_transaction_count(self.issuer).latest().await?;
        let mut report = TickReport { head, ..Default::default() };
        self.recheck_confirmed(head, latest_nonce, &mut report).await?;
        if self.track(head, latest_nonce, &mut report).await? {
            self.plan(head, &mut report).await?;
        }
        let open = badges::count_open(&self.db, self.config.chain_id, self.issuer).await?;
        let counts = job_counts(&self.db).await?;
        report.open = open as usize;
        let count = |status| counts.get(&status).copied().unwrap_or(0);
        report.waiting = (count(BadgeJobStatus::Queued) + count(BadgeJobStatus::Failed)) as usize;
        metrics::gauge!("tmai_badge_batches_open").set(open as f64);
        metrics::gauge!("tmai_minter_fee_capped").set(if report.fee_capped { 1.0 } else { 0.0 });
        Ok(report)
    }

    /// Returns how many jobs are in each status.
    pub async fn job_counts(&self) -> Result<BTreeMap<BadgeJobStatus, i64>, StoreError> {
        job_counts(&self.db).await
    }
}

/// Returns how many badge jobs are in each status, and sets the `tmai_badge_jobs{status}`
/// gauges (`failed` counts jobs waiting to be retried after a failure).
pub async fn job_counts(db: &Db) -> Result<BTreeMap<BadgeJobStatus, i64>, StoreError> {
    let counts = badges::job_counts(db).await?;
    for status in BadgeJobStatus::ALL {
        metrics::gauge!("tmai_badge_jobs", "status" => status.as_str()).set(counts.get(status).copied().unwrap_or(0) as f64);
    }
    Ok(counts)
}
