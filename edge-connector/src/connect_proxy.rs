//! The corporate egress proxy: an HTTP `CONNECT` client for the TCP transport of the tunnel,
//! the route enrollment takes through the same proxy, and the probe that learns why a
//! provider's proxy refused a request.
//!
//! ```text
//!  connector ──TCP──▶ proxy.corp:3128 ──TCP──▶ runtime:443
//!     CONNECT rt.example.com:443 HTTP/1.1
//!     Host: rt.example.com:443
//!     Proxy-Authorization: Basic base64(user:password)     (when a user is configured)
//!                        ◀── HTTP/1.1 200 Connection established
//!     ... from here the stream is the runtime's: SSH, end to end ...
//! ```
//!
//! Where the proxy comes from is [`route_for`]: `[tunnel] proxy` (`none`, `env` or a URL),
//! with `HTTPS_PROXY`/`NO_PROXY` read by [`ProxyEnv::route`], the same rules the upstream
//! clients and `egress-report` follow. The proxy password lives only in the vault entry
//! [`PASSWORD_ENTRY`]: a URL that carries one is refused, and no error, log line or `Debug`
//! output of this module shows it.
//!
//! [`connect`] never reads past the proxy's answer: an SSH server sends its banner as soon
//! as the proxy has connected it, possibly in the same segment as the `200`, and those bytes
//! belong to the SSH client. So the head is read in steps too short to overrun its end.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use crate::config::{Config, TunnelConfig};
use crate::egress::{ProxyEnv, Route};
use crate::vault::{EntryName, Vault};

/// The vault entry holding the proxy password.
pub const PASSWORD_ENTRY: &str = "proxy/password";
/// Largest answer head accepted from a proxy.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines accepted in a proxy's answer.
const MAX_HEADERS: usize = 64;
/// Longest excerpt of a proxy's answer quoted in an error.
const MAX_EXCERPT: usize = 80;
/// How long to wait for more of a non-HTTP answer to quote.
const EXCERPT_WAIT: Duration = Duration::from_millis(250);
/// How to set the password, quoted by every error about it.
const SET_PASSWORD: &str = "`edge-connector vault set proxy/password`";

