//! The upstream instances (GitHub Enterprise Server, GitLab) the connector acts on, each with
//! its HTTP client and, when configured, its OAuth client for acting on behalf of users.
//!
//! - [`http`]: requests with rate-limit manners, bounded retries, deadlines, audit and
//!   tracing.
//! - [`log_redirect`]: where job-log downloads may be redirected (listed hosts, address
//!   fence).
//! - [`retry`]: the rate-limit and retry decisions, as pure functions of the answer and the
//!   time.
//! - [`oauth`]: users connecting their upstream accounts; token refresh.
//! - [`path`]: escaping arguments into request paths.
//! - [`proxy`]: each instance's proxy, its credentials from the vault, and its refusals.
//! - [`link`]: the `Link` header's pagination links.
//! - [`page`]: the page list tools return, and the page a cursor names.
//! - [`trail`]: a call's spans and audit records, and its deadline, as requests need them.
//! - [`github`] and [`gitlab`]: each API's paths, pagination and payloads (their tools are
//!   in [`crate::tools`]).
//!
//! Every request carries the calling user's own token, so the upstream enforces the user's
//! native permissions on top of the policy's.

pub mod github;
pub mod gitlab;
pub mod http;
pub mod link;
pub mod log_redirect;
pub mod oauth;
pub mod page;
pub mod path;
pub mod proxy;
pub mod retry;
pub mod trail;

use std::sync::Arc;

use reqwest::StatusCode;
use secrecy::SecretString;
use shared::call::CallFailure;
use shared::wire::{self, ErrorCode};

use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::vault::{EntryKind, EntryName, Vault};
use http::{Request, Response, Upstream};
use oauth::{OAuthClient, vault_failure};
use trail::Scope;

/// Why the providers cannot be set up (the connector refuses to start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// An HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] http::ClientError),
    /// An OAuth setting is invalid.
    #[error("provider {provider}: oauth: {reason}")]
    OAuth {
        /// The provider.
        provider: String,
        /// Why.
        reason: String,
    },
    /// The vault is needed and unusable.
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// A proxy user's password is missing from the vault (or cannot be read).
    #[error(transparent)]
    ProxyAuth(#[from] proxy::ProxyAuthError),
}

/// One upstream instance.
#[derive(Debug)]
pub struct Instance {
    /// Its configuration.
    pub config: ProviderConfig,
    /// Its HTTP client.
    pub http: Upstream,
    /// Its OAuth client, when users connect their own accounts.
    pub oauth: Option<OAuthClient>,
    vault: Arc<Vault>,
    /// "GitHub Enterprise at host" / "GitLab at host".
    pub display_name: String,
}

impl Instance {
    fn client_secret(&self) -> Result<Option<SecretString>, CallFailure> {
        let name = EntryName::client_secret(&self.config.name)
            .map_err(|_| CallFailure::new(ErrorCode::Internal, "bad provider name"))?;
        Ok(self
            .vault
            .get(&name)
            .map_err(vault_failure)?
            .map(|e| e.secret))
    }

    fn must_connect(&self, user: &str) -> CallFailure {
        match &self.oauth {
            Some(o) => o.required(user, &self.display_name),
            None => CallFailure::new(
                ErrorCode::Forbidden,
                format!(
                    "there is no {} token for {user} on this connector; its operator can store one with `edge-connector vault set user/{}/{user}`",
                    self.display_name, self.config.name
                ),
            ),
        }
    }

