//! The authorization endpoint and user sign-in.
//!
//! `GET /oauth/authorize` checks the client and its exact redirect URI first: until both are
//! known good, errors are shown to the user and never redirected (an open redirector would
//! otherwise hand codes to an attacker). After that, errors go back to the client as the
//! specification says. The request must carry a PKCE S256 challenge and a `resource` that
//! names a gateway of this runtime; the resulting token is bound to that gateway alone.
//!
//! Sign-in is at the tenant's OpenID Connect identity provider when one is set
//! (`cloud-runtime idp set`, see [`super::idp`]), otherwise with the tenant's local users
//! (`cloud-runtime user add`). The pending request is kept in the store, not in process
//! memory, so any replica can finish it, and it is bound to the browser that started it
//! ([`super::browser::binding`]). Local users consent on the sign-in form itself; users
//! signed in by the identity provider (possibly silently, by single sign-on) are shown a
//! consent page naming the client and where it receives the code before any code is issued.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use shared::clock::now_ms;
use shared::identity::UserId;
use url::Url;

use super::{CODE_TTL_MS, OAuth, PENDING_TTL_MS, browser, secret};
use crate::html::{escape, page, page_answering_to};
use crate::identity::valid_name;
use crate::store::oauth::PendingRow;

fn user_error(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Sign-in request refused",
        &format!("<p>{}</p>", escape(message)),
    )
}

fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => user_error("the client's redirect URI is invalid"),
    }
}

fn with_cookie(mut resp: Response, cookie: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// The page for a sign-in form, callback or consent that arrives in another browser than
/// the one that started the sign-in.
fn other_browser() -> Response {
    user_error(
        "this sign-in was started in another browser; start it again from your MCP client or link, in this browser",
    )
}

/// `GET /oauth/authorize`.
pub async fn authorize(
    State(o): State<Arc<OAuth>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return user_error(&format!("parameter {k} appears more than once"));
        }
    }
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id") else {
        return user_error("client_id is missing");
    };
    let client = if super::client_metadata::is_document_url(client_id) {
        // A client ID metadata document: fetched (fenced) at every authorization, so a
        // client's changed redirect URIs take effect and a withdrawn one stops working.
        match o.metadata.fetch(client_id).await {
            Ok(c) => {
                if o.store.upsert_client(&c).await.is_err() {
                    return unavailable();
                }
                c
            }
            Err(e) => return user_error(&e.to_string()),
        }
    } else {
        match o.store.client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return user_error("unknown client"),
            Err(_) => return unavailable(),
        }
    };
    let Some(redirect_uri) =
        get("redirect_uri").filter(|r| client.redirect_uris.iter().any(|u| u == r))
    else {
        return user_error("redirect_uri is missing or not registered for this client");
    };
    let state = get("state");
    let fail = |error: &str, description: &str| {
        let mut p = vec![
            ("error", error),
            ("error_description", description),
            ("iss", o.issuer.as_str()),
        ];
        if let Some(s) = state {
            p.push(("state", s));
        }
        redirect_with(redirect_uri, &p)
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = get("code_challenge") else {
        return fail(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        );
    };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail(
            "invalid_request",
            "code_challenge is not a base64url SHA-256",
        );
    }
    let Some(resource) = get("resource") else {
        return fail(
            "invalid_target",
            "resource is required: the MCP gateway URL the token is for",
        );
    };
    let Some((tenant, gateway)) = o.parse_resource(resource) else {
        return fail("invalid_target", "resource is not a gateway of this server");
    };
    if !matches!(
        o.store.gateway(tenant.as_str(), gateway.as_str()).await,
        Ok(Some(_))
    ) {
        return fail("invalid_target", "no such gateway");
    }
    let idp = match o.store.idp(tenant.as_str()).await {
        Ok(idp) => idp,
        Err(_) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "<p>Try again.</p>",
            );
        }
    };
    let Ok((browser_hash, binding)) = browser::binding(&headers) else {
        return unavailable();
    };
    let idp_leg = idp
        .as_ref()
        .map(|_| (secret::generate(""), secret::generate("")));
    let pending = PendingRow {
        id: secret::generate(""),
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: challenge.to_owned(),
        state: state.map(str::to_owned),
        resource: resource.to_owned(),
        tenant: tenant.to_string(),
        expires_at: now_ms() + PENDING_TTL_MS,
        nonce: idp_leg.as_ref().map(|(nonce, _)| nonce.clone()),
        idp_verifier: idp_leg.as_ref().map(|(_, verifier)| verifier.clone()),
        return_to: None,
        browser_hash: Some(browser_hash),
        signed_in_user_id: None,
    };
    if o.store.create_pending(&pending).await.is_err() {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "<p>Try again.</p>",
        );
    }
    if let (Some(idp), Some((nonce, verifier))) = (idp, idp_leg) {
        // The tenant signs users in at its own identity provider.
        let challenge = secret::s256(&verifier);
        return match o
            .idp
            .authorization_url(
                &idp,
                &pending.id,
                &nonce,
                &challenge,
                &o.idp_redirect_uri(),
                false,
            )
            .await
        {
            Ok(url) => with_cookie(Redirect::to(&url).into_response(), binding),
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "identity provider unavailable");
                fail(
                    "temporarily_unavailable",
                    "the identity provider cannot be reached",
                )
            }
        };
    }
    with_cookie(
        login_form(
            &pending,
            client.client_name.as_deref().unwrap_or(&client.client_id),
            None,
        ),
        binding,
    )
}

