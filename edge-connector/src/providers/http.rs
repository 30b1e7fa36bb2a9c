//! HTTP to one upstream instance, with the manners a shared enterprise server expects:
//!
//! - **Rate limits.** Every response's `x-ratelimit-*` (GitHub) or `RateLimit-*` (GitLab)
//!   headers are remembered per token and bucket; a bucket known to be empty fails the call
//!   at once with its reset time, without another request. `429`s and secondary limits
//!   (`retry-after`) are waited out only when the wait is short and fits the call's
//!   deadline; otherwise the agent gets a typed "rate limited, retry after" error.
//! - **Retries.** At most `max_retries` more attempts, with exponential backoff and full
//!   jitter, and only where repeating cannot do harm: idempotent requests after a `5xx` or a
//!   lost connection, and any request that provably never left (connect failed). A write
//!   that may have reached the server is never repeated.
//! - **Deadlines.** No attempt outlives the call's deadline.
//! - **Audit and tracing.** Each attempt is recorded as an upstream action of the call and
//!   gets its own client span, whose `traceparent` goes upstream.
//!
//! The decisions themselves (wait, retry, give up) are the pure functions of
//! [`super::retry`]; this module carries them out. It needs from the call only its deadline
//! and trail ([`Scope`]), so it is driven on its own in tests.
//!
//! Tokens are sent in the `Authorization` header and appear nowhere else: not in spans,
//! actions, logs or errors.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use shared::call::CallFailure;
use shared::trace::Attribute;
use shared::wire::{self, ErrorCode};
use url::Url;

use super::log_redirect::{self, Destination};
use super::proxy::{self as upstream_proxy, ProxyAuth, Refused};
use super::retry::{self, Attempt, Bucket, Decision, GiveUp, Loss};
use super::trail::Scope;
use crate::backoff::Backoff;
use crate::config::{ProviderConfig, ProviderKind, Proxy};
use crate::egress::ProxyEnv;

/// A boxed future (the `oauth2` client trait wants a nameable future type).
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Largest response body read.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Remembered rate-limit buckets beyond which the passed ones are forgotten.
const MAX_BUCKETS: usize = 256;
/// First retry delay ceiling.
const RETRY_BASE: Duration = Duration::from_millis(200);
/// Retry delay ceiling.
const RETRY_CAP: Duration = Duration::from_secs(5);

/// Why an HTTP client for an upstream could not be built.
#[derive(Debug, thiserror::Error)]
#[error("provider {provider}: {reason}")]
pub struct ClientError {
    /// The provider instance.
    pub provider: String,
    /// Why.
    pub reason: String,
}

/// An HTTP client for OAuth token endpoints. It owns its (cheaply cloned) client so its
/// futures borrow nothing, which keeps the `oauth2` flows `Send` for any lifetime.
#[derive(Debug, Clone)]
pub struct TokenHttp {
    client: reqwest::Client,
    timeout: Duration,
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp {
    type Error = OAuthTransportError;
    type Future = BoxFuture<'c, Result<oauth2::HttpResponse, Self::Error>>;

    fn call(&'c self, req: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let resp = self
                .client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| OAuthTransportError(e.to_string()))?;
            let resp = read_bounded(resp)
                .await
                .map_err(|e| OAuthTransportError(e.to_string()))?;
            // GitHub answers token errors with 200 and an `error` field; as a 400 they read
            // as the OAuth error responses they are.
            let is_error = resp.status == StatusCode::OK
                && serde_json::from_slice::<serde_json::Value>(&resp.body)
                    .is_ok_and(|v| v.get("error").is_some() && v.get("access_token").is_none());
            let status = if is_error {
                StatusCode::BAD_REQUEST
            } else {
                resp.status
            };
            let mut out = oauth2::http::Response::builder().status(status);
            for (k, v) in &resp.headers {
                out = out.header(k, v);
            }
            out.body(resp.body.to_vec())
                .map_err(|e| OAuthTransportError(e.to_string()))
        })
    }
}

/// The token endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("token endpoint: {0}")]
pub struct OAuthTransportError(String);

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// The route template, for the audit trail and spans (`/repos/{owner}/{repo}/issues`).
    pub route: &'static str,
    /// The path under the API base, with each segment already percent-encoded.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Option<serde_json::Value>,
    /// Form body (OAuth token endpoints).
    pub form: Option<Vec<(&'static str, String)>>,
    /// `Accept`, when not the provider's default.
    pub accept: Option<&'static str>,
    /// Whether repeating the request is harmless (GET, and writes that set a state).
    pub idempotent: bool,
    /// Whether the path is under the web base (OAuth) instead of the API base.
    pub web: bool,
}

