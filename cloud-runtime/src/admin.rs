//! The local admin socket of a running `serve`: diagnostics for operators and tests.
//!
//! A Unix socket in the data directory (mode 0600, in a 0700 directory): whoever can use it
//! can already read the CA key. It carries one JSON request per line and answers one JSON
//! line each. It can call only the connectors' diagnostic tools (`diag.*`): real tools are
//! reachable only through the MCP endpoint, where every call is authorized for a user and
//! an agent. Each diagnostic call is audited like any other, with the calling Unix user
//! (from the socket's peer credentials) as its user. It also lists and revokes the users'
//! upstream connections, which only the live tunnels reach, as the admin API does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shared::identity::{ConnectorId, TenantId};
use shared::policy::Site;
use shared::wire;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::admin_api::AdminApi;
use crate::audit::digest::DigestKeys;
use crate::audit::record::Arguments;
use crate::audit::{AuditLog, CallAudit, CallFacts, outcome_label};
use crate::tunnel::Registry;
use crate::tunnel::call::NoPeer;
use crate::tunnel::registry::CallSpec;

/// Why the admin socket could not be served or asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A stale socket file could not be removed.
    #[error("removing stale {}", path.display())]
    RemoveStale {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be bound.
    #[error("binding {}", path.display())]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No runtime answers on the socket.
    #[error(
        "connecting to {} (is `cloud-runtime serve` running on this data directory?)",
        path.display()
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A request or answer could not be encoded.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// The runtime's answer is not an answer.
    #[error("reading the admin answer")]
    Answer(#[source] serde_json::Error),
}

/// Longest request line read.
const MAX_LINE: u64 = 64 * 1024;

/// The agent name audit records give admin socket calls.
const AGENT: &str = "cloud-runtime-admin";

/// Prefix of the tools the admin socket may call.
pub const DIAGNOSTIC_PREFIX: &str = "diag.";

/// A request on the admin socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Call `diag.ping` on one connector.
    Ping {
        /// Connector id.
        connector: String,
    },
    /// Call a diagnostic tool on some connector of a tenant.
    Call {
        /// Tenant.
        tenant: String,
        /// A specific connector, or any.
        connector: Option<String>,
        /// Tool (must start with `diag.`).
        tool: String,
        /// Arguments object.
        #[serde(default)]
        arguments: serde_json::Value,
        /// Time budget.
        timeout_ms: Option<u64>,
    },
    /// List live tunnels.
    Online,
    /// The users' upstream connections the tenant's online connectors hold, or (with
    /// `revoke`) one connector forgetting one of them: what the admin API's `connections`
    /// does, as the calling Unix user.
    Connections {
        /// Tenant.
        tenant: String,
        /// The connection to revoke; none to list.
        #[serde(default)]
        revoke: Option<RevokeConnection>,
    },
}

/// The connection an operator revokes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeConnection {
    /// The connector that holds it.
    pub connector: String,
    /// The provider instance.
    pub provider: String,
    /// The user, as the connector keys their tokens.
    pub user: String,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminResponse {
    /// Whether it worked.
    pub ok: bool,
    /// The result (tool output or list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Round trip inside the runtime, microseconds.
    pub elapsed_us: u64,
}

fn failure(msg: impl Into<String>, started: Instant) -> AdminResponse {
    AdminResponse {
        ok: false,
        result: None,
        error: Some(msg.into()),
        elapsed_us: started.elapsed().as_micros() as u64,
    }
}

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    if path.exists() {
        std::fs::remove_file(path).map_err(|source| AdminError::RemoveStale {
            path: path.to_owned(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| AdminError::Bind {
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// What an admin connection acts with.
struct Admin {
    api: Arc<AdminApi>,
    registry: Arc<Registry>,
    audit: AuditLog,
    digest_keys: Arc<DigestKeys>,
    /// `local:uid=N`, the audit records' user.
    user: String,
}

/// Serves admin requests until `shutdown`.
pub async fn serve(
    listener: UnixListener,
    api: Arc<AdminApi>,
    registry: Arc<Registry>,
    audit: AuditLog,
    digest_keys: Arc<DigestKeys>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r { Ok((s, _)) => s, Err(e) => { debug!(error = %e, "admin accept"); continue } },
            _ = shutdown.cancelled() => return,
        };
        let user = match stream.peer_cred() {
            Ok(cred) => format!("local:uid={}", cred.uid()),
            Err(e) => {
                debug!(error = %e, "admin peer credentials");
                continue;
            }
        };
        let admin = Admin {
            api: api.clone(),
            registry: registry.clone(),
            audit: audit.clone(),
            digest_keys: digest_keys.clone(),
            user,
        };
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &admin).await {
                debug!(error = %e, "admin connection ended");
            }
        });
    }
}

async fn handle(stream: UnixStream, admin: &Admin) -> Result<(), AdminError> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE * 64));
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let response = if line.len() as u64 > MAX_LINE {
            failure("request too long", started)
        } else {
            match serde_json::from_str::<AdminRequest>(&line) {
                Ok(req) => execute(req, admin, started).await,
                Err(e) => failure(format!("invalid request: {e}"), started),
            }
        };
        let mut out = serde_json::to_vec(&response)?;
        out.push(b'\n');
        write.write_all(&out).await?;
    }
}

