//! The proxy an upstream's requests go through (`proxy` of a `[[provider]]`: none by
//! default, `env`, or a URL), and its Basic authentication.
//!
//! ```text
//!  connector ──TCP──▶ proxy.corp:3128 ──TCP──▶ ghes.corp:443
//!     CONNECT ghes.corp:443                           (https upstream: a tunnel)
//!     GET http://127.0.0.1:9000/api/v3/user           (http upstream, loopback only: forwarded)
//!     Proxy-Authorization: Basic base64(user:password)   (when proxy_user is set)
//! ```
//!
//! The user is `proxy_user`; the password lives only in the vault entry
//! `provider/<name>/proxy_password`, read when the providers are set up (and again when the
//! proxy refuses it, so a changed password needs no restart), held as a [`SecretString`]
//! and handed to the HTTP client for that header alone. No `Debug`, error or report of this
//! module shows it.
//!
//! A proxy that refuses is told apart from the upstream, so an agent and an operator read
//! "the proxy refused" rather than a GHES failure: the HTTP client reports a refused
//! `CONNECT` only as a failed connection (407 as "proxy authorization required", anything
//! else as "unsuccessful"), so [`refusal`] asks the proxy once more with the connector's own
//! `CONNECT` client to learn its answer; a forwarded plain-http request gets the proxy's
//! answer as a response, which [`is_proxy_answer`] recognises.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use shared::call::CallFailure;
use shared::wire::ErrorCode;
use url::Url;

use crate::config::{ProviderConfig, Proxy};
use crate::connect_proxy::{self as connect_proxy, ProxyError, ProxyRoute};
use crate::egress::{ProxyEnv, Route};
use crate::vault::EntryName;

/// Longest wait for the proxy's answer when asking why it refused.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a proxy password again (from the vault), for when the proxy refuses the one held.
pub type PasswordSource = Arc<dyn Fn() -> Result<Option<SecretString>, String> + Send + Sync>;

/// The Basic credentials for a provider's proxy. `Debug` shows the user, never the
/// password.
#[derive(Clone)]
pub struct ProxyAuth {
    user: String,
    password: SecretString,
    /// The vault entry the password came from, for errors.
    entry: String,
    /// Where the password is read again, if anywhere.
    source: Option<PasswordSource>,
}

impl fmt::Debug for ProxyAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAuth")
            .field("user", &self.user)
            .field("password", &format_args!("<vault entry {}>", self.entry))
            .finish()
    }
}

impl ProxyAuth {
    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The same credentials, whose password is read again from `source` by
    /// [`ProxyAuth::reloaded`].
    pub fn reloading(self, source: PasswordSource) -> Self {
        Self {
            source: Some(source),
            ..self
        }
    }

    /// The credentials with the password `source` holds now, when it holds another one.
    pub fn reloaded(&self) -> Option<Self> {
        let fresh = (self.source.as_ref()?)().ok().flatten()?;
        (fresh.expose_secret() != self.password.expose_secret()).then(|| Self {
            password: fresh,
            ..self.clone()
        })
    }
}

/// A proxy's refusal of an upstream request: its status, and the tool's failure.
#[derive(Debug)]
pub struct Refused {
    /// The proxy's HTTP status.
    pub status: u16,
    /// The typed failure naming the proxy and its answer.
    pub failure: CallFailure,
}

impl Refused {
    /// Whether the proxy wants (other) credentials: 407, or tinyproxy's 401.
    pub fn wants_credentials(&self) -> bool {
        matches!(self.status, 401 | 407)
    }
}

/// Why a provider's proxy credentials cannot be had (the connector refuses to start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyAuthError {
    /// The operator's fault: `proxy_user` without its password in the vault.
    #[error(
        "provider {provider}: proxy_user {user:?} is set but the vault has no entry {entry}; store the proxy password with `edge-connector vault set {entry}`"
    )]
    PasswordMissing {
        /// The provider instance.
        provider: String,
        /// The configured user.
        user: String,
        /// The vault entry to add.
        entry: String,
    },
    /// The vault could not be read.
    #[error("provider {provider}: cannot read the vault entry {entry}: {reason}")]
    Vault {
        /// The provider instance.
        provider: String,
        /// The entry.
        entry: String,
        /// Why (never a secret).
        reason: String,
    },
}

