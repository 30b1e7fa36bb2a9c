//! The connector's side of enrollment and renewal: a key pair made locally and a CSR.
//!
//! The private key is generated here and written only to the connector's state directory; only
//! the CSR (public key plus requested identity, signed) ever leaves the machine.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, SanType};
use shared::identity::ConnectorIdentity;

use crate::Error;

/// A connector's private key.
pub struct ConnectorKey {
    key: KeyPair,
}

impl std::fmt::Debug for ConnectorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectorKey(<redacted>)")
    }
}

impl ConnectorKey {
    /// A fresh ECDSA P-256 key.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self {
            key: KeyPair::generate()?,
        })
    }

    /// Loads a key from PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        KeyPair::from_pem(pem)
            .map(|key| Self { key })
            .map_err(|e| Error::Parse {
                what: "connector private key",
                reason: e.to_string(),
            })
    }

    /// The key as PKCS#8 PEM, for the 0600 key file.
    pub fn to_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The public key as SubjectPublicKeyInfo DER (compare with [`crate::inspect::CertInfo::spki_der`]).
    pub fn spki_der(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }

    /// The private key as PKCS#8 DER, for TLS client authentication.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }

    /// A PEM CSR asking for `identity`.
    pub fn csr_pem(&self, identity: &ConnectorIdentity) -> Result<String, Error> {
        Ok(Self::params(identity)?
            .serialize_request(&self.key)?
            .pem()?)
    }

    fn params(identity: &ConnectorIdentity) -> Result<CertificateParams, Error> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.connector.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(identity.to_uri().try_into()?)];
        Ok(params)
    }

    /// A DER CSR asking for `identity`.
    pub fn csr_der(&self, identity: &ConnectorIdentity) -> Result<Vec<u8>, Error> {
        Ok(Self::params(identity)?
            .serialize_request(&self.key)?
            .der()
            .to_vec())
    }
}
