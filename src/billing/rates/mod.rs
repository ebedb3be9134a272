//! Live USD rates, one source per token (`[pricing.tokens.<SYMBOL>]`): a stablecoin (with
//! an optional Chainlink peg guard), a Chainlink feed, a Uniswap v3 TWAP, or a fixed rate.
//!
//! A [`RateBook`] is checked against the chain at start-up (a bad pool, feed or rate stops
//! the service naming the field), then refreshed by one task at most once per block (and
//! every `refresh_secs`); every checkout reads the cache, never the chain. A token whose
//! rate cannot be read or fails a guard is refused on its own, with a fixed reason code
//! ([`refusal`]; the source's own words, scrubbed of URLs, go to the log only); the other
//! tokens keep working.

pub mod chainlink;
pub mod refusal;
pub mod report;
pub mod uniswap;

use std::{collections::BTreeMap, sync::RwLock, time::Duration};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
};
use tokio_util::sync::CancellationToken;

pub use self::refusal::{Refusal, RefusalCode};
use crate::{
    chain::deployment::TokenInfo,
    clock::Clock,
    config::{FeedConfig, PricingSettings, RateSourceConfig},
    money::UsdRate,
};

/// Why the pricing configuration is refused at start-up; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {field}: {message}")]
pub struct ConfigError {
    /// The offending field, e.g. `pricing.tokens.TMAI.pool`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(field: String, message: String) -> Self {
        Self { field, message }
    }
}

async fn require_code(provider: &DynProvider, field: &str, address: Address) -> Result<(), ConfigError> {
    let code = provider.get_code_at(address).await.map_err(|e| ConfigError::new(field.into(), format!("cannot read the chain: {e}")))?;
    if code.is_empty() {
        return Err(ConfigError::new(field.into(), format!("no contract at {address} on this chain")));
    }
    Ok(())
}

/// A token's source, checked against the chain.
#[derive(Debug, Clone)]
enum Source {
    Stable {
        peg_feed: Option<FeedConfig>,
        tolerance_bps: u32,
    },
    Chainlink {
        feed: FeedConfig,
        eth_usd: Option<FeedConfig>,
        bounds: Bounds,
    },
    Uniswap {
        pool: uniswap::PoolInfo,
        window: u32,
        max_deviation_bps: u32,
        min_liquidity: Option<u128>,
        quote_feed: Option<FeedConfig>,
        quote_usd: Option<UsdRate>,
        bounds: Bounds,
    },
    Fixed(UsdRate),
}

impl Source {
    /// Whether the rate is read from the chain (and so moves with the market): every
    /// source but a fixed rate and a stablecoin without a peg feed.
    fn reads_chain(&self) -> bool {
        !matches!(self, Self::Fixed(_) | Self::Stable { peg_feed: None, .. })
    }
}

/// A market source's configured `min_usd` and `max_usd`.
#[derive(Debug, Clone, Copy, Default)]
struct Bounds {
    min: Option<UsdRate>,
    max: Option<UsdRate>,
}

impl Bounds {
    fn check(self, rate: UsdRate) -> Result<UsdRate, Refusal> {
        let below = self.min.is_some_and(|min| rate < min);
        let above = self.max.is_some_and(|max| rate > max);
        if below || above {
            let shown = |b: Option<UsdRate>| b.map_or_else(|| "-".to_string(), |r| r.to_decimal());
            let detail = format!("the rate ${rate} is outside min_usd {} .. max_usd {}", shown(self.min), shown(self.max));
            return Err(Refusal::new(RefusalCode::RateOutOfBounds, detail));
        }
        Ok(rate)
    }
}

/// A good reading of a token's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// USD per whole token.
    pub rate: UsdRate,
    /// The source's name (`stable`, `chainlink`, `uniswap_v3`, `fixed`).
    pub source: &'static str,
    /// The block it was read at.
    pub block: u64,
    /// The block's timestamp.
    pub block_time: u64,
    /// Unix time (service clock) it was read at.
    pub read_at: u64,
    /// Whether the rate moves with a market (read from the chain): quotes priced from it
    /// live `market_quote_ttl_secs` and need a rate at most `market_rate_max_age_secs` old.
    pub market: bool,
}

impl Reading {
    /// Returns the reading's age at `now` (service clock): since the block it was read at,
    /// or since it was read when the chain's time runs ahead of the clock.
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.block_time.min(self.read_at))
    }
}

