//! Asking the user to approve a call at their identity provider, where a connector's local
//! policy wants it (issue 17: approvals the runtime cannot forge), or to sign in there again
//! when the connector finds the proof of who they are too old. The connector refused the
//! call with a challenge; the runtime stores it and sends the user to its approval page
//! ([`crate::approve`]), which shows what the call does and signs them in again at the
//! provider with the connector's nonce. The ID token that comes back goes with the user's
//! next identical call; the connector checks it, and the runtime cannot make one.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use shared::call::CallFailure;
use shared::clock::now_ms;
use shared::wire::ErrorCode;

use super::browser_link::{self, BrowserLink};
use super::refusal::Refusal;
use super::shared_state::Shared;
use crate::identity::Principal;
use crate::oauth::secret;
use crate::store::approval::ApprovalRow;

/// Longest an approval request stays open.
const MAX_TTL_MS: i64 = 10 * 60 * 1000;

/// Longest nonce and summary accepted from a connector.
const MAX_NONCE: usize = 256;
const MAX_SUMMARY: usize = 8 * 1024;

/// A call a connector refused until the user approves it.
#[derive(Debug, Clone, Copy)]
pub struct Unapproved<'a> {
    /// Who called.
    pub principal: &'a Principal,
    /// The tool.
    pub tool: &'a str,
    /// Its arguments as the runtime sent them (the retry must send the same).
    pub arguments_json: &'a str,
    /// The refusal, with the connector's challenge.
    pub failure: &'a CallFailure,
}

/// Records the approval request and answers with the approval page's link.
pub async fn ask_to_approve(
    shared: &Shared,
    ctx: &RequestContext<RoleServer>,
    refused: Unapproved<'_>,
) -> Refusal {
    let Some(challenge) = refused.failure.approval.as_deref() else {
        return Refusal::Failed(refused.failure.clone());
    };
    let printable = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_control() && c != '\n')
    };
    let tenant = refused.principal.tenant.as_str();
    let issuer = shared
        .store
        .idp(tenant)
        .await
        .ok()
        .flatten()
        .map(|i| i.issuer);
    if !printable(&challenge.nonce, MAX_NONCE) || !printable(&challenge.summary, MAX_SUMMARY) {
        return Refusal::Failed(CallFailure::new(
            ErrorCode::Internal,
            "the connector's approval request is unusable",
        ));
    }
    if issuer.as_deref().map(|i| i.trim_end_matches('/'))
        != Some(challenge.issuer.trim_end_matches('/'))
    {
        return Refusal::Failed(CallFailure::new(
            ErrorCode::Denied,
            format!(
                "the connector wants this call approved at {}, which is not this tenant's identity provider",
                challenge.issuer
            ),
        ));
    }
    let now = now_ms();
    let ttl = i64::try_from(challenge.expires_in_ms)
        .unwrap_or(MAX_TTL_MS)
        .min(MAX_TTL_MS);
    let row = ApprovalRow {
        id: secret::generate(""),
        tenant: tenant.to_owned(),
        user_id: refused.principal.user_id.to_string(),
        tool: refused.tool.to_owned(),
        arguments_json: refused.arguments_json.to_owned(),
        nonce: challenge.nonce.clone(),
        summary: challenge.summary.clone(),
        created_at: now,
        expires_at: now + ttl,
        approved: false,
    };
    if shared.store.create_approval(&row).await.is_err() {
        return Refusal::Failed(CallFailure::new(
            ErrorCode::Unavailable,
            "the approval request could not be recorded; retry",
        ));
    }
    let message = format!(
        "{} Open the link, check what the call will do, and approve it by signing in at your identity provider; then call the tool again.",
        refused.failure.message
    );
    browser_link::ask(
        shared,
        ctx,
        format!("approve-{}", refused.tool),
        BrowserLink {
            message,
            url: format!("{}/approve/{}", shared.options.public_url, row.id),
            elicitation_id: secret::generate(""),
            ttl_ms: ttl,
        },
    )
}

/// A connector wants a fresher proof of who the user is: send them to sign in again at the
/// tenant's identity provider (for a tenant without one, the refusal as it is).
pub async fn ask_to_sign_in(
    shared: &Shared,
    ctx: &RequestContext<RoleServer>,
    principal: &Principal,
    failure: &CallFailure,
) -> Refusal {
    let tenant = principal.tenant.as_str();
    if !matches!(shared.store.idp(tenant).await, Ok(Some(_))) {
        return Refusal::Failed(failure.clone());
    }
    browser_link::ask(
        shared,
        ctx,
        "sign-in".to_owned(),
        BrowserLink {
            message: format!(
                "{} Open the link and sign in at your identity provider; then call the tool again.",
                failure.message
            ),
            url: format!("{}/sign-in-again/{tenant}", shared.options.public_url),
            elicitation_id: secret::generate(""),
            ttl_ms: MAX_TTL_MS,
        },
    )
}
