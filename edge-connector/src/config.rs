//! The connector's configuration file, owned by the customer (`/etc/edge-connector/config.toml`
//! in the packages). It names where state lives, the local policy file, the vault's key, the
//! upstream GitHub Enterprise Server and GitLab instances, and telemetry. Nothing in it is a
//! secret: secrets live in the vault.
//!
//! ```toml
//! state_dir = "/var/lib/edge-connector"          # identity, vault (default shown)
//! service_user = "edge-connector"                 # may own state_dir besides root (default)
//! policy_file = "/etc/edge-connector/policy.toml" # default: policy.toml beside this file
//!
//! [vault]
//! identity_credential = "vault.key"   # looked up in $CREDENTIALS_DIRECTORY (systemd) first
//! identity_file = "/etc/edge-connector/vault.key"
//!
//! [tunnel]
//! transport = "auto"                  # auto (QUIC, else SSH over TCP) | quic | tcp
//! proxy = "none"                      # for the TCP transport: none | env | http://proxy:3128
//! proxy_user = "svc-edge"             # Basic auth; password: vault entry proxy/password
//! exit_after_disconnected = "10m"     # exit (systemd restarts us) after this long without a tunnel
//!
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4318"        # spans of calls and upstream requests
//!
//! [audit]                             # the connector's own signed log, STATE/audit/
//! max_file_bytes = 67108864           # start a new file past this size (64 MiB)
//! max_total_bytes = 1073741824        # bound on all files together (1 GiB)
//! on_full = "refuse"                  # refuse calls at the bound | "rotate": remove the oldest file
//! [audit.syslog]                      # forward each record to a syslog collector (RFC 5424, TLS)
//! address = "collector.corp:6514"
//! ca_bundle = "/etc/edge-connector/syslog-ca.pem" # trusted besides the system roots
//! client_cert = "/etc/edge-connector/syslog-client.pem"  # mutual TLS, optional (with client_key)
//! client_key = "/etc/edge-connector/syslog-client.key"
//! queue = 10000                       # records kept while the collector is away (oldest dropped past it)
//! app_name = "edge-connector"
//! facility = "authpriv"               # authpriv | local0
//!
//! [[provider]]
//! name = "ghes"                                   # tools pick it with "instance"
//! kind = "github"                                 # github | gitlab
//! api_url = "https://github.example.com/api/v3"
//! ca_bundle = "/etc/edge-connector/ghes-ca.pem"   # extra roots for a private PKI
//! proxy = "http://proxy.corp:3128"               # none (default) | env (HTTPS_PROXY/NO_PROXY) | URL
//! proxy_user = "svc-edge"                         # Basic auth; password: vault entry provider/ghes/proxy_password
//! log_storage_hosts = ["blobs.example.com"]       # where job-log downloads may redirect to
//! [provider.oauth]
//! client_id = "Iv1.0123456789abcdef"              # secret: vault entry provider/ghes/client_secret
//! app = "github-app"                              # github-app | oauth-app (GitHub only)
//! scopes = ["repo"]
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// Where the packages put the configuration.
pub const DEFAULT_CONFIG: &str = "/etc/edge-connector/config.toml";
/// Where the packages keep state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/edge-connector";
/// Largest configuration file accepted.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not parse or a value is invalid.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// The kind of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// GitHub Enterprise Server (REST at `/api/v3`).
    Github,
    /// GitLab (REST at `/api/v4`).
    Gitlab,
}

impl ProviderKind {
    /// The tool-name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            ProviderKind::Github => "github",
            ProviderKind::Gitlab => "gitlab",
        }
    }

    fn api_suffix(self) -> &'static str {
        match self {
            ProviderKind::Github => "/api/v3",
            ProviderKind::Gitlab => "/api/v4",
        }
    }
}

