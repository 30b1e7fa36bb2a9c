//! `edge-connector egress-report`: every destination the connector will contact, read from
//! its configuration and its enrollment, with resolved addresses: the table a firewall
//! change request and a security review need. The connector opens no listening socket, so
//! this outbound list is the whole of its network footprint.
//!
//! Upstream requests honour `HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY` when a provider says
//! `proxy = "env"`, by the same rules the HTTP client applies ([`ProxyEnv::route`]), so the
//! report names the proxy the connector really uses, and whether it authenticates (the
//! user and the vault entry of the password, never the password). The tunnel's SSH-over-TCP path goes
//! through `[tunnel] proxy` by the same rules (as `crate::connect_proxy::route_for` reads
//! them; `doctor` tries that path for real).

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::config::{Config, ProviderConfig, Proxy, Transport};
use crate::state::ConnectorConfig;

/// How long one name may take to resolve for the report.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Transport and protocol of a destination, as a firewall rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    /// QUIC over UDP (the tunnel).
    #[serde(rename = "udp/quic")]
    Quic,
    /// TLS over TCP.
    #[serde(rename = "tcp/https")]
    Https,
    /// Plain HTTP over TCP (loopback upstreams, OTLP collectors, proxies).
    #[serde(rename = "tcp/http")]
    Http,
    /// SSH over TCP (the tunnel where UDP is blocked).
    #[serde(rename = "tcp/ssh")]
    Ssh,
}

impl Protocol {
    /// `UDP`/`TCP`, the column a firewall rule needs.
    pub fn transport(self) -> &'static str {
        match self {
            Protocol::Quic => "UDP",
            Protocol::Https | Protocol::Http | Protocol::Ssh => "TCP",
        }
    }

    fn of_scheme(scheme: &str) -> Self {
        if scheme == "https" {
            Protocol::Https
        } else {
            Protocol::Http
        }
    }
}

/// One place the connector connects to.
#[derive(Debug, Clone, Serialize)]
pub struct Destination {
    /// Why it is contacted.
    pub purpose: String,
    /// Host name or address as configured.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport and protocol.
    pub protocol: Protocol,
    /// The proxy the traffic goes through instead (then the firewall needs the proxy, not
    /// this host); credentials are never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_proxy: Option<String>,
    /// Addresses the host resolved to (filled by [`resolve`]).
    pub addresses: Vec<IpAddr>,
    /// Why it did not resolve, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_error: Option<String>,
}

impl Destination {
    fn new(purpose: String, host: &str, port: u16, protocol: Protocol) -> Self {
        Self {
            purpose,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            protocol,
            via_proxy: None,
            addresses: Vec::new(),
            resolve_error: None,
        }
    }

    /// `host:port`, bracketing IPv6 literals.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The proxy variables of the environment, read once, so that checks and tests see one
/// consistent picture (and tests can supply their own without touching the process).
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    /// `HTTPS_PROXY` / `https_proxy`.
    pub https: Option<String>,
    /// `HTTP_PROXY` / `http_proxy`.
    pub http: Option<String>,
    /// `ALL_PROXY` / `all_proxy`.
    pub all: Option<String>,
    /// `NO_PROXY` / `no_proxy`.
    pub no: Option<String>,
}

/// Where requests to one URL go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Straight to the host.
    Direct {
        /// Why no proxy: `proxy = "none"`, no proxy variable, or `NO_PROXY` matches.
        reason: &'static str,
    },
    /// Through this proxy (credentials included: use [`redact`] before showing it).
    Proxy {
        /// The proxy URL.
        url: Url,
        /// Where it came from (`HTTPS_PROXY`, the provider's `proxy` setting, ...).
        source: &'static str,
    },
}

impl ProxyEnv {
    /// The variables of this process, upper case first as curl reads them.
    pub fn from_process() -> Self {
        let var = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        Self {
            https: var(["HTTPS_PROXY", "https_proxy"]),
            http: var(["HTTP_PROXY", "http_proxy"]),
            all: var(["ALL_PROXY", "all_proxy"]),
            no: var(["NO_PROXY", "no_proxy"]),
        }
    }

    /// Whether any proxy variable is set.
    pub fn is_empty(&self) -> bool {
        self.https.is_none() && self.http.is_none() && self.all.is_none()
    }