/// The credentials of `p`'s proxy, when it has a `proxy_user`: the password from `get`
/// (the vault), which is not called otherwise.
pub fn auth_for(
    p: &ProviderConfig,
    get: impl FnOnce(&EntryName) -> Result<Option<SecretString>, String>,
) -> Result<Option<ProxyAuth>, ProxyAuthError> {
    let Some(user) = p.proxy_user.clone() else {
        return Ok(None);
    };
    let entry = crate::egress::proxy_password_entry(&p.name);
    let vault_error = |reason: String| ProxyAuthError::Vault {
        provider: p.name.clone(),
        entry: entry.clone(),
        reason,
    };
    let name = EntryName::proxy_password(&p.name).map_err(|e| vault_error(e.to_string()))?;
    match get(&name).map_err(vault_error)? {
        Some(password) => Ok(Some(ProxyAuth {
            user,
            password,
            entry,
            source: None,
        })),
        None => Err(ProxyAuthError::PasswordMissing {
            provider: p.name.clone(),
            user,
            entry,
        }),
    }
}

/// Sets `builder`'s proxy: direct, the environment's, or `proxy`'s URL (with `NO_PROXY`
/// exempting hosts), authenticating as `auth` when given. With `env` and credentials, the
/// environment's proxy is chosen per request by `env` (the rules of [`ProxyEnv::route`])
/// and any credentials in its URL give way to `auth`.
pub fn configure(
    builder: reqwest::ClientBuilder,
    proxy: &Proxy,
    auth: Option<&ProxyAuth>,
    env: &ProxyEnv,
) -> Result<reqwest::ClientBuilder, String> {
    let with_auth = |p: reqwest::Proxy| match auth {
        Some(a) => with_auth(p, a),
        None => p,
    };
    Ok(match (proxy, auth) {
        (Proxy::None, _) => builder.no_proxy(),
        (Proxy::Env, None) => builder,
        (Proxy::Env, Some(_)) => {
            let env = env.clone();
            let custom = reqwest::Proxy::custom(move |url| match env.route(&Proxy::Env, url) {
                Route::Proxy { url, .. } => Some(without_credentials(&url)),
                Route::Direct { .. } => None,
            });
            builder.proxy(with_auth(custom))
        }
        (Proxy::Url(u), _) => builder.proxy(with_auth(
            reqwest::Proxy::all(u.as_str())
                .map_err(|e| format!("proxy: {e}"))?
                .no_proxy(reqwest::NoProxy::from_env()),
        )),
    })
}

/// `proxy` authenticating with Basic credentials `auth`.
pub fn with_auth(proxy: reqwest::Proxy, auth: &ProxyAuth) -> reqwest::Proxy {
    proxy.basic_auth(&auth.user, auth.password.expose_secret())
}

fn without_credentials(url: &Url) -> Url {
    let mut u = url.clone();
    // Both fail only for URLs that cannot carry credentials, which is fine as is.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u
}

/// The proxy a request goes through: its URL (without credentials) and `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The proxy URL, without credentials.
    pub url: Url,
    /// `host:port`, as errors name it.
    pub authority: String,
}

/// The proxy a request to `url` goes through under `proxy`, if any.
pub fn hop(proxy: &Proxy, env: &ProxyEnv, url: &Url) -> Option<Hop> {
    let Route::Proxy { url: proxy, .. } = env.route(proxy, url) else {
        return None;
    };
    let host = proxy.host_str()?;
    let port = proxy.port_or_known_default()?;
    Some(Hop {
        authority: format!("{host}:{port}"),
        url: without_credentials(&proxy),
    })
}

/// Whether a response to a request forwarded through a proxy is the proxy's own answer:
/// a 407, or a 401 or 403 whose body is not JSON (GitHub's and GitLab's APIs always answer
/// JSON; a proxy answers with a page, and tinyproxy sends 401 for wrong credentials).
pub fn is_proxy_answer(status: StatusCode, headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
        || (matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) && !json)
}

/// The typed failure of the proxy `hop` refusing a request of provider `provider` to
/// `target` with `status` and `reason`. Never retried, and not marked retryable
/// (`Internal`, the connector's condition): asking again gets the same answer until an
/// operator fixes the credentials or the proxy's rules.
pub fn refused(
    provider: &str,
    hop: &Hop,
    target: &str,
    status: u16,
    reason: &str,
    auth: Option<&ProxyAuth>,
) -> Refused {
    let entry = crate::egress::proxy_password_entry(provider);
    let advice = match (status, auth) {
        (401 | 407, Some(a)) => format!(
            "it does not accept user {:?} with the password in the vault entry {entry}; check proxy_user in the [[provider]] block of {provider} and update the password with `edge-connector vault set {entry}`",
            a.user
        ),
        (401 | 407, None) => format!(
            "it requires authentication; set proxy_user in the [[provider]] block of {provider} and store the password with `edge-connector vault set {entry}`"
        ),
        _ => format!("ask the proxy's administrators to allow {target}"),
    };
    Refused {
        status,
        failure: CallFailure::new(
            ErrorCode::Internal,
            format!(
                "{provider}: the proxy {} refused the request to {target} with {status} {reason}: {advice}",
                hop.authority
            ),
        ),
    }
}