/// Which kind of GitHub app the OAuth client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GithubApp {
    /// A GitHub App: user-to-server tokens expire after 8 hours and refresh with single-use
    /// refresh tokens.
    #[default]
    GithubApp,
    /// A classic OAuth App: tokens do not expire.
    OauthApp,
}

/// How requests reach an upstream or the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Proxy {
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` from the environment.
    Env,
    /// Direct, whatever the environment says: the default, so that a proxy is used only
    /// where the configuration names one.
    #[default]
    None,
    /// This proxy.
    Url(Url),
}

/// Why a proxy setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("proxy must be \"env\", \"none\" or an http(s):// proxy URL")]
pub struct BadProxy;

impl std::str::FromStr for Proxy {
    type Err = BadProxy;
    fn from_str(s: &str) -> Result<Self, BadProxy> {
        match s {
            "env" => Ok(Proxy::Env),
            "none" => Ok(Proxy::None),
            other => Url::parse(other)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .map(Proxy::Url)
                .ok_or(BadProxy),
        }
    }
}

impl<'de> Deserialize<'de> for Proxy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The OAuth client of a provider instance, for acting on behalf of users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The client id (its secret is the vault entry `provider/<name>/client_secret`).
    pub client_id: String,
    /// GitHub only: which kind of app.
    #[serde(default)]
    pub app: GithubApp,
    /// Scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The redirect URI registered at the upstream (default: the runtime's
    /// `https://<runtime>/connect/callback`).
    pub redirect_uri: Option<Url>,
}

/// One upstream instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name: `[a-z0-9-]{1,32}`; tools choose an instance by it.
    pub name: String,
    /// GitHub or GitLab.
    pub kind: ProviderKind,
    /// The REST API base, `https://host/api/v3` (GitHub) or `https://host/api/v4` (GitLab).
    pub api_url: Url,
    /// The web base for sign-in pages (default: `api_url` without its API path).
    pub web_url: Option<Url>,
    /// PEM file of extra CA certificates for a private PKI.
    pub ca_bundle: Option<PathBuf>,
    /// How to reach it (default: direct).
    #[serde(default)]
    pub proxy: Proxy,
    /// User for the proxy's Basic authentication; the password is the vault entry
    /// `provider/<name>/proxy_password`, never in this file.
    pub proxy_user: Option<String>,
    /// Time budget of one upstream request.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Retries of idempotent requests (and of requests that were never sent).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Acting on behalf of users; without it, only an admin-provided token in the vault
    /// (`provider/<name>/token`) is used, for every user.
    pub oauth: Option<OAuthConfig>,
    /// Hosts besides the upstream's own origin that job-log downloads may be redirected to
    /// (the instance's log or blob storage), exact names, no wildcards; normalised to
    /// lowercase when loaded. Their addresses must not be loopback, link-local, unspecified
    /// or multicast.
    #[serde(default)]
    pub log_storage_hosts: Vec<String>,
}

impl ProviderConfig {
    /// The web base URL, ending in `/` so that joining a path keeps a base path (GitLab
    /// under `/gitlab`).
    pub fn web_url(&self) -> Url {
        let mut u = self.web_url.clone().unwrap_or_else(|| self.api_url.clone());
        let path = u.path().trim_end_matches('/').to_owned();
        let base = match &self.web_url {
            Some(_) => path.as_str(),
            None => path.strip_suffix(self.kind.api_suffix()).unwrap_or(&path),
        };
        u.set_path(&format!("{base}/"));
        u
    }
}

/// `https`, or `http` to a loopback host.
pub fn https_or_loopback(url: &Url) -> bool {
    let local = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    url.scheme() == "https" || (url.scheme() == "http" && local)
}

/// A `log_storage_hosts` entry in the form a URL's host takes (lowercase, IPv6 in
/// brackets), or `None` when it is not a bare host.
fn log_storage_host(entry: &str) -> Option<String> {
    let bare = !entry.is_empty()
        && !entry.contains(['/', '@', '?', '#', '\\'])
        && (entry.starts_with('[') || !entry.contains(':'));
    if !bare {
        return None;
    }
    let url = Url::parse(&format!("https://{entry}/")).ok()?;
    let plain = url.port().is_none() && url.path() == "/";
    plain.then(|| url.host_str().map(str::to_owned)).flatten()
}