    /// `user`'s token; `rejected` is the one the upstream just refused, if any.
    async fn token(
        &self,
        user: &str,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, CallFailure> {
        let name = EntryName::user_token(&self.config.name, user).map_err(|_| {
            CallFailure::new(
                ErrorCode::InvalidArguments,
                "the user name cannot name a vault entry",
            )
        })?;
        let token = match &self.oauth {
            Some(o) => {
                let secret = self.client_secret()?;
                o.token(&self.http, &self.vault, secret.as_ref(), user, rejected)
                    .await?
            }
            // An admin-provided token: nothing to refresh.
            None if rejected.is_some() => None,
            None => self
                .vault
                .get(&name)
                .map_err(vault_failure)?
                .map(|e| e.secret),
        };
        token.ok_or_else(|| self.must_connect(user))
    }

    /// Sends `req` as `user` (with their token), within the call's deadline. A `401` is told apart:
    /// if the token itself is dead it is refreshed (or the user is asked to connect again)
    /// and the request sent once more, which is safe because a `401` is refused before
    /// anything happens; otherwise (GitLab answers `401` to some permission refusals) the
    /// response is returned as it is.
    pub async fn send_as(
        &self,
        scope: Scope<'_>,
        user: &str,
        req: &Request,
    ) -> Result<Response, CallFailure> {
        let token = self.token(user, None).await?;
        let resp = self.http.send(scope, Some(&token), req).await?;
        if resp.status != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let probe = self
            .http
            .send(scope, Some(&token), &Request::current_user())
            .await?;
        if probe.status != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let token = self.token(user, Some(&token)).await?;
        self.http.send(scope, Some(&token), req).await
    }

    /// Like [`Instance::send_as`], and fails with the typed failure of any non-success.
    pub async fn ok_as(
        &self,
        scope: Scope<'_>,
        user: &str,
        req: &Request,
    ) -> Result<Response, CallFailure> {
        let resp = self.send_as(scope, user, req).await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(http::failure(&self.config.name, &resp))
        }
    }

    /// The account `user`'s token acts as, read as `T` (each API's user object).
    pub async fn whoami<T: serde::de::DeserializeOwned>(
        &self,
        scope: Scope<'_>,
        user: &str,
    ) -> Result<T, CallFailure> {
        self.ok_as(scope, user, &Request::current_user())
            .await?
            .json()
    }

    /// Finishes a user's connection (the upstream's code came back through the runtime).
    pub async fn finish_authorization(
        &self,
        user: &str,
        state: &str,
        code: &str,
    ) -> Result<String, CallFailure> {
        let Some(o) = &self.oauth else {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "this provider has no OAuth client",
            ));
        };
        let secret = self.client_secret()?.ok_or_else(|| {
            CallFailure::new(
                ErrorCode::Internal,
                format!(
                    "the vault has no provider/{}/client_secret; the connector's operator must store it",
                    self.config.name
                ),
            )
        })?;
        o.finish(&self.http, &self.vault, &secret, user, state, code)
            .await?;
        Ok(format!("connected {user}'s {} account", self.display_name))
    }
}

/// All upstream instances.
#[derive(Debug, Default)]
pub struct Providers {
    instances: Vec<Arc<Instance>>,
}

impl Providers {
    /// The instances `config` names. `runtime` is the runtime's HTTPS endpoint
    /// (`host:port`), where users come back from consent pages by default.
    pub fn new(
        config: &Config,
        runtime: &str,
        vault: Option<Arc<Vault>>,
    ) -> Result<Self, ProviderError> {
        if config.providers.is_empty() {
            return Ok(Self::default());
        }
        let vault = match vault {
            Some(v) => v,
            None => Arc::new(Vault::open(config)?),
        };
        let mut instances = Vec::with_capacity(config.providers.len());
        for p in &config.providers {
            let read = |vault: &Vault, name: &EntryName| {
                vault
                    .get(name)
                    .map(|e| e.map(|e| e.secret))
                    .map_err(|e| e.to_string())
            };
            let auth = proxy::auth_for(p, |name| read(&vault, name))?.map(|auth| {
                // The proxy may come to refuse it: the password is read again then.
                let (vault, name) = (vault.clone(), EntryName::proxy_password(&p.name));
                auth.reloading(std::sync::Arc::new(move || match &name {
                    Ok(name) => read(&vault, name),
                    Err(e) => Err(e.to_string()),
                }))
            });
            let http = Upstream::new(p, auth)?;
            let host = p.api_url.host_str().unwrap_or_default().to_owned();
            let display_name = match p.kind {
                ProviderKind::Github => format!("GitHub Enterprise at {host}"),
                ProviderKind::Gitlab => format!("GitLab at {host}"),
            };
            let oauth = match &p.oauth {
                None => None,
                Some(o) => {
                    let redirect = match &o.redirect_uri {
                        Some(u) => u.clone(),
                        None => url::Url::parse(&format!("https://{runtime}/connect/callback"))
                            .map_err(|e| ProviderError::OAuth {
                                provider: p.name.clone(),
                                reason: format!(
                                    "redirect URI from the runtime endpoint {runtime}: {e}"
                                ),
                            })?,
                    };
                    Some(
                        OAuthClient::new(&p.name, p.kind, &http.web_url().clone(), o, redirect)
                            .map_err(|reason| ProviderError::OAuth {
                                provider: p.name.clone(),
                                reason,
                            })?,
                    )
                }
            };
            instances.push(Arc::new(Instance {
                config: p.clone(),
                http,
                oauth,
                vault: vault.clone(),
                display_name,
            }));
        }
        Ok(Self { instances })
    }