impl Request {
    /// A `GET` of `path` (route `route`).
    pub fn get(route: &'static str, path: String) -> Self {
        Self {
            method: Method::GET,
            route,
            path,
            query: Vec::new(),
            body: None,
            form: None,
            accept: None,
            idempotent: true,
            web: false,
        }
    }

    /// A write; `idempotent` says whether it may be repeated.
    pub fn write(
        method: Method,
        route: &'static str,
        path: String,
        body: serde_json::Value,
        idempotent: bool,
    ) -> Self {
        Self {
            method,
            route,
            path,
            query: Vec::new(),
            body: Some(body),
            form: None,
            accept: None,
            idempotent,
            web: false,
        }
    }

    /// Who the token acts as: the same `GET /user` on GitHub and GitLab.
    pub fn current_user() -> Self {
        Self::get("/user", "user".into())
    }

    /// Adds query parameters whose values are present.
    pub fn query(
        mut self,
        params: impl IntoIterator<Item = (&'static str, Option<String>)>,
    ) -> Self {
        self.query
            .extend(params.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        self
    }

    /// Sets `Accept`.
    pub fn accept(mut self, accept: &'static str) -> Self {
        self.accept = Some(accept);
        self
    }
}

/// A response (any status).
#[derive(Debug)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, at most [`MAX_BODY`] bytes.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CallFailure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            CallFailure::new(
                ErrorCode::Unavailable,
                format!("the upstream answered with unexpected JSON: {e}"),
            )
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The upstream's own error message, from the usual JSON error shapes.
    pub fn message(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let m = v
            .get("message")
            .or_else(|| v.get("error_description"))
            .or_else(|| v.get("error"))?;
        let mut text = match m {
            serde_json::Value::String(s) => s.clone(),
            // GitLab validation errors: {"message": {"field": ["is invalid"]}}
            other => other.to_string(),
        };
        // GitHub's 422s say what failed in `errors`: plain messages, or objects with a
        // message or a code on a field.
        let details: Vec<String> = v
            .get("errors")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| {
                if let Some(m) = e.as_str().or_else(|| e.get("message")?.as_str()) {
                    return Some(m.to_owned());
                }
                let field = e.get("field")?.as_str()?;
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("invalid");
                Some(format!("{field} {code}"))
            })
            .collect();
        if !details.is_empty() {
            text = format!("{text}: {}", details.join("; "));
        }
        Some(text.chars().take(300).collect())
    }
}

/// HTTP to one upstream instance.
#[derive(Debug)]
pub struct Upstream {
    /// Provider instance name.
    pub name: String,
    kind: ProviderKind,
    api: Url,
    web: Url,
    /// Replaced when the proxy password changes in the vault.
    client: RwLock<reqwest::Client>,
    timeout: Duration,
    max_retries: u32,
    buckets: Mutex<HashMap<(String, &'static str), Bucket>>,
    /// Hosts job-log downloads may be redirected to besides the upstream's origin.
    log_storage_hosts: Vec<String>,
    /// Extra roots and proxy, for the one-off clients of log-storage downloads.
    certs: Vec<reqwest::Certificate>,
    proxy: Proxy,
    /// The proxy's credentials (`Debug` hides the password).
    proxy_auth: RwLock<Option<ProxyAuth>>,
    /// The proxy variables when the client was built, which `proxy = "env"` follows.
    env: ProxyEnv,
}

/// A client builder with the instance's manners: user agent, no redirects, timeouts,
/// extra roots, proxy (and its credentials).
fn client_builder(
    certs: &[reqwest::Certificate],
    proxy: &Proxy,
    auth: Option<&ProxyAuth>,
    env: &ProxyEnv,
) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("mcp-edge-connector/", env!("CARGO_PKG_VERSION")))
        // Redirects would carry the token to wherever they point; the one redirect the
        // tools expect (job logs) is followed by hand, without the token.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60));
    if !certs.is_empty() {
        builder = builder.tls_certs_merge(certs.iter().cloned());
    }
    upstream_proxy::configure(builder, proxy, auth, env)
}

fn fingerprint(token: &SecretString) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.expose_secret().as_bytes());
    hex::encode(d.as_ref().get(..8).unwrap_or_default())
}

