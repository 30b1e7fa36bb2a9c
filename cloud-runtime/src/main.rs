//! `cloud-runtime`: command-line entry point. Parses flags, sets up logging, and calls into
//! the library; all behaviour lives there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use cloud_runtime::admin::{self, AdminRequest};
use cloud_runtime::data_dir::DataDir;
use cloud_runtime::join_token;
use cloud_runtime::oauth;
use cloud_runtime::server::{self, ServeOptions};
use cloud_runtime::store::oauth::AgentRow;
use cloud_runtime::store::{GatewayRow, Store};
use shared::clock::now_ms;
use shared::identity::{ConnectorId, TenantId};

// The commands print through these instead of std's `print!`/`println!`, which panic when
// stdout is a closed pipe (`cloud-runtime connector list --json | grep -q online`): a write
// error returns from the command, and `main` ends quietly on a broken pipe.
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err($crate::StdoutError)?;
    }};
}
macro_rules! println {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout()).map_err($crate::StdoutError)?;
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err($crate::StdoutError)?;
    }};
}

mod cli;

/// The cloud runtime of mcp-edge: enrolls edge connectors and brokers tool calls to them.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The `--data-dir` every subcommand takes.
#[derive(Args, Clone)]
pub struct DataDirArg {
    /// The runtime's data directory (made by `init`).
    #[arg(long, env = "CLOUD_RUNTIME_DATA_DIR")]
    pub data_dir: PathBuf,
}

impl DataDirArg {
    /// The store of an initialised data directory.
    async fn store(self) -> Result<Store> {
        let data = DataDir::new(self.data_dir);
        data.config()?;
        data.store().await
    }
}

