//! The vault: its key can be found and read, and the vault file decrypts with it. The check
//! opens the vault the way the connector does, so systemd's `$CREDENTIALS_DIRECTORY` wins
//! over the key file when doctor runs inside the service's environment.

use super::report::Check;
use crate::config::Config;
use crate::vault::{Vault, VaultError};

const ID: &str = "vault";

/// Opens the vault and reads its entry list.
pub fn check(config: &Config) -> Check {
    let key_file = config
        .vault
        .identity_file
        .as_ref()
        .map_or_else(|| "the key file".to_owned(), |p| p.display().to_string());
    let vault = match Vault::open(config) {
        Ok(v) => v,
        Err(e) => return failure(&e, &key_file, config),
    };
    match vault.list() {
        Ok(entries) => Check::pass(
            ID,
            format!(
                "{} opens with the key from {} ({} entries)",
                vault.path().display(),
                vault.key_source().path().display(),
                entries.len()
            ),
        ),
        Err(e) => failure(&e, &key_file, config),
    }
}

fn failure(e: &VaultError, key_file: &str, config: &Config) -> Check {
    let state = config.state_dir.display();
    let fix = match e {
        VaultError::NoKey | VaultError::KeyMissing(_) => format!(
            "Create the key: `edge-connector vault --config {} init` (the packages do this on install); it makes {key_file} (0600) and prints its public key.",
            config
                .path
                .as_ref()
                .map_or_else(|| "FILE".to_owned(), |p| p.display().to_string())
        ),
        VaultError::Key { .. } => format!(
            "Check that {key_file} is an age identity (AGE-SECRET-KEY-1...) readable by the user running the connector, mode 0600; \
             under systemd the service reads it through LoadCredential=vault.key:{key_file}."
        ),
        VaultError::Io { .. } => format!(
            "Give the vault back to the service user: `chown edge-connector: {state}/vault.age {state}/vault.lock` \
             (run vault commands as that user: `sudo -u edge-connector edge-connector vault ...`)."
        ),
        VaultError::Unreadable { .. } => format!(
            "The vault does not decrypt with this key: restore the key that encrypted it (check {key_file} and the \
             service's LoadCredential), or restore {state}/vault.age from a backup."
        ),
        VaultError::StateDir(e) => e.fix(),
        VaultError::File(_) => format!(
            "Something other than the connector put a link or special file in {state}: find who can write it, \
             then remove the file named above (`rm` removes a link, not its target)."
        ),
        _ => "See the message above.".to_owned(),
    };
    Check::fail(ID, format!("the vault cannot be used: {e}"), fix)
}
