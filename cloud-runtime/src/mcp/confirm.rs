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
//!
//! What the user is asked names the exact effect: the connector previews the call first
//! (pull or merge request number and title, branches, head commit, merge method), and the
//! values the preview read ([`Shown::binding`]) go with the confirmed call, which the
//! connector refuses if they no longer hold. In the stateless revision the message and the
//! binding ride in the sealed state, so the retry runs exactly what was shown.

use std::collections::BTreeMap;
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
use shared::clock::now_ms;

use super::shared_state::state_key::StateKey;
use crate::store::Store;

/// How long a stateless confirmation stays valid.
const STATE_TTL: Duration = Duration::from_secs(300);
/// Key of the confirmation in `inputRequests` / `inputResponses`.
const INPUT_KEY: &str = "confirm";

/// `claim`, sealed under `key`: its JSON, and the HMAC of that.
fn seal(key: &StateKey, claim: &Claim) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claim).unwrap_or_default());
    let tag = URL_SAFE_NO_PAD.encode(key.sign(body.as_bytes()));
    format!("{body}.{tag}")
}

/// The claim `sealed` carries, if `key` sealed it and nobody changed it since.
fn open(key: &StateKey, sealed: &str) -> Option<Claim> {
    let (body, tag) = sealed.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if !key.verify(body.as_bytes(), &tag) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
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
    /// The message the user was shown (set by [`ask`]).
    #[serde(default)]
    pub m: String,
    /// The values the call is bound to (set by [`ask`]).
    #[serde(default)]
    pub b: BTreeMap<String, String>,
}

/// What the user is (or was) asked to confirm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// The question, with the effect the connector previewed.
    pub message: String,
    /// The values the confirmed call is bound to ([`shared::wire::Effect::binding`]).
    pub binding: BTreeMap<String, String>,
}

/// The user's answer, or what to send to get one.
#[derive(Debug)]
pub enum Confirmation {
    /// The user confirmed what they were shown.
    Confirmed(Shown),
    /// The user declined or the client cannot ask; the reason, and what was shown (empty
    /// when nothing could be).
    Refused(String, Shown),
    /// Stateless revision: send this and wait for the retry.
    Ask(Box<InputRequiredResult>),
}

/// Longest effect text a question quotes.
const MAX_EFFECT: usize = 1000;

/// The question for a call: `fallback` (the hook's, naming tool and repository) when the
/// connector previewed nothing, else the previewed effect in its place.
pub fn question(
    fallback: &str,
    agent: &str,
    tool: &str,
    target: Option<&str>,
    destructive: bool,
    effect: &str,
) -> String {
    let effect: String = effect
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_EFFECT)
        .collect();
    if effect.trim().is_empty() {
        return fallback.to_owned();
    }
    let on = target.map(|t| format!(" on {t}")).unwrap_or_default();
    let undo = if destructive {
        " This cannot be undone."
    } else {
        ""
    };
    format!(
        "Agent {agent} wants to run {tool}{on}: {}.{undo} Allow it?",
        effect.trim()
    )
}

/// Whether this call carries the user's answer to a stateless confirmation (then nothing
/// is previewed again: the sealed state holds what was shown).
pub fn is_answer(
    ctx: &RequestContext<RoleServer>,
    input_responses: Option<&rmcp::model::InputResponses>,
    request_state: Option<&str>,
) -> bool {
    stateless(ctx)
        && request_state.is_some()
        && input_responses.is_some_and(|r| r.contains_key(INPUT_KEY))
}

