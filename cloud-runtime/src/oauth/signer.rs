//! Access tokens: ES256 JWTs, audience-bound to one gateway URL, ten minutes long. Only the
//! runtime issues and checks them; they are never forwarded anywhere (the tunnel carries the
//! user's stable id, not their token).

use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user's stable id ([`shared::identity::UserId`]).
    pub sub: String,
    /// The user's name when the token was issued (display only).
    pub name: String,
    /// The gateway URL (RFC 8707 resource).
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// The tenant.
    pub tenant: String,
    /// The OAuth client it was issued to.
    pub client_id: String,
    /// The user's groups at issuance (their grants).
    pub groups: Vec<String>,
    /// Granted scope.
    pub scope: String,
}

/// Why the signing key could not be loaded or made. No key material is quoted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerKeyError {
    /// The key file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A new key could not be made.
    #[error("generating a token-signing key: {0}")]
    Generate(rcgen::Error),
    /// A new key could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: certs::Error,
    },
    /// The file holds no usable ES256 key.
    #[error("{} holds no usable ES256 key: {reason}", path.display())]
    Unusable {
        /// The key file.
        path: PathBuf,
        /// What the key parser said.
        reason: String,
    },
}

/// Signs and verifies access tokens.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// Loads the signing key from `path`, creating it (0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, SignerKeyError> {
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = Self::generate_pem()?;
                certs::files::write_secret(path, pem.as_bytes()).map_err(|source| {
                    SignerKeyError::Write {
                        path: path.to_owned(),
                        source,
                    }
                })?;
                pem
            }
            Err(source) => {
                return Err(SignerKeyError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::from_pem(&pem).map_err(|reason| SignerKeyError::Unusable {
            path: path.to_owned(),
            reason,
        })
    }

    /// A signer with the ES256 key `pem` (PKCS#8 PEM); the parser's complaint if it is not
    /// one.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| e.to_string())?;
        Ok(Self {
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?,
            decoding: DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())
                .map_err(|e| e.to_string())?,
            kid: hex::encode(
                aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    pair.public_key_pem().as_bytes(),
                )
                .as_ref()
                .get(..8)
                .unwrap_or_default(),
            ),
        })
    }

    /// A new ES256 key, as PKCS#8 PEM.
    pub fn generate_pem() -> Result<String, SignerKeyError> {
        Ok(rcgen::KeyPair::generate()
            .map_err(SignerKeyError::Generate)?
            .serialize_pem())
    }

    /// Signs claims.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Verifies a token for `audience` from `issuer`: signature, expiry, audience, issuer.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<AccessClaims, jsonwebtoken::errors::Error> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[audience]);
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 30;
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &v).map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://rt".into(),
            sub: "u-00000000000000000000000000000001".into(),
            name: "alice".into(),
            aud: aud.into(),
            exp,
            iat: 0,
            jti: "j".into(),
            tenant: "acme".into(),
            client_id: "c".into(),
            groups: vec!["eng".into()],
            scope: "mcp".into(),
        }
    }

    #[test]
    fn tokens_are_bound_to_audience_issuer_expiry_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(&dir.path().join("k")).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let t = signer
            .sign(&claims("https://rt/t/acme/g/eng/mcp", now + 60))
            .unwrap();
        assert!(
            signer
                .verify(&t, "https://rt", "https://rt/t/acme/g/eng/mcp")
                .is_ok()
        );
        assert!(
            signer
                .verify(&t, "https://rt", "https://rt/t/globex/g/eng/mcp")
                .is_err(),
            "wrong audience"
        );
        assert!(
            signer
                .verify(&t, "https://other", "https://rt/t/acme/g/eng/mcp")
                .is_err(),
            "wrong issuer"
        );
        let old = signer
            .sign(&claims("https://rt/t/acme/g/eng/mcp", now - 120))
            .unwrap();
        assert!(
            signer
                .verify(&old, "https://rt", "https://rt/t/acme/g/eng/mcp")
                .is_err(),
            "expired"
        );
        let other = TokenSigner::load_or_create(&dir.path().join("k2")).unwrap();
        assert!(
            other
                .verify(&t, "https://rt", "https://rt/t/acme/g/eng/mcp")
                .is_err(),
            "forged"
        );
        let again = TokenSigner::load_or_create(&dir.path().join("k")).unwrap();
        assert!(
            again
                .verify(&t, "https://rt", "https://rt/t/acme/g/eng/mcp")
                .is_ok(),
            "key persists"
        );
    }

    #[test]
    fn an_unusable_key_file_is_a_typed_error_that_quotes_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = TokenSigner::load_or_create(&path).unwrap_err();
        assert!(matches!(e, SignerKeyError::Unusable { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("holds no usable ES256 key"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }
}