/// What is wrong with a provider's proxy settings, if anything: credentials belong in
/// `proxy_user` and the vault, and a user needs a proxy to authenticate to.
fn proxy_problem(p: &ProviderConfig) -> Option<String> {
    let set_password = format!(
        "`edge-connector vault set provider/{}/proxy_password`",
        p.name
    );
    if let Proxy::Url(u) = &p.proxy
        && (!u.username().is_empty() || u.password().is_some())
    {
        return Some(format!(
            "the proxy URL carries credentials, which would end up in configuration and logs: remove them, set proxy_user and store the password with {set_password}"
        ));
    }
    match (&p.proxy, p.proxy_user.as_deref()) {
        (Proxy::None, Some(_)) => Some(
            "proxy_user is set but proxy is \"none\" (the default): set proxy = \"http://HOST:PORT\" or \"env\", or remove proxy_user".to_owned(),
        ),
        (_, Some(u)) if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) => {
            Some("proxy_user must be a non-empty user name without ':' or control characters (Basic authentication)".to_owned())
        }
        _ => None,
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_retries() -> u32 {
    3
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    /// The same for an optional duration.
    pub mod option {
        use std::time::Duration;

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// The vault's key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// A systemd credential name (`LoadCredential=`/`LoadCredentialEncrypted=`), looked up
    /// in `$CREDENTIALS_DIRECTORY` first.
    #[serde(default = "default_credential")]
    pub identity_credential: String,
    /// The age identity file otherwise (made, 0600, on first use).
    pub identity_file: Option<PathBuf>,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            identity_credential: default_credential(),
            identity_file: None,
        }
    }
}

fn default_credential() -> String {
    "vault.key".to_owned()
}

/// Which transport carries the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// QUIC; where its handshake gets no answer, SSH over TCP while QUIC is probed again.
    #[default]
    Auto,
    /// QUIC over UDP only.
    Quic,
    /// SSH over TCP only (through `proxy` if set).
    Tcp,
}

/// How the connector reaches the runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// The transport, or `auto`.
    #[serde(default)]
    pub transport: Transport,
    /// The HTTP CONNECT proxy the TCP transport (and enrollment) goes through. Default:
    /// direct.
    #[serde(default = "no_proxy")]
    pub proxy: Proxy,
    /// User for the proxy's Basic authentication; the password is the vault entry
    /// `proxy/password`, never in this file.
    pub proxy_user: Option<String>,
    /// Exit after this long without a tunnel, so the service manager restarts us.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub exit_after_disconnected: Option<Duration>,
    /// The runtime's replicas, each by an address that reaches it alone (`[[tunnel.replica]]`):
    /// the connector keeps a tunnel to every one, so that a replica stopping or dying leaves
    /// the others serving its calls. Empty: one tunnel, to the address learned at enrollment.
    #[serde(default, rename = "replica")]
    pub replicas: Vec<ReplicaAddress>,
}

/// One runtime replica the connector keeps a tunnel to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaAddress {
    /// Its QUIC tunnel endpoint, `host:port`.
    pub quic: String,
    /// Its SSH-over-TCP tunnel endpoint, `host:port` (default: none, QUIC only).
    pub tcp: Option<String>,
}

impl TunnelConfig {
    /// The runtime addresses the tunnels dial: each `[[tunnel.replica]]`, or the one
    /// learned at enrollment when none is listed.
    pub fn runtime_addresses(
        &self,
        enrolled: &crate::state::ConnectorConfig,
    ) -> Vec<ReplicaAddress> {
        if self.replicas.is_empty() {
            vec![ReplicaAddress {
                quic: enrolled.quic_endpoint.clone(),
                tcp: enrolled.tcp_endpoint.clone(),
            }]
        } else {
            self.replicas.clone()
        }
    }
}

