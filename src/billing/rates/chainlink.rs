//! Chainlink `AggregatorV3Interface` feeds: the latest answer, refused when it is not
//! positive or older than the feed's configured maximum age (by the block's time).
#![allow(missing_docs, unreachable_pub)]

use alloy::{
    eips::BlockId,
    primitives::{I256, U256},
    providers::DynProvider,
    sol,
};

use super::{ConfigError, config::FeedConfig};
use crate::billing::pricing::UsdRate;

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

/// Reads `feed` at `block` whose time is `block_time`: USD (or ETH) per token.
pub async fn read(provider: &DynProvider, feed: &FeedConfig, block: u64, block_time: u64) -> Result<UsdRate, String> {
    let round = AggregatorV3Interface::new(feed.address, provider)
        .latestRoundData()
        .block(BlockId::number(block))
        .call()
        .await
        .map_err(|e| format!("Chainlink feed {} cannot be read: {e}", feed.address))?;
    if round.answer <= I256::ZERO {
        return Err(format!("Chainlink feed {} answers {}, not a positive price", feed.address, round.answer));
    }
    let updated = u64::try_from(round.updatedAt).unwrap_or(u64::MAX);
    let age = block_time.saturating_sub(updated);
    if updated == 0 || age > feed.max_age_secs {
        return Err(format!("Chainlink feed {} is stale: last updated {age} s ago, max_age_secs is {}", feed.address, feed.max_age_secs));
    }
    Ok(UsdRate::from_scaled(U256::try_from(round.answer).unwrap_or_default(), feed.decimals))
}
