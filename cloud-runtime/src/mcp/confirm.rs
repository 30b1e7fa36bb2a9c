//! Asking the user to confirm a call a pre-call hook flagged (a destructive tool), with MCP
//! form elicitation in the form the client's protocol revision has:
//!
//! - 2025-06-18 and 2025-11-25 (sessions): an `elicitation/create` request during the call,
//!   if the client declared the elicitation capability;
//! - 2026-07-28 (stateless): an `input_required` result carrying the elicitation and a
//!   sealed `requestState`; the client retries the call with the user's answer, and the
//!   state proves the answer is for this very call (same tenant, gateway, user, agent, tool
//!   and arguments) and recent, and confirms it once: its random id is spent in the store,
//!   so a replayed retry does not run the destructive call again.
//!
//! The seal is an HMAC under a key in the data directory, so a retry may land on any
//! replica that shares it.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequestParams, ElicitResult, ElicitationAction, InputRequest, InputRequests,
    InputRequiredResult, ProtocolVersion,
};
use rmcp::service::RequestContext;
use serde::{Deserialize, Serialize};

use crate::store::{Store, now_ms};

/// How long a stateless confirmation stays valid.
const STATE_TTL: Duration = Duration::from_secs(300);
/// Key of the confirmation in `inputRequests` / `inputResponses`.
const INPUT_KEY: &str = "confirm";

/// The key sealing `requestState`.
#[derive(Clone)]
pub struct StateKey(aws_lc_rs::hmac::Key);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// Loads the key from `path`, creating it (0600) on first use.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(b) if b.len() == 32 => b,
            Ok(_) => anyhow::bail!("{} is not a 32-byte key", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let b: [u8; 32] = rand::random();
                certs::files::write_secret(path, &b)?;
                b.to_vec()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &bytes,
        )))
    }

    /// A key for one process (tests, benchmarks).
    pub fn ephemeral() -> Self {
        let b: [u8; 32] = rand::random();
        Self(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &b))
    }

    fn seal(&self, claim: &Claim) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claim).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&self.0, body.as_bytes()));
        format!("{body}.{tag}")
    }

    fn open(&self, sealed: &str) -> Option<Claim> {
        let (body, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        aws_lc_rs::hmac::verify(&self.0, body.as_bytes(), &tag).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }
}

/// What a stateless confirmation is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Tenant.
    pub t: String,
    /// Gateway.
    pub g: String,
    /// User.
    pub u: String,
    /// Agent.
    pub a: String,
    /// Tool.
    pub n: String,
    /// SHA-256 of the arguments.
    pub h: String,
    /// Expiry, Unix ms.
    pub e: i64,
    /// Random id, spent when the confirmation is used (set by [`ask`]).
    pub j: String,
}

/// The user's answer, or what to send to get one.
#[derive(Debug)]
pub enum Confirmation {
    /// The user confirmed.
    Confirmed,
    /// The user declined or the client cannot ask; the reason.
    Refused(String),
    /// Stateless revision: send this and wait for the retry.
    Ask(Box<InputRequiredResult>),
}

fn params(message: &str) -> serde_json::Value {
    serde_json::json!({
        "mode": "form",
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {
                "confirm": {
                    "type": "boolean",
                    "title": "Allow",
                    "description": "Run this action now",
                }
            },
            "required": ["confirm"],
        },
    })
}

fn accepted(result: &ElicitResult) -> bool {
    result.action == ElicitationAction::Accept
        && result
            .content
            .as_ref()
            .and_then(|c| c.get("confirm"))
            .and_then(serde_json::Value::as_bool)
            == Some(true)
}

