//! Live USD rates, one source per token (`[pricing.tokens.<SYMBOL>]`): a stablecoin (with
//! an optional Chainlink peg guard), a Chainlink feed, a Uniswap v3 TWAP, or a fixed rate.
//!
//! A [`RateBook`] is checked against the chain at start-up (a bad pool, feed or rate stops
//! the service naming the field), then refreshed by one task at most once per block (and
//! every `refresh_secs`); every checkout reads the cache, never the chain. A token whose
//! rate cannot be read or fails a guard is refused on its own, with the reason; the other
//! tokens keep working.

pub mod chainlink;
pub mod config;
pub mod report;
pub mod uniswap;

use std::{collections::BTreeMap, sync::RwLock, time::Duration};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
};
use tokio_util::sync::CancellationToken;

pub use self::config::{FeedConfig, PricingSettings, RateSourceConfig};
use super::pricing::UsdRate;
use crate::{chain::deployment::TokenInfo, clock::Clock};

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
    Stable { peg_feed: Option<FeedConfig>, tolerance_bps: u32 },
    Chainlink { feed: FeedConfig, eth_usd: Option<FeedConfig> },
    Uniswap { pool: uniswap::PoolInfo, window: u32, max_deviation_bps: u32, quote_feed: Option<FeedConfig>, quote_usd: Option<UsdRate> },
    Fixed(UsdRate),
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
    /// Unix time (service clock) it was read at.
    pub read_at: u64,
}

/// Why a token's rate cannot be used now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {symbol} rate is unavailable: {reason}")]
pub struct RateUnavailable {
    /// Token symbol.
    pub symbol: String,
    /// Why (stale feed, manipulated pool, depeg, RPC failure…).
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Health {
    Pending,
    Good(Reading),
    Refused { reason: String, at: u64 },
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
            return Err(RateUnavailable { symbol: token.to_string(), reason: "the token has no rate source in [pricing.tokens]".into() });
        };
        let unavailable = |reason: String| RateUnavailable { symbol: t.symbol.clone(), reason };
        match &*t.health.read().expect("rate lock") {
            Health::Pending => Err(unavailable("not read yet".into())),
            Health::Refused { reason, .. } => Err(unavailable(reason.clone())),
            Health::Good(reading) => {
                let age = self.clock.now().saturating_sub(reading.read_at);
                if age > self.settings.max_cache_age_secs {
                    Err(unavailable(format!("last read {age} s ago (max_cache_age_secs is {}): the chain cannot be read", self.settings.max_cache_age_secs)))
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
                let current = match &*t.health.read().expect("rate lock") {
                    Health::Pending => Err(RateUnavailable { symbol: t.symbol.clone(), reason: "not read yet".into() }),
                    Health::Refused { reason, .. } => Err(RateUnavailable { symbol: t.symbol.clone(), reason: reason.clone() }),
                    Health::Good(_) => self.current(t.token),
                };
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
        let reads = self.tokens.iter().map(|t| read_source(provider, &t.source, number, time));
        let results = futures::future::join_all(reads).await;
        for (t, result) in self.tokens.iter().zip(results) {
            let health = match result {
                Ok(rate) if rate.is_zero() => Health::Refused { reason: "the source gives a zero rate".into(), at: now },
                Ok(rate) => Health::Good(Reading { rate, source: t.source_name, block: number, read_at: now }),
                Err(reason) => Health::Refused { reason, at: now },
            };
            match &health {
                Health::Good(r) => {
                    metrics::gauge!("tmai_rate_usd", "token" => t.symbol.clone()).set(rate_f64(r.rate));
                    metrics::gauge!("tmai_rate_healthy", "token" => t.symbol.clone()).set(1.0);
                }
                Health::Refused { reason, .. } => {
                    metrics::gauge!("tmai_rate_healthy", "token" => t.symbol.clone()).set(0.0);
                    metrics::counter!("tmai_rate_refusals_total", "token" => t.symbol.clone()).increment(1);
                    tracing::warn!(token = %t.symbol, %reason, "rate refused");
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
        RateSourceConfig::Chainlink { feed, eth_usd_feed } => {
            chainlink::check(provider, &format!("{field}.feed"), feed).await?;
            if let Some(eth) = eth_usd_feed {
                chainlink::check(provider, &format!("{field}.eth_usd_feed"), eth).await?;
            }
            Source::Chainlink { feed: feed.clone(), eth_usd: eth_usd_feed.clone() }
        }
        RateSourceConfig::UniswapV3 { pool, twap_secs, max_spot_deviation_bps, quote_feed, quote_usd } => {
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
            Source::Uniswap { pool: info, window: *twap_secs, max_deviation_bps: *max_spot_deviation_bps, quote_feed: quote_feed.clone(), quote_usd }
        }
        RateSourceConfig::Fixed { usd } => Source::Fixed(positive_rate(&format!("{field}.usd"), usd)?),
    })
}

fn positive_rate(field: &str, text: &str) -> Result<UsdRate, ConfigError> {
    let rate = UsdRate::parse(text).map_err(|m| ConfigError::new(field.into(), m))?;
    if rate.is_zero() {
        return Err(ConfigError::new(field.into(), "must be greater than zero".into()));
    }
    Ok(rate)
}

async fn read_source(provider: &DynProvider, source: &Source, block: u64, time: u64) -> Result<UsdRate, String> {
    match source {
        Source::Fixed(rate) => Ok(*rate),
        Source::Stable { peg_feed: None, .. } => Ok(UsdRate::ONE),
        Source::Stable { peg_feed: Some(feed), tolerance_bps } => {
            let peg = chainlink::read(provider, feed, block, time).await?;
            let off = peg.0.abs_diff(UsdRate::ONE.0);
            if off * U256::from(10_000u64) > UsdRate::ONE.0 * U256::from(*tolerance_bps) {
                return Err(format!("depegged: the peg feed says ${peg}, more than {tolerance_bps} bps from $1"));
            }
            Ok(UsdRate::ONE)
        }
        Source::Chainlink { feed, eth_usd } => {
            let rate = chainlink::read(provider, feed, block, time).await?;
            match eth_usd {
                Some(eth) => Ok(rate.times(chainlink::read(provider, eth, block, time).await?)),
                None => Ok(rate),
            }
        }
        Source::Uniswap { pool, window, max_deviation_bps, quote_feed, quote_usd } => {
            let price = uniswap::read(provider, pool, *window, *max_deviation_bps, block).await?;
            let quote = match (quote_feed, quote_usd) {
                (_, Some(rate)) => *rate,
                (Some(feed), None) => chainlink::read(provider, feed, block, time).await?,
                (None, None) => return Err("no USD rate for the pool's quote asset".into()),
            };
            Ok(price.twap.times(quote))
        }
    }
}
