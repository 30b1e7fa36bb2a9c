//! Where a job-log download may be redirected. The upstream answers a log request with a
//! redirect to a pre-signed URL; a compromised or misconfigured upstream could point that at
//! the connector's own network neighbourhood (`localhost`, cloud metadata, internal names)
//! and read the answer back through a tool result. So the connector follows a redirect only:
//!
//! - to the upstream's own origin (its built-in log storage), or
//! - to a host the provider's configuration lists in `log_storage_hosts` (exact names), over
//!   https (http only when the upstream itself is plain http on loopback: a test setup), and
//!   then only if every address the name resolves to is outside the fence ([`fenced`]):
//!   not loopback (unless the upstream itself is on loopback), link-local, unspecified,
//!   broadcast or multicast. The download connects to exactly the addresses checked
//!   ([`resolve`]), so a second lookup cannot answer differently.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use shared::call::CallFailure;
use shared::wire::ErrorCode;
use url::{Host, Url};

/// Where a redirect may be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The upstream's own origin: fetched like any upstream request (no token).
    Upstream,
    /// A listed log-storage host, whose addresses must pass the fence first.
    Storage {
        /// The host.
        host: Host<String>,
        /// The port.
        port: u16,
    },
}

/// Why a redirect is not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The location has no host (or no port for its scheme).
    #[error("the upstream redirected the log download to a location without a host")]
    NoHost,
    /// Neither the upstream's origin nor a listed host.
    #[error(
        "the upstream redirected the log download to {host}, which is not its own origin nor in log_storage_hosts of provider {provider}; the connector's operator can list it there if it is the instance's log storage"
    )]
    NotListed {
        /// The host.
        host: String,
        /// The provider instance.
        provider: String,
    },
    /// A listed host, but not over https.
    #[error(
        "the upstream redirected the log download to {host} over {scheme}; only https is followed"
    )]
    NotHttps {
        /// The host.
        host: String,
        /// The scheme used.
        scheme: String,
    },
    /// The host did not resolve in time, or to nothing.
    #[error("log storage host {host} did not resolve: {reason}")]
    Unresolved {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The host resolved to an address inside the fence.
    #[error(
        "log storage host {host} resolved to {address}, a {kind} address, which the connector does not fetch from"
    )]
    Fenced {
        /// The host.
        host: String,
        /// The address.
        address: IpAddr,
        /// Which kind of address.
        kind: &'static str,
    },
}

impl From<Refusal> for CallFailure {
    fn from(r: Refusal) -> Self {
        CallFailure::new(ErrorCode::Unavailable, r.to_string())
    }
}

/// Whether `url`'s host is a loopback name or address.
pub fn on_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// Where a redirect from the upstream at `api` to `to` may go, given the provider's
/// `log_storage_hosts` (normalised as URL hosts are: lowercase, IPv6 in brackets).
pub fn rule(
    provider: &str,
    api: &Url,
    listed: &[String],
    to: &Url,
) -> Result<Destination, Refusal> {
    if to.origin() == api.origin() {
        return Ok(Destination::Upstream);
    }
    let (Some(host), Some(port)) = (to.host(), to.port_or_known_default()) else {
        return Err(Refusal::NoHost);
    };
    let name = host.to_string();
    if !listed.iter().any(|h| h == &name) {
        return Err(Refusal::NotListed {
            host: name,
            provider: provider.to_owned(),
        });
    }
    let plain_ok = api.scheme() == "http" && on_loopback(api);
    if !(to.scheme() == "https" || (to.scheme() == "http" && plain_ok)) {
        return Err(Refusal::NotHttps {
            host: name,
            scheme: to.scheme().to_owned(),
        });
    }
    Ok(Destination::Storage {
        host: host.to_owned(),
        port,
    })
}

/// The kind of address `ip` is, if the connector must not fetch from it; `loopback_ok` when
/// the upstream itself is on loopback.
pub fn fenced(ip: IpAddr, loopback_ok: bool) -> Option<&'static str> {
    // An IPv4-mapped IPv6 address is the IPv4 address.
    match ip.to_canonical() {
        ip if ip.is_unspecified() => Some("unspecified"),
        ip if ip.is_multicast() => Some("multicast"),
        ip if ip.is_loopback() => (!loopback_ok).then_some("loopback"),
        IpAddr::V4(a) if a.is_link_local() => Some("link-local"),
        IpAddr::V4(a) if a.is_broadcast() => Some("broadcast"),
        IpAddr::V6(a) if a.is_unicast_link_local() => Some("link-local"),
        _ => None,
    }
}