fn stateless(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
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

/// Asks the user to confirm `shown` for the call described by `claim` (its `e`, `j`, `m`
/// and `b` are set here). On a stateless retry `shown` is ignored: what the user saw comes
/// from the sealed state.
pub async fn ask(
    ctx: &RequestContext<RoleServer>,
    key: &StateKey,
    store: &Store,
    mut claim: Claim,
    shown: Shown,
    input_responses: Option<&rmcp::model::InputResponses>,
    request_state: Option<&str>,
) -> Confirmation {
    if stateless(ctx) {
        if let (Some(state), Some(answer)) = (
            request_state,
            input_responses.and_then(|r| r.get(INPUT_KEY)),
        ) {
            let Some(sealed) = open(key, state) else {
                return Confirmation::Refused(
                    "the confirmation's requestState is not ours".into(),
                    Shown::default(),
                );
            };
            let seen = Shown {
                message: sealed.m.clone(),
                binding: sealed.b.clone(),
            };
            claim.e = sealed.e;
            claim.j.clone_from(&sealed.j);
            claim.m.clone_from(&sealed.m);
            claim.b.clone_from(&sealed.b);
            if sealed != claim {
                return Confirmation::Refused(
                    "the confirmation was given for another call".into(),
                    Shown::default(),
                );
            }
            if sealed.e < now_ms() {
                return Confirmation::Refused("the confirmation expired; call again".into(), seen);
            }
            return match serde_json::from_value::<ElicitResult>(answer.clone()) {
                Ok(r) if accepted(&r) => {
                    match store.spend_confirmation(&sealed.j, sealed.e).await {
                        Ok(true) => Confirmation::Confirmed(seen),
                        Ok(false) => Confirmation::Refused(
                            "this confirmation was already used; call again to be asked anew"
                                .into(),
                            seen,
                        ),
                        Err(_) => Confirmation::Refused(
                            "the confirmation could not be recorded; try again".into(),
                            seen,
                        ),
                    }
                }
                Ok(_) => Confirmation::Refused("the user did not confirm".into(), seen),
                Err(_) => {
                    Confirmation::Refused("the confirmation answer is malformed".into(), seen)
                }
            };
        }
        claim.e = now_ms() + i64::try_from(STATE_TTL.as_millis()).unwrap_or(i64::MAX);
        claim.j = hex::encode(rand::random::<[u8; 16]>());
        claim.m.clone_from(&shown.message);
        claim.b.clone_from(&shown.binding);
        let request =
            serde_json::json!({"method": "elicitation/create", "params": params(&shown.message)});
        let Ok(request) = serde_json::from_value::<InputRequest>(request) else {
            return Confirmation::Refused("could not build the confirmation request".into(), shown);
        };
        let mut inputs = InputRequests::new();
        inputs.insert(INPUT_KEY.to_owned(), request);
        return Confirmation::Ask(Box::new(InputRequiredResult::new(
            Some(inputs),
            Some(seal(key, &claim)),
        )));
    }
    let can_ask = ctx
        .peer
        .peer_info()
        .is_some_and(|info| info.capabilities.elicitation.is_some());
    if !can_ask {
        return Confirmation::Refused(
            "this action needs the user's confirmation and the MCP client cannot ask (it declared no elicitation capability)".into(),
            shown,
        );
    }
    let Ok(request) = serde_json::from_value::<ElicitRequestParams>(params(&shown.message)) else {
        return Confirmation::Refused("could not build the confirmation request".into(), shown);
    };
    match ctx.peer.create_elicitation(request).await {
        Ok(r) if accepted(&r) => Confirmation::Confirmed(shown),
        Ok(_) => Confirmation::Refused("the user did not confirm".into(), shown),
        Err(e) => Confirmation::Refused(format!("the confirmation could not be asked: {e}"), shown),
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
            m: "Agent bot wants to run github_merge_pull_request: merge #5".into(),
            b: BTreeMap::from([("head_sha".into(), "abc".into())]),
        }
    }

    #[test]
    fn sealed_state_opens_only_untouched_and_with_the_same_key() {
        let key = StateKey::ephemeral();
        let sealed = seal(&key, &claim());
        assert_eq!(open(&key, &sealed), Some(claim()));
        assert_eq!(open(&StateKey::ephemeral(), &sealed), None);
        let (body, tag) = sealed.split_once('.').unwrap();
        let mut other = claim();
        other.u = "mallory".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        assert_eq!(open(&key, &format!("{forged}.{tag}")), None);
        // Nor can a client swap the head commit the user approved for another.
        let mut moved = claim();
        moved.b.insert("head_sha".into(), "def".into());
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&moved).unwrap());
        assert_eq!(open(&key, &format!("{forged}.{tag}")), None);
        assert_eq!(open(&key, body), None);
        assert_eq!(open(&key, "garbage"), None);
    }

    #[test]
    fn the_question_shows_the_effect_on_one_bounded_line() {
        let fallback = "Agent bot wants to run t on acme/w, which cannot be undone. Allow it?";
        assert_eq!(
            question(fallback, "bot", "t", Some("acme/w"), true, "  "),
            fallback
        );
        let q = question(
            fallback,
            "bot",
            "github_merge_pull_request",
            Some("acme/w"),
            true,
            "merge pull request acme/w#5\n\u{201c}x\u{201d}",
        );
        assert_eq!(
            q,
            "Agent bot wants to run github_merge_pull_request on acme/w: merge pull request acme/w#5\u{201c}x\u{201d}. This cannot be undone. Allow it?"
        );
        let long = question(fallback, "bot", "t", None, false, &"y".repeat(5000));
        assert!(long.len() < MAX_EFFECT + 100, "{}", long.len());
        assert!(!long.contains("cannot be undone"));
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
