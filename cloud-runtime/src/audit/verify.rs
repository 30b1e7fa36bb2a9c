//! Checking the audit chains where they are kept: the data directory's file (one process)
//! or each replica's chain in the database. `cloud-runtime audit verify` and the admin API
//! share this.

use std::path::{Path, PathBuf};

use super::chain::{self, Head};
use super::index::LOCAL_CHAIN;
use super::log::{AuditError, verify_file};
use crate::store::{Engine, Store, StoreError};

/// One audit chain and its text.
#[derive(Debug)]
pub struct ChainText {
    /// Its name: [`LOCAL_CHAIN`] for the file, else the replica id.
    pub name: String,
    /// How messages on the runtime's host name it (the file's path, or the replica).
    pub label: String,
    /// Its lines.
    pub text: Vec<u8>,
    /// The file, checked against its head checkpoint too.
    pub file: Option<PathBuf>,
    /// A stored chain's head checkpoint.
    pub head: Option<Head>,
}

/// Why the chains could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file could not be read.
    #[error(transparent)]
    File(#[from] AuditError),
}

/// The chains of a runtime on `store`, whose single-process log is `file`.
pub async fn chains(store: &Store, file: &Path) -> Result<Vec<ChainText>, ReadError> {
    if store.engine() == Engine::Postgres {
        let mut out = Vec::new();
        for replica in store.audit_chain_replicas().await? {
            out.push(ChainText {
                label: format!("audit chain of replica {replica}"),
                text: store.audit_chain_text(&replica).await?,
                file: None,
                head: store
                    .audit_chain_head(&replica)
                    .await?
                    .map(|(seq, hash)| Head { seq, hash }),
                name: replica,
            });
        }
        return Ok(out);
    }
    let text = match std::fs::read(file) {
        Ok(text) => text,
        Err(source) => {
            return Err(ReadError::File(AuditError::Open {
                path: file.to_owned(),
                source,
            }));
        }
    };
    Ok(vec![ChainText {
        name: LOCAL_CHAIN.to_owned(),
        label: file.display().to_string(),
        text,
        file: Some(file.to_owned()),
        head: None,
    }])
}

/// Verifies `chain`'s hashes, and that it still reaches its head checkpoint.
pub fn verify(chain: &ChainText) -> Result<Result<Head, Vec<chain::Problem>>, AuditError> {
    Ok(match &chain.file {
        Some(path) => verify_file(path)?,
        None => chain::verify_against(&chain.text, chain.head.as_ref()),
    })
}
