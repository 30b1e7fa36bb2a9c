//! The runtime's persistent state: tenants, join tokens and connectors.
//!
//! Two engines behind this one interface (`db.rs`): the embedded default is one SQLite file
//! in the data directory (WAL mode, so the `serve` process and the admin commands can use
//! it at once); replicas share a PostgreSQL database (`--database-url postgres://...`).
//! Each statement is written once, in SQL both accept (TEXT keys, BIGINT Unix-millisecond
//! timestamps); the two `migrations/` folders hold the same versions, differing only where
//! the column types must (BLOB and BYTEA).

pub mod admin_tokens;
pub mod approval;
pub mod audit_chain;
pub mod audit_index;
pub mod audit_keys;
pub mod certificates;
pub mod client_grants;
pub mod connect;
mod db;
pub mod oauth;
pub mod policy;
pub mod sealed_keys;
pub mod tenant_admins;
pub mod transfer;
mod url;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shared::clock::{Clock, SystemClock};
use shared::identity::{ConnectorId, TenantId};
use sqlx::Connection as _;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::replica::ReplicaId;
use crate::store::certificates::Lineage;
pub use crate::store::db::Engine;
use crate::store::db::{Pool, query};
pub use crate::store::url::{DatabaseUrl, DatabaseUrlError};

/// The SQLite schema's migrations.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
/// The PostgreSQL schema's migrations: the same versions as SQLite's.
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] MigrateError),
    /// The database was migrated by a newer runtime: this binary does not know its schema
    /// and leaves it alone (forward-only: run the newer binary, or restore a backup).
    #[error(
        "the database's schema is newer than this binary: it has migration {found}, \
         and this binary knows migrations up to {known}; run a cloud-runtime at least as new \
         as the one that migrated it"
    )]
    SchemaTooNew {
        /// A migration the database has and the binary does not.
        found: i64,
        /// The newest migration the binary has.
        known: i64,
    },
    /// `migrate-store` found rows in the database it was to copy into.
    #[error(
        "the target database already holds {rows} row(s) in {table}: migrate-store copies into an empty database only"
    )]
    TargetNotEmpty {
        /// The first table found with rows.
        table: String,
        /// How many.
        rows: i64,
    },
    /// A file beside the database could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A row that must be unique already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A referenced row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The join token was redeemed by someone else first.
    #[error("join token was already used")]
    TokenAlreadyUsed,
    /// A stored value does not parse (the file was edited by hand or is corrupt).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Milliseconds since the Unix epoch.
pub type UnixMs = i64;

/// A stored join token (by hash).
#[derive(Debug, Clone)]
pub struct JoinTokenRow {
    /// Tenant it grants.
    pub tenant: TenantId,
    /// Connector id it grants.
    pub connector_id: ConnectorId,
    /// Expiry.
    pub expires_at: UnixMs,
    /// When it was redeemed, if it was.
    pub used_at: Option<UnixMs>,
}

/// Connector status as `connector list` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorStatus {
    /// A live tunnel, seen recently.
    Online,
    /// No live tunnel.
    Offline,
    /// Revoked; will be refused.
    Revoked,
}

/// A connector as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorRow {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Derived status.
    pub status: ConnectorStatus,
    /// Build version reported at hello.
    pub version: Option<String>,
    /// Transport of the live or last tunnel (`quic`).
    pub transport: Option<String>,
    /// The runtime replica that holds (or held) the tunnel.
    pub replica: Option<String>,
    /// Last heartbeat or connect, Unix ms.
    pub last_seen: Option<UnixMs>,
    /// Current certificate's expiry, Unix ms.
    pub cert_not_after: UnixMs,
    /// Current certificate's serial, hex.
    pub cert_serial: String,
    /// The certificate the last renewal replaced, hex, while the current one has not yet
    /// been presented (it may still connect until then).
    pub previous_cert_serial: Option<String>,
    /// When the current certificate was first presented at a handshake, Unix ms.
    pub cert_confirmed_at: Option<UnixMs>,
    /// Handshakes refused for presenting a superseded certificate.
    pub superseded_count: i64,
    /// The last such refusal, Unix ms.
    pub superseded_last_at: Option<UnixMs>,
    /// The serial that refusal presented, hex.
    pub superseded_last_serial: Option<String>,
    /// What an operator should look at (for example a possible key copy).
    pub warnings: Vec<String>,
    /// Enrollment time, Unix ms.
    pub enrolled_at: UnixMs,
    /// Revocation time, Unix ms.
    pub revoked_at: Option<UnixMs>,
}