fn login_form(p: &PendingRow, client_name: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page_answering_to(
        if error.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        },
        "Sign in",
        &format!(
            "{intro}{error}\
             <form method=\"post\" action=\"/oauth/login\">\
             <input type=\"hidden\" name=\"pending\" value=\"{id}\">\
             <label>User <input name=\"username\" autocomplete=\"username\"></label>\
             <label>Secret <input name=\"secret\" type=\"password\" autocomplete=\"current-password\"></label>\
             <button type=\"submit\">{button}</button></form>",
            intro = match &p.return_to {
                // `client_name` is the reason the browser is asked to sign in.
                Some(_) => format!("<p>{}</p>", escape(client_name)),
                None => format!(
                    "<p><b>{}</b> asks to use <code>{}</code> on your behalf.</p>",
                    escape(client_name),
                    escape(&p.resource)
                ),
            },
            button = if p.return_to.is_some() {
                "Sign in"
            } else {
                "Allow"
            },
            id = escape(&p.id),
        ),
        // Without a return path the form's answer redirects to the MCP client.
        p.return_to.is_none().then_some(p.redirect_uri.as_str()),
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct Login {
    pending: String,
    username: String,
    secret: String,
}

/// `POST /oauth/login`: checks the local user and issues the authorization code.
pub async fn login(
    State(o): State<Arc<OAuth>>,
    headers: HeaderMap,
    Form(form): Form<Login>,
) -> Response {
    let pending = match o.store.pending(&form.pending).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return user_error(
                "this sign-in request has expired or was already used; start again from your MCP client",
            );
        }
        Err(_) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "<p>Try again.</p>",
            );
        }
    };
    if pending.idp_verifier.is_some() {
        // This request belongs to the tenant's identity provider: a local secret must not
        // stand in for it (the pending id travels through the browser as the IdP's state).
        return user_error("this tenant signs users in at its identity provider");
    }
    if !browser::is_bound(&headers, pending.browser_hash.as_deref()) {
        return other_browser();
    }
    let user = o
        .store
        .check_user(
            &pending.tenant,
            form.username.trim(),
            &secret::hash(form.secret.trim()),
        )
        .await
        .ok()
        .flatten();
    let Some(user) = user else {
        let name = match pending.return_to {
            Some(_) => Some(CONNECT_SIGN_IN.to_owned()),
            None => o
                .store
                .client(&pending.client_id)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.client_name),
        };
        return login_form(
            &pending,
            name.as_deref().unwrap_or(&pending.client_id),
            Some("unknown user or wrong secret"),
        );
    };
    finish_sign_in(&o, &pending, &user.id).await
}

/// The user `user` signed in for `pending`: the browser gets a session, and goes back to
/// the connect page that sent it, or to the MCP client with our authorization code.
async fn finish_sign_in(o: &OAuth, pending: &PendingRow, user: &UserId) -> Response {
    let mut resp = match &pending.return_to {
        Some(to) => match o.store.take_pending(&pending.id).await {
            Ok(Some(_)) => Redirect::to(to).into_response(),
            Ok(None) => return user_error("this sign-in request was already used"),
            Err(_) => return unavailable(),
        },
        None => issue_code(o, &pending.id, user).await,
    };
    if resp.status().is_redirection() {
        match super::browser::start(&o.store, &pending.tenant, user).await {
            Ok(cookie) => {
                resp.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Err(e) => tracing::warn!(error = %e, "could not start a browser session"),
        }
    }
    resp
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "<p>Try again.</p>",
    )
}

