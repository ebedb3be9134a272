//! A JSON-RPC proxy in front of anvil, for tests that must see or break the service's use
//! of the node: it counts `eth_call` and `eth_getCode` requests in flight (and the most
//! ever in flight), records each `eth_call`'s gas limit, can hold those requests until
//! released, can reset the connection of each `eth_call` instead of answering (a
//! node that drops connections), and can fail a seeded share of all requests (a faulty
//! node: the connection reset, an HTTP 503, or the answer cut in half). Its URL carries a key-looking path segment, as a
//! provider's URL does; the path is not forwarded.
//!
//! HTTP/1.1 is spoken by hand (requests with `Content-Length`, keep-alive) so that a reset
//! is a real TCP reset.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
};

use rand::{Rng, SeedableRng, rngs::StdRng};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// The key-looking path segment of the proxy's URL.
pub(crate) const KEY: &str = "0123456789abcdef0123456789abcdef";

/// The methods the proxy counts (and holds, and resets).
const COUNTED: [&str; 2] = ["eth_call", "eth_getCode"];

#[derive(Default)]
struct Shared {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    counted: AtomicUsize,
    reset_calls: AtomicBool,
    call_gas: Mutex<Vec<Option<String>>>,
    /// Share of all requests failed, in percent.
    fail_percent: AtomicU32,
    /// Requests failed so far.
    failed: AtomicUsize,
    /// Requests received so far (all methods).
    requests: AtomicUsize,
    rng: Mutex<Option<StdRng>>,
}

/// A running proxy; stops with the test's runtime.
pub(crate) struct RpcProxy {
    /// `http://127.0.0.1:<port>/v3/<KEY>`.
    pub(crate) url: String,
    shared: Arc<Shared>,
    hold: watch::Sender<bool>,
}

impl RpcProxy {
    /// Starts a proxy forwarding to `upstream` (anvil's endpoint), on the current runtime.
    pub(crate) fn start(upstream: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let url = format!("http://{}/v3/{KEY}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let (hold, held) = watch::channel(false);
        let client = reqwest::Client::new();
        let task_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, upstream.clone(), client.clone(), task_shared.clone(), held.clone()));
            }
        });
        Self { url, shared, hold }
    }

    /// A provider that reads the chain through the proxy.
    pub(crate) fn provider(&self) -> DynProvider {
        ProviderBuilder::new().connect_http(self.url.parse().unwrap()).erased()
    }

    /// Counted requests in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most counted requests ever in flight at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Counted requests received so far.
    pub(crate) fn counted(&self) -> usize {
        self.shared.counted.load(Ordering::SeqCst)
    }

    /// The `gas` field of every `eth_call` received (hex), `None` where it had none.
    pub(crate) fn call_gas(&self) -> Vec<Option<String>> {
        self.shared.call_gas.lock().unwrap().clone()
    }

    /// Holds counted requests (`true`) until released (`false`).
    pub(crate) fn hold(&self, on: bool) {
        self.hold.send_replace(on);
    }

    /// Fails `percent` % of all requests from now on (seeded by `seed`), each one way of
    /// three: the connection reset, an HTTP 503, or the answer cut in half.
    pub(crate) fn fail_share(&self, percent: u32, seed: u64) {
        *self.shared.rng.lock().unwrap() = Some(StdRng::seed_from_u64(seed));
        self.shared.fail_percent.store(percent, Ordering::SeqCst);
    }

    /// Requests failed so far ([`Self::fail_share`]).
    pub(crate) fn failed(&self) -> usize {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Resets the connection of each `eth_call` (`true`) instead of forwarding it.
    pub(crate) fn reset_calls(&self, on: bool) {
        self.shared.reset_calls.store(on, Ordering::SeqCst);
    }
}

/// Decrements the in-flight count when the request is done (or abandoned).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.counted.fetch_add(1, Ordering::SeqCst);
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one keep-alive connection.
async fn serve(mut stream: TcpStream, upstream: String, client: reqwest::Client, shared: Arc<Shared>, mut held: watch::Receiver<bool>) {
    let mut buf = Vec::new();
    loop {
        let Some(body) = read_request(&mut stream, &mut buf).await else { return };
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let method = request["method"].as_str().unwrap_or_default().to_string();
        let counted = COUNTED.contains(&method.as_str());
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let fault = {
            let percent = shared.fail_percent.load(Ordering::SeqCst);
            let mut rng = shared.rng.lock().unwrap();
            match rng.as_mut() {
                Some(rng) if percent > 0 => (rng.random_range(0..100) < percent).then(|| rng.random_range(0..3u8)),
                _ => None,
            }
        };
        if let Some(kind) = fault {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            match kind {
                0 => {
                    #[allow(deprecated)]
                    let _ = stream.set_linger(Some(std::time::Duration::ZERO));
                    return;
                }
                1 => {
                    let body = "faulty node: unavailable";
                    let head = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ => {
                    let Ok(response) = client.post(&upstream).header("content-type", "application/json").body(body).send().await else { return };
                    let Ok(bytes) = response.bytes().await else { return };
                    let cut = &bytes[..bytes.len() / 2];
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", cut.len());
                    if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(cut).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        if method == "eth_call" {
            shared.call_gas.lock().unwrap().push(request["params"][0]["gas"].as_str().map(str::to_string));
            if shared.reset_calls.load(Ordering::SeqCst) {
                // A zero linger makes the close a reset (RST) and never blocks.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(std::time::Duration::ZERO));
                return;
            }
        }
        let answer = {
            let _guard = counted.then(|| InFlight::enter(&shared));
            if counted {
                let _ = held.wait_for(|on| !on).await;
            }
            let Ok(response) = client.post(&upstream).header("content-type", "application/json").body(body).send().await else { return };
            let Ok(bytes) = response.bytes().await else { return };
            bytes
        };
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", answer.len());
        if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Reads one request from `stream` (bytes beyond it stay in `buf`); `None` at the end.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let header_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < header_end + length {
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
    let body = buf[header_end..header_end + length].to_vec();
    buf.drain(..header_end + length);
    Some(body)
}

/// Checks the proxy itself: it forwards, counts, and resets `eth_call` on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_forwards_counts_and_resets() {
    let chain = crate::helpers::spawn_chain().await;
    let proxy = RpcProxy::start(chain.anvil.endpoint());
    let provider = proxy.provider();
    assert_eq!(provider.get_chain_id().await.unwrap(), chain.deployment.chain_id);
    assert!(!provider.get_code_at(chain.deployment.checkout).await.unwrap().is_empty());
    assert_eq!((proxy.counted(), proxy.max_in_flight(), proxy.in_flight()), (1, 1, 0));
    proxy.reset_calls(true);
    let request = alloy::rpc::types::TransactionRequest::default().to(chain.deployment.checkout);
    let error = provider.call(request).await.unwrap_err().to_string();
    assert!(error.contains(KEY), "the transport's error names the URL: {error}");
    assert!(provider.get_block_number().await.is_ok(), "only eth_call is reset");
}
