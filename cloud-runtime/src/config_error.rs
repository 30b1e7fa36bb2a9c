//! Bad configuration: what an operator must fix before the runtime can start (a flag out of
//! range, a data directory that was never initialized, a `runtime.toml` that does not
//! parse). The command line exits with status 64 for these, and 1 for other failures, so a
//! supervisor or script can tell "fix the configuration" from "try again".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shared::identity::IdentityError;

/// A configuration the runtime refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The data directory has no readable `runtime.toml`.
    #[error(
        "{} is not an initialized data directory (run `cloud-runtime init --data-dir {} --hostname NAME`)",
        root.display(),
        root.display()
    )]
    NotInitialized {
        /// The data directory.
        root: PathBuf,
        /// Why `runtime.toml` could not be read.
        #[source]
        source: std::io::Error,
    },
    /// `runtime.toml` does not parse.
    #[error("parsing {}", path.display())]
    Unparseable {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: toml::de::Error,
    },
    /// `init --hostname` names neither a DNS name nor an IP address.
    #[error("--hostname {0:?} is neither a DNS name nor an IP address")]
    Hostname(String),
    /// `init` was given (or derived) a trust domain that is not one.
    #[error("trust domain {value:?}")]
    TrustDomain {
        /// The value.
        value: String,
        /// Why it is not a trust domain.
        #[source]
        source: IdentityError,
    },
    /// `runtime.toml` holds a trust domain that is not one.
    #[error("trust domain {value:?} in runtime.toml")]
    StoredTrustDomain {
        /// The value.
        value: String,
        /// Why it is not a trust domain.
        #[source]
        source: IdentityError,
    },
    /// A client may hold more HTTPS connections than the listener allows at all.
    #[error("--https-max-connections-per-client must not exceed --https-max-connections")]
    PerClientAboveMax,
    /// Connections would be closed before they could carry a request.
    #[error("--https-idle-timeout must be more than zero")]
    ZeroIdleTimeout,
    /// Connector certificates would live too briefly or too long.
    #[error("--connector-cert-ttl must be between {min:?} and {max:?}")]
    ConnectorCertTtl {
        /// Shortest allowed.
        min: Duration,
        /// Longest allowed.
        max: Duration,
    },
    /// The heartbeat interval is out of range.
    #[error("--heartbeat-interval must be between 100ms and 60s")]
    HeartbeatInterval,
    /// Unauthenticated development mode on an address others can reach.
    #[error(
        "--dev-unauthenticated serves MCP without authentication and is allowed only on a loopback address, not {0}"
    )]
    DevUnauthenticatedNotLoopback(SocketAddr),
    /// Plain HTTP asked for outside development mode.
    #[error("--dev-http-listen needs --dev-unauthenticated")]
    DevHttpWithoutDevMode,
    /// Plain HTTP on an address others can reach.
    #[error("--dev-http-listen must be a loopback address, not {0}")]
    DevHttpNotLoopback(SocketAddr),
}
