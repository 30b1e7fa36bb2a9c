//! The connect pages: where a user connects their GitHub Enterprise or GitLab account after
//! a tool call asked them to ([`crate::mcp::upstream_account`]).
//!
//! ```text
//! GET /connect/{id}        the link from the MCP client. The browser must be signed in as
//!                          the user the request was made for (else it signs in first, and
//!                          a different user is refused): a link forwarded to someone else
//!                          cannot connect their account to this user's calls. Then 303 to
//!                          the upstream's consent page.
//! GET /connect/callback    the upstream sends the browser back with `code` and `state`;
//!                          the same browser check again, then code and state go through the
//!                          tunnel to the connector that made the request, which exchanges
//!                          the code inside the customer's network. The code is never stored.
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use shared::identity::{ConnectorId, TenantId};
use shared::wire;

use crate::audit::AuditLog;
use crate::audit::record::{AuditRecord, Kind};
use crate::html::text_page;
use crate::mcp::shared_state::elicitations::Elicitations;
use crate::oauth::{OAuth, authorize, browser};
use crate::store::connect::ConnectRow;
use crate::tunnel::Registry;

/// How long the connector gets to exchange a code.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the connect pages need.
#[derive(Debug)]
pub struct ConnectContext {
    /// Store, sign-in.
    pub oauth: Arc<OAuth>,
    /// The tunnels.
    pub registry: Arc<Registry>,
    /// The audit trail.
    pub audit: AuditLog,
    /// Sessions to tell when a user is done.
    pub elicitations: Arc<Elicitations>,
}

fn unavailable() -> Response {
    text_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "Try again in a moment.",
    )
}

/// Is this browser signed in as the request's user? `Err` is the page to show instead.
async fn check_browser(
    cx: &ConnectContext,
    headers: &HeaderMap,
    row: &ConnectRow,
    return_to: Option<&str>,
) -> Result<(), Response> {
    match browser::signed_in(&cx.oauth.store, headers).await {
        Ok(Some((tenant, user))) if tenant == row.tenant && user == row.user_id => Ok(()),
        Ok(Some(_)) => {
            tracing::warn!(connect = %row.id, "connect link opened by another signed-in user");
            Err(text_page(
                StatusCode::FORBIDDEN,
                "This link is not yours",
                "It was made for another user. Ask your agent for a new link from your own session.",
            ))
        }
        Ok(None) => match return_to {
            Some(to) => Err(authorize::browser_sign_in(
                &cx.oauth,
                headers,
                &row.tenant,
                to,
                authorize::CONNECT_SIGN_IN,
            )
            .await),
            None => Err(text_page(
                StatusCode::FORBIDDEN,
                "Not signed in",
                "This browser is not signed in as the user who asked to connect. Open the link from your agent again.",
            )),
        },
        Err(_) => Err(unavailable()),
    }
}

/// `GET /connect/{id}`.
pub async fn start(
    State(cx): State<Arc<ConnectContext>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return text_page(
            StatusCode::NOT_FOUND,
            "Unknown link",
            "This link is not valid.",
        );
    }
    let row = match cx.oauth.store.open_connect(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return text_page(
                StatusCode::NOT_FOUND,
                "Link expired",
                "This link has expired or was used already. Call the tool again for a new one.",
            );
        }
        Err(_) => return unavailable(),
    };
    if let Err(resp) = check_browser(&cx, &headers, &row, Some(&format!("/connect/{id}"))).await {
        return resp;
    }
    Redirect::to(&row.authorize_url).into_response()
}

/// What the upstream sends back.
#[derive(Debug, Deserialize)]
pub struct UpstreamAnswer {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// `GET /connect/callback`.
pub async fn callback(
    State(cx): State<Arc<ConnectContext>>,
    Query(answer): Query<UpstreamAnswer>,
    headers: HeaderMap,
) -> Response {
    let Some(state) = answer.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return text_page(
            StatusCode::BAD_REQUEST,
            "Missing state",
            "The answer from the server is incomplete.",
        );
    };
    // Check the browser before spending the request, so a stranger's browser cannot burn it.
    let row = match cx.oauth.store.connect_by_state(&state).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return text_page(
                StatusCode::NOT_FOUND,
                "Link expired",
                "This authorization expired or was finished already. Call the tool again.",
            );
        }
        Err(_) => return unavailable(),
    };
    if let Err(resp) = check_browser(&cx, &headers, &row, None).await {
        return resp;
    }
    let Ok(Some(row)) = cx
        .oauth
        .store
        .complete_connect(
            &state,
            if answer.code.is_some() {
                "exchanging"
            } else {
                "declined"
            },
        )
        .await
    else {
        return text_page(
            StatusCode::CONFLICT,
            "Already done",
            "This authorization was finished already.",
        );
    };
    let Some(code) = answer.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        record(&cx, &row, "declined", answer.error.as_deref()).await;
        return text_page(
            StatusCode::OK,
            "Not connected",
            &format!(
                "You did not allow access to {}. Nothing was changed.",
                row.display_name
            ),
        );
    };
    let (Ok(tenant), Ok(connector)) = (
        row.tenant.parse::<TenantId>(),
        row.connector.parse::<ConnectorId>(),
    ) else {
        return unavailable();
    };
    // The connector stores the grant under the user the provider proves, not our word.
    let Ok(user_proof) = cx.oauth.store.user_proof(&row.tenant, &row.user_id).await else {
        return unavailable();
    };
    let outcome = cx
        .registry
        .authorize(
            &tenant,
            &connector,
            wire::AuthorizeCallback {
                call_id: cx.registry.new_call_id(),
                caller: Some(wire::Caller {
                    tenant: row.tenant.clone(),
                    user: row.user_id.clone(),
                    agent: row.agent.clone(),
                }),
                state,
                code,
                user_proof: user_proof.unwrap_or_default(),
            },
            EXCHANGE_TIMEOUT,
        )
        .await;
    match outcome {
        Ok(_) => {
            let _ = cx
                .oauth
                .store
                .set_connect_outcome(&row.id, "connected")
                .await;
            record(&cx, &row, "connected", None).await;
            cx.elicitations.complete(&row.elicitation_id).await;
            text_page(
                StatusCode::OK,
                "Connected",
                &format!(
                    "Your {} account is connected. Go back to your agent: it can go on now.",
                    row.display_name
                ),
            )
        }
        Err(f) => {
            let _ = cx.oauth.store.set_connect_outcome(&row.id, "failed").await;
            record(&cx, &row, "failed", Some(&f.message)).await;
            text_page(
                StatusCode::BAD_GATEWAY,
                "Not connected",
                &format!(
                    "Connecting failed: {}. Call the tool again to retry.",
                    f.message
                ),
            )
        }
    }
}

async fn record(cx: &ConnectContext, row: &ConnectRow, outcome: &str, reason: Option<&str>) {
    // The record names the user as they are called now; a user removed meanwhile is named
    // by id only.
    let name = match cx.oauth.store.user(&row.tenant, &row.user_id).await {
        Ok(Some(u)) => u.name,
        _ => String::new(),
    };
    cx.audit
        .submit(AuditRecord {
            user: name,
            user_id: Some(row.user_id.clone()),
            agent: row.agent.clone(),
            connector: Some(row.connector.clone()),
            instance: Some(row.provider.clone()),
            reason: reason.map(str::to_owned),
            outcome: Some(outcome.to_owned()),
            ..AuditRecord::event(
                Kind::Authorization,
                &row.tenant,
                &format!("connect {}", row.provider),
            )
        })
        .await;
}