    /// The names of the instances of `kind`, in configuration order.
    pub fn names(&self, kind: ProviderKind) -> Vec<String> {
        self.instances
            .iter()
            .filter(|i| i.config.kind == kind)
            .map(|i| i.config.name.clone())
            .collect()
    }

    /// The instance of `kind` a call names (`instance` argument), or the only one.
    pub fn pick(
        &self,
        kind: ProviderKind,
        name: Option<&str>,
    ) -> Result<&Arc<Instance>, CallFailure> {
        let mut of_kind = self.instances.iter().filter(|i| i.config.kind == kind);
        match name {
            Some(n) => of_kind.find(|i| i.config.name == n).ok_or_else(|| {
                CallFailure::new(
                    ErrorCode::InvalidArguments,
                    format!("this connector has no {} instance named {n}", kind.prefix()),
                )
            }),
            None => {
                let first = of_kind.next();
                match (first, of_kind.next()) {
                    (Some(i), None) => Ok(i),
                    (None, _) => Err(CallFailure::new(
                        ErrorCode::UnknownTool,
                        format!("this connector has no {} instance", kind.prefix()),
                    )),
                    (Some(_), Some(_)) => Err(CallFailure::new(
                        ErrorCode::InvalidArguments,
                        format!(
                            "this connector has several {} instances: name one with \"instance\"",
                            kind.prefix()
                        ),
                    )),
                }
            }
        }
    }

    /// The users' connections at every instance (their entries in the vault, never a
    /// secret), by provider and user.
    pub fn connections(&self) -> Result<Vec<wire::UpstreamConnection>, CallFailure> {
        let Some(vault) = self.instances.first().map(|i| &i.vault) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<wire::UpstreamConnection> = vault
            .list()
            .map_err(vault_failure)?
            .into_iter()
            .filter_map(|e| {
                let (provider, user) = e.name.strip_prefix("user/")?.split_once('/')?;
                self.instances
                    .iter()
                    .any(|i| i.config.name == provider)
                    .then(|| wire::UpstreamConnection {
                        provider: provider.to_owned(),
                        user: user.to_owned(),
                        account: e.account.clone(),
                        source: match e.kind {
                            EntryKind::UserToken => "oauth",
                            EntryKind::Generic => "admin",
                        }
                        .to_owned(),
                        refreshable: e.has_refresh,
                        expires_at_ms: e.expires_at,
                        connected_at_ms: e.created_at,
                        updated_at_ms: e.updated_at,
                    })
            })
            .collect();
        found.sort_by(|a, b| (&a.provider, &a.user).cmp(&(&b.provider, &b.user)));
        Ok(found)
    }

    /// Forgets `user`'s connection at instance `provider` (their tokens leave the vault; the
    /// next call asks them to connect again); whether there was one.
    pub fn revoke_connection(&self, provider: &str, user: &str) -> Result<bool, CallFailure> {
        let Some(instance) = self.instances.iter().find(|i| i.config.name == provider) else {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "this connector has no such provider instance",
            ));
        };
        let name = EntryName::user_token(provider, user).map_err(|_| {
            CallFailure::new(
                ErrorCode::InvalidArguments,
                "the user cannot name a vault entry",
            )
        })?;
        instance.vault.remove(&name).map_err(vault_failure)
    }

    /// Finishes the connection a user started with `cb.state`, at whichever instance
    /// issued that state.
    pub async fn authorize(&self, cb: &wire::AuthorizeCallback) -> Result<String, CallFailure> {
        let user = cb
            .caller
            .as_ref()
            .map(|c| c.user.as_str())
            .unwrap_or_default();
        let Some(instance) = self
            .instances
            .iter()
            .find(|i| i.oauth.as_ref().is_some_and(|o| o.owns(&cb.state)))
        else {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "unknown or expired authorization; start again from the tool call",
            ));
        };
        instance
            .finish_authorization(user, &cb.state, &cb.code)
            .await
    }
}
