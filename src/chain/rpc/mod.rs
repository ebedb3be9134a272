//! The service's JSON-RPC client: one or more nodes of one chain (`chain.rpc_url`, then
//! `chain.fallback_rpc_urls` in order), each behind a retry layer, and a failover layer over
//! them. Both are tower layers on the transport, so every read — the watcher's, the
//! minter's, the rates', a request's — rides out a node that drops, cuts, or refuses calls
//! for a moment, and no caller matches error strings.
//!
//! - **Retry** ([`RetryService`]): an attempt that fails in a way a repeat can cure (the
//!   connection failed or was cut, an HTTP 429 or 5xx, a truncated or empty answer, a
//!   provider's rate-limit code, no answer in [`ATTEMPT_TIMEOUT`]) is repeated, up to
//!   [`RETRIES`] times: the first time at once (within [`QUICK_RETRY`]: a node that cut one
//!   connection or refused one call usually answers the next), then after a capped
//!   exponential backoff with full jitter. An error the node gave on purpose (a revert, an
//!   unknown block, a refused range) comes back at once: repeating it would only delay the
//!   caller's own handling. A transaction submission is never repeated here: the minter
//!   records what it sends and re-sends on its own terms.
//! - **Hedging**: a read still unanswered after [`HEDGE_FACTOR`] times the node's usual
//!   latency for that method (a moving average of its answers, at least [`HEDGE_MIN`]) is
//!   sent once more beside the first, and the first good answer wins: one slow answer
//!   costs a little more than the usual latency instead of its whole delay. A spare that
//!   fails transiently is followed by another (with the retry backoff, within [`RETRIES`])
//!   while the first is still out, so a quick failure of the spare does not leave the call
//!   waiting out the slow first attempt. Reads only; the node's load grows by the share of
//!   calls that are that slow.
//! - **Failover** ([`Failover`]): a request that still fails transiently on the node in
//!   use goes to the next node, which becomes the node in use; after [`PRIMARY_RECHECK`] on
//!   a fallback, the first node is tried again.
//!
//! Readers that must see one node's view for a whole unit of work (the watcher's pass: a
//! fallback that lags must not look like a reorg) take [`Nodes::pinned`] instead: the node
//! in use now, with its retry layer but without failover, and report a failed unit with
//! [`Nodes::failed`] so the next unit starts on the next node.

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use alloy::{
    rpc::json_rpc::{RequestPacket, ResponsePacket},
    transports::{RpcError, TransportError, TransportErrorKind, TransportFut},
};
use tower::{Layer, Service};

mod failover;
pub use failover::{Failover, Nodes};

/// Retries after the first attempt of one request on one node.
pub const RETRIES: u32 = 8;
/// The first backoff; each retry doubles it, up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// The longest backoff between two attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// How long one attempt may take before it counts as failed (a node that hangs).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait before the first retry (a random time up to it).
pub const QUICK_RETRY: Duration = Duration::from_millis(5);
/// A read is sent again beside the first attempt after this many times the node's usual
/// latency for its method.
pub const HEDGE_FACTOR: f64 = 4.0;
/// The shortest wait before a read is sent again beside the first attempt.
pub const HEDGE_MIN: Duration = Duration::from_millis(10);
/// The longest wait before a read is sent again beside the first attempt.
pub const HEDGE_MAX: Duration = Duration::from_secs(2);
/// How long requests stay on a fallback before the first node is tried again.
pub const PRIMARY_RECHECK: Duration = Duration::from_secs(30);

/// Methods whose repetition is not this layer's call (see the module documentation).
const NOT_REPEATED: [&str; 4] = ["eth_sendRawTransaction", "eth_sendTransaction", "eth_sendRawTransactionSync", "eth_sendTransactionSync"];

/// Returns whether `error` may pass if the same request is sent again: the transport failed
/// (connection refused, reset or cut, a timeout), the node was busy or down (HTTP 429, 5xx,
/// a provider's rate-limit code), or the answer arrived cut or empty. Errors the node gave
/// on purpose (a revert, an invalid parameter, a client error such as HTTP 401) are not.
pub fn is_transient(error: &TransportError) -> bool {
    match error {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(e) => e.status == 408 || e.status == 429 || e.status >= 500,
            TransportErrorKind::HttpErrorWithRetryAfter { error, .. } => error.status >= 400,
            TransportErrorKind::NonRetryable(_) => false,
            // Connection failures, timeouts, a lost backend: the node, not the request.
            _ => true,
        },
        RpcError::DeserError { .. } | RpcError::NullResp => true,
        RpcError::ErrorResp(payload) => payload.is_retry_err(),
        _ => false,
    }
}

