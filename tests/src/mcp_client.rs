//! A small MCP client for the suites: stateless 2026-07-28 requests (`tools/list`,
//! `tools/call`) over HTTPS with a user's bearer token and an agent key, as a real client
//! sends them, returning the JSON-RPC answers.

use anyhow::{Context, Result};
use base64::Engine;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::Runtime;
use crate::oauth_client::{OAuthClient, field};

/// A signed-in MCP client of one gateway.
#[derive(Debug)]
pub struct McpClient {
    /// The signed-in user's stable id (the access token's subject).
    pub user_id: String,
    http: Client,
    url: String,
    token: String,
    agent_key: String,
    next_id: std::cell::Cell<i64>,
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    })
}

/// The JSON-RPC message with `id` in a JSON or SSE body.
pub fn message(body: &str, id: i64) -> Option<Value> {
    let candidates: Vec<&str> = if body.trim_start().starts_with('{') {
        vec![body]
    } else {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .collect()
    };
    candidates
        .into_iter()
        .filter_map(|c| serde_json::from_str::<Value>(c).ok())
        .find(|v| v["id"] == id)
}

impl McpClient {
    /// Signs `user` (a local user with `secret`) in to `tenant`'s `gateway` of `rt` and
    /// acts through the agent whose key is `agent_key`.
    pub fn sign_in(
        rt: &Runtime,
        tenant: &str,
        gateway: &str,
        user: &str,
        secret: &str,
        agent_key: &str,
    ) -> Result<Self> {
        let base = format!("https://{}", rt.https_endpoint());
        let url = format!("{base}/t/{tenant}/g/{gateway}/mcp");
        let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
        let tokens = OAuthClient::new(base, &ca)?.access_token(&url, user, secret)?;
        let token = tokens["access_token"].as_str().context("access token")?;
        Self::with_token(rt, tenant, gateway, token, agent_key)
    }

    /// A client of `tenant`'s `gateway` of `rt` holding the access token `token` (from any
    /// sign-in), acting through the agent whose key is `agent_key`.
    pub fn with_token(
        rt: &Runtime,
        tenant: &str,
        gateway: &str,
        token: &str,
        agent_key: &str,
    ) -> Result<Self> {
        let url = format!("https://{}/t/{tenant}/g/{gateway}/mcp", rt.https_endpoint());
        let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
        let claims = token
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .context("access token claims")?;
        Ok(Self {
            user_id: claims["sub"].as_str().unwrap_or_default().to_owned(),
            http: Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            url,
            token: token.to_owned(),
            agent_key: agent_key.to_owned(),
            next_id: std::cell::Cell::new(1),
        })
    }

    /// Creates a local user and an agent, then signs in: the usual first lines of a suite.
    pub fn new_user(
        rt: &Runtime,
        tenant: &str,
        gateway: &str,
        user: &str,
        groups: &str,
        agent: &str,
        role: &str,
    ) -> Result<Self> {
        let u = crate::run_ok(
            rt.cli()
                .args(["user", "add", "--tenant", tenant, user, "--groups", groups]),
        );
        let a = crate::run_ok(
            rt.cli()
                .args(["agent", "create", "--tenant", tenant, agent, "--role", role]),
        );
        Self::sign_in(
            rt,
            tenant,
            gateway,
            user,
            &field(&u, "(shown once):"),
            &field(&a, "X-MCP-Agent-Key):"),
        )
    }

    /// Another client with the same token and agent, for calls from another thread.
    pub fn fork(&self) -> Self {
        Self {
            user_id: self.user_id.clone(),
            http: self.http.clone(),
            url: self.url.clone(),
            token: self.token.clone(),
            agent_key: self.agent_key.clone(),
            next_id: std::cell::Cell::new(1),
        }
    }

    /// Sends one request; returns the JSON-RPC answer (`result` or `error`).
    pub fn request(&self, method: &str, mut params: Value) -> Result<Value> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        if let Some(p) = params.as_object_mut() {
            p.insert("_meta".into(), meta());
        }
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("X-MCP-Agent-Key", &self.agent_key)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = params.get("name").and_then(|n| n.as_str()) {
            req = req.header("mcp-name", name);
        }
        let body = req
            .body(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
            )
            .send()?
            .text()?;
        message(&body, id).with_context(|| format!("no answer to {method}: {body}"))
    }

    /// `tools/call`: the `result` (with `isError`, `structuredContent`, `content`), or the
    /// JSON-RPC error as `{"error": ...}`.
    pub fn call(&self, tool: &str, arguments: Value) -> Result<Value> {
        let v = self.request("tools/call", json!({"name": tool, "arguments": arguments}))?;
        Ok(match v.get("result") {
            Some(r) => r.clone(),
            None => json!({"error": v.get("error").cloned().unwrap_or(v)}),
        })
    }

    /// The names `tools/list` shows (all pages).
    pub fn tool_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let v = self.request("tools/list", params)?;
            let result = v.get("result").with_context(|| v.to_string())?;
            for t in result["tools"].as_array().into_iter().flatten() {
                names.extend(t["name"].as_str().map(str::to_owned));
            }
            match result["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(names),
            }
        }
    }

    /// The full `tools/list` entries (first page).
    pub fn tools(&self) -> Result<Vec<Value>> {
        let v = self.request("tools/list", json!({}))?;
        Ok(v["result"]["tools"].as_array().cloned().unwrap_or_default())
    }
}
