//! Access tokens: ES256 JWTs, audience-bound to one gateway URL, ten minutes long. Only the
//! runtime issues and checks them; they are never forwarded anywhere (the tunnel carries the
//! user's stable id, not their token).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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
    /// The key this one replaced (its id and public half): tokens it signed stay good
    /// until they expire.
    previous: Option<(String, DecodingKey)>,
}

/// The signer in use, replaced whole when the signing key rotates; requests take the one
/// current when they start.
#[derive(Debug)]
pub struct SignerCell(RwLock<Arc<TokenSigner>>);

impl SignerCell {
    /// A cell holding `signer`.
    pub fn new(signer: TokenSigner) -> Self {
        Self(RwLock::new(Arc::new(signer)))
    }

    /// The signer now.
    pub fn get(&self) -> Arc<TokenSigner> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `signer` in place of the current one.
    pub fn replace(&self, signer: TokenSigner) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(signer);
    }
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
            previous: None,
        })
    }

    /// This signer, also accepting the tokens of the ES256 key `pem` (the one it
    /// replaced) until they expire.
    pub fn accepting(mut self, pem: &str) -> Result<Self, String> {
        let old = Self::from_pem(pem)?;
        if old.kid != self.kid {
            self.previous = Some((old.kid, old.decoding));
        }
        Ok(self)
    }

    /// The id of the key it signs with (the tokens' `kid`).
    pub fn kid(&self) -> &str {
        &self.kid
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
        let kid = jsonwebtoken::decode_header(token)?.kid;
        let key = match (kid.as_deref(), &self.previous) {
            (None, _) => &self.decoding,
            (Some(kid), _) if kid == self.kid => &self.decoding,
            (Some(kid), Some((previous, key))) if kid == previous => key,
            (Some(_), _) => {
                return Err(jsonwebtoken::errors::ErrorKind::InvalidSignature.into());
            }
        };
        jsonwebtoken::decode::<AccessClaims>(token, key, &v).map(|d| d.claims)
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
    fn after_a_rotation_the_previous_keys_tokens_stay_good_and_older_ones_do_not() {
        let (aud, iss) = ("https://rt/t/acme/g/eng/mcp", "https://rt");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let pems: Vec<String> = (0..3)
            .map(|_| TokenSigner::generate_pem().unwrap())
            .collect();
        let first = TokenSigner::from_pem(&pems[0]).unwrap();
        let t0 = first.sign(&claims(aud, now + 60)).unwrap();

        let second = TokenSigner::from_pem(&pems[1])
            .unwrap()
            .accepting(&pems[0])
            .unwrap();
        let t1 = second.sign(&claims(aud, now + 60)).unwrap();
        assert_ne!(second.kid(), first.kid());
        assert_eq!(
            jsonwebtoken::decode_header(&t1).unwrap().kid.as_deref(),
            Some(second.kid())
        );
        assert!(
            second.verify(&t0, iss, aud).is_ok(),
            "the previous key's token"
        );
        assert!(second.verify(&t1, iss, aud).is_ok());

        let third = TokenSigner::from_pem(&pems[2])
            .unwrap()
            .accepting(&pems[1])
            .unwrap();
        assert!(third.verify(&t1, iss, aud).is_ok());
        assert!(third.verify(&t0, iss, aud).is_err(), "two rotations ago");
        // A token naming the previous key's id but signed with another key is forged.
        let mut forged_header = Header::new(Algorithm::ES256);
        forged_header.kid = Some(second.kid().to_owned());
        let forged =
            jsonwebtoken::encode(&forged_header, &claims(aud, now + 60), &first.encoding).unwrap();
        assert!(third.verify(&forged, iss, aud).is_err());
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