/// Returns the backoff before retry `attempt` (1-based): the first within [`QUICK_RETRY`],
/// then a random time between a quarter of and `min(cap, base × 2^(attempt-2))` ("full
/// jitter": retries of many callers spread out instead of arriving together). Measured
/// with the watcher's backlog under 20 % faults: with the first retry backed off like the
/// rest (12–50 ms), a one-off fault cost 20 times a clean call.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    if attempt <= 1 {
        return Duration::from_micros(rand::random_range(0..=QUICK_RETRY.as_micros() as u64));
    }
    let ceiling = base.saturating_mul(1u32 << (attempt - 2).min(20)).min(cap);
    let millis = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(rand::random_range(millis / 4..=millis))
}

/// The node's usual latency per method (a moving average of answers that came before any
/// hedge), shared by the clones of one node's retry service; a method not answered yet is
/// judged by the node's average over all methods.
#[derive(Debug, Default)]
struct Latency {
    by_method: Mutex<std::collections::HashMap<String, f64>>,
}

/// The key of the average over all methods.
const ANY_METHOD: &str = "";

impl Latency {
    /// Weight of the newest answer in the average.
    const WEIGHT: f64 = 0.1;

    fn record(&self, method: &str, took: Duration) {
        let ms = took.as_secs_f64() * 1e3;
        let mut map = self.by_method.lock().expect("latency lock");
        for key in [method, ANY_METHOD] {
            // Every answered call passes here: allocate a key only for a method not seen yet.
            match map.get_mut(key) {
                Some(average) => *average += Self::WEIGHT * (ms - *average),
                None => {
                    map.insert(key.to_string(), ms);
                }
            }
        }
    }

    /// When to send `method` again beside an unanswered attempt (None: no answer seen yet).
    fn hedge_after(&self, method: &str) -> Option<Duration> {
        let map = self.by_method.lock().expect("latency lock");
        let average = *map.get(method).or_else(|| map.get(ANY_METHOD))?;
        Some(Duration::from_secs_f64(average * HEDGE_FACTOR / 1e3).clamp(HEDGE_MIN, HEDGE_MAX))
    }
}

/// The retry layer ([module documentation](self)).
#[derive(Debug, Clone, Copy)]
pub struct RetryLayer {
    retries: u32,
    base: Duration,
    cap: Duration,
    timeout: Duration,
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self { retries: RETRIES, base: BACKOFF_BASE, cap: BACKOFF_CAP, timeout: ATTEMPT_TIMEOUT }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService { inner, layer: *self, latency: Arc::default() }
    }
}

/// A transport that repeats transiently failed requests ([`RetryLayer`]).
#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    layer: RetryLayer,
    latency: Arc<Latency>,
}

/// One attempt of `request` on `inner`: an answer carrying a retryable error counts as
/// failed, as does no answer within `timeout`.
async fn attempt<S>(mut inner: S, request: RequestPacket, timeout: Duration) -> Result<ResponsePacket, TransportError>
where
    S: Service<RequestPacket, Response = ResponsePacket, Error = TransportError, Future = TransportFut<'static>>,
{
    match tokio::time::timeout(timeout, inner.call(request)).await {
        // An error inside the answer (a batch's or a single call's) is the node's word:
        // judged like any other error.
        Ok(Ok(response)) => match response.as_error() {
            Some(payload) if payload.is_retry_err() => Err(RpcError::ErrorResp(payload.clone())),
            _ => Ok(response),
        },
        Ok(Err(error)) => Err(error),
        Err(_) => Err(TransportErrorKind::custom_str(&format!("no answer in {} s", timeout.as_secs()))),
    }
}

/// Counts one more try after `error` and returns the backoff to wait before it, logged
/// (`why`) and counted as a retry.
fn retry_after(tries: &mut u32, layer: RetryLayer, error: &TransportError, why: &str) -> Duration {
    *tries += 1;
    let wait = backoff(*tries, layer.base, layer.cap);
    tracing::debug!(target: "tmai_pay::rpc", %error, attempt = *tries, wait_ms = wait.as_millis() as u64, "{why}");
    metrics::counter!("tmai_rpc_retries_total").increment(1);
    wait
}

