//! Logging set-up: `tracing` with an `RUST_LOG`-style filter, human or JSON output.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber. `json` switches to one JSON object per line.
pub fn init(json: bool) {
    init_with_default(json, "info");
}

/// [`init`] with `default` as the filter when `RUST_LOG` is not set (the benchmarks use
/// `warn`: a log line per watcher pass would be part of what they measure).
pub fn init_with_default(json: bool, default: &str) {
    let mut directives = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_string());
    // The platform certificate verifier logs every refused webhook receiver's certificate
    // at ERROR; the delivery records that refusal as a failed attempt with its reason, which
    // is where a merchant looks, and a receiver's bad certificate is not the service's error.
    if !directives.contains("rustls_platform_verifier") {
        directives.push_str(",rustls_platform_verifier=off");
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
