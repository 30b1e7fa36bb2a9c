//! `fake-upstream`: runs a fake GitHub Enterprise Server or GitLab for tests and the local
//! sandbox. Prints the bound address once listening (and writes it to `--addr-file`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use fake_upstream::{Budget, Config, Kind, Seed, TlsFiles};

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Github,
    Gitlab,
}

/// A faithful fake GitHub Enterprise Server (REST /api/v3) or GitLab (REST /api/v4).
/// A flag given twice takes its last value (a test harness's defaults can be overridden).
#[derive(Parser)]
#[command(version, args_override_self = true)]
struct Args {
    /// Which API to fake.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// `builtin` or a seed JSON file.
    #[arg(long, default_value = "builtin")]
    seed: String,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Write the bound address (host:port) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Core requests per user per window (default: GitHub 5000/3600 s, GitLab 2000/60 s).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Core rate-limit window in seconds.
    #[arg(long)]
    rate_window: Option<u64>,
    /// GitHub search requests per user per minute.
    #[arg(long, default_value_t = 30)]
    search_rate_limit: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let kind = match args.kind {
        KindArg::Github => Kind::Github,
        KindArg::Gitlab => Kind::Gitlab,
    };
    let seed = if args.seed == "builtin" {
        fake_upstream::builtin::builtin()?
    } else {
        let text = std::fs::read_to_string(&args.seed)
            .with_context(|| format!("reading seed {}", args.seed))?;
        Seed::from_json(&text).with_context(|| format!("seed {}", args.seed))?
    };
    let mut config = Config::new(kind, seed);
    config.listen = args.listen;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(TlsFiles { cert, key });
    }
    if let Some(limit) = args.rate_limit {
        config.core.limit = limit;
    }
    if let Some(secs) = args.rate_window {
        config.core.window = Duration::from_secs(secs);
    }
    config.search = Budget {
        limit: args.search_rate_limit,
        window: Duration::from_secs(60),
    };
    let handle = fake_upstream::serve(config)
        .await
        .context("starting the fake")?;
    let addr = handle.addr.to_string();
    if let Some(path) = &args.addr_file {
        // Written whole then renamed, so a watcher never reads half an address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &addr).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{addr}");
    tracing::info!(%addr, kind = kind.name(), url = %handle.base_url(), "listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    handle.stop().await;
    Ok(())
}
