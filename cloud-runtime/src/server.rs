//! `serve`: binds the QUIC tunnel, the HTTPS endpoint and the admin socket, and runs them
//! until told to stop. Tests and benchmarks start it in-process through [`start`].

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::data_dir::DataDir;
use crate::enroll::{self, EnrollContext};
use crate::tunnel::{self, Registry, TunnelContext};
use crate::{admin, https, tls};

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The data directory made by `init`.
    pub data_dir: DataDir,
    /// UDP address of the QUIC tunnel listener.
    pub quic_listen: SocketAddr,
    /// TCP address of the HTTPS listener (enrollment).
    pub https_listen: SocketAddr,
    /// `host:port` told to connectors for the tunnel, if not `<hostname>:<quic port>`.
    pub quic_advertise: Option<String>,
    /// Lifetime of connector certificates.
    pub cert_ttl: Duration,
    /// Heartbeat interval imposed on connectors.
    pub heartbeat_interval: Duration,
}

/// A running runtime.
#[derive(Debug)]
pub struct Runtime {
    /// Online connectors; calls go through it.
    pub registry: Arc<Registry>,
    /// Where the tunnel listens.
    pub quic_addr: SocketAddr,
    /// Where HTTPS listens.
    pub https_addr: SocketAddr,
    endpoint: quinn::Endpoint,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _lock: File,
}

/// Binds everything and starts serving.
pub async fn start(opts: ServeOptions) -> Result<Runtime> {
    let dir = &opts.data_dir;
    let config = dir.config()?;
    let lock = File::create(dir.root().join("serve.lock"))?;
    if lock.try_lock().is_err() {
        bail!(
            "another `cloud-runtime serve` is already running on {}",
            dir.root().display()
        );
    }
    let ca = dir.ca(&config)?;
    let store = dir.store().await?;
    store.reset_online().await?;
    let identity = tls::ServerIdentity::load(dir)?;

    let reset_secret = std::fs::read(dir.reset_key())
        .with_context(|| format!("reading {}", dir.reset_key().display()))?;
    let reset_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &reset_secret);
    let socket = std::net::UdpSocket::bind(opts.quic_listen)
        .with_context(|| format!("binding the QUIC listener on {}", opts.quic_listen))?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::new(Arc::new(reset_key)),
        Some(tls::quic_server_config(&identity, ca.cert_der())?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    let quic_addr = endpoint.local_addr()?;
    let https_listener = tokio::net::TcpListener::bind(opts.https_listen)
        .await
        .with_context(|| format!("binding the HTTPS listener on {}", opts.https_listen))?;
    let https_addr = https_listener.local_addr()?;
    let admin_listener = admin::bind(&dir.admin_socket())?;

    let trust_domain: shared::identity::TrustDomain = config
        .trust_domain
        .parse()
        .with_context(|| format!("trust domain {:?} in runtime.toml", config.trust_domain))?;
    let registry = Arc::new(Registry::default());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let host = if config.hostname.contains(':') {
        format!("[{}]", config.hostname)
    } else {
        config.hostname.clone()
    };
    let enroll_ctx = Arc::new(EnrollContext {
        store: store.clone(),
        ca: dir.ca(&config)?,
        trust_domain: trust_domain.clone(),
        cert_ttl: opts.cert_ttl,
        quic_endpoint: opts
            .quic_advertise
            .clone()
            .unwrap_or_else(|| format!("{host}:{}", quic_addr.port())),
        server_name: config.hostname.clone(),
    });
    let tunnel_ctx = Arc::new(TunnelContext {
        store,
        ca,
        trust_domain,
        cert_ttl: opts.cert_ttl,
        heartbeat_interval: opts.heartbeat_interval,
        registry: registry.clone(),
    });

    let router = Router::new()
        .route(shared::enroll::ENROLL_PATH, post(enroll::enroll))
        .route(shared::enroll::ENROLL_INFO_PATH, get(enroll::info))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(shared::enroll::MAX_ENROLL_BODY))
        .with_state(enroll_ctx);

    tracker.spawn(tunnel::listener::accept_loop(
        endpoint.clone(),
        tunnel_ctx.clone(),
        shutdown.clone(),
        tracker.clone(),
    ));
    tracker.spawn(tunnel::revocation::watch(tunnel_ctx, shutdown.clone()));
    tracker.spawn(https::serve(
        https_listener,
        tls::https_server_config(&identity)?,
        router,
        shutdown.clone(),
    ));
    tracker.spawn(admin::serve(
        admin_listener,
        registry.clone(),
        shutdown.clone(),
    ));
    info!(quic = %quic_addr, https = %https_addr, hostname = %config.hostname, "runtime serving");
    Ok(Runtime {
        registry,
        quic_addr,
        https_addr,
        endpoint,
        shutdown,
        tracker,
        _lock: lock,
    })
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
        info!("runtime stopped");
    }
}
