//! `cloud-runtime policy apply`: validate a policy file and store it as the tenant's next
//! revision. Running runtimes pick it up within a second ([`super::live`]).

use std::path::Path;

use shared::identity::TenantId;

use super::file::{self, MAX_POLICY_BYTES, PolicyError, TenantPolicy};
use crate::store::{GatewayRow, Store, StoreError};

/// Why a policy could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is invalid.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A rollback named a revision the tenant does not have.
    #[error("tenant {tenant} has no policy revision {revision}")]
    NoRevision {
        /// Tenant.
        tenant: TenantId,
        /// The revision asked for.
        revision: i64,
    },
}

/// What was applied.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new revision number.
    pub revision: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Roles, groups and gateways it defines.
    pub counts: (usize, usize, usize),
}

/// Validates `path` and stores it for `tenant`.
pub async fn apply(store: &Store, tenant: &TenantId, path: &Path) -> Result<Applied, ApplyError> {
    let name = path.display().to_string();
    let read_err = |source| ApplyError::Read {
        path: name.clone(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_err)?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(read_err(std::io::Error::other(format!(
            "larger than {MAX_POLICY_BYTES} bytes"
        ))));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| read_err(std::io::Error::other("not UTF-8 text")))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(name);
    apply_text(store, tenant, &file_name, &text).await
}

/// Validates the policy `text` (named `file_name` in errors and in its revision) and
/// stores it for `tenant`: what `apply` does with a file's contents, and the admin API
/// with a request's body.
pub async fn apply_text(
    store: &Store,
    tenant: &TenantId,
    file_name: &str,
    text: &str,
) -> Result<Applied, ApplyError> {
    let (policy, sha256) = validate(file_name, text)?;
    let gateways: Vec<GatewayRow> = policy
        .gateways
        .iter()
        .map(|(gw, def)| GatewayRow {
            tenant: tenant.to_string(),
            name: gw.clone(),
            instructions: def.instructions.clone(),
            tools: def.tools.clone(),
        })
        .collect();
    let revision = store
        .apply_policy(tenant, file_name, text, &sha256, &gateways)
        .await?;
    Ok(Applied {
        revision,
        sha256,
        counts: counts(&policy),
    })
}

/// Puts revision `revision`'s text back in force as the tenant's next revision (history
/// only grows), checked again as any new file is.
pub async fn roll_back(
    store: &Store,
    tenant: &TenantId,
    revision: i64,
) -> Result<Applied, ApplyError> {
    let row = store
        .policy_revision(tenant.as_str(), revision)
        .await?
        .ok_or_else(|| ApplyError::NoRevision {
            tenant: tenant.clone(),
            revision,
        })?;
    apply_text(store, tenant, &row.file_name, &row.source).await
}

/// Parses `text` as a policy file named `file_name`; with its SHA-256, hex.
pub fn validate(file_name: &str, text: &str) -> Result<(TenantPolicy, String), PolicyError> {
    let policy = file::parse(file_name, text)?;
    let sha256 = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        text.as_bytes(),
    ));
    Ok((policy, sha256))
}

/// The roles, groups and gateways `policy` defines.
pub fn counts(policy: &TenantPolicy) -> (usize, usize, usize) {
    (
        policy.roles.len(),
        policy.groups.len(),
        policy.gateways.len(),
    )
}
