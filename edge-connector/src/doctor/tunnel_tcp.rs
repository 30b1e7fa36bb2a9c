//! The tunnel's SSH-over-TCP path, tried for real: straight to the runtime's TCP endpoint,
//! or a `CONNECT` through `[tunnel] proxy` with the password from the vault, the same way
//! the tunnel dials. A refusal is reported as the proxy's typed error (407, 403, an HTML
//! page, a closed connection), with what to do about it.

use secrecy::SecretString;

use super::PROBE_TIMEOUT;
use super::report::Check;
use crate::config::{Transport, TunnelConfig};
use crate::connect_proxy::{self as proxy, ProxyError, ProxyRoute};
use crate::egress::{ProxyEnv, split_host_port};
use crate::state::ConnectorConfig;

const ID: &str = "runtime-tcp";

/// The tunnel's TCP path in one line: `tcp rt.example.com:443 via proxy.corp:3128 (user
/// svc-edge, password in vault)`, or `tcp rt.example.com:443 direct`.
pub fn describe(route: Option<&ProxyRoute>, endpoint: &str) -> String {
    match route {
        Some(r) => format!("tcp {endpoint} via {}", r.describe()),
        None => format!("tcp {endpoint} direct"),
    }
}

/// Checks the TCP path of the tunnel of `enrollment` under `tunnel`; `vault` gives the
/// proxy password when a proxy user is configured.
pub async fn check(
    tunnel: &TunnelConfig,
    enrollment: &ConnectorConfig,
    env: &ProxyEnv,
    vault: impl FnOnce() -> Result<Option<SecretString>, String>,
) -> Check {
    let Some(endpoint) = enrollment.tcp_endpoint.as_deref() else {
        return Check::skip(
            ID,
            "the runtime named no SSH-over-TCP endpoint at enrollment: the tunnel uses QUIC only",
        );
    };
    if tunnel.transport == Transport::Quic {
        return Check::skip(
            ID,
            format!("transport = \"quic\": the TCP path ({endpoint}) is not used"),
        );
    }
    let Some((host, port)) = split_host_port(endpoint) else {
        return Check::fail(
            ID,
            format!("the TCP endpoint {endpoint:?} is not host:port"),
            "Re-enroll: connector.toml in the state directory is damaged.",
        );
    };
    let route = match proxy::route_for(tunnel, env, host, port, vault) {
        Ok(r) => r,
        Err(e) => return Check::fail(ID, format!("tcp {endpoint}: {e}"), fix(&e)),
    };
    let path = describe(route.as_ref(), endpoint);
    let Some(route) = route else {
        return match tokio::time::timeout(
            PROBE_TIMEOUT,
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        {
            Ok(Ok(_)) => Check::pass(ID, format!("{path}: connects")),
            Ok(Err(e)) => Check::fail(
                ID,
                format!("{path}: {e}"),
                format!(
                    "Open outbound TCP {port} to {host} in your firewall, or set [tunnel] proxy to your HTTP proxy (\"env\" takes HTTPS_PROXY)."
                ),
            ),
            Err(_) => Check::fail(
                ID,
                format!("{path}: no answer within {} s", PROBE_TIMEOUT.as_secs()),
                format!(
                    "Open outbound TCP {port} to {host} in your firewall, or set [tunnel] proxy to your HTTP proxy (\"env\" takes HTTPS_PROXY)."
                ),
            ),
        };
    };
    match proxy::connect(&route, host, port, PROBE_TIMEOUT).await {
        Ok(_stream) => Check::pass(ID, format!("{path}: the proxy opened the tunnel")),
        Err(e) => Check::fail(ID, format!("{path}: {e}"), fix(&e)),
    }
}

/// What to do about a proxy error.
fn fix(e: &ProxyError) -> String {
    match e {
        ProxyError::PasswordInUrl { .. } | ProxyError::PasswordMissing { .. } | ProxyError::AuthRequired { .. } =>
            "Set the proxy user as [tunnel] proxy_user in config.toml and its password with `edge-connector vault set proxy/password` (never in the URL).".into(),
        ProxyError::Vault { .. } => "Fix the vault as the message says (`edge-connector vault list` must work as the service user).".into(),
        ProxyError::Refused { target, .. } => format!(
            "Ask the proxy's administrators to allow CONNECT to {target} (many proxies allow CONNECT to port 443 only)."
        ),
        ProxyError::NotHttp { .. } => "Check [tunnel] proxy: it must name an HTTP proxy's host and port (http://proxy:3128), not a web server or a TLS port.".into(),
        ProxyError::Connect { .. } | ProxyError::TimedOut { .. } => "Check the proxy's host and port in [tunnel] proxy, and that this machine may reach it.".into(),
        _ => "Check [tunnel] proxy and proxy_user in config.toml, and the proxy's logs.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Proxy;
    use crate::doctor::Status;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn enrollment(tcp: Option<&str>) -> ConnectorConfig {
        ConnectorConfig {
            identity: "spiffe://rt/tenant/acme/connector/c1".into(),
            runtime: "rt.example.com:8443".into(),
            quic_endpoint: "rt.example.com:4433".into(),
            server_name: "rt.example.com".into(),
            ca_fingerprint: "sha256:00".into(),
            tcp_endpoint: tcp.map(str::to_owned),
            ssh_host_key: None,
        }
    }

    /// A proxy that answers every CONNECT with `answer`.
    async fn proxy_answering(answer: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                if s.read(&mut b).await.unwrap() == 0 {
                    return;
                }
                got.push(b[0]);
            }
            s.write_all(answer).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        port
    }

    fn via(port: u16) -> TunnelConfig {
        TunnelConfig {
            proxy: Proxy::Url(format!("http://127.0.0.1:{port}").parse().unwrap()),
            proxy_user: Some("svc-edge".into()),
            ..TunnelConfig::default()
        }
    }

    fn password() -> Result<Option<SecretString>, String> {
        Ok(Some(SecretString::from("pw-never-shown".to_owned())))
    }

    #[tokio::test]
    async fn the_proxy_path_is_named_and_tried() {
        let e = enrollment(Some("rt.example.com:443"));
        let port = proxy_answering(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
        let c = check(&via(port), &e, &ProxyEnv::default(), password).await;
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert_eq!(
            c.summary,
            format!(
                "tcp rt.example.com:443 via 127.0.0.1:{port} (user svc-edge, password in vault): the proxy opened the tunnel"
            )
        );

        let port = proxy_answering(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        let c = check(&via(port), &e, &ProxyEnv::default(), password).await;
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.summary.contains("403 Forbidden") && c.summary.contains(&format!("127.0.0.1:{port}")),
            "{c:?}"
        );
        assert!(
            c.fix
                .as_deref()
                .unwrap_or("")
                .contains("allow CONNECT to rt.example.com:443")
        );

        let c = check(&via(port), &e, &ProxyEnv::default(), || Ok(None)).await;
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.summary.contains("vault set proxy/password"), "{c:?}");
        assert!(!format!("{c:?}").contains("pw-never-shown"));
    }

    #[tokio::test]
    async fn no_tcp_endpoint_or_quic_only_skips() {
        let c = check(
            &TunnelConfig::default(),
            &enrollment(None),
            &ProxyEnv::default(),
            password,
        )
        .await;
        assert_eq!(c.status, Status::Skip, "{c:?}");
        let quic = TunnelConfig {
            transport: Transport::Quic,
            ..TunnelConfig::default()
        };
        let c = check(
            &quic,
            &enrollment(Some("rt.example.com:443")),
            &ProxyEnv::default(),
            password,
        )
        .await;
        assert_eq!(c.status, Status::Skip, "{c:?}");
    }
}