/// Why the proxy path cannot be used. Each variant names the proxy (`host:port`, never a
/// credential) and, where it answered, its answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The operator's fault: the proxy URL carries a password.
    #[error(
        "the proxy URL of {proxy} (from {origin}) carries a password, which would end up in configuration and logs: remove it from the URL, set the user as [tunnel] proxy_user and store the password with {SET_PASSWORD}"
    )]
    PasswordInUrl {
        /// The proxy, `host:port`.
        proxy: String,
        /// Where the URL came from (`[tunnel] proxy`, `HTTPS_PROXY`, ...).
        origin: &'static str,
    },
    /// The operator's fault: a proxy scheme the tunnel cannot use.
    #[error(
        "proxy {proxy} (from {origin}): {scheme}:// proxies are not supported for the tunnel; use an http:// proxy URL (the tunnel inside CONNECT is encrypted end to end)"
    )]
    UnsupportedScheme {
        /// The proxy, `host:port`.
        proxy: String,
        /// Where the URL came from.
        origin: &'static str,
        /// The scheme refused.
        scheme: String,
    },
    /// The operator's fault: a proxy user without a password in the vault.
    #[error(
        "proxy {proxy}: user {user:?} is configured but the vault has no entry {PASSWORD_ENTRY}; store it with {SET_PASSWORD}"
    )]
    PasswordMissing {
        /// The proxy, `host:port`.
        proxy: String,
        /// The configured user.
        user: String,
    },
    /// The vault could not be read.
    #[error("proxy {proxy}: cannot read the vault entry {PASSWORD_ENTRY}: {reason}")]
    Vault {
        /// The proxy, `host:port`.
        proxy: String,
        /// Why.
        reason: String,
    },
    /// A proxy URL, user or target that cannot go into a `CONNECT` request.
    #[error("{what} cannot be used for a proxy CONNECT: {reason}")]
    Invalid {
        /// What was refused (the proxy URL, the user, the target).
        what: String,
        /// Why.
        reason: &'static str,
    },
    /// No TCP connection to the proxy.
    #[error("cannot connect to proxy {proxy}: {source}")]
    Connect {
        /// The proxy, `host:port`.
        proxy: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The proxy did not connect or answer in time.
    #[error("proxy {proxy}: no {stage} within {} s", timeout.as_secs_f32())]
    TimedOut {
        /// The proxy, `host:port`.
        proxy: String,
        /// What was awaited.
        stage: &'static str,
        /// The time allowed.
        timeout: Duration,
    },
    /// The proxy wants (other) credentials: HTTP 407 (or 401, which some proxies, tinyproxy
    /// among them, send instead).
    #[error(
        "proxy {proxy} answered CONNECT {target} with {status} {reason}: {}",
        match user {
            Some(u) => format!("it does not accept user {u:?} with the password in the vault entry {PASSWORD_ENTRY}; check [tunnel] proxy_user and update the password with {SET_PASSWORD}"),
            None => format!("it requires authentication; set [tunnel] proxy_user and store the password with {SET_PASSWORD}"),
        }
    )]
    AuthRequired {
        /// The proxy, `host:port`.
        proxy: String,
        /// Where the tunnel was to go.
        target: String,
        /// The user whose credentials were sent, if any.
        user: Option<String>,
        /// 407 or 401.
        status: u16,
        /// The proxy's reason phrase (sanitised).
        reason: String,
    },
    /// The proxy refused the tunnel: 403 or any other status but 2xx, 401 and 407.
    #[error(
        "proxy {proxy} refused CONNECT {target}: {status} {reason} (ask the proxy's administrators to allow CONNECT to {target})"
    )]
    Refused {
        /// The proxy, `host:port`.
        proxy: String,
        /// Where the tunnel was to go.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The proxy's reason phrase (sanitised).
        reason: String,
    },
    /// What came back is not an HTTP answer (an HTML page, a TLS record, garbage).
    #[error(
        "proxy {proxy} did not answer CONNECT with HTTP: it sent \"{excerpt}\" (is this an HTTP proxy, and the right port?)"
    )]
    NotHttp {
        /// The proxy, `host:port`.
        proxy: String,
        /// The start of the answer: printable ASCII, at most 80 characters.
        excerpt: String,
    },
    /// The proxy closed the connection before its answer was complete.
    #[error(
        "proxy {proxy} closed the connection during the CONNECT handshake (after {received} bytes of its answer)"
    )]
    Closed {
        /// The proxy, `host:port`.
        proxy: String,
        /// How much of an answer had arrived.
        received: usize,
    },
    /// The answer's head exceeds [`MAX_HEAD`] or its header count.
    #[error("proxy {proxy} sent an answer head larger than {max} bytes or {MAX_HEADERS} headers")]
    HeadTooLarge {
        /// The proxy, `host:port`.
        proxy: String,
        /// The limit.
        max: usize,
    },
    /// Reading from or writing to the proxy failed.
    #[error("proxy {proxy}: {source}")]
    Io {
        /// The proxy, `host:port`.
        proxy: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The proxy a TCP connection goes through, with its credentials. `Debug` shows whether a
/// password is set, never the password.
pub struct ProxyRoute {
    /// The proxy URL, without user name or password.
    url: Url,
    /// `host:port` of the proxy, as errors and reports name it.
    authority: String,
    /// User for Basic authentication.
    user: Option<String>,
    /// Its password, from the vault.
    password: Option<SecretString>,
    /// Where the proxy setting came from.
    origin: &'static str,
}

impl fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyRoute")
            .field("proxy", &self.authority)
            .field("user", &self.user)
            .field(
                "password",
                &self.password.as_ref().map(|_| "<from the vault>"),
            )
            .field("origin", &self.origin)
            .finish()
    }
}

impl ProxyRoute {
    /// The proxy at `url` (http:// only; a user name in it is taken when `user` is `None`,
    /// a password refused), authenticating as the user with `password` when both are set.
    /// `origin` says where the URL came from, for errors.
    pub fn new(
        url: &Url,
        user: Option<String>,
        password: Option<SecretString>,
        origin: &'static str,
    ) -> Result<Self, ProxyError> {
        let authority = authority_of(url)?;
        if url.scheme() != "http" {
            return Err(ProxyError::UnsupportedScheme {
                proxy: authority,
                origin,
                scheme: url.scheme().to_owned(),
            });
        }
        if url.password().is_some() {
            return Err(ProxyError::PasswordInUrl {
                proxy: authority,
                origin,
            });
        }
        let url_user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8()
            .map_err(|_| ProxyError::Invalid {
                what: format!("the user name in the URL of proxy {authority}"),
                reason: "it is not UTF-8",
            })?;
        let user = user.or_else(|| (!url_user.is_empty()).then(|| url_user.into_owned()));
        if let Some(u) = &user
            && (u.is_empty() || u.contains(':') || u.chars().any(char::is_control))
        {
            return Err(ProxyError::Invalid {
                what: format!("the user of proxy {authority}"),
                reason: "Basic authentication needs a non-empty user without ':' or control characters",
            });
        }
        let mut clean = url.clone();
        // Both fail only for URLs that cannot carry credentials, which `authority_of` refused.
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        Ok(Self {
            url: clean,
            authority,
            user,
            password,
            origin,
        })
    }