/// Asks the user `message` about the call described by `claim` (its `e` and `j` are set
/// here).
pub async fn ask(
    ctx: &RequestContext<RoleServer>,
    key: &StateKey,
    store: &Store,
    mut claim: Claim,
    message: &str,
    input_responses: Option<&rmcp::model::InputResponses>,
    request_state: Option<&str>,
) -> Confirmation {
    let stateless = ctx
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    if stateless {
        if let (Some(state), Some(answer)) = (
            request_state,
            input_responses.and_then(|r| r.get(INPUT_KEY)),
        ) {
            let Some(sealed) = key.open(state) else {
                return Confirmation::Refused("the confirmation's requestState is not ours".into());
            };
            claim.e = sealed.e;
            claim.j.clone_from(&sealed.j);
            if sealed != claim {
                return Confirmation::Refused("the confirmation was given for another call".into());
            }
            if sealed.e < now_ms() {
                return Confirmation::Refused("the confirmation expired; call again".into());
            }
            return match serde_json::from_value::<ElicitResult>(answer.clone()) {
                Ok(r) if accepted(&r) => {
                    match store.spend_confirmation(&sealed.j, sealed.e).await {
                        Ok(true) => Confirmation::Confirmed,
                        Ok(false) => Confirmation::Refused(
                            "this confirmation was already used; call again to be asked anew"
                                .into(),
                        ),
                        Err(_) => Confirmation::Refused(
                            "the confirmation could not be recorded; try again".into(),
                        ),
                    }
                }
                Ok(_) => Confirmation::Refused("the user did not confirm".into()),
                Err(_) => Confirmation::Refused("the confirmation answer is malformed".into()),
            };
        }
        claim.e = now_ms() + i64::try_from(STATE_TTL.as_millis()).unwrap_or(i64::MAX);
        claim.j = hex::encode(rand::random::<[u8; 16]>());
        let request =
            serde_json::json!({"method": "elicitation/create", "params": params(message)});
        let Ok(request) = serde_json::from_value::<InputRequest>(request) else {
            return Confirmation::Refused("could not build the confirmation request".into());
        };
        let mut inputs = InputRequests::new();
        inputs.insert(INPUT_KEY.to_owned(), request);
        return Confirmation::Ask(Box::new(InputRequiredResult::new(
            Some(inputs),
            Some(key.seal(&claim)),
        )));
    }
    let can_ask = ctx
        .peer
        .peer_info()
        .is_some_and(|info| info.capabilities.elicitation.is_some());
    if !can_ask {
        return Confirmation::Refused(
            "this action needs the user's confirmation and the MCP client cannot ask (it declared no elicitation capability)".into(),
        );
    }
    let Ok(request) = serde_json::from_value::<ElicitRequestParams>(params(message)) else {
        return Confirmation::Refused("could not build the confirmation request".into());
    };
    match ctx.peer.create_elicitation(request).await {
        Ok(r) if accepted(&r) => Confirmation::Confirmed,
        Ok(_) => Confirmation::Refused("the user did not confirm".into()),
        Err(e) => Confirmation::Refused(format!("the confirmation could not be asked: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Claim {
        Claim {
            t: "acme".into(),
            g: "eng".into(),
            u: "alice".into(),
            a: "bot".into(),
            n: "github_merge_pull_request".into(),
            h: "ab".into(),
            e: 5,
            j: "00".into(),
        }
    }

    #[test]
    fn sealed_state_opens_only_untouched_and_with_the_same_key() {
        let key = StateKey::ephemeral();
        let sealed = key.seal(&claim());
        assert_eq!(key.open(&sealed), Some(claim()));
        assert_eq!(StateKey::ephemeral().open(&sealed), None);
        let (body, tag) = sealed.split_once('.').unwrap();
        let mut other = claim();
        other.u = "mallory".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        assert_eq!(key.open(&format!("{forged}.{tag}")), None);
        assert_eq!(key.open(body), None);
        assert_eq!(key.open("garbage"), None);
    }

    #[test]
    fn the_form_parses_as_an_elicitation() {
        assert!(serde_json::from_value::<ElicitRequestParams>(params("ok?")).is_ok());
        let req = serde_json::json!({"method": "elicitation/create", "params": params("ok?")});
        assert!(matches!(
            serde_json::from_value::<InputRequest>(req),
            Ok(InputRequest::Elicitation(_))
        ));
    }
}