/// A connections request, as the admin API's function for the tenant's administrator
/// `local:uid=N` (the calling Unix user).
async fn connections(
    admin: &Admin,
    tenant: &str,
    revoke: Option<RevokeConnection>,
    started: Instant,
) -> AdminResponse {
    let Ok(tenant) = tenant.parse::<TenantId>() else {
        return failure("invalid tenant", started);
    };
    let acting = crate::admin_api::auth::Admin {
        tenant,
        via: AGENT.to_owned(),
        name: admin.user.clone(),
        scopes: crate::admin_api::tokens::Scope::ALL.to_vec(),
    };
    let answer = match revoke {
        None => crate::admin_api::connections::connections(&admin.api, &acting)
            .await
            .map(|(found, unreachable)| {
                serde_json::json!({"connections": found, "unreachable": unreachable})
            }),
        Some(r) => crate::admin_api::connections::revoke(
            &admin.api,
            &acting,
            &r.connector,
            &r.provider,
            &r.user,
        )
        .await
        .map(|revoked| serde_json::json!({"revoked": revoked})),
    };
    match answer {
        Ok(result) => AdminResponse {
            ok: true,
            result: Some(result),
            error: None,
            elapsed_us: started.elapsed().as_micros() as u64,
        },
        Err(problem) => failure(problem.message, started),
    }
}

async fn execute(req: AdminRequest, admin: &Admin, started: Instant) -> AdminResponse {
    let registry = &admin.registry;
    let (tenant, connector, tool, arguments, timeout) = match req {
        AdminRequest::Connections { tenant, revoke } => {
            return connections(admin, &tenant, revoke, started).await;
        }
        AdminRequest::Online => {
            return AdminResponse {
                ok: true,
                result: serde_json::to_value(registry.online()).ok(),
                error: None,
                elapsed_us: started.elapsed().as_micros() as u64,
            };
        }
        AdminRequest::Ping { connector } => {
            let Ok(id) = connector.parse::<ConnectorId>() else {
                return failure("invalid connector id", started);
            };
            let Some(tenant) = registry.tenant_of(&id) else {
                return failure(format!("connector {id} is not online"), started);
            };
            (
                tenant,
                Some(id),
                "diag.ping".to_owned(),
                serde_json::json!({}),
                None,
            )
        }
        AdminRequest::Call {
            tenant,
            connector,
            tool,
            arguments,
            timeout_ms,
        } => {
            let Ok(tenant) = tenant.parse::<TenantId>() else {
                return failure("invalid tenant", started);
            };
            let connector = match connector.map(|c| c.parse::<ConnectorId>()).transpose() {
                Ok(c) => c,
                Err(_) => return failure("invalid connector id", started),
            };
            if !tool.starts_with(DIAGNOSTIC_PREFIX) {
                return failure(
                    "the admin socket calls only diagnostic tools (diag.*); other tools go through MCP",
                    started,
                );
            }
            (tenant, connector, tool, arguments, timeout_ms)
        }
    };
    let arguments = if arguments.is_null() {
        serde_json::json!({})
    } else {
        arguments
    };
    let call_id = registry.new_call_id();
    let arguments_json = arguments.to_string();
    let key = match admin.digest_keys.key(tenant.as_str()).await {
        Ok(k) => k,
        Err(e) => return failure(e.to_string(), started),
    };
    let audit = CallAudit::new(CallFacts {
        tenant: tenant.as_str(),
        gateway: None,
        user: &admin.user,
        user_id: None,
        agent: AGENT,
        tool: &tool,
        instance: None,
        target: None,
        arguments: arguments.as_object().map(|a| Arguments::of(&key, a, false)),
        call_id,
        trace_id: String::new(),
        span_id: String::new(),
    });
    // No record, no call: the same rule as for MCP calls.
    if let Err(e) = admin
        .audit
        .write(audit.decision(None, "local admin socket: diagnostic tool"))
        .await
    {
        return failure(e.to_string(), started);
    }
    let spec = CallSpec {
        call_id,
        tool,
        arguments_json: arguments_json.into_bytes(),
        timeout: Duration::from_millis(timeout.unwrap_or(10_000).clamp(1, 600_000)),
        caller: wire::Caller {
            tenant: tenant.to_string(),
            user: admin.user.clone(),
            agent: AGENT.into(),
        },
        site: Site::default(),
        traceparent: String::new(),
        binding: Default::default(),
        // An operator on the host is nobody the identity provider vouched for.
        user_proof: String::new(),
        approval: String::new(),
    };
    let report = registry
        .call(&tenant, connector.as_ref(), spec, &NoPeer)
        .await;
    let ran_on = report.connector.as_ref().map(|c| c.to_string());
    let label = outcome_label(&report.outcome);
    let reason = report.outcome.as_ref().err().map(|f| f.message.as_str());
    admin
        .audit
        .submit(audit.outcome(ran_on.as_deref(), &label, reason))
        .await;
    match report.outcome {
        Ok(out) => AdminResponse {
            ok: !out.is_error,
            result: Some(tool_output_json(&out)),
            error: out.is_error.then(|| out.text.clone()),
            elapsed_us: started.elapsed().as_micros() as u64,
        },
        Err(f) => failure(f.to_string(), started),
    }
}

fn tool_output_json(out: &wire::ToolOutput) -> serde_json::Value {
    let structured = serde_json::from_slice::<serde_json::Value>(&out.structured_json)
        .unwrap_or(serde_json::Value::Null);
    serde_json::json!({ "text": out.text, "structured": structured, "is_error": out.is_error })
}

/// Sends one request to a running runtime's admin socket.
pub async fn request(socket: &Path, req: &AdminRequest) -> Result<AdminResponse, AdminError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| AdminError::Connect {
            path: socket.to_owned(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut line = String::new();
    BufReader::new(read.take(16 * 1024 * 1024))
        .read_line(&mut line)
        .await?;
    serde_json::from_str(&line).map_err(AdminError::Answer)
}
