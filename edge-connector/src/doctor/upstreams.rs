//! Each upstream `[[provider]]`: DNS, TCP, TLS with its `ca_bundle`, and an HTTP answer from
//! `GET api_url`, over the route the connector uses (direct, the provider's proxy, or
//! `HTTPS_PROXY`/`NO_PROXY` from the environment), authenticating to the proxy as the
//! connector does (`proxy_user`, password from the vault). Any HTTP status of the upstream
//! counts as reachable: the probe carries no user token, so 401 is the expected answer; a
//! refusal by the proxy does not.

use std::time::{Duration, Instant};

use super::PROBE_TIMEOUT;
use super::chain;
use super::report::Check;
use crate::config::ProviderConfig;
use crate::egress::{ProxyEnv, Route, lookup, redact};
use crate::providers::proxy::{self as upstream_proxy, ProxyAuth, ProxyAuthError};

/// Budget of the HTTPS request (TCP, TLS, proxy tunnel and answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks one provider; `auth` is its proxy's credentials as
/// [`upstream_proxy::auth_for`] read them from the vault.
pub async fn check(
    p: &ProviderConfig,
    env: &ProxyEnv,
    auth: Result<Option<ProxyAuth>, ProxyAuthError>,
) -> Check {
    let id = format!("upstream:{}", p.name);
    let auth = match auth {
        Ok(a) => a,
        Err(e) => {
            let entry = crate::egress::proxy_password_entry(&p.name);
            return Check::fail(
                id,
                e.to_string(),
                format!(
                    "Store the proxy password with `edge-connector vault set {entry}` (or remove proxy_user from the [[provider]] block if the proxy needs none)."
                ),
            );
        }
    };
    let url = &p.api_url;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Check::fail(
            id,
            format!("api_url {url} names no host"),
            "Fix api_url in the [[provider]] block.",
        );
    };
    let route = env.route(&p.proxy, url);
    let (via, hop_host, hop_port) = match &route {
        Route::Direct { reason } => (format!("direct ({reason})"), host.to_owned(), port),
        Route::Proxy { url: proxy, source } => {
            match (proxy.host_str(), proxy.port_or_known_default()) {
                (Some(h), Some(pp)) => (
                    format!(
                        "via proxy {} (from {source})",
                        crate::egress::describe_upstream_proxy(p, proxy)
                    ),
                    h.to_owned(),
                    pp,
                ),
                _ => {
                    return Check::fail(
                        id,
                        format!("the proxy {} (from {source}) names no host", redact(proxy)),
                        "Set the proxy as http://HOST:PORT.",
                    );
                }
            }
        }
    };
    let proxied = matches!(route, Route::Proxy { .. });
    let hop = if proxied { "the proxy" } else { "the upstream" };

    // DNS of the first hop: through a proxy, the proxy resolves the upstream's name.
    let addrs = match lookup(&hop_host, hop_port).await {
        Ok(a) => a,
        Err(e) => {
            let fix = if proxied {
                format!(
                    "Check the proxy's name, or this machine's DNS (`getent hosts {hop_host}`)."
                )
            } else {
                format!(
                    "Check this machine's DNS (`getent hosts {hop_host}`). If upstreams are reached through a proxy here, set \
                     proxy = \"http://PROXY:PORT\" in the [[provider]] block, or HTTPS_PROXY in the service's environment \
                     (`systemctl edit edge-connector`, then Environment=HTTPS_PROXY=...)."
                )
            };
            return Check::fail(
                id,
                format!("cannot resolve {hop_host} ({hop}, {via}): {e}"),
                fix,
            );
        }
    };
    let ips = addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");

    // TCP to the first hop, so that "refused" and "filtered" are told apart from TLS trouble.
    let mut tcp_error = None;
    for ip in &addrs {
        let addr = std::net::SocketAddr::new(*ip, hop_port);
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                tcp_error = None;
                break;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tcp_error = Some(format!("TCP {hop_port} to {hop_host} ({addr}) was refused"));
            }
            Ok(Err(e)) => {
                tcp_error = Some(format!("TCP {hop_port} to {hop_host} ({addr}) failed: {e}"))
            }
            Err(_) => {
                tcp_error = Some(format!(
                    "TCP {hop_port} to {hop_host} ({addr}) seems blocked: no answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
        }
    }
    if let Some(e) = tcp_error {
        return Check::fail(
            id,
            format!("{e} ({hop} of provider {}, {via})", p.name),
            format!(
                "Check that {hop} is running and that outbound TCP {hop_port} to {ips} is allowed in your firewall."
            ),
        );
    }

    let client = match client(p, &route, auth.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            return Check::fail(
                id,
                format!("cannot set up the HTTPS client: {e}"),
                match &p.ca_bundle {
                    Some(b) => format!(
                        "Check that ca_bundle {} exists, is readable by the service user and holds PEM certificates.",
                        b.display()
                    ),
                    None => "Check the provider's proxy setting.".to_owned(),
                },
            );
        }
    };
    let start = Instant::now();
    let hop = upstream_proxy::hop(&p.proxy, env, url);
    let sent = client.get(url.clone()).send().await;
    let refused = match (&sent, &hop) {
        (Ok(resp), Some(hop))
            if url.scheme() == "http"
                && upstream_proxy::is_proxy_answer(resp.status(), resp.headers()) =>
        {
            Some(upstream_proxy::refused(
                &p.name,
                hop,
                &format!("{host}:{port}"),
                resp.status().as_u16(),
                resp.status().canonical_reason().unwrap_or_default(),
                auth.as_ref(),
            ))
        }
        (Err(e), Some(hop)) if e.is_connect() => {
            upstream_proxy::refusal(&p.name, hop, host, port, auth.as_ref(), REQUEST_TIMEOUT).await
        }
        _ => None,
    };
    if let Some(refused) = refused {
        return Check::fail(
            id,
            format!("GET {url} {via}: {}", refused.failure.message),
            format!(
                "Check proxy_user and the vault entry {} if the proxy wants credentials; otherwise ask the proxy's administrators to allow {host}:{port}, or exempt {host} with NO_PROXY if it is reachable directly.",
                crate::egress::proxy_password_entry(&p.name)
            ),
        );
    }
    match sent {
        Ok(resp) => Check::pass(
            id,
            format!(
                "GET {url} answered HTTP {} in {} ms, {via}{}",
                resp.status().as_u16(),
                start.elapsed().as_millis(),
                p.ca_bundle
                    .as_ref()
                    .map(|b| format!(", TLS verified with ca_bundle {}", b.display()))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => failure(id, p, &e, proxied, &via),
    }
}

/// Names what went wrong with the request and how to fix it.
fn failure(id: String, p: &ProviderConfig, e: &reqwest::Error, proxied: bool, via: &str) -> Check {
    let text = chain(e);
    let host = p.api_url.host_str().unwrap_or_default();
    if let Some(tls) = tls_error(e, &text) {
        let fix = if tls.contains("NotValidForName") {
            format!(
                "Use the host name the certificate was issued for in api_url, or have the certificate reissued to include {host}."
            )
        } else if tls.contains("Expired") {
            format!(
                "The certificate of {host} has expired: have it renewed (or check this machine's clock)."
            )
        } else {
            match &p.ca_bundle {
                None => format!(
                    "The certificate of {host} is not signed by a CA this machine trusts. If it comes from your own PKI, save the \
                     issuing CA certificate(s) as PEM, e.g. /etc/edge-connector/{}-ca.pem, and set ca_bundle = \"/etc/edge-connector/{}-ca.pem\" \
                     in this [[provider]] block.",
                    p.name, p.name
                ),
                Some(b) => format!(
                    "The certificate of {host} does not chain to the CAs in {}: put the CA that issued it (root and intermediates) in that file.",
                    b.display()
                ),
            }
        };
        return Check::fail(
            id,
            format!("TLS to {host} failed: the certificate is not trusted ({tls}); {via}"),
            fix,
        );
    }
    if proxied && (text.contains("tunnel") || text.contains("proxy")) {
        return Check::fail(
            id,
            format!("the proxy refused to tunnel to {host}: {text}"),
            format!(
                "Ask your proxy team to allow CONNECT to {host}:{}; if the proxy needs credentials, set proxy_user in the \
                 [[provider]] block and store the password with `edge-connector vault set {}`; or exempt {host} with NO_PROXY \
                 if it is reachable directly.",
                p.api_url.port_or_known_default().unwrap_or(443),
                crate::egress::proxy_password_entry(&p.name)
            ),
        );
    }
    if e.is_timeout() {
        return Check::fail(
            id,
            format!(
                "GET {} got no answer within {} s ({via})",
                p.api_url,
                REQUEST_TIMEOUT.as_secs()
            ),
            "The upstream accepts connections but does not answer: check its health and any TLS-inspecting device in between.",
        );
    }
    Check::fail(
        id,
        format!("GET {} failed ({via}): {text}", p.api_url),
        "Check that api_url is the instance's REST API (https://HOST/api/v3 for GitHub, https://HOST/api/v4 for GitLab).",
    )
}

/// The certificate problem behind a request failure, if TLS is what failed. tokio-rustls
/// wraps the rustls error in an `io::Error`, and the HTTP stack wraps that again, not
/// always in a way `source()` reaches; rustls's own wording is the fallback.
fn tls_error(e: &reqwest::Error, text: &str) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let found = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(c)) = found {
            return Some(format!("{c:?}"));
        }
        cur = err.source();
    }
    const WORDING: &str = "invalid peer certificate: ";
    text.find(WORDING).map(|at| {
        text.get(at + WORDING.len()..)
            .unwrap_or_default()
            .to_owned()
    })
}

fn client(
    p: &ProviderConfig,
    route: &Route,
    auth: Option<&ProxyAuth>,
) -> Result<reqwest::Client, String> {
    let mut b =
        reqwest::Client::builder().timeout(REQUEST_TIMEOUT.min(p.timeout.max(PROBE_TIMEOUT)));
    if let Some(bundle) = &p.ca_bundle {
        let pem = std::fs::read(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: {e}", bundle.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no certificate", bundle.display()));
        }
        b = b.tls_certs_merge(certs);
    }
    b = match route {
        Route::Direct { .. } => b.no_proxy(),
        Route::Proxy { url, .. } => {
            let proxy = reqwest::Proxy::all(url.as_str()).map_err(|e| e.to_string())?;
            b.proxy(match auth {
                Some(a) => upstream_proxy::with_auth(proxy, a),
                None => proxy,
            })
        }
    };
    b.build().map_err(|e| chain(&e))
}
