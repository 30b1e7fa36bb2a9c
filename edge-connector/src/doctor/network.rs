//! Reaching the runtime: DNS, the QUIC tunnel over UDP (a real mutual-TLS handshake with the
//! enrolled identity, through the same dialling code the connector uses) and its HTTPS port
//! over TCP (enrollment, and the TCP fallback to come). Every probe is outbound; the UDP
//! socket is `connect()`ed, as the tunnel's is.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use shared::close::CloseCode;

use super::PROBE_TIMEOUT;
use super::identity::Enrolled;
use super::report::Check;
use crate::egress::{lookup, split_host_port};
use crate::tunnel::dial::{self, AttemptError};

/// How long to wait, after the handshake, for the runtime to close a refused connector
/// (it checks identity and revocation right after the handshake).
const REFUSAL_WAIT: Duration = Duration::from_millis(700);

/// A resolved endpoint.
pub struct Resolved {
    /// The host as configured.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

impl Resolved {
    fn socket_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.iter().map(|ip| SocketAddr::new(*ip, self.port))
    }

    fn ips(&self) -> String {
        list(&self.addrs)
    }
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves `endpoint` (`host:port`) for the check named `id`.
pub async fn resolve(
    id: &str,
    what: &str,
    endpoint: &str,
    out: &mut Vec<Check>,
) -> Option<Resolved> {
    let Some((host, port)) = split_host_port(endpoint) else {
        out.push(Check::fail(
            id,
            format!("the {what} endpoint {endpoint:?} is not host:port"),
            "Re-enroll: connector.toml in the state directory is damaged.",
        ));
        return None;
    };
    match lookup(host, port).await {
        Ok(addrs) => {
            out.push(Check::pass(
                id,
                format!("{host} resolves to {}", list(&addrs)),
            ));
            Some(Resolved {
                host: host.to_owned(),
                port,
                addrs,
            })
        }
        Err(e) => {
            out.push(Check::fail(
                id,
                format!("cannot resolve {host}, the runtime's {what} endpoint: {e}"),
                format!(
                    "Check this machine's DNS (`getent hosts {host}` must print an address; see /etc/resolv.conf). \
                     If {host} is not in your DNS, ask your DNS team to resolve it, or add it to /etc/hosts."
                ),
            ));
            None
        }
    }
}

/// A QUIC + mutual-TLS handshake with the enrolled identity, per address until one works.
pub async fn quic(enrolled: &Enrolled, target: &Resolved, out: &mut Vec<Check>) {
    const ID: &str = "runtime-quic";
    let (Some(identity), Some(ca)) = (&enrolled.identity, &enrolled.ca) else {
        out.push(Check::skip(
            ID,
            "no usable identity to attempt the handshake with (see above)",
        ));
        return;
    };
    let config = match dial::client_config(identity, ca.clone()) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                ID,
                format!(
                    "the tunnel's TLS configuration cannot be built from the state directory: {e}"
                ),
                "Re-enroll with a new join token.",
            ));
            return;
        }
    };
    let (host, port) = (&target.host, target.port);
    let mut failures = Vec::new();
    for addr in target.socket_addrs() {
        let start = Instant::now();
        match dial::connect(addr, &enrolled.config.server_name, &config, PROBE_TIMEOUT).await {
            Ok(d) => {
                let ms = start.elapsed().as_millis();
                // The runtime checks the identity and revocation at once and closes a refused
                // connector with a typed code: give it the chance before calling it a pass.
                let refused = tokio::time::timeout(REFUSAL_WAIT, d.connection.closed())
                    .await
                    .ok();
                d.connection
                    .close(quinn::VarInt::from_u32(CloseCode::Normal.code()), b"doctor");
                d.endpoint.wait_idle().await;
                match refused.and_then(|e| refusal(&e)) {
                    Some((what, fix)) => out.push(Check::fail(ID, format!("UDP {port} to {host} ({addr}) works, but {what}"), fix)),
                    None => out.push(Check::pass(
                        ID,
                        format!("QUIC handshake with mutual TLS to {host} ({addr}, UDP {port}) succeeded in {ms} ms; the runtime accepted this connector's certificate"),
                    )),
                }
                return;
            }
            Err(e) => failures.push((addr, e)),
        }
    }
    let Some((addr, last)) = failures.pop() else {
        out.push(Check::fail(
            ID,
            format!("{host} has no address to dial"),
            "Check the runtime's DNS records.",
        ));
        return;
    };
    let ips = target.ips();
    let secs = PROBE_TIMEOUT.as_secs();
    out.push(match last {
        AttemptError::Timeout => Check::fail(
            ID,
            format!("UDP {port} to {host} seems blocked: no answer to the QUIC handshake within {secs} s (tried {ips})"),
            format!("Open outbound UDP {port} to {ips} in your firewall (and in any egress filter on the way); the answers come back on the same flow, so no inbound rule is needed."),
        ),
        AttemptError::Handshake(ref e) if is_tls_failure(e) => Check::fail(
            ID,
            format!("the TLS handshake with {host} ({addr}) failed: {e}"),
            "The runtime's certificate is not signed by the CA pinned at enrollment, or the runtime does not accept this \
             connector's certificate. If the runtime was re-initialised, re-enroll with a new token and fingerprint; \
             otherwise check that nothing on the path intercepts UDP traffic.",
        ),
        AttemptError::Handshake(ref e) => Check::fail(
            ID,
            format!("the QUIC handshake with {host} ({addr}) failed: {e}"),
            format!("Check that UDP {port} reaches the runtime unmodified (no UDP-inspecting proxy, no NAT timeout below 20 s) and that the runtime is running."),
        ),
        AttemptError::Socket(ref e) => Check::fail(
            ID,
            format!("no UDP socket towards {addr}: {e}"),
            "This machine has no route to that address: check its default route and IPv4/IPv6 setup (`ip route get ADDRESS`).",
        ),
        other => Check::fail(
            ID,
            format!("UDP {port} to {host} ({addr}): {other}"),
            format!("Open outbound UDP {port} to {ips} in your firewall, and check the runtime is running."),
        ),
    });
}

