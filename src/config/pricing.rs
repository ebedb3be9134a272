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
    /// Seconds the latest block's timestamp may lag the service clock before every rate
    /// read from the chain is refused (`stale_node`): a node that stopped following the
    /// chain answers an old market.
    pub max_block_lag_secs: u64,
    /// An L2's Chainlink sequencer-uptime feed: while it answers 1 (down), or 0 (up) for
    /// less than `grace_secs` since its `startedAt`, every rate read from the chain is
    /// refused (`sequencer_down`). Unset: no sequencer check (L1s).
    pub sequencer_uptime_feed: Option<SequencerFeedConfig>,
    /// Seconds a quote priced from a market rate stays payable (the shorter of this and
    /// `chain.quote_ttl_secs`, which fixed-price quotes keep): long enough for approve, a
    /// swap and pay on Ethereum mainnet, short enough that the market moves little.
    pub market_quote_ttl_secs: u64,
    /// Seconds a market rate may be old (since the block it was read at, by the service
    /// clock) when a quote is priced from it; older, quotes in that token are refused
    /// (`rate_too_old`).
    pub market_rate_max_age_secs: u64,
    /// Rate source by token symbol.
    pub tokens: BTreeMap<String, RateSourceConfig>,
    /// The one-click buy of a missing token through a Uniswap v3 router (`[pricing.swap]`).
    /// Unset: the checkout page offers `buy_url`, if any.
    pub swap: Option<SwapSettings>,
}

/// `[pricing.swap]`: where the checkout page buys the tokens a wallet is short of, in one
/// exact-output swap through a Uniswap v3 `SwapRouter` (with `SelfPermit` and `Multicall`,
/// as deployed on mainnet), priced by Uniswap's `QuoterV2`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapSettings {
    /// The `SwapRouter`.
    pub router: Address,
    /// The `QuoterV2` that simulates the swap for its price.
    pub quoter: Address,
    /// The deployment's token a member pays the swap with (by symbol; with `permit`, the
    /// page signs a permit to the router instead of sending an approval).
    pub pay_with: String,
    /// The bound above the quoted input the member sees and the swap may not exceed, in
    /// basis points (default 100: 1 %).
    #[serde(default = "default_slippage_bps")]
    pub slippage_bps: u32,
    /// Quoter calls at once, service-wide (default 4): a quote is an `eth_call` an anonymous
    /// caller can ask for, so its share of the node is bounded (503 `swap_busy` past it).
    #[serde(default = "default_quotes_in_flight")]
    pub quotes_in_flight: u32,
    /// The route to each token that can be bought, by symbol.
    pub routes: BTreeMap<String, SwapRoute>,
}

/// The pools from `pay_with` to one token: through the `via` tokens in order, with one
/// pool fee per hop (`fees.len() == via.len() + 1`, each 100, 500, 3000 or 10000).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRoute {
    /// Intermediate tokens (e.g. WETH), from the paying side.
    #[serde(default)]
    pub via: Vec<Address>,
    /// Pool fee of each hop, in hundredths of a basis point, from the paying side.
    pub fees: Vec<u32>,
}

fn default_slippage_bps() -> u32 {
    100
}

fn default_quotes_in_flight() -> u32 {
    4
}

impl SwapSettings {
    /// Checks the table's numbers and shapes (the addresses and symbols are checked against
    /// the deployment by the service): returns the offending field and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let invalid = |field: &str, message: String| Err((format!("pricing.swap.{field}"), message));
        if self.router == Address::ZERO || self.quoter == Address::ZERO {
            return invalid(if self.router == Address::ZERO { "router" } else { "quoter" }, "must not be the zero address".into());
        }
        if self.slippage_bps == 0 || self.slippage_bps > 1_000 {
            return invalid("slippage_bps", "must be 1 to 1000 (0.01 % to 10 %)".into());
        }
        if self.quotes_in_flight == 0 {
            return invalid("quotes_in_flight", "must be at least 1".into());
        }
        if self.routes.is_empty() {
            return invalid("routes", "name at least one token to buy".into());
        }
        for (symbol, route) in &self.routes {
            if *symbol == self.pay_with {
                return invalid(&format!("routes.{symbol}"), "a token cannot be bought with itself".into());
            }
            if route.fees.len() != route.via.len() + 1 || route.via.len() > 3 {
                return invalid(
                    &format!("routes.{symbol}.fees"),
                    format!("one fee per hop: {} via tokens need {} fees (at most 3 via tokens)", route.via.len(), route.via.len() + 1),
                );
            }
            if let Some(fee) = route.fees.iter().find(|f| ![100, 500, 3_000, 10_000].contains(*f)) {
                return invalid(&format!("routes.{symbol}.fees"), format!("{fee} is not a Uniswap v3 fee tier (100, 500, 3000 or 10000)"));
            }
        }
        Ok(())
    }
}

/// An L2 sequencer-uptime feed (Chainlink's `L2 Sequencer Uptime Feed`: answer 0 up, 1
/// down, `startedAt` the time of the last change).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequencerFeedConfig {
    /// The feed (proxy) contract.
    pub address: Address,
    /// Seconds after the sequencer came back up during which rates are still refused
    /// (default 3600, Chainlink's recommendation): prices lag a restart.
    #[serde(default = "default_sequencer_grace_secs")]
    pub grace_secs: u64,
}

fn default_sequencer_grace_secs() -> u64 {
    3_600
}

