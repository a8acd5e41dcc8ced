//! Whose `X-Forwarded-For` to believe.
//!
//! Behind a reverse proxy (`wslink launch` with its proxy on, `wslink relay`
//! in forward mode, Apache, nginx) every browser reaches the server from the
//! proxy's address, so the per-address limit on failed hellos would let one
//! guesser ban every user. The proxy names the browser in
//! `X-Forwarded-For`, but so can anyone: the header is believed only when
//! the TCP peer is a proxy the deployment named, and then only as far back
//! as the chain of named proxies reaches.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use hyper::http::HeaderMap;

/// The reverse proxies whose `X-Forwarded-For` names the client (none by
/// default: the header is then ignored).
///
/// When the TCP peer is one of them, the client is the right-most address
/// of `X-Forwarded-For` that is not itself a trusted proxy (each proxy
/// appends the address it was reached from, so entries to the left of the
/// first untrusted one were written by the client and prove nothing). That
/// address is what the failed-hello limit counts and what logs show.
///
/// ```
/// use std::net::IpAddr;
/// use wslink_server::{HeaderMap, HeaderValue, TrustedProxies};
///
/// let trusted: TrustedProxies = "127.0.0.1, 10.1.0.0/16".parse().unwrap();
/// let mut headers = HeaderMap::new();
/// // A browser claims to be 1.2.3.4; the proxy at 10.1.2.3 appends what it saw.
/// headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4, 203.0.113.9, 10.1.2.3"));
/// let loopback: IpAddr = "127.0.0.1".parse().unwrap();
/// assert_eq!(trusted.client_ip(loopback, &headers), "203.0.113.9".parse::<IpAddr>().unwrap());
/// // From a peer that is not trusted, the header means nothing.
/// let stranger: IpAddr = "198.51.100.7".parse().unwrap();
/// assert_eq!(trusted.client_ip(stranger, &headers), stranger);
///
/// assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

/// An address, or a network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// An entry of a trusted-proxy list that is not an address or a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trusted proxy {given:?}: {reason} (expected an IP address such as 127.0.0.1 or ::1, or a network such as 10.0.0.0/8)")]
pub struct TrustedProxyError {
    given: String,
    reason: &'static str,
}

impl TrustedProxies {
    /// No proxy: `X-Forwarded-For` is never believed (the default).
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Adds an address (`127.0.0.1`, `::1`) or a network (`10.0.0.0/8`).
    ///
    /// ```
    /// use wslink_server::TrustedProxies;
    ///
    /// let proxies = TrustedProxies::none().with("127.0.0.1").unwrap().with("fd00::/8").unwrap();
    /// assert_eq!(proxies.to_string(), "127.0.0.1,fd00::/8");
    /// assert!(TrustedProxies::none().with("proxy.example.org").is_err());
    /// ```
    pub fn with(mut self, entry: &str) -> Result<Self, TrustedProxyError> {
        self.nets.push(parse_net(entry)?);
        Ok(self)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client's address for a request that came from `peer` with
    /// `headers`: `peer` itself unless it is a trusted proxy, else the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy. An
    /// entry that is not an address (`unknown`, garbage) ends the walk at
    /// the last address read, which is then a trusted proxy's. A request
    /// from a trusted proxy without the header is the proxy's own.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        // Several header lines are one list, in order (RFC 9110 §5.3).
        let values: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let Some(ip) = parse_forwarded_entry(entry.trim()) else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1` or
/// `[::1]:5678`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

fn parse_net(entry: &str) -> Result<Net, TrustedProxyError> {
    let given = entry.trim();
    let error = |reason| TrustedProxyError {
        given: given.to_owned(),
        reason,
    };
    let (addr, prefix) = match given.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (given, None),
    };
    if addr.is_empty() {
        return Err(error("empty"));
    }
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| error("not an IP address (host names are not resolved)"))?;
    let addr = addr.to_canonical();
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => full,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= full => p,
            _ => {
                return Err(error(
                    "the prefix length is not 0 to 32 (IPv4) or 128 (IPv6)",
                ))
            }
        },
    };
    Ok(Net { addr, prefix })
}

impl FromStr for TrustedProxies {
    type Err = TrustedProxyError;

    /// A comma-separated list of addresses and networks; empty: none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = TrustedProxies::none();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            out = out.with(entry)?;
        }
        Ok(out)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl Extend<TrustedProxies> for TrustedProxies {
    fn extend<I: IntoIterator<Item = TrustedProxies>>(&mut self, iter: I) {
        for more in iter {
            self.nets.extend(more.nets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn networks_match_by_prefix() {
        let t: TrustedProxies = "10.0.0.0/8, 192.168.1.1, fd00::/8, 0.0.0.0/0"
            .parse()
            .unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("192.168.1.1")));
        assert!(t.contains(ip("fdab::1")));
        assert!(!t.contains(ip("fe80::1")), "/0 of IPv4 does not cover IPv6");
        let narrow: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert!(!narrow.contains(ip("11.0.0.1")));
        // An IPv4 peer seen through a dual-stack socket.
        assert!(narrow.contains(ip("::ffff:10.1.1.1")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "1.2.3",
            "/8",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert_eq!(
            "127.0.0.1,::1/128,10.0.0.0/8"
                .parse::<TrustedProxies>()
                .unwrap()
                .to_string(),
            "127.0.0.1,::1,10.0.0.0/8"
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let t: TrustedProxies = "127.0.0.1,10.0.0.2".parse().unwrap();
        let lo = ip("127.0.0.1");
        // Spoofed left part, real client, then a second trusted hop.
        let h = xff(&["6.6.6.6, 203.0.113.5", "10.0.0.2"]);
        assert_eq!(t.client_ip(lo, &h), ip("203.0.113.5"));
        // Ports and brackets as some proxies write them.
        assert_eq!(
            t.client_ip(lo, &xff(&["203.0.113.5:4711"])),
            ip("203.0.113.5")
        );
        assert_eq!(
            t.client_ip(lo, &xff(&["[2001:db8::7]:4711"])),
            ip("2001:db8::7")
        );
        // No header: the proxy itself.
        assert_eq!(t.client_ip(lo, &HeaderMap::new()), lo);
        // Every entry trusted: the furthest one.
        assert_eq!(t.client_ip(lo, &xff(&["10.0.0.2"])), ip("10.0.0.2"));
        // Garbage ends the walk at the last address read.
        assert_eq!(
            t.client_ip(lo, &xff(&["203.0.113.5, unknown, 10.0.0.2"])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn an_untrusted_peer_is_its_own_client() {
        let h = xff(&["203.0.113.5"]);
        assert_eq!(
            TrustedProxies::none().client_ip(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(t.client_ip(ip("198.51.100.1"), &h), ip("198.51.100.1"));
    }
}