/// Whether the handshake failed in TLS: QUIC carries TLS alerts as the transport error
/// codes 0x100 to 0x1ff (RFC 9000, section 20.1).
fn is_tls_failure(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => t.code,
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}

/// A refusal the runtime closed the probe with: what happened and how to fix it.
fn refusal(e: &quinn::ConnectionError) -> Option<(String, String)> {
    let quinn::ConnectionError::ApplicationClosed(close) = e else {
        return None;
    };
    let code = CloseCode::from_code(close.error_code.into_inner())?;
    let reason = String::from_utf8_lossy(&close.reason).into_owned();
    let reenroll = "Make a new join token (`cloud-runtime connector token create`) and re-enroll into an empty state directory.".to_owned();
    match code {
        CloseCode::Revoked => Some((
            "the runtime says this connector is revoked".into(),
            reenroll,
        )),
        CloseCode::UnknownConnector => Some((
            format!("the runtime does not know this connector ({reason})"),
            reenroll,
        )),
        CloseCode::CertificateExpired => {
            Some(("the runtime says the certificate expired".into(), reenroll))
        }
        CloseCode::UpgradeRequired => Some((
            "the runtime requires a newer protocol version".into(),
            "Upgrade the edge-connector package.".into(),
        )),
        CloseCode::Superseded => Some((
            "the runtime says this certificate was replaced by a renewal that another copy of this connector has used".into(),
            format!(
                "Find where else this connector's key is (a copied or restored state directory) and stop it; then revoke the connector (`cloud-runtime connector revoke`). {reenroll}"
            ),
        )),
        _ => None,
    }
}

/// TCP to the runtime's HTTPS port, per address until one connects.
pub async fn tcp(target: &Resolved, out: &mut Vec<Check>) -> bool {
    const ID: &str = "runtime-https-tcp";
    let (host, port) = (&target.host, target.port);
    let ips = target.ips();
    let mut last = None;
    for addr in target.socket_addrs() {
        let start = Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => {
                out.push(Check::pass(
                    ID,
                    format!(
                        "TCP {port} to {host} ({addr}) connects in {} ms",
                        start.elapsed().as_millis()
                    ),
                ));
                return true;
            }
            Ok(Err(e)) => last = Some((addr, Some(e))),
            Err(_) => last = Some((addr, None)),
        }
    }
    let why = "it carries enrollment and the TCP fallback of the tunnel";
    out.push(match last {
        Some((addr, Some(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => Check::fail(
            ID,
            format!("TCP {port} to {host} ({addr}) was refused: nothing listens there, or a firewall rejects it"),
            format!("Check that the runtime is running and serves HTTPS on port {port}, and that outbound TCP {port} to {ips} is allowed ({why})."),
        ),
        Some((addr, Some(e))) => Check::fail(
            ID,
            format!("TCP {port} to {host} ({addr}) failed: {e}"),
            format!("Open outbound TCP {port} to {ips} in your firewall ({why}), and check this machine's route to it."),
        ),
        Some((addr, None)) => Check::fail(
            ID,
            format!("TCP {port} to {host} ({addr}) seems blocked: no answer within {} s", PROBE_TIMEOUT.as_secs()),
            format!("Open outbound TCP {port} to {ips} in your firewall ({why})."),
        ),
        None => Check::fail(ID, format!("{host} has no address to connect to"), "Check the runtime's DNS records."),
    });
    false
}
