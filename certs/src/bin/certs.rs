//! `certs`: offline CA operations for operators (the runtime's `init` does the same on first
//! start; this tool is for inspecting certificates and for signing by hand).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use certs::CertificateAuthority;
use certs::inspect::CertInfo;
use clap::{Parser, Subcommand};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;

/// Offline CA tooling for the mcp-edge tunnel.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new CA (ca.pem, ca.key at mode 0600) in DIR.
    CreateCa {
        /// Where to write the CA.
        #[arg(long)]
        dir: PathBuf,
        /// SPIFFE trust domain the CA names identities in.
        #[arg(long)]
        trust_domain: String,
    },
    /// Issue a server certificate (server.pem, server.key) for the given hostnames.
    IssueServer {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// The CA's trust domain.
        #[arg(long)]
        trust_domain: String,
        /// DNS name or IP address; repeat for several.
        #[arg(long = "hostname", required = true)]
        hostnames: Vec<String>,
        /// Where to write server.pem and server.key.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Sign a connector CSR (PEM) for exactly the given identity URI.
    SignCsr {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// The CA's trust domain.
        #[arg(long)]
        trust_domain: String,
        /// The CSR file (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// spiffe://<td>/tenant/<t>/connector/<id>
        #[arg(long)]
        identity: String,
        /// Certificate lifetime, e.g. 24h.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Where to write the chain (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a certificate's SHA-256 fingerprint (what connectors pin).
    Fingerprint {
        /// Certificate (PEM).
        cert: PathBuf,
    },
    /// Print a certificate's identity, validity and serial.
    Inspect {
        /// Certificate (PEM).
        cert: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::CreateCa { dir, trust_domain } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let (ca, key) = CertificateAuthority::create(&trust_domain)?;
            ca.save(&dir, &key)?;
            println!("{}", ca.fingerprint());
        }
        Command::IssueServer {
            ca_dir,
            trust_domain,
            hostnames,
            out_dir,
        } => {
            let ca = CertificateAuthority::load(&ca_dir, &trust_domain)?;
            let (issued, key) = ca.issue_server(&hostnames)?;
            certs::files::write_secret(&out_dir.join("server.key"), key.as_bytes())?;
            certs::files::write_public(&out_dir.join("server.pem"), issued.chain_pem.as_bytes())?;
            println!("serial {} expires {}", issued.serial_hex, issued.not_after);
        }
        Command::SignCsr {
            ca_dir,
            trust_domain,
            csr,
            identity,
            ttl,
            out,
        } => {
            let ca = CertificateAuthority::load(&ca_dir, &trust_domain)?;
            let identity = identity.parse().context("--identity")?;
            let der = CertificateSigningRequestDer::from_pem_file(&csr)
                .with_context(|| format!("reading CSR {}", csr.display()))?;
            let issued = ca.sign_connector(&der, &identity, ttl)?;
            certs::files::write_public(&out, issued.chain_pem.as_bytes())?;
            println!("serial {} expires {}", issued.serial_hex, issued.not_after);
        }
        Command::Fingerprint { cert } => {
            let info = CertInfo::from_pem(&certs::files::read_to_string(&cert)?)?;
            println!("{}", info.fingerprint);
        }
        Command::Inspect { cert } => {
            let info = CertInfo::from_pem(&certs::files::read_to_string(&cert)?)?;
            match &info.identity {
                Some(id) => println!("identity    {id}"),
                None => println!("identity    (none)"),
            }
            println!("not_before  {}", info.not_before);
            println!("not_after   {}", info.not_after);
            println!("serial      {}", info.serial_hex);
            println!("fingerprint {}", info.fingerprint);
        }
    }
    Ok(())
}
