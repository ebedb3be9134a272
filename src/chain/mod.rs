//! Everything that talks to the chain: contract bindings compiled from `contracts/`,
//! the compiler driver, deployment and the local anvil chain.

pub mod bindings;
pub mod chain_time;
pub mod compile;
pub mod deploy;
pub mod deployment;
pub mod devnet;
pub mod market;
pub mod minter;
pub mod paid_log;
pub mod rpc;
pub mod signing;

/// Blocks past the confirmations within which the watcher and the minter still notice a
/// reorg: the watcher keeps that many block hashes below the head, and the minter keeps
/// checking the batches it confirmed that recently. A deeper reorg goes unseen.
pub const REORG_WINDOW_PAST_CONFIRMATIONS: u64 = 64;

/// Returns how many blocks below the head a reorg is still noticed at `confirmations`.
pub fn reorg_window(confirmations: u64) -> u64 {
    confirmations + REORG_WINDOW_PAST_CONFIRMATIONS
}

/// Waits before a worker's next round (the watcher's pass, the minter's tick): `wait`, or
/// less when a new head arrives on `heads`; returns `false` when `cancel` fires first.
pub(crate) async fn wait_for_next_round(
    cancel: &tokio_util::sync::CancellationToken,
    wait: std::time::Duration,
    heads: &mut Option<tokio::sync::mpsc::Receiver<u64>>,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
        Some(_) = async { match heads.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
    }
}