/// The addresses of a log-storage host, every one checked against the fence; the download
/// must connect to these and no others. Fails when any address is fenced: a name that
/// resolves partly inside is not trusted with the rest.
pub async fn resolve(
    host: &Host<String>,
    port: u16,
    loopback_ok: bool,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Refusal> {
    let name = host.to_string();
    let addrs: Vec<SocketAddr> = match host {
        Host::Ipv4(a) => vec![SocketAddr::new(IpAddr::V4(*a), port)],
        Host::Ipv6(a) => vec![SocketAddr::new(IpAddr::V6(*a), port)],
        Host::Domain(d) => {
            let unresolved = |reason: String| Refusal::Unresolved {
                host: name.clone(),
                reason,
            };
            let lookup = tokio::net::lookup_host((d.as_str(), port));
            match tokio::time::timeout_at(deadline.into(), lookup).await {
                Err(_) => return Err(unresolved("the call's deadline passed".to_owned())),
                Ok(Err(e)) => return Err(unresolved(e.to_string())),
                Ok(Ok(it)) => it.collect(),
            }
        }
    };
    if addrs.is_empty() {
        return Err(Refusal::Unresolved {
            host: name,
            reason: "no address".to_owned(),
        });
    }
    if let Some((address, kind)) = addrs
        .iter()
        .find_map(|a| fenced(a.ip(), loopback_ok).map(|k| (a.ip(), k)))
    {
        return Err(Refusal::Fenced {
            host: name,
            address,
            kind,
        });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row: upstream API URL, listed hosts, redirect location, and whether it is
    /// followed (and where) or why not.
    #[test]
    fn job_log_redirects_go_only_to_the_upstream_or_listed_hosts() {
        let listed = ["blobs.example.net".to_owned(), "[fd00::5]".to_owned()];
        let ghes = "https://ghes.example/api/v3";
        let local = "http://127.0.0.1:8080/api/v3";
        let storage = |host: &str, port: u16| {
            Ok(Destination::Storage {
                host: Host::parse(host).unwrap(),
                port,
            })
        };
        let not_listed = |host: &str| {
            Err(Refusal::NotListed {
                host: host.to_owned(),
                provider: "ghes".to_owned(),
            })
        };
        let table: [(&str, &str, Result<Destination, Refusal>); 12] = [
            (
                ghes,
                "https://ghes.example/_services/logs/1?sig=x",
                Ok(Destination::Upstream),
            ),
            (
                ghes,
                "https://blobs.example.net/logs/1?sig=x",
                storage("blobs.example.net", 443),
            ),
            (
                ghes,
                "https://BLOBS.example.net:8443/l",
                storage("blobs.example.net", 8443),
            ),
            (ghes, "https://[fd00::5]/l", storage("[fd00::5]", 443)),
            // Any other https host is refused now, named or not.
            (
                ghes,
                "https://other.example.net/logs/1",
                not_listed("other.example.net"),
            ),
            (ghes, "https://localhost/x", not_listed("localhost")),
            (
                ghes,
                "https://169.254.169.254/latest/meta-data/",
                not_listed("169.254.169.254"),
            ),
            (ghes, "https://[::1]/x", not_listed("[::1]")),
            // The upstream's host on another scheme or port is another origin.
            (ghes, "http://ghes.example/x", not_listed("ghes.example")),
            (
                ghes,
                "http://blobs.example.net/logs/1",
                Err(Refusal::NotHttps {
                    host: "blobs.example.net".to_owned(),
                    scheme: "http".to_owned(),
                }),
            ),
            (
                local,
                "http://127.0.0.1:8080/logs/1",
                Ok(Destination::Upstream),
            ),
            (local, "http://127.0.0.1:9/x", not_listed("127.0.0.1")),
        ];
        for (api, to, want) in table {
            let got = rule(
                "ghes",
                &Url::parse(api).unwrap(),
                &listed,
                &Url::parse(to).unwrap(),
            );
            assert_eq!(got, want, "{api} -> {to}");
        }
        // A plain-http loopback upstream (a test) may point at a listed plain-http host.
        let localhost = ["localhost".to_owned()];
        assert_eq!(
            rule(
                "ghes",
                &Url::parse(local).unwrap(),
                &localhost,
                &Url::parse("http://localhost:8080/l").unwrap()
            ),
            storage("localhost", 8080)
        );
    }

    #[test]
    fn the_fence_refuses_loopback_link_local_unspecified_and_multicast() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (addr, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("169.254.169.254", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("0.0.0.0", Some("unspecified")),
            ("::", Some("unspecified")),
            ("224.0.0.1", Some("multicast")),
            ("ff02::1", Some("multicast")),
            ("255.255.255.255", Some("broadcast")),
            ("10.1.2.3", None),
            ("192.168.1.10", None),
            ("fd00::5", None),
            ("93.184.216.34", None),
        ] {
            assert_eq!(fenced(ip(addr), false), kind, "{addr}");
        }
        assert_eq!(fenced(ip("127.0.0.1"), true), None);
        assert_eq!(fenced(ip("169.254.169.254"), true), Some("link-local"));
    }

    #[tokio::test]
    async fn a_listed_host_resolving_inside_the_fence_is_refused() {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let host = Host::parse("localhost").unwrap();
        let e = resolve(&host, 443, false, deadline).await.unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::Fenced {
                    kind: "loopback",
                    ..
                }
            ),
            "{e}"
        );
        let metadata = Host::parse("169.254.169.254").unwrap();
        assert!(matches!(
            resolve(&metadata, 443, true, deadline).await,
            Err(Refusal::Fenced {
                kind: "link-local",
                ..
            })
        ));
        let fine = Host::parse("10.1.2.3").unwrap();
        assert_eq!(
            resolve(&fine, 443, false, deadline).await.unwrap(),
            vec!["10.1.2.3:443".parse().unwrap()]
        );
    }
}