    /// Where a request to `url` goes under the provider setting `proxy`. `NO_PROXY` is
    /// matched by hyper-util's matcher, the one the HTTP client itself uses, and exempts
    /// hosts from a provider's own proxy too, as the upstream client configures it.
    pub fn route(&self, proxy: &Proxy, url: &Url) -> Route {
        let https = url.scheme() == "https";
        let (value, source) = match proxy {
            Proxy::None => {
                return Route::Direct {
                    reason: "proxy = \"none\"",
                };
            }
            Proxy::Url(u) => (u.to_string(), "the provider's proxy setting"),
            Proxy::Env => {
                let by_scheme = if https {
                    self.https.as_ref().map(|v| (v, "HTTPS_PROXY"))
                } else {
                    self.http.as_ref().map(|v| (v, "HTTP_PROXY"))
                };
                match by_scheme.or(self.all.as_ref().map(|v| (v, "ALL_PROXY"))) {
                    Some((v, source)) => (v.clone(), source),
                    None => {
                        return Route::Direct {
                            reason: if self.is_empty() {
                                "no proxy variable set"
                            } else {
                                "no proxy variable covers this scheme"
                            },
                        };
                    }
                }
            }
        };
        let mut matcher = hyper_util::client::proxy::matcher::Matcher::builder().all(value.clone());
        if let Some(v) = &self.no {
            matcher = matcher.no(v.clone());
        }
        let proxied = url
            .as_str()
            .parse::<http::Uri>()
            .is_ok_and(|uri| matcher.build().intercept(&uri).is_some());
        if !proxied {
            return Route::Direct {
                reason: "NO_PROXY matches this host",
            };
        }
        // Like curl, a proxy without a scheme is an HTTP proxy.
        let parsed = Url::parse(&value)
            .ok()
            .filter(|u| u.has_host())
            .or_else(|| Url::parse(&format!("http://{value}")).ok());
        match parsed {
            Some(url) => Route::Proxy { url, source },
            None => Route::Direct {
                reason: "the proxy variable is not a URL, so the client ignores it",
            },
        }
    }
}

/// A proxy URL without its user name and password, for output.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    // Both calls fail only for URLs that cannot carry credentials, which is fine as is.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.as_str().trim_end_matches('/').to_owned()
}

/// Splits `host:port` (with `[v6]:port`); `None` when the port is missing or invalid.
pub fn split_host_port(endpoint: &str) -> Option<(&str, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host, port.parse().ok()?))
}

/// Every destination, unresolved: the runtime's endpoints from the enrollment (when
/// enrolled; each `[[tunnel.replica]]`'s tunnel endpoints instead, if listed), each upstream (and its proxy), and the OTLP collector.
pub fn destinations(
    config: &Config,
    enrollment: Option<&ConnectorConfig>,
    env: &ProxyEnv,
) -> Vec<Destination> {
    let mut out = Vec::new();
    if let Some(e) = enrollment {
        let runtimes = config.tunnel.runtime_addresses(e);
        for runtime in &runtimes {
            if let Some((host, port)) = split_host_port(&runtime.quic) {
                out.push(Destination::new(
                    "runtime tunnel (QUIC, mutual TLS)".into(),
                    host,
                    port,
                    Protocol::Quic,
                ));
            }
        }
        if let Some((host, port)) = split_host_port(&e.runtime) {
            out.push(Destination::new(
                "runtime HTTPS (enrollment, TCP fallback)".into(),
                host,
                port,
                Protocol::Https,
            ));
        }
        for runtime in &runtimes {
            out.extend(tunnel_tcp_destinations(config, runtime.tcp.as_deref(), env));
        }
    }
    for p in &config.providers {
        out.extend(provider_destinations(p, env));
    }
    if let Some(url) = &config.telemetry.otlp_endpoint
        && let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default())
    {
        out.push(Destination::new(
            "OpenTelemetry collector (OTLP/HTTP)".into(),
            host,
            port,
            Protocol::of_scheme(url.scheme()),
        ));
    }
    out
}

