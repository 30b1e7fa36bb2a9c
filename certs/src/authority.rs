//! The runtime CA: creation, server certificates and connector certificate signing.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateSigningRequestDer;
use shared::identity::ConnectorIdentity;
use time::OffsetDateTime;

use crate::{Error, Fingerprint, files};

/// Shortest connector certificate lifetime the CA signs.
pub const MIN_CONNECTOR_TTL: Duration = Duration::from_secs(30);
/// Longest connector certificate lifetime the CA signs: identities are meant to be short-lived.
pub const MAX_CONNECTOR_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default connector certificate lifetime.
pub const DEFAULT_CONNECTOR_TTL: Duration = Duration::from_secs(24 * 3600);

/// Lifetime of the CA certificate.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of the runtime's server certificate.
const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Backdating of `notBefore`, so a verifier whose clock is a little behind accepts a fresh
/// certificate.
const BACKDATE: Duration = Duration::from_secs(60);

/// A freshly issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate chain (leaf then CA), PEM.
    pub chain_pem: String,
    /// Expiry.
    pub not_after: OffsetDateTime,
    /// Serial number, hex.
    pub serial_hex: String,
}

/// The runtime's certificate authority.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    trust_domain: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero octet, as RFC 5280 asks.
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}

fn der_from_pem(pem: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| Error::Parse {
            what,
            reason: e.to_string(),
        })
}

