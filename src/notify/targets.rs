//! Where webhooks may go. By default only public addresses: an API key must not be a way to
//! make the service call into the merchant's own network (cloud metadata at 169.254.169.254,
//! an admin panel on 10.0.0.1, the service itself on 127.0.0.1). The check runs when an
//! endpoint is registered and again at every connection (the HTTP client resolves names
//! through [`GuardedResolver`]), so a name that later resolves to a private address — DNS
//! rebinding — is refused too. Redirects are not followed.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Returns whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 reaches IPv4 inside
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::from([0, 0, 0, 0, 0, 0, 0, 1]))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

/// Why a URL cannot be an endpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not an absolute http(s) URL.
    #[error("{0}")]
    Malformed(String),
    /// The host is, or resolves to, a private, loopback or link-local address.
    #[error("{0} is a private, loopback or link-local address; webhooks go to public addresses only (an operator can allow private targets with webhooks.allow_private_targets)")]
    Private(String),
    /// The host name does not resolve.
    #[error("the host {0} does not resolve")]
    Unresolvable(String),
}

/// Parses and checks an endpoint URL: absolute http or https, a host, no credentials, and
/// (unless `allow_private`) only public addresses.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, TargetError> {
    let url = Url::parse(raw.trim()).map_err(|e| TargetError::Malformed(format!("url is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Malformed("url must start with https:// or http://".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Malformed("url must not carry credentials (they would be logged); authenticate with the signature".into()));
    }
    if url.fragment().is_some() {
        return Err(TargetError::Malformed("url must not have a #fragment".into()));
    }
    if raw.len() > 2048 {
        return Err(TargetError::Malformed("url is longer than 2048 characters".into()));
    }
    let host = url.host().ok_or_else(|| TargetError::Malformed("url has no host".into()))?;
    if allow_private {
        return Ok(url);
    }
    match host {
        Host::Ipv4(ip) => check_ip(IpAddr::V4(ip))?,
        Host::Ipv6(ip) => check_ip(IpAddr::V6(ip))?,
        Host::Domain(name) => {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| TargetError::Unresolvable(name.to_string()))?
                .collect();
            if addrs.is_empty() {
                return Err(TargetError::Unresolvable(name.to_string()));
            }
            for addr in addrs {
                check_ip(addr.ip()).map_err(|_| TargetError::Private(format!("{name} (resolves to {})", addr.ip())))?;
            }
        }
    }
    Ok(url)
}

fn check_ip(ip: IpAddr) -> Result<(), TargetError> {
    if is_public(ip) { Ok(()) } else { Err(TargetError::Private(ip.to_string())) }
}

/// Resolves names for the delivery client and drops every non-public address, so a
/// connection to a private address cannot happen whatever the name resolves to now.
#[derive(Debug, Clone, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(TargetError::Private(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Returns the resolver the delivery client uses: guarded unless private targets are allowed.
pub fn resolver(allow_private: bool) -> Option<Arc<GuardedResolver>> {
    (!allow_private).then(|| Arc::new(GuardedResolver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_not_public() {
        for ip in [
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "255.255.255.255", "224.0.0.1", "::1", "::", "fc00::1", "fd12::1", "fe80::1", "::ffff:127.0.0.1",
            "::ffff:10.0.0.1", "64:ff9b::7f00:1", "198.18.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1", "172.32.0.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked() {
        for (raw, private) in [
            ("http://127.0.0.1:9/x", true),
            ("http://localhost/x", true),
            ("http://[::1]/x", true),
            ("http://169.254.169.254/latest/meta-data", true),
            ("https://10.0.0.1/", true),
            ("http://0x7f000001/", true),
        ] {
            let error = check_url(raw, false).await.unwrap_err();
            assert_eq!(matches!(error, TargetError::Private(_)), private, "{raw}: {error}");
            assert!(check_url(raw, true).await.is_ok(), "{raw} with private targets allowed");
        }
        for raw in ["ftp://example.com/", "not a url", "https://user:pw@example.com/", "/relative", "https://example.com/#frag"] {
            assert!(matches!(check_url(raw, false).await, Err(TargetError::Malformed(_))), "{raw}");
        }
        assert!(check_url("https://1.1.1.1/hook", false).await.is_ok());
    }
}
