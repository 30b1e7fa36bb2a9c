//! Approvals the runtime cannot forge.
//!
//! When the local policy wants the user's approval of a call, the connector refuses it with
//! a challenge: a `nonce` made of a fresh challenge id and a digest of the call (tool,
//! target, arguments, the values it is held to) keyed with a secret only the connector
//! holds. The user approves by signing in again at the identity provider with that nonce;
//! the ID token that comes back is the approval. The connector accepts it once, for the
//! same user, for a call with the same digest, from a sign-in made after the challenge.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use serde_json::{Map, Value};

use super::ProvenUser;

/// How long a challenge waits for the user's approval.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(600);

/// The most challenges kept at once; beyond it new ones are refused (a runtime asking for
/// approvals in a loop must not exhaust the connector's memory).
const MAX_PENDING: usize = 10_000;

/// How much earlier than the challenge the provider's clock may put the sign-in.
const SKEW: Duration = Duration::from_secs(5);

/// What an approval is for: the call as the user will see and approve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvable<'a> {
    /// The tool.
    pub tool: &'a str,
    /// Where it acts (`instance:owner/repo`), empty when nowhere in particular.
    pub target: String,
    /// Its arguments.
    pub arguments: &'a Map<String, Value>,
    /// The values the call is held to (a pull request's head commit).
    pub binding: &'a BTreeMap<String, String>,
}

impl Approvable<'_> {
    /// The digest of this call keyed with `secret`, URL-safe base64.
    fn digest(&self, secret: &[u8]) -> String {
        // serde_json maps are sorted by key, so the text is canonical.
        let text = serde_json::json!({
            "tool": self.tool,
            "target": self.target,
            "arguments": self.arguments,
            "binding": self.binding,
        })
        .to_string();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, text.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// One or a few lines saying what the call does, for the approval page.
    pub fn summary(&self) -> String {
        let mut s = format!("{} ", self.tool);
        if !self.target.is_empty() {
            s.push_str(&format!("on {} ", self.target));
        }
        s.push_str(&Value::Object(self.arguments.clone()).to_string());
        for (k, v) in self.binding {
            s.push_str(&format!("; {k} must still be {v}"));
        }
        s
    }
}

/// Why an approval was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// The token's nonce names no challenge this connector has open (never issued, used
    /// already, or expired).
    #[error("the approval answers no open challenge of this connector (used already, or expired)")]
    Unknown,
    /// The approval was made by another user.
    #[error("the approval was made by another user")]
    OtherUser,
    /// The approval was for another call.
    #[error(
        "the approval was given for a different call (another tool, target, arguments or head)"
    )]
    OtherCall,
    /// The sign-in predates the challenge: not made for this approval.
    #[error("the approval's sign-in happened before the approval was asked for")]
    Early,
    /// Too many approvals are waiting.
    #[error("too many approvals are waiting; try again later")]
    Full,
}

struct Challenge {
    user: String,
    secret: [u8; 32],
    digest: String,
    issued_at: SystemTime,
    expires: Instant,
}