impl CertificateAuthority {
    /// Creates a new CA for `trust_domain` with a fresh P-256 key.
    pub fn create(trust_domain: &str) -> Result<(Self, String), Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("mcp-edge runtime CA ({trust_domain})"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let cert_pem = cert.pem();
        let ca = Self::from_pem(&cert_pem, &key_pem, trust_domain)?;
        Ok((ca, key_pem))
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str, trust_domain: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::Parse {
            what: "CA private key",
            reason: e.to_string(),
        })?;
        // A key from elsewhere (the sealed copy in a shared store) must be this certificate's.
        let cert_info = crate::inspect::CertInfo::from_pem(cert_pem)?;
        if cert_info.spki_der != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(Error::Parse {
                what: "CA private key",
                reason: "it is not the key of the CA certificate".into(),
            });
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| Error::Parse {
            what: "CA certificate",
            reason: e.to_string(),
        })?;
        Ok(Self {
            cert_der: der_from_pem(cert_pem, "CA certificate")?,
            cert_pem: cert_pem.to_owned(),
            issuer,
            trust_domain: trust_domain.to_owned(),
        })
    }

    /// Writes `ca.pem` (0644) and `ca.key` (0600) into `dir`.
    pub fn save(&self, dir: &Path, key_pem: &str) -> Result<(), Error> {
        files::write_secret(&dir.join("ca.key"), key_pem.as_bytes())?;
        files::write_public(&dir.join("ca.pem"), self.cert_pem.as_bytes())
    }

    /// Loads `ca.pem` and `ca.key` from `dir`.
    pub fn load(dir: &Path, trust_domain: &str) -> Result<Self, Error> {
        let cert = files::read_to_string(&dir.join("ca.pem"))?;
        let key = files::read_to_string(&dir.join("ca.key"))?;
        Self::from_pem(&cert, &key, trust_domain)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The SPIFFE trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The fingerprint connectors pin at enrollment.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert_der)
    }

    /// Issues the runtime's server certificate for `hostnames` (DNS names or IP addresses).
    /// Returns the issued certificate and its private key PEM.
    pub fn issue_server(&self, hostnames: &[String]) -> Result<(Issued, String), Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            hostnames.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = hostnames
            .iter()
            .map(|h| match h.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => h.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, SERVER_VALIDITY);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((self.issued(&params, cert), key.serialize_pem()))
    }

    fn issued(&self, params: &CertificateParams, cert: rcgen::Certificate) -> Issued {
        let cert_pem = cert.pem();
        Issued {
            cert_der: cert.der().to_vec(),
            chain_pem: format!("{cert_pem}{}", self.cert_pem),
            cert_pem,
            not_after: params.not_after,
            serial_hex: params
                .serial_number
                .as_ref()
                .map(|s| hex::encode(s.to_bytes()))
                .unwrap_or_default(),
        }
    }

    /// Signs a connector's CSR, which must ask for exactly `expected` and nothing else.
    ///
    /// Only the CSR's public key is taken from it: every other field of the certificate is
    /// set here, so a CSR cannot smuggle in a CA flag, another name or a longer lifetime.
    pub fn sign_connector(
        &self,
        csr_der: &[u8],
        expected: &ConnectorIdentity,
        ttl: Duration,
    ) -> Result<Issued, Error> {
        if !(MIN_CONNECTOR_TTL..=MAX_CONNECTOR_TTL).contains(&ttl) {
            return Err(Error::BadLifetime {
                requested: ttl,
                min: MIN_CONNECTOR_TTL,
                max: MAX_CONNECTOR_TTL,
            });
        }
        let csr =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
                .map_err(|e| Error::InvalidCsr(e.to_string()))?;
        let expected_uri = expected.to_uri();
        let found: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(u) => u.as_str().to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        if found != [expected_uri.clone()] {
            return Err(Error::IdentityMismatch {
                expected: expected_uri,
                found: if found.is_empty() {
                    "no identity".to_owned()
                } else {
                    found.join(", ")
                },
            });
        }

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, expected.connector.as_str());
        dn.push(DnType::OrganizationName, expected.tenant.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(expected_uri.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        // Only the runtime verifies this certificate, with the clock that issued it: a small
        // backdate covers rounding and nothing more.
        params.not_before = now - Duration::from_secs(5);
        params.not_after = now + ttl;
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(self.issued(&params, cert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::ConnectorKey;
    use crate::inspect::CertInfo;

    fn identity(tenant: &str, id: &str) -> ConnectorIdentity {
        format!("spiffe://rt.test/tenant/{tenant}/connector/{id}")
            .parse()
            .unwrap()
    }

    #[test]
    fn signs_a_csr_for_the_granted_identity() {
        let (ca, _) = CertificateAuthority::create("rt.test").unwrap();
        let id = identity("acme", "c1");
        let key = ConnectorKey::generate().unwrap();
        let csr = key.csr_der(&id).unwrap();
        let issued = ca
            .sign_connector(&csr, &id, Duration::from_secs(60))
            .unwrap();
        let info = CertInfo::from_pem(&issued.cert_pem).unwrap();
        assert_eq!(info.identity, Some(id));
        assert_eq!(
            info.spki_der,
            key.spki_der(),
            "certificate carries the CSR's key"
        );
        let lifetime = info.not_after - info.not_before;
        assert!(lifetime <= time::Duration::seconds(66), "{lifetime}");
        assert_eq!(info.serial_hex, issued.serial_hex);
    }

    #[test]
    fn loads_only_with_the_certificate_s_own_key() {
        let (ca, key) = CertificateAuthority::create("rt.test").unwrap();
        assert!(CertificateAuthority::from_pem(ca.cert_pem(), &key, "rt.test").is_ok());
        let (_, other) = CertificateAuthority::create("rt.test").unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(ca.cert_pem(), &other, "rt.test"),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn refuses_a_csr_for_another_tenant() {
        let (ca, _) = CertificateAuthority::create("rt.test").unwrap();
        let key = ConnectorKey::generate().unwrap();
        let csr = key.csr_der(&identity("other", "c1")).unwrap();
        let err = ca
            .sign_connector(&csr, &identity("acme", "c1"), DEFAULT_CONNECTOR_TTL)
            .unwrap_err();
        assert!(matches!(err, Error::IdentityMismatch { .. }), "{err}");
    }

    #[test]
    fn refuses_garbage_and_tampered_csrs() {
        let (ca, _) = CertificateAuthority::create("rt.test").unwrap();
        let id = identity("acme", "c1");
        assert!(matches!(
            ca.sign_connector(b"garbage", &id, DEFAULT_CONNECTOR_TTL),
            Err(Error::InvalidCsr(_))
        ));
        let mut csr = ConnectorKey::generate().unwrap().csr_der(&id).unwrap();
        let n = csr.len();
        csr[n - 5] ^= 0xff; // break the signature
        assert!(matches!(
            ca.sign_connector(&csr, &id, DEFAULT_CONNECTOR_TTL),
            Err(Error::InvalidCsr(_))
        ));
    }

    #[test]
    fn refuses_lifetimes_out_of_range() {
        let (ca, _) = CertificateAuthority::create("rt.test").unwrap();
        let id = identity("acme", "c1");
        let csr = ConnectorKey::generate().unwrap().csr_der(&id).unwrap();
        assert!(matches!(
            ca.sign_connector(&csr, &id, Duration::from_secs(365 * 24 * 3600)),
            Err(Error::BadLifetime { .. })
        ));
    }

    #[test]
    fn round_trips_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, key) = CertificateAuthority::create("rt.test").unwrap();
        ca.save(dir.path(), &key).unwrap();
        let again = CertificateAuthority::load(dir.path(), "rt.test").unwrap();
        assert_eq!(ca.fingerprint(), again.fingerprint());
        let (server, _key) = again
            .issue_server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        assert!(server.chain_pem.ends_with(ca.cert_pem()));
    }
}