impl Upstream {
    /// A client for the instance `config` describes, authenticating to its proxy with
    /// `proxy_auth` (from the vault) when given.
    pub fn new(
        config: &ProviderConfig,
        proxy_auth: Option<ProxyAuth>,
    ) -> Result<Self, ClientError> {
        let err = |reason: String| ClientError {
            provider: config.name.clone(),
            reason,
        };
        let mut certs: Vec<reqwest::Certificate> = Vec::new();
        if let Some(path) = &config.ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| err(format!("ca_bundle {}: {e}", path.display())))?;
            certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| err(format!("ca_bundle {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(err(format!(
                    "ca_bundle {} holds no certificate",
                    path.display()
                )));
            }
        }
        let env = ProxyEnv::from_process();
        let client = client_builder(&certs, &config.proxy, proxy_auth.as_ref(), &env)
            .map_err(err)?
            .build()
            .map_err(|e| err(e.to_string()))?;
        let mut api = config.api_url.clone();
        if !api.path().ends_with('/') {
            api.set_path(&format!("{}/", api.path()));
        }
        Ok(Self {
            name: config.name.clone(),
            kind: config.kind,
            api,
            web: config.web_url(),
            client: RwLock::new(client),
            timeout: config.timeout,
            max_retries: config.max_retries,
            buckets: Mutex::new(HashMap::new()),
            log_storage_hosts: config.log_storage_hosts.clone(),
            certs,
            proxy: config.proxy.clone(),
            proxy_auth: RwLock::new(proxy_auth),
            env,
        })
    }

    /// The HTTP client (a cheap clone of the current one).
    fn client(&self) -> reqwest::Client {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The proxy's credentials now.
    fn proxy_auth(&self) -> Option<ProxyAuth> {
        self.proxy_auth
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After the proxy refused the credentials held: reads the password again and, when the
    /// vault holds another one, rebuilds the client with it. Says whether it did.
    fn reload_proxy_password(&self) -> bool {
        let Some(fresh) = self.proxy_auth().as_ref().and_then(ProxyAuth::reloaded) else {
            return false;
        };
        let Ok(client) = client_builder(&self.certs, &self.proxy, Some(&fresh), &self.env)
            .and_then(|b| b.build().map_err(|e| e.to_string()))
        else {
            return false;
        };
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        *self.proxy_auth.write().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
        tracing::info!(provider = %self.name, "the proxy refused the password held; using the one now in the vault");
        true
    }

    /// The typed failure of the proxy refusing the request to `url`, if it did: `result`
    /// is the attempt's outcome. A response is the proxy's when it says so
    /// ([`upstream_proxy::is_proxy_answer`]); a failed connection is asked about
    /// ([`upstream_proxy::refusal`]).
    async fn proxy_refusal(
        &self,
        url: &Url,
        result: &Result<Response, reqwest::Error>,
        deadline: Instant,
    ) -> Option<Refused> {
        let hop = upstream_proxy::hop(&self.proxy, &self.env, url)?;
        let auth = self.proxy_auth();
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        match result {
            Ok(resp)
                if url.scheme() == "http"
                    && upstream_proxy::is_proxy_answer(resp.status, &resp.headers) =>
            {
                Some(upstream_proxy::refused(
                    &self.name,
                    &hop,
                    &format!("{host}:{port}"),
                    resp.status.as_u16(),
                    resp.status.canonical_reason().unwrap_or_default(),
                    auth.as_ref(),
                ))
            }
            Err(e) if e.is_connect() => {
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .unwrap_or_default();
                upstream_proxy::refusal(&self.name, &hop, host, port, auth.as_ref(), left).await
            }
            _ => None,
        }
    }

    /// The web base URL (sign-in pages).
    pub fn web_url(&self) -> &Url {
        &self.web
    }

    fn url(&self, req: &Request) -> Result<Url, CallFailure> {
        let base = if req.web { &self.web } else { &self.api };
        let mut url = base
            .join(req.path.trim_start_matches('/'))
            .map_err(|e| CallFailure::new(ErrorCode::InvalidArguments, format!("bad path: {e}")))?;
        if !req.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(req.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    fn bucket_of(req: &Request) -> &'static str {
        if req.route.starts_with("/search/") {
            "search"
        } else {
            "core"
        }
    }

    /// The bucket this request would draw from, if known.
    fn bucket(&self, key: &(String, &'static str)) -> Option<Bucket> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.get(key).copied()
    }

    fn remember(&self, key: (String, &'static str), headers: &HeaderMap) {
        let now = SystemTime::now();
        let Some((name, bucket)) = retry::read_bucket(headers, key.1, now) else {
            return;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // Tokens rotate (every few hours per user): drop buckets that have reset.
            buckets.retain(|_, b| b.reset_at > now);
        }
        buckets.insert((key.0, name), bucket);
    }

    /// The typed failure of giving up on `req` for `reason`; `resp` is the last response,
    /// if there was one.
    fn give_up(&self, req: &Request, reason: GiveUp, resp: Option<&Response>) -> CallFailure {
        const MAYBE_APPLIED: &str =
            "; the request may have been applied, so it was not repeated: check before retrying";
        match reason {
            GiveUp::BucketEmpty { resets_in } => CallFailure::new(
                ErrorCode::RateLimited,
                format!(
                    "{}'s rate limit for this user is used up until it resets in {} s",
                    self.name,
                    resets_in.as_secs()
                ),
            )
            .retry_after(resets_in),
            GiveUp::DeadlinePassed => CallFailure::new(
                ErrorCode::DeadlineExceeded,
                format!("the call's deadline passed before {} answered", self.name),
            ),
            GiveUp::RateLimited { retry_after } => CallFailure::new(
                ErrorCode::RateLimited,
                format!(
                    "{} is rate limiting this user: {}",
                    self.name,
                    resp.map(|r| r.message().unwrap_or_else(|| r.status.to_string()))
                        .unwrap_or_default()
                ),
            )
            .retry_after(retry_after.max(Duration::from_secs(1))),
            GiveUp::ServerError { maybe_applied } => {
                let mut msg = format!(
                    "{} failed with {} ({} {})",
                    self.name,
                    resp.map(|r| r.status.to_string()).unwrap_or_default(),
                    req.method,
                    req.route
                );
                if maybe_applied {
                    msg.push_str(MAYBE_APPLIED);
                }
                CallFailure::new(ErrorCode::Unavailable, msg).retry_after(Duration::from_secs(1))
            }
            GiveUp::Lost {
                loss,
                maybe_applied,
            } => {
                let mut msg = format!(
                    "{} {} ({} {})",
                    self.name,
                    loss.says(),
                    req.method,
                    req.route
                );
                if maybe_applied {
                    msg.push_str(MAYBE_APPLIED);
                }
                CallFailure::new(ErrorCode::Unavailable, msg).retry_after(Duration::from_secs(1))
            }
        }
    }

    /// Sends `req` with `token` (if any), within the call's deadline, recording each
    /// attempt in its trail (`scope`). Returns the final response, whatever its status,
    /// except for rate limits and failures that outlast the retries, which become typed
    /// failures.
    pub async fn send(
        &self,
        scope: Scope<'_>,
        token: Option<&SecretString>,
        req: &Request,
    ) -> Result<Response, CallFailure> {
        let deadline = scope.deadline;
        let url = self.url(req)?;
        let key = (
            token.map(fingerprint).unwrap_or_default(),
            Self::bucket_of(req),
        );
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        let mut attempt: u32 = 0;
        let mut reloaded = false;
        loop {
            attempt += 1;
            let left = retry::before_attempt(
                self.bucket(&key),
                SystemTime::now(),
                Instant::now(),
                deadline,
            )
            .map_err(|reason| self.give_up(req, reason, None))?;
            let span = scope
                .trail
                .client_span(&format!("{} {}", req.method, req.route));
            span.set_attributes(vec![
                Attribute::new("http.request.method", req.method.to_string()),
                Attribute::new("http.route", req.route),
                Attribute::new(
                    "server.address",
                    url.host_str().unwrap_or_default().to_owned(),
                ),
                Attribute::new("mcp_edge.provider", self.name.clone()),
                Attribute::new("http.request.resend_count", i64::from(attempt - 1)),
            ]);
            let mut builder = self
                .client()
                .request(req.method.clone(), url.clone())
                .timeout(self.timeout.min(left))
                .header("traceparent", span.traceparent());
            builder = match (self.kind, req.accept) {
                (_, Some(a)) => builder.header(header::ACCEPT, a),
                (ProviderKind::Github, None) => builder
                    .header(header::ACCEPT, "application/vnd.github+json")
                    .header("X-GitHub-Api-Version", "2022-11-28"),
                (ProviderKind::Gitlab, None) => builder.header(header::ACCEPT, "application/json"),
            };
            if let Some(t) = token {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose_secret()))
                    .map_err(|_| {
                        CallFailure::new(
                            ErrorCode::Internal,
                            "the stored token is not a valid header value",
                        )
                    })?;
                v.set_sensitive(true);
                builder = builder.header(header::AUTHORIZATION, v);
            }
            if let Some(body) = &req.body {
                builder = builder.json(body);
            }
            if let Some(form) = &req.form {
                builder = builder.form(form);
            }
            let started = Instant::now();
            let sent = builder.send().await;
            let result = match sent {
                Ok(r) => read_bounded(r).await,
                Err(e) => Err(e),
            };
            let status = result.as_ref().map_or(0, |r| u32::from(r.status.as_u16()));
            scope.trail.record(
                wire::UpstreamAction {
                    provider: self.name.clone(),
                    method: req.method.to_string(),
                    route: req.route.to_owned(),
                    status,
                    duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    attempt,
                },
                url.host_str().unwrap_or_default(),
            );
            span.set_attributes(vec![Attribute::new(
                "http.response.status_code",
                i64::from(status),
            )]);
            if let Some(refused) = self.proxy_refusal(&url, &result, deadline).await {
                // The proxy answered before the upstream saw anything, so sending again
                // is harmless, writes included; once, with a password changed in the vault.
                if refused.wants_credentials() && !reloaded && self.reload_proxy_password() {
                    reloaded = true;
                    continue;
                }
                span.set_error("proxy refused");
                return Err(refused.failure);
            }
            let attempt = Attempt {
                number: attempt,
                max_retries: self.max_retries,
                idempotent: req.idempotent,
            };
            let (decision, resp) = match result {
                Err(e) => {
                    span.set_error("no response");
                    // Only a failed connect proves the request never reached the server.
                    let loss = Loss {
                        timed_out: e.is_timeout(),
                        never_sent: e.is_connect(),
                    };
                    (retry::after_loss(loss, attempt), None)
                }
                Ok(resp) => {
                    self.remember(key.clone(), &resp.headers);
                    let decision = retry::after_response(
                        resp.status,
                        &resp.headers,
                        || resp.message(),
                        attempt,
                        SystemTime::now(),
                        Instant::now(),
                        deadline,
                    );
                    match decision {
                        Decision::Wait(_) | Decision::GiveUp(GiveUp::RateLimited { .. }) => {
                            span.set_error("rate limited");
                        }
                        Decision::Backoff | Decision::GiveUp(GiveUp::ServerError { .. }) => {
                            span.set_error("server error");
                        }
                        _ => {}
                    }
                    (decision, Some(resp))
                }
            };
            match (decision, resp) {
                (Decision::Proceed, Some(resp)) => return Ok(resp),
                // Without a response there is nothing to proceed with: `after_loss` never
                // says so, and another attempt (bounded by `after_loss`) is the safe reading.
                (Decision::Proceed, None) | (Decision::Backoff, _) => {
                    sleep_within(backoff.next_delay(), deadline).await
                }
                (Decision::Wait(wait), _) => sleep_within(wait, deadline).await,
                (Decision::GiveUp(reason), resp) => {
                    return Err(self.give_up(req, reason, resp.as_ref()));
                }
            }
        }
    }

    /// The HTTP client the `oauth2` crate's flows use: this instance's own (its CA bundle
    /// and proxy), bounded in time and size.
    pub fn token_http(&self) -> TokenHttp {
        TokenHttp {
            client: self.client(),
            timeout: self.timeout,
        }
    }

    /// Follows one redirect (job logs) without credentials: the location is a pre-signed
    /// URL and must not see the user's token. Only to the upstream's origin or a listed
    /// log-storage host whose addresses pass the fence ([`log_redirect`]). Only the last
    /// [`MAX_BODY`] bytes are asked for (`Range: bytes=-N`): the end of a long log says why
    /// a job failed. A store that serves ranges answers `206` with `Content-Range`; one that
    /// does not answers `200` with the whole log, of which the first [`MAX_BODY`] bytes are
    /// read.
    pub async fn fetch_redirect(
        &self,
        scope: Scope<'_>,
        location: &str,
        route: &'static str,
    ) -> Result<Response, CallFailure> {
        let deadline = scope.deadline;
        let url = Url::parse(location)
            .or_else(|_| self.api.join(location))
            .map_err(|_| {
                CallFailure::new(
                    ErrorCode::Unavailable,
                    "the upstream redirected to an invalid location",
                )
            })?;
        let client = match log_redirect::rule(&self.name, &self.api, &self.log_storage_hosts, &url)?
        {
            Destination::Upstream => self.client(),
            Destination::Storage { host, port } => {
                let loopback_ok = log_redirect::on_loopback(&self.api);
                let addrs = log_redirect::resolve(&host, port, loopback_ok, deadline).await?;
                let mut builder = client_builder(
                    &self.certs,
                    &self.proxy,
                    self.proxy_auth().as_ref(),
                    &self.env,
                )
                .map_err(|e| CallFailure::new(ErrorCode::Internal, e))?;
                if let url::Host::Domain(name) = &host {
                    // Connect to the addresses just checked, not to a second lookup's.
                    builder = builder.resolve_to_addrs(name, &addrs);
                }
                builder.build().map_err(|e| {
                    CallFailure::new(
                        ErrorCode::Internal,
                        format!("{}: log download client: {e}", self.name),
                    )
                })?
            }
        };
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_default();
        let started = Instant::now();
        let result = match client
            .get(url.clone())
            .header(reqwest::header::RANGE, format!("bytes=-{MAX_BODY}"))
            .timeout(self.timeout.min(left))
            .send()
            .await
        {
            Ok(r) => read_bounded(r).await,
            Err(e) => Err(e),
        };
        scope.trail.record(
            wire::UpstreamAction {
                provider: self.name.clone(),
                method: "GET".into(),
                route: route.to_owned(),
                status: result.as_ref().map_or(0, |r| u32::from(r.status.as_u16())),
                duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                attempt: 1,
            },
            url.host_str().unwrap_or_default(),
        );
        if let Some(refused) = self.proxy_refusal(&url, &result, deadline).await {
            return Err(refused.failure);
        }
        result.map_err(|_| {
            CallFailure::new(
                ErrorCode::Unavailable,
                format!("{} log download failed", self.name),
            )
        })
    }
}

async fn read_bounded(mut r: reqwest::Response) -> Result<Response, reqwest::Error> {
    let status = r.status();
    let headers = r.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..chunk.len().min(room)).unwrap_or_default());
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(Response {
        status,
        headers,
        body: Bytes::from(body),
    })
}