impl PricingSettings {
    /// Checks the numbers of the table (the sources are checked against the chain by
    /// `RateBook::connect`): returns the offending field and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let invalid = |field: &str, message: &str| Err((format!("pricing.{field}"), message.to_string()));
        if self.max_cache_age_secs == 0 {
            return invalid("max_cache_age_secs", "must be at least 1");
        }
        if self.max_block_lag_secs == 0 {
            return invalid("max_block_lag_secs", "must be at least 1 (a few block times, e.g. 60 on Ethereum mainnet)");
        }
        if self.market_quote_ttl_secs == 0 {
            return invalid("market_quote_ttl_secs", "must be at least 1 (e.g. 300: approve, a swap and pay on Ethereum mainnet)");
        }
        if self.market_rate_max_age_secs == 0 {
            return invalid("market_rate_max_age_secs", "must be at least 1");
        }
        if let Some(feed) = &self.sequencer_uptime_feed
            && feed.address == Address::ZERO
        {
            return invalid("sequencer_uptime_feed.address", "must not be the zero address");
        }
        if let Some(swap) = &self.swap {
            swap.validate()?;
        }
        Ok(())
    }
}

impl Default for PricingSettings {
    fn default() -> Self {
        Self {
            significant_digits: 6,
            poll_ms: 1_000,
            refresh_secs: 60,
            max_cache_age_secs: 300,
            max_block_lag_secs: 60,
            sequencer_uptime_feed: None,
            market_quote_ttl_secs: 300,
            market_rate_max_age_secs: 120,
            discount_token: "TMAI".into(),
            buy_url: None,
            tokens: BTreeMap::new(),
            swap: None,
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
        /// Within it the token is charged at the lower of $1 and the feed.
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
        /// Lowest USD rate per whole token accepted (a feed gone wrong), e.g. `"0.001"`.
        #[serde(default)]
        min_usd: Option<String>,
        /// Highest USD rate per whole token accepted, e.g. `"0.01"`.
        #[serde(default)]
        max_usd: Option<String>,
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
        /// Smallest harmonic-mean liquidity over the window (the pool's own
        /// `secondsPerLiquidityCumulativeX128s`, in the pool's liquidity units, as a decimal
        /// string): a thinner pool is cheap to push. Unset: no floor.
        #[serde(default)]
        min_liquidity: Option<String>,
        /// Lowest USD rate per whole token accepted (a pool pushed and held), e.g.
        /// `"0.001"`.
        #[serde(default)]
        min_usd: Option<String>,
        /// Highest USD rate per whole token accepted, e.g. `"0.01"`.
        #[serde(default)]
        max_usd: Option<String>,
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
    use super::RateSourceConfig;
    use crate::config::Settings;

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
min_liquidity = "1000000000000000000000"
min_usd = "0.001"
max_usd = "0.01"
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
        assert!(matches!(source("TMAI"), RateSourceConfig::UniswapV3 { twap_secs: 1800, quote_feed: Some(_), quote_usd: None, min_liquidity: Some(_), .. }));
        assert!(matches!(source("TMAI"), RateSourceConfig::UniswapV3 { min_usd: Some(min), max_usd: Some(max), .. } if min == "0.001" && max == "0.01"));
        assert_eq!((p.max_block_lag_secs, p.market_quote_ttl_secs, p.market_rate_max_age_secs), (60, 300, 120), "the defaults");
        assert!(p.sequencer_uptime_feed.is_none());
        assert!(matches!(source("USD"), RateSourceConfig::Stable { peg_feed: Some(_), peg_tolerance_bps: 100 }));
        assert!(matches!(source("LINK"), RateSourceConfig::Chainlink { eth_usd_feed: Some(_), .. }));
        assert!(matches!(source("TEST"), RateSourceConfig::Fixed { .. }));
        let typo = toml.replace("twap_secs", "twap_seconds");
        assert!(Settings::from_toml(&typo).unwrap_err().to_string().contains("twap_seconds"));
        let unknown = toml.replace("source = \"fixed\"", "source = \"coingecko\"");
        assert!(Settings::from_toml(&unknown).unwrap_err().to_string().contains("coingecko"));
    }

    #[test]
    fn the_rate_guards_read_from_toml_and_bad_ones_name_the_field() {
        let base = "[chain]\nrpc_url = \"http://x\"\nchain_id = 10\n[pricing]\n";
        let l2 = "max_block_lag_secs = 30\nmarket_quote_ttl_secs = 120\nmarket_rate_max_age_secs = 20\n\
                  sequencer_uptime_feed = { address = \"0x371EAD81c9102C9BF4874A9075FFFf170F2Ee389\" }\n";
        let p = Settings::from_toml(&format!("{base}{l2}")).unwrap().pricing;
        assert_eq!((p.max_block_lag_secs, p.market_quote_ttl_secs, p.market_rate_max_age_secs), (30, 120, 20));
        assert_eq!(p.sequencer_uptime_feed.unwrap().grace_secs, 3_600, "Chainlink's recommended grace by default");
        for (extra, field) in [
            ("max_block_lag_secs = 0", "pricing.max_block_lag_secs"),
            ("market_quote_ttl_secs = 0", "pricing.market_quote_ttl_secs"),
            ("market_rate_max_age_secs = 0", "pricing.market_rate_max_age_secs"),
            ("max_cache_age_secs = 0", "pricing.max_cache_age_secs"),
            ("sequencer_uptime_feed = { address = \"0x0000000000000000000000000000000000000000\" }", "pricing.sequencer_uptime_feed.address"),
            ("sequencer_uptime_feed = { address = \"0x371EAD81c9102C9BF4874A9075FFFf170F2Ee389\", grace = 1 }", "grace"),
        ] {
            let error = Settings::from_toml(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(error.contains(field), "{extra}: {error}");
        }
    }
}
