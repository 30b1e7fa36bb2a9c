//! `enroll`: trade a one-time join token for a short-lived client certificate.
//!
//! The key pair is made here and never leaves the machine; the runtime sees only the CSR.
//! The HTTPS connection trusts nothing but the CA whose fingerprint the operator supplied
//! ([`pinned_ca`]), so the token cannot be phished by a look-alike endpoint. Where the
//! machine's only way out is a corporate proxy, enrollment goes through the tunnel's proxy
//! ([`crate::connect_proxy`]) with the same pinning: the proxy relays TLS it cannot read.

pub mod pinned_ca;

use std::sync::Arc;
use std::time::Duration;

use certs::Fingerprint;
use certs::csr::ConnectorKey;
use certs::inspect::CertInfo;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use shared::enroll::{
    ENROLL_INFO_PATH, ENROLL_PATH, EnrollError as WireError, EnrollInfo, EnrollRequest,
    EnrollResponse, TokenClaims,
};
use shared::identity::ConnectorIdentity;

use crate::connect_proxy::{ProxyError, ProxyRoute};
use crate::state::{ConnectorConfig, StateDir, StateError};
use pinned_ca::PinnedCa;

/// How long the proxy gets to open the first tunnel.
const PROXY_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The token is not a join token.
    #[error(transparent)]
    MalformedToken(#[from] shared::enroll::MalformedToken),
    /// The state directory is unusable or already enrolled.
    #[error(transparent)]
    State(#[from] StateError),
    /// The runtime presented a CA other than the pinned one.
    #[error(
        "the runtime at {runtime} does not present the CA with fingerprint {pinned}; check --ca-fingerprint against the output of `cloud-runtime connector token create` (the token was not sent)"
    )]
    FingerprintMismatch {
        /// Where.
        runtime: String,
        /// What was pinned.
        pinned: Fingerprint,
    },
    /// The runtime could not be reached.
    #[error("cannot reach the runtime at {runtime}: {reason}")]
    Unreachable {
        /// Where.
        runtime: String,
        /// Why.
        reason: String,
    },
    /// The runtime refused the enrollment.
    #[error("the runtime refused the enrollment ({code:?}): {message}")]
    Refused {
        /// Machine-readable reason.
        code: shared::enroll::EnrollErrorCode,
        /// The runtime's words.
        message: String,
    },
    /// The runtime's answer does not hold together.
    #[error("the runtime's answer is invalid: {0}")]
    BadResponse(String),
    /// Key or CSR generation failed.
    #[error(transparent)]
    Certs(#[from] certs::Error),
    /// The proxy setting cannot be used.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// What to enroll with.
#[derive(Debug)]
pub struct EnrollOptions {
    /// The runtime's HTTPS endpoint, `host:port`.
    pub runtime: String,
    /// The join token.
    pub token: String,
    /// The CA fingerprint to pin.
    pub ca_fingerprint: Fingerprint,
    /// Where to keep the state.
    pub state: StateDir,
    /// The proxy to go through ([`crate::connect_proxy::route_for`]); `None`: direct,
    /// whatever the environment says.
    pub proxy: Option<ProxyRoute>,
}

/// Enrolls; returns the identity now held in the state directory.
pub async fn enroll(opts: EnrollOptions) -> Result<ConnectorIdentity, EnrollError> {
    let claims = TokenClaims::parse(&opts.token)?;
    opts.state.prepare_for_enrollment()?;
    if let Some(route) = &opts.proxy {
        check_proxy(route, &opts.runtime).await?;
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedCa::new(opts.ca_fingerprint, provider.clone()));
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EnrollError::BadResponse(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(30));
    let builder = match &opts.proxy {
        Some(route) => builder.proxy(route.to_reqwest()?),
        None => builder.no_proxy(),
    };
    let client = builder
        .build()
        .map_err(|e| EnrollError::BadResponse(e.to_string()))?;
    let base = format!("https://{}", opts.runtime);
    let transport_error = |e: reqwest::Error| {
        if verifier.saw_mismatch() {
            EnrollError::FingerprintMismatch {
                runtime: opts.runtime.clone(),
                pinned: opts.ca_fingerprint,
            }
        } else {
            let mut reason = error_chain(&e);
            if let Some(route) = &opts.proxy {
                reason = format!("through proxy {}: {reason}", route.describe());
                if reason.contains("proxy authorization required") {
                    reason.push_str(
                        " (set [tunnel] proxy_user or --proxy-user, and the password with `edge-connector vault set proxy/password`)",
                    );
                }
            }
            EnrollError::Unreachable {
                runtime: opts.runtime.clone(),
                reason,
            }
        }
    };

    let info: EnrollInfo = client
        .get(format!("{base}{ENROLL_INFO_PATH}"))
        .send()
        .await
        .map_err(transport_error)?
        .error_for_status()
        .map_err(|e| EnrollError::BadResponse(e.to_string()))?
        .json()
        .await
        .map_err(|e| EnrollError::BadResponse(e.to_string()))?;
    let identity = ConnectorIdentity {
        trust_domain: info
            .trust_domain
            .parse()
            .map_err(|e| EnrollError::BadResponse(format!("trust domain: {e}")))?,
        tenant: claims.tenant,
        connector: claims.connector,
    };

    let key = ConnectorKey::generate()?;
    let request = EnrollRequest {
        token: opts.token.trim().to_owned(),
        csr_pem: key.csr_pem(&identity)?,
    };
    let resp = client
        .post(format!("{base}{ENROLL_PATH}"))
        .json(&request)
        .send()
        .await
        .map_err(transport_error)?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(match resp.json::<WireError>().await {
            Ok(e) => EnrollError::Refused {
                code: e.error,
                message: e.message,
            },
            Err(_) => EnrollError::BadResponse(format!("HTTP {status}")),
        });
    }
    let answer: EnrollResponse = resp
        .json()
        .await
        .map_err(|e| EnrollError::BadResponse(e.to_string()))?;

    let ca = CertificateDer::from_pem_slice(answer.ca_pem.as_bytes())
        .map_err(|e| EnrollError::BadResponse(format!("CA certificate: {e}")))?;
    if !Fingerprint::of_der(&ca).matches(&opts.ca_fingerprint) {
        return Err(EnrollError::BadResponse(
            "returned CA does not match the pinned fingerprint".into(),
        ));
    }
    let leaf = CertInfo::from_pem(&answer.cert_chain_pem)?;
    if leaf.identity.as_ref() != Some(&identity) {
        return Err(EnrollError::BadResponse(format!(
            "certificate names {:?}, expected {identity}",
            leaf.identity.map(|i| i.to_string())
        )));
    }
    if leaf.spki_der != key.spki_der() {
        return Err(EnrollError::BadResponse(
            "certificate is not for our key".into(),
        ));
    }
    answer
        .quic_endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| {
            EnrollError::BadResponse(format!(
                "quic endpoint {:?} is not host:port",
                answer.quic_endpoint
            ))
        })?;
    let config = ConnectorConfig {
        identity: identity.to_uri(),
        runtime: opts.runtime.clone(),
        quic_endpoint: answer.quic_endpoint,
        server_name: answer.server_name,
        ca_fingerprint: opts.ca_fingerprint.to_string(),
        tcp_endpoint: answer.tcp_endpoint,
        ssh_host_key: answer.ssh_host_key,
    };
    opts.state
        .save_enrollment(&config, &answer.ca_pem, &answer.cert_chain_pem, &key)?;
    Ok(identity)
}

/// One CONNECT through the proxy before the HTTP client takes the same path: a refusal
/// comes back as a typed error that names the proxy, its answer and the fix, which the HTTP
/// client's own proxy errors do not.
async fn check_proxy(route: &ProxyRoute, runtime: &str) -> Result<(), EnrollError> {
    let (host, port) = crate::egress::split_host_port(runtime).ok_or_else(|| {
        EnrollError::BadResponse(format!("the runtime endpoint {runtime:?} is not host:port"))
    })?;
    crate::connect_proxy::connect(route, host, port, PROXY_CHECK_TIMEOUT).await?;
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
