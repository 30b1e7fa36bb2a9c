//! A scripted browser for sign-in flows: cookies, redirects, the forms of the runtime's and
//! the identity provider's pages.

use anyhow::{Context, Result};
use reqwest::blocking::Client;

use crate::oauth_client::{OAuthClient, REDIRECT, pkce, query_of};

/// A browser: keeps cookies, follows redirects until one leaves for the MCP client's
/// redirect URI.
pub fn browser(ca: &[u8]) -> Result<Client> {
    Ok(Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca)?])
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().as_str().starts_with(REDIRECT) || attempt.previous().len() > 20 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()?)
}

/// The hidden inputs of a page's form (`name`, `value`).
pub fn hidden_inputs(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\"")
        .skip(1)
        .filter_map(|rest| {
            let attr = |a: &str| {
                rest.split(&format!("{a}=\""))
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .map(str::to_owned)
            };
            Some((attr("name")?, attr("value")?))
        })
        .collect()
}

/// The action of the first form on a page, as an absolute URL.
pub fn form_action(page: &str, origin: &str) -> Option<String> {
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())?;
    Some(if action.starts_with("http") {
        action.to_owned()
    } else {
        format!("{origin}{action}")
    })
}

/// Signs `login` in on the provider's login page (`login`) and allows its consent page;
/// returns the answer that follows, back at the runtime.
pub fn at_the_provider(
    b: &Client,
    login: reqwest::blocking::Response,
    issuer: &str,
    user: &str,
) -> Result<reqwest::blocking::Response> {
    let login_page = login.text()?;
    let action = form_action(&login_page, issuer).context(login_page.clone())?;
    let mut fields = hidden_inputs(&login_page);
    fields.extend([
        ("login".to_owned(), user.to_owned()),
        ("password".to_owned(), "anything".to_owned()),
    ]);
    let consent = b.post(action).form(&fields).send()?;
    let consent_page = consent.text()?;
    let confirm = form_action(&consent_page, issuer).context(consent_page.clone())?;
    Ok(b.post(confirm).form(&hidden_inputs(&consent_page)).send()?)
}

/// Signs `user` in at the tenant's identity provider through the runtime's authorization
/// endpoint for the MCP resource at `resource`, allows the client, and returns the access
/// token the MCP client gets.
pub fn sign_in(
    oauth: &OAuthClient,
    ca: &[u8],
    issuer: &str,
    resource: &str,
    user: &str,
) -> Result<String> {
    let (_, tokens) = tokens_via_provider(oauth, ca, issuer, resource, user)?;
    tokens["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

/// Like [`sign_in`]: the client id registered for it and the runtime's whole token
/// response.
pub fn tokens_via_provider(
    oauth: &OAuthClient,
    ca: &[u8],
    issuer: &str,
    resource: &str,
    user: &str,
) -> Result<(String, serde_json::Value)> {
    let client = oauth.register()?;
    let (verifier, challenge) = pkce();
    let b = browser(ca)?;
    let login = b
        .get(oauth.authorize_url(&client, &challenge, resource, &[]))
        .send()?;
    let ours = at_the_provider(&b, login, issuer, user)?;
    let page = ours.text()?;
    let origin = resource
        .split("/t/")
        .next()
        .context("resource without a tenant path")?;
    let allow = form_action(&page, origin).context(page.clone())?;
    let fields = hidden_inputs(page.split("</form>").next().unwrap_or_default());
    let back = b.post(allow).form(&fields).send()?;
    let location = back
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no redirect to the client")?
        .to_owned();
    let code = query_of(&location)
        .get("code")
        .cloned()
        .context(location.clone())?;
    let (status, tokens) = oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("client_id", &client),
        ("code_verifier", &verifier),
    ])?;
    anyhow::ensure!(status == 200, "token endpoint answered {status}: {tokens}");
    Ok((client, tokens))
}

/// Signs `user` in on the provider's login page (`login`), allows the consent page if the
/// provider shows one, and returns the text of the page the browser ends on.
fn log_in_again(
    b: &Client,
    login: reqwest::blocking::Response,
    issuer: &str,
    user: &str,
) -> Result<String> {
    anyhow::ensure!(
        login.url().as_str().starts_with(issuer),
        "not sent to the provider: {}",
        login.url()
    );
    let login_page = login.text()?;
    let action = form_action(&login_page, issuer).context(login_page.clone())?;
    let mut fields = hidden_inputs(&login_page);
    fields.extend([
        ("login".to_owned(), user.to_owned()),
        ("password".to_owned(), "anything".to_owned()),
    ]);
    let next = b.post(action).form(&fields).send()?;
    let done = if next.url().as_str().starts_with(issuer) {
        let consent = next.text()?;
        let confirm = form_action(&consent, issuer).context(consent.clone())?;
        b.post(confirm).form(&hidden_inputs(&consent)).send()?
    } else {
        next
    };
    Ok(done.text()?)
}

/// Opens an approval link in a new browser, checks the page shows `expect`, approves by
/// signing `user` in at the provider at `issuer`, and returns the page it ends on.
pub fn approve(ca: &[u8], url: &str, issuer: &str, user: &str, expect: &str) -> Result<String> {
    let b = browser(ca)?;
    let page = b.get(url).send()?.text()?;
    anyhow::ensure!(
        page.contains(expect),
        "the approval page does not show {expect}: {page}"
    );
    let login = b.get(format!("{url}/sign-in")).send()?;
    log_in_again(&b, login, issuer, user)
}

/// Opens a sign-in-again link in a new browser and signs `user` in at the provider at
/// `issuer`; returns the page it ends on.
pub fn sign_in_again(ca: &[u8], url: &str, issuer: &str, user: &str) -> Result<String> {
    let b = browser(ca)?;
    let login = b.get(url).send()?;
    log_in_again(&b, login, issuer, user)
}
