//! Every way an MCP request can end other than with a tool's result, and the one function
//! ([`answer`]) that turns each into its JSON-RPC answer.
//!
//! Two kinds of answer exist, and which one a refusal gets is decided here only:
//!
//! - an `isError` tool result, for what the agent can act on: a denial names the refusing
//!   layer, a failed call says whether to retry, a link asks the user to connect an account;
//! - a JSON-RPC error, for a request that is wrong as sent (unknown tool, bad target, bad
//!   cursor), one the runtime could not serve, or one the protocol answers with an error code
//!   (`-32042`, URL elicitation required).

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorCode, InputRequiredResult};
use shared::call::CallFailure;
use shared::wire;

use crate::policy::decide::Layer;

/// The URL-elicitation-required error code (MCP 2025-11-25).
pub const URL_ELICITATION_REQUIRED: i32 = -32042;

/// Why a request ends without a tool's result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request reached the MCP server without a principal (the authentication middleware
    /// was not in front of it).
    #[error("request reached the MCP server unauthenticated")]
    Unauthenticated,
    /// The credentials are for another tenant than the gateway's.
    #[error("credentials are for another tenant")]
    OtherTenant,
    /// A tools/list cursor this server did not give.
    #[error("invalid cursor")]
    InvalidCursor,
    /// No such tool here; `why` says so when a policy layer hid it (the gateway).
    #[error("unknown tool: {name}{}", .why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    UnknownTool {
        /// The tool name (or its placeholder).
        name: String,
        /// Why it is unknown, when the gateway does not expose it.
        why: Option<String>,
    },
    /// The arguments name no usable instance or repository.
    #[error("{name}: {error}")]
    InvalidTarget {
        /// The tool.
        name: String,
        /// What is wrong with the target.
        error: String,
    },
    /// A policy layer or hook denied the call.
    #[error("denied by the {layer} layer: {reason}")]
    Denied {
        /// The refusing layer.
        layer: Layer,
        /// Why, for the agent.
        reason: String,
    },
    /// The call failed (no connector, no audit trail, the connector or upstream refused).
    #[error("{}", failure_text(.0))]
    Failed(CallFailure),
    /// The client cancelled the call.
    #[error("cancelled by the client")]
    Cancelled,
    /// The call waits for the user's answer (stateless revision): the client asks them and
    /// retries with the answer.
    #[error("the call needs the user's input")]
    AskUser(Box<InputRequiredResult>),
    /// The user must connect their upstream account first, and the client can open the link
    /// itself (URL elicitation, 2025-11-25).
    #[error("{message}")]
    ConnectAccount {
        /// What the user is asked.
        message: String,
        /// The connect page.
        url: String,
        /// The elicitation's id, named again in its completion notice.
        elicitation_id: String,
    },
    /// The user must connect their upstream account first, and the client cannot open links:
    /// the agent is given the link to pass on.
    #[error("{message} Link: {url} (valid for {minutes} minutes). Then call the tool again.")]
    ConnectLink {
        /// What the user is asked.
        message: String,
        /// The connect page.
        url: String,
        /// How long the link works.
        minutes: i64,
    },
    /// The connect request could not be stored.
    #[error("could not record the connect request")]
    ConnectNotRecorded,
    /// The connect elicitation could not be built.
    #[error("building the elicitation: {0}")]
    ElicitationUnbuildable(String),
}

/// A failure's text: its message, whether it is worth retrying, and when.
fn failure_text(f: &CallFailure) -> String {
    let hint = match f.code {
        wire::ErrorCode::Unavailable | wire::ErrorCode::Draining => " (retryable)",
        wire::ErrorCode::DeadlineExceeded => " (retryable with a longer deadline)",
        _ => "",
    };
    let retry = f
        .retry_after
        .map(|d| format!("; retry after {} ms", d.as_millis()))
        .unwrap_or_default();
    format!("{}{hint}{retry}", f.message)
}

/// The JSON-RPC answer to `refusal`: an `isError` tool result the agent can act on, or a
/// JSON-RPC error.
pub fn answer(refusal: Refusal) -> Result<CallToolResponse, McpError> {
    let text = refusal.to_string();
    match refusal {
        Refusal::Denied { .. } | Refusal::Failed(_) | Refusal::ConnectLink { .. } => {
            Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into())
        }
        Refusal::AskUser(input) => Ok(CallToolResponse::InputRequired(*input)),
        Refusal::UnknownTool { .. } | Refusal::InvalidTarget { .. } | Refusal::InvalidCursor => {
            Err(McpError::invalid_params(text, None))
        }
        Refusal::OtherTenant => Err(McpError::invalid_request(text, None)),
        Refusal::ConnectAccount {
            message,
            url,
            elicitation_id,
        } => Err(McpError::new(
            ErrorCode(URL_ELICITATION_REQUIRED),
            text,
            Some(serde_json::json!({
                "elicitations": [{"mode": "url", "elicitationId": elicitation_id, "url": url, "message": message}],
            })),
        )),
        Refusal::Unauthenticated
        | Refusal::Cancelled
        | Refusal::ConnectNotRecorded
        | Refusal::ElicitationUnbuildable(_) => Err(McpError::internal_error(text, None)),
    }
}

