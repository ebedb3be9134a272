//! Two clocks, one time: the service signs quotes and judges rates by its own clock while
//! the contract checks a quote's deadline, and the rate guards read feeds, by block time.
//! On a local chain whose time is moved ahead (`evm_increaseTime`,
//! `anvil_setNextBlockTimestamp`: a person trying out expiries, a test living through
//! days), [`follow_chain_time`] moves the service's clock with it, so no guard has to be
//! loosened for a time-travelling chain. It only ever moves the clock forward: a chain
//! behind the wall clock (fixtures made long ago) changes nothing.

use std::time::Duration;

use alloy::{eips::BlockNumberOrTag, providers::Provider};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

/// Reads the latest block's time every `every` and moves `clock` up to it, until `cancel`
/// fires. A read that fails is retried at the next round.
pub async fn follow_chain_time(provider: impl Provider, clock: Clock, every: Duration, cancel: CancellationToken) {
    loop {
        match provider.get_block_by_number(BlockNumberOrTag::Latest).await {
            Ok(Some(block)) => {
                if clock.catch_up_to(block.header.timestamp) {
                    tracing::info!(
                        block_time = block.header.timestamp,
                        offset_ms = clock.offset_ms(),
                        "the local chain's time moved ahead; the service clock follows it"
                    );
                }
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "reading the latest block's time failed; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
