//! Who the user of a call is, proven to the connector by the tenant's identity provider and
//! not asserted by the runtime.
//!
//! With each call the runtime forwards the ID token the customer's provider signed at the
//! user's most recent sign-in ([`wire::CallRequest::user_proof`]). The connector checks it
//! itself: signature against the provider's keys (fetched from inside the customer network,
//! [`keys`]), issuer, audience, expiry, and how long ago the user actually authenticated
//! (`user_proof_max_age` of the local policy). The user is then the provider's account
//! (issuer and subject), whatever the runtime said; a runtime that holds no fresh token
//! signed by the provider for a user cannot act as that user here.
//!
//! [`wire::CallRequest::user_proof`]: shared::wire::CallRequest::user_proof

pub mod approval;
pub mod claims;
pub mod keys;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use shared::call::CallFailure;
use shared::wire::ErrorCode;

use crate::user_proof::keys::ProviderKeys;

/// The longest a proof may be by default: a working day.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(12 * 3600);

/// The local policy's trust in the tenant's identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProofPolicy {
    /// The provider's issuer URL, exactly as its ID tokens name it.
    pub issuer: String,
    /// The audience its ID tokens carry: the runtime's client id at the provider.
    pub audience: String,
    /// The claim listing the user's groups.
    pub groups_claim: String,
    /// How long ago the user may have signed in at the provider.
    pub max_age: Duration,
    /// Calls without a proof are refused (tenants of local users cannot call).
    pub required: bool,
    /// CA certificates for the provider's HTTPS endpoints, when not publicly trusted.
    pub ca_bundle: Option<PathBuf>,
}

/// A user the provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenUser {
    /// The stable id both sides key the user by: `u-` and the first 16 bytes of
    /// SHA-256(`issuer sub`), in hex, as the runtime derives it.
    pub id: String,
    /// The provider's `sub`.
    pub subject: String,
    /// The provider's `preferred_username`, for logs (not for rules: users may change it).
    pub name: Option<String>,
    /// Groups from the configured claim.
    pub groups: Vec<String>,
    /// When the user signed in at the provider (`auth_time`, else `iat`).
    pub authenticated_at: SystemTime,
    /// The token's `nonce`, which binds an approval to its call ([`approval`]).
    pub nonce: Option<String>,
}

/// Why a proof was not accepted. Messages never carry the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The runtime sent no proof, and the local policy requires one.
    #[error(
        "this connector acts only for users its identity provider vouches for, and the call carries no proof: sign in at the identity provider"
    )]
    Missing,
    /// The token is not a well-formed, validly signed ID token of the provider.
    #[error("the user's proof is not a valid ID token of {issuer}: {reason}")]
    Invalid {
        /// The provider the connector trusts.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// The token was issued by another provider.
    #[error("the user's proof was issued by {found:?}, not by {expected}")]
    OtherIssuer {
        /// The provider the connector trusts.
        expected: String,
        /// The issuer the token names (unverified).
        found: String,
    },
    /// The sign-in it proves is older than the local policy allows.
    #[error(
        "the user signed in at the identity provider {age_secs} s ago, longer than this connector allows ({max_secs} s): sign in again"
    )]
    TooOld {
        /// Seconds since the sign-in.
        age_secs: u64,
        /// The local policy's bound.
        max_secs: u64,
    },
    /// The token has expired.
    #[error("the user's proof has expired: sign in again at the identity provider")]
    Expired,
    /// The proof is some other user's than the one the call names.
    #[error("the user's proof is another user's than the call names")]
    OtherUser,
    /// The provider's keys could not be fetched.
    #[error("the identity provider's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl ProofError {
    /// The call failure the runtime is told: a missing or stale proof asks the user to sign
    /// in again; a forged one is a denial; missing keys are retryable.
    pub fn failure(&self) -> CallFailure {
        let code = match self {
            ProofError::Missing | ProofError::TooOld { .. } | ProofError::Expired => {
                ErrorCode::SignInRequired
            }
            ProofError::KeysUnavailable(_) => ErrorCode::Unavailable,
            ProofError::Invalid { .. } | ProofError::OtherIssuer { .. } | ProofError::OtherUser => {
                ErrorCode::Denied
            }
        };
        CallFailure::new(code, self.to_string())
    }
}

/// Checks proofs against the provider the local policy names.
#[derive(Debug)]
pub struct Verifier {
    policy: UserProofPolicy,
    keys: ProviderKeys,
}

impl Verifier {
    /// A verifier for `policy`, fetching the provider's keys when first needed.
    pub fn new(policy: UserProofPolicy) -> Result<Self, keys::KeysError> {
        let keys = ProviderKeys::new(&policy.issuer, policy.ca_bundle.as_deref())?;
        Ok(Self { policy, keys })
    }

    /// The policy it enforces.
    pub fn policy(&self) -> &UserProofPolicy {
        &self.policy
    }

    /// The user `token` proves, who must be `claimed` (the runtime's stable id of the
    /// call's user); `None` when there is no token and the policy lets such calls run on
    /// the runtime's word.
    pub async fn check(
        &self,
        token: &str,
        claimed: &str,
    ) -> Result<Option<ProvenUser>, ProofError> {
        if token.is_empty() {
            return if self.policy.required {
                Err(ProofError::Missing)
            } else {
                Ok(None)
            };
        }
        let user = self.verify(token).await?;
        if user.id != claimed {
            return Err(ProofError::OtherUser);
        }
        Ok(Some(user))
    }

    /// The user a provider-signed `token` names, if every check holds now.
    pub async fn verify(&self, token: &str) -> Result<ProvenUser, ProofError> {
        let header = claims::header(token, &self.policy)?;
        let set = self.keys.for_token(header.kid.as_deref()).await?;
        claims::verify(token, &header, &set, &self.policy, SystemTime::now())
    }
}