/// Why a connect page asks the browser to sign in.
pub const CONNECT_SIGN_IN: &str =
    "Sign in, so this page can check that the link is yours before it sends you on.";

/// Signs the browser in to `tenant` (at its identity provider, or with a local user's
/// secret), then sends it to `return_to`, a path of this runtime.
pub async fn browser_sign_in(
    o: &OAuth,
    headers: &HeaderMap,
    tenant: &str,
    return_to: &str,
    why: &str,
) -> Response {
    start_sign_in(
        o,
        headers,
        tenant,
        return_to,
        why,
        None,
        secret::generate(""),
    )
    .await
}

/// Where a connector sends a user whose proof of identity is too old: the browser signs in
/// again at the tenant's identity provider, whatever session it has there, and the user's
/// calls carry the new ID token from then on.
pub async fn fresh_sign_in(
    o: &OAuth,
    headers: &HeaderMap,
    tenant: &str,
    return_to: &str,
) -> Response {
    match o.store.idp(tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => return user_error("this tenant has no identity provider to sign in at"),
        Err(_) => return unavailable(),
    }
    let pending_id = secret::generate("");
    start_sign_in(
        o,
        headers,
        tenant,
        return_to,
        "",
        Some(Fresh::SignIn),
        pending_id,
    )
    .await
}

/// Sends the browser to `tenant`'s identity provider to sign in again, whatever session it
/// has there, with the connector's `nonce`: the ID token that comes back approves one call
/// ([`crate::store::approval`]). `pending_id` names the sign-in; then to `return_to`.
pub async fn approval_sign_in(
    o: &OAuth,
    headers: &HeaderMap,
    tenant: &str,
    return_to: &str,
    nonce: &str,
    pending_id: String,
) -> Response {
    match o.store.idp(tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return user_error("this tenant has no identity provider to approve the call at");
        }
        Err(_) => return unavailable(),
    }
    start_sign_in(
        o,
        headers,
        tenant,
        return_to,
        "",
        Some(Fresh::Approval(nonce)),
        pending_id,
    )
    .await
}

/// A sign-in the user must make now at the provider, whatever session they have there.
#[derive(Debug, Clone, Copy)]
enum Fresh<'a> {
    /// To renew the proof of who they are.
    SignIn,
    /// To approve one call: the connector's nonce.
    Approval(&'a str),
}

async fn start_sign_in(
    o: &OAuth,
    headers: &HeaderMap,
    tenant: &str,
    return_to: &str,
    why: &str,
    fresh: Option<Fresh<'_>>,
    pending_id: String,
) -> Response {
    let idp = match o.store.idp(tenant).await {
        Ok(idp) => idp,
        Err(_) => return unavailable(),
    };
    let Ok((browser_hash, binding)) = browser::binding(headers) else {
        return unavailable();
    };
    let idp_leg = idp.as_ref().map(|_| {
        (
            match fresh {
                Some(Fresh::Approval(nonce)) => nonce.to_owned(),
                _ => secret::generate(""),
            },
            secret::generate(""),
        )
    });
    let pending = PendingRow {
        id: pending_id,
        client_id: String::new(),
        redirect_uri: String::new(),
        code_challenge: String::new(),
        state: None,
        resource: String::new(),
        tenant: tenant.to_string(),
        expires_at: now_ms() + PENDING_TTL_MS,
        nonce: idp_leg.as_ref().map(|(nonce, _)| nonce.clone()),
        idp_verifier: idp_leg.as_ref().map(|(_, verifier)| verifier.clone()),
        return_to: Some(return_to.to_owned()),
        browser_hash: Some(browser_hash),
        signed_in_user_id: None,
    };
    if o.store.create_pending(&pending).await.is_err() {
        return unavailable();
    }
    if let (Some(idp), Some((nonce, verifier))) = (idp, idp_leg) {
        let challenge = secret::s256(&verifier);
        return match o
            .idp
            .authorization_url(
                &idp,
                &pending.id,
                &nonce,
                &challenge,
                &o.idp_redirect_uri(),
                fresh.is_some(),
            )
            .await
        {
            Ok(url) => with_cookie(Redirect::to(&url).into_response(), binding),
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "identity provider unavailable");
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "<p>The identity provider cannot be reached. Try again.</p>",
                )
            }
        };
    }
    with_cookie(login_form(&pending, why, None), binding)
}