impl Default for TunnelConfig {
    fn default() -> Self {
        Self {
            transport: Transport::Auto,
            proxy: Proxy::None,
            proxy_user: None,
            exit_after_disconnected: None,
            replicas: Vec::new(),
        }
    }
}

/// `[[tunnel.replica]]`: at most one tunnel per slot the runtime accepts, each address
/// `host:port`, none twice.
fn check_replicas(replicas: &[ReplicaAddress]) -> Result<(), String> {
    let max = shared::control::MAX_TUNNEL_SLOTS as usize;
    if replicas.len() > max {
        return Err(format!(
            "[[tunnel.replica]] lists {} replicas; a connector keeps at most {max} tunnels",
            replicas.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in replicas.iter().enumerate() {
        for (field, addr) in [("quic", Some(&r.quic)), ("tcp", r.tcp.as_ref())] {
            let Some(addr) = addr else { continue };
            let well_formed = addr.rsplit_once(':').is_some_and(|(host, port)| {
                !host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .is_empty()
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !well_formed {
                return Err(format!(
                    "tunnel.replica[{i}].{field} {addr:?} must be host:port"
                ));
            }
        }
        if !seen.insert(&r.quic) {
            return Err(format!(
                "tunnel.replica[{i}].quic {:?} is listed twice",
                r.quic
            ));
        }
    }
    Ok(())
}

fn no_proxy() -> Proxy {
    Proxy::None
}

/// Telemetry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint for spans; off when unset.
    pub otlp_endpoint: Option<Url>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    service_user: Option<String>,
    policy_file: Option<PathBuf>,
    #[serde(default)]
    vault: VaultConfig,
    #[serde(default)]
    tunnel: TunnelConfig,
    #[serde(default)]
    telemetry: TelemetryConfig,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default, rename = "provider")]
    providers: Vec<ProviderConfig>,
}

/// `[audit]` as written: the log's settings and the optional `[audit.syslog]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    max_file_bytes: Option<u64>,
    max_total_bytes: Option<u64>,
    on_full: Option<crate::audit::OnFull>,
    syslog: Option<crate::audit::syslog::SyslogConfig>,
}

/// The loaded configuration, with defaults filled in and paths made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// Identity and vault.
    pub state_dir: PathBuf,
    /// The user the service runs as (a name or a uid): besides root and the user running a
    /// command, the only owner a state directory may have.
    pub service_user: String,
    /// The local policy file.
    pub policy_file: Option<PathBuf>,
    /// The vault's key.
    pub vault: VaultConfig,
    /// How the tunnel reaches the runtime.
    pub tunnel: TunnelConfig,
    /// Telemetry.
    pub telemetry: TelemetryConfig,
    /// The connector's own audit log.
    pub audit: crate::audit::AuditConfig,
    /// Where its records are forwarded as they are written, if anywhere.
    pub audit_syslog: Option<crate::audit::syslog::SyslogConfig>,
    /// Upstream instances.
    pub providers: Vec<ProviderConfig>,
}