/// Why a token's rate cannot be used now. Its `Display` and `reason` are fixed texts of
/// `code`, fit for anonymous answers; `detail` is for the log and the operator only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {symbol} rate is unavailable: {reason}")]
pub struct RateUnavailable {
    /// Token symbol.
    pub symbol: String,
    /// Why, as a code (stale feed, manipulated pool, depeg, unreadable chain…).
    pub code: RefusalCode,
    /// The code's sentence ([`RefusalCode::message`]).
    pub reason: String,
    /// What the source found, every URL redacted: never put in an answer.
    pub detail: String,
}

impl RateUnavailable {
    /// Returns the refusal of `symbol`'s rate for `code`, with `detail` (already scrubbed).
    pub fn new(symbol: &str, code: RefusalCode, detail: &str) -> Self {
        Self { symbol: symbol.to_string(), code, reason: code.message().to_string(), detail: detail.to_string() }
    }
}

#[derive(Debug, Clone)]
enum Health {
    Pending,
    Good(Reading),
    /// `detail` is already scrubbed of URLs.
    Refused {
        code: RefusalCode,
        detail: String,
        at: u64,
    },
}

#[derive(Debug)]
struct TokenRate {
    symbol: String,
    token: Address,
    decimals: u8,
    source: Source,
    source_name: &'static str,
    health: RwLock<Health>,
}

/// One token's rate as `/readyz`, `GET /v1/plans` and `tmai-pay rates` show it.
#[derive(Debug, Clone)]
pub struct RateStatus {
    /// Token symbol.
    pub symbol: String,
    /// Token address.
    pub token: Address,
    /// Token decimals.
    pub decimals: u8,
    /// Source name.
    pub source: &'static str,
    /// The current reading, or why there is none.
    pub current: Result<Reading, RateUnavailable>,
    /// Seconds since the reading (or the refusal).
    pub age_secs: u64,
}

/// The cached rates of every token that has a source.
#[derive(Debug)]
pub struct RateBook {
    tokens: Vec<TokenRate>,
    settings: PricingSettings,
    provider: Option<DynProvider>,
    clock: Clock,
    last_block: std::sync::Mutex<Option<(u64, u64)>>,
}

impl RateBook {
    /// An empty book (no token has a source): USD-priced plans are sold in no token.
    pub fn empty(clock: Clock) -> Self {
        Self { tokens: Vec::new(), settings: PricingSettings::default(), provider: None, clock, last_block: Default::default() }
    }

    /// Checks `settings` against the deployment's `tokens` and the chain, and returns the
    /// book (not yet read: call [`RateBook::refresh`]).
    pub async fn connect(settings: &PricingSettings, tokens: &[TokenInfo], provider: DynProvider, clock: Clock) -> Result<Self, ConfigError> {
        settings.validate().map_err(|(field, message)| ConfigError::new(field, message))?;
        if let Some(feed) = &settings.sequencer_uptime_feed {
            chainlink::check_sequencer(&provider, "pricing.sequencer_uptime_feed", feed).await?;
        }
        let mut book = Vec::new();
        for (symbol, config) in &settings.tokens {
            let field = format!("pricing.tokens.{symbol}");
            let token = tokens.iter().find(|t| t.symbol.eq_ignore_ascii_case(symbol)).ok_or_else(|| {
                let known: Vec<&str> = tokens.iter().map(|t| t.symbol.as_str()).collect();
                ConfigError::new(field.clone(), format!("unknown token (the deployment has {})", known.join(", ")))
            })?;
            let source = check_source(&provider, &field, config, token).await?;
            book.push(TokenRate {
                symbol: token.symbol.clone(),
                token: token.address,
                decimals: token.decimals,
                source,
                source_name: config.name(),
                health: RwLock::new(Health::Pending),
            });
        }
        Ok(Self { tokens: book, settings: settings.clone(), provider: Some(provider), clock, last_block: Default::default() })
    }

    /// The pricing settings.
    pub fn settings(&self) -> &PricingSettings {
        &self.settings
    }

    /// Whether `token` has a rate source.
    pub fn prices(&self, token: Address) -> bool {
        self.tokens.iter().any(|t| t.token == token)
    }