/// Turns the pending authorization into our authorization code for `user` and sends the
/// browser back to the MCP client with it.
async fn issue_code(o: &OAuth, pending_id: &str, user: &UserId) -> Response {
    let code = secret::generate("mcpcode_");
    match o
        .store
        .complete_pending(pending_id, &secret::hash(&code), user, CODE_TTL_MS)
        .await
    {
        Ok(Some(p)) => {
            let mut params = vec![("code", code.as_str()), ("iss", o.issuer.as_str())];
            if let Some(s) = p.state.as_deref() {
                params.push(("state", s));
            }
            redirect_with(&p.redirect_uri, &params)
        }
        Ok(None) => user_error("this sign-in request was already used"),
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "<p>Try again.</p>",
        ),
    }
}

/// The identity provider's answer.
#[derive(Debug, Deserialize)]
pub struct IdpAnswer {
    state: Option<String>,
    code: Option<String>,
}

/// `GET /oauth/idp/callback`: the user is back from the identity provider. Validates the ID
/// token, records the user's groups, and issues our authorization code to the MCP client.
pub async fn idp_callback(
    State(o): State<Arc<OAuth>>,
    headers: HeaderMap,
    Query(answer): Query<IdpAnswer>,
) -> Response {
    let Some(state) = answer.state.as_deref() else {
        return user_error("the identity provider's answer has no state");
    };
    let pending = match o.store.pending(state).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return user_error(
                "this sign-in request has expired or was already used; start again from your MCP client",
            );
        }
        Err(_) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "<p>Try again.</p>",
            );
        }
    };
    let (Some(nonce), Some(verifier)) = (pending.nonce.as_deref(), pending.idp_verifier.as_deref())
    else {
        return user_error("this sign-in request did not go to an identity provider");
    };
    if !browser::is_bound(&headers, pending.browser_hash.as_deref()) {
        return other_browser();
    }
    let back = |error: &str, description: &str| {
        let mut p = vec![
            ("error", error),
            ("error_description", description),
            ("iss", o.issuer.as_str()),
        ];
        if let Some(s) = pending.state.as_deref() {
            p.push(("state", s));
        }
        redirect_with(&pending.redirect_uri, &p)
    };
    let Some(code) = answer.code.as_deref() else {
        return back(
            "access_denied",
            "sign-in at the identity provider did not complete",
        );
    };
    let idp = match o.store.idp(&pending.tenant).await {
        Ok(Some(idp)) => idp,
        _ => {
            return back(
                "server_error",
                "the tenant's identity provider is no longer configured",
            );
        }
    };
    let signed_in = match o
        .idp
        .finish(&idp, code, verifier, &o.idp_redirect_uri(), nonce)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(tenant = %pending.tenant, error = %e, "identity provider sign-in refused");
            return back(
                "access_denied",
                "the identity provider's answer could not be verified",
            );
        }
    };
    if !valid_name(&signed_in.user) {
        return back(
            "access_denied",
            "the identity provider's user name is not usable here",
        );
    }
    let groups: Vec<String> = signed_in
        .groups
        .into_iter()
        .filter(|g| valid_name(g))
        .collect();
    let user_id = match o
        .store
        .upsert_idp_user(
            &pending.tenant,
            &signed_in.user,
            &signed_in.subject,
            &groups,
        )
        .await
    {
        Ok(Some(id)) => id,
        Ok(None) => {
            tracing::warn!(tenant = %pending.tenant, user = %signed_in.user, "identity provider sign-in refused: the user name belongs to another account");
            return back(
                "access_denied",
                "this user name belongs to another account here; ask an administrator",
            );
        }
        Err(_) => return back("server_error", "could not record the sign-in"),
    };
    let refresh = signed_in.refresh_token.as_ref().map(|t| t.expose());
    if o.store
        .set_idp_session(
            &pending.tenant,
            &user_id,
            refresh,
            signed_in.id_token.expose(),
        )
        .await
        .is_err()
    {
        return back("server_error", "could not record the sign-in");
    }
    // A sign-in started to approve a call: its ID token is the approval (only when the
    // user who signed in is the one who must approve).
    if o.store
        .complete_approval(&pending.id, user_id.as_str(), signed_in.id_token.expose())
        .await
        .is_err()
    {
        return unavailable();
    }
    if pending.return_to.is_some() {
        // A connect page's sign-in: no client to consent to.
        return finish_sign_in(&o, &pending, &user_id).await;
    }
    match o.store.set_pending_user(&pending.id, &user_id).await {
        Ok(true) => consent_page(&o, &pending, &signed_in.user).await,
        Ok(false) => user_error("this sign-in request was already used"),
        Err(_) => unavailable(),
    }
}

