//! `cloud-runtime`: command-line entry point. Parses flags, sets up logging, and hands each
//! command to its module in [`cli`]; all behaviour lives in the library.

use clap::{Parser, Subcommand};

mod cli;

/// The cloud runtime of mcp-edge: enrolls edge connectors and brokers tool calls to them.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create the data directory: CA, server certificate, store.
    Init(cli::init::InitArgs),
    /// Run the runtime: QUIC tunnel listener, HTTPS endpoint, admin socket.
    Serve(cli::serve::ServeArgs),
    /// Apply the store's schema migrations (`serve` also does at start) and print its version.
    Migrate(cli::migrate::MigrateArgs),
    /// Copy a store into an empty database (a single-process install to PostgreSQL); stop
    /// `serve` first.
    MigrateStore(cli::migrate::MigrateStoreArgs),
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
        command: cli::user::UserCommand,
    },
    /// Configure the tenant's OpenID Connect identity provider for user sign-in.
    Idp {
        #[command(subcommand)]
        command: cli::idp::IdpCommand,
    },
    /// Manage agents: the applications that act for users, each with a role.
    Agent {
        #[command(subcommand)]
        command: cli::agent::AgentCommand,
    },
    /// The OAuth clients that act in a tenant (MCP clients its users signed in with).
    Client {
        #[command(subcommand)]
        command: cli::client::ClientCommand,
    },
    /// The users' upstream connections the connectors hold (asks the running `serve`).
    Connection {
        #[command(subcommand)]
        command: cli::connection::ConnectionCommand,
    },
    /// Manage gateways: named tool collections, each with its own MCP URL.
    Gateway {
        #[command(subcommand)]
        command: cli::gateway::GatewayCommand,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: cli::tenant::TenantCommand,
    },
    /// Manage connectors.
    Connector {
        #[command(subcommand)]
        command: cli::connector::ConnectorCommand,
    },
    /// Tokens of the tenant admin API (`/admin/api/v1/t/{tenant}/...`).
    AdminToken {
        #[command(subcommand)]
        command: cli::admin_token::AdminTokenCommand,
    },
    /// The runtime's own keys, when they live in the store.
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // PostgreSQL's notices ("relation ... already exists, skipping" at every
                // migration check) are the server's chatter, not the operator's news.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn")
                }),
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
    cli::finish(rt.block_on(run(cli.command)))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => cli::init::run(args).await,
        Command::Serve(args) => cli::serve::run(args).await,
        Command::Migrate(args) => cli::migrate::run(args).await,
        Command::MigrateStore(args) => cli::migrate::run_store(args).await,
        Command::Policy { command } => {
            if cli::policy::run(command).await? {
                Ok(())
            } else {
                Err(cli::Denied.into())
            }
        }
        Command::Audit { command } => cli::audit::run(command).await,
        Command::User { command } => cli::user::run(command).await,
        Command::Idp { command } => cli::idp::run(command).await,
        Command::Agent { command } => cli::agent::run(command).await,
        Command::Client { command } => cli::client::run(command).await,
        Command::Connection { command } => cli::connection::run(command).await,
        Command::Gateway { command } => cli::gateway::run(command).await,
        Command::Tenant { command } => cli::tenant::run(command).await,
        Command::Connector { command } => cli::connector::run(command).await,
        Command::Keys { command } => cli::keys::run(command).await,
        Command::AdminToken { command } => cli::admin_token::run(command).await,
    }
}