/// Races `first`, already slower than usual, against spare attempts from `spare`: the
/// first good answer wins. A spare that fails in a way a repeat can cure is followed by
/// another (after the retry backoff, counted in `tries`) while `first` is still out: one
/// quick failure of the spare must not leave the call waiting out the slow first attempt.
/// When `first` fails, the spare out at that moment decides (the caller's loop retries
/// after it).
async fn hedged<F, G>(mut first: std::pin::Pin<&mut F>, spare: impl Fn() -> G, layer: RetryLayer, tries: &mut u32) -> Result<ResponsePacket, TransportError>
where
    F: std::future::Future<Output = Result<ResponsePacket, TransportError>>,
    G: std::future::Future<Output = Result<ResponsePacket, TransportError>>,
{
    loop {
        let second = spare();
        tokio::pin!(second);
        let error = tokio::select! {
            result = &mut first => return match result { Ok(answer) => Ok(answer), Err(_) => second.await },
            result = &mut second => match result { Ok(answer) => return Ok(answer), Err(error) => error },
        };
        if !is_transient(&error) || *tries >= layer.retries {
            return first.await;
        }
        let wait = retry_after(tries, layer, &error, "the spare attempt failed; asking again beside the first");
        tokio::select! {
            result = &mut first => return result,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

impl<S> Service<RequestPacket> for RetryService<S>
where
    S: Service<RequestPacket, Response = ResponsePacket, Error = TransportError, Future = TransportFut<'static>> + Clone + Send + Sync + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let (inner, layer, latency) = (self.inner.clone(), self.layer, self.latency.clone());
        Box::pin(async move {
            let repeatable = !request.method_names().any(|m| NOT_REPEATED.contains(&m));
            let method = request.method_names().next().unwrap_or_default().to_string();
            let mut tries = 0;
            loop {
                let started = Instant::now();
                let first = attempt(inner.clone(), request.clone(), layer.timeout);
                tokio::pin!(first);
                let hedge = if repeatable { latency.hedge_after(&method) } else { None };
                let result = match hedge {
                    None => first.await.inspect(|_| latency.record(&method, started.elapsed())),
                    Some(after) => tokio::select! {
                        result = &mut first => result.inspect(|_| latency.record(&method, started.elapsed())),
                        _ = tokio::time::sleep(after) => {
                            // Slower than this node usually is: ask again beside it and take
                            // the first good answer (not counted in the usual latency).
                            tracing::debug!(target: "tmai_pay::rpc", %method, after_ms = after.as_millis() as u64, "no answer yet; asking again beside it");
                            metrics::counter!("tmai_rpc_hedges_total").increment(1);
                            hedged(first.as_mut(), || attempt(inner.clone(), request.clone(), layer.timeout), layer, &mut tries).await
                        }
                    },
                };
                let error = match result {
                    Ok(answer) => return Ok(answer),
                    Err(error) => error,
                };
                if !repeatable || tries >= layer.retries || !is_transient(&error) {
                    return Err(error);
                }
                tokio::time::sleep(retry_after(&mut tries, layer, &error, "RPC call failed; retrying")).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn the_first_retry_is_quick_then_the_backoff_grows_to_its_cap_with_jitter_below_it() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..20 {
            assert!(backoff(1, base, cap) <= QUICK_RETRY);
        }
        for attempt in 2..12 {
            let ceiling = (base * (1 << (attempt - 2).min(20))).min(cap);
            for _ in 0..20 {
                let wait = backoff(attempt, base, cap);
                assert!(wait <= ceiling && wait >= ceiling / 4, "attempt {attempt}: {wait:?} outside {ceiling:?}");
            }
        }
    }

    #[test]
    fn a_read_is_hedged_after_a_multiple_of_its_usual_latency_within_bounds() {
        let ms = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1e3).round() as u64);
        let latency = Latency::default();
        assert_eq!(latency.hedge_after("eth_getLogs"), None, "no answer seen: no hedge");
        latency.record("eth_getLogs", Duration::from_millis(10));
        assert_eq!(ms(latency.hedge_after("eth_getLogs")), Some(40));
        // A method not answered yet is judged by the node's average.
        assert_eq!(ms(latency.hedge_after("eth_getBlockByNumber")), Some(40));
        latency.record("eth_blockNumber", Duration::from_micros(500));
        assert_eq!(latency.hedge_after("eth_blockNumber"), Some(HEDGE_MIN));
        for _ in 0..200 {
            latency.record("eth_call", Duration::from_secs(5));
        }
        assert_eq!(latency.hedge_after("eth_call"), Some(HEDGE_MAX));
        // One slow answer moves the average by a tenth of the difference.
        latency.record("eth_getLogs", Duration::from_millis(110));
        assert_eq!(ms(latency.hedge_after("eth_getLogs")), Some(80));
    }

    fn answer(result: &str) -> ResponsePacket {
        serde_json::from_str(&format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{result}"}}"#)).unwrap()
    }

    fn result_of(packet: &ResponsePacket) -> String {
        let raw = packet.as_single().and_then(|r| r.payload.as_success()).expect("a single success");
        serde_json::from_str(raw.get()).unwrap()
    }

    /// A slow first attempt and spares that fail: `outcomes` are the spares' answers in
    /// order (`None` a quick transient failure, `Some(false)` a failure on purpose).
    async fn race(first_ms: u64, first_ok: bool, outcomes: Vec<Option<bool>>) -> (Result<String, String>, usize, u32) {
        let spares = std::sync::atomic::AtomicUsize::new(0);
        let first = async move {
            tokio::time::sleep(Duration::from_millis(first_ms)).await;
            if first_ok { Ok(answer("0xf1")) } else { Err(TransportErrorKind::custom_str("cut")) }
        };
        tokio::pin!(first);
        let mut tries = 0;
        let spare = || {
            let n = spares.fetch_add(1, Ordering::SeqCst);
            let outcome = outcomes.get(n).copied().unwrap_or(Some(true));
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                match outcome {
                    Some(true) => Ok(answer(&format!("0x{n}"))),
                    Some(false) => Err(RpcError::ErrorResp(alloy::rpc::json_rpc::ErrorPayload { code: 3, message: "reverted".into(), data: None })),
                    None => Err(TransportErrorKind::custom_str("connection reset")),
                }
            }
        };
        let result = hedged(first.as_mut(), spare, RetryLayer::default(), &mut tries).await;
        (result.map(|r| result_of(&r)).map_err(|e| e.to_string()), spares.load(Ordering::SeqCst), tries)
    }

    #[tokio::test]
    async fn a_hedge_that_fails_quickly_is_followed_by_another_instead_of_waiting_for_the_slow_first() {
        // Two quick failures of the spare, then an answer: the third spare's, long before the
        // first's (5 s), two retries counted.
        assert_eq!(race(5_000, true, vec![None, None]).await, (Ok("0x2".into()), 3, 2));
        // A spare refused on purpose is not repeated: the first attempt decides.
        assert_eq!(race(50, true, vec![Some(false)]).await, (Ok("0xf1".into()), 1, 0));
        // The first fails while a spare is out: the spare's answer.
        assert_eq!(race(0, false, vec![]).await.0, Ok("0x0".into()));
        // Spares failing without end stop at the retry budget and wait for the first.
        let (result, spares, tries) = race(300, true, vec![None; 20]).await;
        // (the first answers while a spare is out, or during the wait before the next one).
        assert!(result == Ok("0xf1".into()) && (2..=RETRIES).contains(&tries) && (tries..=tries + 1).contains(&(spares as u32)), "{result:?} {spares} {tries}");
    }

    #[test]
    fn transport_failures_are_transient_and_the_nodes_answers_are_not() {
        let http = |status| RpcError::Transport(TransportErrorKind::HttpError(alloy::transports::HttpError { status, body: String::new() }));
        assert!(is_transient(&http(503)) && is_transient(&http(429)) && is_transient(&http(502)));
        assert!(!is_transient(&http(401)) && !is_transient(&http(404)));
        assert!(is_transient(&TransportErrorKind::custom_str("connection reset")));
        assert!(!is_transient(&RpcError::Transport(TransportErrorKind::NonRetryable("bad".into()))));
        let revert = alloy::rpc::json_rpc::ErrorPayload { code: 3, message: "execution reverted".into(), data: None };
        assert!(!is_transient(&RpcError::ErrorResp(revert)));
        let limited = alloy::rpc::json_rpc::ErrorPayload { code: -32005, message: "limit".into(), data: None };
        assert!(is_transient(&RpcError::ErrorResp(limited)));
    }
}