async fn sleep_within(d: Duration, deadline: Instant) {
    let until = (Instant::now() + d).min(deadline);
    tokio::time::sleep_until(until.into()).await;
}

/// The typed failure of a response that is not a success, for tools to return.
pub fn failure(provider: &str, resp: &Response) -> CallFailure {
    let upstream = resp.message().unwrap_or_else(|| resp.status.to_string());
    match resp.status {
        StatusCode::NOT_FOUND => CallFailure::new(
            ErrorCode::NotFound,
            format!("{provider}: not found, or not visible to this user ({upstream})"),
        ),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => CallFailure::new(
            ErrorCode::Forbidden,
            format!("{provider} refused this user: {upstream}"),
        ),
        StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::CONFLICT
        | StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::BAD_REQUEST => CallFailure::new(
            ErrorCode::Rejected,
            format!(
                "{provider} rejected the request ({}): {upstream}",
                resp.status.as_u16()
            ),
        ),
        s => CallFailure::new(
            ErrorCode::Unavailable,
            format!("{provider} answered {s}: {upstream}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use shared::trace::{Kind as SpanKind, Tracing};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::providers::trail::Trail;

    /// A loopback server answering each connection with the next of `statuses` (empty
    /// body, connection closed), and a client for it with `max_retries`.
    async fn upstream_answering(statuses: &'static [u16], max_retries: u32) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in statuses {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(head.as_bytes()).await;
            }
        });
        let config = ProviderConfig {
            name: "ghes".into(),
            kind: ProviderKind::Github,
            api_url: Url::parse(&format!("http://{addr}/api/v3")).unwrap(),
            web_url: None,
            ca_bundle: None,
            proxy: Proxy::None,
            proxy_user: None,
            timeout: Duration::from_secs(10),
            max_retries,
            oauth: None,
            log_storage_hosts: Vec::new(),
        };
        Upstream::new(&config, None).unwrap()
    }

    fn trail() -> Trail {
        let tracing = Arc::new(Tracing::new("test", "0", None).unwrap());
        let span = tracing.start("call", SpanKind::Server, None);
        Trail::new(tracing, span)
    }

    #[tokio::test]
    async fn a_read_is_retried_after_a_server_error_and_each_attempt_recorded() {
        let upstream = upstream_answering(&[503, 200], 2).await;
        let trail = trail();
        let scope = Scope {
            deadline: Instant::now() + Duration::from_secs(30),
            trail: &trail,
        };
        let resp = upstream
            .send(scope, None, &Request::get("/user", "user".into()))
            .await
            .unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        let seen: Vec<(u32, u32)> = trail.take().iter().map(|a| (a.status, a.attempt)).collect();
        assert_eq!(seen, vec![(503, 1), (200, 2)]);
    }

    #[tokio::test]
    async fn a_write_is_not_repeated_after_a_server_error() {
        let upstream = upstream_answering(&[502, 200], 2).await;
        let trail = trail();
        let scope = Scope {
            deadline: Instant::now() + Duration::from_secs(30),
            trail: &trail,
        };
        let req = Request::write(
            Method::POST,
            "/repos/{owner}/{repo}/issues",
            "repos/acme/w/issues".into(),
            serde_json::json!({"title": "t"}),
            false,
        );
        let failure = upstream.send(scope, None, &req).await.unwrap_err();
        assert_eq!(failure.code, ErrorCode::Unavailable);
        assert!(
            failure.message.contains("may have been applied"),
            "{}",
            failure.message
        );
        assert_eq!(trail.take().len(), 1);
    }

    /// A proxy on loopback answering every connection with `answer`, counting them.
    async fn proxy_answering(answer: &'static [u8]) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(answer).await;
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn a_connect_refused_by_the_proxy_names_the_proxy_and_its_answer_without_retries() {
        for (answer, said) in [
            (
                &b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..],
                "407 Proxy Authentication Required",
            ),
            // tinyproxy's answer to wrong credentials, which the HTTP client reports only
            // as an unsuccessful tunnel.
            (
                &b"HTTP/1.0 401 Unauthorized\r\n\r\n"[..],
                "401 Unauthorized",
            ),
            (&b"HTTP/1.1 403 Forbidden\r\n\r\n"[..], "403 Forbidden"),
        ] {
            let (port, seen) = proxy_answering(answer).await;
            let config = ProviderConfig {
                name: "ghes".into(),
                kind: ProviderKind::Github,
                api_url: Url::parse("https://ghes.corp/api/v3").unwrap(),
                web_url: None,
                ca_bundle: None,
                proxy: Proxy::Url(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
                proxy_user: None,
                timeout: Duration::from_secs(10),
                max_retries: 3,
                oauth: None,
                log_storage_hosts: Vec::new(),
            };
            let upstream = Upstream::new(&config, None).unwrap();
            let trail = trail();
            let scope = Scope {
                deadline: Instant::now() + Duration::from_secs(30),
                trail: &trail,
            };
            let failure = upstream
                .send(scope, None, &Request::get("/user", "user".into()))
                .await
                .unwrap_err();
            assert_eq!(failure.code, ErrorCode::Internal);
            assert!(
                failure.message.starts_with(&format!(
                    "ghes: the proxy 127.0.0.1:{port} refused the request to ghes.corp:443 with {said}"
                )),
                "{}",
                failure.message
            );
            // The request's CONNECT and the one that read the answer back: no retries.
            assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
        }
    }

    #[test]
    fn validation_failures_say_what_failed() {
        let resp = |body: serde_json::Value| Response {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        };
        let r = resp(serde_json::json!({
            "message": "Validation Failed",
            "errors": [
                {"resource": "PullRequest", "code": "custom", "message": "No commits between main and stale"},
                {"resource": "PullRequest", "field": "head", "code": "invalid"},
            ],
        }));
        assert_eq!(
            r.message().as_deref(),
            Some("Validation Failed: No commits between main and stale; head invalid")
        );
        let r = resp(serde_json::json!({
            "message": "Unprocessable Entity",
            "errors": ["Can not approve your own pull request"],
        }));
        assert_eq!(
            r.message().as_deref(),
            Some("Unprocessable Entity: Can not approve your own pull request")
        );
        let r = resp(serde_json::json!({"message": {"title": ["is too long"]}}));
        assert_eq!(r.message().as_deref(), Some(r#"{"title":["is too long"]}"#));
    }
}