impl Config {
    /// A configuration with no file: only `state_dir`, diagnostic tools, no upstreams.
    pub fn bare(state_dir: PathBuf) -> Self {
        Self {
            path: None,
            policy_file: None,
            vault: VaultConfig {
                identity_file: Some(state_dir.join("vault.key")),
                ..VaultConfig::default()
            },
            state_dir,
            service_user: crate::state_guard::DEFAULT_SERVICE_USER.to_owned(),
            tunnel: TunnelConfig::default(),
            telemetry: TelemetryConfig::default(),
            audit: crate::audit::AuditConfig::default(),
            audit_syslog: None,
            providers: Vec::new(),
        }
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_CONFIG_BYTES {
            return Err(read(std::io::Error::other(format!(
                "larger than {MAX_CONFIG_BYTES} bytes"
            ))));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(path, &text)
    }

    /// Parses configuration text; `path` names the file in errors and anchors relative
    /// paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, message: String| {
            let at = span.map_or(0, |s| s.start);
            let before = text.get(..at).unwrap_or(text);
            ConfigError::Invalid {
                path: path.to_owned(),
                line: before.matches('\n').count() + 1,
                column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                message,
            }
        };
        let mut raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.span(), e.message().trim().to_owned()))?;
        let base = path.parent().unwrap_or(Path::new("/"));
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mut names = std::collections::HashSet::new();
        for (i, p) in raw.providers.iter_mut().enumerate() {
            let ok = !p.name.is_empty()
                && p.name.len() <= 32
                && p.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(invalid(
                    None,
                    format!(
                        "provider[{i}].name {:?} must be 1 to 32 of a-z, 0-9 and '-'",
                        p.name
                    ),
                ));
            }
            if !names.insert(p.name.clone()) {
                return Err(invalid(
                    None,
                    format!("provider name {:?} is used twice", p.name),
                ));
            }
            // Tokens, codes and the client secret travel to these: https only, but for a
            // loopback test server.
            let urls = [
                ("api_url", Some(&p.api_url)),
                ("web_url", p.web_url.as_ref()),
                (
                    "oauth.redirect_uri",
                    p.oauth.as_ref().and_then(|o| o.redirect_uri.as_ref()),
                ),
            ];
            for (field, url) in urls {
                if let Some(url) = url
                    && !https_or_loopback(url)
                {
                    return Err(invalid(
                        None,
                        format!(
                            "provider {}: {field} must be https (http only on a loopback address)",
                            p.name
                        ),
                    ));
                }
            }
            for h in &mut p.log_storage_hosts {
                match log_storage_host(h) {
                    Some(host) => *h = host,
                    None => {
                        return Err(invalid(
                            None,
                            format!(
                                "provider {}: log_storage_hosts entry {h:?} must be a host name or address, without scheme, port or path",
                                p.name
                            ),
                        ));
                    }
                }
            }
            if let Some(problem) = proxy_problem(p) {
                return Err(invalid(None, format!("provider {}: {problem}", p.name)));
            }
            if p.max_retries > 10 {
                return Err(invalid(
                    None,
                    format!("provider {}: max_retries must be at most 10", p.name),
                ));
            }
        }
        check_replicas(&raw.tunnel.replicas).map_err(|e| invalid(None, e))?;
        let state_dir = abs(raw
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)));
        let service_user = raw
            .service_user
            .unwrap_or_else(|| crate::state_guard::DEFAULT_SERVICE_USER.to_owned());
        if service_user.is_empty() || service_user.chars().any(|c| c.is_whitespace()) {
            return Err(invalid(
                None,
                "service_user must be a user name or a uid".to_owned(),
            ));
        }
        let policy_file = Some(abs(raw
            .policy_file
            .unwrap_or_else(|| PathBuf::from("policy.toml"))));
        let mut vault = raw.vault;
        vault.identity_file = Some(abs(vault
            .identity_file
            .unwrap_or_else(|| PathBuf::from("vault.key"))));
        let providers = raw
            .providers
            .into_iter()
            .map(|mut p| {
                p.ca_bundle = p.ca_bundle.map(abs);
                p
            })
            .collect();
        let defaults = crate::audit::AuditConfig::default();
        let audit = crate::audit::AuditConfig {
            max_file_bytes: raw.audit.max_file_bytes.unwrap_or(defaults.max_file_bytes),
            max_total_bytes: raw
                .audit
                .max_total_bytes
                .unwrap_or(defaults.max_total_bytes),
            on_full: raw.audit.on_full.unwrap_or(defaults.on_full),
        }
        .checked()
        .map_err(|e| invalid(None, e))?;
        let syslog_at = text.find("[audit.syslog]").map(|i| i..i);
        let audit_syslog = raw
            .audit
            .syslog
            .map(|mut s| {
                s.ca_bundle = abs(s.ca_bundle);
                s.client_cert = s.client_cert.map(abs);
                s.client_key = s.client_key.map(abs);
                s.checked().map_err(|e| invalid(syslog_at.clone(), e))
            })
            .transpose()?;
        Ok(Self {
            path: Some(path.to_owned()),
            state_dir,
            service_user,
            policy_file,
            vault,
            tunnel: raw.tunnel,
            telemetry: raw.telemetry,
            audit,
            audit_syslog,
            providers,
        })
    }

    /// The vault file.
    pub fn vault_path(&self) -> PathBuf {
        self.state_dir.join("vault.age")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_storage_hosts_are_bare_hosts_normalised() {
        assert_eq!(
            log_storage_host("Blobs.Example.COM").as_deref(),
            Some("blobs.example.com")
        );
        assert_eq!(log_storage_host("10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(log_storage_host("[::1]").as_deref(), Some("[::1]"));
        for bad in [
            "",
            "https://blobs.example.com",
            "blobs.example.com:443",
            "blobs.example.com/logs",
            "user@blobs.example.com",
            "::1",
        ] {
            assert_eq!(log_storage_host(bad), None, "{bad}");
        }
        let text = "[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"https://g.example/api/v3\"\nlog_storage_hosts = [\"https://x\"]\n";
        let e = Config::parse(Path::new("/c.toml"), text).unwrap_err();
        assert!(e.to_string().contains("log_storage_hosts"), "{e}");
    }

    #[test]
    fn replicas_each_get_a_tunnel_and_bad_lists_are_refused() {
        let text = "[[tunnel.replica]]\nquic = \"rt-a.example:7443\"\ntcp = \"rt-a.example:2222\"\n\
                    [[tunnel.replica]]\nquic = \"[2001:db8::2]:7443\"\n";
        let c = Config::parse(Path::new("/c.toml"), text).unwrap();
        assert_eq!(
            c.tunnel.replicas,
            [
                ReplicaAddress {
                    quic: "rt-a.example:7443".into(),
                    tcp: Some("rt-a.example:2222".into())
                },
                ReplicaAddress {
                    quic: "[2001:db8::2]:7443".into(),
                    tcp: None
                },
            ]
        );
        let twice = "[[tunnel.replica]]\nquic = \"a:1\"\n[[tunnel.replica]]\nquic = \"a:1\"\n";
        let nine: String = (1..=9)
            .map(|i| format!("[[tunnel.replica]]\nquic = \"rt-{i}:7443\"\n"))
            .collect();
        for (bad, says) in [
            (twice, "listed twice"),
            ("[[tunnel.replica]]\nquic = \"rt-a\"\n", "must be host:port"),
            (
                "[[tunnel.replica]]\nquic = \":7443\"\n",
                "must be host:port",
            ),
            (
                "[[tunnel.replica]]\nquic = \"a:1\"\ntcp = \"a:0\"\n",
                "must be host:port",
            ),
            (
                "[[tunnel.replica]]\nquic = \"a:1\"\nssh = \"a:2\"\n",
                "unknown field",
            ),
            (&nine, "at most 8 tunnels"),
        ] {
            let e = Config::parse(Path::new("/c.toml"), bad).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn reads_a_full_config_with_relative_paths_anchored() {
        let text = r#"
state_dir = "state"
[vault]
identity_file = "keys/vault.key"
[[provider]]
name = "ghes"
kind = "github"
api_url = "https://github.example.com/api/v3"
ca_bundle = "ghes-ca.pem"
timeout = "10s"
[provider.oauth]
client_id = "Iv1.x"
app = "oauth-app"
[[provider]]
name = "gl"
kind = "gitlab"
api_url = "http://127.0.0.1:9000/api/v4"
proxy = "none"
"#;
        let c = Config::parse(Path::new("/etc/ec/config.toml"), text).unwrap();
        assert_eq!(c.state_dir, Path::new("/etc/ec/state"));
        assert_eq!(c.service_user, "edge-connector");
        assert_eq!(
            c.policy_file.as_deref(),
            Some(Path::new("/etc/ec/policy.toml"))
        );
        assert_eq!(
            c.vault.identity_file.as_deref(),
            Some(Path::new("/etc/ec/keys/vault.key"))
        );
        let gh = &c.providers[0];
        assert_eq!(gh.web_url().as_str(), "https://github.example.com/");
        assert_eq!(
            gh.ca_bundle.as_deref(),
            Some(Path::new("/etc/ec/ghes-ca.pem"))
        );
        assert_eq!(gh.timeout, Duration::from_secs(10));
        assert_eq!(gh.oauth.as_ref().unwrap().app, GithubApp::OauthApp);
        assert_eq!(c.providers[1].web_url().as_str(), "http://127.0.0.1:9000/");
        // A GitLab under a path keeps it, so its OAuth endpoints join below it.
        let sub = Config::parse(
            Path::new("/etc/ec/config.toml"),
            "[[provider]]\nname = \"gl\"\nkind = \"gitlab\"\napi_url = \"https://h/gitlab/api/v4\"\n",
        )
        .unwrap();
        let web = sub.providers[0].web_url();
        assert_eq!(web.as_str(), "https://h/gitlab/");
        assert_eq!(
            web.join("oauth/token").unwrap().as_str(),
            "https://h/gitlab/oauth/token"
        );
        assert_eq!(c.providers[1].proxy, Proxy::None);
    }

    #[test]
    fn bad_values_name_the_line_or_the_provider() {
        let err = |t: &str| {
            Config::parse(Path::new("c.toml"), t)
                .unwrap_err()
                .to_string()
        };
        let e = err("state_dir = 3\n");
        assert!(e.starts_with("c.toml:1:"), "{e}");
        let e = err("service_user = \"\"\n");
        assert!(
            e.contains("service_user must be a user name or a uid"),
            "{e}"
        );
        let e =
            err("\n[[provider]]\nname = \"x\"\nkind = \"svn\"\napi_url = \"https://a/api/v3\"\n");
        assert!(e.contains("c.toml:4:") && e.contains("svn"), "{e}");
        let e = err(
            "[[provider]]\nname = \"Bad\"\nkind = \"github\"\napi_url = \"https://a/api/v3\"\n",
        );
        assert!(e.contains("must be 1 to 32"), "{e}");
        let e = err(
            "[[provider]]\nname = \"a\"\nkind = \"github\"\napi_url = \"http://ghes.corp/api/v3\"\n",
        );
        assert!(e.contains("must be https"), "{e}");
        let e = err(
            "[[provider]]\nname = \"a\"\nkind = \"github\"\napi_url = \"https://a/api/v3\"\nweb_url = \"http://a/\"\n",
        );
        assert!(e.contains("web_url must be https"), "{e}");
        let e = err(
            "[[provider]]\nname = \"a\"\nkind = \"gitlab\"\napi_url = \"https://a/api/v4\"\n[provider.oauth]\nclient_id = \"x\"\nredirect_uri = \"http://rt.example/connect/callback\"\n",
        );
        assert!(e.contains("oauth.redirect_uri must be https"), "{e}");
        let e = err(
            "[[provider]]\nname = \"a\"\nkind = \"github\"\napi_url = \"https://a/api/v3\"\nproxy = \"socks5://x\"\n",
        );
        assert!(e.contains("proxy must be"), "{e}");
        let e = err("unknown = 1\n");
        assert!(e.contains("unknown"), "{e}");
    }

    const GHES: &str = "[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"https://g.example/api/v3\"\n";

    #[test]
    fn a_providers_proxy_defaults_to_none_and_takes_a_user() {
        let c = Config::parse(Path::new("/c.toml"), GHES).unwrap();
        assert_eq!(c.providers[0].proxy, Proxy::None);
        assert_eq!(c.providers[0].proxy_user, None);
        for proxy in ["env", "http://proxy.corp:3128"] {
            let text = format!("{GHES}proxy = \"{proxy}\"\nproxy_user = \"svc-edge\"\n");
            let c = Config::parse(Path::new("/c.toml"), &text).unwrap();
            assert_eq!(c.providers[0].proxy_user.as_deref(), Some("svc-edge"));
        }
    }

    #[test]
    fn a_proxy_user_needs_a_proxy_and_credentials_stay_out_of_the_url() {
        let err = |extra: &str| {
            Config::parse(Path::new("c.toml"), &format!("{GHES}{extra}"))
                .unwrap_err()
                .to_string()
        };
        let e = err("proxy_user = \"svc-edge\"\n");
        assert!(
            e.contains("provider ghes: proxy_user is set but proxy is \"none\""),
            "{e}"
        );
        let e = err("proxy = \"none\"\nproxy_user = \"svc-edge\"\n");
        assert!(e.contains("proxy_user is set but proxy is \"none\""), "{e}");
        let e = err("proxy = \"http://u:Pa55word@proxy.corp:3128\"\n");
        assert!(
            e.contains("carries credentials")
                && e.contains("`edge-connector vault set provider/ghes/proxy_password`")
                && !e.contains("Pa55word"),
            "{e}"
        );
        let e = err("proxy = \"env\"\nproxy_user = \"a:b\"\n");
        assert!(e.contains("proxy_user must be"), "{e}");
    }

    #[test]
    fn the_audit_section_has_defaults_and_refuses_bounds_that_cannot_work() {
        let parse = |text: &str| Config::parse(Path::new("/etc/ec/config.toml"), text);
        let c = parse("").unwrap();
        assert_eq!(c.audit, crate::audit::AuditConfig::default());
        assert_eq!(c.audit.on_full, crate::audit::OnFull::Refuse);
        let c = parse(
            "[audit]\nmax_file_bytes = 1048576\nmax_total_bytes = 4194304\non_full = \"rotate\"\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.audit.max_file_bytes,
                c.audit.max_total_bytes,
                c.audit.on_full
            ),
            (1 << 20, 4 << 20, crate::audit::OnFull::Rotate)
        );
        let e =
            parse("[audit]\nmax_file_bytes = 1048576\nmax_total_bytes = 1048576\n").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(parse("[audit]\non_full = \"drop\"\n").is_err());
    }

    #[test]
    fn the_syslog_section_is_optional_has_defaults_and_names_the_line_of_a_bad_value() {
        let parse = |text: &str| Config::parse(Path::new("/etc/ec/config.toml"), text);
        assert_eq!(parse("").unwrap().audit_syslog, None);
        let c = parse(
            "[audit]\non_full = \"rotate\"\n[audit.syslog]\naddress = \"collector.corp:6514\"\nca_bundle = \"ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.audit.on_full, crate::audit::OnFull::Rotate);
        let s = c.audit_syslog.unwrap();
        assert_eq!(s.ca_bundle, Path::new("/etc/ec/ca.pem"));
        assert_eq!((s.queue, s.app_name.as_str()), (10_000, "edge-connector"));
        assert_eq!(s.facility, crate::audit::syslog::Facility::Authpriv);

        let e = parse("state_dir = \"/s\"\n\n[audit.syslog]\naddress = \"collector.corp\"\nca_bundle = \"ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/ec/config.toml:3:") && e.contains("host:port"),
            "{e}"
        );
        let e = parse("[audit.syslog]\naddress = \"c:6514\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ca_bundle"), "{e}");
        let e = parse("[audit.syslog]\naddress = \"c:6514\"\nca_bundle = \"ca.pem\"\nport = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/ec/config.toml:4:"), "{e}");
    }
}
