//! Checking one ID token against the provider's key set: pure, so every refusal is tested
//! on explicit tokens and times.

use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::{ProofError, ProvenUser, UserProofPolicy};

/// Clock difference tolerated between the provider and the connector.
const LEEWAY: Duration = Duration::from_secs(60);

/// The longest token accepted; ID tokens are a few kilobytes at most.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The signature algorithms accepted: asymmetric only, so that nobody holding the public
/// key (or a client secret) can sign.
const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn invalid(policy: &UserProofPolicy, reason: impl Into<String>) -> ProofError {
    ProofError::Invalid {
        issuer: policy.issuer.clone(),
        reason: reason.into(),
    }
}

/// The token's header, if its size and algorithm are acceptable.
pub fn header(token: &str, policy: &UserProofPolicy) -> Result<Header, ProofError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid(policy, "longer than any ID token"));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(policy, e.to_string()))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(invalid(
            policy,
            format!("algorithm {:?} is not accepted", header.alg),
        ));
    }
    Ok(header)
}

/// The issuer a token claims, read without checking its signature: only to name it in the
/// refusal of a token from another provider.
fn claimed_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(200).collect())
}

fn unix(t: &Value) -> Option<SystemTime> {
    t.as_u64()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// The user `token` proves, if `set` holds the key it is signed with and every claim holds
/// at `now`.
pub fn verify(
    token: &str,
    header: &Header,
    set: &JwkSet,
    policy: &UserProofPolicy,
    now: SystemTime,
) -> Result<ProvenUser, ProofError> {
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or_else(|| invalid(policy, "signed with a key the provider does not publish"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(policy, e.to_string()))?;
    let mut v = Validation::new(header.alg);
    v.set_audience(&[&policy.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
    // Expiry and issuer are checked below against our own clock and with a precise error.
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
        .map_err(|e| invalid(policy, e.to_string()))?
        .claims;
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if issuer.trim_end_matches('/') != policy.issuer.trim_end_matches('/') {
        return Err(ProofError::OtherIssuer {
            expected: policy.issuer.clone(),
            found: claimed_issuer(token).unwrap_or_default(),
        });
    }
    let expires = claims
        .get("exp")
        .and_then(unix)
        .ok_or_else(|| invalid(policy, "exp is not a time"))?;
    if expires + LEEWAY <= now {
        return Err(ProofError::Expired);
    }
    let issued = claims
        .get("iat")
        .and_then(unix)
        .ok_or_else(|| invalid(policy, "iat is not a time"))?;
    let authenticated_at = match claims.get("auth_time") {
        Some(t) => unix(t).ok_or_else(|| invalid(policy, "auth_time is not a time"))?,
        None => issued,
    };
    if authenticated_at > now + LEEWAY || issued > now + LEEWAY {
        return Err(invalid(policy, "issued in the future"));
    }
    let age = now.duration_since(authenticated_at).unwrap_or_default();
    if age > policy.max_age {
        return Err(ProofError::TooOld {
            age_secs: age.as_secs(),
            max_secs: policy.max_age.as_secs(),
        });
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control))
        .ok_or_else(|| invalid(policy, "no usable subject"))?
        .to_owned();
    let groups = claims
        .get(&policy.groups_claim)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(ProvenUser {
        id: user_id(&policy.issuer, &subject),
        name: claims
            .get("preferred_username")
            .and_then(Value::as_str)
            .map(str::to_owned),
        subject,
        groups,
        authenticated_at,
        nonce: claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The stable id of the provider's account `sub` at `issuer`, as the runtime derives it.
pub fn user_id(issuer: &str, sub: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{issuer} {sub}").as_bytes(),
    );
    format!(
        "u-{}",
        hex::encode(digest.as_ref().get(..16).unwrap_or_default())
    )
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, encode};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.corp.example/realms/eng";

    fn policy() -> UserProofPolicy {
        UserProofPolicy {
            issuer: ISSUER.into(),
            audience: "mcp-edge-runtime".into(),
            groups_claim: "groups".into(),
            max_age: Duration::from_secs(3600),
            required: true,
            ca_bundle: None,
        }
    }

    /// A provider: its signing key and published key set.
    struct Provider {
        key: EncodingKey,
        set: JwkSet,
        kid: String,
    }

    fn provider(kid: &str) -> Provider {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = EncodingKey::from_ed_der(pkcs8.as_ref());
        let mut jwk: Jwk = serde_json::from_value(json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
            "x": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, pair.public_key().as_ref()),
        }))
        .unwrap();
        jwk.common.key_id = Some(kid.into());
        Provider {
            key,
            set: JwkSet { keys: vec![jwk] },
            kid: kid.into(),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn secs(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    fn token(p: &Provider, claims: Value) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(p.kid.clone());
        encode(&h, &claims, &p.key).unwrap()
    }

    fn alice(signed_in: SystemTime) -> Value {
        json!({
            "iss": ISSUER, "aud": "mcp-edge-runtime", "sub": "alice",
            "preferred_username": "alice", "groups": ["eng"],
            "iat": secs(signed_in), "exp": secs(signed_in) + 3600,
        })
    }

    fn check(p: &Provider, token: &str, at: SystemTime) -> Result<ProvenUser, ProofError> {
        let h = header(token, &policy())?;
        verify(token, &h, &p.set, &policy(), at)
    }

    #[test]
    fn a_fresh_token_of_the_provider_proves_its_subject_and_groups() {
        let p = provider("k1");
        let signed_in = now() - Duration::from_secs(600);
        let user = check(&p, &token(&p, alice(signed_in)), now()).unwrap();
        assert_eq!(user.subject, "alice");
        assert_eq!(user.groups, ["eng"]);
        assert_eq!(user.authenticated_at, signed_in);
        assert_eq!(user.id, user_id(ISSUER, "alice"));
        assert!(
            user.id.starts_with("u-") && user.id.len() == 34,
            "{}",
            user.id
        );
    }

    #[test]
    fn forged_expired_stale_and_foreign_tokens_are_refused() {
        let p = provider("k1");
        let signed_in = now() - Duration::from_secs(600);
        let good = token(&p, alice(signed_in));

        // Another key that claims the provider's key id: the signature does not verify.
        let mallory = provider("k1");
        let forged = token(&mallory, alice(signed_in));
        assert!(
            matches!(check(&p, &forged, now()), Err(ProofError::Invalid { .. })),
            "{:?}",
            check(&p, &forged, now())
        );
        // A payload edited after signing (another subject).
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut edited = alice(signed_in);
        edited["sub"] = json!("bob");
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            edited.to_string(),
        );
        assert!(matches!(
            check(&p, &parts.join("."), now()),
            Err(ProofError::Invalid { .. })
        ));
        // Another provider's token, even one signed with a key we publish.
        let mut other = alice(signed_in);
        other["iss"] = json!("https://idp.elsewhere.example");
        assert!(matches!(
            check(&p, &token(&p, other), now()),
            Err(ProofError::OtherIssuer { .. })
        ));
        // Another audience: a token the provider issued to some other client.
        let mut aud = alice(signed_in);
        aud["aud"] = json!("someone-else");
        assert!(matches!(
            check(&p, &token(&p, aud), now()),
            Err(ProofError::Invalid { .. })
        ));
        // Expired, and older than the local policy allows.
        let later = now() + Duration::from_secs(3600 + 61);
        assert_eq!(check(&p, &good, later), Err(ProofError::Expired));
        let mut refreshed = alice(now());
        refreshed["auth_time"] = json!(secs(now()) - 7200);
        match check(&p, &token(&p, refreshed), now()) {
            Err(ProofError::TooOld { age_secs, max_secs }) => {
                assert_eq!((age_secs, max_secs), (7200, 3600));
            }
            other => panic!("{other:?}"),
        }
        // An unsigned token, and a symmetric algorithm.
        let none = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"alg":"none"}"#
            ),
            parts[1]
        );
        assert!(check(&p, &none, now()).is_err());
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &alice(signed_in),
            &EncodingKey::from_secret(b"x"),
        )
        .unwrap();
        assert!(matches!(
            check(&p, &hs, now()),
            Err(ProofError::Invalid { reason, .. }) if reason.contains("HS256")
        ));
        assert!(check(&p, &"x".repeat(MAX_TOKEN_LEN + 1), now()).is_err());
        assert!(check(&p, "not a token", now()).is_err());
    }
}