    /// The proxy URL, without credentials.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `host:port` of the proxy.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The user for Basic authentication, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Where the proxy setting came from (`[tunnel] proxy`, `HTTPS_PROXY`, ...).
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    /// The proxy in words for reports: `proxy.corp:3128 (user svc-edge, password in vault)`
    /// (or, for a [`planned_route`] that has not read the vault, `password: vault entry
    /// proxy/password`).
    pub fn describe(&self) -> String {
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => format!("{} (user {u}, password in vault)", self.authority),
            (Some(u), None) => format!(
                "{} (user {u}, password: vault entry {PASSWORD_ENTRY})",
                self.authority
            ),
            (None, _) => format!("{} (no authentication)", self.authority),
        }
    }

    /// The same proxy for reqwest (enrollment), with Basic credentials, for https requests.
    pub fn to_reqwest(&self) -> Result<reqwest::Proxy, ProxyError> {
        let proxy = reqwest::Proxy::https(self.url.as_str()).map_err(|_| ProxyError::Invalid {
            what: format!("proxy {}", self.authority),
            reason: "the HTTP client does not accept its URL",
        })?;
        Ok(match (&self.user, &self.password) {
            (Some(u), Some(p)) => proxy.basic_auth(u, p.expose_secret()),
            _ => proxy,
        })
    }

    /// The `Proxy-Authorization` value's credential part (base64 of `user:password`).
    fn basic_credentials(&self) -> Option<Zeroizing<String>> {
        let (user, password) = (self.user.as_ref()?, self.password.as_ref()?);
        let plain = Zeroizing::new(format!("{user}:{}", password.expose_secret()));
        Some(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(plain.as_bytes()),
        ))
    }
}

/// `host:port` of a proxy URL (default port of its scheme), bracketing IPv6.
fn authority_of(url: &Url) -> Result<String, ProxyError> {
    let invalid = |reason| ProxyError::Invalid {
        what: format!("the proxy URL {}", crate::egress::redact(url)),
        reason,
    };
    let host = url.host_str().ok_or_else(|| invalid("it has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("it has no port"))?;
    Ok(format!("{host}:{port}"))
}

/// `host:port` of a tunnel target, refusing what cannot be a host name or address (no room
/// for a header injected through a damaged configuration).
fn target_authority(host: &str, port: u16) -> Result<String, ProxyError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !bare.is_empty()
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if !ok {
        return Err(ProxyError::Invalid {
            what: format!("the target {:?}", sanitize(host.as_bytes(), None)),
            reason: "it is not a host name or address",
        });
    }
    Ok(if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    })
}

/// The proxy a TCP connection to `target_host:target_port` goes through, or `None` for a
/// direct connection: `[tunnel] proxy` as [`ProxyEnv::route`] reads it (`NO_PROXY` exempts
/// hosts, as for upstreams). When a proxy user is set (`[tunnel] proxy_user`, or a user name
/// in the URL), `vault` is asked for the entry [`PASSWORD_ENTRY`]; it is not called
/// otherwise.
pub fn route_for(
    tunnel: &TunnelConfig,
    env: &ProxyEnv,
    target_host: &str,
    target_port: u16,
    vault: impl FnOnce() -> Result<Option<SecretString>, String>,
) -> Result<Option<ProxyRoute>, ProxyError> {
    let Some(route) = planned_route(tunnel, env, target_host, target_port)? else {
        return Ok(None);
    };
    let Some(user) = route.user.clone() else {
        return Ok(Some(route));
    };
    match vault() {
        Ok(Some(password)) => Ok(Some(ProxyRoute {
            password: Some(password),
            ..route
        })),
        Ok(None) => Err(ProxyError::PasswordMissing {
            proxy: route.authority,
            user,
        }),
        Err(reason) => Err(ProxyError::Vault {
            proxy: route.authority,
            reason,
        }),
    }
}