    /// Returns `token`'s current rate, or why it cannot be used (never reads the chain).
    pub fn current(&self, token: Address) -> Result<Reading, RateUnavailable> {
        let Some(t) = self.tokens.iter().find(|t| t.token == token) else {
            return Err(RateUnavailable::new(&token.to_string(), RefusalCode::NoSource, ""));
        };
        match &*t.health.read().expect("rate lock") {
            Health::Pending => Err(RateUnavailable::new(&t.symbol, RefusalCode::NotReadYet, "")),
            Health::Refused { code, detail, .. } => Err(RateUnavailable::new(&t.symbol, *code, detail)),
            Health::Good(reading) => {
                let age = self.clock.now().saturating_sub(reading.read_at);
                let rate_age = reading.age(self.clock.now());
                if age > self.settings.max_cache_age_secs {
                    let detail = format!("last read {age} s ago (max_cache_age_secs is {})", self.settings.max_cache_age_secs);
                    Err(RateUnavailable::new(&t.symbol, RefusalCode::CacheExpired, &detail))
                } else if reading.market && rate_age > self.settings.market_rate_max_age_secs {
                    let detail = format!(
                        "the rate is of block {}, {rate_age} s ago (market_rate_max_age_secs is {})",
                        reading.block, self.settings.market_rate_max_age_secs
                    );
                    Err(RateUnavailable::new(&t.symbol, RefusalCode::RateTooOld, &detail))
                } else {
                    Ok(*reading)
                }
            }
        }
    }

    /// Every token's status.
    pub fn statuses(&self) -> Vec<RateStatus> {
        let now = self.clock.now();
        self.tokens
            .iter()
            .map(|t| {
                let at = match &*t.health.read().expect("rate lock") {
                    Health::Good(r) => r.read_at,
                    Health::Refused { at, .. } => *at,
                    Health::Pending => now,
                };
                let current = self.current(t.token);
                RateStatus { symbol: t.symbol.clone(), token: t.token, decimals: t.decimals, source: t.source_name, current, age_secs: now.saturating_sub(at) }
            })
            .collect()
    }

    /// Reads every token's rate at the latest block (all at once) and caches the results.
    pub async fn refresh(&self) {
        let Some(provider) = &self.provider else { return };
        let now = self.clock.now();
        let block = match provider.get_block_by_number(BlockNumberOrTag::Latest).await {
            Ok(Some(b)) => b,
            Ok(None) | Err(_) => {
                // Kept as it is: a good reading ages out after max_cache_age_secs.
                tracing::warn!("rates: the latest block cannot be read");
                return;
            }
        };
        let (number, time) = (block.header.number, block.header.timestamp);
        // Feed ages and the sequencer's grace run to the later of the block's time and the
        // clock; a block further behind the clock than the bound refuses every rate read
        // from the chain (a node that stopped following it shows an old market).
        let feed_now = time.max(now);
        let lag = now.saturating_sub(time);
        let node = if lag > self.settings.max_block_lag_secs {
            Err(Refusal::new(
                RefusalCode::StaleNode,
                format!("block {number} is {lag} s behind the clock (max_block_lag_secs is {})", self.settings.max_block_lag_secs),
            ))
        } else if let Some(feed) = &self.settings.sequencer_uptime_feed {
            chainlink::sequencer_up(provider, feed, number, feed_now).await
        } else {
            Ok(())
        };
        let node = &node;
        let reads = self.tokens.iter().map(|t| async move {
            match node {
                Err(refusal) if t.source.reads_chain() => Err(refusal.clone()),
                _ => read_source(provider, &t.source, number, feed_now).await,
            }
        });
        let results = futures::future::join_all(reads).await;
        for (t, result) in self.tokens.iter().zip(results) {
            let health = match result {
                Ok(rate) if rate.is_zero() => Health::Refused { code: RefusalCode::ZeroRate, detail: String::new(), at: now },
                Ok(rate) => {
                    Health::Good(Reading { rate, source: t.source_name, block: number, block_time: time, read_at: now, market: t.source.reads_chain() })
                }
                Err(Refusal { code, detail }) => Health::Refused { code, detail: crate::config::scrubbed_urls(&detail), at: now },
            };
            match &health {
                Health::Good(r) => {
                    metrics::gauge!("tmai_rate_usd", "token" => t.symbol.clone()).set(rate_f64(r.rate));
                    metrics::gauge!("tmai_rate_healthy", "token" => t.symbol.clone()).set(1.0);
                }
                Health::Refused { code, detail, .. } => {
                    metrics::gauge!("tmai_rate_healthy", "token" => t.symbol.clone()).set(0.0);
                    metrics::counter!("tmai_rate_refusals_total", "token" => t.symbol.clone()).increment(1);
                    tracing::warn!(token = %t.symbol, %code, %detail, "rate refused");
                }
                Health::Pending => {}
            }
            metrics::gauge!("tmai_rate_read_block", "token" => t.symbol.clone()).set(number as f64);
            *t.health.write().expect("rate lock") = health;
        }
        *self.last_block.lock().expect("rate lock") = Some((number, now));
    }

