//! The `[pricing]` table: how USD prices become token amounts, and where each token's
//! USD rate comes from.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use serde::Deserialize;

/// The `[pricing]` table; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingSettings {
    /// Significant digits a USD-priced token amount is rounded *up* to (0: none).
    pub significant_digits: u8,
    /// Milliseconds between looks at the chain's head; the rates are read again only when
    /// a new block came (at most once per block), and at least every `refresh_secs`.
    pub poll_ms: u64,
    /// Seconds after which rates are read again even without a new block (0: only on new
    /// blocks).
    pub refresh_secs: u64,
    /// Seconds a cached reading may be old (by the service clock) before quotes in that
    /// token are refused: the rates could not be refreshed for that long.
    pub max_cache_age_secs: u64,
    /// The token whose price is `tmai_discount_percent` below the USD price (by symbol).
    pub discount_token: String,
    /// Where the checkout page sends a member whose balance is short: `{token}` and
    /// `{amount}` (whole tokens missing) are filled in. Unset: no link.
    pub buy_url: Option<String>,
    /// Rate source by token symbol.
    pub tokens: BTreeMap<String, RateSourceConfig>,
}

impl Default for PricingSettings {
    fn default() -> Self {
        Self {
            significant_digits: 6,
            poll_ms: 1_000,
            refresh_secs: 60,
            max_cache_age_secs: 300,
            discount_token: "TMAI".into(),
            buy_url: None,
            tokens: BTreeMap::new(),
        }
    }
}

/// A Chainlink `AggregatorV3Interface` feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// The feed (proxy) contract.
    pub address: Address,
    /// The feed's decimals (checked against the feed at start-up).
    pub decimals: u8,
    /// Seconds the latest answer may be old (the feed's heartbeat plus a margin).
    pub max_age_secs: u64,
}

/// Where one token's USD rate comes from (`source = "…"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum RateSourceConfig {
    /// A USD stablecoin: one dollar per token, refused when its peg feed is off by more than
    /// `peg_tolerance_bps`.
    Stable {
        /// Optional Chainlink token/USD feed guarding the peg.
        #[serde(default)]
        peg_feed: Option<FeedConfig>,
        /// Largest distance from $1 the peg feed may show, in basis points (default 100).
        #[serde(default = "default_peg_tolerance_bps")]
        peg_tolerance_bps: u32,
    },
    /// A Chainlink feed: token/USD, or token/ETH times an ETH/USD feed.
    Chainlink {
        /// token/USD (or token/ETH when `eth_usd_feed` is set).
        feed: FeedConfig,
        /// ETH/USD, multiplied in when the feed is token/ETH.
        #[serde(default)]
        eth_usd_feed: Option<FeedConfig>,
    },
    /// A Uniswap v3 pool's time-weighted average price, times the quote asset's USD rate.
    UniswapV3 {
        /// The pool holding the token and its quote asset.
        pool: Address,
        /// TWAP window in seconds (e.g. 1800); quotes are refused while the pool's
        /// observation history is shorter.
        twap_secs: u32,
        /// Largest distance between the spot price and the TWAP, in basis points, before
        /// quotes are refused (a price pushed within a block).
        max_spot_deviation_bps: u32,
        /// The quote asset's USD feed (WETH → ETH/USD).
        #[serde(default)]
        quote_feed: Option<FeedConfig>,
        /// The quote asset's fixed USD rate (a stablecoin quote asset), instead of a feed.
        #[serde(default)]
        quote_usd: Option<String>,
    },
    /// A configured USD rate per whole token (tests, tokens without a market).
    Fixed {
        /// USD per whole token, e.g. `"0.0025"`.
        usd: String,
    },
}

fn default_peg_tolerance_bps() -> u32 {
    100
}

impl RateSourceConfig {
    /// The source's name, as shown by the API and `tmai-pay rates`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Stable { .. } => "stable",
            Self::Chainlink { .. } => "chainlink",
            Self::UniswapV3 { .. } => "uniswap_v3",
            Self::Fixed { .. } => "fixed",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    use super::RateSourceConfig;

    #[test]
    fn every_source_reads_from_toml() {
        let toml = r#"
[chain]
rpc_url = "http://x"
chain_id = 1
[pricing]
significant_digits = 5
[pricing.tokens.TMAI]
source = "uniswap_v3"
pool = "0x1111111111111111111111111111111111111111"
twap_secs = 1800
max_spot_deviation_bps = 500
quote_feed = { address = "0x2222222222222222222222222222222222222222", decimals = 8, max_age_secs = 3600 }
[pricing.tokens.USD]
source = "stable"
peg_feed = { address = "0x3333333333333333333333333333333333333333", decimals = 8, max_age_secs = 86400 }
[pricing.tokens.LINK]
source = "chainlink"
feed = { address = "0x4444444444444444444444444444444444444444", decimals = 18, max_age_secs = 3600 }
eth_usd_feed = { address = "0x2222222222222222222222222222222222222222", decimals = 8, max_age_secs = 3600 }
[pricing.tokens.TEST]
source = "fixed"
usd = "0.25"
"#;
        let settings = Settings::from_toml(toml).unwrap();
        let p = &settings.pricing;
        assert_eq!(p.significant_digits, 5);
        let source = |symbol: &str| p.tokens.iter().find(|(k, _)| k.eq_ignore_ascii_case(symbol)).map(|(_, v)| v.clone()).unwrap();
        assert!(matches!(source("TMAI"), RateSourceConfig::UniswapV3 { twap_secs: 1800, quote_feed: Some(_), quote_usd: None, .. }));
        assert!(matches!(source("USD"), RateSourceConfig::Stable { peg_feed: Some(_), peg_tolerance_bps: 100 }));
        assert!(matches!(source("LINK"), RateSourceConfig::Chainlink { eth_usd_feed: Some(_), .. }));
        assert!(matches!(source("TEST"), RateSourceConfig::Fixed { .. }));
        let typo = toml.replace("twap_secs", "twap_seconds");
        assert!(Settings::from_toml(&typo).unwrap_err().to_string().contains("twap_seconds"));
        let unknown = toml.replace("source = \"fixed\"", "source = \"coingecko\"");
        assert!(Settings::from_toml(&unknown).unwrap_err().to_string().contains("coingecko"));
    }
}
