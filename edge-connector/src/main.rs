//! `edge-connector`: command-line entry point. Parses flags, sets up logging and signals,
//! and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use edge_connector::config::{self, Config};
use edge_connector::connect_proxy as proxy;
use edge_connector::enroll::{self, EnrollOptions};
use edge_connector::state::StateDir;
use tokio_util::sync::CancellationToken;

mod cli;

/// The mcp-edge connector: dials out to the cloud runtime and runs tools inside your network.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll with a one-time join token: makes a key pair here, gets a certificate.
    Enroll {
        /// The runtime's HTTPS endpoint, host:port.
        #[arg(long)]
        runtime: String,
        /// The join token from `cloud-runtime connector token create`.
        #[arg(long, env = "EDGE_CONNECTOR_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// The runtime CA fingerprint printed with the token, sha256:HEX.
        #[arg(long)]
        ca_fingerprint: String,
        /// The HTTP proxy to enroll through: http://HOST:PORT, env (HTTPS_PROXY/NO_PROXY)
        /// or none (default: [tunnel] proxy of the configuration, else none).
        #[arg(long, value_name = "URL")]
        proxy: Option<config::Proxy>,
        /// The proxy's Basic-authentication user (default: [tunnel] proxy_user); the
        /// password is the vault entry proxy/password (`edge-connector vault set proxy/password`).
        #[arg(long, value_name = "USER")]
        proxy_user: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Dial out and serve tools until SIGTERM, then drain in-flight calls.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// How long in-flight calls get to finish on SIGTERM.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        drain_timeout: Duration,
        /// Overrides `[tunnel] transport` of the configuration.
        #[arg(long, value_enum)]
        transport: Option<edge_connector::config::Transport>,
    },
    /// Check this machine can run the connector, with a fix for each failure.
    ///
    /// Checks DNS, UDP (a real QUIC handshake) and TCP to the runtime, the clock, the
    /// certificate, the vault, each upstream with its CA bundle and proxy, and that no
    /// edge-connector process listens. Exits non-zero on any failure.
    Doctor {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print every destination the connector contacts, for the firewall change request.
    ///
    /// Runtime endpoints (from the enrollment), upstreams, their proxies and the OTLP
    /// collector, with protocol, port and resolved addresses.
    EgressReport {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the running service's tunnel state: transport, runtime, since when, last round
    /// trip, calls in flight, or why there is no tunnel.
    ///
    /// Read from the status file the service keeps in the state directory (no network
    /// port). Exit code: 0 connected, 1 running without a working tunnel, 3 not running.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The connector's own hash-chained, signed audit log (in the state directory).
    Audit {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// The age-encrypted vault of credentials (names and metadata are shown, secrets never).
    Vault {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        command: cli::vault::VaultCommand,
    },
}

/// Where the configuration (or, without one, the state directory) is.
#[derive(Args)]
struct ConfigArgs {
    /// The configuration file (default: /etc/edge-connector/config.toml when it exists).
    #[arg(long, env = "EDGE_CONNECTOR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The state directory, overriding the configuration's `state_dir`; without a
    /// configuration file the connector serves only its diagnostic tools.
    #[arg(long, env = "EDGE_CONNECTOR_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(self) -> Result<Config> {
        let path = self.config.or_else(|| {
            let default = PathBuf::from(config::DEFAULT_CONFIG);
            default.exists().then_some(default)
        });
        let mut config = match (path, self.state_dir.clone()) {
            (Some(path), _) => Config::load(&path)?,
            (None, Some(dir)) => Config::bare(dir),
            (None, None) => bail!(
                "no configuration: pass --config FILE (or create {}), or --state-dir DIR",
                config::DEFAULT_CONFIG
            ),
        };
        if let Some(dir) = self.state_dir {
            config.state_dir = dir;
        }
        Ok(config)
    }
}

fn main() -> ExitCode {
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
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Enroll {
            runtime,
            token,
            ca_fingerprint,
            proxy,
            proxy_user,
            config,
        } => {
            let ca_fingerprint = ca_fingerprint.parse().context("--ca-fingerprint")?;
            let mut config = config.load()?;
            if let Some(p) = proxy {
                config.tunnel.proxy = p;
            }
            if proxy_user.is_some() {
                config.tunnel.proxy_user = proxy_user;
            }
            let (host, port) = edge_connector::egress::split_host_port(&runtime)
                .with_context(|| format!("--runtime {runtime:?} is not host:port"))?;
            let proxy = tokio::task::block_in_place(|| {
                proxy::route_for(
                    &config.tunnel,
                    &edge_connector::egress::ProxyEnv::from_process(),
                    host,
                    port,
                    || proxy::vault_password(&config),
                )
            })?;
            let identity = enroll::enroll(EnrollOptions {
                runtime,
                token,
                ca_fingerprint,
                state: StateDir::new(&config.state_dir).with_service_user(&config.service_user),
                proxy,
            })
            .await?;
            println!("enrolled as {identity}");
            println!("state in {}", config.state_dir.display());
            let owner =
                edge_connector::state_guard::check(&config.state_dir, &config.service_user)?;
            let (key, _) = edge_connector::audit::AuditKey::load_or_create(
                &edge_connector::audit::key_path(&config.state_dir),
                owner,
            )?;
            println!("audit key {}", key.public());
        }
        Command::Vault { config, command } => {
            let config = config.load()?;
            // Vault operations block on file locks and fsync: keep them off the reactor.
            tokio::task::spawn_blocking(move || cli::vault::run(command, &config)).await??;
        }
        Command::Audit { config, command } => {
            let config = config.load()?;
            return tokio::task::spawn_blocking(move || cli::audit::run(command, &config)).await?;
        }
        Command::Doctor { config, json } => doctor(config, json).await?,
        // Exit codes of its own (LSB `status`).
        Command::Status { config, json } => {
            let config = config.load();
            let state_dir = config.as_ref().map(|c| c.state_dir.as_path());
            return Ok(cli::status::run(
                state_dir.map_err(|e| anyhow::anyhow!("{e:#}")),
                json,
            ));
        }
        Command::EgressReport { config, json } => egress_report(config, json).await?,
        Command::Run {
            config,
            drain_timeout,
            transport,
        } => {
            let mut config = config.load()?;
            if let Some(t) = transport {
                config.tunnel.transport = t;
            }
            let shutdown = CancellationToken::new();
            let signal_token = shutdown.clone();
            tokio::spawn(async move {
                if wait_for_signal().await.is_ok() {
                    signal_token.cancel();
                }
            });
            edge_connector::run(config, drain_timeout, shutdown).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn doctor(args: ConfigArgs, json: bool) -> Result<()> {
    let path = args.config.clone();
    let report = match args.load() {
        Ok(config) => {
            edge_connector::doctor::run(&config, &edge_connector::egress::ProxyEnv::from_process())
                .await
        }
        Err(e) => edge_connector::doctor::unloadable_config(path.as_deref(), &format!("{e:#}")),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if !report.ok {
        bail!(
            "doctor found {} problem(s)",
            report.count(edge_connector::doctor::Status::Fail)
        );
    }
    Ok(())
}

async fn egress_report(args: ConfigArgs, json: bool) -> Result<()> {
    use edge_connector::egress;
    let config = args.load()?;
    let enrollment = StateDir::new(&config.state_dir).config().ok();
    let mut destinations = egress::destinations(
        &config,
        enrollment.as_ref(),
        &egress::ProxyEnv::from_process(),
    );
    egress::resolve(&mut destinations).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "enrolled": enrollment.is_some(),
                "destinations": destinations,
            }))?
        );
    } else {
        print!("{}", egress::render(&destinations, enrollment.is_some()));
    }
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