/// The tunnel's SSH-over-TCP endpoint (when the runtime offers one and the transport may
/// use it) and the proxy it goes through.
fn tunnel_tcp_destinations(
    config: &Config,
    endpoint: Option<&str>,
    env: &ProxyEnv,
) -> Vec<Destination> {
    let Some((host, port)) = endpoint.and_then(split_host_port) else {
        return Vec::new();
    };
    if config.tunnel.transport == Transport::Quic {
        return Vec::new();
    }
    let mut tunnel = Destination::new(
        "runtime tunnel (SSH over TCP, where UDP is blocked)".into(),
        host,
        port,
        Protocol::Ssh,
    );
    // CONNECT tunnels are what HTTPS requests take, so the https rules apply.
    let Ok(as_url) = Url::parse(&format!("https://{}/", tunnel.authority())) else {
        return vec![tunnel];
    };
    let Route::Proxy { url: proxy, .. } = env.route(&config.tunnel.proxy, &as_url) else {
        return vec![tunnel];
    };
    let (Some(h), Some(p)) = (proxy.host_str(), proxy.port_or_known_default()) else {
        return vec![tunnel];
    };
    let via = Destination::new(
        "proxy of the runtime tunnel (HTTP CONNECT)".into(),
        h,
        p,
        Protocol::of_scheme(proxy.scheme()),
    );
    let user = config
        .tunnel
        .proxy_user
        .clone()
        .or_else(|| (!proxy.username().is_empty()).then(|| proxy.username().to_owned()));
    tunnel.via_proxy = Some(match user {
        // The tunnel refuses such a URL (`doctor` says so); the report says it too.
        _ if proxy.password().is_some() => format!(
            "{} (unusable: its URL carries a password; set proxy_user and the vault entry proxy/password)",
            via.authority()
        ),
        Some(u) => format!(
            "{} (user {u}, password in the vault entry proxy/password)",
            via.authority()
        ),
        None => format!("{} (no authentication)", via.authority()),
    });
    vec![tunnel, via]
}

fn provider_destinations(p: &ProviderConfig, env: &ProxyEnv) -> Vec<Destination> {
    let url = &p.api_url;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Vec::new();
    };
    let purpose = format!("upstream {} ({})", p.name, p.kind.prefix());
    let mut upstream = Destination::new(purpose, host, port, Protocol::of_scheme(url.scheme()));
    let mut out = Vec::new();
    if let Route::Proxy { url: proxy, .. } = env.route(&p.proxy, url) {
        upstream.via_proxy = Some(describe_upstream_proxy(p, &proxy));
        if let (Some(h), Some(port)) = (proxy.host_str(), proxy.port_or_known_default()) {
            out.push(Destination::new(
                format!("proxy of upstream {}", p.name),
                h,
                port,
                Protocol::of_scheme(proxy.scheme()),
            ));
        }
    }
    out.insert(0, upstream);
    // Job-log downloads may be redirected to these (https, any port the redirect names;
    // the report assumes 443).
    for h in &p.log_storage_hosts {
        let Ok(storage) = Url::parse(&format!("https://{h}/")) else {
            continue;
        };
        let mut d = Destination::new(
            format!("log storage of upstream {}", p.name),
            h,
            443,
            Protocol::Https,
        );
        if let Route::Proxy { url: proxy, .. } = env.route(&p.proxy, &storage) {
            d.via_proxy = Some(describe_upstream_proxy(p, &proxy));
        }
        out.push(d);
    }
    out
}

/// Resolves every destination's host (an address literal resolves to itself), except those
/// reached through a proxy: the proxy resolves them, and only it needs a firewall rule.
pub async fn resolve(destinations: &mut [Destination]) {
    for d in destinations.iter_mut().filter(|d| d.via_proxy.is_none()) {
        match lookup(&d.host, d.port).await {
            Ok(addrs) => d.addresses = addrs,
            Err(e) => d.resolve_error = Some(e),
        }
    }
}

/// The distinct addresses of `host`, or why there are none (bounded by a timeout: a
/// resolver that does not answer must not hang a report).
pub async fn lookup(host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    let query = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(RESOLVE_TIMEOUT, query).await {
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            if ips.is_empty() {
                Err("no addresses".into())
            } else {
                Ok(ips)
            }
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer from the resolver within {} s",
            RESOLVE_TIMEOUT.as_secs()
        )),
    }
}

/// The report as a table for people.
pub fn render(destinations: &[Destination], enrolled: bool) -> String {
    let mut rows = vec![[
        "PROTO".to_owned(),
        "DESTINATION".to_owned(),
        "ADDRESSES".to_owned(),
        "PURPOSE".to_owned(),
    ]];
    for d in destinations {
        let addresses = match (&d.resolve_error, d.addresses.is_empty()) {
            (Some(e), _) => format!("unresolved: {e}"),
            (None, true) if d.via_proxy.is_some() => "(resolved by the proxy)".to_owned(),
            (None, true) => "-".to_owned(),
            (None, false) => d
                .addresses
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let purpose = match &d.via_proxy {
            Some(p) => format!("{} — via proxy {p}", d.purpose),
            None => d.purpose.clone(),
        };
        rows.push([
            format!("{} {}", d.protocol.transport(), d.port),
            d.authority(),
            addresses,
            purpose,
        ]);
    }
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            match widths.get(i) {
                Some(w) => out.push_str(&format!("{cell:<w$}  ")),
                None => out.push_str(cell),
            }
        }
        out.push('\n');
    }
    out.push_str("\nOutbound only: the connector opens no listening port and accepts no inbound connection.\n");
    if !enrolled {
        out.push_str(
            "Not enrolled yet: the runtime's endpoints come from enrollment. Allow TCP to the \
             HTTPS endpoint you pass to `enroll --runtime` (8443 by default) and UDP to its \
             QUIC endpoint (4433 by default), then run this report again.\n",
        );
    }
    out
}

