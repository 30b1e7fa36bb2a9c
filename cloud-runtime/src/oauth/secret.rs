//! Random secrets (codes, tokens, keys) and the hashes the store keeps of them. Secrets are
//! 256-bit random, so a plain SHA-256 is enough: there is nothing to brute-force.

use aws_lc_rs::digest;

/// A new secret: `prefix` + 64 hex digits.
pub fn generate(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// SHA-256 of a secret, hex.
pub fn hash(secret: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

/// The S256 challenge of a PKCE verifier (RFC 7636), or `None` if the verifier is not well
/// formed.
pub fn pkce_s256_challenge(verifier: &str) -> Option<String> {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed.then(|| s256(verifier))
}

/// BASE64URL(SHA256(verifier)), for verifiers this runtime made itself.
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_the_rfc_7636_example() {
        // Appendix B of RFC 7636.
        assert_eq!(
            pkce_s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").as_deref(),
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        );
        assert_eq!(pkce_s256_challenge("short"), None);
        assert_eq!(pkce_s256_challenge(&"a b".repeat(20)), None);
    }
}
