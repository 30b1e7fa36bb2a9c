//! The enrollment endpoint: a join token and a CSR in, a short-lived certificate out.
//!
//! Order matters: the token is checked and the CSR signed *before* the token is spent, and the
//! token is spent in the same transaction that records the connector. A bad CSR therefore
//! does not burn a token, and two racing enrollments with one token cannot both succeed.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certs::CertificateAuthority;
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use shared::enroll::{EnrollError, EnrollErrorCode, EnrollRequest, EnrollResponse};
use shared::identity::{ConnectorIdentity, TrustDomain};
use tracing::{info, warn};

use crate::join_token;
use crate::store::{Store, StoreError};

/// What the enrollment handler needs.
#[derive(Debug)]
pub struct EnrollContext {
    /// The store.
    pub store: Store,
    /// The CA that signs connector certificates.
    pub ca: CertificateAuthority,
    /// The trust domain of identities.
    pub trust_domain: TrustDomain,
    /// Lifetime of connector certificates.
    pub cert_ttl: Duration,
    /// `host:port` of the QUIC tunnel, told to the connector.
    pub quic_endpoint: String,
    /// TLS server name of the tunnel.
    pub server_name: String,
    /// `host:port` of the SSH-over-TCP tunnel, when served.
    pub tcp_endpoint: Option<String>,
    /// The SSH host key (OpenSSH public key line), when the SSH tunnel is served.
    pub ssh_host_key: Option<String>,
}

/// A refused enrollment, rendered as JSON with the matching status.
#[derive(Debug)]
pub struct Refusal(StatusCode, EnrollErrorCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = EnrollError {
            error: self.1,
            message: self.2,
        };
        (self.0, Json(body)).into_response()
    }
}

fn refuse(code: EnrollErrorCode, message: impl Into<String>) -> Refusal {
    let status = match code {
        EnrollErrorCode::BadRequest | EnrollErrorCode::CsrInvalid => StatusCode::BAD_REQUEST,
        EnrollErrorCode::TokenUnknown
        | EnrollErrorCode::TokenUsed
        | EnrollErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
        EnrollErrorCode::IdentityMismatch => StatusCode::FORBIDDEN,
        EnrollErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Refusal(status, code, message.into())
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    warn!(error = %e, "enrollment failed internally");
    refuse(
        EnrollErrorCode::Internal,
        "internal error; see the runtime's log",
    )
}

/// `GET /v1/enroll/info`: public facts a connector needs to build its CSR.
pub async fn info(State(ctx): State<Arc<EnrollContext>>) -> Json<shared::enroll::EnrollInfo> {
    Json(shared::enroll::EnrollInfo {
        trust_domain: ctx.trust_domain.to_string(),
    })
}

/// `POST /v1/enroll`.
pub async fn enroll(
    State(ctx): State<Arc<EnrollContext>>,
    body: Bytes,
) -> Result<Json<EnrollResponse>, Refusal> {
    let req: EnrollRequest = serde_json::from_slice(&body).map_err(|e| {
        refuse(
            EnrollErrorCode::BadRequest,
            format!("invalid enrollment request: {e}"),
        )
    })?;
    let unknown = || refuse(EnrollErrorCode::TokenUnknown, "unknown join token");
    shared::enroll::TokenClaims::parse(&req.token).map_err(|_| unknown())?;
    let hash = join_token::hash(req.token.trim());
    let row = ctx
        .store
        .join_token(&hash)
        .await
        .map_err(internal)?
        .ok_or_else(unknown)?;
    if row.used_at.is_some() {
        return Err(refuse(
            EnrollErrorCode::TokenUsed,
            "join token was already used; create a new one",
        ));
    }
    if row.expires_at <= ctx.store.now_ms() {
        return Err(refuse(
            EnrollErrorCode::TokenExpired,
            "join token has expired; create a new one",
        ));
    }
    let identity = ConnectorIdentity {
        trust_domain: ctx.trust_domain.clone(),
        tenant: row.tenant.clone(),
        connector: row.connector_id.clone(),
    };
    let csr =
        CertificateSigningRequestDer::from_pem_slice(req.csr_pem.as_bytes()).map_err(|e| {
            refuse(
                EnrollErrorCode::CsrInvalid,
                format!("CSR is not valid PEM: {e}"),
            )
        })?;
    let issued = ctx
        .ca
        .sign_connector(&csr, &identity, ctx.cert_ttl)
        .map_err(|e| match e {
            certs::Error::IdentityMismatch { .. } => {
                refuse(EnrollErrorCode::IdentityMismatch, e.to_string())
            }
            certs::Error::InvalidCsr(_) => refuse(EnrollErrorCode::CsrInvalid, e.to_string()),
            other => internal(other),
        })?;
    let not_after_ms = issued.not_after.unix_timestamp().saturating_mul(1000);
    match ctx
        .store
        .complete_enrollment(
            &hash,
            &row.tenant,
            &row.connector_id,
            &issued.serial_hex,
            not_after_ms,
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::TokenAlreadyUsed) => {
            return Err(refuse(
                EnrollErrorCode::TokenUsed,
                "join token was already used; create a new one",
            ));
        }
        Err(e) => return Err(internal(e)),
    }
    if let Err(e) = ctx
        .store
        .record_certificate(&row.connector_id, &issued.serial_hex, &issued.cert_der)
        .await
    {
        // Enrolled all the same: QUIC works, SSH from the first renewal on.
        warn!(error = %e, "could not keep the certificate for SSH authentication");
    }
    info!(tenant = %row.tenant, connector = %row.connector_id, serial = %issued.serial_hex, "connector enrolled");
    Ok(Json(EnrollResponse {
        tenant: row.tenant.to_string(),
        connector_id: row.connector_id.to_string(),
        identity: identity.to_uri(),
        cert_chain_pem: issued.chain_pem,
        ca_pem: ctx.ca.cert_pem().to_owned(),
        quic_endpoint: ctx.quic_endpoint.clone(),
        server_name: ctx.server_name.clone(),
        tcp_endpoint: ctx.tcp_endpoint.clone(),
        ssh_host_key: ctx.ssh_host_key.clone(),
    }))
}
