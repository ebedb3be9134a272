//! The fault proxy between the service and anvil: JSON-RPC over HTTP with a seeded share of
//! calls dropped (connection cut before the answer), delayed (up to seconds), answered with
//! an error, or truncated; and the websocket as a byte pipe that is cut at random moments.
//! Loopback only. The share can be changed while it runs (the campaign turns faults off to
//! let the service settle before the checks).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{body::Body, extract::State, http::StatusCode, response::Response};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};

/// What the proxy did, for the summary.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FaultCounts {
    pub(crate) calls: u64,
    pub(crate) dropped: u64,
    pub(crate) delayed: u64,
    pub(crate) errored: u64,
    pub(crate) truncated: u64,
    pub(crate) ws_connections: u64,
    pub(crate) ws_cuts: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
    errored: AtomicU64,
    truncated: AtomicU64,
    ws_connections: AtomicU64,
    ws_cuts: AtomicU64,
}

pub(crate) struct Proxy {
    pub(crate) http_url: String,
    pub(crate) ws_url: String,
    /// Share of calls faulted, in percent.
    share: Arc<AtomicU32>,
    cut_ws: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    share: Arc<AtomicU32>,
    rng: Mutex<StdRng>,
    counters: Arc<Counters>,
    max_delay_ms: u64,
}

enum Fault {
    None,
    Drop,
    Delay(u64),
    Error,
    Truncate,
}

impl Proxy {
    /// Starts the proxy in front of anvil's `upstream_http` and `upstream_ws_port`.
    pub(crate) async fn start(upstream_http: String, upstream_ws_port: u16, seed: u64, share_percent: u32, max_delay_ms: u64) -> Self {
        let share = Arc::new(AtomicU32::new(share_percent));
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            upstream: upstream_http,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            share: share.clone(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counters: counters.clone(),
            max_delay_ms,
        });
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let cut_ws = Arc::new(AtomicBool::new(true));
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_addr = ws_listener.local_addr().unwrap();
        let upstream_ws: SocketAddr = ([127, 0, 0, 1], upstream_ws_port).into();
        let (ws_counters, ws_cut) = (counters.clone(), cut_ws.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5753);
            while let Ok((client, _)) = ws_listener.accept().await {
                ws_counters.ws_connections.fetch_add(1, Ordering::Relaxed);
                // Each websocket lives 1 to 20 s before the cut (when cutting is on).
                let life = Duration::from_millis(rng.random_range(1_000..20_000));
                let (counters, cut) = (ws_counters.clone(), ws_cut.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream_ws).await else { return };
                    pipe_with_cut(client, server, life, cut, counters).await;
                });
            }
        });
        Self { http_url: format!("http://{http_addr}"), ws_url: format!("ws://{ws_addr}"), share, cut_ws, counters }
    }

    /// Turns the faults off (0 %) or on, and the websocket cuts with them.
    pub(crate) fn set_share(&self, percent: u32) {
        self.share.store(percent, Ordering::Relaxed);
        self.cut_ws.store(percent > 0, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> FaultCounts {
        let c = &self.counters;
        FaultCounts {
            calls: c.calls.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
            errored: c.errored.load(Ordering::Relaxed),
            truncated: c.truncated.load(Ordering::Relaxed),
            ws_connections: c.ws_connections.load(Ordering::Relaxed),
            ws_cuts: c.ws_cuts.load(Ordering::Relaxed),
        }
    }
}

async fn pipe_with_cut(mut client: TcpStream, mut server: TcpStream, life: Duration, cut: Arc<AtomicBool>, counters: Arc<Counters>) {
    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
    tokio::pin!(copy);
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + life, life);
    loop {
        tokio::select! {
            _ = &mut copy => return,
            _ = timer.tick() => {
                if cut.load(Ordering::Relaxed) {
                    counters.ws_cuts.fetch_add(1, Ordering::Relaxed);
                    return; // both sockets dropped: the service sees the websocket die
                }
            }
        }
    }
}

async fn forward(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    s.counters.calls.fetch_add(1, Ordering::Relaxed);
    let fault = {
        let mut rng = s.rng.lock().unwrap();
        if rng.random_range(0..100) < s.share.load(Ordering::Relaxed) {
            match rng.random_range(0..4) {
                0 => Fault::Drop,
                1 => Fault::Delay(rng.random_range(200..=s.max_delay_ms.max(201))),
                2 => Fault::Error,
                _ => Fault::Truncate,
            }
        } else {
            Fault::None
        }
    };
    match fault {
        Fault::Drop => {
            s.counters.dropped.fetch_add(1, Ordering::Relaxed);
            // Headers go out, then the body stream fails: the connection is cut mid-answer.
            let failing = futures::stream::once(async { Err::<axum::body::Bytes, _>(std::io::Error::other("chaos: dropped")) });
            return Response::builder().status(200).header("content-type", "application/json").body(Body::from_stream(failing)).unwrap();
        }
        Fault::Error => {
            s.counters.errored.fetch_add(1, Ordering::Relaxed);
            return Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(Body::from("chaos: upstream unavailable")).unwrap();
        }
        Fault::Delay(ms) => {
            s.counters.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        _ => {}
    }
    let upstream = s.client.post(&s.upstream).header("content-type", "application/json").body(body).send().await;
    let Ok(upstream) = upstream else {
        return Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::from("chaos: anvil unreachable")).unwrap();
    };
    let status = upstream.status().as_u16();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let bytes = if matches!(fault, Fault::Truncate) {
        s.counters.truncated.fetch_add(1, Ordering::Relaxed);
        bytes.slice(..bytes.len() / 2)
    } else {
        bytes
    };
    Response::builder().status(status).header("content-type", "application/json").body(Body::from(bytes)).unwrap()
}
