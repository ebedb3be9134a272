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
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// An IPv6 address is public only inside global unicast `2000::/3` and outside the special
/// ranges there; an address that carries an IPv4 address (mapped, NAT64, 6to4) is as public
/// as that IPv4 address, since that is where the packet ends up.
fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    let low_v4 = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-mapped ::ffff:0:0/96
        [0, 0, 0, 0, 0, 0xffff, _, _] => is_public_v4(low_v4()),
        // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => is_public_v4(low_v4()),
        // 6to4 2002::/16: the IPv4 address is in bits 16-48
        [0x2002, a, b, ..] => is_public_v4(Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)),
        // Outside global unicast 2000::/3: unspecified, loopback, IPv4-compatible ::/96,
        // discard 100::/64, local-use NAT64 64:ff9b:1::/48, unique local fc00::/7,
        // link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, SRv6 5f00::/16.
        [first, ..] if first & 0xe000 != 0x2000 => false,
        // IETF protocol assignments 2001::/23: Teredo 2001::/32 (reaches IPv4 through a
        // relay), benchmarking 2001:2::/48, ORCHID 2001:10::/28 and 2001:20::/28.
        [0x2001, second, ..] if second < 0x0200 => false,
        // Documentation 2001:db8::/32 and 3fff::/20
        [0x2001, 0x0db8, ..] => false,
        [0x3fff, second, ..] if second & 0xf000 == 0 => false,
        _ => true,
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
    #[error(
        "{0} is a private, loopback or link-local address; webhooks go to public addresses only (an operator can allow private targets with webhooks.allow_private_targets)"
    )]
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
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port)).await.map_err(|_| TargetError::Unresolvable(name.to_string()))?.collect();
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
        for ip in
            ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.1", "198.18.0.1"]
        {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "172.32.0.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    /// Every special IPv6 range, each with an address inside it that is refused and, where
    /// the range has a public neighbour, one just outside it that is accepted.
    #[test]
    fn ipv6_targets_must_be_globally_routable() {
        let table: &[(&str, &str, Option<&str>)] = &[
            // (range, refused, accepted neighbour)
            ("::/128 unspecified", "::", None),
            ("::1/128 loopback", "::1", None),
            ("::/96 IPv4-compatible", "::8.8.8.8", None),
            ("::/96 IPv4-compatible", "::7f00:1", None),
            ("::ffff:0:0/96 IPv4-mapped, private inside", "::ffff:127.0.0.1", Some("::ffff:1.1.1.1")),
            ("::ffff:0:0/96 IPv4-mapped, private inside", "::ffff:10.0.0.1", Some("::ffff:8.8.8.8")),
            ("::ffff:0:0/96 IPv4-mapped, metadata inside", "::ffff:169.254.169.254", None),
            ("64:ff9b::/96 NAT64, private inside", "64:ff9b::7f00:1", Some("64:ff9b::808:808")),
            ("64:ff9b::/96 NAT64, private inside", "64:ff9b::10.0.0.1", Some("64:ff9b::1.1.1.1")),
            ("64:ff9b:1::/48 local-use NAT64", "64:ff9b:1::808:808", None),
            ("2002::/16 6to4, private inside", "2002:7f00:1::1", Some("2002:808:808::1")),
            ("2002::/16 6to4, private inside", "2002:a00:1::1", Some("2002:101:101::")),
            ("2002::/16 6to4, metadata inside", "2002:a9fe:a9fe::1", None),
            ("2001::/32 Teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("2001:200::1")),
            ("2001:2::/48 benchmarking", "2001:2::1", None),
            ("2001:10::/28 ORCHID", "2001:10::1", None),
            ("2001:20::/28 ORCHIDv2", "2001:20::1", None),
            ("100::/64 discard", "100::1", None),
            ("2001:db8::/32 documentation", "2001:db8::1", Some("2001:db9::1")),
            ("3fff::/20 documentation", "3fff::1", Some("3ffe:ffff::1")),
            ("3fff::/20 documentation", "3fff:fff::1", Some("3fff:1000::1")),
            ("fc00::/7 unique local", "fc00::1", None),
            ("fc00::/7 unique local", "fd12::1", None),
            ("fe80::/10 link-local", "fe80::1", None),
            ("fec0::/10 site-local", "fec0::1", None),
            ("ff00::/8 multicast", "ff02::1", None),
            ("5f00::/16 SRv6", "5f00::1", None),
            ("outside 2000::/3", "1fff:ffff::1", Some("2000::1")),
            ("outside 2000::/3", "4000::1", Some("3ffe::1")),
        ];
        for (range, refused, accepted) in table {
            assert!(!is_public(refused.parse().unwrap()), "{refused} ({range}) must be refused");
            if let Some(accepted) = accepted {
                assert!(is_public(accepted.parse().unwrap()), "{accepted} (beside {range}) must be accepted");
            }
        }
        for ip in ["2606:4700:4700::1111", "2a00:1450:4001:82b::200e", "2001:4860:4860::8888"] {
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