impl ConnectorRow {
    /// The connector's certificates, as the handshake and renewal rules read them.
    pub fn lineage(&self) -> Lineage {
        Lineage {
            current: self.cert_serial.clone(),
            previous: self.previous_cert_serial.clone(),
            confirmed: self.cert_confirmed_at.is_some(),
        }
    }
}

/// The `connector list` warning for a connector whose superseded certificate was presented.
pub const KEY_COPY_WARNING: &str = "possible key copy";

/// A connector whose `online` flag is older than this is reported offline (the serve
/// process that set it may have died without clearing it).
const ONLINE_STALENESS: Duration = Duration::from_secs(30);

/// A `connectors` row as read.
#[derive(sqlx::FromRow)]
struct ConnectorRecord {
    id: String,
    tenant: String,
    enrolled_at: i64,
    cert_serial: String,
    cert_not_after: i64,
    revoked_at: Option<i64>,
    version: Option<String>,
    transport: Option<String>,
    replica: Option<String>,
    online: i64,
    last_seen: Option<i64>,
    previous_cert_serial: Option<String>,
    cert_confirmed_at: Option<i64>,
    superseded_count: i64,
    superseded_last_at: Option<i64>,
    superseded_last_serial: Option<String>,
}

const CONNECTOR_COLUMNS: &str = "id, tenant, enrolled_at, cert_serial, cert_not_after, revoked_at, version, transport, replica, online, last_seen, \
     previous_cert_serial, cert_confirmed_at, superseded_count, superseded_last_at, superseded_last_serial";

fn connector_from(r: ConnectorRecord, now: UnixMs) -> ConnectorRow {
    let fresh = r
        .last_seen
        .is_some_and(|s| now - s <= ONLINE_STALENESS.as_millis() as i64);
    let status = if r.revoked_at.is_some() {
        ConnectorStatus::Revoked
    } else if r.online != 0 && fresh {
        ConnectorStatus::Online
    } else {
        ConnectorStatus::Offline
    };
    let warnings = if r.superseded_count > 0 {
        vec![format!(
            "{KEY_COPY_WARNING}: a superseded certificate (serial {}) was presented {} time(s) and refused; \
             find where else this connector's key is, then revoke it and re-enroll",
            r.superseded_last_serial.as_deref().unwrap_or("?"),
            r.superseded_count
        )]
    } else {
        Vec::new()
    };
    ConnectorRow {
        id: r.id,
        tenant: r.tenant,
        status,
        version: r.version,
        transport: r.transport,
        replica: r.replica,
        last_seen: r.last_seen,
        cert_not_after: r.cert_not_after,
        cert_serial: r.cert_serial,
        previous_cert_serial: r.previous_cert_serial,
        cert_confirmed_at: r.cert_confirmed_at,
        superseded_count: r.superseded_count,
        superseded_last_at: r.superseded_last_at,
        superseded_last_serial: r.superseded_last_serial,
        warnings,
        enrolled_at: r.enrolled_at,
        revoked_at: r.revoked_at,
    }
}

/// A gateway: a named tool collection of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayRow {
    /// Tenant.
    pub tenant: String,
    /// Name (the URL segment).
    pub name: String,
    /// Text returned at initialize.
    pub instructions: Option<String>,
    /// Tool-name patterns the gateway exposes.
    pub tools: Vec<String>,
}