/// The open challenges.
pub struct Approvals {
    rng: SystemRandom,
    open: Mutex<HashMap<String, Challenge>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

impl Default for Approvals {
    fn default() -> Self {
        Self {
            rng: SystemRandom::new(),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Approvals {
    /// A new challenge for `user` (their stable id) to approve `call`; returns the nonce
    /// their sign-in must carry.
    pub fn challenge(&self, user: &str, call: &Approvable<'_>) -> Result<String, ApprovalError> {
        let mut id = [0u8; 16];
        let mut secret = [0u8; 32];
        if self.rng.fill(&mut id).is_err() || self.rng.fill(&mut secret).is_err() {
            return Err(ApprovalError::Full);
        }
        let id = hex::encode(id);
        let digest = call.digest(&secret);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        open.retain(|_, c| c.expires > now);
        if open.len() >= MAX_PENDING {
            return Err(ApprovalError::Full);
        }
        let nonce = format!("{id}.{digest}");
        open.insert(
            id,
            Challenge {
                user: user.to_owned(),
                secret,
                digest,
                issued_at: SystemTime::now(),
                expires: now + CHALLENGE_TTL,
            },
        );
        Ok(nonce)
    }

    /// Accepts `approver`'s approval (from a verified ID token) of `call` by `user`, once.
    pub fn redeem(
        &self,
        user: &str,
        approver: &ProvenUser,
        call: &Approvable<'_>,
    ) -> Result<(), ApprovalError> {
        let nonce = approver.nonce.as_deref().unwrap_or_default();
        let (id, digest) = nonce.split_once('.').ok_or(ApprovalError::Unknown)?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let c = open.get(id).ok_or(ApprovalError::Unknown)?;
        if c.expires <= Instant::now() {
            open.remove(id);
            return Err(ApprovalError::Unknown);
        }
        if approver.id != user || c.user != user {
            return Err(ApprovalError::OtherUser);
        }
        if c.digest != digest || call.digest(&c.secret) != digest {
            return Err(ApprovalError::OtherCall);
        }
        if approver.authenticated_at + SKEW < c.issued_at {
            return Err(ApprovalError::Early);
        }
        open.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn approver(id: &str, nonce: &str, at: SystemTime) -> ProvenUser {
        ProvenUser {
            id: id.into(),
            subject: id.into(),
            name: None,
            groups: vec![],
            authenticated_at: at,
            nonce: Some(nonce.into()),
        }
    }

    /// An approval binds one call by one user, made after it was asked for, once: another
    /// pull request, another head commit, another user, an earlier sign-in or a second use
    /// are refused.
    #[test]
    fn an_approval_binds_one_call_of_one_user_once() {
        let approvals = Approvals::default();
        let pr6 = args(json!({"owner": "acme", "repo": "widgets", "number": 6}));
        let pr7 = args(json!({"owner": "acme", "repo": "widgets", "number": 7}));
        let head = BTreeMap::from([("head_sha".to_owned(), "abc".to_owned())]);
        let moved = BTreeMap::from([("head_sha".to_owned(), "def".to_owned())]);
        let call = |arguments, binding| Approvable {
            tool: "github_merge_pull_request",
            target: "ghes:acme/widgets".into(),
            arguments,
            binding,
        };
        let nonce = approvals.challenge("u-alice", &call(&pr6, &head)).unwrap();
        let now = SystemTime::now();
        let alice = approver("u-alice", &nonce, now);

        for (what, user, who, c, expected) in [
            (
                "another pull request",
                "u-alice",
                &alice,
                call(&pr7, &head),
                ApprovalError::OtherCall,
            ),
            (
                "another head commit",
                "u-alice",
                &alice,
                call(&pr6, &moved),
                ApprovalError::OtherCall,
            ),
            (
                "another user's sign-in",
                "u-alice",
                &approver("u-bob", &nonce, now),
                call(&pr6, &head),
                ApprovalError::OtherUser,
            ),
            (
                "a sign-in before the question",
                "u-alice",
                &approver("u-alice", &nonce, now - Duration::from_secs(60)),
                call(&pr6, &head),
                ApprovalError::Early,
            ),
            (
                "a nonce nobody issued",
                "u-alice",
                &approver("u-alice", "0011.forged", now),
                call(&pr6, &head),
                ApprovalError::Unknown,
            ),
        ] {
            assert_eq!(approvals.redeem(user, who, &c), Err(expected), "{what}");
        }
        assert_eq!(
            approvals.redeem("u-alice", &alice, &call(&pr6, &head)),
            Ok(())
        );
        assert_eq!(
            approvals.redeem("u-alice", &alice, &call(&pr6, &head)),
            Err(ApprovalError::Unknown),
            "replayed"
        );
        assert!(
            call(&pr6, &head)
                .summary()
                .contains("head_sha must still be abc")
        );
    }
}