/// Asks the user whether the MCP client may act for them on the gateway.
async fn consent_page(o: &OAuth, pending: &PendingRow, user: &str) -> Response {
    let client_name = o
        .store
        .client(&pending.client_id)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.client_name);
    let receiver = Url::parse(&pending.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let id = escape(&pending.id);
    page_answering_to(
        StatusCode::OK,
        "Allow access?",
        &format!(
            "<p>Signed in as <b>{user}</b>.</p>\
             <p><b>{name}</b> (client <code>{client}</code>) asks to use <code>{resource}</code> on your behalf. \
             It receives its authorization at <code>{receiver}</code>.</p>\
             <p>Allow only if you started this from your own MCP client.</p>\
             <form method=\"post\" action=\"/oauth/consent\">\
             <input type=\"hidden\" name=\"consent\" value=\"{id}\">\
             <button type=\"submit\">Allow</button></form>\
             <form method=\"post\" action=\"/oauth/consent/deny\">\
             <input type=\"hidden\" name=\"consent\" value=\"{id}\">\
             <button type=\"submit\">Deny</button></form>",
            user = escape(user),
            name = escape(client_name.as_deref().unwrap_or("An MCP client")),
            client = escape(&pending.client_id),
            resource = escape(&pending.resource),
            receiver = escape(&receiver),
        ),
        Some(&pending.redirect_uri),
    )
}

/// The consent form.
#[derive(Debug, Deserialize)]
pub struct Consent {
    consent: String,
}

/// The pending authorization a consent form answers, if this browser started it and its
/// user signed in.
async fn consented(
    o: &OAuth,
    headers: &HeaderMap,
    id: &str,
) -> Result<(PendingRow, UserId), Response> {
    let pending = match o.store.pending(id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(user_error(
                "this sign-in request has expired or was already used; start again from your MCP client",
            ));
        }
        Err(_) => return Err(unavailable()),
    };
    if !browser::is_bound(headers, pending.browser_hash.as_deref()) {
        return Err(other_browser());
    }
    let user = pending
        .signed_in_user_id
        .as_deref()
        .and_then(|id| UserId::parse(id).ok());
    match user {
        Some(user) if pending.return_to.is_none() => Ok((pending, user)),
        _ => Err(user_error(
            "this sign-in request is not waiting for consent",
        )),
    }
}

/// `POST /oauth/consent`: the user allowed the client; issue its code.
pub async fn consent(
    State(o): State<Arc<OAuth>>,
    headers: HeaderMap,
    Form(form): Form<Consent>,
) -> Response {
    match consented(&o, &headers, &form.consent).await {
        Ok((pending, user)) => finish_sign_in(&o, &pending, &user).await,
        Err(page) => page,
    }
}

/// `POST /oauth/consent/deny`: the user refused; the client hears `access_denied`.
pub async fn deny(
    State(o): State<Arc<OAuth>>,
    headers: HeaderMap,
    Form(form): Form<Consent>,
) -> Response {
    if let Err(page) = consented(&o, &headers, &form.consent).await {
        return page;
    }
    match o.store.take_pending(&form.consent).await {
        Ok(Some(p)) => {
            let mut params = vec![
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
                ("iss", o.issuer.as_str()),
            ];
            if let Some(s) = p.state.as_deref() {
                params.push(("state", s));
            }
            redirect_with(&p.redirect_uri, &params)
        }
        Ok(None) => user_error("this sign-in request was already used"),
        Err(_) => unavailable(),
    }
}