/// The route [`route_for`] takes, without reading the vault (so without a password): what
/// reports show.
pub fn planned_route(
    tunnel: &TunnelConfig,
    env: &ProxyEnv,
    target_host: &str,
    target_port: u16,
) -> Result<Option<ProxyRoute>, ProxyError> {
    let target = target_authority(target_host, target_port)?;
    // CONNECT tunnels are what HTTPS requests take, so the https rules apply.
    let as_url = Url::parse(&format!("https://{target}/")).map_err(|_| ProxyError::Invalid {
        what: format!("the target {target}"),
        reason: "it is not a host name or address",
    })?;
    let (url, source) = match env.route(&tunnel.proxy, &as_url) {
        Route::Direct { .. } => return Ok(None),
        Route::Proxy { url, source } => (url, source),
    };
    let origin = if source == "the provider's proxy setting" {
        "[tunnel] proxy"
    } else {
        source
    };
    ProxyRoute::new(&url, tunnel.proxy_user.clone(), None, origin).map(Some)
}

/// The proxy password from the vault of `config`, for [`route_for`]'s `vault` argument.
/// Errors name the vault file or key and the command that fixes them, never a secret.
pub fn vault_password(config: &Config) -> Result<Option<SecretString>, String> {
    let name = EntryName::parse(PASSWORD_ENTRY).map_err(|e| e.to_string())?;
    let vault = Vault::open(config).map_err(|e| e.to_string())?;
    Ok(vault
        .get(&name)
        .map_err(|e| e.to_string())?
        .map(|entry| entry.secret))
}

/// Opens a TCP connection to `target_host:target_port` through the proxy: connects to the
/// proxy, asks for a `CONNECT` tunnel (with Basic credentials when the route has them) and
/// reads the answer. On a 2xx answer the stream is returned positioned right after the
/// answer's head: every byte after it is the target's. `timeout` bounds the whole exchange.
pub async fn connect(
    route: &ProxyRoute,
    target_host: &str,
    target_port: u16,
    timeout: Duration,
) -> Result<TcpStream, ProxyError> {
    let target = target_authority(target_host, target_port)?;
    let deadline = Instant::now() + timeout;
    let proxy = || route.authority.clone();
    let timed_out = |stage| ProxyError::TimedOut {
        proxy: proxy(),
        stage,
        timeout,
    };
    let mut stream = tokio::time::timeout_at(deadline, TcpStream::connect(&route.authority))
        .await
        .map_err(|_| timed_out("TCP connection"))?
        .map_err(|source| ProxyError::Connect {
            proxy: proxy(),
            source,
        })?;
    // The tunnel carries small interactive frames; the proxy relays them as they come.
    let _ = stream.set_nodelay(true);
    let credentials = route.basic_credentials();
    let request = connect_request(&target, credentials.as_deref().map(String::as_str));
    let io = |source| ProxyError::Io {
        proxy: proxy(),
        source,
    };
    tokio::time::timeout_at(deadline, stream.write_all(request.as_bytes()))
        .await
        .map_err(|_| timed_out("room to send CONNECT"))?
        .map_err(io)?;
    let head = tokio::time::timeout_at(deadline, read_head(&mut stream))
        .await
        .map_err(|_| timed_out("answer to CONNECT"))?;
    let secret = credentials.as_deref().map(String::as_str);
    let head = head.map_err(|e| e.into_error(proxy(), secret))?;
    match check_answer(&head, secret) {
        Answer::Open => Ok(stream),
        Answer::AuthRequired { status, reason } => Err(ProxyError::AuthRequired {
            proxy: proxy(),
            target,
            user: credentials.as_ref().and(route.user.clone()),
            status,
            reason,
        }),
        Answer::Refused { status, reason } => Err(ProxyError::Refused {
            proxy: proxy(),
            target,
            status,
            reason,
        }),
        Answer::NotHttp { excerpt } => Err(ProxyError::NotHttp {
            proxy: proxy(),
            excerpt,
        }),
        Answer::TooLarge => Err(ProxyError::HeadTooLarge {
            proxy: proxy(),
            max: MAX_HEAD,
        }),
    }
}

