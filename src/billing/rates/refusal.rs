//! Why a token's rate is refused, as anonymous callers see it: one fixed code and one fixed
//! sentence per reason. What the node or the contract answered stays out of every answer:
//! for a connection failure the transport's text names the RPC URL, API key included. That
//! detail goes to the log (and to the operator's `tmai-pay rates`) with every URL in it
//! redacted.

use serde::Serialize;
use utoipa::ToSchema;

/// The reason a token's rate cannot be used now. Serialized (and shown in `GET /v1/plans`
/// and `/readyz` as `reason_code`) in snake case, equal to [`RefusalCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The token has no rate source in `[pricing.tokens]`.
    NoSource,
    /// The rate has not been read since the service started.
    NotReadYet,
    /// The last good reading is older than `max_cache_age_secs`.
    CacheExpired,
    /// The node (or the source contract) could not be read.
    ChainUnreadable,
    /// The source answered a zero rate.
    ZeroRate,
    /// A Chainlink feed's answer is not a positive price.
    BadFeedAnswer,
    /// A Chainlink feed was not updated within its `max_age_secs`.
    StaleFeed,
    /// A stablecoin's peg feed is further from $1 than its tolerance.
    Depegged,
    /// The pool's observation history is shorter than the TWAP window.
    ShortHistory,
    /// The pool's spot price is further from its TWAP than allowed.
    Manipulated,
    /// No USD rate is configured for the pool's quote asset.
    NoQuoteRate,
    /// The plan's price at this rate is not a representable token amount.
    AmountOutOfRange,
    /// The node's latest block is older than `max_block_lag_secs` by the service clock.
    StaleNode,
    /// The L2 sequencer-uptime feed says down, or up for less than its grace period.
    SequencerDown,
    /// The rate is outside the token's configured `min_usd`..`max_usd`.
    RateOutOfBounds,
    /// The pool's harmonic-mean liquidity over the window is below `min_liquidity`.
    ThinPool,
    /// The pool's mean tick is outside Uniswap's tick range (a corrupt or hostile pool).
    ExtremeTick,
    /// The reading is older than `market_rate_max_age_secs`: too old to price a quote.
    RateTooOld,
}

impl RefusalCode {
    /// The code's text (`chain_unreadable`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoSource => "no_source",
            Self::NotReadYet => "not_read_yet",
            Self::CacheExpired => "cache_expired",
            Self::ChainUnreadable => "chain_unreadable",
            Self::ZeroRate => "zero_rate",
            Self::BadFeedAnswer => "bad_feed_answer",
            Self::StaleFeed => "stale_feed",
            Self::Depegged => "depegged",
            Self::ShortHistory => "short_history",
            Self::Manipulated => "manipulated",
            Self::NoQuoteRate => "no_quote_rate",
            Self::AmountOutOfRange => "amount_out_of_range",
            Self::StaleNode => "stale_node",
            Self::SequencerDown => "sequencer_down",
            Self::RateOutOfBounds => "rate_out_of_bounds",
            Self::ThinPool => "thin_pool",
            Self::ExtremeTick => "extreme_tick",
            Self::RateTooOld => "rate_too_old",
        }
    }

    /// The sentence answers carry for the code; the same for every occurrence.
    pub const fn message(self) -> &'static str {
        match self {
            Self::NoSource => "the token has no rate source in [pricing.tokens]",
            Self::NotReadYet => "the rate has not been read yet",
            Self::CacheExpired => "the last reading is too old and the chain cannot be read now",
            Self::ChainUnreadable => "the rate source cannot be read from the chain now",
            Self::ZeroRate => "the source gives a zero rate",
            Self::BadFeedAnswer => "the price feed does not answer a positive price",
            Self::StaleFeed => "the price feed is stale",
            Self::Depegged => "depegged: the stablecoin's peg feed is outside its tolerance",
            Self::ShortHistory => "the pool's observation history is shorter than the TWAP window",
            Self::Manipulated => "the pool's spot price is too far from its TWAP: refused as manipulated",
            Self::NoQuoteRate => "there is no USD rate for the pool's quote asset",
            Self::AmountOutOfRange => "the amount at this rate is out of range",
            Self::StaleNode => "the node's latest block is behind the clock: the market it shows is stale",
            Self::SequencerDown => "the chain's sequencer is down or restarted too recently",
            Self::RateOutOfBounds => "the rate is outside the configured minimum and maximum",
            Self::ThinPool => "the pool's liquidity is below the configured floor",
            Self::ExtremeTick => "the pool's price is outside the range a pool can hold",
            Self::RateTooOld => "the rate is too old to price a quote",
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source read that refused the rate: the code, and the detail for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, as answers say it.
    pub code: RefusalCode,
    /// What was found (the feed's age, the ticks, the transport's error), not yet scrubbed.
    pub detail: String,
}

impl Refusal {
    /// Returns a refusal with `code` and `detail`.
    pub fn new(code: RefusalCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_text() {
        for code in [
            RefusalCode::NoSource,
            RefusalCode::ChainUnreadable,
            RefusalCode::Manipulated,
            RefusalCode::NoQuoteRate,
            RefusalCode::StaleNode,
            RefusalCode::SequencerDown,
            RefusalCode::RateOutOfBounds,
            RefusalCode::ThinPool,
            RefusalCode::ExtremeTick,
            RefusalCode::RateTooOld,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::Value::String(code.as_str().into()));
            assert!(!code.message().contains("://"));
        }
    }
}
