//! The runtime's persistent state: tenants, join tokens and connectors.
//!
//! The embedded default is one SQLite file in the data directory (WAL mode, so the `serve`
//! process and the admin commands can use it at once). The SQL is kept portable (TEXT keys,
//! BIGINT Unix-millisecond timestamps) so the same migrations carry to PostgreSQL when the
//! runtime scales out; every query goes through this one interface.

pub mod approval;
pub mod audit_keys;
pub mod certificates;
pub mod connect;
pub mod oauth;
pub mod policy;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shared::clock::{Clock, SystemClock};
use shared::identity::{ConnectorId, TenantId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::store::certificates::Lineage;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
    online: i64,
    last_seen: Option<i64>,
    previous_cert_serial: Option<String>,
    cert_confirmed_at: Option<i64>,
    superseded_count: i64,
    superseded_last_at: Option<i64>,
    superseded_last_serial: Option<String>,
}

const CONNECTOR_COLUMNS: &str = "id, tenant, enrolled_at, cert_serial, cert_not_after, revoked_at, version, transport, online, last_seen, \
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
    pool: SqlitePool,
    /// Decides what has expired (join tokens, codes, refresh tokens, sessions) and stamps
    /// what is recorded.
    clock: Arc<dyn Clock>,
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let store = Self {
            pool,
            clock: Arc::new(SystemClock),
        };
        store.assign_user_ids().await?;
        Ok(store)
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
        let r = sqlx::query(
            "INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
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
        let row: Option<(String,)> = sqlx::query_as("SELECT name FROM tenants WHERE name = ?")
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
        sqlx::query("UPDATE tenants SET audit_key = ? WHERE name = ? AND audit_key IS NULL")
            .bind(&fresh)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT audit_key FROM tenants WHERE name = ?")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(k,)| k))
    }

    /// All tenant names.
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM tenants ORDER BY name")
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
        sqlx::query(
            "INSERT INTO join_tokens (token_hash, tenant, connector_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
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
        let row: Option<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT tenant, connector_id, expires_at, used_at FROM join_tokens WHERE token_hash = ?",
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
        let redeemed = sqlx::query(
            "UPDATE join_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if redeemed.rows_affected() != 1 {
            return Err(StoreError::TokenAlreadyUsed);
        }
        sqlx::query(
            "INSERT INTO connectors (id, tenant, enrolled_at, cert_serial, cert_not_after) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(connector_id.as_str())
        .bind(tenant.as_str())
        .bind(now)
        .bind(cert_serial)
        .bind(cert_not_after)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One connector.
    pub async fn connector(&self, id: &ConnectorId) -> Result<Option<ConnectorRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE id = ?"
        ));
        let row: Option<ConnectorRecord> = sqlx::query_as(sql)
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
        let rows: Vec<ConnectorRecord> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
        let now = self.now_ms();
        Ok(rows.into_iter().map(|t| connector_from(t, now)).collect())
    }

    /// Revokes a connector. Returns false if it was already revoked.
    pub async fn revoke(&self, id: &ConnectorId) -> Result<bool, StoreError> {
        if self.connector(id).await?.is_none() {
            return Err(StoreError::NotFound(format!("connector {id}")));
        }
        let r = sqlx::query(
            "UPDATE connectors SET revoked_at = ?, online = 0 WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ids of all revoked connectors.
    pub async fn revoked_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM connectors WHERE revoked_at IS NOT NULL")
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
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE connectors SET online = 1, session_id = ?, version = ?, transport = ?, last_seen = ? WHERE id = ?")
            .bind(session_id)
            .bind(version)
            .bind(transport)
            .bind(self.now_ms())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a heartbeat of the given tunnel.
    pub async fn touch(&self, id: &ConnectorId, session_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE connectors SET last_seen = ? WHERE id = ? AND session_id = ?")
            .bind(self.now_ms())
            .bind(id.as_str())
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the end of the given tunnel (not of a newer one that replaced it).
    pub async fn mark_offline(&self, id: &ConnectorId, session_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connectors SET online = 0, last_seen = ? WHERE id = ? AND session_id = ?",
        )
        .bind(self.now_ms())
        .bind(id.as_str())
        .bind(session_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clears every online flag (at start: no tunnel survives a restart).
    pub async fn reset_online(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE connectors SET online = 0, session_id = NULL")
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
        let r = sqlx::query(
            "INSERT INTO gateways (tenant, name, instructions, tools, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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

    /// One gateway.
    pub async fn gateway(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<GatewayRow>, StoreError> {
        let row: Option<(String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT tenant, name, instructions, tools FROM gateways WHERE tenant = ? AND name = ?",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(gateway_from))
    }

    /// All gateways, optionally of one tenant.
    pub async fn gateways(&self, tenant: Option<&str>) -> Result<Vec<GatewayRow>, StoreError> {
        let rows: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT tenant, name, instructions, tools FROM gateways WHERE ? IS NULL OR tenant = ? ORDER BY tenant, name",
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("runtime.db")).await.unwrap();
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
        s.mark_online(&c, "new", "1.0", "quic").await.unwrap();
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