/// The `CONNECT` request (zeroed on drop: it may carry the credentials).
fn connect_request(target: &str, credentials: Option<&str>) -> Zeroizing<String> {
    let mut r = Zeroizing::new(format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: edge-connector/{}\r\n",
        env!("CARGO_PKG_VERSION")
    ));
    if let Some(c) = credentials {
        r.push_str("Proxy-Authorization: Basic ");
        r.push_str(c);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// How reading a head ended without a complete head.
enum HeadError {
    /// The connection closed after this many bytes.
    Closed(Vec<u8>),
    /// More than [`MAX_HEAD`] bytes without an end.
    TooLarge,
    /// Not HTTP, seen before the end of the head.
    NotHttp(Vec<u8>),
    /// A read failed.
    Io(std::io::Error),
}

impl HeadError {
    fn into_error(self, proxy: String, secret: Option<&str>) -> ProxyError {
        match self {
            HeadError::Closed(got) if got.is_empty() => ProxyError::Closed { proxy, received: 0 },
            // A partial answer that is not even HTTP says more as an excerpt.
            HeadError::Closed(got) if !starts_like_http(&got) => ProxyError::NotHttp {
                proxy,
                excerpt: sanitize(&got, secret),
            },
            HeadError::Closed(got) => ProxyError::Closed {
                proxy,
                received: got.len(),
            },
            HeadError::TooLarge => ProxyError::HeadTooLarge {
                proxy,
                max: MAX_HEAD,
            },
            HeadError::NotHttp(got) => ProxyError::NotHttp {
                proxy,
                excerpt: sanitize(&got, secret),
            },
            HeadError::Io(source) => ProxyError::Io { proxy, source },
        }
    }
}

/// Whether `bytes` can be the start of an HTTP/1.x status line.
fn starts_like_http(bytes: &[u8]) -> bool {
    let prefix = b"HTTP/1.";
    let n = bytes.len().min(prefix.len());
    bytes.get(..n) == prefix.get(..n)
}

/// Reads the answer's head, and not one byte more: a head ends with an empty line, `\n\n`
/// or `\n\r\n`, so reading at most 2 bytes (1 right after a `\n` or `\r`) never passes
/// its end. The answer is short and comes once per tunnel, so the small reads cost nothing
/// that matters.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(256);
    loop {
        if head_complete(&buf) {
            return Ok(buf);
        }
        if !starts_like_http(&buf) {
            more_for_excerpt(stream, &mut buf).await;
            return Err(HeadError::NotHttp(buf));
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let step = match buf.last() {
            Some(b'\n' | b'\r') => 1,
            _ => 2,
        };
        let mut chunk = [0u8; 2];
        let room = step.min(MAX_HEAD - buf.len());
        let Some(window) = chunk.get_mut(..room) else {
            return Err(HeadError::TooLarge);
        };
        match stream.read(window).await {
            Ok(0) => return Err(HeadError::Closed(buf)),
            Ok(n) => buf.extend_from_slice(window.get(..n).unwrap_or_default()),
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// Reads a little more of an answer already known not to be HTTP, so the error can quote
/// a useful excerpt (the connection is given up, so over-reading loses nothing).
async fn more_for_excerpt(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; MAX_EXCERPT];
    while buf.len() < MAX_EXCERPT {
        let want = MAX_EXCERPT - buf.len();
        let Some(window) = chunk.get_mut(..want) else {
            return;
        };
        match tokio::time::timeout(EXCERPT_WAIT, stream.read(window)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(window.get(..n).unwrap_or_default()),
            _ => return,
        }
    }
}

/// Whether `buf` ends with the empty line that ends a head.
fn head_complete(buf: &[u8]) -> bool {
    buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n")
}

/// What a complete head says.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// 2xx: the tunnel is open.
    Open,
    /// 407, or 401 from proxies that send that instead.
    AuthRequired { status: u16, reason: String },
    /// Any other status.
    Refused { status: u16, reason: String },
    /// Not a parseable HTTP answer.
    NotHttp { excerpt: String },
    /// More headers than accepted.
    TooLarge,
}

/// Parses a complete head with httparse.
fn check_answer(head: &[u8], secret: Option<&str>) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Answer::TooLarge,
        Ok(httparse::Status::Partial) | Err(_) => {
            return Answer::NotHttp {
                excerpt: sanitize(head, secret),
            };
        }
    }
    let status = response.code.unwrap_or(0);
    let reason = sanitize(response.reason.unwrap_or("").as_bytes(), secret);
    match status {
        200..=299 => Answer::Open,
        401 | 407 => Answer::AuthRequired { status, reason },
        _ => Answer::Refused { status, reason },
    }
}

