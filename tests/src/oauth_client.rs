//! A minimal OAuth client for the suites: registers, runs the authorization code flow with
//! PKCE as a browser would (signing in on the runtime's page), and exchanges the code.

use std::collections::HashMap;

use anyhow::{Context, Result};
use base64::Engine;
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The redirect URI the suites register (nothing listens there; the flow reads the
/// `Location` header instead of following it).
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!("v{}", hex::encode(rand_bytes()));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (
        verifier,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
    )
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b
}

/// The query parameters of a URL.
pub fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A client of the runtime's OAuth endpoints.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// HTTP client trusting the runtime CA, not following redirects.
    pub http: Client,
    /// `https://host:port`.
    pub base: String,
}

impl OAuthClient {
    /// A client for the runtime at `base`, trusting `ca_pem`.
    pub fn new(base: String, ca_pem: &[u8]) -> Result<Self> {
        // A browser keeps cookies: the runtime's sign-in session is one.
        let http = Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?])
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()?;
        Ok(Self { http, base })
    }

    /// Registers a public client with [`REDIRECT`]; returns its id.
    pub fn register(&self) -> Result<String> {
        let r: Value = self
            .http
            .post(format!("{}/oauth/register", self.base))
            .json(&json!({"redirect_uris": [REDIRECT], "client_name": "e2e client"}))
            .send()?
            .json()?;
        r["client_id"]
            .as_str()
            .map(str::to_owned)
            .context("client_id")
    }

    /// The authorization URL; `extra` overrides (or, with an empty value, drops) parameters.
    pub fn authorize_url(
        &self,
        client: &str,
        challenge: &str,
        resource: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
            ("resource", resource),
        ];
        params.retain(|(k, _)| !extra.iter().any(|(ek, _)| ek == k));
        params.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("{}/oauth/authorize?{query}", self.base)
    }

    /// Opens the authorization URL and returns the pending sign-in id from the form.
    pub fn open_sign_in(&self, url: &str) -> Result<String> {
        let page = self.http.get(url).send()?.text()?;
        page.split("name=\"pending\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(str::to_owned)
            .context(page)
    }

    /// Submits the sign-in form; returns the response.
    pub fn submit_sign_in(
        &self,
        pending: &str,
        user: &str,
        secret: &str,
    ) -> Result<reqwest::blocking::Response> {
        Ok(self
            .http
            .post(format!("{}/oauth/login", self.base))
            .form(&[("pending", pending), ("username", user), ("secret", secret)])
            .send()?)
    }

    /// Runs authorize and sign-in; returns the redirect's query parameters.
    pub fn sign_in(
        &self,
        client: &str,
        challenge: &str,
        resource: &str,
        user: &str,
        secret: &str,
    ) -> Result<HashMap<String, String>> {
        let pending = self.open_sign_in(&self.authorize_url(client, challenge, resource, &[]))?;
        let resp = self.submit_sign_in(&pending, user, secret)?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("no redirect after sign-in")?;
        Ok(query_of(location))
    }

    /// Posts to the token endpoint.
    pub fn token(&self, form: &[(&str, &str)]) -> Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .form(form)
            .send()?;
        Ok((resp.status().as_u16(), resp.json()?))
    }

    /// The whole flow: register, sign in as `user`, exchange; returns the token response.
    pub fn access_token(&self, resource: &str, user: &str, secret: &str) -> Result<Value> {
        let client = self.register()?;
        let (verifier, challenge) = pkce();
        let q = self.sign_in(&client, &challenge, resource, user, secret)?;
        let code = q.get("code").context("no code")?;
        let (status, tokens) = self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client),
            ("code_verifier", &verifier),
        ])?;
        anyhow::ensure!(status == 200, "token endpoint: {tokens}");
        Ok(tokens)
    }
}

/// The value after `label` on the last line that has it (for CLI output such as
/// "agent key (shown once; ...): KEY").
pub fn field(out: &str, label: &str) -> String {
    out.lines()
        .filter_map(|l| l.split_once(label).map(|(_, v)| v.trim().to_owned()))
        .next_back()
        .unwrap_or_default()
}