    /// Refreshes when the head moved (at most once per block) or `refresh_secs` passed.
    pub async fn tick(&self) {
        let Some(provider) = &self.provider else { return };
        let Ok(head) = provider.get_block_number().await else { return };
        let now = self.clock.now();
        let due = match *self.last_block.lock().expect("rate lock") {
            None => true,
            Some((block, at)) => head != block || (self.settings.refresh_secs > 0 && now.saturating_sub(at) >= self.settings.refresh_secs),
        };
        if due {
            self.refresh().await;
        }
        for t in &self.tokens {
            if let Health::Good(r) = &*t.health.read().expect("rate lock") {
                metrics::gauge!("tmai_rate_age_seconds", "token" => t.symbol.clone()).set(now.saturating_sub(r.read_at) as f64);
            }
        }
    }

    /// Keeps the book fresh until `cancel`.
    pub async fn run(self: std::sync::Arc<Self>, cancel: CancellationToken) {
        if self.tokens.is_empty() {
            return;
        }
        let every = Duration::from_millis(self.settings.poll_ms.max(10));
        loop {
            self.tick().await;
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Rates by token address, for display.
    pub fn by_token(&self) -> BTreeMap<Address, RateStatus> {
        self.statuses().into_iter().map(|s| (s.token, s)).collect()
    }
}

fn rate_f64(rate: UsdRate) -> f64 {
    rate.to_decimal().parse().unwrap_or(0.0)
}

async fn check_source(provider: &DynProvider, field: &str, config: &RateSourceConfig, token: &TokenInfo) -> Result<Source, ConfigError> {
    Ok(match config {
        RateSourceConfig::Stable { peg_feed, peg_tolerance_bps } => {
            if let Some(feed) = peg_feed {
                chainlink::check(provider, &format!("{field}.peg_feed"), feed).await?;
            }
            if *peg_tolerance_bps == 0 || *peg_tolerance_bps >= 10_000 {
                return Err(ConfigError::new(format!("{field}.peg_tolerance_bps"), "must be between 1 and 9999".into()));
            }
            Source::Stable { peg_feed: peg_feed.clone(), tolerance_bps: *peg_tolerance_bps }
        }
        RateSourceConfig::Chainlink { feed, eth_usd_feed, min_usd, max_usd } => {
            chainlink::check(provider, &format!("{field}.feed"), feed).await?;
            if let Some(eth) = eth_usd_feed {
                chainlink::check(provider, &format!("{field}.eth_usd_feed"), eth).await?;
            }
            Source::Chainlink { feed: feed.clone(), eth_usd: eth_usd_feed.clone(), bounds: bounds(field, min_usd, max_usd)? }
        }
        RateSourceConfig::UniswapV3 { pool, twap_secs, max_spot_deviation_bps, quote_feed, quote_usd, min_liquidity, min_usd, max_usd } => {
            if *twap_secs == 0 {
                return Err(ConfigError::new(format!("{field}.twap_secs"), "must be at least 1 (e.g. 1800)".into()));
            }
            if *max_spot_deviation_bps == 0 {
                return Err(ConfigError::new(format!("{field}.max_spot_deviation_bps"), "must be at least 1".into()));
            }
            let info = uniswap::check(provider, &format!("{field}.pool"), *pool, token.address, token.decimals).await?;
            let quote_usd = match (quote_feed, quote_usd) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(ConfigError::new(format!("{field}.quote_feed"), "set exactly one of quote_feed (a Chainlink feed) and quote_usd".into()));
                }
                (Some(feed), None) => {
                    chainlink::check(provider, &format!("{field}.quote_feed"), feed).await?;
                    None
                }
                (None, Some(text)) => Some(positive_rate(&format!("{field}.quote_usd"), text)?),
            };
            let min_liquidity = match min_liquidity {
                None => None,
                Some(text) => Some(text.trim().parse::<u128>().ok().filter(|l| *l > 0).ok_or_else(|| {
                    ConfigError::new(format!("{field}.min_liquidity"), format!("{text:?} is not a positive whole number of liquidity units"))
                })?),
            };
            Source::Uniswap {
                pool: info,
                window: *twap_secs,
                max_deviation_bps: *max_spot_deviation_bps,
                min_liquidity,
                quote_feed: quote_feed.clone(),
                quote_usd,
                bounds: bounds(field, min_usd, max_usd)?,
            }
        }
        RateSourceConfig::Fixed { usd } => Source::Fixed(positive_rate(&format!("{field}.usd"), usd)?),
    })
}

