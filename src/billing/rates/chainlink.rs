//! Chainlink `AggregatorV3Interface` feeds: the latest answer, refused when it is not
//! positive or older than the feed's configured maximum age (by the block's time).
#![allow(missing_docs, unreachable_pub)]

use alloy::{
    eips::BlockId,
    primitives::{I256, U256},
    providers::DynProvider,
    sol,
};

use super::{ConfigError, Refusal, RefusalCode};
use crate::{
    config::{FeedConfig, SequencerFeedConfig},
    money::UsdRate,
};

sol! {
    #[sol(rpc)]
    interface AggregatorV3Interface {
        function decimals() external view returns (uint8);
        function description() external view returns (string memory);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    }
}

/// Checks at start-up that `feed` is a contract answering `decimals()` with the configured
/// decimals.
pub async fn check(provider: &DynProvider, field: &str, feed: &FeedConfig) -> Result<(), ConfigError> {
    super::require_code(provider, &format!("{field}.address"), feed.address).await?;
    let reported = AggregatorV3Interface::new(feed.address, provider)
        .decimals()
        .call()
        .await
        .map_err(|e| ConfigError::new(format!("{field}.address"), format!("{} does not answer decimals() as a Chainlink feed: {e}", feed.address)))?;
    if reported != feed.decimals {
        return Err(ConfigError::new(format!("{field}.decimals"), format!("configured {}, but the feed at {} has {reported}", feed.decimals, feed.address)));
    }
    if feed.max_age_secs == 0 {
        return Err(ConfigError::new(format!("{field}.max_age_secs"), "must be at least 1 (the feed's heartbeat plus a margin)".into()));
    }
    Ok(())
}

/// Reads `feed` at `block`: USD (or ETH) per token. Its age is counted to `now`, the later
/// of the block's time and the service clock: a node a little behind (within
/// `max_block_lag_secs`) does not make an old answer look fresh.
pub async fn read(provider: &DynProvider, feed: &FeedConfig, block: u64, now: u64) -> Result<UsdRate, Refusal> {
    let round = AggregatorV3Interface::new(feed.address, provider)
        .latestRoundData()
        .block(BlockId::number(block))
        .call()
        .await
        .map_err(|e| Refusal::new(RefusalCode::ChainUnreadable, format!("Chainlink feed {} cannot be read: {e}", feed.address)))?;
    if round.answer <= I256::ZERO {
        return Err(Refusal::new(RefusalCode::BadFeedAnswer, format!("Chainlink feed {} answers {}, not a positive price", feed.address, round.answer)));
    }
    let updated = u64::try_from(round.updatedAt).unwrap_or(u64::MAX);
    let age = now.saturating_sub(updated);
    if updated == 0 || age > feed.max_age_secs {
        let detail = format!("Chainlink feed {} last updated {age} s ago, max_age_secs is {}", feed.address, feed.max_age_secs);
        return Err(Refusal::new(RefusalCode::StaleFeed, detail));
    }
    UsdRate::from_scaled(U256::try_from(round.answer).unwrap_or_default(), feed.decimals)
        .ok_or_else(|| Refusal::new(RefusalCode::BadFeedAnswer, format!("Chainlink feed {} answers {}, out of range", feed.address, round.answer)))
}

/// Checks at start-up that the sequencer-uptime feed is a contract answering
/// `latestRoundData()`.
pub async fn check_sequencer(provider: &DynProvider, field: &str, feed: &SequencerFeedConfig) -> Result<(), ConfigError> {
    super::require_code(provider, &format!("{field}.address"), feed.address).await?;
    AggregatorV3Interface::new(feed.address, provider).latestRoundData().call().await.map_err(|e| {
        ConfigError::new(format!("{field}.address"), format!("{} does not answer latestRoundData() as a sequencer-uptime feed: {e}", feed.address))
    })?;
    Ok(())
}

/// Reads the L2 sequencer-uptime feed at `block`: refused while it answers anything but 0
/// (1 is down), when its round has not started (`startedAt` 0), or for `grace_secs` after
/// it came up (by `now`, as [`read`] counts).
pub async fn sequencer_up(provider: &DynProvider, feed: &SequencerFeedConfig, block: u64, now: u64) -> Result<(), Refusal> {
    let round = AggregatorV3Interface::new(feed.address, provider)
        .latestRoundData()
        .block(BlockId::number(block))
        .call()
        .await
        .map_err(|e| Refusal::new(RefusalCode::ChainUnreadable, format!("sequencer-uptime feed {} cannot be read: {e}", feed.address)))?;
    if round.answer != I256::ZERO {
        return Err(Refusal::new(RefusalCode::SequencerDown, format!("sequencer-uptime feed {} answers {} (down)", feed.address, round.answer)));
    }
    let started = u64::try_from(round.startedAt).unwrap_or(u64::MAX);
    let up_for = now.saturating_sub(started);
    if started == 0 || started > now || up_for < feed.grace_secs {
        let detail = format!("sequencer-uptime feed {}: up for {up_for} s, grace_secs is {}", feed.address, feed.grace_secs);
        return Err(Refusal::new(RefusalCode::SequencerDown, detail));
    }
    Ok(())
}