/// The vault entry holding the proxy password of provider instance `provider`.
pub fn proxy_password_entry(provider: &str) -> String {
    format!("provider/{provider}/proxy_password")
}

/// The proxy path in words for reports, from the proxy URL a request to `p` takes (which
/// may carry a user from the environment): `proxy.corp:3128 (user svc-edge, password in
/// the vault entry provider/ghes/proxy_password)`, `proxy.corp:3128 (user u, from the proxy
/// URL)` or `proxy.corp:3128 (no authentication)`. Never a password.
pub fn describe_upstream_proxy(p: &ProviderConfig, proxy: &Url) -> String {
    let authority = match (proxy.host_str(), proxy.port_or_known_default()) {
        (Some(h), Some(port)) => format!("{h}:{port}"),
        _ => redact(proxy),
    };
    match &p.proxy_user {
        Some(u) => format!(
            "{authority} (user {u}, password in the vault entry {})",
            proxy_password_entry(&p.name)
        ),
        None if !proxy.username().is_empty() => {
            format!(
                "{authority} (user {}, from the proxy URL)",
                proxy.username()
            )
        }
        None => format!("{authority} (no authentication)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn routes_follow_the_provider_setting_and_no_proxy() {
        let env = ProxyEnv {
            https: Some("http://user:pw@proxy.corp:3128".into()),
            no: Some("internal.corp, 10.0.0.0/8".into()),
            ..ProxyEnv::default()
        };
        let ghes = url("https://ghes.example.com/api/v3");
        let Route::Proxy { url: p, source } = env.route(&Proxy::Env, &ghes) else {
            panic!("expected a proxy");
        };
        assert_eq!(source, "HTTPS_PROXY");
        assert_eq!(redact(&p), "http://proxy.corp:3128");
        assert!(matches!(
            env.route(&Proxy::Env, &url("https://git.internal.corp/api/v4")),
            Route::Direct { .. }
        ));
        assert!(matches!(
            env.route(&Proxy::Env, &url("https://10.1.2.3/api/v4")),
            Route::Direct { .. }
        ));
        assert!(matches!(
            env.route(&Proxy::None, &ghes),
            Route::Direct { .. }
        ));
        assert!(matches!(
            ProxyEnv::default().route(&Proxy::Env, &ghes),
            Route::Direct { .. }
        ));
    }

    #[test]
    fn lists_runtime_upstreams_proxies_and_otlp() {
        let config = Config::parse(
            std::path::Path::new("/etc/ec/config.toml"),
            r#"
[telemetry]
otlp_endpoint = "http://127.0.0.1:4318"
[[provider]]
name = "ghes"
kind = "github"
api_url = "https://ghes.example.com/api/v3"
proxy = "http://proxy.corp:3128"
[[provider]]
name = "gl"
kind = "gitlab"
api_url = "https://gitlab.example.com:8443/api/v4"
log_storage_hosts = ["blobs.example.com"]
"#,
        )
        .unwrap();
        let enrollment = ConnectorConfig {
            identity: "spiffe://rt/tenant/acme/connector/c1".into(),
            runtime: "rt.example.com:8443".into(),
            quic_endpoint: "rt.example.com:4433".into(),
            server_name: "rt.example.com".into(),
            ca_fingerprint: "sha256:00".into(),
            tcp_endpoint: None,
            ssh_host_key: None,
        };
        let d = destinations(&config, Some(&enrollment), &ProxyEnv::default());
        let summary: Vec<String> = d
            .iter()
            .map(|d| format!("{} {}", d.protocol.transport(), d.authority()))
            .collect();
        assert_eq!(
            summary,
            [
                "UDP rt.example.com:4433",
                "TCP rt.example.com:8443",
                "TCP ghes.example.com:443",
                "TCP proxy.corp:3128",
                "TCP gitlab.example.com:8443",
                "TCP blobs.example.com:443",
                "TCP 127.0.0.1:4318",
            ]
        );
        assert_eq!(
            d[2].via_proxy.as_deref(),
            Some("proxy.corp:3128 (no authentication)")
        );
        let table = render(&d, true);
        assert!(
            table.contains("via proxy proxy.corp:3128 (no authentication)"),
            "{table}"
        );
        assert_eq!(split_host_port("[::1]:4433"), Some(("::1", 4433)));
        assert_eq!(split_host_port("host"), None);
    }

    #[test]
    fn an_upstreams_proxy_names_its_user_and_vault_entry_never_a_password() {
        let config = Config::parse(
            std::path::Path::new("/etc/ec/config.toml"),
            "[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"https://ghes.example.com/api/v3\"\nproxy = \"env\"\nproxy_user = \"svc-edge\"\n",
        )
        .unwrap();
        let env = ProxyEnv {
            https: Some("http://u:Pa55word@proxy.corp:3128".into()),
            ..ProxyEnv::default()
        };
        let d = destinations(&config, None, &env);
        assert_eq!(
            d[0].via_proxy.as_deref(),
            Some(
                "proxy.corp:3128 (user svc-edge, password in the vault entry provider/ghes/proxy_password)"
            )
        );
        assert_eq!(d[1].authority(), "proxy.corp:3128");
        assert!(!render(&d, true).contains("Pa55word"));
    }

    fn enrolled_with_tcp() -> ConnectorConfig {
        ConnectorConfig {
            identity: "spiffe://rt/tenant/acme/connector/c1".into(),
            runtime: "rt.example.com:8443".into(),
            quic_endpoint: "rt.example.com:4433".into(),
            server_name: "rt.example.com".into(),
            ca_fingerprint: "sha256:00".into(),
            tcp_endpoint: Some("rt.example.com:443".into()),
            ssh_host_key: None,
        }
    }

    #[test]
    fn the_tunnel_tcp_path_names_its_proxy_and_user_never_a_password() {
        let config = |tunnel: &str| {
            Config::parse(std::path::Path::new("/etc/ec/config.toml"), tunnel).unwrap()
        };
        let summary = |d: &[Destination]| -> Vec<String> {
            d.iter()
                .map(|d| format!("{} {} {}", d.protocol.transport(), d.authority(), d.purpose))
                .collect()
        };
        let e = enrolled_with_tcp();
        let proxied =
            config("[tunnel]\nproxy = \"http://proxy.corp:3128\"\nproxy_user = \"svc-edge\"\n");
        let d = destinations(&proxied, Some(&e), &ProxyEnv::default());
        assert_eq!(
            summary(&d),
            [
                "UDP rt.example.com:4433 runtime tunnel (QUIC, mutual TLS)",
                "TCP rt.example.com:8443 runtime HTTPS (enrollment, TCP fallback)",
                "TCP rt.example.com:443 runtime tunnel (SSH over TCP, where UDP is blocked)",
                "TCP proxy.corp:3128 proxy of the runtime tunnel (HTTP CONNECT)",
            ]
        );
        assert_eq!(
            d[2].via_proxy.as_deref(),
            Some("proxy.corp:3128 (user svc-edge, password in the vault entry proxy/password)")
        );
        let table = render(&d, true);
        assert!(
            table.contains("via proxy proxy.corp:3128 (user svc-edge"),
            "{table}"
        );

        // From the environment, with NO_PROXY exempting the runtime: direct.
        let from_env = config("[tunnel]\nproxy = \"env\"\n");
        let env = ProxyEnv {
            https: Some("http://u:pw@proxy.corp:3128".into()),
            no: Some(".example.com".into()),
            ..ProxyEnv::default()
        };
        let d = destinations(&from_env, Some(&e), &env);
        assert_eq!(d.len(), 3);
        assert_eq!(d[2].via_proxy, None);
        // Without NO_PROXY: through the environment's proxy, credentials never shown.
        let env = ProxyEnv { no: None, ..env };
        let d = destinations(&from_env, Some(&e), &env);
        assert_eq!(
            d[2].via_proxy.as_deref(),
            Some(
                "proxy.corp:3128 (unusable: its URL carries a password; set proxy_user and the vault entry proxy/password)"
            )
        );
        assert!(!render(&d, true).contains("u:pw"));
        let env = ProxyEnv {
            https: Some("http://u@proxy.corp:3128".into()),
            ..env
        };
        let d = destinations(&from_env, Some(&e), &env);
        assert_eq!(
            d[2].via_proxy.as_deref(),
            Some("proxy.corp:3128 (user u, password in the vault entry proxy/password)")
        );

        // QUIC only: no TCP path.
        let quic = config("[tunnel]\ntransport = \"quic\"\n");
        assert_eq!(destinations(&quic, Some(&e), &ProxyEnv::default()).len(), 2);
    }
}