// Parsed once at start: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create the data directory: CA, server certificate, store.
    Init {
        #[command(flatten)]
        dir: DataDirArg,
        /// Public hostname (DNS name or IP) connectors and clients reach the runtime at.
        #[arg(long)]
        hostname: String,
        /// SPIFFE trust domain for connector identities (default: the hostname).
        #[arg(long)]
        trust_domain: Option<String>,
    },
    /// Run the runtime: QUIC tunnel listener, HTTPS endpoint, admin socket.
    Serve {
        #[command(flatten)]
        dir: DataDirArg,
        /// UDP address of the QUIC tunnel.
        #[arg(long, default_value = "0.0.0.0:4433")]
        quic_listen: SocketAddr,
        /// TCP address of the HTTPS endpoint (enrollment).
        #[arg(long, default_value = "0.0.0.0:8443")]
        https_listen: SocketAddr,
        /// host:port connectors should dial for the tunnel (default: hostname and QUIC port).
        #[arg(long)]
        quic_advertise: Option<String>,
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
        trusted_proxies: Vec<cloud_runtime::https::client_addr::Cidr>,
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
    },
    /// Tenant policies: agent roles, user grants, gateways, hooks.
    Policy {
        #[command(subcommand)]
        command: cli::policy::PolicyCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// Manage local users (sign-in for the embedded default and development).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Configure the tenant's OpenID Connect identity provider for user sign-in.
    Idp {
        #[command(subcommand)]
        command: IdpCommand,
    },
    /// Manage agents: the applications that act for users, each with a role.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Manage gateways: named tool collections, each with its own MCP URL.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage connectors.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant name: lowercase letters, digits and '-'.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a local user; prints their sign-in secret once.
    Add {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// User name.
        name: String,
        /// Groups (the user's grants), comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Remove a user: their refresh tokens and browser sessions end now, their access
    /// tokens within minutes.
    Rm {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// User name.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum IdpCommand {
    /// Users of the tenant sign in at this provider from now on; their group claim becomes
    /// their grants. Prints the redirect URI to register there
    /// (https://HOSTNAME:PORT/oauth/idp/callback).
    Set {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Issuer URL (https; http only on a loopback host).
        #[arg(long)]
        issuer: String,
        /// Client id registered at the provider.
        #[arg(long)]
        client_id: String,
        /// File holding the client secret (never on the command line).
        #[arg(long)]
        client_secret_file: PathBuf,
        /// Name of the ID-token claim listing the user's groups.
        #[arg(long, default_value = "groups")]
        groups_claim: String,
        /// How often a user's groups and status are asked of the provider again, at a
        /// refresh of their token (with the refresh token the provider gave the runtime;
        /// without one, the user signs in again after this time). `0s`: at every refresh.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        recheck_groups: Duration,
        /// The port MCP clients and browsers reach the runtime's HTTPS endpoint on (that of
        /// `serve --https-listen`, or the load balancer's).
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Show the tenant's identity provider (not its secret) and the redirect URI to
    /// register there.
    Show {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The port MCP clients and browsers reach the runtime's HTTPS endpoint on.
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Register an agent; prints its key once (send it as X-MCP-Agent-Key).
    Create {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Agent name.
        name: String,
        /// Role: names the tools the agent may call in the tenant's policy.
        #[arg(long)]
        role: String,
        /// Bind an OAuth client id to this agent, for clients that cannot send the key.
        #[arg(long)]
        oauth_client_id: Option<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Remove an agent: its key is refused from the next request on.
    Rm {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Agent name.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Create a gateway, served at /t/<tenant>/g/<name>/mcp.
    Create {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Gateway name: lowercase letters, digits and '-'.
        name: String,
        /// Text returned to MCP clients at initialize.
        #[arg(long)]
        instructions: Option<String>,
        /// Tool-name patterns the gateway exposes, comma-separated; `*` matches any suffix.
        #[arg(long, default_value = "*", value_delimiter = ',')]
        tools: Vec<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List gateways with their URLs.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Join tokens for enrolling new connectors.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List connectors with their status.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Revoke a connector: refused from now on, live tunnels dropped within a second.
    Revoke {
        /// Connector id.
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Ping a connector through its tunnel (needs a running `serve`).
    Ping {
        /// Connector id.
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Call a diagnostic tool (diag.*) on a connector of a tenant (needs a running `serve`).
    Call {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// A specific connector (default: any online one of the tenant).
        #[arg(long)]
        connector: Option<String>,
        /// Tool name, e.g. diag.echo.
        #[arg(long)]
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Time budget.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a one-time join token; prints it and the CA fingerprint to pin.
    Create {
        /// Tenant the connector will belong to.
        #[arg(long)]
        tenant: String,
        /// How long the token stays valid.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli.command)).and_then(|()| {
        // What is still buffered goes out now, where a closed pipe is seen.
        std::io::Write::flush(&mut std::io::stdout()).map_err(|e| StdoutError(e).into())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<Denied>() => std::process::ExitCode::from(1),
        // The reader went away (`| head`, `| grep -q`): end quietly, with the status a
        // process killed by SIGPIPE has in a shell.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The exit status after stdout was closed by its reader: 128 + SIGPIPE, as a shell shows
/// for `ls | head`.
const BROKEN_PIPE_STATUS: u8 = 141;

/// Writing to stdout failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout: {0}")]
pub struct StdoutError(std::io::Error);

/// Whether `e` is a write to a stdout nobody reads any more.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<StdoutError>()
        .is_some_and(|StdoutError(io)| io.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Init {
            dir,
            hostname,
            trust_domain,
        } => {
            let data = DataDir::new(dir.data_dir);
            let ca = data.init(&hostname, trust_domain.as_deref())?;
            data.store().await?;
            println!("initialized {}", data.root().display());
            println!("trust domain:   {}", ca.trust_domain());
            println!("ca fingerprint: {}", ca.fingerprint());
        }
        Command::Serve {
            dir,
            quic_listen,
            https_listen,
            quic_advertise,
            connector_cert_ttl,
            heartbeat_interval,
            dev_unauthenticated,
            dev_http_listen,
            allow_origins,
            call_timeout,
            otlp_endpoint,
            metrics_listen,
            debug_frame_log,
            client_metadata_ca,
            dev_client_metadata_loopback,
            trusted_proxies,
            https_idle_timeout,
            https_max_connections,
            https_max_connections_per_client,
        } => {
            if https_max_connections_per_client > https_max_connections {
                bail!("--https-max-connections-per-client must not exceed --https-max-connections");
            }
            if https_idle_timeout.is_zero() {
                bail!("--https-idle-timeout must be more than zero");
            }
            if !(certs::authority::MIN_CONNECTOR_TTL..=certs::authority::MAX_CONNECTOR_TTL)
                .contains(&connector_cert_ttl)
            {
                bail!(
                    "--connector-cert-ttl must be between {:?} and {:?}",
                    certs::authority::MIN_CONNECTOR_TTL,
                    certs::authority::MAX_CONNECTOR_TTL
                );
            }
            if heartbeat_interval < Duration::from_millis(100)
                || heartbeat_interval > Duration::from_secs(60)
            {
                bail!("--heartbeat-interval must be between 100ms and 60s");
            }
            let runtime = server::start(ServeOptions {
                data_dir: DataDir::new(dir.data_dir),
                quic_listen,
                https_listen,
                quic_advertise,
                cert_ttl: connector_cert_ttl,
                heartbeat_interval,
                mcp: server::McpServeOptions {
                    dev_unauthenticated,
                    dev_http_listen,
                    extra_origins: allow_origins,
                    call_timeout,
                    client_metadata_ca,
                    dev_client_metadata_loopback,
                },
                otlp_endpoint,
                metrics_listen,
                debug_frame_log,
                https: cloud_runtime::https::HttpsOptions {
                    limits: cloud_runtime::https::admission::Limits {
                        max: https_max_connections as usize,
                        per_client: https_max_connections_per_client as usize,
                    },
                    idle_timeout: https_idle_timeout,
                    trusted_proxies: cloud_runtime::https::client_addr::TrustedProxies::new(
                        trusted_proxies,
                    ),
                },
            })
            .await?;
            wait_for_signal().await?;
            runtime.shutdown().await;
        }
        Command::Tenant { command } => match command {
            TenantCommand::Create { name, dir } => {
                let tenant: TenantId = name.parse().context("tenant name")?;
                dir.store().await?.create_tenant(&tenant).await?;
                println!("created tenant {tenant}");
            }
            TenantCommand::List { dir } => {
                for t in dir.store().await?.tenants().await? {
                    println!("{t}");
                }
            }
        },
        Command::Connector { command } => connector(command).await?,
        Command::Policy { command } => {
            if !cli::policy::run(command).await? {
                return Err(Denied.into());
            }
        }
        Command::Audit { command } => cli::audit::run(command)?,
        Command::Gateway { command } => gateway(command).await?,
        Command::User {
            command:
                UserCommand::Add {
                    tenant,
                    name,
                    groups,
                    dir,
                },
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let name = principal_name(&name, "user name")?;
            for g in &groups {
                principal_name(g, "group")?;
            }
            let store = dir.store().await?;
            if !store.tenant_exists(&tenant).await? {
                bail!("no tenant named {tenant}");
            }
            let secret = oauth::secret::generate("mcpus_");
            let id = store
                .create_user(
                    tenant.as_str(),
                    &name,
                    &groups,
                    &oauth::secret::hash(&secret),
                )
                .await?;
            println!(
                "added user {name} ({id}) to tenant {tenant} (groups: {})",
                groups.join(",")
            );
            println!("sign-in secret (shown once): {secret}");
        }
        Command::User {
            command: UserCommand::Rm { tenant, name, dir },
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = dir.store().await?;
            if !store.remove_user(tenant.as_str(), &name).await? {
                bail!("tenant {tenant} has no user named {name}");
            }
            println!(
                "removed user {name} of tenant {tenant}; their sessions and refresh tokens are revoked"
            );
        }
        Command::Idp {
            command:
                IdpCommand::Set {
                    tenant,
                    issuer,
                    client_id,
                    client_secret_file,
                    groups_claim,
                    recheck_groups,
                    https_port,
                    dir,
                },
        } => {
            let hostname = DataDir::new(dir.data_dir.clone()).config()?.hostname;
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            oauth::idp::check_issuer(&issuer).map_err(anyhow::Error::msg)?;
            let secret = std::fs::read_to_string(&client_secret_file)
                .with_context(|| format!("reading {}", client_secret_file.display()))?
                .trim()
                .to_owned();
            if secret.is_empty() || client_id.is_empty() {
                bail!("the client id and the client secret must not be empty");
            }
            let store = dir.store().await?;
            if !store.tenant_exists(&tenant).await? {
                bail!("no tenant named {tenant}");
            }
            store
                .set_idp(&cloud_runtime::store::oauth::IdpRow {
                    tenant: tenant.to_string(),
                    issuer: issuer.trim_end_matches('/').to_owned(),
                    client_id,
                    client_secret: secret,
                    groups_claim,
                    recheck_secs: i64::try_from(recheck_groups.as_secs()).unwrap_or(i64::MAX),
                })
                .await?;
            println!("tenant {tenant} now signs users in at {issuer}");
            println!(
                "register this redirect URI at the provider: {}",
                server::idp_redirect_uri(&hostname, https_port)
            );
        }
        Command::Idp {
            command:
                IdpCommand::Show {
                    tenant,
                    https_port,
                    dir,
                },
        } => {
            let hostname = DataDir::new(dir.data_dir.clone()).config()?.hostname;
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = dir.store().await?;
            if !store.tenant_exists(&tenant).await? {
                bail!("no tenant named {tenant}");
            }
            match store.idp(tenant.as_str()).await? {
                Some(idp) => {
                    println!("issuer:       {}", idp.issuer);
                    println!("client id:    {}", idp.client_id);
                    println!("groups claim: {}", idp.groups_claim);
                    println!(
                        "recheck:      groups and status asked again at refresh, every {}",
                        humantime::format_duration(Duration::from_secs(
                            u64::try_from(idp.recheck_secs).unwrap_or(0)
                        ))
                    );
                }
                None => println!("tenant {tenant} has no identity provider (local users only)"),
            }
            println!(
                "redirect URI: {}",
                server::idp_redirect_uri(&hostname, https_port)
            );
        }
        Command::Agent {
            command:
                AgentCommand::Create {
                    tenant,
                    name,
                    role,
                    oauth_client_id,
                    dir,
                },
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let name = principal_name(&name, "agent name")?;
            let role = principal_name(&role, "role")?;
            let store = dir.store().await?;
            if !store.tenant_exists(&tenant).await? {
                bail!("no tenant named {tenant}");
            }
            let key = oauth::secret::generate("mcpak_");
            store
                .create_agent(
                    &AgentRow {
                        tenant: tenant.to_string(),
                        name: name.clone(),
                        role: role.clone(),
                        oauth_client_id,
                    },
                    &oauth::secret::hash(&key),
                )
                .await?;
            println!("created agent {name} (role {role}) of tenant {tenant}");
            println!("agent key (shown once; send as X-MCP-Agent-Key): {key}");
        }
        Command::Agent {
            command: AgentCommand::Rm { tenant, name, dir },
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = dir.store().await?;
            if !store.remove_agent(tenant.as_str(), &name).await? {
                bail!("tenant {tenant} has no agent named {name}");
            }
            println!("removed agent {name} of tenant {tenant}; its key is no longer accepted");
        }
    }
    Ok(())
}

async fn connector(command: ConnectorCommand) -> Result<()> {
    match command {
        ConnectorCommand::Token {
            command:
                TokenCommand::Create {
                    tenant,
                    ttl,
                    json,
                    dir,
                },
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            if !(Duration::from_secs(1)..=Duration::from_secs(7 * 24 * 3600)).contains(&ttl) {
                bail!("--ttl must be between 1s and 7d");
            }
            let data = DataDir::new(dir.data_dir);
            let config = data.config()?;
            let ca = data.ca(&config)?;
            let store = data.store().await?;
            if !store.tenant_exists(&tenant).await? {
                bail!(
                    "no tenant named {tenant} (create it with `cloud-runtime tenant create {tenant}`)"
                );
            }
            let (token, connector_id) = join_token::mint(&tenant);
            let expires_at = now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            store
                .create_join_token(&token.hash, &tenant, &connector_id, expires_at)
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "token": token.text,
                        "connector_id": connector_id.to_string(),
                        "tenant": tenant.to_string(),
                        "ca_fingerprint": ca.fingerprint().to_string(),
                        "expires_at": expires_at,
                    })
                );
            } else {
                println!("token:          {}", token.text);
                println!("connector id:   {connector_id}");
                println!("ca fingerprint: {}", ca.fingerprint());
                println!("expires in:     {}", humantime::format_duration(ttl));
                println!();
                println!(
                    "enroll with: edge-connector enroll --runtime {}:8443 --token {} --ca-fingerprint {} --state-dir /var/lib/edge-connector",
                    config.hostname,
                    token.text,
                    ca.fingerprint()
                );
            }
        }
        ConnectorCommand::List { json, dir } => {
            let rows = dir.store().await?.connectors().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<16} {:<16} {:<8} {:<10} {:<6} {:<20} CERT EXPIRES",
                    "ID", "TENANT", "STATUS", "VERSION", "VIA", "LAST SEEN"
                );
                for r in rows {
                    println!(
                        "{:<16} {:<16} {:<8} {:<10} {:<6} {:<20} {}",
                        r.id,
                        r.tenant,
                        serde_json::to_value(r.status)?.as_str().unwrap_or("?"),
                        r.version.as_deref().unwrap_or("-"),
                        r.transport.as_deref().unwrap_or("-"),
                        r.last_seen.map(format_ms).unwrap_or_else(|| "never".into()),
                        format_ms(r.cert_not_after)
                    );
                    for w in &r.warnings {
                        println!("  WARNING: {w}");
                    }
                }
            }
        }
        ConnectorCommand::Revoke { id, dir } => {
            let id: ConnectorId = id.parse().context("connector id")?;
            if dir.store().await?.revoke(&id).await? {
                println!("revoked {id}");
            } else {
                println!("{id} was already revoked");
            }
        }
        ConnectorCommand::Ping { id, dir } => {
            let data = DataDir::new(dir.data_dir);
            let resp =
                admin::request(&data.admin_socket(), &AdminRequest::Ping { connector: id }).await?;
            print_admin(resp)?;
        }
        ConnectorCommand::Call {
            tenant,
            connector,
            tool,
            args,
            timeout,
            dir,
        } => {
            let arguments: serde_json::Value =
                serde_json::from_str(&args).context("--args is not JSON")?;
            let data = DataDir::new(dir.data_dir);
            let req = AdminRequest::Call {
                tenant,
                connector,
                tool,
                arguments,
                timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            };
            print_admin(admin::request(&data.admin_socket(), &req).await?)?;
        }
    }
    Ok(())
}

async fn gateway(command: GatewayCommand) -> Result<()> {
    match command {
        GatewayCommand::Create {
            tenant,
            name,
            instructions,
            tools,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let name: TenantId = name.parse().context("gateway name")?;
            let tools: Vec<String> = tools
                .into_iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            if let Some(bad) = tools.iter().find(|t| {
                !t.trim_end_matches('*')
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            }) {
                bail!(
                    "--tools pattern {bad:?} may contain only letters, digits, '_', '.', '-' and a trailing '*'"
                );
            }
            if tools.is_empty() {
                bail!("--tools must name at least one tool or pattern");
            }
            let data = DataDir::new(dir.data_dir);
            let config = data.config()?;
            data.store()
                .await?
                .create_gateway(&GatewayRow {
                    tenant: tenant.to_string(),
                    name: name.to_string(),
                    instructions,
                    tools,
                })
                .await?;
            println!("created gateway {name} of tenant {tenant}");
            println!(
                "MCP URL: https://{}:<https port>/t/{tenant}/g/{name}/mcp (the port serve listens on, 8443 by default)",
                config.hostname
            );
        }
        GatewayCommand::List { tenant, json, dir } => {
            let rows = dir.store().await?.gateways(tenant.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<16} {:<16} {:<32} INSTRUCTIONS",
                    "TENANT", "GATEWAY", "TOOLS"
                );
                for g in rows {
                    println!(
                        "{:<16} {:<16} {:<32} {}",
                        g.tenant,
                        g.name,
                        g.tools.join(","),
                        g.instructions.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(())
}

/// `policy check` found the call denied (already printed; exit status 1).
#[derive(Debug)]
struct Denied;

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("denied")
    }
}

impl std::error::Error for Denied {}

/// Checks a user, agent, role or group name with the runtime's one rule.
fn principal_name(s: &str, what: &str) -> Result<String> {
    if cloud_runtime::mcp::principal::valid_name(s) {
        Ok(s.to_owned())
    } else {
        bail!("{what} {s:?} must be 1 to 64 letters, digits, '.', '_', '-' or '@'")
    }
}

fn print_admin(resp: admin::AdminResponse) -> Result<()> {
    println!("{}", serde_json::to_string(&resp)?);
    if resp.ok {
        Ok(())
    } else {
        bail!("{}", resp.error.unwrap_or_else(|| "failed".into()))
    }
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
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
