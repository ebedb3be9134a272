//! Sending one delivery: the Standard Webhooks headers, the HTTP client (no redirects, no
//! proxy, names resolved through the SSRF guard), and what an attempt records.

use std::time::{Duration, Instant};

use super::super::{signing, signing::SigningTarget, targets};
use crate::{
    config::WebhookSettings,
    store::webhooks::deliveries::{AttemptRecord, Outcome, PendingDelivery},
};

/// Longest response excerpt kept in the delivery log, in bytes.
const EXCERPT_BYTES: usize = 256;

/// The outcome of one attempt.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) delivery_id: i64,
    pub(super) event_id: String,
    pub(super) attempt: i64,
    pub(super) attempted_ms: i64,
    pub(super) status: Option<u16>,
    pub(super) latency_ms: i64,
    pub(super) error: Option<String>,
    pub(super) excerpt: Option<String>,
}

impl Sent {
    pub(super) fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Returns the attempt as it is recorded, leaving its delivery in `outcome`.
    pub(super) fn into_record(self, outcome: Outcome) -> AttemptRecord {
        AttemptRecord {
            delivery_id: self.delivery_id,
            event_id: self.event_id,
            attempt: self.attempt,
            attempted_ms: self.attempted_ms,
            status_code: self.status,
            latency_ms: self.latency_ms,
            error: self.error,
            response_excerpt: self.excerpt,
            outcome,
        }
    }
}

/// What sends deliveries: the guarded HTTP client ([`client`]) and whether private targets
/// are allowed.
#[derive(Debug)]
pub(super) struct Sender {
    client: reqwest::Client,
    allow_private_targets: bool,
}

impl Sender {
    /// Returns a sender with `settings`' timeouts and SSRF policy.
    pub(super) fn new(settings: &WebhookSettings) -> reqwest::Result<Self> {
        Ok(Self { client: client(settings)?, allow_private_targets: settings.allow_private_targets })
    }

    /// Sends the next attempt of `delivery` to `target` at `attempted_ms` (unix milliseconds).
    pub(super) async fn send(&self, target: &SigningTarget, delivery: PendingDelivery, attempted_ms: i64) -> Sent {
        let PendingDelivery { id: delivery_id, event_id, attempts, payload, .. } = delivery;
        let timestamp = (attempted_ms / 1000) as u64;
        let signature = signing::signature_header(&target.keys, &event_id, timestamp, payload.as_bytes());
        let started = Instant::now();
        let mut sent = Sent { delivery_id, event_id, attempt: attempts + 1, attempted_ms, status: None, latency_ms: 0, error: None, excerpt: None };
        if let Err(error) = literal_allowed(&target.url, self.allow_private_targets) {
            sent.error = Some(error);
            return sent;
        }
        let request = self
            .client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("webhook-id", &sent.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(payload);
        match request.send().await {
            Ok(mut response) => {
                sent.status = Some(response.status().as_u16());
                let mut excerpt = Vec::new();
                while excerpt.len() < EXCERPT_BYTES {
                    match response.chunk().await {
                        Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - excerpt.len())]),
                        _ => break,
                    }
                }
                if !excerpt.is_empty() {
                    sent.excerpt = Some(String::from_utf8_lossy(&excerpt).into_owned());
                }
                if !sent.ok() {
                    sent.error = Some(format!("the endpoint answered {}", response.status()));
                }
            }
            Err(error) => sent.error = Some(describe(&error)),
        }
        sent.latency_ms = started.elapsed().as_millis() as i64;
        let result = if sent.ok() {
            "delivered"
        } else if sent.status == Some(410) {
            "gone"
        } else {
            "failed"
        };
        metrics::counter!("tmai_webhook_attempts_total", "result" => result).increment(1);
        sent
    }
}

/// Returns the HTTP client webhooks are sent with: no redirects, names resolved through the
/// SSRF guard ([`targets::GuardedResolver`]) unless private targets are allowed, and no
/// proxy whatever `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` say. Through a proxy the guard
/// would check only the proxy's address, and the proxy would connect to any target.
fn client(settings: &WebhookSettings) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(settings.timeout_secs))
        .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tmai-pay-webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(4);
    if let Some(resolver) = targets::resolver(settings.allow_private_targets) {
        builder = builder.dns_resolver(resolver);
    }
    builder.build()
}

/// Refuses a URL whose host is a non-public IP literal (names are checked by the resolver).
fn literal_allowed(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let parsed = url::Url::parse(url).map_err(|_| "the endpoint URL does not parse".to_string())?;
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if targets::is_public(ip) { Ok(()) } else { Err(format!("blocked: {ip} is not a public address")) }
}

/// Describes a failed request without its URL (which may carry tokens in its query).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A proxy from the environment would take every request, so the guard would only
    /// ever see the proxy's (allowed) address: the client must not use one.
    #[tokio::test]
    async fn a_proxy_in_the_environment_is_not_a_way_around_the_guard() {
        // Arrange: a "proxy" that answers 200 to anything and counts its connections
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = proxy.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            }
        });
        let settings = WebhookSettings { timeout_secs: 5, ..WebhookSettings::default() };
        let variables = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];
        // SAFETY: the variables are set only while this client is built (reqwest reads them
        // at build time) and removed at once; no other unit test builds an HTTP client.
        unsafe {
            for name in variables {
                std::env::set_var(name, &proxy_url);
            }
        }
        let guarded = client(&settings);
        unsafe {
            for name in variables {
                std::env::remove_var(name);
            }
        }
        let guarded = guarded.unwrap();

        // Act: a name that resolves to loopback
        let result = guarded.post("http://localhost:9/hook").body("{}").send().await;

        // Assert
        let error = result.expect_err("a loopback target must be refused even with a proxy configured");
        assert!(describe(&error).contains("private"), "{}", describe(&error));
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "the request went through the proxy");
    }

    #[test]
    fn ip_literals_are_checked() {
        assert!(literal_allowed("http://127.0.0.1:1/x", false).unwrap_err().contains("127.0.0.1"));
        assert!(literal_allowed("http://[::1]/x", false).is_err());
        assert!(literal_allowed("http://127.0.0.1:1/x", true).is_ok());
        assert!(literal_allowed("https://example.com/x", false).is_ok());
        assert!(literal_allowed("https://1.1.1.1/x", false).is_ok());
    }
}
