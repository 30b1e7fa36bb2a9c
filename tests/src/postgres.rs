//! A throwaway PostgreSQL 15 server (Debian's `postgresql`) for the suites that need one:
//! a new cluster in a temporary folder, on a free loopback port, stopped when dropped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{Process, free_port, run, wait_for};

/// Debian's PostgreSQL 15 programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running PostgreSQL server; dropped, it shuts down and its folder goes.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    /// Whom the server runs as: PostgreSQL refuses root, so as root, the `postgres` user.
    owner: Option<(u32, u32)>,
    server: Option<Process>,
}

/// The uid and gid of the `postgres` user, from the password database.
fn postgres_user() -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some("postgres")).then_some(())?;
            let uid = f.nth(1)?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .context("no postgres user: install Debian's postgresql (./scripts/test does)")
}

impl Postgres {
    /// Makes a cluster and starts its server.
    pub fn start() -> Result<Self> {
        if !Path::new(BIN).join("postgres").exists() {
            bail!(
                "{BIN}/postgres not found: run ./scripts/test, which installs Debian's postgresql"
            );
        }
        let dir = tempfile::tempdir()?;
        let owner = nix::unistd::geteuid()
            .is_root()
            .then(postgres_user)
            .transpose()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let mut pg = Self {
            dir,
            port: free_port(),
            owner,
            server: None,
        };
        let initdb = run(pg.command("initdb").arg("-D").arg(pg.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]));
        if !initdb.status.success() {
            bail!("initdb: {}", String::from_utf8_lossy(&initdb.stderr));
        }
        pg.start_server()?;
        Ok(pg)
    }

    /// Starts the server on the cluster and waits until it listens.
    fn start_server(&mut self) -> Result<()> {
        let mut server = self.command("postgres");
        server
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(self.dir.path())
            .args(["-c", "fsync=off"]);
        let log = self.dir.path().join("postgres.log");
        let process = Process::spawn(server, log)?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let listening = wait_for(Duration::from_secs(20), "PostgreSQL to listen", || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        });
        let log = process.log_text();
        self.server = Some(process);
        listening.context(log).map(drop)
    }

    /// Stops the server (fast shutdown: its clients are cut off) and waits for it to exit.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut server) = self.server.take() {
            server.signal(nix::sys::signal::Signal::SIGINT);
            server.wait_exit(Duration::from_secs(20))?;
        }
        Ok(())
    }

    /// Starts the stopped server again, on the same port and data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_server()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the server's programs, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(Path::new(BIN).join(program));
        if let Some((uid, gid)) = self.owner {
            c.uid(uid).gid(gid);
        }
        c
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        create_database(&self.url("postgres"), name)
    }
}

/// Creates the empty database `name` on the server that `admin_url` (a database there)
/// reaches, with `psql`; returns the new database's URL.
pub fn create_database(admin_url: &str, name: &str) -> Result<String> {
    let out = run(Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", admin_url, "-c"])
        .arg(format!("CREATE DATABASE {name}")));
    if !out.status.success() {
        bail!(
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = admin_url.rsplit_once('/').map_or(admin_url, |(s, _)| s);
    Ok(format!("{server}/{name}"))
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
