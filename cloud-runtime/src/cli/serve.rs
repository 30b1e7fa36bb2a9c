//! `cloud-runtime serve`: its flags, and running until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use cloud_runtime::cluster::{NatsOptions, NatsUrl};
use cloud_runtime::https::HttpsOptions;
use cloud_runtime::https::admission::Limits;
use cloud_runtime::https::client_addr::{Cidr, TrustedProxies};
use cloud_runtime::replica::ReplicaId;
use cloud_runtime::server::{self, McpServeOptions, ServeOptions};

use super::DataDirArg;

/// `serve` flags.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    dir: DataDirArg,
    /// This replica's name, when several share one database (default: the host name).
    #[arg(long, env = "CLOUD_RUNTIME_REPLICA_ID")]
    replica_id: Option<ReplicaId>,
    /// NATS server joining the replicas (nats://HOST:PORT or tls://HOST:PORT): a call for a
    /// connector whose tunnel another replica holds goes there. Off when unset (one process).
    /// Read by the runtime, not the flag parser, so that an error never prints a password.
    #[arg(long, env = "CLOUD_RUNTIME_NATS_URL", hide_env_values = true)]
    nats_url: Option<String>,
    /// NATS credentials file (user JWT and NKey seed).
    #[arg(long, env = "CLOUD_RUNTIME_NATS_CREDENTIALS", requires = "nats_url")]
    nats_credentials: Option<PathBuf>,
    /// The key-encryption key (32 random bytes in base64, a file only its owner reads, e.g.
    /// a systemd credential): with it, the runtime's secret keys (CA, token signing, request
    /// state, QUIC reset, SSH host) live in the store, sealed, so every replica shares them.
    /// Keep it out of the database's backups.
    #[arg(long, env = "CLOUD_RUNTIME_KEY_ENCRYPTION_KEY_FILE")]
    key_encryption_key_file: Option<PathBuf>,
    /// CA certificates (PEM) of the NATS server's TLS certificate; makes TLS required.
    #[arg(long, env = "CLOUD_RUNTIME_NATS_TLS_CA", requires = "nats_url")]
    nats_tls_ca: Option<PathBuf>,
    /// UDP address of the QUIC tunnel.
    #[arg(long, default_value = "0.0.0.0:4433")]
    quic_listen: SocketAddr,
    /// TCP address of the HTTPS endpoint (enrollment).
    #[arg(long, default_value = "0.0.0.0:8443")]
    https_listen: SocketAddr,
    /// host:port connectors should dial for the tunnel (default: hostname and QUIC port).
    #[arg(long)]
    quic_advertise: Option<String>,
    /// New tunnels admitted per second; beyond it a connector is told to retry after a delay
    /// spread over the wave (no reconnect storm after a restart).
    #[arg(long, default_value = "100")]
    tunnel_handshake_rate: std::num::NonZeroU32,
    /// TCP address of the SSH-over-TCP tunnel, for connectors whose network blocks UDP
    /// (e.g. 0.0.0.0:443 on its own address); off when unset.
    #[arg(long)]
    ssh_listen: Option<SocketAddr>,
    /// host:port connectors should dial for the SSH tunnel (default: hostname and SSH port).
    #[arg(long, requires = "ssh_listen")]
    ssh_advertise: Option<String>,
    /// Lifetime of connector certificates; connectors renew at about two thirds of it.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    connector_cert_ttl: Duration,
    /// Heartbeat interval on the control stream.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// Serve MCP without authentication, as a fixed development user and agent. Refused
    /// unless --https-listen is a loopback address.
    #[arg(long)]
    dev_unauthenticated: bool,
    /// With --dev-unauthenticated: also serve HTTP without TLS on this loopback address,
    /// for local tools that expect http://localhost.
    #[arg(long)]
    dev_http_listen: Option<SocketAddr>,
    /// A browser origin allowed to call the MCP endpoint besides the runtime's own
    /// (e.g. https://inspector.example); repeat for several.
    #[arg(long = "allow-origin")]
    allow_origins: Vec<String>,
    /// Time budget of one tool call.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    call_timeout: Duration,
    /// OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318) for call spans and audit log
    /// records; off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<url::Url>,
    /// Serve Prometheus metrics on GET /metrics at this address (off when unset).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// An extra CA (PEM) to trust when fetching OAuth client ID metadata documents
    /// (besides the system's roots).
    #[arg(long)]
    client_metadata_ca: Option<PathBuf>,
    /// Development: accept client ID metadata documents served from loopback (private
    /// networks stay refused).
    #[arg(long)]
    dev_client_metadata_loopback: bool,
    /// Debugging: append every tunnel frame (decrypted, as the protocol sees it) to
    /// this file. Frames carry no credentials by design; this is how that is checked.
    #[arg(long)]
    debug_frame_log: Option<PathBuf>,
    /// A load balancer's network (CIDR, e.g. 10.0.0.0/8, or one address); repeat for
    /// several. Connections from inside it may name the client in a PROXY protocol
    /// header (v1 or v2) and in X-Forwarded-For (the rightmost hop outside these
    /// networks is the client); everyone else's such claims are ignored.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<Cidr>,
    /// Close an HTTPS connection after this long with no request in flight.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    https_idle_timeout: Duration,
    /// HTTPS connections open at once; more wait in the accept queue.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    https_max_connections: u32,
    /// HTTPS connections one client (IPv4 address, IPv6 /64) may hold on an idle
    /// listener; the share shrinks as the listener fills.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    https_max_connections_per_client: u32,
}

impl ServeArgs {
    fn options(self) -> Result<ServeOptions> {
        let nats = match self.nats_url.as_deref().map(str::parse::<NatsUrl>) {
            Some(url) => Some(NatsOptions {
                url: url?,
                credentials: self.nats_credentials,
                tls_ca: self.nats_tls_ca,
            }),
            None => None,
        };
        Ok(ServeOptions {
            nats,
            key_encryption_key: self.key_encryption_key_file,
            data_dir: self.dir.data_dir()?,
            replica_id: self.replica_id.unwrap_or_else(ReplicaId::of_this_host),
            quic_listen: self.quic_listen,
            https_listen: self.https_listen,
            quic_advertise: self.quic_advertise,
            tunnel_handshake_rate: self.tunnel_handshake_rate,
            ssh_listen: self.ssh_listen,
            ssh_advertise: self.ssh_advertise,
            cert_ttl: self.connector_cert_ttl,
            heartbeat_interval: self.heartbeat_interval,
            mcp: McpServeOptions {
                dev_unauthenticated: self.dev_unauthenticated,
                dev_http_listen: self.dev_http_listen,
                extra_origins: self.allow_origins,
                call_timeout: self.call_timeout,
                client_metadata_ca: self.client_metadata_ca,
                dev_client_metadata_loopback: self.dev_client_metadata_loopback,
            },
            otlp_endpoint: self.otlp_endpoint,
            metrics_listen: self.metrics_listen,
            debug_frame_log: self.debug_frame_log,
            https: HttpsOptions {
                limits: Limits {
                    max: self.https_max_connections as usize,
                    per_client: self.https_max_connections_per_client as usize,
                },
                idle_timeout: self.https_idle_timeout,
                trusted_proxies: TrustedProxies::new(self.trusted_proxies),
            },
        })
    }
}

/// Runs the runtime until SIGTERM or SIGINT, then stops it gracefully.
pub async fn run(args: ServeArgs) -> Result<()> {
    let runtime = server::start(args.options()?).await?;
    wait_for_signal().await?;
    runtime.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