impl Refusal {
    /// The answer as a JSON-RPC error, for requests that have no tool result to carry a
    /// refusal (tools/list): the error [`answer`] gives, or an internal error with the same
    /// text for a refusal tools/call would answer with a result.
    pub fn into_error(self) -> McpError {
        let text = self.to_string();
        match answer(self) {
            Err(e) => e,
            Ok(_) => McpError::internal_error(text, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rmcp::model::ErrorCode;

    use super::*;

    /// The text of an `isError` result, or the error.
    fn result_text(r: Result<CallToolResponse, McpError>) -> Result<String, McpError> {
        match r? {
            CallToolResponse::Complete(r) => {
                assert_eq!(r.is_error, Some(true));
                Ok(r.content[0].as_text().unwrap().text.clone())
            }
            other => panic!("not a result: {other:?}"),
        }
    }

    #[test]
    fn denials_failures_and_links_are_results_the_agent_reads() {
        let denied = Refusal::Denied {
            layer: Layer::Agent,
            reason: "agent bot's role triage does not allow x".into(),
        };
        assert_eq!(
            result_text(answer(denied)).unwrap(),
            "denied by the agent layer: agent bot's role triage does not allow x"
        );
        let failed = CallFailure::new(
            wire::ErrorCode::Unavailable,
            "no connector of tenant acme is online",
        )
        .retry_after(Duration::from_secs(5));
        assert_eq!(
            result_text(answer(Refusal::Failed(failed))).unwrap(),
            "no connector of tenant acme is online (retryable); retry after 5000 ms"
        );
        let late = CallFailure::new(wire::ErrorCode::DeadlineExceeded, "too slow");
        assert_eq!(
            result_text(answer(Refusal::Failed(late))).unwrap(),
            "too slow (retryable with a longer deadline)"
        );
        let link = Refusal::ConnectLink {
            message: "Connect your GitHub account.".into(),
            url: "https://rt/connect/x".into(),
            minutes: 10,
        };
        assert_eq!(
            result_text(answer(link)).unwrap(),
            "Connect your GitHub account. Link: https://rt/connect/x (valid for 10 minutes). Then call the tool again."
        );
    }

    #[test]
    fn wrong_requests_are_invalid_params_errors() {
        let e = answer(Refusal::UnknownTool {
            name: "nope".into(),
            why: None,
        })
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_ref()),
            (ErrorCode::INVALID_PARAMS, "unknown tool: nope")
        );
        let e = answer(Refusal::UnknownTool {
            name: "gitlab_x".into(),
            why: Some("gateway eng does not expose gitlab_x".into()),
        })
        .unwrap_err();
        assert_eq!(
            e.message,
            "unknown tool: gitlab_x (gateway eng does not expose gitlab_x)"
        );
        let e = answer(Refusal::InvalidTarget {
            name: "t".into(),
            error: "bad repo".into(),
        })
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_ref()),
            (ErrorCode::INVALID_PARAMS, "t: bad repo")
        );
        let e = Refusal::InvalidCursor.into_error();
        assert_eq!(
            (e.code, e.message.as_ref()),
            (ErrorCode::INVALID_PARAMS, "invalid cursor")
        );
        let e = Refusal::OtherTenant.into_error();
        assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    }

    #[test]
    fn a_url_elicitation_is_the_protocols_error_code_with_the_link() {
        let e = answer(Refusal::ConnectAccount {
            message: "Connect.".into(),
            url: "https://rt/connect/x".into(),
            elicitation_id: "e1".into(),
        })
        .unwrap_err();
        assert_eq!(e.code, ErrorCode(URL_ELICITATION_REQUIRED));
        assert_eq!(e.message, "Connect.");
        assert_eq!(
            e.data.unwrap()["elicitations"][0],
            serde_json::json!({"mode": "url", "elicitationId": "e1", "url": "https://rt/connect/x", "message": "Connect."})
        );
    }

    #[test]
    fn what_the_runtime_could_not_do_is_an_internal_error() {
        for (r, text) in [
            (Refusal::Cancelled, "cancelled by the client"),
            (
                Refusal::Unauthenticated,
                "request reached the MCP server unauthenticated",
            ),
            (
                Refusal::ConnectNotRecorded,
                "could not record the connect request",
            ),
        ] {
            let e = answer(r).unwrap_err();
            assert_eq!(
                (e.code, e.message.as_ref()),
                (ErrorCode::INTERNAL_ERROR, text)
            );
        }
    }

    #[test]
    fn a_result_refusal_on_tools_list_is_still_an_error() {
        let e = Refusal::Denied {
            layer: Layer::Hook,
            reason: "no".into(),
        }
        .into_error();
        assert_eq!(e.message, "denied by the hook layer: no");
    }
}
