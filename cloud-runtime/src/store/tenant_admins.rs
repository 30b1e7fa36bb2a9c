//! Store operations for who administers a tenant: the group whose members may use its
//! admin console.

use super::db::query;
use super::{Store, StoreError};

/// The admin group of a tenant that did not name one.
pub const DEFAULT_ADMIN_GROUP: &str = "tenant-admins";

impl Store {
    /// `tenant`'s admin group.
    pub async fn admin_group(&self, tenant: &str) -> Result<String, StoreError> {
        let row: Option<(String,)> =
            query("SELECT admin_group FROM tenant_admin_groups WHERE tenant = $1")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map_or_else(|| DEFAULT_ADMIN_GROUP.to_owned(), |(g,)| g))
    }

    /// Sets `tenant`'s admin group.
    pub async fn set_admin_group(&self, tenant: &str, group: &str) -> Result<(), StoreError> {
        query(
            "INSERT INTO tenant_admin_groups (tenant, admin_group) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET admin_group = excluded.admin_group",
        )
        .bind(tenant)
        .bind(group)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