/// The runtime's store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Decides what has expired (join tokens, codes, refresh tokens, sessions) and stamps
    /// what is recorded.
    clock: Arc<dyn Clock>,
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect(&DatabaseUrl::Sqlite(path.to_owned())).await
    }

    /// Connects to the store at `url` (creating a SQLite file if needed) and applies the
    /// migrations this binary has that the database lacks.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let _opening = opening_lock(url).await?;
        let pool = Self::pool(url).await?;
        migrate(&pool).await?;
        let store = Self {
            pool,
            clock: Arc::new(SystemClock),
        };
        store.assign_user_ids().await?;
        Ok(store)
    }

    /// Connects to the store at `url` without migrating: for `migrate`, which reports.
    async fn pool(url: &DatabaseUrl) -> Result<Pool, StoreError> {
        Ok(match url {
            DatabaseUrl::Sqlite(path) => {
                let opts = SqliteConnectOptions::from_str("sqlite:")?
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(4)
                        .connect_with(opts)
                        .await?,
                )
            }
            DatabaseUrl::Postgres(pg) => {
                // One connection first, on its own: its error names the cause (refused,
                // authentication, no such database), which the pool's retries would turn
                // into a timeout.
                sqlx::PgConnection::connect_with(pg.options())
                    .await?
                    .close()
                    .await?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(16)
                        .acquire_timeout(Duration::from_secs(5))
                        .connect_with(pg.options().clone())
                        .await?,
                )
            }
        })
    }

    /// Applies the migrations the database at `url` lacks, and returns the versions it then
    /// has, oldest first: `cloud-runtime migrate`.
    pub async fn migrate(url: &DatabaseUrl) -> Result<Vec<i64>, StoreError> {
        let opening = opening_lock(url).await?;
        let pool = Self::pool(url).await?;
        migrate(&pool).await?;
        drop(opening);
        let versions = query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all::<(i64,)>(&pool)
            .await?;
        pool.close().await;
        Ok(versions.into_iter().map(|(v,)| v).collect())
    }

    /// Whether the database answers a trivial statement (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The engine the store runs on.
    pub fn engine(&self) -> Engine {
        self.pool.engine()
    }

    /// The same store reading time from `clock` (tests move a [`shared::clock::ManualClock`]
    /// to expire what the store holds).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// Now by the store's clock, in Unix milliseconds: what expiry times are set from.
    pub fn now_ms(&self) -> UnixMs {
        self.clock.now_ms()
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &TenantId) -> Result<(), StoreError> {
        let r =
            query("INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(name.as_str())
                .bind(self.now_ms())
                .execute(&self.pool)
                .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!("tenant {name}")));
        }
        Ok(())
    }

    /// Whether a tenant exists.
    pub async fn tenant_exists(&self, name: &TenantId) -> Result<bool, StoreError> {
        let row: Option<(String,)> = query("SELECT name FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The tenant's secret for keyed audit digests (hex of 32 random bytes), made on first
    /// use. `None` for an unknown tenant.
    pub async fn tenant_audit_key(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        // Whoever sets it first wins; everyone then reads the same key.
        query("UPDATE tenants SET audit_key = $1 WHERE name = $2 AND audit_key IS NULL")
            .bind(&fresh)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        let row: Option<(Option<String>,)> = query("SELECT audit_key FROM tenants WHERE name = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(k,)| k))
    }

    /// All tenant names.
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = query("SELECT name FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Stores a new join token's hash.
    pub async fn create_join_token(
        &self,
        token_hash: &str,
        tenant: &TenantId,
        connector_id: &ConnectorId,
        expires_at: UnixMs,
    ) -> Result<(), StoreError> {
        if !self.tenant_exists(tenant).await? {
            return Err(StoreError::NotFound(format!("tenant {tenant}")));
        }
        query(
            "INSERT INTO join_tokens (token_hash, tenant, connector_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(tenant.as_str())
        .bind(connector_id.as_str())
        .bind(self.now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Looks a join token up by hash.
    pub async fn join_token(&self, token_hash: &str) -> Result<Option<JoinTokenRow>, StoreError> {
        let row: Option<(String, String, i64, Option<i64>)> = query(
            "SELECT tenant, connector_id, expires_at, used_at FROM join_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(tenant, connector_id, expires_at, used_at)| {
            Ok(JoinTokenRow {
                tenant: tenant
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("tenant: {e}")))?,
                connector_id: connector_id
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("connector id: {e}")))?,
                expires_at,
                used_at,
            })
        })
        .transpose()
    }

    /// Redeems a join token and records the enrolled connector, atomically: of two
    /// concurrent enrollments with one token, exactly one succeeds.
    pub async fn complete_enrollment(
        &self,
        token_hash: &str,
        tenant: &TenantId,
        connector_id: &ConnectorId,
        cert_serial: &str,
        cert_not_after: UnixMs,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut tx = self.pool.begin().await?;
        let redeemed = query(
            "UPDATE join_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if redeemed.rows_affected() != 1 {
            return Err(StoreError::TokenAlreadyUsed);
        }
        query(
            "INSERT INTO connectors (id, tenant, enrolled_at, cert_serial, cert_not_after) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(connector_id.as_str())
        .bind(tenant.as_str())
        .bind(now)
        .bind(cert_serial)
        .bind(cert_not_after)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One connector.
    pub async fn connector(&self, id: &ConnectorId) -> Result<Option<ConnectorRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE id = $1"
        ));
        let row: Option<ConnectorRecord> = query(sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|t| connector_from(t, self.now_ms())))
    }

    /// All connectors, by tenant then id.
    pub async fn connectors(&self) -> Result<Vec<ConnectorRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors ORDER BY tenant, id"
        ));
        let rows: Vec<ConnectorRecord> = query(sql).fetch_all(&self.pool).await?;
        let now = self.now_ms();
        Ok(rows.into_iter().map(|t| connector_from(t, now)).collect())
    }

    /// Revokes a connector. Returns false if it was already revoked.
    pub async fn revoke(&self, id: &ConnectorId) -> Result<bool, StoreError> {
        if self.connector(id).await?.is_none() {
            return Err(StoreError::NotFound(format!("connector {id}")));
        }
        let r = query(
            "UPDATE connectors SET revoked_at = $1, online = 0 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ids of all revoked connectors.
    pub async fn revoked_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = query("SELECT id FROM connectors WHERE revoked_at IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Records a live tunnel.
    pub async fn mark_online(
        &self,
        id: &ConnectorId,
        session_id: &str,
        version: &str,
        transport: &str,
        replica: &ReplicaId,
    ) -> Result<(), StoreError> {
        query("UPDATE connectors SET online = 1, session_id = $1, version = $2, transport = $3, replica = $4, last_seen = $5 WHERE id = $6")
            .bind(session_id)
            .bind(version)
            .bind(transport)
            .bind(replica.as_str())
            .bind(self.now_ms())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a heartbeat of the given tunnel. A connector with tunnels to several
    /// replicas shows the one that marked it online; when that one closes, the next
    /// heartbeat of another marks it online again with its own session.
    pub async fn touch(
        &self,
        id: &ConnectorId,
        session_id: &str,
        transport: &str,
        replica: &ReplicaId,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE connectors SET last_seen = $1, online = 1, session_id = $3, transport = $4, replica = $5 \
             WHERE id = $2 AND (session_id = $3 OR online = 0)",
        )
        .bind(self.now_ms())
        .bind(id.as_str())
        .bind(session_id)
        .bind(transport)
        .bind(replica.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the end of the given tunnel (not of a newer one that replaced it).
    pub async fn mark_offline(&self, id: &ConnectorId, session_id: &str) -> Result<(), StoreError> {
        query("UPDATE connectors SET online = 0, last_seen = $1 WHERE id = $2 AND session_id = $3")
            .bind(self.now_ms())
            .bind(id.as_str())
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Clears the online flags `replica` set (at its start: none of its tunnels survived),
    /// and those no replica claims (set before replicas were named); other replicas' stay.
    pub async fn reset_online(&self, replica: &ReplicaId) -> Result<(), StoreError> {
        query(
            "UPDATE connectors SET online = 0, session_id = NULL WHERE replica = $1 OR replica IS NULL",
        )
        .bind(replica.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Creates a gateway.
    pub async fn create_gateway(&self, gw: &GatewayRow) -> Result<(), StoreError> {
        let tenant: TenantId = gw
            .tenant
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?;
        if !self.tenant_exists(&tenant).await? {
            return Err(StoreError::NotFound(format!("tenant {tenant}")));
        }
        let r = query(
            "INSERT INTO gateways (tenant, name, instructions, tools, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&gw.tenant)
        .bind(&gw.name)
        .bind(&gw.instructions)
        .bind(gw.tools.join(","))
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "gateway {} of tenant {}",
                gw.name, gw.tenant
            )));
        }
        Ok(())
    }

    /// Removes `tenant`'s gateway `name`; whether there was one. Its MCP URL answers 404
    /// once the replicas reread it (within five seconds).
    pub async fn remove_gateway(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let r = query("DELETE FROM gateways WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// One gateway.
    pub async fn gateway(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<GatewayRow>, StoreError> {
        let row: Option<(String, String, Option<String>, String)> = query(
            "SELECT tenant, name, instructions, tools FROM gateways WHERE tenant = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(gateway_from))
    }

    /// All gateways, optionally of one tenant.
    pub async fn gateways(&self, tenant: Option<&str>) -> Result<Vec<GatewayRow>, StoreError> {
        let rows: Vec<(String, String, Option<String>, String)> = query(
            "SELECT tenant, name, instructions, tools FROM gateways WHERE $1 IS NULL OR tenant = $2 ORDER BY tenant, name",
        )
        .bind(tenant)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(gateway_from).collect())
    }
}

fn gateway_from(
    (tenant, name, instructions, tools): (String, String, Option<String>, String),
) -> GatewayRow {
    GatewayRow {
        tenant,
        name,
        instructions,
        tools: tools
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

/// Held while a SQLite store is opened and migrated. Two processes opening a store at
/// once take turns: on PostgreSQL sqlx holds an advisory lock while it migrates, but on
/// SQLite it takes none, and `serve` and an admin command opening a new data directory
/// together would both create the first tables (or race to switch the file to WAL).
async fn opening_lock(url: &DatabaseUrl) -> Result<Option<std::fs::File>, StoreError> {
    let DatabaseUrl::Sqlite(path) = url else {
        return Ok(None);
    };
    let mut lock_path = path.clone().into_os_string();
    lock_path.push(".open-lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let io = |source| StoreError::Io {
        path: lock_path.clone(),
        source,
    };
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    let locked = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    Ok(Some(locked))
}

/// Applies the engine's migrations.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let (migrator, run) = match pool {
        Pool::Sqlite(p) => (&SQLITE_MIGRATIONS, SQLITE_MIGRATIONS.run(p).await),
        Pool::Postgres(p) => (&POSTGRES_MIGRATIONS, POSTGRES_MIGRATIONS.run(p).await),
    };
    run.map_err(|e| match e {
        MigrateError::VersionMissing(found) => StoreError::SchemaTooNew {
            found,
            known: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        },
        e => StoreError::Migrate(e),
    })
}

/// Where a test's fresh store goes: a SQLite file in `dir`, or, when
/// `CLOUD_RUNTIME_TEST_DATABASE_URL` names a PostgreSQL server (`scripts/with-postgres`
/// starts a throwaway one), a new, empty database of its own there.
#[cfg(test)]
pub(crate) async fn test_url(dir: &Path) -> DatabaseUrl {
    let Ok(admin) = std::env::var("CLOUD_RUNTIME_TEST_DATABASE_URL") else {
        return DatabaseUrl::Sqlite(dir.join("runtime.db"));
    };
    let DatabaseUrl::Postgres(admin) = admin.parse().unwrap() else {
        panic!("CLOUD_RUNTIME_TEST_DATABASE_URL must be a postgres:// URL");
    };
    let name = format!("test_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut conn = sqlx::PgConnection::connect_with(admin.options())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    DatabaseUrl::Postgres(admin.with_database(&name))
}

/// A fresh, empty store for a test, at [`test_url`].
#[cfg(test)]
pub(crate) async fn test_store(dir: &Path) -> Store {
    Store::connect(&test_url(dir).await).await.unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_schema_newer_than_the_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = test_url(dir.path()).await;
        let s = Store::connect(&url).await.unwrap();
        let known = SQLITE_MIGRATIONS.iter().map(|m| m.version).max().unwrap();
        query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, 'from a newer runtime', TRUE, $2, 0)",
        )
        .bind(known + 1)
        .bind(&[0u8; 48][..])
        .execute(&s.pool)
        .await
        .unwrap();
        s.pool.close().await;
        let e = Store::connect(&url).await.unwrap_err();
        assert!(
            matches!(e, StoreError::SchemaTooNew { found, known: k } if found == known + 1 && k == known),
            "{e}"
        );
        assert!(e.to_string().contains("newer than this binary"), "{e}");
    }

    #[tokio::test]
    async fn replicas_migrating_at_once_both_start() {
        let dir = tempfile::tempdir().unwrap();
        let url = test_url(dir.path()).await;
        let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
        let (a, b) = (a.unwrap(), b.unwrap());
        let t: TenantId = "acme".parse().unwrap();
        a.create_tenant(&t).await.unwrap();
        assert!(b.tenant_exists(&t).await.unwrap());
        let versions = Store::migrate(&url).await.unwrap();
        assert_eq!(versions.len(), SQLITE_MIGRATIONS.iter().count());
    }

    #[tokio::test]
    async fn the_sqlite_and_postgres_migrations_are_the_same_versions() {
        let versions = |m: &Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(&SQLITE_MIGRATIONS), versions(&POSTGRES_MIGRATIONS));
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path()).await;
        (dir, s)
    }

    #[tokio::test]
    async fn a_join_token_is_redeemed_once() {
        let (_d, s) = store().await;
        let t: TenantId = "acme".parse().unwrap();
        let c: ConnectorId = "c1".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        assert!(matches!(
            s.create_tenant(&t).await,
            Err(StoreError::AlreadyExists(_))
        ));
        s.create_join_token("h", &t, &c, s.now_ms() + 60_000)
            .await
            .unwrap();
        s.complete_enrollment("h", &t, &c, "01", s.now_ms())
            .await
            .unwrap();
        assert!(matches!(
            s.complete_enrollment("h", &t, &c, "02", s.now_ms()).await,
            Err(StoreError::TokenAlreadyUsed)
        ));
        assert_eq!(s.connectors().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn gateways_round_trip() {
        let (_d, s) = store().await;
        let t: TenantId = "acme".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        let gw = GatewayRow {
            tenant: "acme".into(),
            name: "eng".into(),
            instructions: Some("be nice".into()),
            tools: vec!["github_*".into(), "diag.ping".into()],
        };
        s.create_gateway(&gw).await.unwrap();
        assert!(matches!(
            s.create_gateway(&gw).await,
            Err(StoreError::AlreadyExists(_))
        ));
        let back = s.gateway("acme", "eng").await.unwrap().unwrap();
        assert_eq!(back, gw);
    }

    #[tokio::test]
    async fn expired_tokens_do_not_redeem() {
        let (_d, s) = store().await;
        let t: TenantId = "acme".parse().unwrap();
        let c: ConnectorId = "c1".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        s.create_join_token("h", &t, &c, s.now_ms() - 1)
            .await
            .unwrap();
        assert!(matches!(
            s.complete_enrollment("h", &t, &c, "01", s.now_ms()).await,
            Err(StoreError::TokenAlreadyUsed)
        ));
    }

    #[tokio::test]
    async fn online_status_follows_the_session_that_set_it() {
        let (_d, s) = store().await;
        let t: TenantId = "acme".parse().unwrap();
        let c: ConnectorId = "c1".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        s.create_join_token("h", &t, &c, s.now_ms() + 60_000)
            .await
            .unwrap();
        s.complete_enrollment("h", &t, &c, "01", s.now_ms())
            .await
            .unwrap();
        let here: ReplicaId = "rt-1".parse().unwrap();
        s.mark_online(&c, "new", "1.0", "quic", &here)
            .await
            .unwrap();
        s.mark_offline(&c, "old").await.unwrap();
        assert_eq!(
            s.connector(&c).await.unwrap().unwrap().status,
            ConnectorStatus::Online
        );
        s.revoke(&c).await.unwrap();
        assert_eq!(
            s.connector(&c).await.unwrap().unwrap().status,
            ConnectorStatus::Revoked
        );
        assert_eq!(s.revoked_ids().await.unwrap(), vec!["c1".to_owned()]);
    }

    #[tokio::test]
    async fn a_replica_starting_again_clears_only_the_tunnels_it_held() {
        let (_d, s) = store().await;
        let t: TenantId = "acme".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        let (a, b): (ReplicaId, ReplicaId) = ("rt-a".parse().unwrap(), "rt-b".parse().unwrap());
        for (n, replica) in [("c1", &a), ("c2", &b)] {
            let c: ConnectorId = n.parse().unwrap();
            s.create_join_token(n, &t, &c, s.now_ms() + 60_000)
                .await
                .unwrap();
            s.complete_enrollment(n, &t, &c, "01", s.now_ms())
                .await
                .unwrap();
            s.mark_online(&c, "s", "1.0", "quic", replica)
                .await
                .unwrap();
        }
        s.reset_online(&a).await.unwrap();
        let status = |rows: &[ConnectorRow], id: &str| {
            rows.iter()
                .find(|r| r.id == id)
                .map(|r| (r.status, r.replica.clone()))
        };
        let rows = s.connectors().await.unwrap();
        assert_eq!(
            status(&rows, "c1"),
            Some((ConnectorStatus::Offline, Some("rt-a".into())))
        );
        assert_eq!(
            status(&rows, "c2"),
            Some((ConnectorStatus::Online, Some("rt-b".into())))
        );
    }

    #[tokio::test]
    async fn a_join_token_expires_when_the_store_clock_passes_its_expiry() {
        let (_d, s) = store().await;
        let clock = Arc::new(shared::clock::ManualClock::at(1_000_000));
        let s = s.with_clock(clock.clone());
        let t: TenantId = "acme".parse().unwrap();
        let c: ConnectorId = "c1".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        s.create_join_token("h", &t, &c, s.now_ms() + 60_000)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(60));
        assert!(matches!(
            s.complete_enrollment("h", &t, &c, "01", s.now_ms()).await,
            Err(StoreError::TokenAlreadyUsed)
        ));
        clock.set(1_000_000 + 59_999);
        s.complete_enrollment("h", &t, &c, "01", s.now_ms())
            .await
            .unwrap();
    }
}
