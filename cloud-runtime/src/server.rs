//! `serve`: binds the QUIC tunnel, the HTTPS endpoint and the admin socket, and runs them
//! until told to stop. Tests and benchmarks start it in-process through [`start`].

use std::error::Error as StdError;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::admin::AdminError;
use crate::audit::AuditLog;
use crate::audit::digest::DigestKeys;
use crate::audit::log::AuditError;
use crate::config_error::ConfigError;
use crate::data_dir::{DataDir, DataDirError};
use crate::enroll::{self, EnrollContext};
use crate::mcp;
use crate::mcp::authenticate::Auth;
use crate::mcp::gateways::Gateways;
use crate::mcp::shared_state::McpOptions;
use crate::metrics::Metrics;
use crate::oauth::OAuth;
use crate::policy::Policies;
use crate::rate_limit::{self, RateLimit};
use crate::runtime_keys::{KeysError, RuntimeKeys};
use crate::store::StoreError;
use crate::telemetry::Telemetry;
use crate::tls::TlsError;
use crate::tools_changed::ToolsChanged;
use crate::tunnel::{self, Registry, TunnelContext};
use crate::{admin, https, tls};

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Bad configuration (see [`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be read.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// Another `serve` holds the data directory.
    #[error("another `cloud-runtime serve` is already running on {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// A file could not be opened or read, or an address could not be bound.
    #[error("{doing}")]
    Io {
        /// What was being done.
        doing: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A socket or file operation failed.
    #[error(transparent)]
    Os(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS could not be joined.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A key of the runtime could not be had (its files, or the sealed copies).
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The TLS configuration could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The SSH host key cannot be read or made.
    #[error(transparent)]
    SshHostKey(#[from] crate::tunnel::ssh_listener::HostKeyError),
    /// The admin socket could not be bound.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The OpenTelemetry exporter could not be made.
    #[error(transparent)]
    Telemetry(#[from] shared::trace::ExporterError),
    /// A part of the runtime (signing keys, identity-provider and metadata clients) could
    /// not be made.
    #[error(transparent)]
    Component(Cause),
}

impl StartError {
    /// Whether an operator must fix the configuration (exit status 64).
    pub fn is_bad_configuration(&self) -> bool {
        match self {
            StartError::Config(_) => true,
            StartError::DataDir(e) => e.is_bad_configuration(),
            StartError::Keys(e) => e.is_bad_configuration(),
            _ => false,
        }
    }

    fn component(e: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StartError::Component(Cause(e.into()))
    }
}

/// An error of another part of the runtime, shown as that part shows it.
#[derive(Debug)]
pub struct Cause(Box<dyn StdError + Send + Sync>);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

fn io(doing: String) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Io { doing, source }
}

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The data directory made by `init`.
    pub data_dir: DataDir,
    /// This replica's name among those sharing the store.
    pub replica_id: crate::replica::ReplicaId,
    /// NATS, joining this replica to the others (calls to tunnels they hold).
    pub nats: Option<crate::cluster::NatsOptions>,
    /// The operator's key-encryption key: with it, the runtime's secret keys live in the
    /// store, sealed, shared by every replica ([`crate::runtime_keys`]).
    pub key_encryption_key: Option<PathBuf>,
    /// UDP address of the QUIC tunnel listener.
    pub quic_listen: SocketAddr,
    /// TCP address of the HTTPS listener (enrollment).
    pub https_listen: SocketAddr,
    /// `host:port` told to connectors for the tunnel, if not `<hostname>:<quic port>`.
    pub quic_advertise: Option<String>,
    /// New tunnels admitted per second (QUIC and SSH together); beyond it, connectors are
    /// told to retry after a spread delay.
    pub tunnel_handshake_rate: std::num::NonZeroU32,
    /// TCP address of the SSH-over-TCP tunnel listener (off when `None`).
    pub ssh_listen: Option<SocketAddr>,
    /// `host:port` told to connectors for the SSH tunnel, if not `<hostname>:<ssh port>`.
    pub ssh_advertise: Option<String>,
    /// Lifetime of connector certificates.
    pub cert_ttl: Duration,
    /// Heartbeat interval imposed on connectors.
    pub heartbeat_interval: Duration,
    /// MCP endpoint options.
    pub mcp: McpServeOptions,
    /// OTLP/HTTP endpoint for spans and audit log records (off when `None`).
    pub otlp_endpoint: Option<url::Url>,
    /// Where to serve Prometheus metrics (off when `None`).
    pub metrics_listen: Option<SocketAddr>,
    /// Append every tunnel frame to this file (debugging; off when `None`).
    pub debug_frame_log: Option<std::path::PathBuf>,
    /// Connection limits, idle timeout and trusted proxies of the HTTPS listener.
    pub https: https::HttpsOptions,
}

/// MCP settings of `serve`.
#[derive(Debug, Clone)]
pub struct McpServeOptions {
    /// Loopback-only unauthenticated development mode.
    pub dev_unauthenticated: bool,
    /// In development mode, also serve HTTP (no TLS) here, for local tools that expect
    /// `http://localhost`. Loopback only.
    pub dev_http_listen: Option<SocketAddr>,
    /// Extra browser origins allowed besides the runtime's own.
    pub extra_origins: Vec<String>,
    /// Time budget of a tool call.
    pub call_timeout: Duration,
    /// Extra CA (PEM) trusted when fetching client ID metadata documents.
    pub client_metadata_ca: Option<std::path::PathBuf>,
    /// Development: allow client ID metadata documents served from loopback.
    pub dev_client_metadata_loopback: bool,
}

impl Default for McpServeOptions {
    fn default() -> Self {
        Self {
            dev_unauthenticated: false,
            dev_http_listen: None,
            extra_origins: Vec::new(),
            call_timeout: Duration::from_secs(120),
            client_metadata_ca: None,
            dev_client_metadata_loopback: false,
        }
    }
}

/// A running runtime.
#[derive(Debug)]
pub struct Runtime {
    /// Online connectors; calls go through it.
    pub registry: Arc<Registry>,
    /// Where the tunnel listens.
    pub quic_addr: SocketAddr,
    /// Where the SSH-over-TCP tunnel listens, if it does.
    pub ssh_addr: Option<SocketAddr>,
    /// Where HTTPS listens.
    pub https_addr: SocketAddr,
    /// Where metrics are served, if they are.
    pub metrics_addr: Option<SocketAddr>,
    endpoint: quinn::Endpoint,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    audit: AuditLog,
    telemetry: Arc<Telemetry>,
    _lock: File,
}

impl ServeOptions {
    /// Checks the settings that do not depend on the data directory.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.https.limits;
        if limits.per_client > limits.max {
            return Err(ConfigError::PerClientAboveMax);
        }
        if self.https.idle_timeout.is_zero() {
            return Err(ConfigError::ZeroIdleTimeout);
        }
        let (min, max) = (
            certs::authority::MIN_CONNECTOR_TTL,
            certs::authority::MAX_CONNECTOR_TTL,
        );
        if !(min..=max).contains(&self.cert_ttl) {
            return Err(ConfigError::ConnectorCertTtl { min, max });
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60))
            .contains(&self.heartbeat_interval)
        {
            return Err(ConfigError::HeartbeatInterval);
        }
        Ok(())
    }

    /// Checks the development settings: no unauthenticated or plain-HTTP serving beyond
    /// loopback.
    fn validate_dev_mode(&self) -> Result<(), ConfigError> {
        if self.mcp.dev_unauthenticated && !self.https_listen.ip().is_loopback() {
            return Err(ConfigError::DevUnauthenticatedNotLoopback(
                self.https_listen,
            ));
        }
        match self.mcp.dev_http_listen {
            Some(_) if !self.mcp.dev_unauthenticated => Err(ConfigError::DevHttpWithoutDevMode),
            Some(addr) if !addr.ip().is_loopback() => Err(ConfigError::DevHttpNotLoopback(addr)),
            _ => Ok(()),
        }
    }
}

