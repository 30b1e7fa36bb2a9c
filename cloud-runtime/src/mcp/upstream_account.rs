//! Connecting a user's upstream account when a call needs it (just-in-time authorization,
//! MCP side; not to be confused with [`crate::oauth::authorize`], where MCP clients get their
//! tokens). A connector answered a call with "authorization required" (the user has not
//! connected their upstream account yet), so the runtime stores a connect request and sends
//! the client to the runtime's own connect page ([`crate::connect`]), in the form the
//! client's protocol revision has ([`super::browser_link`]).
//!
//! The link names only a random request id; the page checks the browser's signed-in user
//! before sending it on to the upstream.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use shared::call::CallFailure;
use shared::clock::now_ms;

use super::browser_link::BrowserLink;
use super::refusal::Refusal;
use super::shared_state::Shared;
use crate::audit::record::{AuditRecord, Kind};
use crate::identity::Principal;
use crate::oauth::secret;
use crate::store::connect::ConnectRow;

/// Longest a connect request stays open.
const MAX_TTL_MS: i64 = 10 * 60 * 1000;

fn link_allowed(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
}

/// A call a connector refused with "authorization required": the user has not connected
/// their account at the upstream yet.
#[derive(Debug, Clone, Copy)]
pub struct NotConnected<'a> {
    /// Who called.
    pub principal: &'a Principal,
    /// The connector that refused (it holds the request's state).
    pub connector: Option<&'a str>,
    /// The tool.
    pub tool: &'a str,
    /// The call's id.
    pub call_id: u64,
    /// The call's trace and span ids.
    pub trace: (&'a str, &'a str),
    /// The refusal, with the connector's authorization request.
    pub failure: &'a CallFailure,
}

/// Asks the user to connect the account a call needs: records a connect request and
/// answers with the link in the client's form (see the module documentation).
pub async fn ask_to_connect(
    shared: &Shared,
    ctx: &RequestContext<RoleServer>,
    refused: NotConnected<'_>,
) -> Refusal {
    let NotConnected {
        principal,
        connector,
        tool,
        call_id,
        trace,
        failure,
    } = refused;
    let (Some(request), Some(connector)) = (failure.authorization.as_deref(), connector) else {
        return Refusal::Failed(failure.clone());
    };
    if !link_allowed(&request.authorize_url) || request.state.is_empty() {
        tracing::warn!(%connector, "connector sent an unusable authorization link");
        return Refusal::Failed(CallFailure::new(
            shared::wire::ErrorCode::Internal,
            "the connector's authorization link is unusable",
        ));
    }
    let id = secret::generate("");
    let elicitation_id = secret::generate("");
    let now = now_ms();
    let ttl = i64::try_from(request.expires_in_ms)
        .unwrap_or(MAX_TTL_MS)
        .min(MAX_TTL_MS);
    let row = ConnectRow {
        id: id.clone(),
        tenant: principal.tenant.to_string(),
        user_id: principal.user_id.to_string(),
        agent: principal.agent.to_string(),
        connector: connector.to_owned(),
        provider: request.provider.clone(),
        display_name: request.display_name.clone(),
        authorize_url: request.authorize_url.clone(),
        state: request.state.clone(),
        elicitation_id: elicitation_id.clone(),
        created_at: now,
        expires_at: now + ttl,
        completed_at: None,
        outcome: None,
    };
    if shared.store.create_connect(&row).await.is_err() {
        return Refusal::ConnectNotRecorded;
    }
    shared
        .audit
        .submit(AuditRecord {
            time: crate::audit::record::now_rfc3339(),
            kind: Kind::Authorization,
            tenant: row.tenant.clone(),
            gateway: None,
            user: principal.user.to_string(),
            user_id: Some(row.user_id.clone()),
            agent: principal.agent.to_string(),
            connector: Some(row.connector.clone()),
            tool: tool.to_owned(),
            instance: Some(row.provider.clone()),
            target: None,
            decision: None,
            layer: None,
            reason: Some(format!(
                "{} account not connected yet",
                request.display_name
            )),
            outcome: Some("requested".into()),
            duration_ms: None,
            upstream: None,
            arguments: None,
            confirmation: None,
            call_id,
            trace_id: trace.0.to_owned(),
            span_id: trace.1.to_owned(),
            receipt: None,
        })
        .await;
    let url = format!("{}/connect/{id}", shared.options.public_url);
    let message = format!(
        "Connect your {} account so I can act as you there: open the link, sign in and allow access.",
        request.display_name
    );
    super::browser_link::ask(
        shared,
        ctx,
        format!("connect-{}", request.provider),
        BrowserLink {
            message,
            url,
            elicitation_id,
            ttl_ms: ttl,
        },
    )
}
