//! Reading what a certificate says.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use shared::identity::ConnectorIdentity;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Error, Fingerprint};

/// The fields of a certificate the tunnel cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The connector identity in its URI SAN, if it has exactly one that parses.
    pub identity: Option<ConnectorIdentity>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Serial number, hex.
    pub serial_hex: String,
    /// SHA-256 of the DER.
    pub fingerprint: Fingerprint,
    /// The SubjectPublicKeyInfo, DER (to match a certificate to its key).
    pub spki_der: Vec<u8>,
}

fn parse_err(reason: impl ToString) -> Error {
    Error::Parse {
        what: "certificate",
        reason: reason.to_string(),
    }
}

impl CertInfo {
    /// Reads the first certificate of a PEM bundle.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(parse_err)?;
        Self::from_der(&der)
    }

    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let (_, cert) = X509Certificate::from_der(der).map_err(parse_err)?;
        let uris: Vec<&str> = cert
            .subject_alternative_name()
            .map_err(parse_err)?
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::URI(u) => Some(*u),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let identity = match uris.as_slice() {
            [one] => one.parse().ok(),
            _ => None,
        };
        let ts = |t: x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(parse_err)
        };
        Ok(Self {
            identity,
            not_before: ts(cert.validity().not_before)?,
            not_after: ts(cert.validity().not_after)?,
            serial_hex: hex::encode(cert.raw_serial()),
            fingerprint: Fingerprint::of_der(der),
            spki_der: cert.public_key().raw.to_vec(),
        })
    }
}
