//! Sending the user to a page of the runtime in their browser, in the form the MCP client's
//! protocol revision has:
//!
//! - 2026-07-28: an `input_required` result with a URL-mode `elicitation/create`; the client
//!   retries the call once the user is done;
//! - 2025-11-25, when the client declared URL elicitation: the `-32042`
//!   URL-elicitation-required error, and `notifications/elicitation/complete` when the user
//!   is back;
//! - otherwise (2025-06-18, older clients): an `isError` result whose text carries the link.

use rmcp::RoleServer;
use rmcp::model::{InputRequest, InputRequests, InputRequiredResult, ProtocolVersion};
use rmcp::service::RequestContext;

use super::refusal::Refusal;
use super::shared_state::Shared;

/// A page the user must open.
#[derive(Debug, Clone)]
pub struct BrowserLink {
    /// What to do there, for the user.
    pub message: String,
    /// The page.
    pub url: String,
    /// Id of the URL elicitation.
    pub elicitation_id: String,
    /// How long the link works, in milliseconds.
    pub ttl_ms: i64,
}

/// The refusal that sends the user to `link`; `key` names the input in a 2026-07-28
/// `input_required` result.
pub fn ask(
    shared: &Shared,
    ctx: &RequestContext<RoleServer>,
    key: String,
    link: BrowserLink,
) -> Refusal {
    let BrowserLink {
        message,
        url,
        elicitation_id,
        ttl_ms: ttl,
    } = link;
    let version = ctx.protocol_version();
    if version
        .as_ref()
        .is_some_and(|v| *v >= ProtocolVersion::V_2026_07_28)
    {
        let elicit = serde_json::json!({
            "method": "elicitation/create",
            "params": {"mode": "url", "message": message, "url": url, "elicitationId": elicitation_id},
        });
        let input = match serde_json::from_value::<InputRequest>(elicit) {
            Ok(i) => i,
            Err(e) => return Refusal::ElicitationUnbuildable(e.to_string()),
        };
        let mut inputs = InputRequests::new();
        inputs.insert(key, input);
        return Refusal::AskUser(Box::new(InputRequiredResult::new(Some(inputs), None)));
    }
    let url_capable = version
        .as_ref()
        .is_some_and(|v| *v >= ProtocolVersion::V_2025_11_25)
        && ctx.peer.peer_info().is_some_and(|i| {
            i.capabilities
                .elicitation
                .as_ref()
                .is_some_and(|e| e.url.is_some())
        });
    if url_capable {
        shared
            .elicitations
            .remember(&elicitation_id, ctx.peer.clone());
        return Refusal::ConnectAccount {
            message,
            url,
            elicitation_id,
        };
    }
    Refusal::ConnectLink {
        message,
        url,
        minutes: ttl / 60_000,
    }
}