/// After a request through `hop` to `target` failed to connect: asks the proxy for a
/// `CONNECT` tunnel to `target_host:target_port` with the same credentials, and returns
/// the failure of its refusal (an HTTP answer other than 2xx), or `None` when it opens the
/// tunnel (the trouble lies beyond the proxy), does not answer with HTTP, or cannot be
/// asked (an https:// proxy).
pub async fn refusal(
    provider: &str,
    hop: &Hop,
    target_host: &str,
    target_port: u16,
    auth: Option<&ProxyAuth>,
    timeout: Duration,
) -> Option<Refused> {
    let route = ProxyRoute::new(
        &hop.url,
        auth.map(|a| a.user.clone()),
        auth.map(|a| a.password.clone()),
        "the provider's proxy setting",
    )
    .ok()?;
    let timeout = timeout.min(PROBE_TIMEOUT);
    let target = format!("{target_host}:{target_port}");
    match connect_proxy::connect(&route, target_host, target_port, timeout).await {
        Ok(_) => None,
        Err(
            ProxyError::AuthRequired { status, reason, .. }
            | ProxyError::Refused { status, reason, .. },
        ) => Some(refused(provider, hop, &target, status, &reason, auth)),
        // Anything else (no proxy there, a garbled answer) may pass: the request's own
        // retries and errors deal with it.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const SECRET: &str = "s3cr3t-Pa55";

    fn provider(extra: &str) -> ProviderConfig {
        let text = format!(
            "[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"https://ghes.corp/api/v3\"\n{extra}"
        );
        crate::config::Config::parse(Path::new("/c.toml"), &text)
            .unwrap()
            .providers
            .remove(0)
    }

    fn auth() -> ProxyAuth {
        let p = provider("proxy = \"http://proxy.corp:3128\"\nproxy_user = \"svc-edge\"\n");
        auth_for(&p, |_| Ok(Some(SecretString::from(SECRET.to_owned()))))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_password_comes_from_the_providers_vault_entry_and_debug_hides_it() {
        let p = provider("proxy = \"http://proxy.corp:3128\"\nproxy_user = \"svc-edge\"\n");
        let mut asked = None;
        let a = auth_for(&p, |name| {
            asked = Some(name.as_str().to_owned());
            Ok(Some(SecretString::from(SECRET.to_owned())))
        })
        .unwrap()
        .unwrap();
        assert_eq!(asked.as_deref(), Some("provider/ghes/proxy_password"));
        assert_eq!(a.user(), "svc-edge");
        let text = format!("{a:?}");
        assert!(
            !text.contains(SECRET) && text.contains("svc-edge"),
            "{text}"
        );
        // No user: the vault is not asked.
        let none = provider("proxy = \"http://proxy.corp:3128\"\n");
        assert!(
            auth_for(&none, |_| panic!("asked the vault"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_password_is_reloaded_only_when_the_vault_holds_another() {
        let held = auth();
        assert!(held.reloaded().is_none(), "no source, nothing to reload");
        let same = held
            .clone()
            .reloading(Arc::new(|| Ok(Some(SecretString::from(SECRET.to_owned())))));
        assert!(same.reloaded().is_none());
        let changed = held
            .clone()
            .reloading(Arc::new(|| Ok(Some(SecretString::from("n3w".to_owned())))));
        let fresh = changed.reloaded().unwrap();
        assert_eq!(fresh.password.expose_secret(), "n3w");
        let gone = held.reloading(Arc::new(|| Ok(None)));
        assert!(gone.reloaded().is_none());
    }

    #[test]
    fn a_missing_password_names_the_entry_and_the_command_that_adds_it() {
        let p = provider("proxy = \"env\"\nproxy_user = \"svc-edge\"\n");
        let e = auth_for(&p, |_| Ok(None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "provider ghes: proxy_user \"svc-edge\" is set but the vault has no entry provider/ghes/proxy_password; store the proxy password with `edge-connector vault set provider/ghes/proxy_password`"
        );
        let e = auth_for(&p, |_| Err("vault key /k does not exist".into())).unwrap_err();
        assert!(e.to_string().contains("vault key /k"), "{e}");
    }

    #[test]
    fn a_client_with_credentials_never_shows_them_in_debug() {
        let env = ProxyEnv {
            https: Some("http://other:pw@proxy.corp:3128".into()),
            ..ProxyEnv::default()
        };
        for proxy in [
            Proxy::Url("http://proxy.corp:3128".parse().unwrap()),
            Proxy::Env,
        ] {
            let client = configure(reqwest::Client::builder(), &proxy, Some(&auth()), &env)
                .unwrap()
                .build()
                .unwrap();
            let text = format!("{client:?}");
            assert!(!text.contains(SECRET), "{text}");
        }
    }

    #[test]
    fn proxy_answers_are_told_from_upstream_answers() {
        let html = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
            h
        };
        assert!(is_proxy_answer(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            &html("application/json")
        ));
        assert!(is_proxy_answer(
            StatusCode::UNAUTHORIZED,
            &html("text/html")
        ));
        assert!(is_proxy_answer(StatusCode::FORBIDDEN, &HeaderMap::new()));
        assert!(!is_proxy_answer(
            StatusCode::UNAUTHORIZED,
            &html("application/json; charset=utf-8")
        ));
        assert!(!is_proxy_answer(StatusCode::NOT_FOUND, &html("text/html")));
    }

    /// A proxy on loopback answering every connection with `answer`; returns its hop.
    async fn fake_proxy(answer: &'static [u8]) -> Hop {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(answer).await;
            }
        });
        hop(
            &Proxy::Url(format!("http://127.0.0.1:{port}").parse().unwrap()),
            &ProxyEnv::default(),
            &"https://ghes.corp/api/v3".parse().unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_refused_connect_is_read_back_as_the_proxys_answer() {
        let hop = fake_proxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
        let a = auth();
        let r = refusal("ghes", &hop, "ghes.corp", 443, Some(&a), PROBE_TIMEOUT)
            .await
            .unwrap();
        assert!(r.wants_credentials());
        let f = r.failure;
        assert_eq!(f.code, ErrorCode::Internal);
        assert!(
            f.message.starts_with(&format!(
                "ghes: the proxy {} refused the request to ghes.corp:443 with 407 Proxy Authentication Required: it does not accept user \"svc-edge\"",
                hop.authority
            )) && f.message.contains("`edge-connector vault set provider/ghes/proxy_password`"),
            "{}",
            f.message
        );
        assert!(!f.message.contains(SECRET));
        let hop = fake_proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        let r = refusal("ghes", &hop, "ghes.corp", 443, None, PROBE_TIMEOUT)
            .await
            .unwrap();
        assert!(!r.wants_credentials());
        let f = r.failure;
        assert!(
            f.message.contains(
                "with 403 Forbidden: ask the proxy's administrators to allow ghes.corp:443"
            ),
            "{}",
            f.message
        );
        // A proxy that opens the tunnel did not refuse.
        let hop = fake_proxy(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
        assert!(
            refusal("ghes", &hop, "ghes.corp", 443, None, PROBE_TIMEOUT)
                .await
                .is_none()
        );
    }

    #[test]
    fn reports_name_the_proxy_and_the_entry_never_a_password() {
        let p = provider("proxy = \"http://proxy.corp:3128\"\nproxy_user = \"svc-edge\"\n");
        let h = hop(&p.proxy, &ProxyEnv::default(), &p.api_url).unwrap();
        assert_eq!(h.authority, "proxy.corp:3128");
        assert_eq!(
            crate::egress::describe_upstream_proxy(&p, &h.url),
            "proxy.corp:3128 (user svc-edge, password in the vault entry provider/ghes/proxy_password)"
        );
        let anon = provider("proxy = \"http://proxy.corp:3128\"\n");
        assert_eq!(
            crate::egress::describe_upstream_proxy(&anon, &h.url),
            "proxy.corp:3128 (no authentication)"
        );
        let from_env: Url = "http://u:pw@proxy.corp:3128".parse().unwrap();
        assert_eq!(
            crate::egress::describe_upstream_proxy(&anon, &from_env),
            "proxy.corp:3128 (user u, from the proxy URL)"
        );
        let direct = provider("");
        assert_eq!(
            hop(&direct.proxy, &ProxyEnv::default(), &direct.api_url),
            None
        );
    }
}
