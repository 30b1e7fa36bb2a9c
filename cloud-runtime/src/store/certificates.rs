//! Store operations on a connector's certificates: first use, renewal, and refusals of
//! superseded ones (the rules they follow are in [`crate::tunnel::lineage`]).
//!
//! Each is one conditional `UPDATE`, so two replicas (or two tunnels of one connector)
//! racing on the same certificate cannot both win.

use shared::identity::ConnectorId;

use super::db::query;
use super::{Store, StoreError, UnixMs};

/// A connector's certificates as the store records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// Serial (hex) of the certificate issued last.
    pub current: String,
    /// Serial (hex) of the certificate the last renewal replaced, while `current` has not
    /// yet been presented.
    pub previous: Option<String>,
    /// Whether `current` has been presented at a handshake.
    pub confirmed: bool,
}

/// The certificates a connector may present, DER: the current one and, until that is used,
/// the one it renewed. `None` for one issued before the store kept them.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct IssuedCertificates {
    /// The current certificate.
    pub cert_der: Option<Vec<u8>>,
    /// The certificate the last renewal replaced, while the current one is unused.
    pub previous_cert_der: Option<Vec<u8>>,
}

impl Store {
    /// Keeps the certificate `der` the runtime issued as `serial`, if `serial` is still the
    /// connector's current certificate (called right after enrollment and renewal).
    pub async fn record_certificate(
        &self,
        id: &ConnectorId,
        serial: &str,
        der: &[u8],
    ) -> Result<(), StoreError> {
        query("UPDATE connectors SET cert_der = $1 WHERE id = $2 AND cert_serial = $3")
            .bind(der)
            .bind(id.as_str())
            .bind(serial)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The certificates connector `id` may present; `None` for an unknown connector.
    pub async fn issued_certificates(
        &self,
        id: &ConnectorId,
    ) -> Result<Option<IssuedCertificates>, StoreError> {
        Ok(
            query("SELECT cert_der, previous_cert_der FROM connectors WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records the first use of the connector's current certificate `serial`: the
    /// certificate it replaced is superseded from now on. False if `serial` is not the
    /// current certificate or was used before.
    pub async fn confirm_certificate(
        &self,
        id: &ConnectorId,
        serial: &str,
    ) -> Result<bool, StoreError> {
        let r = query(
            "UPDATE connectors SET cert_confirmed_at = $1, previous_cert_serial = NULL, previous_cert_der = NULL \
             WHERE id = $2 AND cert_serial = $3 AND cert_confirmed_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(id.as_str())
        .bind(serial)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records the renewal of certificate `presented` to `serial`: only if `presented` is
    /// still the connector's current certificate (each certificate renews once) and the
    /// connector is not revoked. False otherwise, and nothing changes.
    pub async fn renew_certificate(
        &self,
        id: &ConnectorId,
        presented: &str,
        serial: &str,
        not_after: UnixMs,
    ) -> Result<bool, StoreError> {
        let r = query(
            "UPDATE connectors SET previous_cert_serial = cert_serial, previous_cert_der = cert_der, \
             cert_serial = $1, cert_der = NULL, cert_not_after = $2, cert_confirmed_at = NULL WHERE id = $3 AND cert_serial = $4 AND revoked_at IS NULL",
        )
        .bind(serial)
        .bind(not_after)
        .bind(id.as_str())
        .bind(presented)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a handshake refused for presenting the superseded certificate `serial`.
    pub async fn record_superseded(
        &self,
        id: &ConnectorId,
        serial: &str,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE connectors SET superseded_count = superseded_count + 1, superseded_last_at = $1, \
             superseded_last_serial = $2 WHERE id = $3",
        )
        .bind(self.now_ms())
        .bind(serial)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shared::identity::TenantId;

    use super::*;
    use crate::store::KEY_COPY_WARNING;
    use crate::tunnel::lineage::{Admission, admit};

    async fn enrolled(serial: &str) -> (tempfile::TempDir, Store, ConnectorId) {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path()).await;
        let t: TenantId = "acme".parse().unwrap();
        let c: ConnectorId = "c1".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        s.create_join_token("h", &t, &c, s.now_ms() + 60_000)
            .await
            .unwrap();
        s.complete_enrollment("h", &t, &c, serial, s.now_ms() + 60_000)
            .await
            .unwrap();
        (dir, s, c)
    }

    async fn admission(s: &Store, c: &ConnectorId, serial: &str) -> Admission {
        admit(&s.connector(c).await.unwrap().unwrap().lineage(), serial)
    }

    #[tokio::test]
    async fn an_already_renewed_certificate_cannot_renew_again() {
        let (_d, s, c) = enrolled("0a").await;
        assert!(s.confirm_certificate(&c, "0a").await.unwrap());
        assert!(
            s.renew_certificate(&c, "0a", "0b", s.now_ms())
                .await
                .unwrap()
        );
        // The copy (or a replay) asks again with X: refused, and Y stays current.
        assert!(
            !s.renew_certificate(&c, "0a", "0c", s.now_ms())
                .await
                .unwrap()
        );
        let row = s.connector(&c).await.unwrap().unwrap();
        assert_eq!(row.cert_serial, "0b");
        assert_eq!(row.previous_cert_serial.as_deref(), Some("0a"));
    }

    #[tokio::test]
    async fn the_first_use_of_a_renewed_certificate_supersedes_the_old_one() {
        let (_d, s, c) = enrolled("0a").await;
        assert!(s.confirm_certificate(&c, "0a").await.unwrap());
        assert!(
            s.renew_certificate(&c, "0a", "0b", s.now_ms())
                .await
                .unwrap()
        );
        assert_eq!(admission(&s, &c, "0a").await, Admission::Previous);
        assert_eq!(admission(&s, &c, "0b").await, Admission::FirstUse);
        assert!(s.confirm_certificate(&c, "0b").await.unwrap());
        assert!(!s.confirm_certificate(&c, "0b").await.unwrap());
        assert_eq!(admission(&s, &c, "0a").await, Admission::Superseded);
        assert_eq!(admission(&s, &c, "0b").await, Admission::Current);
    }

    #[tokio::test]
    async fn a_revoked_connector_does_not_renew() {
        let (_d, s, c) = enrolled("0a").await;
        s.revoke(&c).await.unwrap();
        assert!(
            !s.renew_certificate(&c, "0a", "0b", s.now_ms())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_refused_superseded_certificate_is_listed_as_a_possible_key_copy() {
        let (_d, s, c) = enrolled("0a").await;
        assert!(s.connector(&c).await.unwrap().unwrap().warnings.is_empty());
        s.record_superseded(&c, "0a").await.unwrap();
        s.record_superseded(&c, "0a").await.unwrap();
        let row = s.connector(&c).await.unwrap().unwrap();
        assert_eq!(row.superseded_count, 2);
        assert_eq!(row.superseded_last_serial.as_deref(), Some("0a"));
        assert!(row.superseded_last_at.is_some());
        assert_eq!(row.warnings.len(), 1);
        assert!(row.warnings[0].starts_with(KEY_COPY_WARNING), "{row:?}");
    }
}
