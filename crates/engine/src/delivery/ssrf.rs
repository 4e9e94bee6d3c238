//! The SSRF guard. Destinations are checked on the addresses actually connected to: a DNS
//! resolver for the HTTP client drops forbidden addresses, so a name that resolves (or
//! re-resolves, as in DNS rebinding) to a private address never gets a connection. IP-literal
//! URLs skip DNS and are checked before sending.
//!
//! Forbidden unless an operator allows them (`HERALD_ALLOWED_DESTINATIONS`, CIDRs): private,
//! loopback, link-local, CGNAT (100.64/10), multicast, broadcast, unspecified, documentation and
//! reserved ranges, IPv6 unique-local and their IPv4-mapped forms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Which otherwise-forbidden networks an operator allows.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Arc<Vec<IpNet>>);

impl AllowList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(Arc::new(nets))
    }

    /// Parses a comma-separated CIDR list (`127.0.0.0/8, ::1/128`); bare addresses mean /32 or /128.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{part:?} is not a CIDR like 127.0.0.0/8"))?;
            nets.push(net);
        }
        Ok(Self::new(nets))
    }

    /// Whether herald may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_forbidden(ip) || self.0.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || o[0] == 0                                   // 0.0.0.0/8 "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64)        // 100.64.0.0/10 CGNAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)     // 192.0.0.0/24 IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18)        // 198.18.0.0/15 benchmarking
        || o[0] >= 240 // 240.0.0.0/4 reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00                   // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80                   // fe80::/10 link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8)          // 2001:db8::/32 documentation
        || (s[0] == 0x64 && s[1] == 0xff9b)            // 64:ff9b::/96 NAT64 can reach private IPv4
        || s[0] == 0x2002                              // 2002::/16 6to4 likewise
        || ip.to_ipv4().is_some_and(|v4| s[0..6] == [0; 6] && forbidden_v4(v4)) // IPv4-compatible
}

/// Looks host names up: the system's resolver in production, a table in tests (so a test can
/// make a name resolve to an internal address without touching DNS).
pub trait NameLookup: Send + Sync {
    fn lookup(&self, host: &str) -> BoxFuture<std::io::Result<Vec<IpAddr>>>;
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The operating system's resolver.
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<std::io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A DNS resolver for reqwest that only returns permitted addresses.
#[derive(Clone)]
pub struct GuardedResolver {
    pub allow: AllowList,
    pub lookup: Arc<dyn NameLookup>,
    /// The configured proxy's host: the operator chose it, so it may be internal.
    pub trusted_host: Option<String>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addrs = this.lookup.lookup(host).await?;
            let permitted: Vec<SocketAddr> = if this.trusted_host.as_deref() == Some(host) {
                addrs.iter().map(|ip| SocketAddr::new(*ip, 0)).collect()
            } else {
                addrs
                    .iter()
                    .filter(|ip| this.allow.permits(**ip))
                    .map(|ip| SocketAddr::new(*ip, 0))
                    .collect()
            };
            if permitted.is_empty() && !addrs.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = Box::new(Blocked::name(host));
                return Err(err);
            }
            let iter: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(iter)
        })
    }
}

/// A destination refused by the guard. Its text says which destination and why in general
/// terms, never what a name resolved to: it reaches API answers and execution history, and
/// the addresses behind an internal name are none of a caller's business.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Blocked(pub String);

impl Blocked {
    fn name(host: &str) -> Self {
        Self(format!(
            "the destination {host} is not allowed: herald does not call private, loopback or other internal addresses unless HERALD_ALLOWED_DESTINATIONS allows them"
        ))
    }

    fn literal(ip: IpAddr) -> Self {
        Self(format!(
            "the destination {ip} is not allowed: it is a private, loopback or otherwise internal address; allow it with HERALD_ALLOWED_DESTINATIONS"
        ))
    }
}

/// The IP address a URL's host spells, if it is an IP literal (those never reach the resolver).
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Checks a URL whose host is an IP literal (those never reach the resolver).
pub fn check_literal_host(url: &reqwest::Url, allow: &AllowList) -> Result<(), Blocked> {
    match literal_ip(url) {
        Some(ip) if !allow.permits(ip) => Err(Blocked::literal(ip)),
        _ => Ok(()),
    }
}

/// Refuses, when it is saved, an integration URL whose host is an IP literal herald may not
/// call: it could never be delivered to. (Names are checked when connecting, since what a name
/// resolves to may change.)
pub fn check_destination_url(
    url: &str,
    allow: &AllowList,
) -> Result<(), herald_domain::InvalidInput> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Ok(()); // the URL's syntax is checked (and named) elsewhere
    };
    check_literal_host(&parsed, allow)
        .map_err(|Blocked(why)| herald_domain::InvalidInput::new("url", why))
}

/// Checks a host name before a request is handed to a proxy, which resolves the name itself:
/// every address it resolves to must be permitted, since the proxy may pick any of them.
/// (The proxy resolves it again; an operator who sends deliveries through a proxy should have
/// the proxy refuse internal destinations as well.)
pub async fn check_name_for_proxy(
    url: &reqwest::Url,
    allow: &AllowList,
    lookup: &dyn NameLookup,
) -> Result<(), Blocked> {
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let addrs = lookup
        .lookup(host)
        .await
        .map_err(|_| Blocked(format!("the destination {host} could not be resolved")))?;
    if addrs.is_empty() || addrs.iter().any(|ip| !allow.permits(*ip)) {
        return Err(Blocked::name(host));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused() {
        let none = AllowList::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "ff02::1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
        ] {
            assert!(!none.permits(ip(bad)), "{bad} must be refused");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "100.128.0.1",
        ] {
            assert!(none.permits(ip(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn operators_can_allow_networks() {
        let allow = AllowList::parse("127.0.0.0/8, ::1").unwrap();
        assert!(allow.permits(ip("127.0.0.1")));
        assert!(
            allow.permits(ip("::ffff:127.0.0.1")),
            "mapped form of an allowed address"
        );
        assert!(allow.permits(ip("::1")));
        assert!(!allow.permits(ip("10.0.0.1")));
        assert!(AllowList::parse("not-a-net").is_err());
        assert!(AllowList::parse("").unwrap().0.is_empty());
    }

    #[test]
    fn literal_hosts_are_checked() {
        let none = AllowList::default();
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_literal_host(&u("http://127.0.0.1:8080/x"), &none).is_err());
        assert!(check_literal_host(&u("http://[::ffff:7f00:1]/"), &none).is_err());
        assert!(check_literal_host(&u("http://93.184.216.34/"), &none).is_ok());
        assert!(
            check_literal_host(&u("https://example.com/"), &none).is_ok(),
            "names go through the resolver"
        );
    }
}