/// Binds everything and starts serving.
pub async fn start(opts: ServeOptions) -> Result<Runtime, StartError> {
    opts.validate()?;
    let dir = &opts.data_dir;
    let config = dir.config()?;
    opts.validate_dev_mode()?;
    if let Some(path) = &opts.debug_frame_log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(format!("opening the frame log {}", path.display())))?;
        shared::io::tap(file);
        tracing::warn!(path = %path.display(), "every tunnel frame is copied to the frame log");
    }
    let lock = File::create(dir.root().join("serve.lock"))?;
    if lock.try_lock().is_err() {
        return Err(StartError::AlreadyRunning(dir.root().to_owned()));
    }
    let store = dir.store().await?;
    store.reset_online(&opts.replica_id).await?;
    let identity = tls::ServerIdentity::load(dir)?;
    let keys = RuntimeKeys::load(
        dir,
        &config,
        &store,
        opts.key_encryption_key.as_deref(),
        opts.ssh_listen.is_some(),
    )
    .await?;
    let ca = keys.ca()?;
    let reset_secret = &keys.reset_secret;
    let socket = std::net::UdpSocket::bind(opts.quic_listen).map_err(io(format!(
        "binding the QUIC listener on {}",
        opts.quic_listen
    )))?;
    let endpoint = quinn::Endpoint::new(
        tunnel::endpoint::endpoint_config(reset_secret),
        Some(tls::quic_server_config(&identity, ca.cert_der())?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    let quic_addr = endpoint.local_addr()?;
    let https_listener = tokio::net::TcpListener::bind(opts.https_listen)
        .await
        .map_err(io(format!(
            "binding the HTTPS listener on {}",
            opts.https_listen
        )))?;
    let https_addr = https_listener.local_addr()?;
    let ssh = match opts.ssh_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(io(format!("binding the SSH tunnel listener on {addr}")))?;
            let host_key = keys.ssh_host_key.clone().ok_or_else(|| {
                StartError::component("the SSH host key was not loaded".to_owned())
            })?;
            Some((listener, host_key))
        }
        None => None,
    };
    let ssh_addr = match &ssh {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    let dev_http_listener = match opts.mcp.dev_http_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(io(format!(
                    "binding the development HTTP listener on {addr}"
                )))?,
        ),
        None => None,
    };
    let dev_http_addr = dev_http_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let admin_listener = admin::bind(&dir.admin_socket())?;

    let trust_domain: shared::identity::TrustDomain =
        config
            .trust_domain
            .parse()
            .map_err(|source| ConfigError::StoredTrustDomain {
                value: config.trust_domain.clone(),
                source,
            })?;
    let tools_changed = ToolsChanged::default();
    let registry = Arc::new(Registry::new(tools_changed.clone()));
    let telemetry = Arc::new(Telemetry::new(opts.otlp_endpoint.as_ref())?);
    // The writer thread runs as long as the process; shutdown flushes it.
    // Replicas on PostgreSQL keep the audit trail in the database, one chain each, so it
    // outlives any one of them; a single process keeps the file in its data directory.
    let (audit, _writer) = match store.engine() {
        crate::store::Engine::Postgres => (
            AuditLog::open_in_store(
                store.clone(),
                opts.replica_id.to_string(),
                telemetry.audit_sink(),
            )
            .await?,
            None,
        ),
        crate::store::Engine::Sqlite => {
            let (audit, writer) = AuditLog::open(&dir.audit_log(), telemetry.audit_sink())?;
            (audit, Some(writer))
        }
    };
    let policies = Arc::new(Policies::default());
    policies.refresh(&store).await?;
    let metrics = Arc::new(Metrics::default());
    let metrics_listener = match opts.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(io(format!("binding the metrics listener on {addr}")))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let cluster = match &opts.nats {
        Some(nats) => Some(
            crate::cluster::Cluster::join(
                nats,
                &opts.replica_id,
                registry.clone(),
                &tracker,
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };

    let host = if config.hostname.contains(':') {
        format!("[{}]", config.hostname)
    } else {
        config.hostname.clone()
    };
    let enroll_ctx = Arc::new(EnrollContext {
        store: store.clone(),
        ca: keys.ca()?,
        trust_domain: trust_domain.clone(),
        cert_ttl: opts.cert_ttl,
        quic_endpoint: opts
            .quic_advertise
            .clone()
            .unwrap_or_else(|| format!("{host}:{}", quic_addr.port())),
        server_name: config.hostname.clone(),
        tcp_endpoint: ssh_addr.map(|a| {
            opts.ssh_advertise
                .clone()
                .unwrap_or_else(|| format!("{host}:{}", a.port()))
        }),
        ssh_host_key: ssh
            .as_ref()
            .map(|(_, key)| tunnel::ssh_listener::public_line(key)),
    });
    let tunnel_ctx = Arc::new(TunnelContext {
        store,
        ca,
        trust_domain,
        cert_ttl: opts.cert_ttl,
        heartbeat_interval: opts.heartbeat_interval,
        registry: registry.clone(),
        audit: audit.clone(),
        handshakes: tunnel::handshake_rate::HandshakeRate::new(opts.tunnel_handshake_rate),
        replica: opts.replica_id.clone(),
    });

    let public_limit = RateLimit::new(PUBLIC_PER_MINUTE, PUBLIC_BURST);
    // The console's pages: an admin clicks through many, but each unauthenticated one
    // starts a sign-in, so an address still has a budget.
    let console_limit = RateLimit::new(CONSOLE_PER_MINUTE, CONSOLE_BURST);
    let enroll_routes = Router::new()
        .route(shared::enroll::ENROLL_PATH, post(enroll::enroll))
        .route(shared::enroll::ENROLL_INFO_PATH, get(enroll::info))
        .layer(DefaultBodyLimit::max(shared::enroll::MAX_ENROLL_BODY))
        .with_state(enroll_ctx)
        .layer(axum::middleware::from_fn_with_state(
            public_limit.clone(),
            rate_limit::limit,
        ));
    let issuer = public_url(&config.hostname, https_addr.port());
    let mcp_options = mcp_options(
        &issuer,
        &config.hostname,
        https_addr,
        dev_http_addr,
        &opts.mcp,
    );
    let signer = Arc::new(crate::oauth::signer::SignerCell::new(keys.signer));
    let oauth = Arc::new(OAuth {
        store: tunnel_ctx.store.clone(),
        issuer,
        signer: signer.clone(),
        idp: crate::oauth::idp::IdpClient::new().map_err(StartError::component)?,
        metadata: crate::oauth::client_metadata::MetadataFetcher::new(
            opts.mcp.client_metadata_ca.as_deref(),
            opts.mcp.dev_client_metadata_loopback,
        )
        .map_err(StartError::component)?,
        revoked_clients: Default::default(),
    });
    let auth_mode = if opts.mcp.dev_unauthenticated {
        tracing::warn!(
            "MCP is served WITHOUT authentication (--dev-unauthenticated, loopback only)"
        );
        Auth::DevUnauthenticated
    } else {
        Auth::OAuth(oauth.clone())
    };
    let elicitations = Arc::new(mcp::shared_state::elicitations::Elicitations::default());
    let approve_routes = Router::new()
        .route("/approve/{id}", get(crate::approve::show))
        .route("/approve/{id}/sign-in", get(crate::approve::sign_in))
        .route("/sign-in-again/done", get(crate::sign_in_again::done))
        .route("/sign-in-again/{tenant}", get(crate::sign_in_again::start))
        .with_state(oauth.clone());
    let connect_routes = Router::new()
        .route("/connect/callback", get(crate::connect::callback))
        .route("/connect/{id}", get(crate::connect::start))
        .with_state(Arc::new(crate::connect::ConnectContext {
            oauth: oauth.clone(),
            registry: registry.clone(),
            audit: audit.clone(),
            elicitations: elicitations.clone(),
        }))
        .merge(approve_routes)
        .layer(axum::middleware::from_fn_with_state(
            public_limit.clone(),
            rate_limit::limit,
        ));
    let digest_keys = Arc::new(DigestKeys::new(tunnel_ctx.store.clone()));
    let gateways = Arc::new(Gateways::new(
        tunnel_ctx.store.clone(),
        Arc::new(mcp::shared_state::Shared {
            registry: registry.clone(),
            options: mcp_options,
            policies: policies.clone(),
            audit: audit.clone(),
            digest_keys: digest_keys.clone(),
            telemetry: telemetry.clone(),
            metrics: metrics.clone(),
            state_key: keys.state_key,
            tools_changed: tools_changed.clone(),
            store: tunnel_ctx.store.clone(),
            elicitations: elicitations.clone(),
        }),
        cluster.clone(),
    ));
    let mcp_routes = Router::new()
        .route("/t/{tenant}/g/{gateway}/mcp", any(mcp::gateways::handle))
        .route_layer(axum::middleware::from_fn_with_state(
            mcp::jsonrpc_guard::Limits {
                max_body_bytes: MAX_MCP_BODY,
            },
            mcp::jsonrpc_guard::guard,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            auth_mode,
            mcp::authenticate::authenticate,
        ))
        .with_state(gateways);
    let admin_api = Arc::new(crate::admin_api::AdminApi {
        store: tunnel_ctx.store.clone(),
        audit: audit.clone(),
        enroll_endpoint: format!("{host}:{}", https_addr.port()),
        ca_fingerprint: dir
            .ca_fingerprint()
            .map_err(StartError::component)?
            .to_string(),
        public_url: public_url(&config.hostname, https_addr.port()),
        audit_file: dir.audit_log(),
        verifying: tokio::sync::Semaphore::new(1),
        registry: registry.clone(),
    });
    let console = Arc::new(crate::admin_console::Console {
        api: admin_api.clone(),
        oauth: oauth.clone(),
        live_streams: Arc::new(tokio::sync::Semaphore::new(
            crate::admin_console::live::MAX_STREAMS,
        )),
    });
    let router =
        Router::new()
            .merge(enroll_routes)
            .merge(crate::admin_api::routes(admin_api.clone()))
            .merge(crate::admin_console::routes(console).layer(
                axum::middleware::from_fn_with_state(console_limit.clone(), rate_limit::limit),
            ))
            .merge(mcp_routes)
            .merge(connect_routes)
            .merge(
                crate::oauth::routes(oauth).layer(axum::middleware::from_fn_with_state(
                    public_limit.clone(),
                    rate_limit::limit,
                )),
            )
            .merge(crate::health::routes(crate::health::Readiness::new(
                tunnel_ctx.store.clone(),
                cluster.clone(),
                shutdown.clone(),
            )));
    if let Some(cluster) = &cluster {
        cluster
            .serve_sessions(router.clone(), &tracker, shutdown.clone())
            .await?;
    }

    // The audit search index follows the chains (the admin API reads it).
    tracker.spawn(crate::audit::index::follow(
        tunnel_ctx.store.clone(),
        match tunnel_ctx.store.engine() {
            crate::store::Engine::Postgres => crate::audit::index::Chains::Store,
            crate::store::Engine::Sqlite => crate::audit::index::Chains::File(dir.audit_log()),
        },
        shutdown.clone(),
    ));
    tracker.spawn(tunnel::listener::accept_loop(
        endpoint.clone(),
        tunnel_ctx.clone(),
        shutdown.clone(),
        tracker.clone(),
    ));
    if let Some((listener, host_key)) = ssh {
        tracker.spawn(tunnel::ssh_listener::accept_loop(
            listener,
            tunnel::ssh_listener::server_config(host_key),
            tunnel_ctx.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    tracker.spawn(purge_expired(
        tunnel_ctx.store.clone(),
        vec![public_limit, console_limit],
        shutdown.clone(),
    ));
    tracker.spawn(policies.watch(tunnel_ctx.store.clone(), tools_changed, shutdown.clone()));
    if let Some(kek) = keys.sealed_under {
        tracker.spawn(crate::runtime_keys::follow_token_signing(
            tunnel_ctx.store.clone(),
            kek,
            signer,
            shutdown.clone(),
        ));
    }
    tracker.spawn(tunnel::revocation::watch(tunnel_ctx, shutdown.clone()));
    if let Some(listener) = metrics_listener {
        tracker.spawn(crate::metrics::serve(
            listener,
            metrics,
            registry.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(listener) = dev_http_listener {
        tracker.spawn(https::serve(
            listener,
            None,
            router.clone(),
            opts.https.clone(),
            shutdown.clone(),
        ));
    }
    tracker.spawn(https::serve(
        https_listener,
        Some(tls::https_server_config(&identity)?),
        router,
        opts.https.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(admin::serve(
        admin_listener,
        admin_api.clone(),
        registry.clone(),
        audit.clone(),
        digest_keys,
        shutdown.clone(),
    ));
    info!(quic = %quic_addr, ssh = ?ssh_addr, https = %https_addr, hostname = %config.hostname, "runtime serving");
    Ok(Runtime {
        registry,
        quic_addr,
        ssh_addr,
        https_addr,
        metrics_addr,
        endpoint,
        shutdown,
        tracker,
        audit,
        telemetry,
        _lock: lock,
    })
}

/// The runtime's public base URL (its OAuth issuer) at `hostname` with HTTPS on `port`.
pub fn public_url(hostname: &str, port: u16) -> String {
    let host = if hostname.contains(':') {
        format!("[{hostname}]")
    } else {
        hostname.to_owned()
    };
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// Where a tenant's identity provider sends users back: the redirect URI to register there.
pub fn idp_redirect_uri(hostname: &str, port: u16) -> String {
    format!("{}/oauth/idp/callback", public_url(hostname, port))
}

/// Deletes expired one-time OAuth state every minute, so abandoned sign-ins do not pile up,
/// and lets the rate limiters forget idle addresses.
async fn purge_expired(
    store: crate::store::Store,
    limits: Vec<Arc<RateLimit>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        for limit in &limits {
            limit.forget_idle();
        }
        if let Err(e) = store.purge_expired_oauth().await {
            tracing::warn!(error = %e, "purging expired OAuth state failed");
        }
    }
}

/// Requests per minute per client address on the endpoints reachable before authentication.
const PUBLIC_PER_MINUTE: std::num::NonZeroU32 = std::num::NonZeroU32::new(120).unwrap();
/// Burst allowed on those endpoints.
const PUBLIC_BURST: std::num::NonZeroU32 = std::num::NonZeroU32::new(30).unwrap();

/// Requests per minute per client address on the admin console's pages.
const CONSOLE_PER_MINUTE: std::num::NonZeroU32 = std::num::NonZeroU32::new(600).unwrap();
/// Burst allowed on them.
const CONSOLE_BURST: std::num::NonZeroU32 = std::num::NonZeroU32::new(200).unwrap();

/// Largest MCP request body.
const MAX_MCP_BODY: usize = 4 * 1024 * 1024;

fn mcp_options(
    public_url: &str,
    hostname: &str,
    https: SocketAddr,
    dev_http: Option<SocketAddr>,
    opts: &McpServeOptions,
) -> McpOptions {
    let mut hosts = vec![hostname.to_owned()];
    if hostname == "localhost" {
        hosts.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
    }
    let port = https.port();
    let mut origins: Vec<String> = hosts
        .iter()
        .map(|h| {
            if h.contains(':') {
                format!("https://[{h}]:{port}")
            } else {
                format!("https://{h}:{port}")
            }
        })
        .collect();
    if port == 443 {
        origins.extend(hosts.iter().map(|h| format!("https://{h}")));
    }
    if let Some(http) = dev_http {
        for h in ["localhost", "127.0.0.1"] {
            origins.push(format!("http://{h}:{}", http.port()));
        }
        hosts.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
    }
    origins.extend(opts.extra_origins.iter().cloned());
    hosts.sort();
    hosts.dedup();
    McpOptions {
        allowed_hosts: hosts,
        allowed_origins: origins,
        max_body_bytes: MAX_MCP_BODY,
        call_timeout: opts.call_timeout,
        public_url: public_url.to_owned(),
    }
}

impl Runtime {
    /// Stops gracefully: tells connectors to go away (they reconnect, spread over a few
    /// seconds, to whichever runtime comes up), waits briefly for them, then closes.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while !self.registry.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.endpoint.close(
            quinn::VarInt::from_u32(shared::close::CloseCode::GoingAway.code()),
            b"runtime shutting down",
        );
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        // Other handles (live MCP services) may outlive this one: flush rather than wait
        // for the writer to see the last of them.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.audit.flush()).await;
        self.telemetry.shutdown();
        info!("runtime stopped");
    }
}
