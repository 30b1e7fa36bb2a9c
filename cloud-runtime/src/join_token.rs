//! One-time join tokens.
//!
//! A token reads `mcpjt_<tenant>_<connector id>_<secret>`: the readable part lets an operator
//! see at a glance what it is for, and lets the connector know the identity to put in its CSR
//! before it has talked to anyone. The secret is 32 random bytes; the runtime stores only
//! SHA-256 of the whole token, so a leaked database grants nothing, and changing the readable
//! part changes the hash.

use aws_lc_rs::digest;
use shared::identity::{ConnectorId, TenantId};

use shared::enroll::JOIN_TOKEN_PREFIX as PREFIX;

/// A freshly minted token (shown once, never stored).
pub struct JoinToken {
    /// The full token text.
    pub text: String,
    /// SHA-256 of the text, hex; what the store keeps.
    pub hash: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Hashes token text for lookup.
pub fn hash(text: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, text.as_bytes()))
}

/// Mints a token for a new connector of `tenant`.
pub fn mint(tenant: &TenantId) -> (JoinToken, ConnectorId) {
    let id_bytes: [u8; 6] = rand::random();
    let secret: [u8; 32] = rand::random();
    let connector: ConnectorId = format!("c-{}", hex::encode(id_bytes))
        .parse()
        .unwrap_or_else(|_| unreachable!("hex is a valid connector id"));
    let text = format!("{PREFIX}_{tenant}_{connector}_{}", hex::encode(secret));
    let hash = hash(&text);
    (JoinToken { text, hash }, connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_hash_stably() {
        let t: TenantId = "acme".parse().unwrap();
        let (tok, id) = mint(&t);
        let claims = shared::enroll::TokenClaims::parse(&tok.text).unwrap();
        assert_eq!(claims.tenant, t);
        assert_eq!(claims.connector, id);
        assert_eq!(hash(&tok.text), tok.hash);
        assert!(!format!("{tok:?}").contains(&tok.text));
    }
}