/// An excerpt of what a proxy sent, fit for an error message: printable ASCII only (others
/// become `.`), at most [`MAX_EXCERPT`] characters, and without our own credentials should
/// the proxy echo the request back.
fn sanitize(bytes: &[u8], secret: Option<&str>) -> String {
    let mut text: String = bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect();
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        text = text.replace(s, "[REDACTED]");
    }
    text.chars().take(MAX_EXCERPT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Proxy;
    use tokio::net::TcpListener;

    const SECRET: &str = "s3cr3t-Pa55";

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn tunnel(proxy: Proxy, user: Option<&str>) -> TunnelConfig {
        TunnelConfig {
            proxy,
            proxy_user: user.map(str::to_owned),
            ..TunnelConfig::default()
        }
    }

    fn password() -> Result<Option<SecretString>, String> {
        Ok(Some(SecretString::from(SECRET.to_owned())))
    }

    fn no_vault() -> Result<Option<SecretString>, String> {
        panic!("the vault must not be asked without a proxy user")
    }

    /// A route to a proxy on `port` of loopback, as user `alice` when `auth`.
    fn route(port: u16, auth: bool) -> ProxyRoute {
        let t = tunnel(
            Proxy::Url(url(&format!("http://127.0.0.1:{port}"))),
            auth.then_some("alice"),
        );
        route_for(&t, &ProxyEnv::default(), "rt.example.com", 443, password)
            .unwrap()
            .unwrap()
    }

    /// A proxy that reads one request head, hands it out, and answers with `answer`.
    async fn fake_proxy(
        answer: &'static [u8],
    ) -> (u16, tokio::task::JoinHandle<(Vec<u8>, TcpStream)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                if s.read(&mut b).await.unwrap() == 0 {
                    break;
                }
                got.push(b[0]);
            }
            s.write_all(answer).await.unwrap();
            (got, s)
        });
        (port, task)
    }

    async fn connect_to(port: u16, auth: bool) -> Result<TcpStream, ProxyError> {
        connect(
            &route(port, auth),
            "rt.example.com",
            443,
            Duration::from_secs(10),
        )
        .await
    }

    fn assert_no_secret(e: &ProxyError) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("alice:{SECRET}"));
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(SECRET) && !text.contains(&encoded), "{text}");
        }
    }

    #[tokio::test]
    async fn open_tunnel_carries_bytes_both_ways_and_keeps_what_follows_the_head() {
        // The target's first bytes (an SSH banner) arrive in the same write as the 200.
        let (port, proxy) =
            fake_proxy(b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-runtime\r\n").await;
        let mut tunnel = connect_to(port, false).await.unwrap();
        let (request, mut far) = proxy.await.unwrap();
        assert_eq!(
            String::from_utf8(request).unwrap(),
            format!(
                "CONNECT rt.example.com:443 HTTP/1.1\r\nHost: rt.example.com:443\r\nUser-Agent: edge-connector/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let mut banner = [0u8; 17];
        tunnel.read_exact(&mut banner).await.unwrap();
        assert_eq!(&banner, b"SSH-2.0-runtime\r\n");
        tunnel.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        far.write_all(b"pong").await.unwrap();
        tunnel.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }

    #[tokio::test]
    async fn basic_credentials_are_exactly_user_colon_password_in_base64() {
        let (port, proxy) = fake_proxy(b"HTTP/1.0 200 OK\r\n\r\n").await;
        connect_to(port, true).await.unwrap();
        let (request, _) = proxy.await.unwrap();
        let request = String::from_utf8(request).unwrap();
        // base64("alice:s3cr3t-Pa55")
        assert!(
            request.contains("\r\nProxy-Authorization: Basic YWxpY2U6czNjcjN0LVBhNTU=\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn status_407_is_auth_required_naming_the_proxy_and_the_user() {
        let (port, _proxy) =
            fake_proxy(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\r\n").await;
        let e = connect_to(port, true).await.unwrap_err();
        assert!(
            matches!(&e, ProxyError::AuthRequired { user: Some(u), .. } if u == "alice"),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!("proxy 127.0.0.1:{port}"))
                && text.contains("407 Proxy Authentication Required")
                && text.contains("proxy/password"),
            "{text}"
        );
        assert_no_secret(&e);
        // Without credentials the advice is to configure them.
        let (port, _proxy) =
            fake_proxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
        let e = connect_to(port, false).await.unwrap_err();
        assert!(e.to_string().contains("set [tunnel] proxy_user"), "{e}");
        // tinyproxy answers a CONNECT without credentials with 401.
        let (port, _proxy) = fake_proxy(b"HTTP/1.0 401 Unauthorized\r\n\r\n").await;
        let e = connect_to(port, false).await.unwrap_err();
        assert!(
            matches!(e, ProxyError::AuthRequired { status: 401, .. }),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn status_403_is_refused_with_status_and_reason() {
        let (port, _proxy) =
            fake_proxy(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").await;
        let e = connect_to(port, true).await.unwrap_err();
        let ProxyError::Refused {
            status,
            reason,
            target,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!((*status, reason.as_str()), (403, "Forbidden"));
        assert_eq!(target, "rt.example.com:443");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        assert_no_secret(&e);
    }

    #[tokio::test]
    async fn an_html_page_or_garbage_is_not_http_with_a_printable_excerpt() {
        let (port, _proxy) = fake_proxy(
            b"<html><body>Access denied by policy \x1b[31m\xff\xfe</body></html>\r\n\r\n",
        )
        .await;
        let e = connect_to(port, true).await.unwrap_err();
        let ProxyError::NotHttp { excerpt, .. } = &e else {
            panic!("{e:?}");
        };
        assert!(excerpt.starts_with("<h"), "{excerpt}");
        assert!(excerpt.len() <= 80 && excerpt.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_no_secret(&e);
        // A TLS server on the proxy port: binary, never a line end.
        let (port, _proxy) = fake_proxy(b"\x16\x03\x01\x00\x2a\x02\x00").await;
        let e = connect_to(port, true).await.unwrap_err();
        assert!(matches!(e, ProxyError::NotHttp { .. }), "{e:?}");
        // A status line that is not a status line.
        let (port, _proxy) = fake_proxy(b"HTTP/1.1 abc nonsense\r\n\r\n").await;
        let e = connect_to(port, true).await.unwrap_err();
        assert!(matches!(e, ProxyError::NotHttp { .. }), "{e:?}");
    }

    #[test]
    fn excerpts_are_short_printable_and_hide_echoed_credentials() {
        let echoed = b"<pre>Proxy-Authorization: Basic YWxpY2U6czNjcjN0LVBhNTU=\r\n</pre>";
        let text = sanitize(echoed, Some("YWxpY2U6czNjcjN0LVBhNTU="));
        assert_eq!(text, "<pre>Proxy-Authorization: Basic [REDACTED]..</pre>");
        assert_eq!(sanitize(&[b'x'; 200], None).len(), 80);
    }

    #[tokio::test]
    async fn closed_mid_head_is_closed() {
        let (port, proxy) = fake_proxy(b"HTTP/1.1 200 Connection est").await;
        let client = tokio::spawn(connect_to(port, true));
        // The proxy hangs up once it has written this much.
        drop(proxy.await.unwrap());
        let e = client.await.unwrap().unwrap_err();
        assert!(
            matches!(e, ProxyError::Closed { received: 27, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains(&format!("proxy 127.0.0.1:{port}")));
        let (port, proxy) = fake_proxy(b"").await;
        let client = tokio::spawn(connect_to(port, true));
        drop(proxy.await.unwrap());
        let e = client.await.unwrap().unwrap_err();
        assert!(matches!(e, ProxyError::Closed { received: 0, .. }), "{e:?}");
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused_at_the_limit() {
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() <= MAX_HEAD {
            big.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let big: &'static [u8] = Box::leak(big.into_boxed_slice());
        let (port, _proxy) = fake_proxy(big).await;
        let e = connect_to(port, true).await.unwrap_err();
        assert!(matches!(e, ProxyError::HeadTooLarge { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_silent_proxy_times_out_naming_what_was_awaited() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _keep = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(s);
        });
        let e = connect(
            &route(port, true),
            "rt.example.com",
            443,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                e,
                ProxyError::TimedOut {
                    stage: "answer to CONNECT",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn route_follows_the_tunnel_setting_and_no_proxy() {
        let env = ProxyEnv {
            https: Some("http://proxy.corp:3128".into()),
            no: Some("internal.corp".into()),
            ..ProxyEnv::default()
        };
        let none = tunnel(Proxy::None, None);
        assert!(
            route_for(&none, &env, "rt.example.com", 443, no_vault)
                .unwrap()
                .is_none()
        );
        let from_env = tunnel(Proxy::Env, None);
        let r = route_for(&from_env, &env, "rt.example.com", 443, no_vault)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.authority(), r.origin()),
            ("proxy.corp:3128", "HTTPS_PROXY")
        );
        assert_eq!(r.describe(), "proxy.corp:3128 (no authentication)");
        assert!(
            route_for(&from_env, &env, "rt.internal.corp", 443, no_vault)
                .unwrap()
                .is_none()
        );
        let explicit = tunnel(Proxy::Url(url("http://proxy.corp:3128")), Some("svc-edge"));
        let r = route_for(
            &explicit,
            &ProxyEnv::default(),
            "rt.example.com",
            443,
            password,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.origin(), "[tunnel] proxy");
        assert_eq!(
            r.describe(),
            "proxy.corp:3128 (user svc-edge, password in vault)"
        );
        // A user name in the URL counts as proxy_user.
        let in_url = tunnel(Proxy::Url(url("http://svc%2Dedge@proxy.corp:3128")), None);
        let r = route_for(
            &in_url,
            &ProxyEnv::default(),
            "rt.example.com",
            443,
            password,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.user(), Some("svc-edge"));
        assert_eq!(r.url().as_str(), "http://proxy.corp:3128/");
    }

    #[test]
    fn route_refuses_passwords_in_urls_missing_passwords_and_other_schemes() {
        let e = route_for(
            &tunnel(
                Proxy::Url(url(&format!("http://u:{SECRET}@proxy.corp:3128"))),
                None,
            ),
            &ProxyEnv::default(),
            "rt.example.com",
            443,
            no_vault,
        )
        .unwrap_err();
        assert!(matches!(e, ProxyError::PasswordInUrl { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("`edge-connector vault set proxy/password`"),
            "{e}"
        );
        assert_no_secret(&e);
        let env = ProxyEnv {
            https: Some(format!("http://u:{SECRET}@proxy.corp:3128")),
            ..ProxyEnv::default()
        };
        let e = route_for(
            &tunnel(Proxy::Env, None),
            &env,
            "rt.example.com",
            443,
            no_vault,
        )
        .unwrap_err();
        assert!(e.to_string().contains("from HTTPS_PROXY"), "{e}");
        assert_no_secret(&e);

        let e = route_for(
            &tunnel(Proxy::Url(url("https://proxy.corp:3128")), None),
            &ProxyEnv::default(),
            "rt.example.com",
            443,
            no_vault,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");

        let with_user = tunnel(Proxy::Url(url("http://proxy.corp:3128")), Some("svc-edge"));
        let e = route_for(
            &with_user,
            &ProxyEnv::default(),
            "rt.example.com",
            443,
            || Ok(None),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ProxyError::PasswordMissing { user, .. } if user == "svc-edge"),
            "{e:?}"
        );
        let e = route_for(
            &with_user,
            &ProxyEnv::default(),
            "rt.example.com",
            443,
            || Err("vault key /k does not exist".into()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("vault key /k"), "{e}");

        let e = route_for(
            &with_user,
            &ProxyEnv::default(),
            "rt.example.com\r\nX: y",
            443,
            no_vault,
        )
        .unwrap_err();
        assert!(matches!(e, ProxyError::Invalid { .. }), "{e:?}");
    }

    #[test]
    fn debug_of_a_route_never_shows_the_password() {
        let r = route(3128, true);
        let text = format!("{r:?}");
        assert!(text.contains("alice") && !text.contains(SECRET), "{text}");
    }

    #[test]
    fn heads_end_at_the_empty_line_only() {
        assert!(head_complete(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(head_complete(b"HTTP/1.0 200 OK\n\n"));
        assert!(!head_complete(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(
            check_answer(
                b"HTTP/1.0 200 Connection established\r\nProxy-agent: x\r\n\r\n",
                None
            ),
            Answer::Open
        );
    }
}
