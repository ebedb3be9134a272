//! `tmai-pay rates`: every priced token's current rate, source, age and guard status, read
//! from the chain once, as a merchant checks a new configuration.

use std::fmt::Write;

use alloy::providers::{Provider, ProviderBuilder};
use anyhow::Context;

use super::RateBook;
use crate::{chain::deployment::Deployment, clock::Clock, config::Settings};

/// Checks the pricing configuration against the chain, reads every rate once, and returns
/// the report with whether every rate is healthy.
pub async fn report(settings: &Settings) -> anyhow::Result<(String, bool)> {
    let deployment = Deployment::read(&settings.deployment_file)?;
    let url = settings.chain.rpc_url.parse().with_context(|| format!("chain.rpc_url {} is not a URL", crate::config::redacted(&settings.chain.rpc_url)))?;
    let provider = ProviderBuilder::new().connect_http(url).erased();
    let book = RateBook::connect(&settings.pricing, &deployment.tokens, provider, Clock::system()).await?;
    book.refresh().await;
    let mut out = String::new();
    let statuses = book.statuses();
    if statuses.is_empty() {
        out.push_str("no token has a rate source ([pricing.tokens]): plans are priced in tokens only\n");
    }
    let _ = writeln!(out, "{:<8} {:<11} {:>24} {:>7} {:>6}  status", "token", "source", "usd_per_token", "block", "age_s");
    let mut healthy = true;
    for s in &statuses {
        match &s.current {
            Ok(r) => {
                let _ = writeln!(out, "{:<8} {:<11} {:>24} {:>7} {:>6}  ok", s.symbol, s.source, r.rate.to_decimal(), r.block, s.age_secs);
            }
            Err(e) => {
                healthy = false;
                let detail = if e.detail.is_empty() { String::new() } else { format!(" ({})", e.detail) };
                let _ = writeln!(out, "{:<8} {:<11} {:>24} {:>7} {:>6}  refused: {} {}{detail}", s.symbol, s.source, "-", "-", s.age_secs, e.code, e.reason);
            }
        }
    }
    Ok((out, healthy))
}
