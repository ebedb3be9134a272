//! Driving Debian's `wrk` from a bench and reading its figures (requests/s, p99).

use anyhow::{Context, Result, bail};

/// What one wrk run measured.
pub struct Figures {
    /// Requests per second.
    pub rps: f64,
    /// wrk's 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
}

/// Fails with a hint when wrk is not installed.
pub fn require() -> Result<()> {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed: run scripts/bench-api (it installs Debian's wrk via tools/wrk.sh)");
    }
    Ok(())
}

/// Seconds wrk drives each route: `ROUTE_SECONDS` (`SECONDS` is also read, but bash keeps
/// its own `SECONDS` counter), 5 by default.
pub fn route_seconds() -> u64 {
    std::env::var("ROUTE_SECONDS").or_else(|_| std::env::var("SECONDS")).ok().and_then(|v| v.parse().ok()).unwrap_or(5)
}

/// Connections wrk keeps open for the maximum-rate runs (`CONNECTIONS=…`). 64, not fewer:
/// a checkout is answered only after its group commit, so with 16 connections the server
/// sat ~25% idle waiting for commits while hello-world was already saturated (its rate is
/// the same at 16 and 64); 64 saturates every route.
pub fn connections() -> u64 {
    std::env::var("CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// Runs wrk against `url` (with a Lua script for POSTs) and reads requests/s and p99.
pub async fn wrk(url: &str, script: Option<&std::path::Path>, seconds: u64) -> Result<Figures> {
    wrk_with(url, script, seconds, connections()).await
}

/// [`wrk`] with `connections` connections.
pub async fn wrk_with(url: &str, script: Option<&std::path::Path>, seconds: u64, connections: u64) -> Result<Figures> {
    let mut command = tokio::process::Command::new("wrk");
    command.args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().await?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if text.contains("Non-2xx") {
        bail!("wrk saw error answers from {url}:\n{text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("99%"))
        .map(str::trim)
        .and_then(parse_time)
        .with_context(|| format!("no 99% line in wrk's output:\n{text}"))?;
    Ok(Figures { rps, p99_ms: p99 })
}

/// Reads a wrk duration (`512.00us`, `3.20ms`, `1.01s`) in milliseconds.
fn parse_time(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(v) = text.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}
