//! A throwaway NATS server (Debian's `nats-server`) for the suites that run several runtime
//! replicas: a free loopback port, state in a temporary folder, killed when dropped.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{Process, free_port, wait_for};

/// Debian's NATS server.
const BIN: &str = "/usr/sbin/nats-server";

/// A running NATS server.
pub struct Nats {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Process>,
}

impl Nats {
    /// Starts a server and waits until it takes connections.
    pub fn start() -> Result<Self> {
        if !Path::new(BIN).exists() {
            bail!("{BIN} not found: run ./scripts/test, which installs Debian's nats-server");
        }
        let mut nats = Self {
            dir: tempfile::tempdir()?,
            port: free_port(),
            server: None,
        };
        nats.start_server()?;
        Ok(nats)
    }

    fn start_server(&mut self) -> Result<()> {
        let mut cmd = Command::new(BIN);
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        let process = Process::spawn(cmd, self.dir.path().join("nats.log"))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let up = wait_for(Duration::from_secs(10), "NATS to listen", || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        });
        let log = process.log_text();
        self.server = Some(process);
        up.context(log).map(drop)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Process::pid)
    }

    /// The URL replicas take (`--nats-url`).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}
