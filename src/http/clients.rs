//! Who a request comes from, for the rate limiter and the event-stream caps: the connecting
//! address, or — when that address is a trusted reverse proxy (`http.trusted_proxies`) —
//! the rightmost address in `X-Forwarded-For` that is not a trusted proxy (every address
//! left of it could have been written by the client itself). An IPv6 client is its /64:
//! one subscriber line usually gets a whole /64, so single addresses would let one client
//! be 2^64 clients. An IPv4-mapped IPv6 address is its IPv4 address.
//!
//! The rate limiter keeps one entry per client; [`RateLimit`] sweeps out entries whose
//! clients have been idle long enough to be back at a full burst, so the map holds the
//! clients of the last minute or so, not every address ever seen.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request},
    http::{HeaderMap, request::Parts},
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;
use tower_governor::{GovernorError, key_extractor::KeyExtractor};

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// Returns the set of `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(Arc::new(nets))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Returns the client key of a request from `peer` with `headers`.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        key_of(self.client_address(peer, headers))
    }

    /// Returns the client's address: `peer`, or the rightmost untrusted address of
    /// `X-Forwarded-For` when `peer` is a trusted proxy.
    fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        // Several X-Forwarded-For headers are one list, in order.
        let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
        let hops: Vec<&str> = hops.collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // An unreadable entry: nothing left of it can be trusted either.
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// Parses one `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Returns the key a client address is counted under: IPv4 as is, IPv6 by its /64.
pub fn key_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The client of a request, as a handler argument.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub IpAddr);

impl FromRequestParts<super::AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &super::AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(state.clients.client_of(peer_of(&parts.extensions), &parts.headers)))
    }
}

fn peer_of(extensions: &axum::http::Extensions) -> IpAddr {
    // Served without connection info (a router called directly): one anonymous client.
    extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// The rate limiter's key extractor: [`TrustedProxies::client_of`].
#[derive(Debug, Clone)]
pub struct ClientKey(pub TrustedProxies);

impl KeyExtractor for ClientKey {
    type Key = IpAddr;

    fn extract<T>(&self, request: &axum::http::Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(self.0.client_of(peer_of(request.extensions()), request.headers()))
    }
}

/// The limiter the rate limit layer uses.
pub type Limiter = governor::RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    governor::clock::DefaultClock,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
>;

/// Sweeps idle clients out of the rate limiter at most once per `every`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limiter: Arc<Limiter>,
    every: Duration,
    started: Instant,
    /// Milliseconds after `started` of the last sweep.
    last_sweep: Arc<AtomicU64>,
}

impl RateLimit {
    /// Returns the sweeper of `limiter`.
    pub fn new(limiter: Arc<Limiter>, every: Duration) -> Self {
        Self { limiter, every, started: Instant::now(), last_sweep: Arc::new(AtomicU64::new(0)) }
    }

    /// Returns how many clients the limiter tracks.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets the clients whose state equals a fresh one (idle long enough to have their
    /// whole burst back), when the last sweep is `every` ago.
    pub fn sweep(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.every.as_millis() as u64 {
            return;
        }
        if self.last_sweep.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

/// Middleware: sweeps the limiter (cheaply, at most once per interval) on the request path,
/// so no task of its own is needed.
pub async fn sweep_idle(axum::extract::State(limit): axum::extract::State<RateLimit>, request: Request, next: Next) -> Response {
    limit.sweep();
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in xff {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let none = TrustedProxies::default();
        let a = none.client_of(ip("2001:db8:1:2::1"), &HeaderMap::new());
        let b = none.client_of(ip("2001:db8:1:2:ffff:eeee:dddd:cccc"), &HeaderMap::new());
        let other = none.client_of(ip("2001:db8:1:3::1"), &HeaderMap::new());
        assert_eq!(a, b);
        assert_eq!(a, ip("2001:db8:1:2::"));
        assert_ne!(a, other);
        assert_eq!(none.client_of(ip("::ffff:192.0.2.7"), &HeaderMap::new()), ip("192.0.2.7"));
        assert_eq!(none.client_of(ip("192.0.2.7"), &HeaderMap::new()), ip("192.0.2.7"));
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap(), "2001:db8:ffff::/48".parse().unwrap()]);
        let cases = [
            // (peer, X-Forwarded-For headers, client)
            ("203.0.113.9", vec!["198.51.100.1"], "203.0.113.9"), // untrusted peer: its header is ignored
            ("10.1.1.1", vec![], "10.1.1.1"),                     // trusted peer, no header: the proxy itself
            ("10.1.1.1", vec!["198.51.100.1"], "198.51.100.1"),
            ("10.1.1.1", vec!["198.51.100.1, 10.2.2.2"], "198.51.100.1"),            // two proxies
            ("10.1.1.1", vec!["6.6.6.6, 198.51.100.1"], "198.51.100.1"),             // a spoofed entry on the left
            ("10.1.1.1", vec!["6.6.6.6", "198.51.100.1, 10.2.2.2"], "198.51.100.1"), // several headers
            ("10.1.1.1", vec!["198.51.100.1:4711"], "198.51.100.1"),
            ("10.1.1.1", vec!["[2001:db8:1:2::5]:443"], "2001:db8:1:2::"),
            ("10.1.1.1", vec!["198.51.100.1, garbage"], "10.1.1.1"), // unreadable: stop at the proxy
            ("10.1.1.1", vec!["10.3.3.3, 10.2.2.2"], "10.3.3.3"),    // all trusted: the leftmost
            ("2001:db8:ffff::1", vec!["2001:db8:1:2::5"], "2001:db8:1:2::"),
            ("::ffff:10.1.1.1", vec!["198.51.100.1"], "198.51.100.1"), // a mapped trusted peer
        ];
        for (peer, xff, client) in cases {
            assert_eq!(trusted.client_of(ip(peer), &headers(&xff)), ip(client), "{peer} {xff:?}");
        }
    }

    #[test]
    fn idle_clients_are_forgotten() {
        // A limiter whose clients are back at a full burst after a millisecond.
        let quota = governor::Quota::with_period(Duration::from_micros(100)).unwrap().allow_burst(std::num::NonZeroU32::new(2).unwrap());
        let limiter = Arc::new(governor::RateLimiter::keyed(quota));
        let limit = RateLimit::new(limiter.clone(), Duration::ZERO);
        for i in 0..1_000u32 {
            let _ = limiter.check_key(&IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(limit.tracked(), 1_000);
        std::thread::sleep(Duration::from_millis(20));
        limit.sweep();
        assert_eq!(limit.tracked(), 0, "idle clients are still tracked");
    }
}
