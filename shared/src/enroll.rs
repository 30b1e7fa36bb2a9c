//! The enrollment exchange (HTTPS, JSON), before the connector has a certificate.
//!
//! `POST /v1/enroll` with [`EnrollRequest`]; the answer is [`EnrollResponse`] (200) or
//! [`EnrollError`] (4xx/5xx). The connection is server-authenticated TLS with the runtime CA
//! pinned by fingerprint; the join token is the client's only credential.

use serde::{Deserialize, Serialize};

use crate::identity::{ConnectorId, TenantId};

/// Path of the enrollment endpoint.
pub const ENROLL_PATH: &str = "/v1/enroll";

/// Path of the public enrollment facts (the trust domain a CSR must name).
pub const ENROLL_INFO_PATH: &str = "/v1/enroll/info";

/// Prefix of join tokens.
pub const JOIN_TOKEN_PREFIX: &str = "mcpjt";

/// What `GET /v1/enroll/info` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollInfo {
    /// The SPIFFE trust domain of connector identities.
    pub trust_domain: String,
}

/// A token that does not even have the right shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed join token (expected mcpjt_<tenant>_<connector>_<64 hex digits>)")]
pub struct MalformedToken;

/// The identity a join token claims to grant. A token reads
/// `mcpjt_<tenant>_<connector id>_<secret>`; the readable part tells the connector which
/// identity to put in its CSR, and is trusted by the runtime only once the hash of the whole
/// token is found in its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// Tenant.
    pub tenant: TenantId,
    /// Connector id.
    pub connector: ConnectorId,
}

impl TokenClaims {
    /// Reads the claims out of a token's text.
    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        let mut parts = text.trim().split('_');
        let (Some(JOIN_TOKEN_PREFIX), Some(tenant), Some(connector), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(MalformedToken);
        };
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MalformedToken);
        }
        Ok(Self {
            tenant: tenant.parse().map_err(|_| MalformedToken)?,
            connector: connector.parse().map_err(|_| MalformedToken)?,
        })
    }
}

/// Largest request body the runtime reads (a CSR is well under 2 KiB).
pub const MAX_ENROLL_BODY: usize = 16 * 1024;

/// What the connector sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time join token.
    pub token: String,
    /// PKCS#10 CSR, PEM, for the identity the token grants.
    pub csr_pem: String,
}

/// What the runtime answers on success.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Tenant the connector belongs to.
    pub tenant: String,
    /// The connector's id.
    pub connector_id: String,
    /// The SPIFFE URI in the certificate.
    pub identity: String,
    /// Certificate chain, PEM, leaf first.
    pub cert_chain_pem: String,
    /// The runtime CA certificate, PEM (its fingerprint is what the connector pinned).
    pub ca_pem: String,
    /// Where the QUIC tunnel listens, `host:port`.
    pub quic_endpoint: String,
    /// The TLS server name to expect on the tunnel.
    pub server_name: String,
    /// Where the SSH-over-TCP tunnel listens, `host:port`, if the runtime offers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_endpoint: Option<String>,
    /// The runtime's SSH host key as an OpenSSH public key line, with `tcp_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_key: Option<String>,
}

/// Machine-readable enrollment failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollErrorCode {
    /// The body is not a valid request.
    BadRequest,
    /// No such token (or not a token at all).
    TokenUnknown,
    /// The token was already redeemed.
    TokenUsed,
    /// The token's time is up.
    TokenExpired,
    /// The CSR does not parse or its signature is wrong.
    CsrInvalid,
    /// The CSR asks for another identity than the token grants.
    IdentityMismatch,
    /// The runtime failed.
    Internal,
}

/// The error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollError {
    /// What went wrong, for machines.
    pub error: EnrollErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed_tokens() {
        let good = format!("mcpjt_acme_c-01_{}", "ab".repeat(32));
        assert!(TokenClaims::parse(&good).is_ok());
        for bad in [
            "",
            "mcpjt_acme_c1",
            "mcpjt_acme_c1_zz",
            "x_acme_c1_00",
            "mcpjt_ACME_c1_00",
        ] {
            assert!(TokenClaims::parse(bad).is_err(), "{bad}");
        }
        let extra = format!("{good}_more");
        assert!(TokenClaims::parse(&extra).is_err());
    }
}
