//! Who the client is behind a load balancer. Only peers inside a `--trusted-proxy` network
//! are believed about the address they forward for (`X-Forwarded-For`, the PROXY protocol);
//! anyone else's claims are ignored, so a client cannot pick the address its limits are
//! counted against.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A string that is not a network in CIDR notation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an address or a network in CIDR notation (e.g. 10.0.0.0/8)")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
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

/// The networks whose peers are believed about the client they forward for.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts `networks`.
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(networks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request that came from `peer` (the TCP peer, or the address a
    /// trusted peer gave in the PROXY protocol): walking the chain `peer`, then the
    /// `X-Forwarded-For` entries from right to left, the first address that is not a
    /// trusted proxy. The header is read only while the chain so far is trusted; an entry
    /// that is not a bare IP address ends the walk at the last address vouched for.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Several headers are one list, in order (RFC 9110, 5.3).
        let values: Vec<&str> = match headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str())
            .collect::<Result<_, _>>()
        {
            Ok(v) => v,
            Err(_) => return client,
        };
        for hop in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let Ok(ip) = hop.trim_matches([' ', '\t']).parse::<IpAddr>() else {
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_strictly_and_match_their_network() {
        // (text, address, inside)
        let table = [
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("192.0.2.0/24", "::ffff:192.0.2.7", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "10.0.0.1", false),
            ("::1", "::1", true),
        ];
        for (text, addr, inside) in table {
            let cidr: Cidr = text.parse().unwrap();
            assert_eq!(cidr.contains(ip(addr)), inside, "{text} contains {addr}");
        }
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "::/129",
            "10.0.0/8",
            "host/8",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        // (peer, X-Forwarded-For headers, client)
        let table: &[(&str, &[&str], &str)] = &[
            // An untrusted peer's header is ignored.
            ("203.0.113.5", &["198.51.100.1"], "203.0.113.5"),
            // A trusted peer without the header is the client.
            ("10.0.0.1", &[], "10.0.0.1"),
            ("10.0.0.1", &["198.51.100.1"], "198.51.100.1"),
            // The client cannot prepend an address of its choosing.
            ("10.0.0.1", &["1.2.3.4, 198.51.100.1"], "198.51.100.1"),
            // Trusted hops are skipped.
            ("10.0.0.1", &["198.51.100.1, 10.9.9.9"], "198.51.100.1"),
            ("10.0.0.1", &["198.51.100.1", "10.9.9.9"], "198.51.100.1"),
            ("10.0.0.1", &["198.51.100.1,10.9.9.9"], "198.51.100.1"),
            ("2001:db8::1", &["2001:db9::7"], "2001:db9::7"),
            ("10.0.0.1", &["::ffff:198.51.100.1"], "198.51.100.1"),
            // Malformed entries end the walk at the last hop vouched for.
            ("10.0.0.1", &["198.51.100.1, 10.9.9.9:80"], "10.0.0.1"),
            ("10.0.0.1", &["198.51.100.1, [2001:db9::1]"], "10.0.0.1"),
            ("10.0.0.1", &["198.51.100.1, , 10.9.9.9"], "10.9.9.9"),
            ("10.0.0.1", &["unknown"], "10.0.0.1"),
            ("10.0.0.1", &[""], "10.0.0.1"),
            // A chain of trusted proxies only: the farthest one.
            ("10.0.0.1", &["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
            // An entry left of the client does not matter, even when malformed.
            ("10.0.0.1", &["junk, 198.51.100.1"], "198.51.100.1"),
        ];
        for (peer, values, want) in table {
            let mut headers = HeaderMap::new();
            for v in *values {
                headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(
                trusted.client(ip(peer), &headers),
                ip(want),
                "peer {peer}, X-Forwarded-For {values:?}"
            );
        }
    }

    #[test]
    fn with_no_trusted_proxy_the_peer_is_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        assert_eq!(
            TrustedProxies::default().client(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
    }
}