fn positive_rate(field: &str, text: &str) -> Result<UsdRate, ConfigError> {
    let rate = UsdRate::parse(text).map_err(|e| ConfigError::new(field.into(), e.to_string()))?;
    if rate.is_zero() {
        return Err(ConfigError::new(field.into(), "must be greater than zero".into()));
    }
    Ok(rate)
}

/// Parses a market source's `min_usd` and `max_usd` (each positive, the minimum below the
/// maximum).
fn bounds(field: &str, min: &Option<String>, max: &Option<String>) -> Result<Bounds, ConfigError> {
    let min = min.as_deref().map(|text| positive_rate(&format!("{field}.min_usd"), text)).transpose()?;
    let max = max.as_deref().map(|text| positive_rate(&format!("{field}.max_usd"), text)).transpose()?;
    if let (Some(low), Some(high)) = (min, max)
        && low >= high
    {
        return Err(ConfigError::new(format!("{field}.max_usd"), format!("must be above min_usd ({low})")));
    }
    Ok(Bounds { min, max })
}

/// Why a rate whose product overflows is refused.
fn out_of_range() -> Refusal {
    Refusal::new(RefusalCode::AmountOutOfRange, "the rate is out of range")
}

/// Reads `source` at `block`; feed ages run to `now` ([`chainlink::read`]).
async fn read_source(provider: &DynProvider, source: &Source, block: u64, now: u64) -> Result<UsdRate, Refusal> {
    match source {
        Source::Fixed(rate) => Ok(*rate),
        Source::Stable { peg_feed: None, .. } => Ok(UsdRate::ONE),
        Source::Stable { peg_feed: Some(feed), tolerance_bps } => {
            let peg = chainlink::read(provider, feed, block, now).await?;
            if !within_peg(peg, *tolerance_bps).ok_or_else(out_of_range)? {
                return Err(Refusal::new(RefusalCode::Depegged, format!("the peg feed says ${peg}, more than {tolerance_bps} bps from $1")));
            }
            // Within the tolerance the buyer is never charged as if the coin were worth
            // more than $1, nor more than the feed says it is worth.
            Ok(peg.min(UsdRate::ONE))
        }
        Source::Chainlink { feed, eth_usd, bounds } => {
            let rate = chainlink::read(provider, feed, block, now).await?;
            let rate = match eth_usd {
                Some(eth) => rate.times(chainlink::read(provider, eth, block, now).await?).ok_or_else(out_of_range)?,
                None => rate,
            };
            bounds.check(rate)
        }
        Source::Uniswap { pool, window, max_deviation_bps, min_liquidity, quote_feed, quote_usd, bounds } => {
            let price = uniswap::read(provider, pool, *window, *max_deviation_bps, *min_liquidity, block).await?;
            let quote = match (quote_feed, quote_usd) {
                (_, Some(rate)) => *rate,
                (Some(feed), None) => chainlink::read(provider, feed, block, now).await?,
                (None, None) => return Err(Refusal::new(RefusalCode::NoQuoteRate, "neither quote_feed nor quote_usd")),
            };
            bounds.check(price.twap.times(quote).ok_or_else(out_of_range)?)
        }
    }
}

/// Whether `peg` is within `tolerance_bps` of $1 (checked arithmetic; `None` on overflow).
fn within_peg(peg: UsdRate, tolerance_bps: u32) -> Option<bool> {
    let off = peg.0.abs_diff(UsdRate::ONE.0).checked_mul(U256::from(10_000u64))?;
    Some(off <= UsdRate::ONE.0.checked_mul(U256::from(tolerance_bps))?)
}
